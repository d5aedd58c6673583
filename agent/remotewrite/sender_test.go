package remotewrite

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/ferry-agent/ferry/agent/remotewrite/codec"
	"github.com/ferry-agent/ferry/agent/remotewrite/codec/codectest"
	"github.com/ferry-agent/ferry/buffer"
)

// fakeSource is an in-memory buffer: blocks in ascending Seq, removed when
// acknowledged. Read follows buffer.Buffer.Read: blocks from seq `from` on,
// at least one, then as many as fit in maxSamples.
type fakeSource struct {
	mu        sync.Mutex
	blocks    []buffer.Block
	acks      []uint64
	acked     chan uint64 // one value per Ack call
	committed chan struct{}
}

func newFakeSource(blocks ...buffer.Block) *fakeSource {
	return &fakeSource{blocks: blocks, acked: make(chan uint64, 100), committed: make(chan struct{})}
}

func (f *fakeSource) Read(from uint64, maxSamples int) ([]buffer.Block, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []buffer.Block
	total := 0
	for _, b := range f.blocks {
		if b.Seq < from {
			continue
		}
		if len(out) > 0 && total+b.Samples() > maxSamples {
			break
		}
		out = append(out, b)
		total += b.Samples()
	}
	return out, nil
}

func (f *fakeSource) Ack(seq uint64) error {
	f.mu.Lock()
	f.blocks = slices.DeleteFunc(f.blocks, func(b buffer.Block) bool { return b.Seq <= seq })
	f.acks = append(f.acks, seq)
	f.mu.Unlock()
	f.acked <- seq
	return nil
}

func (f *fakeSource) Committed() <-chan struct{} { return f.committed }

func (f *fakeSource) Delivered(uint64) {}

// The fake holds committed blocks only: nothing in memory to send.
func (f *fakeSource) TakeLive(int, bool) (buffer.Block, bool) { return buffer.Block{}, false }
func (f *fakeSource) LiveDone()                               { panic("LiveDone without TakeLive") }
func (f *fakeSource) LiveFailed(buffer.Block)                 { panic("LiveFailed without TakeLive") }
func (f *fakeSource) LiveReady() <-chan struct{}              { return nil }
func (f *fakeSource) Commit() error                           { panic("Commit without TakeLive") }

// Delete, LastSeq and SplitAt hold the sender to its contract: without
// FreshFirst (or a budget) it never calls them. (The tests of FreshFirst
// use a real buffer.)
func (f *fakeSource) Delete([]uint64) error { panic("Delete called without FreshFirst") }
func (f *fakeSource) LastSeq() uint64       { panic("LastSeq called without FreshFirst") }
func (f *fakeSource) SplitAt(uint64)        { panic("SplitAt called without FreshFirst") }

// state returns the acknowledged seqs and the seqs still buffered.
func (f *fakeSource) state() (acks, left []uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.blocks {
		left = append(left, b.Seq)
	}
	return slices.Clone(f.acks), left
}

// waitAck waits for the next Ack and returns its seq. The deadline only
// guards against a hang; nothing is asserted about durations.
func (f *fakeSource) waitAck(t *testing.T) uint64 {
	t.Helper()
	select {
	case seq := <-f.acked:
		return seq
	case <-time.After(10 * time.Second):
		t.Fatal("no Ack within 10s")
		return 0
	}
}

// request is what the receiver saw of one remote-write request.
type request struct {
	header  http.Header
	bodyLen int
	wr      prompb.WriteRequest // a 2.0 request's series and samples too
	v2      bool
}

// receiver is an httptest remote-write endpoint. answer decides the reply
// to the n-th request (from 0); it runs after the request is recorded.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	answer func(n int, w http.ResponseWriter)
	seen   chan struct{} // one value per request, dropped when full

	mu   sync.Mutex
	reqs []request
}

