package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The interop test scrapes Debian's node_exporter and Prometheus' own
// /metrics with both Prometheus and ferry, and checks that ferry's samples,
// sent to that Prometheus by remote write, are the ones Prometheus stored
// from its own scrape: the same series with the same values.
//
// Values move between scrapes, so each target is behind a frozenTarget that
// fetches it once and serves that body to every scrape: both then store
// the same scrape.

// frozenTarget serves the body that its upstream answered to its first
// fetch, with that content type, whoever asks and whatever they accept.
type frozenTarget struct {
	srv      *httptest.Server
	upstream string // "": body is given

	mu          sync.Mutex
	body        []byte
	contentType string
}

func newFrozenTarget(t *testing.T, upstream string) *frozenTarget {
	ft := &frozenTarget{upstream: upstream}
	ft.srv = httptest.NewServer(http.HandlerFunc(ft.serve))
	t.Cleanup(ft.srv.Close)
	return ft
}

// fixedTarget serves body as contentType.
func fixedTarget(t *testing.T, contentType, body string) *frozenTarget {
	ft := newFrozenTarget(t, "")
	ft.body, ft.contentType = []byte(body), contentType
	return ft
}

func (ft *frozenTarget) addr() string { return strings.TrimPrefix(ft.srv.URL, "http://") }

func (ft *frozenTarget) serve(w http.ResponseWriter, r *http.Request) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if ft.body == nil {
		// What ferry and Prometheus ask for: OpenMetrics, else text.
		req, _ := http.NewRequest(http.MethodGet, ft.upstream, nil)
		req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			http.Error(w, fmt.Sprint(resp.Status, err), http.StatusBadGateway)
			return
		}
		ft.body, ft.contentType = body, resp.Header.Get("Content-Type")
	}
	w.Header().Set("Content-Type", ft.contentType)
	w.Write(ft.body)
}

// openMetricsBody has what a real target served here does not: neither
// node_exporter 1.5 nor Prometheus 2.42 answers in OpenMetrics.
const openMetricsBody = `# TYPE jobs counter
# HELP jobs Jobs done.
jobs_total{kind="batch"} 17
jobs_created{kind="batch"} 1.7e+09
# TYPE latency_seconds histogram
# UNIT latency_seconds seconds
latency_seconds_bucket{le="0.1"} 3
latency_seconds_bucket{le="1"} 7
latency_seconds_bucket{le="+Inf"} 8
latency_seconds_sum 4.5
latency_seconds_count 8
# TYPE rpc summary
rpc{quantile="0.5"} NaN
rpc{quantile="0.99"} 0.25
rpc_sum 12
rpc_count 40
# TYPE temperature gauge
temperature{sensor="a \"quoted\" name\\with\nnewline"} -12.5
temperature{sensor="inf"} +Inf
# TYPE build info
build_info{version="1.2.3"} 1
# TYPE mode stateset
mode{mode="on"} 1
mode{mode="off"} 0
# EOF
`

func TestInteropSameSamplesAsPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test with Debian's prometheus and node_exporter; runs without -short")
	}
	promBin := needTool(t, "prometheus")
	exporterBin := needTool(t, "prometheus-node-exporter")
	ferryBin := buildFerry(t)
	exporterAddr, promAddr, ferryAddr := freeAddr(t), freeAddr(t), freeAddr(t)

	start(t, exporterBin, "--web.listen-address="+exporterAddr, "--collector.disable-defaults",
		"--collector.cpu", "--collector.loadavg", "--collector.meminfo", "--collector.stat", "--collector.netdev")
	waitFor(t, 10*time.Second, "node_exporter to be ready", func() bool { return httpOK("http://" + exporterAddr + "/metrics") })

	targets := map[string]*frozenTarget{
		"node_exporter": newFrozenTarget(t, "http://"+exporterAddr+"/metrics"),
		"prometheus":    newFrozenTarget(t, "http://"+promAddr+"/metrics"),
		"openmetrics":   fixedTarget(t, "application/openmetrics-text; version=1.0.0; charset=utf-8", openMetricsBody),
	}
	jobs := slices.Sorted(func(yield func(string) bool) {
		for job := range targets {
			if !yield(job) {
				return
			}
		}
	})
	var scrapeConfigs strings.Builder
	for _, job := range jobs {
		fmt.Fprintf(&scrapeConfigs, "  - job_name: %s\n    static_configs:\n      - targets: [%q]\n", job, targets[job].addr())
	}

	dir := t.TempDir()
	promConfig := filepath.Join(dir, "prometheus.yml")
	writeFile(t, promConfig, "global:\n  scrape_interval: 1s\nscrape_configs:\n"+scrapeConfigs.String())
	start(t, promBin, "--config.file="+promConfig, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr, "--web.enable-remote-write-receiver")
	waitFor(t, 60*time.Second, "prometheus to be ready", func() bool { return httpOK("http://" + promAddr + "/-/ready") })

	// ferry's series differ from Prometheus' own by via="ferry". Both scrape
	// every second, so that both have the frozen scrape within seconds.
	ferryConfig := filepath.Join(dir, "ferry.yml")
	writeFile(t, ferryConfig, "global:\n  scrape_interval: 1s\n  external_labels:\n    via: ferry\nscrape_configs:\n"+
		scrapeConfigs.String()+"remote_write:\n  - url: http://"+promAddr+"/api/v1/write\n")
	start(t, ferryBin, "--config.file="+ferryConfig, "--storage.path="+filepath.Join(dir, "ferry"),
		"--web.listen-address="+ferryAddr)

	// Steady state: every target up for both, scraped at least twice
	// (scrape_series_added is 0 from the second scrape on).
	jobRe := strings.Join(jobs, "|")
	waitFor(t, 60*time.Second, "both to scrape every target twice", func() bool {
		return len(query(t, promAddr, `scrape_series_added{job=~"`+jobRe+`"} == 0`)) == 2*len(jobs)
	})

	for _, job := range jobs {
		t.Run(job, func(t *testing.T) {
			prom, ferry := map[string]string{}, map[string]string{}
			for _, s := range query(t, promAddr, `{job="`+job+`"}`) {
				if s.Metric["__name__"] == "scrape_duration_seconds" {
					continue // the time each took
				}
				into := prom
				if s.Metric["via"] == "ferry" {
					into = ferry
				}
				into[seriesKey(s.Metric)] = fmt.Sprint(s.Value[1])
			}
			if len(prom) < 5 {
				t.Fatalf("Prometheus stored %d series of %s, too few to compare", len(prom), job)
			}
			for _, name := range []string{"up", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling"} {
				k := seriesKey(map[string]string{"__name__": name, "job": job, "instance": targets[job].addr()})
				if prom[k] == "" || prom[k] != ferry[k] {
					t.Errorf("%s: Prometheus %q, ferry %q", name, prom[k], ferry[k])
				}
			}
			var missing, extra, differ []string
			for k, v := range prom {
				switch fv, ok := ferry[k]; {
				case !ok:
					missing = append(missing, k)
				case fv != v:
					differ = append(differ, fmt.Sprintf("%s: Prometheus %s, ferry %s", k, v, fv))
				}
			}
			for k := range ferry {
				if _, ok := prom[k]; !ok {
					extra = append(extra, k)
				}
			}
			for _, d := range []struct {
				what string
				list []string
			}{{"not sent by ferry", missing}, {"sent by ferry only", extra}, {"with another value", differ}} {
				if len(d.list) > 0 {
					slices.Sort(d.list)
					t.Errorf("%d of %d series %s, e.g.:\n  %s", len(d.list), len(prom), d.what, strings.Join(d.list[:min(len(d.list), 10)], "\n  "))
				}
			}
			t.Logf("%d series, %d from ferry", len(prom), len(ferry))
		})
	}
}

// seriesKey is a series' labels but via, in order, with le and quantile
// values as numbers: Prometheus before 3.0 stores them as the text format
// writes them (le="1"), 3.0 and ferry as OpenMetrics floats (le="1.0").
func seriesKey(metric map[string]string) string {
	var parts []string
	for name, value := range metric {
		if name == "via" {
			continue
		}
		if name == "le" || name == "quantile" {
			if f, err := strconv.ParseFloat(value, 64); err == nil {
				value = strconv.FormatFloat(f, 'g', -1, 64)
			}
		}
		parts = append(parts, name+"="+strconv.Quote(value))
	}
	slices.Sort(parts)
	return "{" + strings.Join(parts, ", ") + "}"
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
