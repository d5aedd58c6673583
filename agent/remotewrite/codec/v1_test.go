package codec

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/ferry-agent/ferry/buffer"
)

// TestWriteRequestDecodesWithPrompb holds ferry's encoder to the schema
// every receiver uses: prompb's generated decoder must read back exactly
// what went in, one TimeSeries per series across blocks.
//
// Series from a few bytes to over 16 KiB: each TimeSeries' length is put in
// front of it after it is written, in one, two or three bytes.
func TestWriteRequestDecodesWithPrompb(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	values := []float64{0, -1, 1.5, math.Inf(1), math.Float64frombits(0x7ff0000000000002), 1e300}
	for trial := range 50 {
		var blocks []buffer.Block
		want := map[string][]prompb.Sample{}
		nSeries := 1 + rng.IntN(30)
		ts := rng.Int64N(1<<42) - 1<<41 // negative timestamps too
		for b := range 1 + rng.IntN(4) {
			blk := buffer.Block{Seq: uint64(b + 1)}
			for s := range nSeries {
				if rng.IntN(4) == 0 {
					continue // not every series in every block
				}
				// A label of each length around 128 bytes, where its
				// lengths stop fitting a one-byte varint.
				pad := strings.Repeat("p", (s*37+trial)%260)
				lset := labels.FromStrings("__name__", fmt.Sprintf("m%d", s%3), "instance", "dev-ä", "pad", pad, "s", fmt.Sprint(s))
				ser := buffer.Series{Ref: uint32(s + 1), Labels: lset}
				k := 1 + rng.IntN(3)
				if rng.IntN(40) == 0 {
					k = 1000 + rng.IntN(1000) // a TimeSeries over 16 KiB: its length takes three bytes
				}
				for i := range k {
					t := ts + int64(b*10_000+i)*1000
					v := values[rng.IntN(len(values))]
					ser.T, ser.V = append(ser.T, t), append(ser.V, v)
					want[lset.String()] = append(want[lset.String()], prompb.Sample{Timestamp: t, Value: v})
				}
				blk.Series = append(blk.Series, ser)
			}
			blocks = append(blocks, blk)
		}

		series, n, _ := GroupBySeries(blocks, math.MinInt64)
		var req prompb.WriteRequest
		if err := req.Unmarshal(marshalWriteRequest(nil, series)); err != nil {
			t.Fatalf("trial %d: prompb cannot decode: %v", trial, err)
		}
		got := 0
		if len(req.Timeseries) != len(want) {
			t.Fatalf("trial %d: %d TimeSeries for %d series", trial, len(req.Timeseries), len(want))
		}
		for _, ts := range req.Timeseries {
			var b labels.ScratchBuilder
			for _, l := range ts.Labels {
				b.Add(l.Name, l.Value)
			}
			key := b.Labels().String()
			w := want[key]
			if len(ts.Samples) != len(w) {
				t.Fatalf("trial %d: %s: %d samples, want %d", trial, key, len(ts.Samples), len(w))
			}
			for i, s := range ts.Samples {
				if s.Timestamp != w[i].Timestamp || math.Float64bits(s.Value) != math.Float64bits(w[i].Value) {
					t.Fatalf("trial %d: %s sample %d: got %v, want %v", trial, key, i, s, w[i])
				}
			}
			got += len(ts.Samples)
		}
		if got != n {
			t.Fatalf("trial %d: decoded %d samples, GroupBySeries counted %d", trial, got, n)
		}
	}
}

func TestGroupBySeriesLeavesOutTooOldSamples(t *testing.T) {
	lset := labels.FromStrings("__name__", "m")
	blocks := []buffer.Block{
		{Seq: 1, Series: []buffer.Series{{Ref: 1, Labels: lset, T: []int64{1000, 2000, 3000}, V: []float64{1, 2, 3}}}},
		{Seq: 2, Series: []buffer.Series{{Ref: 1, Labels: lset, T: []int64{4000}, V: []float64{4}}}},
	}
	series, n, tooOld := GroupBySeries(blocks, 2500)
	if n != 2 || tooOld != 2 || len(series) != 1 || fmt.Sprint(series[0].T) != "[3000 4000]" {
		t.Fatalf("n %d, tooOld %d, series %+v", n, tooOld, series)
	}
	if _, n, tooOld := GroupBySeries(blocks, 5000); n != 0 || tooOld != 4 {
		t.Fatalf("all too old: n %d, tooOld %d", n, tooOld)
	}
}

