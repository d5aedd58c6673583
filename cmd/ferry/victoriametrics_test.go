package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The VictoriaMetrics end-to-end test runs the real ferry binary against
// Debian's victoria-metrics and checks that every sample a scrape target
// served, across an outage of the receiver, is stored there with the exact
// value and millisecond timestamp it was collected with, and nothing else.

// vmValues are the values the target cycles through: fractions that have
// no exact binary form, negatives, zero, six decimals, twelve digits.
// VictoriaMetrics stores the values of a block as decimals with a common
// exponent, so a series that mixes magnitudes far apart loses the small
// ones' digits at the receiver (seen here with 1e-7 next to 7.5e12: it came
// back as 0). These span twelve significant digits together, which it keeps
// exactly, so any difference at the receiver is ferry's.
var vmValues = []float64{0.1, -2.5, 123456.789012, 0, -0.000123, 3.141593, 42, 999999.999999, 1e-6, -7}

// servedSample is one sample the target served: its series, value, time.
type servedSample struct {
	series string
	v      float64
	t      int64
}

// stampedTarget serves three series with explicit timestamps, new values
// and a new millisecond timestamp (never a round second) at every scrape,
// and remembers every sample it served. After freeze it answers 503, so
// that the set of collected samples is final.
type stampedTarget struct {
	mu     sync.Mutex
	served []servedSample
	n      int
	lastT  int64
	frozen bool
}

var vmSeries = []string{`ferry_e2e_gauge{kind="a"}`, `ferry_e2e_gauge{kind="b"}`, `ferry_e2e_total`}

func (s *stampedTarget) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.frozen {
		http.Error(w, "frozen", http.StatusServiceUnavailable)
		return
	}
	t := time.Now().UnixMilli()
	if t%1000 == 0 {
		t++ // a millisecond part that a second-rounding receiver would lose
	}
	if t <= s.lastT {
		t = s.lastT + 1
	}
	s.lastT = t
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	var b strings.Builder
	b.WriteString("# TYPE ferry_e2e_gauge gauge\n")
	for i, series := range vmSeries {
		v := vmValues[(s.n+i)%len(vmValues)]
		if i == 2 {
			b.WriteString("# TYPE ferry_e2e_total counter\n")
			v = float64(s.n) + 0.25
		}
		fmt.Fprintf(&b, "%s %v %d\n", series, v, t)
		s.served = append(s.served, servedSample{series, v, t})
	}
	s.n++
	_, _ = w.Write([]byte(b.String()))
}

func (s *stampedTarget) freeze() []servedSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frozen = true
	return append([]servedSample(nil), s.served...)
}

func (s *stampedTarget) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.served)
}

// startVictoriaMetrics runs a single-node VictoriaMetrics on addr with its
// data in dir, without deduplication (its default; set explicitly).
func startVictoriaMetrics(t *testing.T, bin, addr, dir string) *process {
	t.Helper()
	p := start(t, bin, "-storageDataPath="+dir, "-httpListenAddr="+addr,
		"-retentionPeriod=1", "-dedup.minScrapeInterval=0", "-loggerLevel=WARN")
	waitFor(t, 60*time.Second, "victoria-metrics to be ready", func() bool { return httpOK("http://" + addr + "/health") })
	return p
}

// vmExport reads every raw sample of the ferry_e2e_ metrics from
// VictoriaMetrics' export API, keyed by series as the target wrote it.
type vmRow struct {
	Metric     map[string]string `json:"metric"`
	Values     []float64         `json:"values"`
	Timestamps []int64           `json:"timestamps"`
}

func vmExport(t *testing.T, addr string) []vmRow {
	t.Helper()
	// Make what was just written searchable.
	if resp, err := http.Get("http://" + addr + "/internal/force_flush"); err == nil {
		resp.Body.Close()
	}
	q := url.Values{"match[]": {`{__name__=~"ferry_e2e_.*"}`}, "start": {"0"}}
	resp, err := http.Get("http://" + addr + "/api/v1/export?" + q.Encode())
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("export: %s", resp.Status)
	}
	var rows []vmRow
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var r vmRow
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("export: %v", err)
	}
	return rows
}

// With --remote-write.protocol=2 the same must hold: VictoriaMetrics 1.79
// speaks only 1.0 and answers a 2.0 request 204 without the spec's Written
// headers, so ferry must fall back to 1.0 and send that batch again.
func TestEndToEndVictoriaMetricsExactSamples(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; runs without -short")
	}
	vmBin := needTool(t, "victoria-metrics")
	ferryBin := buildFerry(t)
	for _, proto := range []string{"1", "2"} {
		t.Run("protocol="+proto, func(t *testing.T) { testVictoriaMetrics(t, vmBin, ferryBin, proto) })
	}
}

