package remotewrite

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/ferry-agent/ferry/buffer"
)

// tsdbReceiver answers as a Prometheus without an out-of-order window: a
// request with a sample older than the newest of its series, or at its
// time with another value, is refused whole with 400 "out of order sample"
// and nothing of it is written; an identical sample at the newest time is
// taken. lostAnswers requests are written and then answered 502, as when
// the answer is lost on the way back. A 2.0 request's answer has the
// spec's Written headers.
type tsdbReceiver struct {
	*receiver
	mu          sync.Mutex
	newest      map[string]prompb.Sample
	written     int
	lostAnswers int
	// unreached: the requests (by number, from 0) a proxy answers 502
	// without passing them on; to ferry, as a lost answer.
	unreached map[int]bool
	// partial: a request is not refused whole; the receiver writes what
	// it can and refuses the rest with the same 400, as Thanos Receive
	// and Mimir do (with 1.0, not saying what they wrote) and Prometheus
	// 3 with 2.0.
	partial bool
}

func newTSDBReceiver(t *testing.T, lostAnswers int) *tsdbReceiver {
	r := &tsdbReceiver{newest: map[string]prompb.Sample{}, lostAnswers: lostAnswers}
	r.receiver = newReceiver(t, func(n int, w http.ResponseWriter) {
		req := r.receiver.requests()[n]
		wr := req.wr
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.unreached[n] {
			status(http.StatusBadGateway)(w)
			return
		}
		written := 0 // for the Written header: identical samples count
		answer := func(code int) {
			if req.v2 {
				w.Header().Set("X-Prometheus-Remote-Write-Samples-Written", strconv.Itoa(written))
				w.Header().Set("X-Prometheus-Remote-Write-Exemplars-Written", "0")
			}
			if code == http.StatusBadRequest {
				http.Error(w, "out of order sample", code)
				return
			}
			w.WriteHeader(code)
		}
		for _, ts := range wr.Timeseries {
			last, ok := r.newest[seriesKey(ts)]
			for _, s := range ts.Samples {
				if !r.partial && outOfOrder(s, last, ok) {
					answer(http.StatusBadRequest)
					return
				}
				last, ok = s, true
			}
		}
		refused := false
		for _, ts := range wr.Timeseries {
			for _, s := range ts.Samples {
				switch last, ok := r.newest[seriesKey(ts)]; {
				case outOfOrder(s, last, ok):
					refused = true
				case !ok || s.Timestamp > last.Timestamp:
					r.newest[seriesKey(ts)] = s
					r.written++
					written++
				default:
					written++
				}
			}
		}
		if refused {
			answer(http.StatusBadRequest)
			return
		}
		if r.lostAnswers > 0 {
			r.lostAnswers--
			status(http.StatusBadGateway)(w)
			return
		}
		answer(http.StatusNoContent)
	})
	return r
}

// outOfOrder reports whether a receiver without an out-of-order window
// refuses s after last, the newest it has of the series (ok: it has one):
// older, or at the same time with another value.
func outOfOrder(s, last prompb.Sample, ok bool) bool {
	return ok && (s.Timestamp < last.Timestamp || s.Timestamp == last.Timestamp && s.Value != last.Value)
}

func seriesKey(ts prompb.TimeSeries) string {
	k := ""
	for _, l := range ts.Labels {
		k += l.Name + "=" + l.Value + ","
	}
	return k
}

// writtenSamples is how many samples the receiver has written.
func (r *tsdbReceiver) writtenSamples() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.written
}

// preload writes samples into the receiver, as an earlier run did.
func (r *tsdbReceiver) preload(blocks ...buffer.Block) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range blocks {
		for _, s := range b.Series {
			var ts prompb.TimeSeries
			s.Labels.Range(func(l labels.Label) { ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value}) })
			r.newest[seriesKey(ts)] = prompb.Sample{Timestamp: s.T[len(s.T)-1], Value: s.V[len(s.V)-1]}
			r.written += len(s.T)
		}
	}
}

