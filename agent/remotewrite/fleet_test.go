package remotewrite

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ferry-agent/ferry/buffer"
)

// timedReceiver answers each request with answer(n) and notes when it came.
type timedReceiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	at  []time.Time
}

func newTimedReceiver(t *testing.T, answer func(n int) int) *timedReceiver {
	r := &timedReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		r.mu.Lock()
		n := len(r.at)
		r.at = append(r.at, time.Now())
		r.mu.Unlock()
		w.WriteHeader(answer(n))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *timedReceiver) times() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.at...)
}

// blocksAt returns n one-series blocks of two samples each, from t on.
func blocksAt(t time.Time, n int) []buffer.Block {
	var out []buffer.Block
	ms := t.UnixMilli()
	for i := range n {
		out = append(out, buffer.Block{Seq: uint64(i + 1), Series: []buffer.Series{series(1, lblA, ms+int64(2*i)*1000, ms+int64(2*i+1)*1000)}})
	}
	return out
}

// After an outage the sender waits the reconnect hold before it sends on:
// the probe that found the receiver back goes at once, the backlog behind
// it only after the hold. The hold is asked for with the configured
// jitter and the outage's length.
func TestReconnectHoldsTheBacklogBack(t *testing.T) {
	const failures = 3
	rcv := newTimedReceiver(t, func(n int) int {
		if n < failures {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	src := newFakeSource(blocksAt(time.Now().Add(-time.Hour), 4)...)
	cfg := testConfig(rcv.srv.URL, 2)
	cfg.ReconnectJitter = time.Hour
	s := newSender(cfg, src)
	const hold = 300 * time.Millisecond
	var asked []time.Duration
	s.hold = func(jitter, outage time.Duration) time.Duration {
		asked = append(asked, jitter, outage)
		return hold
	}
	start(t, s)
	for src.waitAck(t) != 4 {
	}
	at := rcv.times()
	// 3 failed probes of one sample, the probe that succeeds, then the
	// first block's other sample, then blocks 2 to 4.
	if len(at) != failures+1+4 {
		t.Fatalf("%d requests, want %d", len(at), failures+1+4)
	}
	if gap := at[failures+1].Sub(at[failures]); gap < hold {
		t.Errorf("the backlog went %v after the receiver was back, want at least the hold of %v", gap, hold)
	}
	if len(asked) != 2 || asked[0] != time.Hour || asked[1] <= 0 {
		t.Errorf("hold asked with (jitter, outage) = %v, want once, with 1h and the outage's length", asked)
	}
}

// The hold is below the jitter and below the outage: a fleet back from a
// long outage spreads over the jitter, a device whose request failed once
// waits no longer than that glitch lasted.
func TestReconnectHold(t *testing.T) {
	jitter := 20 * time.Second
	first, last := time.Duration(1<<62), time.Duration(0)
	for range 200 {
		h := reconnectHold(jitter, time.Hour)
		if h < 0 || h >= jitter {
			t.Fatalf("hold %v after an hour's outage, want in [0, %v)", h, jitter)
		}
		first, last = min(first, h), max(last, h)
		if h := reconnectHold(jitter, 2*time.Second); h < 0 || h >= 2*time.Second {
			t.Fatalf("hold %v after a 2s outage, want in [0, 2s)", h)
		}
	}
	// 200 uniform draws over 20 s within 2 s of each other: about 200 * 0.1^199.
	if last-first < 2*time.Second {
		t.Errorf("200 devices back from one outage spread over only %v", last-first)
	}
	if reconnectHold(0, time.Hour) != 0 || reconnectHold(jitter, 0) != 0 {
		t.Error("no jitter, or no outage, must not hold anything back")
	}
}

// The backlog drain limit paces requests that carry old samples: the
// requests after the first wait for the bytes before them.
func TestBacklogRateLimitPacesTheBacklog(t *testing.T) {
	rcv := newTimedReceiver(t, func(int) int { return http.StatusNoContent })
	src := newFakeSource(blocksAt(time.Now().Add(-time.Hour), 6)...)
	cfg := testConfig(rcv.srv.URL, 2)
	const rate = 1000 // bytes per second
	cfg.BacklogBytesPerSecond = rate
	s := newSender(cfg, src)
	start(t, s)
	for src.waitAck(t) != 6 {
	}
	at := rcv.times()
	st := s.Stats()
	if len(at) != 6 {
		t.Fatalf("%d requests, want 6", len(at))
	}
	// Every request's body but the last had to pass before the last began.
	minSpan := time.Duration(float64(st.BytesSent)*5/6/rate*float64(time.Second)) * 9 / 10
	if span := at[5].Sub(at[0]); span < minSpan {
		t.Errorf("6 backlog requests (%d bytes) within %v at %d B/s, want at least %v", st.BytesSent, span, rate, minSpan)
	}
}

// Fresh data is not held to the backlog's limit: at one byte per second a
// paced sender would need minutes; fresh blocks go at once (waitAck gives
// up after 10 s).
func TestBacklogRateLimitLeavesFreshDataAlone(t *testing.T) {
	rcv := newTimedReceiver(t, func(int) int { return http.StatusNoContent })
	src := newFakeSource(blocksAt(time.Now(), 6)...)
	cfg := testConfig(rcv.srv.URL, 2)
	cfg.BacklogBytesPerSecond = 1
	s := newSender(cfg, src)
	start(t, s)
	for src.waitAck(t) != 6 {
	}
}

// After an outage shorter than a commit, the backlog is still in memory
// when the link returns: the sender takes it from the head, and what of it
// is older than backlogAge is paced as a committed backlog is, while the
// fresh samples in the same requests are not held to the limit.
func TestBacklogRateLimitPacesABacklogInMemory(t *testing.T) {
	drain := func(t *testing.T, buf *buffer.Buffer, rate int64, samples uint64) (*timedReceiver, Stats) {
		rcv := newTimedReceiver(t, func(int) int { return http.StatusNoContent })
		cfg := testConfig(rcv.srv.URL, 50) // one series (40 samples) a request
		cfg.BacklogBytesPerSecond = rate
		s := newSender(cfg, buf)
		start(t, s)
		deadline := time.Now().Add(20 * time.Second)
		for s.Stats().SamplesSent < samples {
			if time.Now().After(deadline) {
				t.Fatalf("not sent within 20 s at %d B/s: %+v", rate, s.Stats())
			}
			time.Sleep(10 * time.Millisecond)
		}
		return rcv, s.Stats()
	}

	t.Run("a 10-minute outage", func(t *testing.T) {
		buf := openBuffer(t)
		appendHead(buf, time.Now().Add(-10*time.Minute), 40) // never committed
		const rate = 1000                                    // bytes per second
		rcv, st := drain(t, buf, rate, 400)
		at := rcv.times()
		if len(at) != 10 || st.SamplesSent != 400 {
			t.Fatalf("%d requests, %d samples; want 10 and 400", len(at), st.SamplesSent)
		}
		// Each request is 32 samples older than backlogAge and 8 younger:
		// every one but the last paced for at least three quarters of its bytes.
		minSpan := time.Duration(float64(st.BytesSent)*9/10*3/4/rate*float64(time.Second)) * 9 / 10
		if span := at[9].Sub(at[0]); span < minSpan {
			t.Errorf("10 requests (%d bytes) within %v at %d B/s, want at least %v", st.BytesSent, span, rate, minSpan)
		}
	})
	t.Run("fresh data only", func(t *testing.T) {
		buf := openBuffer(t)
		appendHead(buf, time.Now().Add(-time.Minute), 4)
		drain(t, buf, 1, 40) // paced at 1 B/s, its request would take minutes
	})
}
