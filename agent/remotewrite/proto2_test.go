package remotewrite

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
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
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/ferry-agent/ferry/bench"
	"github.com/ferry-agent/ferry/buffer"
)

// decodeV2 reads a v2 request with Prometheus' generated types and checks
// what the spec asks of its symbols and label references; it returns each
// series' samples keyed by its labels.
func decodeV2(raw []byte) (map[string][]writev2.Sample, error) {
	var req writev2.Request
	if err := req.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("not an io.prometheus.write.v2.Request: %w", err)
	}
	if len(req.Symbols) == 0 || req.Symbols[0] != "" {
		return nil, fmt.Errorf("symbols must start with the empty string: %q", req.Symbols[:min(3, len(req.Symbols))])
	}
	seen := map[string]bool{}
	for _, s := range req.Symbols {
		if seen[s] {
			return nil, fmt.Errorf("symbol %q twice", s)
		}
		seen[s] = true
	}
	out := map[string][]writev2.Sample{}
	b := labels.NewScratchBuilder(8)
	for _, ts := range req.Timeseries {
		if len(ts.LabelsRefs)%2 != 0 {
			return nil, fmt.Errorf("odd number of label refs: %v", ts.LabelsRefs)
		}
		lset, err := ts.ToLabels(&b, req.Symbols)
		if err != nil {
			return nil, err
		}
		var names []string
		var bad error
		lset.Range(func(l labels.Label) {
			if l.Name == "" || l.Value == "" {
				bad = fmt.Errorf("empty label name or value in %s", lset)
			}
			names = append(names, l.Name)
		})
		if bad != nil {
			return nil, bad
		}
		// ToLabels sorts; the refs must already be in that order.
		for i := 0; i < len(ts.LabelsRefs); i += 2 {
			if req.Symbols[ts.LabelsRefs[i]] != names[i/2] {
				return nil, fmt.Errorf("labels of %s not sorted by name in labels_refs", lset)
			}
		}
		if len(ts.Samples) == 0 || len(ts.Histograms) != 0 || len(ts.Exemplars) != 0 {
			return nil, fmt.Errorf("%s: %d samples, %d histograms, %d exemplars", lset, len(ts.Samples), len(ts.Histograms), len(ts.Exemplars))
		}
		if _, dup := out[lset.String()]; dup {
			return nil, fmt.Errorf("%s in two TimeSeries", lset)
		}
		out[lset.String()] = ts.Samples
	}
	return out, nil
}

// TestRequestV2DecodesWithPrometheusTypes: random backlogs, encoded as 2.0,
// read back exactly (values bit for bit, negative timestamps too) by
// Prometheus' own v2 types, with a valid symbols table.
func TestRequestV2DecodesWithPrometheusTypes(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	values := []float64{0, -1, 1.5, math.Inf(-1), math.Float64frombits(0x7ff0000000000002), 1e-300}
	for trial := range 50 {
		var blocks []buffer.Block
		want := map[string][][2]float64{}
		nSeries := 1 + rng.IntN(40)
		ts := rng.Int64N(1<<42) - 1<<41
		for b := range 1 + rng.IntN(4) {
			blk := buffer.Block{Seq: uint64(b + 1)}
			for s := range nSeries {
				if rng.IntN(4) == 0 {
					continue
				}
				// Shared names and values, so that symbols are reused.
				lset := labels.FromStrings("__name__", fmt.Sprintf("m%d", s%3), "instance", "dev-ä", "s", fmt.Sprint(s), "z", fmt.Sprint(s%5))
				ser := buffer.Series{Ref: uint32(s + 1), Labels: lset}
				for i := range 1 + rng.IntN(3) {
					t := ts + int64(b*10+i)*1000
					v := values[rng.IntN(len(values))]
					ser.T, ser.V = append(ser.T, t), append(ser.V, v)
					want[lset.String()] = append(want[lset.String()], [2]float64{float64(t), v})
				}
				blk.Series = append(blk.Series, ser)
			}
			blocks = append(blocks, blk)
		}
		series, n, _ := groupBySeries(blocks, math.MinInt64)
		got, err := decodeV2(marshalRequestV2(series))
		if err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		if len(got) != len(want) {
			t.Fatalf("trial %d: %d series, want %d", trial, len(got), len(want))
		}
		total := 0
		for key, w := range want {
			g := got[key]
			if len(g) != len(w) {
				t.Fatalf("trial %d: %s: %d samples, want %d", trial, key, len(g), len(w))
			}
			for i := range g {
				if float64(g[i].Timestamp) != w[i][0] || math.Float64bits(g[i].Value) != math.Float64bits(w[i][1]) {
					t.Fatalf("trial %d: %s sample %d: %v, want %v", trial, key, i, g[i], w[i])
				}
			}
			total += len(g)
		}
		if total != n {
			t.Fatalf("trial %d: %d samples decoded, %d sent", trial, total, n)
		}
	}
}

