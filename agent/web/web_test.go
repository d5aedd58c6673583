package web

import (
	"context"
	"html"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ferry-agent/ferry/collectors"
)

// fakeBackend serves a fixed snapshot and one metric.
type fakeBackend struct {
	snap  Snapshot
	ready bool
}

var upDesc = collectors.NewDesc("ferry_test_up", "A test figure.", collectors.Gauge)

func (b *fakeBackend) Collect(_ context.Context, c *collectors.Collection) error {
	c.Add(upDesc, 1)
	return nil
}
func (b *fakeBackend) Snapshot(time.Time) Snapshot { return b.snap }
func (b *fakeBackend) Ready() bool                 { return b.ready }

func serve(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec
}

func TestEndpoints(t *testing.T) {
	b := &fakeBackend{}
	h := Handler(b)
	if rec := serve(t, h, "/metrics"); rec.Code != 200 || !strings.Contains(rec.Body.String(), "ferry_test_up 1\n") ||
		!strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Errorf("/metrics: %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	if rec := serve(t, h, "/-/healthy"); rec.Code != 200 {
		t.Errorf("/-/healthy: %d", rec.Code)
	}
	if rec := serve(t, h, "/-/ready"); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("/-/ready while not ready: %d, want 503", rec.Code)
	}
	b.ready = true
	if rec := serve(t, h, "/-/ready"); rec.Code != 200 {
		t.Errorf("/-/ready while ready: %d, want 200", rec.Code)
	}
	if rec := serve(t, h, "/nothing"); rec.Code != http.StatusNotFound {
		t.Errorf("/nothing: %d, want 404", rec.Code)
	}
}

// snapshot is a device two hours behind whose last request failed, with a
// failing target and a failing host collector.
func snapshot(now time.Time) Snapshot {
	f := func(series string, v float64) Figure { return Figure{Series: series, Value: v} }
	return Snapshot{
		Version: "1.2.3", Host: "pi-<7>", Taken: now, Started: now.Add(-time.Hour), SyncInterval: time.Minute,
		Buffer: Buffer{
			UsedBytes: f("used", 3<<20), FileBytes: f("file", 4<<20), MaxBytes: f("max", 64<<20),
			Samples: f("samples", 1234), Oldest: f("oldest", float64(now.Add(-2*time.Hour).Unix())),
			BacklogAge: f("age", 7200),
		},
		Sender: &Sender{URL: "https://user:xxxxx@r/api", Sent: f("sent", 10), LastSuccess: f("ok_at", float64(now.Add(-time.Hour).Unix())),
			LastError: "400 Bad Request: <out of bounds>", LastErrorUnix: float64(now.Add(-time.Minute).Unix())},
		Clock: Clock{Held: f("held", 0), Dropped: f("dropped", 0), Jumps: []Jump{{"forward", f("fwd", 1)}, {"backward", f("bwd", 0)}}},
		Drops: []Drop{{"buffer", "full", f(`drops{reason="full"}`, 5)}},
		Sources: []Source{
			{Name: "node", LastRun: now.Add(-3 * time.Second), LastErr: "collector meminfo: no such file"},
			{Name: "app/h:1", LastRun: now.Add(-3 * time.Second), LastErr: "connection <refused>"},
			{Name: "ferry", LastRun: now.Add(-3 * time.Second)},
			{Name: "new"},
		},
		Collectors: []Collector{{"loadavg", true}, {"meminfo", false}},
	}
}

func page(t *testing.T, snap Snapshot) string {
	t.Helper()
	rec := serve(t, Handler(&fakeBackend{snap: snap}), "/")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("/: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q does not keep outside assets out", csp)
	}
	return rec.Body.String()
}

