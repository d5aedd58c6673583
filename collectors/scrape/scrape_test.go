package scrape

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferry-agent/ferry/collectors"
	"github.com/ferry-agent/ferry/collectors/exposition"
)

const (
	promContentType = "text/plain; version=0.0.4; charset=utf-8"
	omContentType   = "application/openmetrics-text; version=1.0.0; charset=utf-8"
)

func sample(t int64, v float64, kv ...string) collectors.Sample {
	return collectors.Sample{Labels: labels.FromStrings(kv...), T: t, V: v}
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameSamples compares samples in order; NaN equals NaN.
func sameSamples(t *testing.T, got, want []collectors.Sample) {
	t.Helper()
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			t.Errorf("missing sample %d: %v", i, want[i])
		case i >= len(want):
			t.Errorf("unexpected sample %d: %v", i, got[i])
		case !labels.Equal(got[i].Labels, want[i].Labels) || got[i].T != want[i].T ||
			!(got[i].V == want[i].V || math.IsNaN(got[i].V) && math.IsNaN(want[i].V)):
			t.Errorf("sample %d:\n got  %s t=%d v=%v\n want %s t=%d v=%v", i,
				got[i].Labels, got[i].T, got[i].V, want[i].Labels, want[i].T, want[i].V)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		file, contentType string
		want              []collectors.Sample
		families          []string // of each sample ("" for none): the Desc's name, type and help
	}{
		{
			file: "prometheus.txt", contentType: promContentType,
			families: []string{
				"http_requests_total counter Requests handled.", "http_requests_total counter Requests handled.",
				"board_temperature_celsius gauge Board temperature.", "board_temperature_celsius gauge Board temperature.",
				"rpc_duration_seconds summary RPC latency.", "rpc_duration_seconds summary RPC latency.",
				"rpc_duration_seconds summary RPC latency.", "rpc_duration_seconds summary RPC latency.",
				"request_size_bytes histogram Request sizes.", "request_size_bytes histogram Request sizes.",
				"request_size_bytes histogram Request sizes.", "request_size_bytes histogram Request sizes.",
				"request_size_bytes histogram Request sizes.",
				// After another family's lines, samples of no HELP or TYPE of their own have none.
				"", "",
			},
			want: []collectors.Sample{
				sample(1395066363000, 1027, "__name__", "http_requests_total", "method", "get", "code", "200"),
				sample(1395066363000, 3, "__name__", "http_requests_total", "method", "post", "code", "400"),
				sample(0, 48.5, "__name__", "board_temperature_celsius", "sensor", "soc"),
				sample(0, -32.5, "__name__", "board_temperature_celsius", "sensor", "pmic"),
				sample(0, 0.05, "__name__", "rpc_duration_seconds", "quantile", "0.5"),
				sample(0, 0.2, "__name__", "rpc_duration_seconds", "quantile", "0.99"),
				sample(0, 17.5, "__name__", "rpc_duration_seconds_sum"),
				sample(0, 250, "__name__", "rpc_duration_seconds_count"),
				// le values are normalised to OpenMetrics floats, as Prometheus stores them.
				sample(0, 5, "__name__", "request_size_bytes_bucket", "le", "100.0"),
				sample(0, 9, "__name__", "request_size_bytes_bucket", "le", "1000.0"),
				sample(0, 10, "__name__", "request_size_bytes_bucket", "le", "+Inf"),
				sample(0, 3200, "__name__", "request_size_bytes_sum"),
				sample(0, 10, "__name__", "request_size_bytes_count"),
				sample(0, 1, "__name__", "untyped_metric"),
				sample(0, math.Inf(1), "__name__", "escaped", "path", `C:\dir\`, "msg", "say \"hi\"\n"),
			},
		},
		{
			file: "openmetrics.txt", contentType: omContentType,
			families: []string{
				"http_requests counter Requests handled.", "http_requests counter Requests handled.",
				"board_temperature_celsius gauge Board temperature. celsius",
				"rpc_duration_seconds summary ", "rpc_duration_seconds summary ", "rpc_duration_seconds summary ",
				"request_size_bytes histogram ", "request_size_bytes histogram ", "request_size_bytes histogram ", "request_size_bytes histogram ",
				"build info ",
			},
			want: []collectors.Sample{
				// OpenMetrics timestamps are seconds; samples carry milliseconds.
				sample(1520879607789, 1027, "__name__", "http_requests_total", "method", "get", "code", "200"),
				sample(0, 3, "__name__", "http_requests_total", "method", "post", "code", "400"),
				sample(0, 48.5, "__name__", "board_temperature_celsius", "sensor", "soc"),
				sample(0, 0.05, "__name__", "rpc_duration_seconds", "quantile", "0.5"),
				sample(0, 17.5, "__name__", "rpc_duration_seconds_sum"),
				sample(0, 250, "__name__", "rpc_duration_seconds_count"),
				sample(0, 5, "__name__", "request_size_bytes_bucket", "le", "100.0"),
				sample(0, 10, "__name__", "request_size_bytes_bucket", "le", "+Inf"),
				sample(0, 3200, "__name__", "request_size_bytes_sum"),
				sample(0, 10, "__name__", "request_size_bytes_count"),
				sample(0, 1, "__name__", "build_info", "version", "1.2.3"),
			},
		},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var c collectors.Collection
			if err := Parse(readFixture(t, tc.file), tc.contentType, Limits{Samples: 1000}, &c); err != nil {
				t.Fatalf("Parse: %v", err)
			}
			sameSamples(t, c.Samples, tc.want)
			var families []*collectors.Desc
			for i, s := range c.Samples {
				got := ""
				if d := s.Desc; d != nil {
					got = strings.TrimRight(d.Name+" "+string(d.Type)+" "+d.Help+" "+d.Unit, " ")
					if len(families) == 0 || families[len(families)-1] != d {
						families = append(families, d)
					}
				}
				if i < len(tc.families) && got != strings.TrimRight(tc.families[i], " ") {
					t.Errorf("sample %d %s: family %q, want %q", i, s.Labels, got, tc.families[i])
				}
			}
			// Collection.Families lists each family once, in order.
			if fmt.Sprint(c.Families) != fmt.Sprint(families) {
				t.Errorf("Families = %v, want %v", c.Families, families)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	prom := readFixture(t, "prometheus.txt")
	om := readFixture(t, "openmetrics.txt")
	for _, tc := range []struct {
		name, contentType string
		body              []byte
		limit             int
		wantErr           string // empty: no error
	}{
		{"limit exactly met", promContentType, prom, 15, ""},
		{"limit exceeded", promContentType, prom, 14, "limit of 14 samples"},
		{"limit exceeded openmetrics", omContentType, om, 3, "limit of 3 samples"},
		{"no content type falls back to text", "", prom, 1000, ""},
		{"openmetrics without EOF", omContentType, bytes.ReplaceAll(om, []byte("# EOF\n"), nil), 1000, "parsing"},
		{"garbage", promContentType, []byte("{{{ this is not metrics\n"), 1000, "parsing"},
		{"bad value", promContentType, []byte("metric_a 1\nmetric_b one\n"), 1000, "parsing"},
		{"empty body", promContentType, nil, 1000, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c collectors.Collection
			err := Parse(tc.body, tc.contentType, Limits{Samples: tc.limit}, &c)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Parse: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Errorf("Parse gave no error, want one containing %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Errorf("Parse: %v, want an error containing %q", err, tc.wantErr)
			}
			if len(c.Samples) > tc.limit {
				t.Errorf("%d samples added, more than the limit of %d", len(c.Samples), tc.limit)
			}
		})
	}
}

// target serves one answer per request and records the requests' headers.
type target struct {
	srv   *httptest.Server
	mu    sync.Mutex
	heads []http.Header
}

func newTarget(t *testing.T, h http.HandlerFunc) *target {
	tg := &target{}
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tg.mu.Lock()
		tg.heads = append(tg.heads, r.Header.Clone())
		tg.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

func (tg *target) scraper(t *testing.T, limits Limits) *Scraper {
	t.Helper()
	u, err := url.Parse(tg.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return mustNew(t, Target{URL: u, Limits: limits})
}

func mustNew(t *testing.T, tg Target) *Scraper {
	t.Helper()
	s, err := New(tg, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func serveBody(contentType string, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Write(body)
	}
}

func serveGzip(contentType string, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			serveBody(contentType, body)(w, r)
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		zw.Write(body)
		zw.Close()
	}
}

func TestCollect(t *testing.T) {
	prom := readFixture(t, "prometheus.txt")
	om := readFixture(t, "openmetrics.txt")
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		want    int // samples parsed
	}{
		{"text", serveBody(promContentType, prom), 15},
		{"openmetrics", serveBody(omContentType, om), 11},
		{"gzip text", serveGzip(promContentType, prom), 15},
		{"gzip openmetrics", serveGzip(omContentType, om), 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := newTarget(t, tc.handler)
			var c collectors.Collection
			if err := tg.scraper(t, DefaultLimits).Collect(context.Background(), &c); err != nil {
				t.Fatalf("Collect: %v", err)
			}
			if len(c.Samples) != tc.want {
				t.Errorf("%d samples, want %d", len(c.Samples), tc.want)
			}
		})
	}
}

func TestCollectAcceptHeader(t *testing.T) {
	tg := newTarget(t, serveBody(promContentType, []byte("a 1\n")))
	var c collectors.Collection
	if err := tg.scraper(t, DefaultLimits).Collect(context.Background(), &c); err != nil {
		t.Fatal(err)
	}
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if len(tg.heads) != 1 {
		t.Fatalf("%d requests, want 1", len(tg.heads))
	}
	q := map[string]float64{}
	for _, part := range strings.Split(tg.heads[0].Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(part)
		if err != nil {
			t.Fatalf("Accept %q: %v", part, err)
		}
		q[mt] = 1
		if s, ok := params["q"]; ok {
			if q[mt], err = strconv.ParseFloat(s, 64); err != nil {
				t.Fatalf("Accept %q: q: %v", part, err)
			}
		}
	}
	om, text := q["application/openmetrics-text"], q["text/plain"]
	if om == 0 || text == 0 || om <= text {
		t.Errorf("Accept %q: want OpenMetrics and text, OpenMetrics preferred", tg.heads[0].Get("Accept"))
	}
	if _, ok := q["application/vnd.google.protobuf"]; ok {
		t.Errorf("Accept %q asks for protobuf, which ferry does not fully parse", tg.heads[0].Get("Accept"))
	}
}

func TestCollectFailures(t *testing.T) {
	prom := readFixture(t, "prometheus.txt")
	big := bytes.Repeat([]byte("some_metric_with_a_long_name 1\n"), 100) // 3100 bytes
	limits := Limits{BodyBytes: 1000, Samples: 100}
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		wantErr string
	}{
		{"server error", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", promContentType)
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte("a 1\n")) // a body that would parse must not count
		}, "500"},
		{"not found", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, "404"},
		{"body over the limit", serveBody(promContentType, big), "limit of 1000 bytes"},
		{"gzip body over the limit once inflated", serveGzip(promContentType, big), "limit of 1000 bytes"},
		{"too many samples", serveBody(promContentType, bytes.Repeat([]byte("m 1\n"), 101)), "limit of 100 samples"},
		{"garbage", serveBody(promContentType, []byte("a 1\nb 2\n{{{ garbage\n")), "pars"},
		{"openmetrics without EOF", serveBody(omContentType, []byte("# TYPE a gauge\na 1\n")), "pars"},
		{"good samples then garbage", serveBody(promContentType, append(bytes.Clone(prom[:200]), "\n{{{ garbage\n"...)), "pars"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := newTarget(t, tc.handler)
			var c collectors.Collection
			err := tg.scraper(t, limits).Collect(context.Background(), &c)
			if err == nil {
				t.Fatal("Collect gave no error")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Collect: %v, want an error containing %q", err, tc.wantErr)
			}
			if len(c.Samples) != 0 {
				t.Errorf("%d samples from a failed scrape, want none, e.g. %s", len(c.Samples), c.Samples[0].Labels)
			}
		})
	}
}

func TestCollectUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	u, _ := url.Parse(srv.URL + "/metrics")
	srv.Close() // nothing listens there any more
	var c collectors.Collection
	if err := mustNew(t, Target{URL: u, Limits: DefaultLimits}).Collect(context.Background(), &c); err == nil {
		t.Fatal("Collect gave no error for a closed port")
	}
	if len(c.Samples) != 0 {
		t.Errorf("%d samples, want none", len(c.Samples))
	}
}

func TestCollectRedactsPassword(t *testing.T) {
	tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusInternalServerError) })
	u, _ := url.Parse(tg.srv.URL + "/metrics")
	u.User = url.UserPassword("ferry", "s3cret")
	var c collectors.Collection
	err := mustNew(t, Target{URL: u, Limits: DefaultLimits}).Collect(context.Background(), &c)
	if err == nil {
		t.Fatal("Collect gave no error")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %q shows the target's password", err)
	}
}

// FuzzParse: a scrape target's body is outside input; parsing must return
// samples or an error within the limit, never panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte("# TYPE a counter\na_total{x=\"1\"} 3 1700000000000\n"), "text/plain; version=0.0.4")
	f.Add([]byte("# TYPE a counter\na_total 3 1700000000.5\n# EOF\n"), "application/openmetrics-text; version=1.0.0")
	f.Add([]byte("a{b=\"\\\"\"} NaN\n"), "")
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		var c collectors.Collection
		_ = Parse(body, contentType, Limits{Samples: 1000}, &c)
		if len(c.Samples) > 1000 {
			t.Fatalf("%d samples past the limit of 1000", len(c.Samples))
		}
	})
}

func TestParseRefusesDuplicateLabelNames(t *testing.T) {
	for _, body := range []string{"foo{a=\"1\",a=\"2\"} 1\n", "foo{__name__=\"bar\"} 1\n"} {
		var c collectors.Collection
		if err := Parse([]byte(body), "text/plain", Limits{Samples: 100}, &c); err == nil || !strings.Contains(err.Error(), "not unique") {
			t.Errorf("%q: err %v, want a duplicate label error", body, err)
		}
	}
}

func TestParseDropsLabelsWithEmptyValues(t *testing.T) {
	var c collectors.Collection
	if err := Parse([]byte("foo{a=\"\",b=\"x\"} 1\n"), "text/plain", Limits{Samples: 100}, &c); err != nil {
		t.Fatal(err)
	}
	if got := c.Samples[0].Labels.String(); got != `{__name__="foo", b="x"}` {
		t.Fatalf("labels %s, want the empty one gone", got)
	}
}

func TestParseLabelLimitsAndUTF8(t *testing.T) {
	lim := Limits{Samples: 100, Labels: 3, LabelNameLength: 8, LabelValueLength: 10}
	for _, tc := range []struct{ body, want string }{
		{"ok{a=\"1\",b=\"2\"} 1\n", ""},
		{"many{a=\"1\",b=\"2\",c=\"3\"} 1\n", "limit of 3"},
		{"long{abcdefghi=\"1\"} 1\n", "longer than the limit of 8"},
		{"value{a=\"12345678901\"} 1\n", "limit of 10"},
		{"bad{a=\"\xff\xfe\"} 1\n", "invalid UTF-8"},
	} {
		var c collectors.Collection
		err := Parse([]byte(tc.body), "text/plain", lim, &c)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q: err %v, want %q", tc.body, err, tc.want)
		}
	}
}

// TestDefaultLabelLimitsRefuseWhatWouldFloodTheBuffer: with no limit in the
// config, a target exposing a label value of kilobytes (an id, a dump) fails
// its scrape with reason label_limit instead of filling the buffer's cap
// with a new label set at every scrape; ordinary label sets pass.
func TestDefaultLabelLimitsRefuseWhatWouldFloodTheBuffer(t *testing.T) {
	var many strings.Builder
	for i := range DefaultLimits.Labels {
		fmt.Fprintf(&many, ",l%d=\"v\"", i)
	}
	for _, tc := range []struct {
		body   string
		refuse bool
	}{
		{"node_uname_info{release=\"6.6.31-v8+\",version=\"#1 SMP PREEMPT Debian 1:6.6.31-1+rpt1 (2024-05-29)\"} 1\n", false},
		{"m{v=\"" + strings.Repeat("x", DefaultLimits.LabelValueLength) + "\"} 1\n", false},
		{"m{v=\"" + strings.Repeat("x", DefaultLimits.LabelValueLength+1) + "\"} 1\n", true},
		{"m{v=\"" + strings.Repeat("x", 300<<10) + "\"} 1\n", true},
		{"m{" + strings.Repeat("n", DefaultLimits.LabelNameLength+1) + "=\"v\"} 1\n", true},
		{"m{a=\"b\"" + many.String() + "} 1\n", true},
	} {
		var c collectors.Collection
		err := Parse([]byte(tc.body), "text/plain", DefaultLimits, &c)
		var se *Error
		if refused := errors.As(err, &se) && se.Reason == ReasonLabelLimit; refused != tc.refuse || !tc.refuse && err != nil {
			t.Errorf("%.80q: err %v, want refused %v with reason %s", tc.body, err, tc.refuse, ReasonLabelLimit)
		}
	}
}

func TestCollectHonorTimestamps(t *testing.T) {
	body := []byte("with_ts 1 1700000000000\nwithout_ts 2\n")
	for _, honor := range []bool{true, false} {
		tg := newTarget(t, serveBody(promContentType, body))
		u, _ := url.Parse(tg.srv.URL + "/metrics")
		var c collectors.Collection
		if err := mustNew(t, Target{URL: u, Limits: DefaultLimits, HonorTimestamps: honor}).Collect(context.Background(), &c); err != nil {
			t.Fatal(err)
		}
		want := int64(0) // the agent stamps it with the scrape's time
		if honor {
			want = 1700000000000
		}
		if c.Samples[0].T != want || c.Samples[1].T != 0 {
			t.Errorf("honor_timestamps %v: timestamps %d, %d; want %d, 0", honor, c.Samples[0].T, c.Samples[1].T, want)
		}
	}
}

// TestCollectCachedSeries scrapes a target again and again, as the agent
// does: series the scraper knows from the scrape before come from its cache
// and must give what parsing gives, a series twice in one body included;
// series that come and go, and a switch of format, too.
func TestCollectCachedSeries(t *testing.T) {
	bodies := []struct{ contentType, body string }{
		{promContentType, "a{x=\"1\",y=\"\"} 1\nb 2\na{x=\"1\"} 3\nc{z=\"q\"} 4\n"},
		{promContentType, "a{x=\"1\",y=\"\"} 5\nb 6\nd 7\na{x=\"1\"} 8\n"},
		{promContentType, "b 9\nd{} 10\nd 11\n"},
		{omContentType, "# TYPE b gauge\nb 12\n# TYPE d gauge\nd 13\n# EOF\n"},
		{promContentType, "a{x=\"1\",y=\"\"} 14\nb 15\n"},
	}
	var mu sync.Mutex
	step := 0
	tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		b := bodies[step]
		mu.Unlock()
		serveBody(b.contentType, []byte(b.body))(w, r)
	})
	s := tg.scraper(t, DefaultLimits)
	for i, b := range bodies {
		mu.Lock()
		step = i
		mu.Unlock()
		var got collectors.Collection
		if err := s.Collect(context.Background(), &got); err != nil {
			t.Fatalf("scrape %d: %v", i, err)
		}
		// What a fresh scraper, with nothing cached, gives.
		var want collectors.Collection
		fresh := tg.scraper(t, DefaultLimits)
		if err := fresh.Collect(context.Background(), &want); err != nil {
			t.Fatal(err)
		}
		sameSamples(t, got.Samples, want.Samples)
		if n := s.cache.entries.Len(); n > strings.Count(b.body, "\n") {
			t.Errorf("scrape %d: %d series cached, more than the scrape had", i, n)
		}
	}
}

// TestCollectTextsWhoseKeysMeet: a text whose key's seeded half another
// text's entry has (as if the two met by chance) is parsed, not given that
// entry's labels, and goes without a Memo; once the other text is gone,
// it is cached again.
func TestCollectTextsWhoseKeysMeet(t *testing.T) {
	body := "a{x=\"1\"} 1\nb 2\nc{y=\"z\"} 3\n"
	tg := newTarget(t, serveBody(promContentType, []byte(body)))
	s := tg.scraper(t, DefaultLimits)
	var want collectors.Collection
	if err := Parse([]byte(body), promContentType, DefaultLimits, &want); err != nil {
		t.Fatal(err)
	}
	for scrape := range 3 {
		if scrape == 1 {
			for _, e := range s.cache.entries.All() { // each slot taken by another text
				e.x, e.lset = ^e.x, labels.FromStrings("__name__", "other")
			}
		}
		var got collectors.Collection
		if err := s.Collect(context.Background(), &got); err != nil {
			t.Fatal(err)
		}
		sameSamples(t, got.Samples, want.Samples)
		for _, smp := range got.Samples {
			if memo := smp.Memo != nil; memo != (scrape != 1) {
				t.Errorf("scrape %d: %s with a Memo %v, want %v", scrape, smp.Labels, memo, scrape != 1)
			}
		}
	}
}

// TestCollectCachedSeriesRandomized scrapes random bodies again and again,
// as the agent does, and holds each scrape to a model: every sample as
// Parse reads it, with the target's labels added (collectors.WithTarget),
// its timestamp kept only with honor_timestamps, a series twice in a body
// kept twice (the agent drops the second). The bodies write a few series
// in many ways (labels in any order, empty values, a job the target's
// label displaces) and come and go, so that the scraper's cache meets
// series written again, new ones and forgotten ones. A Memo, which the
// agent keeps its own entry of a series in, stands for one label set.
func TestCollectCachedSeriesRandomized(t *testing.T) {
	target := labels.FromStrings("job", "app", "instance", "h:1")
	for seed := range uint64(60) {
		rng := rand.New(rand.NewPCG(seed, 17))
		honorLabels, honorTimestamps := rng.IntN(2) == 0, rng.IntN(2) == 0
		line := func() string {
			var lbls []string
			for _, n := range []string{"x", "job", "exported_job"} {
				if rng.IntN(2) == 0 {
					lbls = append(lbls, fmt.Sprintf("%s=%q", n, []string{"", "1", "app"}[rng.IntN(3)]))
				}
			}
			rng.Shuffle(len(lbls), func(i, j int) { lbls[i], lbls[j] = lbls[j], lbls[i] })
			l := []string{"a", "b"}[rng.IntN(2)]
			if len(lbls) > 0 || rng.IntN(4) == 0 {
				l += "{" + strings.Join(lbls, ",") + "}"
			}
			l += " " + strconv.Itoa(rng.IntN(100))
			if rng.IntN(3) == 0 {
				l += " " + strconv.FormatInt(1_700_000_000_000+rng.Int64N(3), 10)
			}
			return l + "\n"
		}
		var mu sync.Mutex
		var body string
		tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			b := body
			mu.Unlock()
			serveBody(promContentType, []byte(b))(w, r)
		})
		u, _ := url.Parse(tg.srv.URL + "/metrics")
		s := mustNew(t, Target{URL: u, Limits: DefaultLimits, Labels: target, HonorLabels: honorLabels, HonorTimestamps: honorTimestamps})
		memos := map[*collectors.Memo]labels.Labels{}
		twice := false // a label set twice in a body
		for scrape := range 12 {
			var b strings.Builder
			for range rng.IntN(12) {
				b.WriteString(line())
			}
			mu.Lock()
			body = b.String()
			mu.Unlock()

			var parsed collectors.Collection
			if err := Parse([]byte(body), promContentType, DefaultLimits, &parsed); err != nil {
				t.Fatalf("seed %d: %v\n%s", seed, err, body)
			}
			var want []collectors.Sample
			var builder labels.Builder
			for _, smp := range parsed.Samples {
				smp.Labels = collectors.WithTarget(&builder, smp.Labels, target, honorLabels)
				if !honorTimestamps {
					smp.T = 0
				}
				twice = twice || slices.ContainsFunc(want, func(o collectors.Sample) bool { return labels.Equal(o.Labels, smp.Labels) })
				want = append(want, smp)
			}

			var got collectors.Collection
			if err := s.Collect(context.Background(), &got); err != nil {
				t.Fatalf("seed %d, scrape %d: %v", seed, scrape, err)
			}
			sameSamples(t, got.Samples, want)
			for _, smp := range got.Samples {
				if smp.Memo == nil {
					t.Fatalf("seed %d, scrape %d: %s without a Memo", seed, scrape, smp.Labels)
				}
				if had, ok := memos[smp.Memo]; ok && !labels.Equal(had, smp.Labels) {
					t.Errorf("seed %d, scrape %d: one Memo for %s and %s", seed, scrape, had, smp.Labels)
				}
				memos[smp.Memo] = smp.Labels
			}
			// The cache holds this scrape's series only.
			for _, e := range s.cache.entries.All() {
				if e.scrape != s.cache.scrape {
					t.Errorf("seed %d, scrape %d: %s cached, not in the scrape", seed, scrape, e.lset)
				}
			}
			if t.Failed() {
				t.Fatalf("seed %d, scrape %d (honor labels %v, timestamps %v):\n%s", seed, scrape, honorLabels, honorTimestamps, body)
			}
		}
		if !twice {
			t.Errorf("seed %d: no label set twice in a body", seed)
		}
	}
}

// TestCollectMetadataAndStartTimes scrapes an OpenMetrics target twice and
// a text-format one: samples point to their family's Desc, the same *Desc
// while the family does not change; OpenMetrics' _created lines give the
// start time of their series (le and quantile aside) and stay samples that
// exposition.IsCreated tells apart; the text format has no such lines.
func TestCollectMetadataAndStartTimes(t *testing.T) {
	om := func(help string) string {
		return "# TYPE req counter\n# HELP req " + help + "\n" +
			"req_total{code=\"200\"} 10\nreq_created{code=\"200\"} 1700000000.5\n" +
			"req_total{code=\"500\"} 1\nreq_created{code=\"500\"} 1700000100\n" +
			"# TYPE lat_seconds histogram\n# UNIT lat_seconds seconds\n" +
			"lat_seconds_bucket{le=\"1\"} 1\nlat_seconds_bucket{le=\"+Inf\"} 2\nlat_seconds_count 2\nlat_seconds_sum 1.5\nlat_seconds_created 1700000200\n" +
			"# TYPE temp gauge\ntemp 21.5\n# EOF\n"
	}
	body := om("Requests.")
	tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		ct := omContentType
		if !strings.HasPrefix(body, "# TYPE req counter") {
			ct = promContentType
		}
		serveBody(ct, []byte(body))(w, r)
	})
	s := tg.scraper(t, DefaultLimits)
	collect := func() []collectors.Sample {
		t.Helper()
		var c collectors.Collection
		if err := s.Collect(context.Background(), &c); err != nil {
			t.Fatal(err)
		}
		return c.Samples
	}
	type want struct {
		name, family string
		start        int64
		created      bool
	}
	wants := []want{
		{"req_total", "req", 1700000000500, false}, {"req_created", "req", 0, true},
		{"req_total", "req", 1700000100000, false}, {"req_created", "req", 0, true},
		{"lat_seconds_bucket", "lat_seconds", 1700000200000, false}, {"lat_seconds_bucket", "lat_seconds", 1700000200000, false},
		{"lat_seconds_count", "lat_seconds", 1700000200000, false}, {"lat_seconds_sum", "lat_seconds", 1700000200000, false},
		{"lat_seconds_created", "lat_seconds", 0, true},
		{"temp", "temp", 0, false},
	}
	check := func(samples []collectors.Sample, wants []want) {
		t.Helper()
		if len(samples) != len(wants) {
			t.Fatalf("%d samples, want %d", len(samples), len(wants))
		}
		for i, w := range wants {
			s := samples[i]
			name := s.Labels.Get(labels.MetricName)
			family := ""
			if s.Desc != nil {
				family = s.Desc.Name
			}
			if name != w.name || family != w.family || s.Start != w.start || exposition.IsCreated(name, s.Desc) != w.created {
				t.Errorf("sample %d %s: family %q, start %d, created %v; want %s, %q, %d, %v", i, s.Labels, family, s.Start, exposition.IsCreated(name, s.Desc), w.name, w.family, w.start, w.created)
			}
		}
	}
	first := collect()
	check(first, wants)
	if d := first[4].Desc; d.Type != collectors.Histogram || d.Unit != "seconds" || first[0].Desc.Help != "Requests." {
		t.Errorf("families %+v, %+v", first[0].Desc, d)
	}
	second := collect()
	check(second, wants)
	for i := range first {
		if first[i].Desc != second[i].Desc {
			t.Errorf("sample %d: a new Desc %p for an unchanged family (was %p)", i, second[i].Desc, first[i].Desc)
		}
	}
	body = om("Requests served.")
	third := collect()
	if third[0].Desc == first[0].Desc || third[0].Desc.Help != "Requests served." || third[4].Desc != first[4].Desc {
		t.Errorf("after a change of help: %+v (was %p), %p (was %p)", third[0].Desc, first[0].Desc, third[4].Desc, first[4].Desc)
	}
	// The text format: a counter's foo_created is a series of its own.
	body = "# TYPE req_total counter\nreq_total 10\nreq_created 1700000000\n"
	check(collect(), []want{{"req_total", "req_total", 0, false}, {"req_created", "", 0, false}})
}

// TestCollectKeepsNothingOfTheBody scrapes random bodies, of a known size
// and of an unknown one (gzip), growing and shrinking, into the scraper's
// one body buffer: what an earlier scrape gave (labels, escaped values,
// families' help) must read the same after later bodies overwrote the
// buffer, or a string of a sample still points into it. Each sample's Hash,
// from the cache, must be its labels'.
func TestCollectKeepsNothingOfTheBody(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	word := func() string {
		const chars = "abcdefghijklmnopqrstuvwxyz_"
		b := make([]byte, 1+rng.IntN(12))
		for i := range b {
			b[i] = chars[rng.IntN(len(chars))]
		}
		return string(b)
	}
	body := func(om bool) string {
		var b strings.Builder
		for f := range 1 + rng.IntN(30) {
			name := fmt.Sprintf("%s_%d", word(), f)
			fmt.Fprintf(&b, "# HELP %s %s \\\\ %s\n# TYPE %s gauge\n", name, word(), word(), name)
			for i := range 1 + rng.IntN(40) {
				fmt.Fprintf(&b, "%s{l_%s=\"%s\\\"%s\",i=\"%d\"} %d\n", name, word(), word(), word(), i, rng.IntN(1000))
			}
		}
		if om {
			b.WriteString("# EOF\n")
		}
		return b.String()
	}
	// render is a sample as text that shares no memory with it.
	render := func(smp collectors.Sample) string {
		s := fmt.Sprintf("%s %v", smp.Labels, smp.V)
		if smp.Desc != nil {
			s += fmt.Sprintf(" %s %q %s", smp.Desc.Name, smp.Desc.Help, smp.Desc.Type)
		}
		return s
	}
	var (
		mu   sync.Mutex
		next string
		om   bool
		gz   bool
	)
	tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		b, o, z := next, om, gz
		mu.Unlock()
		ct := promContentType
		if o {
			ct = omContentType
		}
		if z {
			serveGzip(ct, []byte(b))(w, r)
		} else {
			serveBody(ct, []byte(b))(w, r)
		}
	})
	s := tg.scraper(t, DefaultLimits)
	var kept []collectors.Collection
	var want [][]string
	for i := range 40 {
		mu.Lock()
		om, gz = rng.IntN(2) == 0, rng.IntN(2) == 0
		next = body(om)
		mu.Unlock()
		var c collectors.Collection
		if err := s.Collect(context.Background(), &c); err != nil {
			t.Fatalf("scrape %d: %v", i, err)
		}
		var texts []string
		for _, smp := range c.Samples {
			texts = append(texts, render(smp))
		}
		kept, want = append(kept, c), append(want, texts)
	}
	for i, c := range kept {
		for j, smp := range c.Samples {
			if got := render(smp); got != want[i][j] {
				t.Fatalf("scrape %d, sample %d changed after later scrapes:\n got  %s\n want %s", i, j, got, want[i][j])
			}
		}
	}
}

// TestCollectAddsTargetLabels: each sample gets the target's labels, as
// Prometheus adds them, from the first scrape and from the cache alike; a
// series that the target's labels make the same as another one of the
// scrape is kept as that one (the agent drops the second).
func TestCollectAddsTargetLabels(t *testing.T) {
	body := "a{job=\"own\",x=\"1\"} 1\nb{exported_job=\"e\",job=\"own\"} 2\nc{instance=\"\"} 3\nd 4\nd{exported_job=\"own\"} 5\n"
	target := labels.FromStrings("job", "app", "instance", "h:9100")
	for _, tc := range []struct {
		honor bool
		want  []string
	}{
		{false, []string{
			`{__name__="a", exported_job="own", instance="h:9100", job="app", x="1"}`,
			`{__name__="b", exported_exported_job="own", exported_job="e", instance="h:9100", job="app"}`,
			`{__name__="c", instance="h:9100", job="app"}`,
			`{__name__="d", instance="h:9100", job="app"}`,
			`{__name__="d", exported_job="own", instance="h:9100", job="app"}`,
		}},
		{true, []string{
			`{__name__="a", instance="h:9100", job="own", x="1"}`,
			`{__name__="b", exported_job="e", instance="h:9100", job="own"}`,
			`{__name__="c", instance="h:9100", job="app"}`,
			`{__name__="d", instance="h:9100", job="app"}`,
			`{__name__="d", exported_job="own", instance="h:9100", job="app"}`,
		}},
		// {job="own"} with its job exported meets {exported_job="own"}.
		{false, []string{
			`{__name__="m", exported_job="own", instance="h:9100", job="app"}`,
			`{__name__="m", exported_job="own", instance="h:9100", job="app"}`,
		}},
	} {
		b := body
		if tc.want[0] == `{__name__="m", exported_job="own", instance="h:9100", job="app"}` {
			b = "m{job=\"own\"} 1\nm{exported_job=\"own\"} 2\n"
		}
		tg := newTarget(t, serveBody(promContentType, []byte(b)))
		u, _ := url.Parse(tg.srv.URL + "/metrics")
		s := mustNew(t, Target{URL: u, Limits: DefaultLimits, Labels: target, HonorLabels: tc.honor})
		for scrape := range 2 { // the second from the cache
			var c collectors.Collection
			if err := s.Collect(context.Background(), &c); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, smp := range c.Samples {
				got = append(got, smp.Labels.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("honor %v, scrape %d:\n got  %q\n want %q", tc.honor, scrape, got, tc.want)
			}
		}
	}
}

// TestScrapeReadsTheBodyInWindows: a body is parsed as it arrives, a
// window at a time, so that a target's page of MiBs never costs its size:
// a first scrape of a page near the body limit, nearly all comments,
// allocates a small part of it (reading it whole allocated all of it).
func TestScrapeReadsTheBodyInWindows(t *testing.T) {
	var b bytes.Buffer
	for int64(b.Len()) < DefaultLimits.BodyBytes-(64<<10) {
		b.WriteString("# a comment, as a target may have many: nothing is kept of it\n")
	}
	b.WriteString("foo 1\n")
	s := newTarget(t, serveBody("text/plain; version=0.0.4", b.Bytes())).scraper(t, DefaultLimits)
	var c collectors.Collection
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := s.Collect(context.Background(), &c)
	runtime.ReadMemStats(&after)
	if err != nil || len(c.Samples) != 1 {
		t.Fatalf("%d samples, error %v; want 1", len(c.Samples), err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > uint64(b.Len()/8) {
		t.Errorf("a scrape of a %d-byte page allocated %d bytes, more than an eighth of it", b.Len(), got)
	}
}
