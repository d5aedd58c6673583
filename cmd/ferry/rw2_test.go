package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/record"
	"github.com/prometheus/prometheus/tsdb/wlog"

	"github.com/ferry-agent/ferry/collectors"
	"github.com/ferry-agent/ferry/collectors/host"
)

// TestRemoteWrite2Metadata is the proof that a receiver built from
// Prometheus' remote-write handler stores what ferry knows of every series
// it sends, at ferry's default settings: Prometheus 3.16 (built from
// github.com/prometheus/prometheus v0.316.0 by scripts/build-peers.sh;
// `make test-rw2` sets FERRY_RW2_PROMETHEUS) as the receiver, keeping
// metadata in its WAL (metadata-wal-records) and each sample's start time
// (st-storage). Its WAL, read back with Prometheus' own decoder, must hold
// for every series ferry sent the type, help and unit of its family as the
// host collectors and ferry's /metrics describe it, and on every sample of
// the counters the kernel starts at boot, the boot time as the start.
// (Prometheus' /api/v1/metadata lists the metadata of its scrape targets
// only, not of what it receives; the WAL is where the handler puts it.)
func TestRemoteWrite2Metadata(t *testing.T) {
	prom := rw2Prometheus(t)
	ferry := buildFerry(t)
	promAddr, ferryAddr := freeAddr(t), freeAddr(t)
	promDir := t.TempDir()
	p := startRW2Prometheus(t, prom, promAddr, promDir, "--enable-feature=metadata-wal-records,st-storage")

	// ferry at its defaults: only where to send, keep and listen.
	f := start(t, ferry, "--remote-write.url=http://"+promAddr+"/api/v1/write",
		"--storage.path="+t.TempDir(), "--web.listen-address="+ferryAddr)
	waitFor(t, 90*time.Second, "two collections at the receiver", func() bool {
		r := query(t, promAddr, "count_over_time(node_load1[5m])")
		return len(r) == 1 && sampleValue(t, r[0].Value[1]) >= 2
	})
	want := ferryFamilies(t, "http://"+ferryAddr+"/metrics")
	if code := f.stop(t); code != 0 {
		t.Fatalf("ferry exited %d", code)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("prometheus exited %d", code)
	}
	boot := bootTimeMillis(t)

	wal := readWAL(t, filepath.Join(promDir, "tsdb", "wal"))
	if len(wal.series) < 100 {
		t.Fatalf("%d series in Prometheus' WAL, want the host's and ferry's", len(wal.series))
	}
	sinceBoot := countersSinceBoot(t)
	checked, started := 0, 0
	for ref, lset := range wal.series {
		name := lset.Get(labels.MetricName)
		md, ok := wal.meta[ref]
		if !ok {
			t.Errorf("%s: no metadata stored", lset)
			continue
		}
		got := family{typ: record.ToMetricType(md.Type), help: md.Help, unit: md.Unit}
		w, known := want[name]
		if !known {
			t.Errorf("%s: a series ferry does not describe: stored %+v", lset, got)
			continue
		}
		if got != w {
			t.Errorf("%s: stored %+v, want %+v", lset, got, w)
		}
		samples := wal.samples[ref]
		if len(samples) == 0 {
			t.Errorf("%s: no samples", lset)
		}
		wantST := int64(0)
		if sinceBoot[name] {
			wantST = boot
			started++
		}
		for _, s := range samples {
			if value.IsStaleNaN(s.V) {
				continue // a staleness marker: the end of the series, not a sample of it
			}
			if s.ST != wantST {
				t.Errorf("%s at %d: start %d, want %d", lset, s.T, s.ST, wantST)
				break
			}
		}
		checked++
	}
	if started == 0 {
		t.Error("no series started at the boot time: the test checked nothing of start times")
	}
	t.Logf("%d series checked, %d of them with the boot time as their start", checked, started)
}

// rw2Prometheus is the Prometheus 3.16 that `make test-rw2` names; without
// it the test is skipped.
func rw2Prometheus(t *testing.T) string {
	t.Helper()
	prom := os.Getenv("FERRY_RW2_PROMETHEUS")
	if prom == "" {
		t.Skip("FERRY_RW2_PROMETHEUS is not set: make test-rw2 runs this test against Prometheus 3.16")
	}
	return prom
}

// startRW2Prometheus runs a Prometheus 3 that scrapes nothing and takes
// Remote-Write 1.0 and 2.0, on addr with its data in dir.
func startRW2Prometheus(t *testing.T, bin, addr, dir string, args ...string) *process {
	t.Helper()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, bin, append([]string{"--config.file=" + cfg, "--storage.tsdb.path=" + filepath.Join(dir, "tsdb"),
		"--web.listen-address=" + addr, "--web.enable-remote-write-receiver",
		"--web.remote-write-receiver.accepted-protobuf-messages=prometheus.WriteRequest",
		"--web.remote-write-receiver.accepted-protobuf-messages=io.prometheus.write.v2.Request"}, args...)...)
	waitFor(t, 60*time.Second, "prometheus to be ready", func() bool { return httpOK("http://" + addr + "/-/ready") })
	return p
}

