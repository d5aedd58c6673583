package bench

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferry-agent/ferry/agent/config"
	"github.com/ferry-agent/ferry/buffer"
	"github.com/ferry-agent/ferry/collectors"
	"github.com/ferry-agent/ferry/collectors/host"
	"github.com/ferry-agent/ferry/collectors/scrape"
)

// The hot paths of one scrape interval, each with its allocations:
// parse a target's body, append its samples, one host collection. (The
// remote-write encoder's benchmark lives beside it, in agent/remotewrite/codec.)

// scrapeBody is the text exposition of the workload's 10k application series.
func scrapeBody(b *testing.B) []byte {
	b.Helper()
	w := NewWorkload(10_000, 1)
	var c collectors.Collection
	w.Next(func(_ int, lset labels.Labels, v float64) {
		c.AddSample(nil, collectors.Sample{Labels: lset, V: v})
	})
	var buf bytes.Buffer
	if err := collectors.WriteText(&buf, &c); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

func BenchmarkParseScrapeBody(b *testing.B) {
	body := scrapeBody(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var c collectors.Collection
		if err := scrape.Parse(body, "text/plain; version=0.0.4", scrape.Limits{Samples: 1 << 20}, &c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBufferAppend(b *testing.B) {
	dir, err := os.MkdirTemp(os.Getenv("FERRY_BENCH_DIR"), "bench-append-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	buf, err := buffer.Open(buffer.Options{Dir: dir, MaxSize: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer buf.Close()
	w := NewWorkload(10_000, 1)
	t := time.Now().UnixMilli()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		t += 15_000
		w.Next(func(_ int, lset labels.Labels, v float64) { buf.Append(lset, t, v) })
		n += len(w.Series)
		if n%(4*len(w.Series)) == 0 { // a minute of scrapes: commit, untimed
			b.StopTimer()
			if err := buf.Commit(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/sample")
}

func BenchmarkHostCollection(b *testing.B) {
	cfg := config.DefaultConfig()
	cfg.Collectors = map[string]bool{}
	for _, name := range []string{"cpu", "loadavg", "meminfo", "filesystem", "netdev", "diskstats", "stat", "time", "uname", "os", "thermal_zone", "hwmon", "pressure"} {
		cfg.Collectors[name] = true
	}
	hc := host.NewSet(cfg.Collectors, cfg.Paths)
	b.ReportAllocs()
	samples := 0
	for b.Loop() {
		var c collectors.Collection
		if err := hc.Collect(context.Background(), &c); err != nil {
			b.Fatal(err)
		}
		samples = len(c.Samples)
	}
	b.ReportMetric(float64(samples), "samples/op")
}
