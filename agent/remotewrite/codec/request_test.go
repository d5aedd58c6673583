package codec

import (
	"bytes"
	"encoding/binary"
	"math"
	"runtime"
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
	blk, err := DecodeRequest(body, 1<<20, 8)
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
	blk, err := DecodeRequest(snappy.Encode(nil, raw), 1<<20, 2)
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
		"not snappy":             []byte("\xff\xff\xff\xff\xff\xff"),
		"over the limit":         snappy.Encode(nil, make([]byte, 4096)),
		"protobuf cut short":     snappy.Encode(nil, raw[:len(raw)-3]),
		"length past the end":    snappy.Encode(nil, []byte{keyTimeseries, 0x7f, 1}),
		"group wire type":        snappy.Encode(nil, []byte{1<<3 | 3}),
		"empty series":           snappy.Encode(nil, []byte{keyTimeseries, 0}),
		"series without labels":  snappy.Encode(nil, []byte{keyTimeseries, 13, keySamples, 11, keySampleVal, 0, 0, 0, 0, 0, 0, 0, 0, keySampleTS, 1}),
		"series without samples": snappy.Encode(nil, []byte{keyTimeseries, 7, keyLabels, 5, keyName, 1, 'a', keyValue, 0}),
		"more samples than said": good,
	} {
		_, err := DecodeRequest(body, 1024, 5) // good holds 6
		if err == nil {
			t.Errorf("%s: no error", name)
		}
		t.Logf("%s: %v", name, err)
	}
}

// hostileBody is a request of n empty TimeSeries (two bytes each), which
// snappy compresses to almost nothing: a 3 MB carry file of such records
// once made "ferry push" allocate 9.5 GB.
func hostileBody(n int) []byte {
	raw := make([]byte, 2*n)
	for i := 0; i < len(raw); i += 2 {
		raw[i] = keyTimeseries
	}
	return snappy.Encode(nil, raw)
}

// TestDecodeRequestMemoryIsBounded: whatever the body, decoding allocates
// little more than the body decompressed: empty series, series with too
// many labels, more samples than the request says it holds are refused
// as they come, not after they are built.
func TestDecodeRequestMemoryIsBounded(t *testing.T) {
	const decoded = 8 << 20
	manyLabels := []byte{}
	for len(manyLabels) < decoded-16 {
		manyLabels = append(manyLabels, keyLabels, 4, keyName, 0, keyValue, 0)
	}
	manyLabels = append(binary.AppendUvarint([]byte{keyTimeseries}, uint64(len(manyLabels))), manyLabels...)
	oneSample := []byte{keyTimeseries, 19, keyLabels, 4, keyName, 0, keyValue, 0, keySamples, 11, keySampleVal, 0, 0, 0, 0, 0, 0, 0, 0, keySampleTS, 1}
	manySamples := bytes.Repeat(oneSample, (decoded-16)/len(oneSample))
	for name, body := range map[string][]byte{
		"empty series": hostileBody(decoded / 2),
		"many labels":  snappy.Encode(nil, manyLabels),
		"many samples": snappy.Encode(nil, manySamples),
	} {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := DecodeRequest(body, decoded, 1000)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatal("no error")
			}
			// The body decompressed, and some change.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2*decoded {
				t.Fatalf("decoding %d bytes (%d decompressed) allocated %d bytes: %v", len(body), decoded, alloc, err)
			}
		})
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
	f.Add(hostileBody(1000))
	f.Fuzz(func(t *testing.T, body []byte) {
		blk, err := DecodeRequest(body, 1<<20, 1<<16)
		if err != nil {
			return
		}
		// Whatever decodes, the sender can send, and it reads back the same.
		again, n := EncodeRequest([]buffer.Block{blk})
		if n != blk.Samples() {
			t.Fatalf("encoded %d samples of %d", n, blk.Samples())
		}
		blk2, err := DecodeRequest(again, 1<<21, n)
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
