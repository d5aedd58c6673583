package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"

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
	if n, err := exportOpenMetrics(b, &small, 1); err != nil || n != len(want) {
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