// answerLosingLink is a reverse proxy in front of a receiver: down (503,
// nothing passed on) until up is set; then it passes every request on, and
// of the first that carries more than a probe (a body over 1 KiB) it holds
// the receiver's answer for hold and answers 502 instead: written, with
// the answer lost. Safe for concurrent use.
type answerLosingLink struct {
	proxy *httputil.ReverseProxy
	hold  time.Duration
	up    atomic.Bool
	lost  atomic.Bool
}

func (l *answerLosingLink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if !l.up.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if len(body) > 1024 && l.lost.CompareAndSwap(false, true) {
		l.proxy.ServeHTTP(httptest.NewRecorder(), r)
		time.Sleep(l.hold)
		http.Error(w, "answer lost", http.StatusBadGateway)
		return
	}
	l.proxy.ServeHTTP(w, r)
}

// TestRemoteWrite2PartialWriteAfterALostAnswer: Prometheus 3 writes what
// it can of a 2.0 request and refuses the rest, saying in its Written
// header how much it wrote. ferry at its defaults, with 2.0, starts while
// the link is down; when it is back, the request with the first two
// collections is written and its answer lost, held past the third
// collection. Sent again with the third, the request is refused for the
// first collection's samples, and Prometheus writes the rest. Every
// collection must be at the receiver, and ferry must count what was
// refused as duplicate, nothing as rejected: collected = sent + duplicate.
func TestRemoteWrite2PartialWriteAfterALostAnswer(t *testing.T) {
	prom := rw2Prometheus(t)
	ferry := buildFerry(t)
	promAddr, ferryAddr := freeAddr(t), freeAddr(t)
	startRW2Prometheus(t, prom, promAddr, t.TempDir())
	target, _ := url.Parse("http://" + promAddr)
	link := &answerLosingLink{proxy: httputil.NewSingleHostReverseProxy(target), hold: 16 * time.Second} // one interval and a second
	srv := httptest.NewServer(link)
	defer srv.Close()

	// ferry at its defaults: where to send, in 2.0, keep and listen.
	f := startReady(t, ferry, ferryAddr, "--remote-write.url="+srv.URL+"/api/v1/write",
		"--remote-write.protocol=2", "--storage.path="+t.TempDir())
	appended := func() float64 { return sumMetric(ferryMetrics(t, ferryAddr), "ferry_samples_appended_total") }
	waitFor(t, 30*time.Second, "the first collection", func() bool { return appended() > 0 })
	first := appended()
	waitFor(t, 30*time.Second, "the second collection", func() bool { return appended() > first })
	link.up.Store(true)

	waitFor(t, 90*time.Second, "four collections at the receiver", func() bool {
		r := query(t, promAddr, "count_over_time(node_load1[10m])")
		return len(r) == 1 && sampleValue(t, r[0].Value[1]) >= 4
	})
	if !link.lost.Load() {
		t.Fatal("no answer was lost: the test checked nothing")
	}
	// Settled: all that was collected is sent or counted (between
	// collections).
	var m map[string]float64
	dropped := func(reason string) float64 {
		return sumMetric(m, "ferry_remote_write_dropped_samples_total", `reason="`+reason+`"`)
	}
	waitFor(t, 30*time.Second, "every sample sent or counted", func() bool {
		m = ferryMetrics(t, ferryAddr)
		sent := sumMetric(m, "ferry_remote_write_samples_sent_total")
		return sent+dropped("duplicate")+dropped("rejected") == sumMetric(m, "ferry_samples_appended_total")
	})
	if n := dropped("rejected"); n != 0 {
		t.Errorf("%v samples counted as rejected; the receiver refused only what it held", n)
	}
	if dropped("duplicate") == 0 {
		t.Error("nothing counted as duplicate: the request sent again was not refused")
	}
	t.Logf("collected %v, sent %v, duplicate %v", sumMetric(m, "ferry_samples_appended_total"),
		sumMetric(m, "ferry_remote_write_samples_sent_total"), dropped("duplicate"))
	// Every collection at the receiver: node_load1 every 15 s, no gap.
	r := query(t, promAddr, "node_load1[10m]")
	if len(r) != 1 || len(r[0].Values) < 4 {
		t.Fatalf("node_load1 at the receiver: %v, want one series of four samples or more", r)
	}
	for i := 1; i < len(r[0].Values); i++ {
		if gap := sampleValue(t, r[0].Values[i][0]) - sampleValue(t, r[0].Values[i-1][0]); gap > 16 {
			t.Errorf("node_load1: %v s between samples %d and %d, want one interval (15 s)", gap, i-1, i)
		}
	}
	if code := f.stop(t); code != 0 {
		t.Errorf("ferry exited %d", code)
	}
}

