package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferry-agent/ferry/agent/config"
	"github.com/ferry-agent/ferry/buffer"
	"github.com/ferry-agent/ferry/collectors/scrape"
)

// targetBody is an exporter's page of n application series: a hundred
// families with handler, code and shard labels, as the bench workload's
// application series, without the target labels a scrape adds.
func targetBody(n int) []byte {
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, "app_metric_%d{handler=\"/api/v1/thing%d\",code=\"%s\",shard=\"%d\"} %d\n",
			i%100, (i/100)%20, []string{"200", "404", "500", "503"}[(i/2000)%4], i/8000, i*7)
	}
	return []byte(sb.String())
}

// BenchmarkCollectTarget measures one whole collection of a 10k-series
// target along the agent's path: the HTTP GET of a local exporter, parsing,
// duplicate detection, target and external labels, staleness tracking and
// the buffer's Append, per sample. The buffer commits between collections,
// untimed. live-heap-MiB is the heap in use after them: what ferry keeps
// of a target of that size.
func BenchmarkCollectTarget(b *testing.B) {
	const n = 10_000
	body := targetBody(n)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write(body)
	}))
	defer srv.Close()
	u, err := url.Parse(srv.URL + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	cfg := config.DefaultConfig()
	cfg.ExternalLabels = labels.FromStrings("site", "plant-7")
	buf, err := buffer.Open(buffer.Options{Dir: b.TempDir(), MaxSize: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer buf.Close()
	a := &Agent{cfg: cfg, log: slog.New(slog.DiscardHandler), buf: buf, started: time.Now()}

	lim := scrape.DefaultLimits
	scraper, err := scrape.New(scrape.Target{URL: u, Limits: lim}, 10*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	s := &source{name: "app/127.0.0.1:8080", collector: scraper, report: true,
		target:   labels.FromStrings("job", "app", "instance", "127.0.0.1:8080"),
		interval: time.Second, timeout: 10 * time.Second, series: newSeriesSet(),
		failures: map[string]*atomic.Uint64{}}
	ctx := context.Background()
	a.collectOnce(ctx, s) // the series are known from here on, as in a running agent
	b.ReportAllocs()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	allocs := -ms.Mallocs
	for b.Loop() {
		start := time.Now()
		a.collectOnce(ctx, s)
		b.StopTimer()
		runtime.ReadMemStats(&ms)
		allocs += ms.Mallocs
		if s.lastErr != "" {
			b.Fatal(s.lastErr)
		}
		for time.Since(start) < time.Millisecond {
			time.Sleep(100 * time.Microsecond) // one timestamp per collection
		}
		if err := buf.Commit(); err != nil {
			b.Fatal(err)
		}
		runtime.ReadMemStats(&ms)
		allocs -= ms.Mallocs
		b.StartTimer()
	}
	allocs += ms.Mallocs
	runtime.GC()
	runtime.ReadMemStats(&ms)
	runtime.KeepAlive(s) // the buffer stays open until the deferred Close
	// What the collections keep: caches, series, the buffer's index.
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "live-heap-MiB")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sample")
	b.ReportMetric(float64(allocs)/float64(b.N*n), "allocs/sample")
}
