package remotewrite

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/ferry-agent/ferry/buffer"
)

func requestBlocks() []buffer.Block {
	return []buffer.Block{
		{Seq: 1, Series: []buffer.Series{
			{Ref: 7, Labels: lblA, T: []int64{1000, 2000}, V: []float64{0.5, math.Inf(1)}},
			{Ref: 3, Labels: lblB, T: []int64{1000}, V: []float64{-3}},
		}},
		{Seq: 2, Series: []buffer.Series{
			{Ref: 3, Labels: lblB, T: []int64{3000}, V: []float64{1e-300}},
			{Ref: 9, Labels: lblC, T: []int64{3000, 4000}, V: []float64{math.Float64frombits(0x7ff0000000000002), 0}}, // a NaN with a payload, like Prometheus' stale marker
		}},
	}
}

// The body EncodeRequest makes is the one the sender posts for the same
// blocks, byte for byte.
func TestEncodeRequestIsWhatTheSenderPosts(t *testing.T) {
	var mu sync.Mutex
	var posted [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		posted = append(posted, b)
		mu.Unlock()
	}))
	defer srv.Close()
	src := newFakeSource(requestBlocks()...)
	s, err := New(Config{URL: srv.URL, Timeout: 5 * time.Second, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxSamplesPerSend: 100},
		src, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	src.waitAck(t)
	cancel()
	<-done

	want, n := EncodeRequest(requestBlocks())
	if n != 6 {
		t.Errorf("%d samples, want 6", n)
	}
	if len(posted) != 1 || !bytes.Equal(posted[0], want) {
		t.Fatalf("the sender posted %d requests, the first different from EncodeRequest's body", len(posted))
	}
}

func TestDecodeRequestRoundTrip(t *testing.T) {
	body, _ := EncodeRequest(requestBlocks())
	blk, err := DecodeRequest(body, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	// One series per TimeSeries, in the order the sender wrote them: A, B, C.
	want := []buffer.Series{
		{Labels: lblA, T: []int64{1000, 2000}, V: []float64{0.5, math.Inf(1)}},
		{Labels: lblB, T: []int64{1000, 3000}, V: []float64{-3, 1e-300}},
		{Labels: lblC, T: []int64{3000, 4000}, V: []float64{math.Float64frombits(0x7ff0000000000002), 0}},
	}
	if len(blk.Series) != len(want) {
		t.Fatalf("%d series, want %d", len(blk.Series), len(want))
	}
	for i, s := range blk.Series {
		if !labels.Equal(s.Labels, want[i].Labels) || !slices.Equal(s.T, want[i].T) || !sameBits(s.V, want[i].V) || s.Ref != uint32(i) {
			t.Errorf("series %d: %v %v %v ref %d, want %v %v %v", i, s.Labels, s.T, s.V, s.Ref, want[i].Labels, want[i].T, want[i].V)
		}
	}
	// Sent again by the sender, it is the same request.
	if again, _ := EncodeRequest([]buffer.Block{blk}); !bytes.Equal(again, body) {
		t.Fatal("decoded and encoded again, the request differs")
	}
}

// A request from another writer: labels out of order, fields ferry does
// not send (exemplars, metadata) that must be skipped.
func TestDecodeRequestFromPrompb(t *testing.T) {
	wr := prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{{
			Labels:    []prompb.Label{{Name: "job", Value: "x"}, {Name: "__name__", Value: "m"}},
			Samples:   []prompb.Sample{{Value: 1, Timestamp: 10}, {Value: 2, Timestamp: 20}},
			Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 1, Timestamp: 10}},
		}},
		Metadata: []prompb.MetricMetadata{{MetricFamilyName: "m", Help: "h"}},
	}
	raw, err := wr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	blk, err := DecodeRequest(snappy.Encode(nil, raw), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(blk.Series) != 1 || !labels.Equal(blk.Series[0].Labels, labels.FromStrings("__name__", "m", "job", "x")) ||
		!slices.Equal(blk.Series[0].T, []int64{10, 20}) || !slices.Equal(blk.Series[0].V, []float64{1, 2}) {
		t.Fatalf("decoded %+v", blk)
	}
}

func TestDecodeRequestRefusesBadInput(t *testing.T) {
	good, _ := EncodeRequest(requestBlocks())
	raw, _ := snappy.Decode(nil, good)
	for name, body := range map[string][]byte{
		"not snappy":          []byte("\xff\xff\xff\xff\xff\xff"),
		"over the limit":      snappy.Encode(nil, make([]byte, 4096)),
		"protobuf cut short":  snappy.Encode(nil, raw[:len(raw)-3]),
		"length past the end": snappy.Encode(nil, []byte{keyTimeseries, 0x7f, 1}),
		"group wire type":     snappy.Encode(nil, []byte{1<<3 | 3}),
	} {
		if _, err := DecodeRequest(body, 1024); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func sameBits(a, b []float64) bool {
	return slices.EqualFunc(a, b, func(x, y float64) bool { return math.Float64bits(x) == math.Float64bits(y) })
}

func FuzzDecodeRequest(f *testing.F) {
	good, _ := EncodeRequest(requestBlocks())
	f.Add(good)
	raw, _ := snappy.Decode(nil, good)
	f.Add(snappy.Encode(nil, raw[:len(raw)/2]))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		blk, err := DecodeRequest(body, 1<<20)
		if err != nil {
			return
		}
		// Whatever decodes, the sender can send, and it reads back the same.
		again, n := EncodeRequest([]buffer.Block{blk})
		if n != blk.Samples() {
			t.Fatalf("encoded %d samples of %d", n, blk.Samples())
		}
		blk2, err := DecodeRequest(again, 1<<21)
		if err != nil {
			t.Fatalf("re-encoded request does not decode: %v", err)
		}
		var withSamples []buffer.Series
		for _, s := range blk.Series {
			if len(s.T) > 0 {
				withSamples = append(withSamples, s)
			}
		}
		if len(withSamples) != len(blk2.Series) {
			t.Fatalf("%d series with samples, %d after a round trip", len(withSamples), len(blk2.Series))
		}
		for i, s := range withSamples {
			if !labels.Equal(s.Labels, blk2.Series[i].Labels) || !slices.Equal(s.T, blk2.Series[i].T) || !sameBits(s.V, blk2.Series[i].V) {
				t.Fatalf("series %d differs after a round trip", i)
			}
		}
	})
}
