package main

import (
	"bufio"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Two remote_write endpoints from one buffer: the real ferry binary sends to
// Debian's prometheus and to victoria-metrics at once; Prometheus is down
// for a while. VictoriaMetrics must keep receiving meanwhile, and once
// Prometheus is back each must hold every sample the target served, with
// its value and millisecond timestamp, and each endpoint's own write
// relabeling.
func TestEndToEndTwoRemoteWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; runs without -short")
	}
	promBin := needTool(t, "prometheus")
	vmBin := needTool(t, "victoria-metrics")
	ferryBin := buildFerry(t)
	promAddr, vmAddr, ferryAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	promDir, vmDir := t.TempDir(), filepath.Join(t.TempDir(), "vm")

	target := &stampedTarget{}
	srv := httptest.NewServer(target)
	defer srv.Close()

	prom := startPrometheus(t, promBin, promAddr, promDir)
	startVictoriaMetrics(t, vmBin, vmAddr, vmDir)
	cfgPath := filepath.Join(t.TempDir(), "ferry.yml")
	writeFile(t, cfgPath, fmt.Sprintf(`remote_write:
  - url: http://%s/api/v1/write
    name: prom
  - url: http://%s/api/v1/write
    name: vm
    write_relabel_configs:
      - {target_label: receiver, replacement: vm}
`, promAddr, vmAddr))
	args := []string{
		"--config.file=" + cfgPath,
		"--storage.path=" + filepath.Join(t.TempDir(), "data"),
		"--scrape.target=app=" + srv.URL + "/metrics",
		// Short: every sample is checked exactly at both receivers, and
		// the outage needs many of them; the rest are ferry's defaults.
		"--scrape.interval=500ms",
		"--external-label=site=multi-e2e",
		"--web.listen-address=" + ferryAddr,
		"--no-collector.cpu", "--no-collector.loadavg", "--no-collector.meminfo",
	}
	ferry := start(t, ferryBin, args...)
	waitFor(t, 10*time.Second, "ferry to be ready", func() bool { return httpOK("http://" + ferryAddr + "/-/ready") })
	waitFor(t, 30*time.Second, "the first samples at both receivers", func() bool {
		return len(vmExport(t, vmAddr)) > 0 && len(query(t, promAddr, `ferry_e2e_total`)) > 0
	})

	// Prometheus goes down. VictoriaMetrics must keep getting what is
	// collected from then on, while Prometheus' share waits in ferry.
	if code := prom.stop(t); code != 0 {
		t.Fatalf("prometheus exited %d", code)
	}
	target.mu.Lock()
	downAt := target.lastT
	target.mu.Unlock()
	waitFor(t, 30*time.Second, "samples collected during the outage at victoria-metrics", func() bool {
		for _, r := range vmExport(t, vmAddr) {
			for _, ts := range r.Timestamps {
				if ts > downAt {
					return true
				}
			}
		}
		return false
	})
	before := target.count()
	// Down for a while: more than one backoff cycle of the sender, and
	// many collections that only one receiver has.
	time.Sleep(5 * time.Second)
	// ferry restarts meanwhile (an update): what Prometheus lacks is
	// committed to the buffer, and after the restart VictoriaMetrics gets
	// new collections ahead of that backlog, which waits for Prometheus.
	if code := ferry.stop(t); code != 0 {
		t.Fatalf("ferry exited %d after SIGINT, want 0", code)
	}
	ferry = start(t, ferryBin, args...)
	waitFor(t, 10*time.Second, "ferry to be ready again", func() bool { return httpOK("http://" + ferryAddr + "/-/ready") })
	target.mu.Lock()
	restartAt := target.lastT
	target.mu.Unlock()
	waitFor(t, 30*time.Second, "samples collected after the restart at victoria-metrics", func() bool {
		for _, r := range vmExport(t, vmAddr) {
			for _, ts := range r.Timestamps {
				if ts > restartAt {
					return true
				}
			}
		}
		return false
	})
	if m := ferryMetrics(t, ferryAddr); m["ferry_buffer_samples"] == 0 {
		t.Error("no samples in the buffer after the restart: what prometheus lacks must be kept for it")
	}
	time.Sleep(5 * time.Second)
	if n := target.count() - before; n < 10*len(vmSeries) {
		t.Fatalf("only %d samples served during the outage", n)
	}
	startPrometheus(t, promBin, promAddr, promDir)
	time.Sleep(2 * time.Second)
	served := target.freeze()

	want := map[string]map[int64]float64{} // series -> timestamp -> value
	for _, s := range served {
		if want[s.series] == nil {
			want[s.series] = map[int64]float64{}
		}
		want[s.series][s.t] = s.v
	}
	key := func(m map[string]string) string {
		if k, ok := m["kind"]; ok {
			return fmt.Sprintf(`%s{kind=%q}`, m["__name__"], k)
		}
		return m["__name__"]
	}
	instance := strings.TrimPrefix(srv.URL, "http://")
	// got: series -> timestamp -> value, from each receiver's API.
	fromVM := func() map[string]map[int64]float64 {
		got := map[string]map[int64]float64{}
		for _, r := range vmExport(t, vmAddr) {
			if r.Metric["receiver"] != "vm" || r.Metric["site"] != "multi-e2e" || r.Metric["instance"] != instance {
				t.Fatalf("victoria-metrics: labels %v, want receiver=vm (its write relabeling), site, instance", r.Metric)
			}
			k := key(r.Metric)
			if got[k] == nil {
				got[k] = map[int64]float64{}
			}
			for i, ts := range r.Timestamps {
				got[k][ts] = r.Values[i]
			}
		}
		return got
	}
	fromProm := func() map[string]map[int64]float64 {
		got := map[string]map[int64]float64{}
		for _, r := range query(t, promAddr, `{__name__=~"ferry_e2e_.*"}[1h]`) {
			if _, ok := r.Metric["receiver"]; ok || r.Metric["site"] != "multi-e2e" || r.Metric["instance"] != instance {
				t.Fatalf("prometheus: labels %v, want site and instance, and not the other endpoint's relabeling", r.Metric)
			}
			k := key(r.Metric)
			if got[k] == nil {
				got[k] = map[int64]float64{}
			}
			for _, v := range r.Values {
				ts := int64(math.Round(sampleValue(t, v[0]) * 1000))
				got[k][ts] = sampleValue(t, v[1])
			}
		}
		return got
	}
	complete := func(got map[string]map[int64]float64) int {
		n := 0
		for k, byT := range want {
			for ts := range byT {
				if _, ok := got[k][ts]; ok {
					n++
				}
			}
		}
		return n
	}
	for _, rc := range []struct {
		name string
		read func() map[string]map[int64]float64
	}{{"victoria-metrics", fromVM}, {"prometheus", fromProm}} {
		var got map[string]map[int64]float64
		waitFor(t, 90*time.Second, "every served sample at "+rc.name, func() bool {
			got = rc.read()
			return complete(got) == len(served)
		})
		for k, byT := range got {
			for ts, v := range byT {
				wv, ok := want[k][ts]
				switch {
				case !ok:
					t.Errorf("%s: %s = %v @%d was never served", rc.name, k, v, ts)
				case v != wv:
					t.Errorf("%s: %s @%d = %v, served %v", rc.name, k, ts, v, wv)
				}
			}
		}
		t.Logf("%s: all %d samples served in %d scrapes, with their values and timestamps", rc.name, len(served), len(served)/len(vmSeries))
	}

	// ferry's own account, per endpoint: Prometheus' requests failed and
	// were retried, VictoriaMetrics' did not; nothing was dropped.
	m := ferryMetrics(t, ferryAddr)
	if m[`ferry_remote_write_failures_total{endpoint="prom"}`] == 0 {
		t.Error(`ferry_remote_write_failures_total{endpoint="prom"} is 0 although prometheus was down`)
	}
	if v := m[`ferry_remote_write_failures_total{endpoint="vm"}`]; v != 0 {
		t.Errorf(`ferry_remote_write_failures_total{endpoint="vm"} = %v; the outage of the other endpoint must not touch it`, v)
	}
	for _, ep := range []string{"prom", "vm"} {
		if m[fmt.Sprintf(`ferry_remote_write_samples_sent_total{endpoint=%q}`, ep)] < float64(len(served)) {
			t.Errorf("endpoint %s: %v samples sent; the target alone served %d", ep, m[fmt.Sprintf(`ferry_remote_write_samples_sent_total{endpoint=%q}`, ep)], len(served))
		}
		for _, r := range []string{"full", "rejected", "too_old"} {
			if v := m[fmt.Sprintf(`ferry_remote_write_dropped_samples_total{endpoint=%q,reason=%q}`, ep, r)]; v != 0 {
				t.Errorf("endpoint %s: %v samples dropped (%s)", ep, v, r)
			}
		}
	}
	if code := ferry.stop(t); code != 0 {
		t.Errorf("ferry exited %d after SIGINT, want 0", code)
	}
	if log, _ := os.ReadFile(ferry.log); !strings.Contains(string(log), `endpoint=prom`) {
		t.Errorf("ferry's log names no endpoint:\n%s", tail(string(log), 20))
	}
}

// sumMetric adds up the series of metric name in m (ferryMetrics') that
// have every label pair in pairs (each as written there: reason="rejected").
func sumMetric(m map[string]float64, name string, pairs ...string) (sum float64) {
	for k, v := range m {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		all := true
		for _, p := range pairs {
			all = all && strings.Contains(k, p)
		}
		if all {
			sum += v
		}
	}
	return sum
}

// ferryMetrics reads ferry's /metrics: each series as written there, to
// its value.
func ferryMetrics(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("ferry's /metrics: %v", err)
	}
	defer resp.Body.Close()
	values := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		values[line[:i]] = v
	}
	return values
}
