package main

import (
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferry-agent/ferry/bench"
)

// agentOf tells the agents apart: each scrapes the same targets under its
// own path prefix (/ferry/metrics, ...); the User-Agent is the fallback.
func agentOf(r *http.Request) string {
	if first, _, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/"); ok {
		for _, n := range agentNames {
			if first == n {
				return n
			}
		}
	}
	ua := r.UserAgent()
	switch {
	case strings.HasPrefix(ua, "ferry"):
		return "ferry"
	case strings.Contains(ua, "vm_promscrape"), strings.Contains(strings.ToLower(ua), "vmagent"):
		return "vmagent"
	case strings.HasPrefix(ua, "Prometheus"):
		return "prometheus"
	}
	return "other"
}

// probeServe is one scrape of the probe: when, and the value served.
type probeServe struct {
	at    time.Time
	value int64
}

// synthJob is the job name every agent gives the synthetic target.
const synthJob = "synth"

// synthTarget serves bench.NewWorkload's series, advanced every interval,
// plus ferry_bench_probe whose value is the Unix second it was served in.
type synthTarget struct {
	series int // lines per scrape, the probe included

	mu      sync.Mutex
	body    []byte
	failing bool // answer 503: the drain scenario's end of new samples
	scrapes map[string]int
	probes  map[string][]probeServe
}

func newSynthTarget(appSeries int, interval time.Duration, stop <-chan struct{}) *synthTarget {
	w := bench.NewWorkload(appSeries, 1)
	t := &synthTarget{series: len(w.Series) + 1, scrapes: map[string]int{}, probes: map[string][]probeServe{}}
	t.body = render(w)
	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				b := render(w)
				t.mu.Lock()
				t.body = b
				t.mu.Unlock()
			}
		}
	}()
	return t
}

func render(w *bench.Workload) []byte {
	var b bytes.Buffer
	b.Grow(len(w.Series) * 120)
	w.Next(func(_ int, lset labels.Labels, v float64) {
		b.WriteString(lset.Get("__name__"))
		b.WriteByte('{')
		first := true
		lset.Range(func(l labels.Label) {
			if l.Name == "__name__" {
				return
			}
			if !first {
				b.WriteByte(',')
			}
			first = false
			b.WriteString(l.Name)
			b.WriteString(`="`)
			b.WriteString(l.Value)
			b.WriteByte('"')
		})
		b.WriteString("} ")
		b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
		b.WriteByte('\n')
	})
	return b.Bytes()
}

func (t *synthTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	v := now.Unix()
	a := agentOf(r)
	t.mu.Lock()
	if t.failing {
		t.mu.Unlock()
		http.Error(w, "target failing (bench)", http.StatusServiceUnavailable)
		return
	}
	body := t.body
	t.scrapes[a]++
	t.probes[a] = append(t.probes[a], probeServe{now, v})
	t.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	w.Write(body)
	w.Write([]byte("# TYPE ferry_bench_probe counter\nferry_bench_probe " + strconv.FormatInt(v, 10) + "\n"))
}

func (t *synthTarget) setFailing(f bool) {
	t.mu.Lock()
	t.failing = f
	t.mu.Unlock()
}

func (t *synthTarget) scrapeCount(a string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.scrapes[a]
}

// scrapeTimes returns when the target was served to agent a, in order.
func (t *synthTarget) scrapeTimes(a string) []time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]time.Time, len(t.probes[a]))
	for i, p := range t.probes[a] {
		out[i] = p.at
	}
	return out
}

// served returns the probe values served to agent a in [from, to).
func (t *synthTarget) served(a string, from, to time.Time) []int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []int64
	for _, p := range t.probes[a] {
		if !p.at.Before(from) && p.at.Before(to) {
			out = append(out, p.value)
		}
	}
	return out
}

// scrapeCounter is a reverse proxy in front of node_exporter that counts
// the scrapes of each agent.
type scrapeCounter struct {
	proxy   *httputil.ReverseProxy
	mu      sync.Mutex
	scrapes map[string]int
}

func newScrapeCounter(target string) *scrapeCounter {
	u, _ := url.Parse(target)
	p := httputil.NewSingleHostReverseProxy(u)
	p.ErrorLog = log.New(io.Discard, "", 0)
	return &scrapeCounter{proxy: p, scrapes: map[string]int{}}
}

func (s *scrapeCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a := agentOf(r)
	s.mu.Lock()
	s.scrapes[a]++
	s.mu.Unlock()
	r.URL.Path = "/metrics"
	s.proxy.ServeHTTP(w, r)
}

func (s *scrapeCounter) scrapeCount(a string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scrapes[a]
}

// countSamples counts the sample lines of a text exposition.
func countSamples(body []byte) int {
	n := 0
	for _, line := range bytes.Split(body, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' {
			n++
		}
	}
	return n
}