func newReceiver(t *testing.T, answer func(n int, w http.ResponseWriter)) *receiver {
	r := &receiver{t: t, answer: answer, seen: make(chan struct{}, 1000)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		r.t.Errorf("reading request body: %v", err)
	}
	got := request{header: req.Header.Clone(), bodyLen: len(body)}
	got.v2 = strings.HasSuffix(req.Header.Get("Content-Type"), "proto="+codec.MessageV2)
	raw, err := snappy.Decode(nil, body)
	switch {
	case err != nil:
		r.t.Errorf("body is not snappy (block format): %v", err)
	case got.v2:
		all, err := codectest.DecodeV2Series(raw)
		if err != nil {
			r.t.Error(err)
		}
		for _, s := range all {
			ts := prompb.TimeSeries{Labels: prompb.FromLabels(s.Labels, nil)}
			for _, smp := range s.Samples {
				ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: smp.Timestamp, Value: smp.Value})
			}
			got.wr.Timeseries = append(got.wr.Timeseries, ts)
		}
	default:
		if err := got.wr.Unmarshal(raw); err != nil {
			r.t.Errorf("body is not a prompb.WriteRequest: %v", err)
		}
	}
	r.mu.Lock()
	n := len(r.reqs)
	r.reqs = append(r.reqs, got)
	r.mu.Unlock()
	r.answer(n, w)
	select {
	case r.seen <- struct{}{}:
	default:
	}
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

func status(code int) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) { http.Error(w, http.StatusText(code), code) }
}

// answers replies to the n-th request with steps[n], and with the last step
// once they run out.
func answers(steps ...func(w http.ResponseWriter)) func(int, http.ResponseWriter) {
	return func(n int, w http.ResponseWriter) { steps[min(n, len(steps)-1)](w) }
}

func testConfig(url string, maxSamples int) Config {
	return Config{
		URL:               url,
		Timeout:           10 * time.Second,
		MinBackoff:        time.Millisecond,
		MaxBackoff:        5 * time.Millisecond,
		MaxSamplesPerSend: maxSamples,
		UserAgent:         "ferry-test/1.2.3",
	}
}

// start runs s until the test ends, or until the returned stop is called;
// stop waits for Run to return.
func start(t *testing.T, s *Sender) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return within 10s of the context's end")
		}
	}
	t.Cleanup(stop)
	return stop
}

func newSender(cfg Config, src Source) *Sender {
	s, err := New(cfg, src, slog.New(slog.DiscardHandler))
	if err != nil {
		panic(err)
	}
	return s
}

// The fixtures the codec's tests use too.
var (
	series           = codectest.Series
	lblA, lblB, lblC = codectest.LabelsA, codectest.LabelsB, codectest.LabelsC
)

