package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/ferry-agent/ferry/buffer"
)

// fillBuffer commits families whose samples interleave in time, as a real
// backlog does, and returns what it appended, by series and timestamp.
func fillBuffer(t *testing.T, dir string) map[string]float64 {
	t.Helper()
	b, err := buffer.Open(buffer.Options{Dir: dir, MaxSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{}
	for round := range 6 {
		ts := int64(1_700_000_000_000) + int64(round)*15_000
		for _, lset := range []labels.Labels{
			labels.FromStrings("__name__", "node_load1", "job", "node"),
			labels.FromStrings("__name__", "app_requests_total", "path", `/a"b\c`, "code", "200"),
			labels.FromStrings("__name__", "app_requests_total", "path", "/x", "code", "500"),
			labels.FromStrings("__name__", "zz_temperature", "zone", "cpu"),
		} {
			v := float64(round) * 1.5
			if round == 3 && lset.Get("zone") == "cpu" {
				v = math.Inf(1)
			}
			b.Append(lset, ts, v)
			want[fmt.Sprintf("%s@%d", lset, ts)] = v
		}
		if round%2 == 1 {
			if err := b.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return want
}

func TestBufferExportIsOpenMetricsWithEverySample(t *testing.T) {
	dir := t.TempDir()
	want := fillBuffer(t, dir)

	var stdout, stderr bytes.Buffer
	if code := run([]string{"buffer", "export", "--storage.path", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	checkExport(t, stdout.Bytes(), want)

	// The same with room for one family at a time: several passes.
	b, err := buffer.Open(buffer.Options{Dir: dir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var small bytes.Buffer
	if n, err := exportOpenMetrics(b, &small, allTime, 1, newProgress(io.Discard, false, "", 0)); err != nil || n != len(want) {
		t.Fatalf("exported %d samples (%v), want %d", n, err, len(want))
	}
	if !bytes.Equal(small.Bytes(), stdout.Bytes()) {
		t.Fatalf("export in several passes differs:\n%s\nvs\n%s", small.String(), stdout.String())
	}
}

func checkExport(t *testing.T, out []byte, want map[string]float64) {
	t.Helper()
	if !bytes.HasSuffix(out, []byte("# EOF\n")) {
		t.Fatalf("no # EOF at the end:\n%s", out)
	}
	p := textparse.NewOpenMetricsParser(out, labels.NewSymbolTable())
	got := map[string]float64{}
	var order []string
	for {
		entry, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not valid OpenMetrics: %v\n%s", err, out)
		}
		if entry != textparse.EntrySeries {
			continue
		}
		_, ts, v := p.Series()
		var lset labels.Labels
		p.Labels(&lset)
		if ts == nil {
			t.Fatalf("%s has no timestamp", lset)
		}
		got[fmt.Sprintf("%s@%d", lset, *ts)] = v
		if name := lset.Get("__name__"); len(order) == 0 || order[len(order)-1] != name {
			order = append(order, name)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d samples exported, want %d", len(got), len(want))
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: got %v (present %v), want %v", k, g, ok, v)
		}
	}
	if strings.Join(order, ",") != "app_requests_total,node_load1,zz_temperature" {
		t.Errorf("families not each in one run: %v", order)
	}
}

func TestBufferExportRefusesWhileTheAgentRuns(t *testing.T) {
	dir := t.TempDir()
	b, err := buffer.Open(buffer.Options{Dir: dir, MaxSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"buffer", "export", "--storage.path", dir}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "in use") {
		t.Fatalf("exit %d, stderr %q: want a clear refusal", code, stderr.String())
	}
}

// requestSamples decodes a carry file's requests as the receiver would.
func requestSamples(t *testing.T, file string) map[string]float64 {
	t.Helper()
	var bodies [][]byte
	for _, rec := range carryRecords(t, file) {
		bodies = append(bodies, rec.Body)
	}
	return samplesOf(t, bodies...)
}

func stats(t *testing.T, dir string) buffer.Stats {
	t.Helper()
	b, err := buffer.Open(buffer.Options{Dir: dir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	return b.Stats()
}

func TestExportRemoteWriteLeavesTheBufferAlone(t *testing.T) {
	dir := t.TempDir()
	want := fillBuffer(t, dir)
	before := stats(t, dir)
	file := exportCarry(t, dir)
	sameSamples(t, requestSamples(t, file), want)
	if after := stats(t, dir); after.Blocks != before.Blocks || after.Samples != before.Samples {
		t.Fatalf("export changed the buffer: %+v, was %+v", after, before)
	}
}

func TestExportTimeRange(t *testing.T) {
	dir := t.TempDir()
	all := fillBuffer(t, dir)
	// Rounds 2 to 4 of fillBuffer's 0..5, by RFC 3339 and by Unix seconds.
	from, to := int64(1_700_000_000_000+2*15_000), int64(1_700_000_000_000+4*15_000)
	want := map[string]float64{}
	for k, v := range all {
		ts, _ := strconv.ParseInt(k[strings.LastIndex(k, "@")+1:], 10, 64)
		if ts >= from && ts <= to {
			want[k] = v
		}
	}
	for _, args := range [][]string{
		{"--from", time.UnixMilli(from).UTC().Format(time.RFC3339Nano), "--to", time.UnixMilli(to).UTC().Format(time.RFC3339Nano)},
		{"--from", strconv.FormatInt(from/1000, 10), "--to", fmt.Sprintf("%.3f", float64(to)/1000)},
	} {
		sameSamples(t, requestSamples(t, exportCarry(t, dir, args...)), want)

		var stdout, stderr bytes.Buffer
		if code := run(append([]string{"buffer", "export", "--storage.path", dir}, args...), &stdout, &stderr); code != 0 {
			t.Fatalf("openmetrics: exit %d: %s", code, stderr.String())
		}
		if n := strings.Count(stdout.String(), "\n") - strings.Count(stdout.String(), "#"); n != len(want) {
			t.Errorf("openmetrics with %v: %d samples, want %d", args, n, len(want))
		}
	}
}

func TestExportMarkSent(t *testing.T) {
	t.Run("everything", func(t *testing.T) {
		dir := t.TempDir()
		want := fillBuffer(t, dir)
		file := exportCarry(t, dir, "--mark-sent")
		sameSamples(t, requestSamples(t, file), want)
		if st := stats(t, dir); st.Blocks != 0 || st.Samples != 0 {
			t.Fatalf("after --mark-sent the buffer still holds %d blocks", st.Blocks)
		}
	})
	t.Run("up to a time", func(t *testing.T) {
		dir := t.TempDir()
		all := fillBuffer(t, dir) // blocks of 2 rounds: 0-1, 2-3, 4-5
		to := time.UnixMilli(1_700_000_000_000 + 2*15_000).UTC().Format(time.RFC3339)
		var stdout, stderr bytes.Buffer
		out := filepath.Join(t.TempDir(), "f")
		if code := run([]string{"buffer", "export", "--storage.path", dir, "--format=remote-write", "--output", out, "--to", to, "--mark-sent"}, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		// Rounds 0-2 exported; the block of rounds 2-3 stays whole, so
		// round 2 is in the file and in the buffer.
		if got := len(requestSamples(t, out)); got != 12 {
			t.Errorf("%d samples exported, want 12", got)
		}
		if st := stats(t, dir); st.Samples != len(all)-8 {
			t.Errorf("%d samples left in the buffer, want %d", st.Samples, len(all)-8)
		}
		if msg := stderr.String(); !strings.Contains(msg, "8 marked as sent (4 stay in the buffer") {
			t.Errorf("stderr: %s", msg)
		}
	})
	t.Run("refused", func(t *testing.T) {
		dir := t.TempDir()
		fillBuffer(t, dir)
		before := stats(t, dir)
		out := filepath.Join(t.TempDir(), "f")
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--format=remote-write", "--output", out, "--from", "1700000020", "--mark-sent"}, "before --from"},
			{[]string{"--format=remote-write", "--mark-sent"}, "needs --output"},
			{[]string{"--output", out, "--mark-sent"}, "needs --format=remote-write"},
		} {
			var stdout, stderr bytes.Buffer
			if code := run(append([]string{"buffer", "export", "--storage.path", dir}, tc.args...), &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("%v: exit %d, %q; want 2 and %q", tc.args, code, stderr.String(), tc.want)
			}
		}
		if after := stats(t, dir); after.Blocks != before.Blocks {
			t.Fatalf("a refused --mark-sent changed the buffer")
		}
		// The agent has it: refused, the file not left behind.
		b, err := buffer.Open(buffer.Options{Dir: dir, MaxSize: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		var stdout, stderr bytes.Buffer
		if code := run([]string{"buffer", "export", "--storage.path", dir, "--format=remote-write", "--output", out, "--mark-sent"}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "in use") {
			t.Fatalf("exit %d, %q: want a clear refusal while the agent runs", code, stderr.String())
		}
		if _, err := os.Stat(out); err == nil {
			t.Error("a refused export left its output file")
		}
	})
}

// TestExportFileIsPrivateAndNeverReplacedUnasked: the file is 0600, as the
// buffer; it appears whole (no temporary file left beside it); a file
// already there is kept unless --overwrite is given.
func TestExportFileIsPrivateAndNeverReplacedUnasked(t *testing.T) {
	for _, format := range []string{"remote-write", "openmetrics"} {
		t.Run(format, func(t *testing.T) {
			old := syscall.Umask(0o022)
			defer syscall.Umask(old)
			dir := t.TempDir()
			want := fillBuffer(t, dir)
			outDir := t.TempDir()
			out := filepath.Join(outDir, "backlog")
			export := func(extra ...string) (int, string) {
				var stdout, stderr bytes.Buffer
				args := append([]string{"buffer", "export", "--storage.path", dir, "--format=" + format, "--output", out}, extra...)
				code := run(args, &stdout, &stderr)
				return code, stderr.String()
			}
			if code, msg := export(); code != 0 {
				t.Fatalf("exit %d: %s", code, msg)
			}
			fi, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm != 0o600 {
				t.Errorf("mode %v, want 0600", perm)
			}
			written, _ := os.ReadFile(out)

			// A file of that name is kept: the user's, or an earlier export.
			mine := []byte("someone's file\n")
			if err := os.WriteFile(out, mine, 0o644); err != nil {
				t.Fatal(err)
			}
			if code, msg := export(); code != 1 || !strings.Contains(msg, "exists; give --overwrite") {
				t.Errorf("over an existing file: exit %d, %q; want 1 and a refusal naming --overwrite", code, msg)
			}
			if got, _ := os.ReadFile(out); !bytes.Equal(got, mine) {
				t.Errorf("the existing file was changed")
			}
			if code, msg := export("--overwrite"); code != 0 {
				t.Fatalf("--overwrite: exit %d: %s", code, msg)
			}
			if got, _ := os.ReadFile(out); !bytes.Equal(got, written) {
				t.Errorf("--overwrite did not write the export")
			}
			if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
				t.Errorf("after --overwrite: mode %v, want 0600", fi.Mode().Perm())
			}
			entries, _ := os.ReadDir(outDir)
			if len(entries) != 1 {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("files beside the export: %v, want it alone", names)
			}
			if format == "remote-write" {
				sameSamples(t, requestSamples(t, out), want)
			}
		})
	}
}