// TestSendCountsResentSamplesAsDuplicate: after a crash, blocks delivered
// and not yet deleted are sent again; the receiver refuses them as out of
// order, and refuses a request whole for one of them. Refused whole, the
// samples from before the start go again one time per request until the
// receiver takes one: the held ones count as duplicate, not rejected, and
// the never-delivered ones behind them arrive, as does the fresh one.
func TestSendCountsResentSamplesAsDuplicate(t *testing.T) {
	start0 := time.Now()
	old := start0.Add(-time.Minute).UnixMilli() // collected by the earlier run
	sent := []buffer.Block{
		{Seq: 1, Series: []buffer.Series{series(1, lblA, old, old+1000), series(2, lblB, old)}},
		{Seq: 2, Series: []buffer.Series{series(1, lblA, old+2000)}},
	}
	notSent := []buffer.Block{
		{Seq: 3, Series: []buffer.Series{series(1, lblA, old+3000), series(2, lblB, old+3000)}}, // old too, but never delivered
		{Seq: 4, Series: []buffer.Series{series(1, lblA, old+4000)}},
	}
	fresh := []buffer.Block{
		{Seq: 5, Series: []buffer.Series{series(1, lblA, start0.UnixMilli()+1000)}},
	}
	rcv := newTSDBReceiver(t, 0)
	rcv.preload(sent...)
	src := newFakeSource(append(append(append([]buffer.Block(nil), sent...), notSent...), fresh...)...)
	cfg := testConfig(rcv.srv.URL, 1000) // all in one request, but for the samples from before the start
	cfg.SentBefore = start0
	s := newSender(cfg, src)
	start(t, s)
	for src.waitAck(t) != 5 {
	}
	st := s.Stats()
	if st.Dropped[ReasonRejected] != 0 {
		t.Errorf("Dropped %v: resent samples counted as rejected", st.Dropped)
	}
	// All five blocks are refused, and so is their part from before the
	// start, not counted. Block 1's two times are refused: 3 duplicates.
	// Block 2 is the newest the receiver has of its series, taken again as
	// identical: from it on, the rest of that part goes in one request,
	// and the fresh block in another.
	if written := rcv.writtenSamples(); st.Dropped[ReasonDuplicate] != 3 || st.SamplesSent != 5 || written != 8 {
		t.Errorf("stats %+v, %d written: want 3 duplicates, 5 sent, all 8 at the receiver", st, written)
	}
	if n := len(rcv.requests()); n != 7 {
		t.Errorf("%d requests, want 7 (all, the part from before the start, its first three times on their own, its rest, the fresh block)", n)
	}
}

// TestSendSplitsWhatCameBeforeTheStartByTime: one block from before the
// start holds three collections; the earlier run delivered the first two,
// and the request with the third was lost when it died. Refused whole, the
// block goes again one time per request until the receiver takes one: the
// first counts as duplicate, the second is taken again as identical to
// the newest it has, and the third arrives. A receiver that writes in
// part writes the third with the first refusal: with 1.0 the times go on
// their own all the same, and the second is refused too (no longer the
// newest); with 2.0 its Written header settles them at once. Either way
// nothing is rejected, and all is at the receiver.
func TestSendSplitsWhatCameBeforeTheStartByTime(t *testing.T) {
	for _, tc := range []struct {
		proto                   Protocol
		partial                 bool
		wantDuplicate, wantSent uint64
		wantRequests            int
	}{
		{Protocol1, false, 2, 4, 4}, // the block, then each time on its own
		{Protocol1, true, 4, 2, 4},
		{Protocol2, false, 2, 4, 4},
		{Protocol2, true, 2, 4, 1}, // "4 written": the second again, and the third
	} {
		t.Run(fmt.Sprintf("%v/partial=%v", tc.proto, tc.partial), func(t *testing.T) {
			start0 := time.Now()
			c1 := start0.Add(-time.Minute).UnixMilli()
			c2, c3 := c1+15000, c1+30000
			rcv := newTSDBReceiver(t, 0)
			rcv.partial = tc.partial
			rcv.preload(buffer.Block{Series: []buffer.Series{series(1, lblA, c1, c2), series(2, lblB, c1, c2)}})
			src := newFakeSource(buffer.Block{Seq: 1, Series: []buffer.Series{series(1, lblA, c1, c2, c3), series(2, lblB, c1, c2, c3)}})
			cfg := testConfig(rcv.srv.URL, 1000)
			cfg.SentBefore = start0
			cfg.Protocol = tc.proto
			s := newSender(cfg, src)
			start(t, s)
			src.waitAck(t)
			st, written := s.Stats(), rcv.writtenSamples()
			if written != 6 || st.Dropped[ReasonDuplicate] != tc.wantDuplicate || st.Dropped[ReasonRejected] != 0 || st.SamplesSent != tc.wantSent {
				t.Errorf("the receiver wrote %d of 6 samples; stats %+v: want all 6 written, %d duplicates, %d sent", written, st, tc.wantDuplicate, tc.wantSent)
			}
			if n := len(rcv.requests()); n != tc.wantRequests {
				t.Errorf("%d requests, want %d", n, tc.wantRequests)
			}
		})
	}
}