func TestSendOneRequest(t *testing.T) {
	src := newFakeSource(
		buffer.Block{Seq: 1, Series: []buffer.Series{series(1, lblA, 1000, 2000), series(2, lblB, 1000)}},
		buffer.Block{Seq: 2, Series: []buffer.Series{series(2, lblB, 3000), series(1, lblA, 3000)}},
		buffer.Block{Seq: 3, Series: []buffer.Series{series(3, lblC, 4000), series(1, lblA, 4000, 5000)}},
	)
	rcv := newReceiver(t, answers(status(http.StatusNoContent)))
	s := newSender(testConfig(rcv.srv.URL, 1000), src)
	start(t, s)

	if seq := src.waitAck(t); seq != 3 {
		t.Fatalf("acked up to %d, want 3 (all blocks in one request)", seq)
	}
	reqs := rcv.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	req := reqs[0]
	for name, want := range map[string]string{
		"Content-Encoding":                  "snappy",
		"Content-Type":                      "application/x-protobuf",
		"X-Prometheus-Remote-Write-Version": "0.1.0",
		"User-Agent":                        "ferry-test/1.2.3",
	} {
		if got := req.header.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}

	// One TimeSeries per series, its samples from all blocks in time order.
	want := map[string][]prompb.Sample{
		lblA.String(): {{Timestamp: 1000, Value: 100}, {Timestamp: 2000, Value: 200}, {Timestamp: 3000, Value: 300}, {Timestamp: 4000, Value: 400}, {Timestamp: 5000, Value: 500}},
		lblB.String(): {{Timestamp: 1000, Value: 100}, {Timestamp: 3000, Value: 300}},
		lblC.String(): {{Timestamp: 4000, Value: 400}},
	}
	if len(req.wr.Timeseries) != len(want) {
		t.Errorf("%d TimeSeries, want %d (one per series)", len(req.wr.Timeseries), len(want))
	}
	total := 0
	for _, ts := range req.wr.Timeseries {
		if !slices.IsSortedFunc(ts.Labels, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) }) {
			t.Errorf("labels not sorted by name: %v", ts.Labels)
		}
		b := labels.NewScratchBuilder(len(ts.Labels))
		for _, l := range ts.Labels {
			b.Add(l.Name, l.Value)
		}
		key := b.Labels().String()
		w, ok := want[key]
		if !ok {
			t.Errorf("unexpected series %s", key)
			continue
		}
		delete(want, key)
		if !slices.EqualFunc(ts.Samples, w, func(a, b prompb.Sample) bool { return a.Timestamp == b.Timestamp && a.Value == b.Value }) {
			t.Errorf("series %s: samples %v, want %v", key, ts.Samples, w)
		}
		total += len(ts.Samples)
	}
	for key := range want {
		t.Errorf("series %s missing from the request", key)
	}

	st := s.Stats()
	if st.SamplesSent != uint64(total) || total != 8 {
		t.Errorf("SamplesSent = %d, want 8", st.SamplesSent)
	}
	if st.BytesSent != uint64(req.bodyLen) {
		t.Errorf("BytesSent = %d, want the body's %d bytes", st.BytesSent, req.bodyLen)
	}
	if st.RequestsFailed != 0 || st.LastSuccessUnix == 0 {
		t.Errorf("RequestsFailed = %d, LastSuccessUnix = %v; want 0 and set", st.RequestsFailed, st.LastSuccessUnix)
	}
}

func TestSendRespectsMaxSamplesPerSend(t *testing.T) {
	src := newFakeSource(
		buffer.Block{Seq: 1, Series: []buffer.Series{series(1, lblA, 1000, 2000)}},
		buffer.Block{Seq: 2, Series: []buffer.Series{series(1, lblA, 3000, 4000)}},
		buffer.Block{Seq: 3, Series: []buffer.Series{series(1, lblA, 5000)}},
	)
	rcv := newReceiver(t, answers(status(http.StatusOK)))
	s := newSender(testConfig(rcv.srv.URL, 3), src)
	start(t, s)

	// Caught up, the sender deletes everything it delivered at once.
	if a := src.waitAck(t); a != 3 {
		t.Fatalf("ack %d; want 3", a)
	}
	var got [][]int64
	for _, r := range rcv.requests() {
		var ts []int64
		for _, s := range r.wr.Timeseries[0].Samples {
			ts = append(ts, s.Timestamp)
		}
		got = append(got, ts)
	}
	want := [][]int64{{1000, 2000}, {3000, 4000, 5000}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("requests carried %v, want %v (oldest first, at most 3 samples unless one block is bigger)", got, want)
	}
}