// TestStatusPageFromSnapshot: the page shows the snapshot's state, each
// figure with its series and exact value, and escapes what came from
// outside.
func TestStatusPageFromSnapshot(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	body := page(t, snapshot(now))
	for _, want := range []string{
		`id="verdict">Behind by 2h0m0s: 1234 samples wait to be sent. The last request failed`,
		`<data data-series="used" value="3.145728e+06">3.0 MiB</data>`,
		`<data data-series="drops{reason=&#34;full&#34;}" value="5">5</data>`,
		`<data data-series="fwd" value="1">1</data> forward`,
		"400 Bad Request: &lt;out of bounds&gt;",
		"connection &lt;refused&gt;",
		"user:xxxxx@r",
		`<title>ferry on pi-&lt;7&gt;</title>`,
		`class="ok">loadavg ok<`, `class="bad">meminfo failing<`,
		`>not run yet<`, `>never<`, `>3s ago<`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if !strings.Contains(html.UnescapeString(body), "samples/s") {
		t.Error("the page shows no send rate")
	}
}

func TestStatusPageVerdict(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	snap := snapshot(now)
	snap.Buffer.BacklogAge.Value = 30
	if body := page(t, snap); !strings.Contains(body, `id="verdict">Keeping up.<`) {
		t.Error("a backlog of 30 s: not keeping up")
	}
	snap = snapshot(now)
	snap.Sender.LastSuccess.Value = snap.Sender.LastErrorUnix + 1 // the error was before the last success
	if body := page(t, snap); !strings.Contains(body, `id="verdict">Behind by 2h0m0s: 1234 samples wait to be sent.<`) {
		t.Error("behind, with a success after the last error: the verdict blames the last request")
	}
	// From the first failure, the verdict says so, whatever the backlog's
	// age: a receiver refusing connections is not "keeping up".
	snap = snapshot(now)
	snap.Buffer.BacklogAge.Value, snap.Buffer.HeadSamples.Value = 20, 300
	snap.Sender.LastError = "Post \"http://r/api/v1/write\": connection refused"
	snap.Sender.FailingSince = float64(now.Add(-71 * time.Second).Unix())
	if body := page(t, snap); !strings.Contains(body, `id="verdict">The receiver fails since 2026-11-24 11:58:49 UTC (1m11s ago): Post &#34;http://r/api/v1/write&#34;: connection refused. 1534 samples wait, the oldest 20s old.<`) {
		t.Errorf("a failing receiver: the verdict does not say so:\n%s", body)
	}
	snap.Sender = nil
	body := page(t, snap)
	if !strings.Contains(body, `class="verdict behind" id="verdict">Not sending`) || !strings.Contains(body, "nothing is sent") {
		t.Error("no sender: the page does not say that nothing is sent")
	}
}

// With several remote_write endpoints the page shows each, one line each
// after the first, and the verdict names the one that fails while the
// others keep up.
func TestStatusPageSeveralEndpoints(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	f := func(series string, v float64) Figure { return Figure{Series: series, Value: v} }
	snap := snapshot(now)
	snap.Buffer.BacklogAge.Value = 20
	snap.Sender.Endpoint, snap.Sender.LastError = "central", ""
	snap.Sender.LastSuccess.Value = float64(now.Add(-time.Second).Unix())
	snap.MoreSenders = []Sender{{Endpoint: "backup", URL: "http://b/<w>", Sent: f(`sent{endpoint="backup"}`, 3),
		Failures: f(`failures{endpoint="backup"}`, 9), LastSuccess: f(`ok{endpoint="backup"}`, 0),
		LastError: "connection refused", LastErrorUnix: float64(now.Add(-5 * time.Second).Unix()),
		FailingSince: float64(now.Add(-71 * time.Second).Unix())}}
	body := page(t, snap)
	for _, want := range []string{
		`id="verdict">The receiver of endpoint backup (http://b/&lt;w&gt;) fails since 2026-11-24 11:58:49 UTC (1m11s ago): connection refused.`,
		`(endpoint <code>central</code>)`,
		`<th>endpoint backup</th>`,
		`<data data-series="failures{endpoint=&#34;backup&#34;}" value="9">9</data> failed requests`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	snap.MoreSenders[0].FailingSince = 0
	if body := page(t, snap); !strings.Contains(body, `id="verdict">Keeping up.<`) {
		t.Error("every endpoint answers and the backlog is young: not keeping up")
	}
}
