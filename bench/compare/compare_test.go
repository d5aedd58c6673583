package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

func TestCompleteness(t *testing.T) {
	served := []int64{100, 105, 110, 115}
	got := []probeSample{
		{100_000, 100},
		{105_400, 105},
		{105_400, 105}, // a duplicate (resent after a crash) counts once
		{200_000, 110}, // value does not match its timestamp
		{300_000, 300}, // not served in this window
	}
	c := completeness(served, got)
	if c.Served != 4 || c.Arrived != 2 || c.Wrong != 1 {
		t.Errorf("got %+v, want Served 4, Arrived 2, Wrong 1", c)
	}
	if c.pct() != 50 {
		t.Errorf("pct %v, want 50", c.pct())
	}
}

func TestExportProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/export" || r.URL.Query().Get("match[]") != "ferry_bench_probe" {
			http.Error(w, "unexpected "+r.URL.String(), 400)
			return
		}
		io.WriteString(w, `{"metric":{"__name__":"ferry_bench_probe","job":"synth"},"values":[100,105,NaN],"timestamps":[100000,105000,106000]}`+"\n")
		io.WriteString(w, `{"metric":{"__name__":"ferry_bench_probe","job":"synth","x":"y"},"values":[110],"timestamps":[110000]}`+"\n")
	}))
	defer srv.Close()
	got, err := exportProbe(srv.URL, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[1] != (probeSample{105000, 105}) || got[3] != (probeSample{110000, 110}) {
		t.Errorf("got %v", got)
	}
	if c := completeness([]int64{100, 105, 110}, got); c.Arrived != 3 {
		t.Errorf("completeness %+v", c)
	}
}

func TestProxyCountsAndOutage(t *testing.T) {
	var received int
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received++
		w.WriteHeader(204)
	}))
	defer recv.Close()
	p := newRWProxy(recv.URL)
	front := httptest.NewServer(p)
	defer front.Close()

	wr := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: []prompb.Label{{Name: "__name__", Value: "a"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: 1}, {Value: 2, Timestamp: 2}}},
		{Labels: []prompb.Label{{Name: "__name__", Value: "b"}, {Name: "job", Value: synthJob}}, Samples: []prompb.Sample{{Value: 3, Timestamp: 1}}},
	}}
	raw, err := wr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	body := snappy.Encode(nil, raw)
	post := func() int {
		resp, err := http.Post(front.URL+"/api/v1/write", "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(); code != 204 {
		t.Fatalf("status %d", code)
	}
	p.setDown(true)
	if code := post(); code != 503 {
		t.Fatalf("down: status %d, want 503", code)
	}
	p.setDown(false)
	c := p.counts()
	if received != 1 || c.Requests != 1 || c.Samples != 3 || c.Bytes != int64(len(body)) || c.RawBytes != int64(len(raw)) ||
		c.Failed != 1 || c.FailedBytes != int64(len(body)) || c.DecodeErrors != 0 {
		t.Errorf("received %d, counts %+v", received, c)
	}
	// Only job="synth" is kept by timestamp, and only what was accepted.
	if a := p.takeArrivals(); len(a) != 1 || a[0].ts != 1 || a[0].n != 1 {
		t.Errorf("arrivals %+v, want one sample at timestamp 1", a)
	}
}

func TestAgentOfAndRender(t *testing.T) {
	for path, want := range map[string]string{"/ferry/metrics": "ferry", "/vmagent/metrics": "vmagent", "/prometheus/metrics": "prometheus", "/metrics": "other"} {
		r := httptest.NewRequest("GET", path, nil)
		if got := agentOf(r); got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
	}
	stop := make(chan struct{})
	defer close(stop)
	target := newSynthTarget(100, time.Hour, stop)
	rec := httptest.NewRecorder()
	target.ServeHTTP(rec, httptest.NewRequest("GET", "/ferry/metrics", nil))
	if n := countSamples(rec.Body.Bytes()); n != target.series {
		t.Errorf("%d samples served, want %d", n, target.series)
	}
	if target.scrapeCount("ferry") != 1 || len(target.served("ferry", time.Unix(0, 0), time.Now().Add(time.Second))) != 1 {
		t.Errorf("scrape not recorded")
	}
}