func TestSendRetriesUntilAccepted(t *testing.T) {
	src := newFakeSource(
		buffer.Block{Seq: 7, Series: []buffer.Series{series(1, lblA, 1000), series(2, lblB, 1000)}},
		buffer.Block{Seq: 8, Series: []buffer.Series{series(1, lblA, 2000)}},
	)
	var mu sync.Mutex
	var ackedAt [][]uint64 // the acks the source had when each request arrived
	rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
		acks, _ := src.state()
		mu.Lock()
		ackedAt = append(ackedAt, acks)
		mu.Unlock()
		switch n {
		case 0:
			status(http.StatusInternalServerError)(w)
		case 1:
			w.Header().Set("Retry-After", "0")
			status(http.StatusTooManyRequests)(w)
		default:
			status(http.StatusOK)(w)
		}
	})
	s := newSender(testConfig(rcv.srv.URL, 1000), src)
	start(t, s)

	if seq := src.waitAck(t); seq != 8 {
		t.Fatalf("acked up to %d, want 8", seq)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ackedAt) != 4 {
		t.Fatalf("%d requests, want 4 (500, then one-sample probes: 429, 200, then the rest: 200)", len(ackedAt))
	}
	for i, acks := range ackedAt {
		if len(acks) != 0 {
			t.Errorf("request %d: blocks %v were acked before the receiver accepted them", i, acks)
		}
	}
	// While the receiver fails, each retry carries only the oldest sample
	// of the first series; the first one taken sends the rest.
	reqs := rcv.requests()
	for i, want := range []int{3, 1, 1, 2} {
		if n := countSamples(reqs[i].wr); n != want {
			t.Errorf("request %d carried %d samples, want %d", i, n, want)
		}
	}
	if l := reqs[1].wr.Timeseries[0].Labels; len(l) == 0 || reqs[1].wr.Timeseries[0].Samples[0].Timestamp != 1000 {
		t.Errorf("the probe carried %v, want the first series' sample at 1000", reqs[1].wr.Timeseries)
	}
	st := s.Stats()
	if st.RequestsFailed != 2 {
		t.Errorf("RequestsFailed = %d, want 2", st.RequestsFailed)
	}
	if st.SamplesSent != 3 {
		t.Errorf("SamplesSent = %d, want 3 (counted once, not per attempt)", st.SamplesSent)
	}
	if st.BytesSent != uint64(reqs[2].bodyLen+reqs[3].bodyLen) {
		t.Errorf("BytesSent = %d, want %d (the accepted requests only)", st.BytesSent, reqs[2].bodyLen+reqs[3].bodyLen)
	}
	if len(st.Dropped) != 0 {
		t.Errorf("Dropped = %v, want none", st.Dropped)
	}
}

func TestSendDropsRejectedBatch(t *testing.T) {
	src := newFakeSource(
		buffer.Block{Seq: 1, Series: []buffer.Series{series(1, lblA, 1000, 2000), series(2, lblB, 1000)}},
		buffer.Block{Seq: 2, Series: []buffer.Series{series(1, lblA, 3000)}},
	)
	rcv := newReceiver(t, answers(status(http.StatusBadRequest), status(http.StatusOK)))
	s := newSender(testConfig(rcv.srv.URL, 1), src) // one block per request
	start(t, s)

	if seq := src.waitAck(t); seq != 2 {
		t.Fatalf("ack %d, want 2: a rejected batch is deleted with the next one, not retried", seq)
	}
	reqs := rcv.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2 (no retry of the 400)", len(reqs))
	}
	if got := reqs[1].wr.Timeseries; len(got) != 1 || got[0].Samples[0].Timestamp != 3000 {
		t.Errorf("second request carried %v, want block 2's sample at 3000", got)
	}
	st := s.Stats()
	if got := st.Dropped[ReasonRejected]; got != 3 {
		t.Errorf("Dropped[%q] = %d, want 3", ReasonRejected, got)
	}
	if st.SamplesSent != 1 {
		t.Errorf("SamplesSent = %d, want 1 (rejected samples are not sent)", st.SamplesSent)
	}
	if st.RequestsFailed != 0 {
		t.Errorf("RequestsFailed = %d, want 0 (a 400 is not retried)", st.RequestsFailed)
	}
}

