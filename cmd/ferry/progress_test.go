package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// On a terminal the line is redrawn at most every redrawInterval, with
// rate and time left; the summary replaces it.
func TestProgressLine(t *testing.T) {
	var out bytes.Buffer
	clock := time.Unix(1000, 0)
	p := newProgress(&out, true, "pushed", 10_000)
	p.now = func() time.Time { return clock }
	p.start = clock
	for _, step := range []struct {
		after time.Duration
		done  int64
	}{{0, 0}, {100 * time.Millisecond, 500}, {200 * time.Millisecond, 1000}, {time.Second, 2000}, {1100 * time.Millisecond, 2500}, {2 * time.Second, 4000}} {
		clock = time.Unix(1000, 0).Add(step.after)
		p.update(step.done)
	}
	p.finish("ferry: push: done")
	want := "\rpushed 0 of 10,000 samples (0%)\x1b[K" + // 0.1 s and 0.2 s were too soon after it
		"\rpushed 2,000 of 10,000 samples (20%), 2,000/s, 4s left\x1b[K" +
		"\rpushed 4,000 of 10,000 samples (40%), 2,000/s, 3s left\x1b[K" + // 1.1 s was too soon after 1 s
		"\r\x1b[Kferry: push: done\n"
	if got := out.String(); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// Not on a terminal: nothing but the summary line.
func TestProgressQuiet(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, false, "exported", 10)
	for i := range int64(10) {
		p.update(i)
	}
	p.finish("ferry: export: %d samples", 10)
	if got := out.String(); got != "ferry: export: 10 samples\n" {
		t.Errorf("got %q", got)
	}
}

func TestExportProgress(t *testing.T) {
	dir := t.TempDir()
	want := fillBuffer(t, dir)
	for _, format := range []string{"openmetrics", "remote-write"} {
		var stdout, stderr bytes.Buffer
		out := t.TempDir() + "/f"
		if code := run([]string{"buffer", "export", "--storage.path", dir, "--format", format, "--output", out, "--progress=always"}, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		lines := stderr.String()
		if !strings.Contains(lines, "\rexported ") || strings.Count(lines, "\n") != 1 || !strings.Contains(lines, "export: 24 samples") || len(want) != 24 {
			t.Errorf("%s: %q", format, lines)
		}
	}
}

func TestGroup(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := group(n); got != want {
			t.Errorf("group(%d) = %q, want %q", n, got, want)
		}
	}
}
