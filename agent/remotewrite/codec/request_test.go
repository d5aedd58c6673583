package codec

import (
	"bytes"
	"math"
	"slices"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/ferry-agent/ferry/agent/remotewrite/codec/codectest"
	"github.com/ferry-agent/ferry/buffer"
)

func TestDecodeRequestRoundTrip(t *testing.T) {
	body, _ := EncodeRequest(codectest.Blocks())
	blk, err := DecodeRequest(body, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	// One series per TimeSeries, in the order the sender wrote them: A, B, C.
	want := []buffer.Series{
		{Labels: codectest.LabelsA, T: []int64{1000, 2000}, V: []float64{0.5, math.Inf(1)}},
		{Labels: codectest.LabelsB, T: []int64{1000, 3000}, V: []float64{-3, 1e-300}},
		{Labels: codectest.LabelsC, T: []int64{3000, 4000}, V: []float64{math.Float64frombits(0x7ff0000000000002), 0}},
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
	good, _ := EncodeRequest(codectest.Blocks())
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
	good, _ := EncodeRequest(codectest.Blocks())
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