func TestSendStatusClasses(t *testing.T) {
	// Which answers are retried and which dropped: only what the receiver
	// says of the payload (400, 409, 422, 415) drops it; what the device or
	// its network causes (401, 403, 404, 407: an expired token, a captive
	// portal, a proxy) is retried with backoff, as are 408, 429, 5xx,
	// redirects (a POST must not become a GET) and HTML error pages. A 413
	// of a single sample drops it (one sample cannot be split).
	for _, tc := range []struct {
		code    int
		html    bool
		retried bool
	}{
		{http.StatusOK, false, false},
		{http.StatusNoContent, false, false},
		{http.StatusBadRequest, false, false},
		{http.StatusConflict, false, false},
		{http.StatusUnprocessableEntity, false, false},
		{http.StatusUnsupportedMediaType, false, false},
		{http.StatusRequestEntityTooLarge, false, false},
		{http.StatusBadRequest, true, true},
		{http.StatusUnauthorized, false, true},
		{http.StatusForbidden, false, true},
		{http.StatusForbidden, true, true},
		{http.StatusNotFound, false, true},
		{http.StatusMethodNotAllowed, false, true},
		{http.StatusProxyAuthRequired, false, true},
		{http.StatusTooManyRequests, false, true},
		{http.StatusInternalServerError, false, true},
		{http.StatusBadGateway, false, true},
		{http.StatusServiceUnavailable, false, true},
		{http.StatusRequestTimeout, false, true},
		{http.StatusFound, false, true},
		{http.StatusPermanentRedirect, false, true},
	} {
		t.Run(fmt.Sprint(tc.code, " html=", tc.html), func(t *testing.T) {
			src := newFakeSource(buffer.Block{Seq: 1, Series: []buffer.Series{series(1, lblA, 1000)}})
			first := status(tc.code)
			if tc.html {
				first = func(w http.ResponseWriter) {
					w.Header().Set("Content-Type", "text/html; charset=utf-8")
					w.WriteHeader(tc.code)
					io.WriteString(w, "<html><body>Please log in to the hotel wifi</body></html>")
				}
			}
			rcv := newReceiver(t, answers(first, status(http.StatusOK)))
			s := newSender(testConfig(rcv.srv.URL, 1000), src)
			start(t, s)
			src.waitAck(t)

			st := s.Stats()
			wantReqs, wantFailed := 1, uint64(0)
			if tc.retried {
				wantReqs, wantFailed = 2, 1
			}
			if n := len(rcv.requests()); n != wantReqs {
				t.Errorf("%d requests, want %d", n, wantReqs)
			}
			if st.RequestsFailed != wantFailed {
				t.Errorf("RequestsFailed = %d, want %d", st.RequestsFailed, wantFailed)
			}
			rejected := !tc.retried && tc.code/100 == 4
			if got, want := st.Dropped[ReasonRejected] == 1, rejected; got != want {
				t.Errorf("Dropped = %v, want rejected=%v", st.Dropped, want)
			}
			if got, want := st.SamplesSent == 1, !rejected; got != want {
				t.Errorf("SamplesSent = %d, want sent=%v", st.SamplesSent, want)
			}
		})
	}
}

// TestSendKeepsTheBacklogBehindAPortal: a captive portal or an expired
// token answers 403 or 401 for a while. Nothing is dropped, nothing is
// deleted from the source, the tries are one-sample probes, and the whole
// backlog goes once the receiver answers again.
func TestSendKeepsTheBacklogBehindAPortal(t *testing.T) {
	for _, code := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusProxyAuthRequired} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			src := newFakeSource(
				buffer.Block{Seq: 1, Series: []buffer.Series{series(1, lblA, 1000, 2000)}},
				buffer.Block{Seq: 2, Series: []buffer.Series{series(1, lblA, 3000)}},
				buffer.Block{Seq: 3, Series: []buffer.Series{series(2, lblB, 3000)}},
			)
			var mu sync.Mutex
			var ackedWhileFailing []uint64
			rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
				if n < 6 {
					acks, _ := src.state()
					mu.Lock()
					ackedWhileFailing = append(ackedWhileFailing, acks...)
					mu.Unlock()
					status(code)(w)
					return
				}
				status(http.StatusNoContent)(w)
			})
			s := newSender(testConfig(rcv.srv.URL, 1), src) // one block per request
			start(t, s)
			for src.waitAck(t) != 3 {
			}
			st := s.Stats()
			if st.Dropped[ReasonRejected] != 0 || st.Dropped[ReasonDuplicate] != 0 {
				t.Fatalf("Dropped = %v, want none", st.Dropped)
			}
			if st.SamplesSent != 4 || st.RequestsFailed != 6 {
				t.Errorf("SamplesSent %d, RequestsFailed %d; want 4 and 6", st.SamplesSent, st.RequestsFailed)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(ackedWhileFailing) != 0 {
				t.Errorf("blocks %v deleted while the receiver answered %d", ackedWhileFailing, code)
			}
			reqs := rcv.requests()
			if len(reqs) < 6 {
				t.Fatalf("%d requests, want 6 failures and more", len(reqs))
			}
			for i, r := range reqs[1:6] {
				if n := countSamples(r.wr); n != 1 {
					t.Errorf("retry %d carried %d samples, want a one-sample probe", i+1, n)
				}
			}
		})
	}
}