func testVictoriaMetrics(t *testing.T, vmBin, ferryBin, proto string) {
	vmAddr, ferryAddr := freeAddr(t), freeAddr(t)
	vmDir := filepath.Join(t.TempDir(), "vm")

	target := &stampedTarget{}
	srv := httptest.NewServer(target)
	defer srv.Close()

	vm := startVictoriaMetrics(t, vmBin, vmAddr, vmDir)
	ferry := start(t, ferryBin,
		"--remote-write.url=http://"+vmAddr+"/api/v1/write",
		"--storage.path="+filepath.Join(t.TempDir(), "data"),
		"--scrape.target=app="+srv.URL+"/metrics",
		// Short: every sample is checked exactly, and an outage needs many
		// of them on both sides; the rest are ferry's defaults.
		"--scrape.interval=500ms",
		"--external-label=site=vm-e2e",
		"--remote-write.protocol="+proto,
		"--web.listen-address="+ferryAddr,
		"--no-collector.cpu", "--no-collector.loadavg", "--no-collector.meminfo",
	)
	waitFor(t, 10*time.Second, "ferry to be ready", func() bool { return httpOK("http://" + ferryAddr + "/-/ready") })
	waitFor(t, 30*time.Second, "the first samples at the receiver", func() bool { return len(vmExport(t, vmAddr)) > 0 })

	// Outage: the receiver stops for a while and comes back on its data;
	// what ferry collected meanwhile comes from its buffer.
	time.Sleep(2 * time.Second)
	if code := vm.stop(t); code != 0 {
		t.Fatalf("victoria-metrics exited %d", code)
	}
	before := target.count()
	time.Sleep(6 * time.Second)
	if target.count()-before < 3*len(vmSeries) {
		t.Fatalf("only %d samples served during the outage", target.count()-before)
	}
	startVictoriaMetrics(t, vmBin, vmAddr, vmDir)
	time.Sleep(2 * time.Second)
	served := target.freeze()

	want := map[string]map[int64]float64{} // series -> timestamp -> value
	for _, s := range served {
		if want[s.series] == nil {
			want[s.series] = map[int64]float64{}
		}
		want[s.series][s.t] = s.v
	}
	wantLabels := map[string]string{"job": "app", "instance": strings.TrimPrefix(srv.URL, "http://"), "site": "vm-e2e"}
	key := func(m map[string]string) string {
		if k, ok := m["kind"]; ok {
			return fmt.Sprintf(`%s{kind=%q}`, m["__name__"], k)
		}
		return m["__name__"]
	}
	var rows []vmRow
	waitFor(t, 60*time.Second, "every served sample at the receiver", func() bool {
		rows = vmExport(t, vmAddr)
		n := 0
		for _, r := range rows {
			n += len(r.Timestamps)
		}
		return n >= len(served)
	})
	time.Sleep(1 * time.Second) // anything extra that was still on its way
	rows = vmExport(t, vmAddr)

	got := 0
	seen := map[string]map[int64]bool{}
	for _, r := range rows {
		k := key(r.Metric)
		for name, v := range wantLabels {
			if r.Metric[name] != v {
				t.Errorf("%s: label %s=%q, want %q (labels %v)", k, name, r.Metric[name], v, r.Metric)
			}
		}
		for name := range r.Metric {
			if _, ok := wantLabels[name]; !ok && name != "__name__" && name != "kind" {
				t.Errorf("%s: unexpected label %s (labels %v)", k, name, r.Metric)
			}
		}
		if want[k] == nil {
			t.Errorf("unexpected series %v", r.Metric)
			continue
		}
		if seen[k] == nil {
			seen[k] = map[int64]bool{}
		}
		for i, ts := range r.Timestamps {
			v := r.Values[i]
			wv, ok := want[k][ts]
			switch {
			case !ok:
				t.Errorf("%s: sample %v @%d was never served", k, v, ts)
			case v != wv:
				t.Errorf("%s @%d = %v at the receiver, served %v", k, ts, v, wv)
			case seen[k][ts]:
				t.Logf("%s @%d arrived twice (a retried request; allowed)", k, ts)
			default:
				got++
			}
			seen[k][ts] = true
		}
	}
	for k, byT := range want {
		for ts, v := range byT {
			if !seen[k][ts] {
				t.Errorf("%s: served %v @%d, missing at the receiver", k, v, ts)
			}
		}
	}
	if got != len(served) {
		t.Errorf("%d distinct samples at the receiver, served %d", got, len(served))
	}
	t.Logf("%d samples served in %d scrapes, every one at the receiver with its value and timestamp", len(served), len(served)/len(vmSeries))

	if code := ferry.stop(t); code != 0 {
		t.Errorf("ferry exited %d after SIGINT, want 0", code)
	}
	log, _ := os.ReadFile(ferry.log)
	if fellBack := strings.Contains(string(log), "does not take Remote-Write 2.0"); fellBack != (proto == "2") {
		t.Errorf("protocol %s: fell back to 1.0: %v", proto, fellBack)
	}
}