// The same refusal of samples ferry never sent (nothing before, no lost
// answer: ferry push, or samples collected since the start) is a
// rejection: another writer has newer samples of the series.
func TestSendCountsOutOfOrderOfNewSamplesAsRejected(t *testing.T) {
	now := time.Now().UnixMilli()
	rcv := newTSDBReceiver(t, 0)
	rcv.preload(buffer.Block{Series: []buffer.Series{series(1, lblA, now+5000)}}) // someone else's
	src := newFakeSource(buffer.Block{Seq: 1, Series: []buffer.Series{series(1, lblA, now, now+1000)}})
	cfg := testConfig(rcv.srv.URL, 1000)
	cfg.SentBefore = time.UnixMilli(now - 1000)
	s := newSender(cfg, src)
	start(t, s)
	src.waitAck(t)
	if st := s.Stats(); st.Dropped[ReasonRejected] != 2 || st.Dropped[ReasonDuplicate] != 0 {
		t.Errorf("Dropped %v: want 2 rejected", st.Dropped)
	}
}

// TestSendCountsLostAnswersAsDuplicate: the receiver writes a request and
// its answer is lost (502 from a proxy); sent again, the samples are
// refused as out of order: duplicates, not rejections, with nothing sent
// before the start.
func TestSendCountsLostAnswersAsDuplicate(t *testing.T) {
	rcv := newTSDBReceiver(t, 1)
	src := newFakeSource(
		buffer.Block{Seq: 1, Series: []buffer.Series{series(1, lblA, 1000, 2000), series(2, lblB, 1000)}},
	)
	s := newSender(testConfig(rcv.srv.URL, 1000), src)
	start(t, s)
	src.waitAck(t)
	// The probe after the failure carries the oldest sample, refused; the
	// rest go again and are taken: identical to the newest of their
	// series, as Prometheus takes them.
	st := s.Stats()
	if st.Dropped[ReasonRejected] != 0 || st.Dropped[ReasonDuplicate] != 1 || st.SamplesSent != 2 || st.RequestsFailed != 1 {
		t.Errorf("stats %+v: want 1 duplicate, 2 sent (again), after one failure", st)
	}
	if n := rcv.writtenSamples(); n != 3 {
		t.Errorf("the receiver wrote %d samples, want 3", n)
	}
}

// Samples too old for the receiver ("out of bounds", "too old sample")
// never reached it: rejected, whenever they were collected.
func TestSendCountsOutOfBoundsAsRejected(t *testing.T) {
	src := newFakeSource(buffer.Block{Seq: 1, Series: []buffer.Series{series(1, lblA, 1000)}})
	rcv := newReceiver(t, answers(func(w http.ResponseWriter) { http.Error(w, "out of bounds", http.StatusBadRequest) }))
	cfg := testConfig(rcv.srv.URL, 1000)
	cfg.SentBefore = time.Now()
	s := newSender(cfg, src)
	start(t, s)
	src.waitAck(t)
	if st := s.Stats(); st.Dropped[ReasonRejected] != 1 || st.Dropped[ReasonDuplicate] != 0 {
		t.Errorf("Dropped %v: want 1 rejected", st.Dropped)
	}
}

// collector returns a function that collects one series, m, into buf at
// the given times, each sample's value its time.
func collector(buf *buffer.Buffer) func(ts ...int64) {
	lset := labels.FromStrings("__name__", "m")
	return func(ts ...int64) {
		for _, at := range ts {
			buf.Append(lset, at, float64(at))
		}
	}
}

