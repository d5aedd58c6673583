package remotewrite

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"

	"github.com/ferry-agent/ferry/agent/remotewrite/codec"
	"github.com/ferry-agent/ferry/agent/remotewrite/codec/codectest"
	"github.com/ferry-agent/ferry/buffer"
)

// metaReceiver records what requests carry besides samples, decoded with
// Prometheus' types: 2.0's series with their metadata and start times,
// and 1.0's metadata entries.
type metaReceiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	v2       [][]codectest.V2Series // per request
	v1       []prompb.WriteRequest
	problems []string
}

func newMetaReceiver(t *testing.T) *metaReceiver {
	r := &metaReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		raw, err := snappy.Decode(nil, body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			r.problems = append(r.problems, err.Error())
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if strings.Contains(req.Header.Get("Content-Type"), codec.MessageV2) {
			series, err := codectest.DecodeV2Series(raw)
			if err != nil {
				r.problems = append(r.problems, err.Error())
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			r.v2 = append(r.v2, series)
			n := 0
			for _, s := range series {
				n += len(s.Samples)
			}
			w.Header().Set("X-Prometheus-Remote-Write-Samples-Written", strconv.Itoa(n))
		} else {
			var wr prompb.WriteRequest
			if err := wr.Unmarshal(raw); err != nil {
				r.problems = append(r.problems, err.Error())
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			r.v1 = append(r.v1, wr)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

var (
	cpuMeta    = buffer.Meta{Family: "node_cpu_seconds", Type: "counter", Help: "Seconds the CPUs spent in each mode.", Unit: "seconds", Start: 1_700_000_000_000}
	loadMeta   = buffer.Meta{Family: "node_load1", Type: "gauge", Help: "1m load average."}
	reqMeta    = buffer.Meta{Family: "http_requests", Type: "counter", Help: "Requests.", Start: 1_700_000_500_000}
	lblReqs    = labels.FromStrings("__name__", "http_requests_total", "job", "app")
	lblCreated = labels.FromStrings("__name__", "http_requests_created", "job", "app")
	lblUntyped = labels.FromStrings("__name__", "mystery", "job", "app")
)

// metaFixture returns new blocks of series with metadata (a fake source's
// Ack changes the slice it holds).
func metaFixture() []buffer.Block {
	return []buffer.Block{
		{Seq: 1, Series: []buffer.Series{withMeta(series(1, lblA, 1000, 2000), loadMeta), withMeta(series(2, lblB, 1000), cpuMeta), withMeta(series(4, lblReqs, 1000), reqMeta), withMeta(series(5, lblCreated, 1000), reqMeta)}},
		{Seq: 2, Series: []buffer.Series{withMeta(series(2, lblB, 3000), cpuMeta), withMeta(series(1, lblA, 3000), loadMeta), series(6, lblUntyped, 3000)}},
		{Seq: 3, Series: []buffer.Series{withMeta(series(2, lblB, 4000), cpuMeta), withMeta(series(4, lblReqs, 4000), reqMeta)}},
	}
}

func withMeta(s buffer.Series, m buffer.Meta) buffer.Series {
	s.Meta = &m
	return s
}

// TestSendV2MetadataAndStart: with 2.0, every series the receiver gets has
// its type, help and unit the first time, not again within the interval;
// every sample its start time; the _created series goes as the start time
// of its family, not as a series, and is not counted as lost.
func TestSendV2MetadataAndStart(t *testing.T) {
	rcv := newMetaReceiver(t)
	src := newFakeSource(metaFixture()...)
	cfg := testConfig(rcv.srv.URL, 4) // a request per block
	cfg.Protocol = Protocol2
	cfg.Metadata = MetadataConfig{Send: true, SendInterval: time.Hour}
	s := newSender(cfg, src)
	stop := start(t, s)
	for src.waitAck(t) != 3 {
	}
	stop()
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.problems) > 0 || len(rcv.v2) != 3 {
		t.Fatalf("%d 2.0 requests, problems %v", len(rcv.v2), rcv.problems)
	}
	wantMeta := map[string]buffer.Meta{lblA.String(): loadMeta, lblB.String(): cpuMeta, lblReqs.String(): reqMeta, lblUntyped.String(): {}}
	types := map[string]model.MetricType{"counter": model.MetricTypeCounter, "gauge": model.MetricTypeGauge, "": model.MetricTypeUnknown}
	seen := map[string]bool{}
	for i, req := range rcv.v2 {
		for _, ser := range req {
			k := ser.Labels.String()
			w, ok := wantMeta[k]
			if !ok {
				t.Fatalf("request %d: %s is not to be sent", i, k)
			}
			want := metadata.Metadata{Type: types[w.Type], Help: w.Help, Unit: w.Unit}
			if seen[k] {
				want = metadata.Metadata{Type: model.MetricTypeUnknown} // within the interval: none
			}
			seen[k] = true
			if ser.Meta != want {
				t.Errorf("request %d: %s: metadata %+v, want %+v", i, k, ser.Meta, want)
			}
			for _, smp := range ser.Samples {
				if smp.StartTimestamp != w.Start {
					t.Errorf("request %d: %s: start %d, want %d", i, k, smp.StartTimestamp, w.Start)
				}
			}
		}
	}
	if len(seen) != len(wantMeta) {
		t.Errorf("series at the receiver %v, want those of %v", seen, wantMeta)
	}
	if st := s.Stats(); st.SamplesSent != 10 || len(st.Dropped) != 0 && st.Dropped[ReasonRejected] != 0 {
		t.Errorf("stats %+v: want the 10 samples sent (the _created one as a start time), none dropped", st)
	}
}

// TestSendV1MetadataRequests: with 1.0, the families of the samples sent go
// in metadata requests of their own, as Prometheus' metadata_config sends
// them, at most MaxSamplesPerSend per request; off, none go.
func TestSendV1MetadataRequests(t *testing.T) {
	for _, send := range []bool{true, false} {
		rcv := newMetaReceiver(t)
		src := newFakeSource(metaFixture()...)
		cfg := testConfig(rcv.srv.URL, 100) // one request
		cfg.Metadata = MetadataConfig{Send: send, SendInterval: time.Hour, MaxSamplesPerSend: 2}
		s := newSender(cfg, src)
		stop := start(t, s)
		for src.waitAck(t) != 3 {
		}
		stop()
		rcv.mu.Lock()
		got := map[string]prompb.MetricMetadata{}
		metaRequests, samples := 0, 0
		for _, wr := range rcv.v1 {
			for _, ts := range wr.Timeseries {
				samples += len(ts.Samples)
			}
			if len(wr.Metadata) == 0 {
				continue
			}
			metaRequests++
			if len(wr.Timeseries) != 0 || len(wr.Metadata) > 2 {
				t.Errorf("a metadata request with %d series and %d families", len(wr.Timeseries), len(wr.Metadata))
			}
			for _, m := range wr.Metadata {
				got[m.MetricFamilyName] = m
			}
		}
		rcv.mu.Unlock()
		if samples != 10 {
			t.Errorf("send %v: %d samples, want all 10 (1.0 sends _created series as they are)", send, samples)
		}
		if !send {
			if metaRequests != 0 {
				t.Errorf("metadata off, yet %d metadata requests", metaRequests)
			}
			continue
		}
		want := map[string]prompb.MetricMetadata{
			"node_load1":       {Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "node_load1", Help: loadMeta.Help},
			"node_cpu_seconds": {Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "node_cpu_seconds", Help: cpuMeta.Help, Unit: "seconds"},
			"http_requests":    {Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests", Help: "Requests."},
		}
		if len(got) != len(want) || metaRequests != 2 {
			t.Fatalf("%d metadata requests of %v, want 2 of %v", metaRequests, got, want)
		}
		for k, w := range want {
			if g := got[k]; g.Type != w.Type || g.MetricFamilyName != w.MetricFamilyName || g.Help != w.Help || g.Unit != w.Unit {
				t.Errorf("%s: %+v, want %+v", k, got[k], w)
			}
		}
	}
}

// The parts of a request split for a receiver's 413 or for order keep
// their series' ref and metadata: a part must not lose them, nor carry
// another series' ref (which says whether its metadata was sent).
func TestSplitKeepsRefAndMetadata(t *testing.T) {
	mk := func() []*codec.Series {
		return []*codec.Series{
			{Ref: 4, Labels: lblReqs, Meta: &reqMeta, T: []int64{1000, 2000, 3000}, V: []float64{1, 2, 3}},
			{Ref: 2, Labels: lblB, Meta: &cpuMeta, T: []int64{1000, 3000}, V: []float64{1, 2}},
		}
	}
	check := func(what string, parts ...[]*codec.Series) {
		t.Helper()
		for _, part := range parts {
			for _, s := range part {
				want := map[uint32]buffer.Meta{4: reqMeta, 2: cpuMeta}[s.Ref]
				if s.Meta.Value() != want || want.Family == "" {
					t.Errorf("%s: %s has ref %d and Meta %+v", what, s.Labels, s.Ref, s.Meta.Value())
				}
			}
		}
	}
	head, rest := firstSamples(nil, mk(), 2)
	check("firstSamples", head, rest)
	s := &Sender{sentBefore: 1500}
	check("splitByFate", s.splitByFate(mk())...)
}

// TestV2MetadataAgainAfterInterval: a series carries its metadata again
// once the interval has passed since it last did, not a second sooner,
// also at the interval's scale of the configuration; series that have not
// carried it within the interval are forgotten once thousands are known.
func TestV2MetadataAgainAfterInterval(t *testing.T) {
	for _, interval := range []time.Duration{time.Minute, 6 * time.Hour} {
		cfg := testConfig("http://127.0.0.1:1/", 10)
		cfg.Protocol = Protocol2
		cfg.Metadata = MetadataConfig{Send: true, SendInterval: interval}
		s := newSender(cfg, newFakeSource())
		t0 := s.metaEpoch.Add(90 * time.Second) // any moment after the sender began
		ser := &codec.Series{Ref: 7}
		carries := func(at time.Time) bool {
			noMeta := s.markMetadata([]*codec.Series{ser}, at)
			if !noMeta[0] {
				s.sentMetadata(t.Context(), []*codec.Series{ser}, noMeta, Protocol2, at)
			}
			return !noMeta[0]
		}
		if !carries(t0) {
			t.Fatalf("interval %s: first request without metadata", interval)
		}
		if carries(t0.Add(interval - time.Second)) {
			t.Errorf("interval %s: metadata again a second before the interval", interval)
		}
		if !carries(t0.Add(interval)) {
			t.Errorf("interval %s: no metadata once the interval passed", interval)
		}

		// Thousands of series, each sent once: once the map has doubled
		// since it was last pruned, those not sent within the interval go.
		batch := func(from uint32, n int, at time.Time) {
			series := make([]*codec.Series, n)
			for i := range series {
				series[i] = &codec.Series{Ref: from + uint32(i)}
			}
			s.sentMetadata(t.Context(), series, s.markMetadata(series, at), Protocol2, at)
		}
		now := t0.Add(interval)
		batch(1000, 5000, now) // pruned: nothing older than the interval
		batch(10_000, 6000, now.Add(interval))
		if _, kept := s.metaSent[1000]; kept || len(s.metaSent) != 6000 {
			t.Errorf("interval %s: %d series remembered after pruning, want the 6000 sent within the interval", interval, len(s.metaSent))
		}
	}
}