// TestRequestV2ReadsAsEmptyV1: fields 1 to 3 are reserved in v2 so that a
// 1.0 receiver that ignores Content-Type decodes nothing, rather than
// garbage; ferry's encoding keeps that property.
func TestRequestV2ReadsAsEmptyV1(t *testing.T) {
	series, _, _ := groupBySeries([]buffer.Block{{Seq: 1, Series: []buffer.Series{series(1, lblA, 1000), series(2, lblB, 1000)}}}, math.MinInt64)
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(marshalRequestV2(series)); err != nil {
		t.Fatalf("a 1.0 decoder fails on a 2.0 body: %v", err)
	}
	if len(wr.Timeseries) != 0 {
		t.Fatalf("a 1.0 decoder reads %d series from a 2.0 body, want 0", len(wr.Timeseries))
	}
}

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
	msg := MessageV1
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
	case MessageV1:
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
	case MessageV2:
		v2, err := decodeV2(raw)
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
	if msg == MessageV2 && !r.ignoreType {
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
	rcv := newSpecReceiver(t, MessageV1, MessageV2)
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
		{"415", func(t *testing.T) *specReceiver { return newSpecReceiver(t, MessageV1) }},
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
	rcv := newSpecReceiver(t, MessageV2)
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

func TestProtocolFlagValue(t *testing.T) {
	for in, want := range map[string]Protocol{"1": Protocol1, "2": Protocol2, "2.0": Protocol2, MessageV2: Protocol2, MessageV1: Protocol1} {
		var p Protocol
		if err := p.Set(in); err != nil || p != want {
			t.Errorf("Set(%q) = %v, %v; want %v", in, p, err, want)
		}
	}
	var p Protocol
	if p.String() != "1" || p.Set("3") == nil {
		t.Errorf("zero value %q, want 1; Set(3) must fail", p.String())
	}
	if _, err := New(Config{Protocol: 3}, newFakeSource(), nil); err == nil {
		t.Error("New takes protocol 3")
	}
}

// backlog is n samples of the bench workload (10k application series and
// node_exporter's), perSeries consecutive samples of each series in a row,
// in blocks as the buffer makes them.
func backlog(n, perSeries int) []buffer.Block {
	w := bench.NewWorkload(10_000, 1)
	nSeries := max(n/perSeries, 1)
	blk := buffer.Block{Seq: 1}
	for i := range min(nSeries, len(w.Series)) {
		blk.Series = append(blk.Series, buffer.Series{Ref: uint32(i + 1), Labels: w.Series[i]})
	}
	for k := range perSeries {
		w.Next(func(i int, _ labels.Labels, v float64) {
			if i < len(blk.Series) {
				s := &blk.Series[i]
				s.T, s.V = append(s.T, 1_790_000_000_000+int64(k)*5000), append(s.V, v)
			}
		})
	}
	return []buffer.Block{blk}
}

// TestWireBytesV2 measures wire bytes per sample of 1.0 and 2.0 on the
// same backlog, for requests of one sample per series (the default 5000
// samples per send when each commit holds one scrape), five (bench/compare's
// drain scenario) and twelve (a minute of 5 s scrapes per commit, the
// default sync interval). 2.0 must not cost more in any.
func TestWireBytesV2(t *testing.T) {
	for _, per := range []int{1, 5, 12} {
		series, n, _ := groupBySeries(backlog(5000, per), math.MinInt64)
		v1 := len(encode(series, Protocol1))
		v2 := len(encode(series, Protocol2))
		raw1, raw2 := len(marshalWriteRequest(series)), len(marshalRequestV2(series))
		t.Logf("%2d samples per series, %d samples: 1.0 %.2f wire B/sample (%.1f before snappy), 2.0 %.2f (%.1f); 2.0/1.0 = %.2f",
			per, n, float64(v1)/float64(n), float64(raw1)/float64(n), float64(v2)/float64(n), float64(raw2)/float64(n), float64(v2)/float64(v1))
		if v2 > v1 {
			t.Errorf("%d samples per series: 2.0 takes %d bytes, 1.0 %d", per, v2, v1)
		}
	}
}

// BenchmarkEncodeRequestV2: as BenchmarkEncodeWriteRequest, in 2.0.
func BenchmarkEncodeRequestV2(b *testing.B) {
	for _, per := range []int{1, 12} {
		blocks := backlog(5000, per)
		for _, proto := range []Protocol{Protocol1, Protocol2} {
			b.Run(fmt.Sprintf("per-series=%d/protocol=%s", per, proto), func(b *testing.B) {
				b.ReportAllocs()
				var size, n int
				for b.Loop() {
					var series []*seriesSamples
					series, n, _ = groupBySeries(blocks, math.MinInt64)
					size = len(encode(series, proto))
				}
				b.ReportMetric(float64(size)/float64(n), "wire-B/sample")
			})
		}
	}
}
