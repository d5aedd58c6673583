package codec

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/ferry-agent/ferry/agent/remotewrite/codec/codectest"
	"github.com/ferry-agent/ferry/bench"
	"github.com/ferry-agent/ferry/buffer"
)

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
		series, n, _ := GroupBySeries(blocks, math.MinInt64)
		got, err := codectest.DecodeV2(marshalRequestV2(nil, series, nil))
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
	series, _, _ := GroupBySeries([]buffer.Block{{Seq: 1, Series: []buffer.Series{codectest.Series(1, codectest.LabelsA, 1000), codectest.Series(2, codectest.LabelsB, 1000)}}}, math.MinInt64)
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(marshalRequestV2(nil, series, nil)); err != nil {
		t.Fatalf("a 1.0 decoder fails on a 2.0 body: %v", err)
	}
	if len(wr.Timeseries) != 0 {
		t.Fatalf("a 1.0 decoder reads %d series from a 2.0 body, want 0", len(wr.Timeseries))
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
// same backlog, for requests of one sample per series (a request of one
// scrape), five (bench/compare's drain scenario) and twelve (a minute of
// 5 s scrapes per commit, the default sync interval). 2.0 must not cost
// more in any.
func TestWireBytesV2(t *testing.T) {
	for _, per := range []int{1, 5, 12} {
		series, n, _ := GroupBySeries(backlog(5000, per), math.MinInt64)
		v1 := len(new(Encoder).Encode(series, Protocol1, nil))
		v2 := len(new(Encoder).Encode(series, Protocol2, nil))
		raw1, raw2 := len(marshalWriteRequest(nil, series)), len(marshalRequestV2(nil, series, nil))
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
					var series []*Series
					series, n, _ = GroupBySeries(blocks, math.MinInt64)
					size = len(new(Encoder).Encode(series, proto, nil))
				}
				b.ReportMetric(float64(size)/float64(n), "wire-B/sample")
			})
		}
	}
}

// TestEncoderReusesItsMemory: one Encoder encoding requests of random sizes
// in both protocols, one after the other as a sender does, gives each the
// bytes a new Encoder gives, even though each body is written over the
// memory of the one before.
func TestEncoderReusesItsMemory(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var e Encoder
	var reused int
	for i := range 60 {
		blocks := backlog(1+rng.IntN(8000), 1+rng.IntN(4))
		series, _, _ := GroupBySeries(blocks, math.MinInt64)
		p := Protocol1
		if rng.IntN(2) == 0 {
			p = Protocol2
		}
		want := new(Encoder).Encode(series, p, nil)
		raw := marshalWriteRequest(nil, series)
		if p == Protocol2 {
			raw = marshalRequestV2(nil, series, nil)
		}
		before := e.z.out
		got := e.Encode(series, p, nil)
		if cap(before) > 0 && len(got) > 0 && &before[:cap(before)][cap(before)-1] == &got[:cap(got)][cap(got)-1] {
			reused++
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("request %d (%s): %d bytes, not the %d a new Encoder gives", i, p, len(got), len(want))
		}
		if !bytes.Equal(got, snappy.Encode(nil, raw)) {
			t.Fatalf("request %d (%s): not snappy's block format of the whole request", i, p)
		}
	}
	if reused == 0 {
		t.Error("no body was written over the one before: the test does not test reuse")
	}
}
