package remotewrite

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/ferry-agent/ferry/agent/remotewrite/codec"
	"github.com/ferry-agent/ferry/agent/remotewrite/codec/codectest"
	"github.com/ferry-agent/ferry/buffer"
)

// specReceiver is a remote-write endpoint that follows the 2.0 spec's
// receiver side: it negotiates on Content-Type (415 for a message it does
// not take), decodes 1.0 with prompb and 2.0 with Prometheus' v2 types, and
// answers 2.0 requests with the X-Prometheus-Remote-Write-*-Written headers.
// With ignoreType it is instead a broken 1.0 receiver that reads every body
// as 1.0 and sends no Written headers.
type specReceiver struct {
	t          *testing.T
	srv        *httptest.Server
	accept     map[string]bool // proto message names
	ignoreType bool

	mu      sync.Mutex
	samples map[string][][2]float64 // series -> (t, v), as written
	reqs    []specRequest
}

type specRequest struct {
	contentType, version string
	bodyLen, samples     int
	status               int
}

func newSpecReceiver(t *testing.T, accept ...string) *specReceiver {
	r := &specReceiver{t: t, accept: map[string]bool{}, samples: map[string][][2]float64{}}
	for _, m := range accept {
		r.accept[m] = true
	}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *specReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	rec := specRequest{contentType: req.Header.Get("Content-Type"), version: req.Header.Get("X-Prometheus-Remote-Write-Version"), bodyLen: len(body)}
	defer func() {
		r.mu.Lock()
		r.reqs = append(r.reqs, rec)
		r.mu.Unlock()
	}()
	msg := codec.MessageV1
	if !r.ignoreType {
		media, params, err := mime.ParseMediaType(rec.contentType)
		if err != nil || media != "application/x-protobuf" {
			rec.status = http.StatusUnsupportedMediaType
			http.Error(w, "not protobuf", rec.status)
			return
		}
		if p, ok := params["proto"]; ok {
			msg = p
		}
		if !r.accept[msg] {
			rec.status = http.StatusUnsupportedMediaType
			http.Error(w, msg+" is not accepted", rec.status)
			return
		}
	}
	if req.Header.Get("Content-Encoding") != "snappy" {
		rec.status = http.StatusUnsupportedMediaType
		http.Error(w, "not snappy", rec.status)
		return
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		rec.status = http.StatusBadRequest
		http.Error(w, err.Error(), rec.status)
		return
	}
	got := map[string][][2]float64{}
	switch msg {
	case codec.MessageV1:
		var wr prompb.WriteRequest
		if err := wr.Unmarshal(raw); err != nil {
			rec.status = http.StatusBadRequest
			http.Error(w, err.Error(), rec.status)
			return
		}
		for _, ts := range wr.Timeseries {
			b := labels.NewScratchBuilder(len(ts.Labels))
			for _, l := range ts.Labels {
				b.Add(l.Name, l.Value)
			}
			for _, s := range ts.Samples {
				got[b.Labels().String()] = append(got[b.Labels().String()], [2]float64{float64(s.Timestamp), s.Value})
			}
		}
	case codec.MessageV2:
		v2, err := codectest.DecodeV2(raw)
		if err != nil {
			rec.status = http.StatusBadRequest
			http.Error(w, err.Error(), rec.status)
			return
		}
		for k, ss := range v2 {
			for _, s := range ss {
				got[k] = append(got[k], [2]float64{float64(s.Timestamp), s.Value})
			}
		}
	}
	r.mu.Lock()
	for k, ss := range got {
		r.samples[k] = append(r.samples[k], ss...)
		rec.samples += len(ss)
	}
	r.mu.Unlock()
	if msg == codec.MessageV2 && !r.ignoreType {
		w.Header().Set("X-Prometheus-Remote-Write-Samples-Written", strconv.Itoa(rec.samples))
		w.Header().Set("X-Prometheus-Remote-Write-Histograms-Written", "0")
		w.Header().Set("X-Prometheus-Remote-Write-Exemplars-Written", "0")
	}
	rec.status = http.StatusNoContent
	w.WriteHeader(rec.status)
}

func (r *specReceiver) requests() []specRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

