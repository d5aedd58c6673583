package remotewrite

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferry-agent/ferry/buffer"
)

// fillBuffer commits n blocks of the series m{i="0".."9"}, one sample each,
// at the given start and 15 s apart, one commit per step.
func fillBuffer(t *testing.T, b *buffer.Buffer, start time.Time, n int) {
	t.Helper()
	for step := range n {
		appendStep(b, start.Add(time.Duration(step)*15*time.Second))
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// appendHead appends what fillBuffer commits, without a commit: a backlog
// still in memory, as after an outage shorter than a commit.
func appendHead(b *buffer.Buffer, start time.Time, n int) {
	for step := range n {
		appendStep(b, start.Add(time.Duration(step)*15*time.Second))
	}
}

// appendStep appends one sample of each of the series m{i="0".."9"} at at.
func appendStep(b *buffer.Buffer, at time.Time) {
	ts := at.UnixMilli()
	for i := range 10 {
		b.Append(labels.FromStrings("__name__", "m", "i", fmt.Sprint(i)), ts, float64(ts))
	}
}

// requestBytes is the size of the request that sends series alone.
func requestBytes(t *testing.T, url string, maxSamples int, series []buffer.Series) int64 {
	t.Helper()
	probe := newSender(testConfig(url, maxSamples), newFakeSource(buffer.Block{Seq: 1, Series: series}))
	stop := start(t, probe)
	for probe.Stats().BytesSent == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	return int64(probe.Stats().BytesSent)
}

func openBuffer(t *testing.T) *buffer.Buffer {
	t.Helper()
	b, err := buffer.Open(buffer.Options{Dir: t.TempDir(), MaxSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// oldestInRequest returns the oldest sample time of a request, as a time.
func oldestInRequest(r request) time.Time {
	oldest := int64(1 << 62)
	for _, ts := range r.wr.Timeseries {
		for _, s := range ts.Samples {
			oldest = min(oldest, s.Timestamp)
		}
	}
	return time.UnixMilli(oldest)
}

func TestFreshFirstSendsNewDataAheadOfTheBacklog(t *testing.T) {
	buf := openBuffer(t)
	outage := time.Now().Add(-time.Hour)
	fillBuffer(t, buf, outage, 6) // the backlog: six commits from an hour ago

	release := make(chan struct{})
	rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n == 0 {
			<-release // the first backlog request is in flight while new data is committed
		}
		status(http.StatusOK)(w)
	})
	cfg := testConfig(rcv.srv.URL, 20) // two blocks a request
	cfg.FreshFirst = true
	s := newSender(cfg, buf)
	start(t, s)

	select {
	case <-rcv.seen:
		t.Fatal("the first request was answered before it was released")
	case <-time.After(50 * time.Millisecond):
	}
	now := time.Now().Add(-time.Second)
	fillBuffer(t, buf, now, 1)
	close(release)

	deadline := time.Now().Add(10 * time.Second)
	for buf.Stats().Samples > 0 || buf.Stats().HeadSamples > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not drained: %+v, %d requests", buf.Stats(), len(rcv.requests()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	reqs := rcv.requests()
	var order []string
	for _, r := range reqs {
		if oldestInRequest(r).After(now.Add(-time.Second)) {
			order = append(order, "fresh")
		} else {
			order = append(order, "backlog")
		}
	}
	if want := []string{"backlog", "fresh", "backlog", "backlog"}; !slices.Equal(order, want) {
		t.Errorf("requests %v, want %v: the fresh commit right after the request in flight", order, want)
	}
	if st := s.Stats(); st.SamplesSent != 70 {
		t.Errorf("%d samples sent, want all 70 once", st.SamplesSent)
	}
}

func TestDailyBudgetKeepsAQuarterForFreshData(t *testing.T) {
	buf := openBuffer(t)
	fillBuffer(t, buf, time.Now().Add(-2*time.Hour), 40)
	rcv := newReceiver(t, answers(status(http.StatusOK)))

	// Measure one request's size, then set the budget to four of them.
	perRequest := requestBytes(t, rcv.srv.URL, 10, firstBlockSeries(t, buf))

	cfg := testConfig(rcv.srv.URL, 10)  // one block a request
	cfg.MaxBytesPerDay = 4 * perRequest // and no FreshFirst: the budget's holding back puts fresh data first
	var log syncBuffer
	s, err := New(cfg, buf, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	start(t, s)
	// The backlog stops once three quarters of the budget are used; give it
	// time to (wrongly) go on before looking.
	deadline := time.Now().Add(20 * time.Second)
	for int64(s.Stats().BudgetUsedBytes) < 3*perRequest {
		if time.Now().After(deadline) {
			t.Fatalf("the backlog stopped at %d bytes, before three quarters of the budget of %d", s.Stats().BudgetUsedBytes, 4*perRequest)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	st := s.Stats()
	// A request may overshoot by its own size.
	if int64(st.BytesSent) > 4*perRequest {
		t.Fatalf("backlog sent %d bytes (%d samples); want at most three of four requests of %d bytes, plus one", st.BytesSent, st.SamplesSent, perRequest)
	}
	backlogSent := st.SamplesSent
	if st.BudgetUsedBytes != st.BytesSent {
		t.Errorf("budget used %d, bytes sent %d", st.BudgetUsedBytes, st.BytesSent)
	}

	// Fresh data still goes, into the quarter kept for it.
	fillBuffer(t, buf, time.Now(), 1)
	deadline = time.Now().Add(20 * time.Second)
	for s.Stats().SamplesSent < backlogSent+10 {
		if time.Now().After(deadline) {
			t.Fatal("fresh data was not sent within the budget kept for it")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if got := s.Stats().SamplesSent - backlogSent; got != 10 {
		t.Errorf("after the fresh commit %d more samples went, want its 10 only (the backlog waits for tomorrow)", got)
	}
	if left := buf.Stats().Samples; left == 0 {
		t.Error("the whole backlog went out past the budget")
	}
	if l := log.String(); !strings.Contains(l, "sending fresh data first") || !strings.Contains(l, "daily byte budget holds the backlog back") {
		t.Errorf("no line says that fresh data now goes first, and why:\n%s", l)
	}
}

// After an outage shorter than a commit the backlog is still in memory;
// it too only uses what is left beyond the quarter of the budget kept for
// fresh data, and fresh data still goes once the rest waits for tomorrow.
func TestDailyBudgetKeepsAQuarterForFreshDataWithTheBacklogInMemory(t *testing.T) {
	buf := openBuffer(t)
	appendHead(buf, time.Now().Add(-10*time.Minute), 32) // 8 minutes of samples older than backlogAge
	rcv := newReceiver(t, answers(status(http.StatusOK)))

	// Measure one request's size (one series, as below), then set the
	// budget to four of them.
	blk, _ := buf.TakeLive(32, false)
	one := blk.Series[0] // the buffer's again once handed back: a copy
	one.T, one.V = slices.Clone(one.T), slices.Clone(one.V)
	buf.LiveFailed(buffer.Block{})
	perRequest := requestBytes(t, rcv.srv.URL, 32, []buffer.Series{one})

	cfg := testConfig(rcv.srv.URL, 32) // one series a request
	cfg.MaxBytesPerDay = 4 * perRequest
	s := newSender(cfg, buf)
	start(t, s)
	deadline := time.Now().Add(20 * time.Second)
	for int64(s.Stats().BudgetUsedBytes) < 3*perRequest {
		if time.Now().After(deadline) {
			t.Fatalf("the backlog stopped at %d bytes, before three quarters of the budget of %d", s.Stats().BudgetUsedBytes, 4*perRequest)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // time to (wrongly) go on
	st := s.Stats()
	if int64(st.BytesSent) > 4*perRequest { // a request may overshoot by its own size
		t.Fatalf("the backlog in memory sent %d bytes (%d samples); want at most three of four requests of %d bytes, plus one", st.BytesSent, st.SamplesSent, perRequest)
	}
	if st.SamplesSent >= 320 || buf.Stats().Samples+buf.Stats().HeadSamples == 0 {
		t.Fatalf("the whole backlog went out past the budget: %d samples sent, %+v", st.SamplesSent, buf.Stats())
	}
	backlogSent := st.SamplesSent

	// Fresh data still goes, into the quarter kept for it.
	appendHead(buf, time.Now(), 1)
	buf.Collected() // as the agent does after each collection
	deadline = time.Now().Add(20 * time.Second)
	for s.Stats().SamplesSent < backlogSent+10 {
		if time.Now().After(deadline) {
			t.Fatalf("fresh data was not sent within the budget kept for it: %d samples sent, %+v", s.Stats().SamplesSent, buf.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if got := s.Stats().SamplesSent - backlogSent; got != 10 {
		t.Errorf("after the fresh collection %d more samples went, want its 10 only (the backlog waits for tomorrow)", got)
	}
}

// TestDailyBudgetThatDoesNotBindKeepsOldestFirst: a budget alone does not
// put fresh data ahead of the backlog while the backlog fits in it:
// receivers without an out-of-order window would refuse the backlog.
func TestDailyBudgetThatDoesNotBindKeepsOldestFirst(t *testing.T) {
	buf := openBuffer(t)
	fillBuffer(t, buf, time.Now().Add(-time.Hour), 6)
	release := make(chan struct{})
	rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n == 0 {
			<-release
		}
		status(http.StatusOK)(w)
	})
	cfg := testConfig(rcv.srv.URL, 20)
	cfg.MaxBytesPerDay = 1 << 30
	var log syncBuffer
	s, err := New(cfg, buf, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	start(t, s)
	for len(rcv.requests()) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	fillBuffer(t, buf, time.Now().Add(-time.Second), 1) // fresh, while the first request is in flight
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for buf.Stats().Samples > 0 || buf.Stats().HeadSamples > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not drained: %+v", buf.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var last time.Time
	for i, r := range rcv.requests() {
		if o := oldestInRequest(r); o.Before(last) {
			t.Errorf("request %d starts at %s, before the request ahead of it: fresh data went ahead of the backlog", i, o)
		}
		last = oldestInRequest(r)
	}
	if strings.Contains(log.String(), "fresh data first") {
		t.Errorf("the log says fresh data goes first:\n%s", log.String())
	}
}

// syncBuffer is a bytes.Buffer for a logger that the sender's goroutine
// writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// firstBlockSeries reads the buffer's first block, to size one request.
func firstBlockSeries(t *testing.T, b *buffer.Buffer) []buffer.Series {
	t.Helper()
	blocks, err := b.Read(0, 1)
	if err != nil || len(blocks) == 0 {
		t.Fatalf("read: %v, %d blocks", err, len(blocks))
	}
	return blocks[0].Series
}