// TestSendSplitsOn413: a receiver (or a proxy) that takes at most two
// samples a request: the request goes again in halves until they pass,
// later requests keep to what passed, and nothing is dropped; a single
// sample over the limit is dropped and counted.
func TestSendSplitsOn413(t *testing.T) {
	src := newFakeSource(
		buffer.Block{Seq: 1, Series: []buffer.Series{series(1, lblA, 1000, 2000, 3000), series(2, lblB, 1000, 2000)}},
		buffer.Block{Seq: 2, Series: []buffer.Series{series(1, lblA, 4000, 5000, 6000)}},
	)
	rcv := newReceiver(t, func(n int, w http.ResponseWriter) {}) // replaced below
	var mu sync.Mutex
	var sizes []int
	rcv.answer = func(n int, w http.ResponseWriter) {
		r := rcv.requests()[n]
		k := countSamples(r.wr)
		mu.Lock()
		sizes = append(sizes, k)
		mu.Unlock()
		if k > 2 || r.wr.Timeseries[0].Samples[0].Timestamp == 6000 {
			status(http.StatusRequestEntityTooLarge)(w)
			return
		}
		status(http.StatusNoContent)(w)
	}
	s := newSender(testConfig(rcv.srv.URL, 5), src) // one block a request
	start(t, s)
	for src.waitAck(t) != 2 {
	}
	mu.Lock()
	defer mu.Unlock()
	// Block 1: 5 (413), 2, 2, 1. Block 2: 2, then 1: the sample at 6000
	// is refused alone.
	if want := []int{5, 2, 2, 1, 2, 1}; !slices.Equal(sizes, want) {
		t.Errorf("requests carried %v samples, want %v", sizes, want)
	}
	st := s.Stats()
	if st.SamplesSent != 7 || st.Dropped[ReasonRejected] != 1 || st.RequestsFailed != 0 {
		t.Errorf("stats %+v: want 7 sent, the one too large dropped as rejected, no failures", st)
	}
	var got [][]int64
	for _, r := range rcv.requests() {
		var ts []int64
		for _, series := range r.wr.Timeseries {
			for _, smp := range series.Samples {
				ts = append(ts, smp.Timestamp)
			}
		}
		got = append(got, ts)
	}
	if want := [][]int64{{1000, 2000, 3000, 1000, 2000}, {1000, 2000}, {3000, 1000}, {2000}, {4000, 5000}, {6000}}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("requests %v, want %v: in order, split where the halves fall", got, want)
	}
}