// checkSamples: every sample of blocks at the receiver, once, exactly.
func (r *specReceiver) checkSamples(t *testing.T, blocks []buffer.Block) {
	t.Helper()
	want := map[string][][2]float64{}
	for _, blk := range blocks {
		for _, s := range blk.Series {
			for i := range s.T {
				want[s.Labels.String()] = append(want[s.Labels.String()], [2]float64{float64(s.T[i]), s.V[i]})
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, w := range want {
		if !slices.Equal(r.samples[k], w) {
			t.Errorf("%s at the receiver: %v, want %v", k, r.samples[k], w)
		}
	}
	if len(r.samples) != len(want) {
		t.Errorf("%d series at the receiver, want %d", len(r.samples), len(want))
	}
}

func testBlocks() []buffer.Block {
	return []buffer.Block{
		{Seq: 1, Series: []buffer.Series{series(1, lblA, 1000, 2000), series(2, lblB, 1000)}},
		{Seq: 2, Series: []buffer.Series{series(2, lblB, 3000), series(1, lblA, 3000)}},
		{Seq: 3, Series: []buffer.Series{series(3, lblC, 4000), series(1, lblA, 4000, 5000)}},
	}
}

func TestSendV2ToA2Receiver(t *testing.T) {
	blocks := testBlocks()
	src := newFakeSource(testBlocks()...) // Ack clears what it holds
	rcv := newSpecReceiver(t, codec.MessageV1, codec.MessageV2)
	cfg := testConfig(rcv.srv.URL, 4) // several requests
	cfg.Protocol = Protocol2
	s := newSender(cfg, src)
	start(t, s)
	for src.waitAck(t) != 3 {
	}
	reqs := rcv.requests()
	for i, r := range reqs {
		if r.contentType != "application/x-protobuf;proto=io.prometheus.write.v2.Request" || r.version != "2.0.0" {
			t.Errorf("request %d: Content-Type %q, version %q; want 2.0's", i, r.contentType, r.version)
		}
		if r.status != http.StatusNoContent {
			t.Errorf("request %d: answered %d", i, r.status)
		}
	}
	rcv.checkSamples(t, blocks)
	st := s.Stats()
	if st.Protocol != Protocol2 || st.SamplesSent != 8 || st.Dropped[ReasonRejected] != 0 {
		t.Errorf("stats %+v: want protocol 2, 8 samples sent, none dropped", st)
	}
}

// TestSendV2FallsBackTo1 holds the spec's fall back: a receiver that
// answers 415 to 2.0, or a broken 1.0 one that answers 2xx without the
// Written headers, gets the same samples again as 1.0, and 1.0 from then
// on; nothing is lost or dropped.
func TestSendV2FallsBackTo1(t *testing.T) {
	for _, tc := range []struct {
		name string
		rcv  func(t *testing.T) *specReceiver
	}{
		{"415", func(t *testing.T) *specReceiver { return newSpecReceiver(t, codec.MessageV1) }},
		{"2xx without Written headers", func(t *testing.T) *specReceiver {
			r := newSpecReceiver(t)
			r.ignoreType = true
			return r
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blocks := testBlocks()
			src := newFakeSource(testBlocks()...) // Ack clears what it holds
			rcv := tc.rcv(t)
			cfg := testConfig(rcv.srv.URL, 4)
			cfg.Protocol = Protocol2
			s := newSender(cfg, src)
			start(t, s)
			for src.waitAck(t) != 3 {
			}
			reqs := rcv.requests()
			if len(reqs) < 3 {
				t.Fatalf("%d requests, want the refused 2.0 one and then 1.0", len(reqs))
			}
			if reqs[0].version != "2.0.0" {
				t.Errorf("first request is version %q, want 2.0.0", reqs[0].version)
			}
			for i, r := range reqs[1:] {
				if r.contentType != "application/x-protobuf" || r.version != "0.1.0" || r.status != http.StatusNoContent {
					t.Errorf("request %d after the fall back: %+v, want 1.0 and taken", i+1, r)
				}
			}
			rcv.checkSamples(t, blocks)
			st := s.Stats()
			if st.Protocol != Protocol1 || st.SamplesSent != 8 || st.Dropped[ReasonRejected] != 0 || st.RequestsFailed != 0 {
				t.Errorf("stats %+v: want protocol 1, 8 samples sent, none dropped or failed", st)
			}
		})
	}
}

// A 1.0 sender ignores Written headers, and a 415 to 1.0 has nowhere to
// fall back to: dropped and counted.
func TestSendV1RefusedWith415IsDropped(t *testing.T) {
	src := newFakeSource(testBlocks()...)
	rcv := newSpecReceiver(t, codec.MessageV2)
	s := newSender(testConfig(rcv.srv.URL, 100), src)
	start(t, s)
	src.waitAck(t)
	if st := s.Stats(); st.Dropped[ReasonRejected] != 8 || st.SamplesSent != 0 {
		t.Errorf("stats %+v: want the 8 samples dropped as rejected", st)
	}
}

// TestSendV2CountsWhatTheReceiverWrote: on a 4xx, or a 2xx that breaks the
// spec, the Samples-Written header says how many were kept; the rest is
// dropped and counted. A missing header on a 4xx means none were written.
func TestSendV2CountsWhatTheReceiverWrote(t *testing.T) {
	for _, tc := range []struct {
		status             int
		written            string // "" for no Written headers at all
		wantSent, wantDrop uint64
	}{
		{http.StatusBadRequest, "5", 5, 3},
		{http.StatusBadRequest, "", 0, 8},
		{http.StatusOK, "6", 6, 2},
		{http.StatusOK, "0", 0, 8},
		{http.StatusOK, "8", 8, 0},
	} {
		t.Run(fmt.Sprint(tc.status, "/", tc.written), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if tc.written != "" {
					w.Header().Set("X-Prometheus-Remote-Write-Samples-Written", tc.written)
					w.Header().Set("X-Prometheus-Remote-Write-Exemplars-Written", "0")
				}
				w.WriteHeader(tc.status)
			}))
			defer srv.Close()
			src := newFakeSource(testBlocks()...)
			cfg := testConfig(srv.URL, 100)
			cfg.Protocol = Protocol2
			s := newSender(cfg, src)
			start(t, s)
			src.waitAck(t)
			st := s.Stats()
			if st.SamplesSent != tc.wantSent || st.Dropped[ReasonRejected] != tc.wantDrop || st.Protocol != Protocol2 {
				t.Errorf("stats %+v: want %d sent, %d dropped, protocol 2", st, tc.wantSent, tc.wantDrop)
			}
		})
	}
}

func TestNewRefusesProtocol3(t *testing.T) {
	if _, err := New(Config{Protocol: 3}, newFakeSource(), nil); err == nil {
		t.Error("New takes protocol 3")
	}
}
