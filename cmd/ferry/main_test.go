package main

import (
	"bytes"
	"errors"
	"io"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
)

func TestBadUsageIsOneLineNamingTheFlagAndExitsTwo(t *testing.T) {
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"--storage.max-size=12XB"}, "--storage.max-size"},
		{[]string{"--scrape.interval=soon"}, "--scrape.interval"},
		{[]string{"--scrape.interval=10ms"}, "--scrape.interval"},
		{[]string{"--remote-write.url=ftp://example/write"}, "--remote-write.url"},
		{[]string{"--external-label=9bad=x"}, "--external-label"},
		{[]string{"--log.level=loud"}, "--log.level"},
		{[]string{"--no-such-flag"}, "--no-such-flag"},
		{[]string{"--config.file=/nonexistent/ferry.yml"}, "--config.file"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(c.args, &stdout, &stderr)
		msg := stderr.String()
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", c.args, code, msg)
		}
		if strings.Count(msg, "\n") != 1 || !strings.Contains(msg, c.flag) {
			t.Errorf("%v: stderr %q: want one line naming %s", c.args, msg, c.flag)
		}
	}
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("--help exited %d", code)
	}
	for _, flag := range []string{
		"--remote-write.url", "--storage.path", "--storage.max-size", "--scrape.interval",
		"--scrape.target", "--external-label", "--web.listen-address", "--config.file", "--log.level",
		"--collector.cpu", "--no-collector.cpu",
	} {
		if !strings.Contains(stdout.String(), flag) {
			t.Errorf("--help does not mention %s", flag)
		}
	}
}

func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"version"}, &stdout, &stderr); code != 0 {
		t.Fatalf("version exited %d", code)
	}
	if out := stdout.String(); !strings.HasPrefix(out, "ferry ") || !strings.Contains(out, "commit") || !strings.Contains(out, "go1.") {
		t.Fatalf("version printed %q", out)
	}
}

// TestCollectPrintsTheHostCollection: `ferry collect` prints what the host
// collectors would send, in the text format Prometheus parses.
func TestCollectPrintsTheHostCollection(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"collect"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	p := textparse.NewPromParser(stdout.Bytes(), labels.NewSymbolTable(), false)
	seen := map[string]bool{}
	for {
		entry, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("output does not parse: %v", err)
		}
		if entry == textparse.EntrySeries {
			var lset labels.Labels
			p.Labels(&lset)
			seen[lset.Get("__name__")] = true
		}
	}
	for _, name := range []string{"node_load1", "node_memory_MemTotal_bytes", "node_cpu_seconds_total", "node_boot_time_seconds"} {
		if !seen[name] {
			t.Errorf("%s missing from ferry collect", name)
		}
	}
	stdout.Reset()
	if code := run([]string{"collect", "--no-collector.cpu", "--no-collector.loadavg"}, &stdout, &stderr); code != 0 || strings.Contains(stdout.String(), "node_load1 ") || strings.Contains(stdout.String(), "node_cpu_seconds_total{") {
		t.Errorf("collectors turned off still print (exit %d)", code)
	}
}

func TestGCPercentDefaultUnlessGOGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, tc := range []struct {
		gogc string
		want int
	}{{"", defaultGCPercent}, {"100", 100}, {"off", 100}} {
		debug.SetGCPercent(100) // as the runtime leaves it for GOGC
		setGCPercent(func(name string) string {
			if name == "GOGC" {
				return tc.gogc
			}
			return ""
		})
		if got := debug.SetGCPercent(100); got != tc.want {
			t.Errorf("GOGC=%q: GC percent %d, want %d", tc.gogc, got, tc.want)
		}
	}
}