// BenchmarkEncodeWriteRequest: one request of 5000 samples (the default
// per request), grouped by series, marshalled and compressed: from four
// committed blocks of 1250 series, and from one live block of 5000 series
// (a collection sent from memory).
func BenchmarkEncodeWriteRequest(b *testing.B) {
	blocksOf := func(nBlocks, nSeries int) []buffer.Block {
		var blocks []buffer.Block
		for blk := range nBlocks {
			var ser []buffer.Series
			for s := range nSeries {
				lset := labels.FromStrings("__name__", fmt.Sprintf("app_metric_%d", s%100), "handler", fmt.Sprintf("/api/%d", s), "instance", "127.0.0.1:8080", "job", "app")
				ser = append(ser, buffer.Series{Ref: uint32(s + 1), Labels: lset, T: []int64{int64(blk) * 15000}, V: []float64{float64(s)}})
			}
			blocks = append(blocks, buffer.Block{Seq: uint64(blk + 1), Series: ser})
		}
		return blocks
	}
	for _, c := range []struct {
		name   string
		blocks []buffer.Block
	}{{"committed", blocksOf(4, 1250)}, {"live", blocksOf(1, 5000)}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var size int
			var (
				g Grouper // the sender's, kept from one request to the next
				e Encoder // and its
			)
			for b.Loop() {
				series, _, _ := g.Group(c.blocks, math.MinInt64)
				size = len(e.Encode(series, Protocol1, nil))
			}
			b.ReportMetric(float64(size)/5000, "wire-B/sample")
		})
	}
}

// TestGrouperReusesItsMemory: one Grouper grouping one block (the live
// path's), then several (a backlog read), then one again, as a sender
// does, gives what a new one gives each time, with nothing of an earlier
// call (an index entry, a slab's series) in a later result.
func TestGrouperReusesItsMemory(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var g Grouper
	for i := range 200 {
		var blocks []buffer.Block
		for b := range 1 + rng.IntN(3)*rng.IntN(3) {
			var blk buffer.Block
			for _, ref := range rng.Perm(1 + rng.IntN(60)) {
				// Room past the end, as a head's slices have: appending
				// to them would write into the block.
				room := 1 + rng.IntN(3)
				ts := append(make([]int64, 0, room), int64(b*100+1+rng.IntN(50)))
				vs := append(make([]float64, 0, room), float64(i))
				blk.Series = append(blk.Series, buffer.Series{Ref: uint32(ref + 1),
					Labels: labels.FromStrings("__name__", fmt.Sprint("m", ref)), T: ts, V: vs})
			}
			blocks = append(blocks, blk)
		}
		minT := int64(rng.IntN(60))
		before := cloneBlocks(blocks)
		want, wantN, wantOld := GroupBySeries(blocks, minT)
		got, n, old := g.Group(blocks, minT)
		if !blocksEqual(blocks, before) {
			t.Fatalf("call %d: grouping wrote into its blocks", i)
		}
		if n != wantN || old != wantOld || len(got) != len(want) {
			t.Fatalf("call %d: %d series, %d samples, %d too old; want %d, %d, %d", i, len(got), n, old, len(want), wantN, wantOld)
		}
		for j := range want {
			if got[j].Ref != want[j].Ref || !labels.Equal(got[j].Labels, want[j].Labels) ||
				!slices.Equal(got[j].T, want[j].T) || !slices.Equal(got[j].V, want[j].V) {
				t.Fatalf("call %d, series %d: %+v, want %+v", i, j, *got[j], *want[j])
			}
		}
	}
}