func TestSendCancelWhileFailing(t *testing.T) {
	src := newFakeSource(
		buffer.Block{Seq: 1, Series: []buffer.Series{series(1, lblA, 1000)}},
		buffer.Block{Seq: 2, Series: []buffer.Series{series(1, lblA, 2000)}},
	)
	rcv := newReceiver(t, answers(status(http.StatusServiceUnavailable)))
	s := newSender(testConfig(rcv.srv.URL, 1000), src)
	stop := start(t, s)

	for range 3 { // let it fail and retry a few times
		select {
		case <-rcv.seen:
		case <-time.After(10 * time.Second):
			t.Fatal("no request within 10s")
		}
	}
	stop() // fails the test if Run does not return

	acks, left := src.state()
	if len(acks) != 0 {
		t.Errorf("acked %v although the receiver never accepted them", acks)
	}
	if !slices.Equal(left, []uint64{1, 2}) {
		t.Errorf("blocks left in the source: %v, want [1 2]", left)
	}
	st := s.Stats()
	if st.SamplesSent != 0 || len(st.Dropped) != 0 {
		t.Errorf("SamplesSent = %d, Dropped = %v; want nothing sent or dropped", st.SamplesSent, st.Dropped)
	}
	// The third answer may not have been counted when Run stopped.
	if st.RequestsFailed < 2 {
		t.Errorf("RequestsFailed = %d, want at least 2", st.RequestsFailed)
	}
}

func TestSendCancelWhileIdle(t *testing.T) {
	src := newFakeSource()
	rcv := newReceiver(t, answers(status(http.StatusOK)))
	s := newSender(testConfig(rcv.srv.URL, 1000), src)
	stop := start(t, s)
	stop() // fails the test if Run keeps waiting for a commit
	if n := len(rcv.requests()); n != 0 {
		t.Errorf("%d requests with nothing to send, want 0", n)
	}
}

func countSamples(wr prompb.WriteRequest) int {
	n := 0
	for _, ts := range wr.Timeseries {
		n += len(ts.Samples)
	}
	return n
}

// TestSendDeletesInBatches: a long backlog is deleted in a few batches, not
// one bbolt commit per request, and what was delivered before a stop is
// deleted on the way out.
func TestSendDeletesInBatches(t *testing.T) {
	var blocks []buffer.Block
	for i := range 40 {
		var ts []int64
		for j := range 5000 {
			ts = append(ts, int64(i*5000+j+1))
		}
		blocks = append(blocks, buffer.Block{Seq: uint64(i + 1), Series: []buffer.Series{series(1, lblA, ts...)}})
	}
	src := newFakeSource(blocks...)
	rcv := newReceiver(t, answers(status(http.StatusOK)))
	s := newSender(testConfig(rcv.srv.URL, 5000), src)
	start(t, s)

	var acks []uint64
	for len(acks) == 0 || acks[len(acks)-1] != 40 {
		acks = append(acks, src.waitAck(t))
	}
	if n := len(rcv.requests()); n != 40 {
		t.Fatalf("%d requests, want 40", n)
	}
	// 200k samples at 50k per batch: 4 deletes, not 40.
	if len(acks) > 4 {
		t.Fatalf("%d deletes for 40 requests: %v", len(acks), acks)
	}
}

// TestSendDeletesWhatWasDeliveredWhenStopped: block 1 is delivered, block 2
// keeps failing; stopping deletes block 1 (not yet deleted: the sender was
// not caught up) and keeps block 2.
func TestSendDeletesWhatWasDeliveredWhenStopped(t *testing.T) {
	src := newFakeSource(
		buffer.Block{Seq: 1, Series: []buffer.Series{series(1, lblA, 1000)}},
		buffer.Block{Seq: 2, Series: []buffer.Series{series(1, lblA, 2000)}},
	)
	rcv := newReceiver(t, answers(status(http.StatusOK), status(http.StatusServiceUnavailable)))
	s := newSender(testConfig(rcv.srv.URL, 1), src)
	stop := start(t, s)
	for range 3 { // the success, then a few failures
		select {
		case <-rcv.seen:
		case <-time.After(10 * time.Second):
			t.Fatal("no request within 10s")
		}
	}
	stop()
	acks, left := src.state()
	if !slices.Equal(acks, []uint64{1}) || !slices.Equal(left, []uint64{2}) {
		t.Fatalf("acks %v, left %v; want [1] and [2]", acks, left)
	}
}
