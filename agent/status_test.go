package agent

import (
	"context"
	"errors"
	"html"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferry-agent/ferry/agent/config"
	"github.com/ferry-agent/ferry/agent/remotewrite"
	"github.com/ferry-agent/ferry/agent/web"
	"github.com/ferry-agent/ferry/buffer"
	"github.com/ferry-agent/ferry/collectors"
)

// The status page with the whole agent behind it: the page against
// /metrics. agent/web tests the page on snapshots made by hand.

// failingCollector stands for a scrape target that is down.
type failingCollector struct{}

func (failingCollector) Collect(context.Context, *collectors.Collection) error {
	return errors.New("connection refused")
}

// statusFixture is an agent in a state worth looking at: a backlog two hours
// old, drops in the buffer and at the receiver, a receiver that rejected a
// request and then took the next, a host collector and a target failing.
// Nothing runs in the background, so every figure but the backlog age stays
// put while the test compares.
//
// It also returns the history fed to the status page's plots: the last
// hour of an outage, a backlog growing and its age with it, then sending
// as the link comes back.
func statusFixture(t *testing.T) (*httptest.Server, []web.Point) {
	t.Helper()
	var requests atomic.Int32
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if requests.Add(1) == 1 {
			http.Error(w, "out of bounds: sample too old", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(receiver.Close)

	procfs := t.TempDir() // loadavg can be read, meminfo cannot
	if err := os.WriteFile(filepath.Join(procfs, "loadavg"), []byte("0.42 0.33 0.25 1/123 4567\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.DefaultConfig()
	cfg.Version = "1.2.3-test"
	cfg.Collectors = map[string]bool{"loadavg": true, "meminfo": true}
	cfg.Paths.ProcFS = procfs
	cfg.RemoteWrite.URL = receiver.URL + "/api/v1/write"
	cfg.RemoteWrite.MaxSamplesPerSend = 1 // a request per block
	cfg.RemoteWriteName = "central"       // the endpoint label
	buf, err := buffer.Open(buffer.Options{Dir: t.TempDir(), MaxSize: cfg.StorageMaxSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { buf.Close() })
	a := &Agent{cfg: cfg, log: slog.New(slog.DiscardHandler), buf: buf, started: time.Now().Add(-time.Hour)}
	if a.sender, err = newSenders(cfg, buf, a.log); err != nil {
		t.Fatal(err)
	}
	// Two blocks: the receiver rejects the first and takes the second.
	now := time.Now()
	var fed []web.Point
	for i := range 50 {
		at := now.Add(time.Duration(i-55) * time.Minute)
		p := web.Point{Unix: float64(at.UnixMilli()) / 1000, Waiting: float64(200 * i), Age: float64(60 * i)}
		if i >= 40 { // the link is back: draining at 20 samples/s
			p.Waiting, p.Age, p.Sent = float64(200*40-1000*(i-40)), float64(60*(40-(i-40))), float64(1200*(i-40))
		}
		a.history.Observe(at, p)
		fed = append(fed, p)
	}
	m := labels.FromStrings("__name__", "m")
	for i := range 2 {
		buf.Append(m, now.Add(-3*time.Hour).UnixMilli()+int64(i), 1)
		if err := buf.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.sender.all[0].Run(ctx); close(done) }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if st := a.sender.all[0].Stats(); st.SamplesSent > 0 && st.Dropped[remotewrite.ReasonRejected] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sender did not deliver: %+v", a.sender.all[0].Stats())
		}
	}
	stop()
	<-done

	sources, berr := a.buildSources(a.cfg)
	if berr != nil {
		t.Fatal(berr)
	}
	a.sources = append(sources, newSource("app/127.0.0.1:9", "app", "127.0.0.1:9", failingCollector{}))
	for _, s := range a.sources {
		a.collectOnce(context.Background(), s)
	}

	// The backlog: what the sources collected, samples from two hours ago,
	// and two the buffer drops.
	old := now.Add(-2 * time.Hour).UnixMilli()
	for i := range 10 {
		buf.Append(labels.FromStrings("__name__", "w", "i", strconv.Itoa(i)), old, float64(i))
	}
	buf.Append(labels.FromStrings("__name__", "w", "i", "0"), old-1, 0) // out of order
	buf.Append(labels.EmptyLabels(), old, 0)                            // invalid
	if err := buf.Commit(); err != nil {
		t.Fatal(err)
	}
	buf.Append(m, now.UnixMilli(), 2) // one not yet on disk

	srv := httptest.NewServer(a.handler())
	t.Cleanup(srv.Close)
	return srv, fed
}

// plotLine is a plot's polyline, as the server writes it and as Chromium
// serializes it.
var plotLine = regexp.MustCompile(`<svg id="(plot-[a-z]+)"[^>]* data-top="([^"]*)"[^>]*>[\s\S]*?<polyline [^>]*points="([^"]*)" data-times="([^"]*)" data-values="([^"]*)"`)

// checkPlots: the page plots the history fed to it, each point where its
// value puts it; the send rate is that between the points.
func checkPlots(t *testing.T, page string, fed []web.Point) {
	t.Helper()
	want := map[string][]float64{}
	for i, p := range fed {
		want["plot-waiting"] = append(want["plot-waiting"], p.Waiting)
		want["plot-age"] = append(want["plot-age"], p.Age)
		if i > 0 {
			want["plot-rate"] = append(want["plot-rate"], (p.Sent-fed[i-1].Sent)/(p.Unix-fed[i-1].Unix))
		}
	}
	found := 0
	for _, m := range plotLine.FindAllStringSubmatch(page, -1) {
		found++
		top, _ := strconv.ParseFloat(m[2], 64)
		values, pts := strings.Fields(m[5]), strings.Fields(m[3])
		w := want[m[1]]
		if len(values) < len(w) || len(pts) != len(values) || top <= 0 {
			t.Errorf("%s: %d values, %d points, top %v; want at least the %d fed", m[1], len(values), len(pts), top, len(w))
			continue
		}
		for i, v := range w {
			got, err := strconv.ParseFloat(values[i], 64)
			if err != nil || math.Abs(got-v) > 1e-9 {
				t.Errorf("%s point %d: value %s, want %v", m[1], i, values[i], v)
				continue
			}
			_, ys, _ := strings.Cut(pts[i], ",")
			y, _ := strconv.ParseFloat(ys, 64)
			if wantY := 86 - v/top*72; math.Abs(y-wantY) > 0.06 {
				t.Errorf("%s point %d: drawn at y %v, want %v for %v of %v", m[1], i, y, wantY, v, top)
			}
		}
	}
	if found != 3 {
		t.Errorf("%d plots on the page, want samples waiting, backlog age and send rate", found)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return string(body)
}

// metricValues reads /metrics: series as written there, to value.
func metricValues(t *testing.T, body string) map[string]float64 {
	t.Helper()
	values := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
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

// Attributes as the server writes them or as Chromium serializes the DOM.
var dataElement = regexp.MustCompile(`<data data-series="([^"]*)" value="([^"]*)">([^<]*)</data>`)

// checkStatusPage compares the figures on the page with /metrics read
// before and after it, and the text shown for each with its exact value.
func checkStatusPage(t *testing.T, page string, before, after map[string]float64) {
	t.Helper()
	shown := map[string]bool{}
	for _, m := range dataElement.FindAllStringSubmatch(page, -1) {
		series, raw, text := html.UnescapeString(m[1]), m[2], html.UnescapeString(m[3])
		shown[series] = true
		v, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			t.Errorf("%s: value %q: %v", series, raw, err)
			continue
		}
		lo, ok1 := before[series]
		hi, ok2 := after[series]
		if !ok1 || !ok2 {
			t.Errorf("the page shows %s, which /metrics does not have", series)
			continue
		}
		if v < lo || v > hi {
			t.Errorf("%s: the page shows %v, /metrics %v before and %v after", series, v, lo, hi)
		}
		checkFigureText(t, series, v, text)
	}
	for _, want := range []string{
		"ferry_buffer_used_bytes", "ferry_buffer_bytes", "ferry_buffer_max_bytes",
		"ferry_buffer_samples", "ferry_buffer_head_samples",
		"ferry_buffer_oldest_timestamp_seconds", "ferry_buffer_newest_timestamp_seconds",
		"ferry_buffer_backlog_age_seconds",
		`ferry_remote_write_samples_sent_total{endpoint="central"}`, `ferry_remote_write_bytes_sent_total{endpoint="central"}`,
		`ferry_remote_write_last_success_timestamp_seconds{endpoint="central"}`, `ferry_remote_write_failures_total{endpoint="central"}`,
		`ferry_buffer_dropped_samples_total{reason="full"}`, `ferry_buffer_dropped_samples_total{reason="out_of_order"}`,
		`ferry_buffer_dropped_samples_total{reason="invalid"}`, `ferry_remote_write_dropped_samples_total{endpoint="central",reason="rejected"}`,
		`ferry_remote_write_dropped_samples_total{endpoint="central",reason="too_old"}`, `ferry_remote_write_dropped_samples_total{endpoint="central",reason="full"}`,
		`ferry_samples_appended_total{source="node"}`, `ferry_collect_errors_total{source="app/127.0.0.1:9"}`,
	} {
		if !shown[want] {
			t.Errorf("the page does not show %s", want)
		}
	}

	// The fixture's figures, as /metrics has them: the page shows what
	// happened, not only the same numbers.
	collected := after[`ferry_samples_appended_total{source="node"}`] + after[`ferry_samples_appended_total{source="ferry"}`]
	if collected == 0 {
		t.Error("/metrics: the sources appended nothing")
	}
	for series, want := range map[string]float64{
		"ferry_buffer_samples": 10 + collected,
		`ferry_buffer_dropped_samples_total{reason="out_of_order"}`:                      1,
		`ferry_buffer_dropped_samples_total{reason="invalid"}`:                           1,
		`ferry_remote_write_dropped_samples_total{endpoint="central",reason="rejected"}`: 1,
		`ferry_remote_write_samples_sent_total{endpoint="central"}`:                      1,
		`ferry_collect_errors_total{source="app/127.0.0.1:9"}`:                           1,
	} {
		if after[series] != want {
			t.Errorf("/metrics: %s = %v, want %v", series, after[series], want)
		}
	}
	for _, want := range []string{
		`id="verdict">Behind by 2h0m`,                    // the backlog is two hours old
		"400 Bad Request: out of bounds: sample too old", // the receiver's answer
		"connection refused",                             // the target's error
		">meminfo failing<", ">loadavg ok<",
		`<title>ferry on `,
	} {
		if !strings.Contains(html.UnescapeString(page), want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

// checkFigureText reads the text shown for a figure back and compares it
// with the figure's exact value.
func checkFigureText(t *testing.T, series string, v float64, text string) {
	t.Helper()
	name, _, _ := strings.Cut(series, "{")
	switch {
	case strings.HasSuffix(name, "_bytes") || strings.HasSuffix(name, "_bytes_sent_total"):
		num, unit, _ := strings.Cut(text, " ")
		n, err := strconv.ParseFloat(num, 64)
		scale := map[string]float64{"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[unit]
		if err != nil || scale == 0 || n*scale > v+0.05*scale || n*scale < v-0.05*scale {
			t.Errorf("%s: %q for %v bytes", series, text, v)
		}
	case strings.HasSuffix(name, "_timestamp_seconds"):
		if v == 0 {
			if text != "none" {
				t.Errorf("%s: %q for 0", series, text)
			}
			return
		}
		ts, err := time.Parse("2006-01-02 15:04:05 MST", text)
		if err != nil || ts.Unix() != int64(v) {
			t.Errorf("%s: %q for %v (%v)", series, text, time.Unix(int64(v), 0).UTC(), err)
		}
	case strings.HasSuffix(name, "_age_seconds"):
		d, err := time.ParseDuration(text)
		if err != nil || d.Seconds() < v-0.5 || d.Seconds() > v+0.5 {
			t.Errorf("%s: %q for %v s (%v)", series, text, v, err)
		}
	default:
		if text != strconv.FormatFloat(v, 'f', -1, 64) {
			t.Errorf("%s: %q for %v", series, text, v)
		}
	}
}

// TestStatusPage: "/" shows the figures of /metrics, each in words that
// match its value, with what went wrong and where.
func TestStatusPage(t *testing.T) {
	srv, fed := statusFixture(t)
	before := metricValues(t, get(t, srv.URL+"/metrics"))
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	after := metricValues(t, get(t, srv.URL+"/metrics"))
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q does not keep outside assets out", csp)
	}
	checkStatusPage(t, string(page), before, after)
	checkPlots(t, string(page), fed)

	// Only "/" is the page; other paths are not found.
	if resp, err := http.Get(srv.URL + "/nothing"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nothing: %v %v, want 404", resp.Status, err)
	}
}

// TestStatusPageInChromium loads "/" in a real browser, headless Chromium
// (Debian's chromium), and checks the page it made against /metrics.
// STATUS_SCREENSHOT=FILE keeps a screenshot (the README's).
func TestStatusPageInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Chromium; not with -short")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed (scripts/test-deps.sh installs it)")
		}
		t.Skip("chromium is not installed; run scripts/test-deps.sh")
	}
	srv, fed := statusFixture(t)
	browse := func(args ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + t.TempDir()}, args...)
		cmd := exec.CommandContext(ctx, chromium, append(args, srv.URL+"/")...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium: %v\n%s", err, stderr.String())
		}
		return out
	}

	before := metricValues(t, get(t, srv.URL+"/metrics"))
	dom := browse("--dump-dom")
	after := metricValues(t, get(t, srv.URL+"/metrics"))
	checkStatusPage(t, string(dom), before, after)
	checkPlots(t, string(dom), fed)

	shot := filepath.Join(t.TempDir(), "status.png")
	if keep := os.Getenv("STATUS_SCREENSHOT"); keep != "" {
		shot, _ = filepath.Abs(keep)
	}
	browse("--screenshot="+shot, "--window-size=1000,1400", "--hide-scrollbars")
	png, err := os.ReadFile(shot)
	if err != nil || len(png) < 1000 || string(png[1:4]) != "PNG" {
		t.Fatalf("no screenshot from chromium: %d bytes, %v", len(png), err)
	}
}