// cloneBlocks copies blocks, their series and their samples, with what
// lies past the samples' ends in their arrays.
func cloneBlocks(blocks []buffer.Block) []buffer.Block {
	out := make([]buffer.Block, len(blocks))
	for i, blk := range blocks {
		out[i] = buffer.Block{Seq: blk.Seq, Series: slices.Clone(blk.Series)}
		for j := range out[i].Series {
			s := &out[i].Series[j]
			s.T, s.V = slices.Clone(s.T[:cap(s.T)])[:len(s.T)], slices.Clone(s.V[:cap(s.V)])[:len(s.V)]
		}
	}
	return out
}

// blocksEqual compares blocks with their clones (cloneBlocks), the room
// past the samples' ends included.
func blocksEqual(blocks, clones []buffer.Block) bool {
	return slices.EqualFunc(blocks, clones, func(x, y buffer.Block) bool {
		return x.Seq == y.Seq && slices.EqualFunc(x.Series, y.Series, func(s, u buffer.Series) bool {
			return s.Ref == u.Ref && labels.Equal(s.Labels, u.Labels) && s.Meta == u.Meta &&
				len(s.T) == len(u.T) && slices.Equal(s.T[:cap(s.T)], u.T[:cap(u.T)]) &&
				len(s.V) == len(u.V) && slices.Equal(s.V[:cap(s.V)], u.V[:cap(u.V)])
		})
	})
}

// TestGrouperSendsALiveBlockAsItIs: one block that minT leaves whole (the
// live path's) is grouped without a copy: the Series returned are the
// block's own, and the Grouper makes none of its own. The slab a backlog's
// grouping made is let go after slabIdle groupings in a row that needed
// none, not before.
func TestGrouperSendsALiveBlockAsItIs(t *testing.T) {
	block := func(seq uint64, n int) buffer.Block {
		blk := buffer.Block{Seq: seq}
		for i := range n {
			blk.Series = append(blk.Series, buffer.Series{Ref: uint32(i + 1),
				Labels: labels.FromStrings("__name__", fmt.Sprint("m", i)), T: []int64{int64(seq)}, V: []float64{1}})
		}
		return blk
	}
	live := block(10, 50)
	var g Grouper
	check := func(call string) {
		t.Helper()
		got, n, _ := g.Group([]buffer.Block{live}, math.MinInt64)
		if n != 50 || len(got) != 50 {
			t.Fatalf("%s: %d series, %d samples, want 50", call, len(got), n)
		}
		for i := range got {
			if got[i] != (*Series)(&live.Series[i]) {
				t.Fatalf("%s: series %d is a copy, not the block's own", call, i)
			}
		}
	}
	check("first live block")
	if g.slab != nil {
		t.Fatalf("the live path made a slab of %d", cap(g.slab))
	}
	if _, n, _ := g.Group([]buffer.Block{block(1, 50), block(2, 50)}, math.MinInt64); n != 100 || cap(g.slab) < 50 {
		t.Fatalf("a backlog of two blocks: %d samples, slab of %d", n, cap(g.slab))
	}
	for i := range slabIdle {
		if g.slab == nil {
			t.Fatalf("the slab went after %d live groupings, not %d", i, slabIdle)
		}
		check(fmt.Sprint("live block ", i+1, " after the backlog"))
	}
	if g.slab != nil {
		t.Errorf("the slab (%d) is kept after %d live groupings", cap(g.slab), slabIdle)
	}
	// A series cut at minT is one of the Grouper's; the others stay the
	// block's.
	cut := block(20, 3)
	cut.Series[1].T, cut.Series[1].V = []int64{5, 20}, []float64{1, 2}
	got, n, tooOld := g.Group([]buffer.Block{cut}, 10)
	if n != 3 || tooOld != 1 || got[0] != (*Series)(&cut.Series[0]) || got[1] == (*Series)(&cut.Series[1]) ||
		!slices.Equal(got[1].T, []int64{20}) || got[2] != (*Series)(&cut.Series[2]) {
		t.Errorf("a block with one series cut at minT: %d samples, %d too old, series %v %v %v", n, tooOld, *got[0], *got[1], *got[2])
	}
}