// waitSettled waits until s has sent or counted n samples of buf, and none
// is in flight.
func waitSettled(t *testing.T, s *Sender, buf *buffer.Buffer, n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := s.Stats()
		if st.SamplesSent+st.Dropped[ReasonDuplicate]+st.Dropped[ReasonRejected] >= n && buf.Stats().LiveSamples == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled within 10 s: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSendCountsOnlyWhatTheReceiverHoldsAsDuplicate: two live requests
// fail alike (502), the first written with its answer lost, the second
// never passed on, and each takes in what was collected meanwhile; sent
// again together, they are refused whole for the first one's samples.
// Only those are duplicates: the second one's own go apart and arrive.
func TestSendCountsOnlyWhatTheReceiverHoldsAsDuplicate(t *testing.T) {
	buf := openBuffer(t)
	collect := collector(buf)
	rcv := newTSDBReceiver(t, 1)
	rcv.unreached = map[int]bool{2: true}
	answer := rcv.answer
	rcv.answer = func(n int, w http.ResponseWriter) {
		answer(n, w)
		switch n { // collections while a request is out
		case 0:
			collect(5000, 6000)
		case 2:
			collect(7000)
		}
	}
	collect(1000, 2000, 3000, 4000)
	s := newSender(testConfig(rcv.srv.URL, 1000), buf)
	start(t, s)
	// 0: 1-4 written, answer lost. 1: the probe 1, a duplicate. 2: 2-6,
	// not passed on. 3: the probe 2, a duplicate. 4: 3-7, refused for 3
	// and 4. Then 3-4 are duplicates, 5-7 new.
	waitSettled(t, s, buf, 7)
	st, written := s.Stats(), rcv.writtenSamples()
	if written != 7 || st.Dropped[ReasonDuplicate] != 4 || st.Dropped[ReasonRejected] != 0 || st.SamplesSent != 3 {
		t.Errorf("the receiver wrote %d of 7 samples; stats %+v: want all 7 written, 4 duplicates, 3 sent", written, st)
	}
}

// TestSendCountsWhatAPartialReceiverHoldsAsDuplicate: a receiver that
// writes what it can of a request and refuses the rest writes one, its
// answer lost; sent again with what was collected meanwhile, the request
// is refused for the first samples, and the new ones are written. With
// 1.0 ferry cannot tell which it wrote: the new ones go again, are refused
// in turn, and count as duplicates too, not as rejected. With 2.0 the
// Written header tells: the new ones are sent, the rest duplicates.
func TestSendCountsWhatAPartialReceiverHoldsAsDuplicate(t *testing.T) {
	for _, tc := range []struct {
		proto                   Protocol
		wantDuplicate, wantSent uint64
		wantRequests            int
	}{
		// 0: 1-4, answer lost. 1: the probe 1. 2: 2-6, 5 and 6 written.
		// Then 2-4 and 5-6 on their own, each refused.
		{Protocol1, 6, 0, 5},
		// 2: 2-6, "3 written" (4 again, identical to the newest): 2 and 3
		// are duplicates, 4-6 sent.
		{Protocol2, 3, 3, 3},
	} {
		t.Run(tc.proto.String(), func(t *testing.T) {
			buf := openBuffer(t)
			collect := collector(buf)
			rcv := newTSDBReceiver(t, 1)
			rcv.partial = true
			answer := rcv.answer
			rcv.answer = func(n int, w http.ResponseWriter) {
				answer(n, w)
				if n == 0 {
					collect(5000, 6000) // while the first request is out
				}
			}
			collect(1000, 2000, 3000, 4000)
			cfg := testConfig(rcv.srv.URL, 1000)
			cfg.Protocol = tc.proto
			s := newSender(cfg, buf)
			start(t, s)
			waitSettled(t, s, buf, 6)
			st, written := s.Stats(), rcv.writtenSamples()
			if written != 6 || st.Dropped[ReasonDuplicate] != tc.wantDuplicate || st.Dropped[ReasonRejected] != 0 || st.SamplesSent != tc.wantSent {
				t.Errorf("the receiver wrote %d of 6 samples; stats %+v: want all 6 written, %d duplicates, %d sent", written, st, tc.wantDuplicate, tc.wantSent)
			}
			if n := len(rcv.requests()); n != tc.wantRequests {
				t.Errorf("%d requests, want %d", n, tc.wantRequests)
			}
		})
	}
}