type family struct {
	typ        model.MetricType
	help, unit string
}

// ferryFamilies returns what ferry describes: every host family as the
// host collectors' descriptors have it (collected here, from this host's
// /proc and /sys), and ferry's own from its /metrics (# HELP, # TYPE), by
// series name.
func ferryFamilies(t *testing.T, metricsURL string) map[string]family {
	t.Helper()
	out := map[string]family{}
	enabled := map[string]bool{}
	for _, e := range host.Collectors() {
		enabled[e.Name] = e.DefaultEnabled
	}
	var c collectors.Collection
	_ = host.NewSet(enabled, collectors.Paths{ProcFS: "/proc", SysFS: "/sys", RootFS: "/"}).Collect(context.Background(), &c)
	for _, d := range c.Families {
		out[d.Name] = family{typ: promType(string(d.Type)), help: d.Help, unit: d.Unit}
	}
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	helps, types := map[string]string{}, map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), " ", 4)
		if len(fields) < 4 && !(len(fields) == 3 && fields[1] == "HELP") || fields[0] != "#" {
			continue
		}
		text := ""
		if len(fields) == 4 {
			text = fields[3]
		}
		switch fields[1] {
		case "HELP":
			helps[fields[2]] = strings.NewReplacer(`\\`, `\`, `\n`, "\n").Replace(text)
		case "TYPE":
			types[fields[2]] = text
		}
	}
	for name, typ := range types {
		out[name] = family{typ: promType(typ), help: helps[name]}
	}
	// The scrape report of ferry's own source, as Prometheus names it.
	for _, d := range []struct{ name, help string }{
		{"up", "1 if the target was scraped and parsed, 0 otherwise."},
		{"scrape_duration_seconds", "Duration of the scrape."},
		{"scrape_samples_scraped", "Samples the target exposed."},
		{"scrape_samples_post_metric_relabeling", "Samples left after metric relabeling."},
		{"scrape_series_added", "Series in this scrape that were not in the one before."},
	} {
		if _, ok := out[d.name]; !ok {
			out[d.name] = family{typ: model.MetricTypeGauge, help: d.help}
		}
	}
	return out
}

func promType(typ string) model.MetricType {
	if typ == "untyped" || typ == "" {
		return model.MetricTypeUnknown
	}
	return model.MetricType(typ)
}

// countersSinceBoot names the series whose start is the boot time: the
// counters of the collectors the kernel starts at boot.
func countersSinceBoot(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, e := range host.Collectors() {
		if !e.DefaultEnabled || (e.Name != "cpu" && e.Name != "stat" && e.Name != "pressure") {
			continue
		}
		var c collectors.Collection
		_ = e.New(collectors.Paths{ProcFS: "/proc", SysFS: "/sys", RootFS: "/"}).Collect(context.Background(), &c)
		for _, d := range c.Families {
			if d.Type == collectors.Counter {
				out[d.Name] = true
			}
		}
	}
	return out
}

func bootTimeMillis(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return s * 1000
		}
	}
	t.Fatal("no btime in /proc/stat")
	return 0
}

type walContent struct {
	series  map[chunks.HeadSeriesRef]labels.Labels
	meta    map[chunks.HeadSeriesRef]record.RefMetadata // the last of each series
	samples map[chunks.HeadSeriesRef][]record.RefSample
}

// readWAL decodes a Prometheus WAL with Prometheus' own reader.
func readWAL(t *testing.T, dir string) walContent {
	t.Helper()
	rc, err := wlog.NewSegmentsReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := walContent{series: map[chunks.HeadSeriesRef]labels.Labels{}, meta: map[chunks.HeadSeriesRef]record.RefMetadata{}, samples: map[chunks.HeadSeriesRef][]record.RefSample{}}
	var dec record.Decoder
	r := wlog.NewReader(rc)
	for r.Next() {
		rec := r.Record()
		switch dec.Type(rec) {
		case record.Series:
			series, err := dec.Series(rec, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range series {
				out.series[s.Ref] = s.Labels.Copy()
			}
		case record.Metadata:
			metas, err := dec.Metadata(rec, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range metas {
				out.meta[m.Ref] = m
			}
		case record.Samples, record.SamplesV2:
			samples, err := dec.Samples(rec, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range samples {
				out.samples[s.Ref] = append(out.samples[s.Ref], s)
			}
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(fmt.Errorf("reading the WAL: %w", err))
	}
	return out
}
