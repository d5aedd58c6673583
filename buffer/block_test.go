package buffer

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

func TestBlockRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		var series []seriesData
		ref := uint32(0)
		for range 1 + rng.IntN(50) {
			ref += 1 + uint32(rng.IntN(1000))
			n := 1 + rng.IntN(20)
			s := seriesData{ref: ref}
			ts := rng.Int64N(1<<41) - 1<<40 // negative times must survive too
			for range n {
				ts += rng.Int64N(20000)
				if len(s.ts) > 0 && ts == s.ts[len(s.ts)-1] {
					ts++
				}
				s.ts = append(s.ts, ts)
				s.vs = append(s.vs, randomValue(rng))
			}
			series = append(series, s)
		}
		enc := encodeBlock(series)
		_, got, err := decodeBlock(enc)
		if err != nil {
			t.Fatalf("trial %d: decode: %v", trial, err)
		}
		if len(got) != len(series) {
			t.Fatalf("trial %d: %d series, want %d", trial, len(got), len(series))
		}
		for i := range series {
			w, g := series[i], got[i]
			if w.ref != g.ref || len(w.ts) != len(g.ts) {
				t.Fatalf("trial %d series %d: ref %d/%d, n %d/%d", trial, i, g.ref, w.ref, len(g.ts), len(w.ts))
			}
			for j := range w.ts {
				if w.ts[j] != g.ts[j] || math.Float64bits(w.vs[j]) != math.Float64bits(g.vs[j]) {
					t.Fatalf("trial %d series %d sample %d: got (%d, %v), want (%d, %v)",
						trial, i, j, g.ts[j], g.vs[j], w.ts[j], w.vs[j])
				}
			}
		}
	}
}

// randomValue mixes the values metrics have: counters, gauges, integers,
// repeats, and the special floats (NaN is Prometheus' staleness marker).
func randomValue(rng *rand.Rand) float64 {
	switch rng.IntN(6) {
	case 0:
		return float64(rng.IntN(1 << 20))
	case 1:
		return rng.Float64() * 100
	case 2:
		return math.Float64frombits(0x7ff0000000000002) // stale NaN
	case 3:
		return math.Inf(-1 + 2*rng.IntN(2))
	case 4:
		return 0
	default:
		return rng.NormFloat64() * 1e12
	}
}

func TestBlockDetectsDamage(t *testing.T) {
	enc := encodeBlock([]seriesData{{ref: 1, ts: []int64{1000, 2000}, vs: []float64{1, 2}}})
	for i := range enc {
		damaged := append([]byte(nil), enc...)
		damaged[i] ^= 0x10
		if _, _, err := decodeBlock(damaged); err == nil {
			t.Errorf("flipping a bit of byte %d went unnoticed", i)
		} else if !errors.Is(err, errCorrupt) {
			t.Errorf("byte %d: error %v is not errCorrupt", i, err)
		}
	}
	for n := range len(enc) {
		if _, _, err := decodeBlock(enc[:n]); err == nil {
			t.Errorf("block truncated to %d bytes decoded", n)
		}
	}
}

func FuzzDecodeBlock(f *testing.F) {
	f.Add(encodeBlock([]seriesData{{ref: 3, ts: []int64{1, 2, 4}, vs: []float64{1, 1, math.NaN()}}}))
	f.Add([]byte{blockVersion, 1, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, series, err := decodeBlock(b)
		if err != nil {
			return
		}
		n := 0
		for _, s := range series {
			n += len(s.ts)
		}
		if n != h.samples {
			t.Fatalf("decoded %d samples, header says %d", n, h.samples)
		}
	})
}

func FuzzDecodeLabels(f *testing.F) {
	f.Add([]byte{1, 1, 'a', 1, 'b'})
	f.Add(encodeSeries(labels.FromStrings("__name__", "m_total"), Meta{Family: "m", Type: "counter", Help: "h", Unit: "u", Start: 5}))
	f.Fuzz(func(t *testing.T, b []byte) {
		// A series entry, with metadata or without: what decodes encodes
		// back to the same.
		if lset, m, err := decodeSeries(b); err == nil {
			if got, gm, err := decodeSeries(encodeSeries(lset, m)); err != nil || got.String() != lset.String() || gm != m {
				t.Fatalf("re-encoding %v %+v gave %v %+v, %v", lset, m, got, gm, err)
			}
		}
		lset, err := decodeLabels(b)
		if err != nil {
			return
		}
		if got, err := decodeLabels(encodeLabels(lset)); err != nil || got.String() != lset.String() {
			t.Fatalf("re-encoding %v gave %v, %v", lset, got, err)
		}
	})
}

// TestPackBlocksFitsPagesAndKeepsEverySample packs series of very
// different sizes, one of them too long for a page by itself.
func TestPackBlocksFitsPagesAndKeepsEverySample(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var series []seriesData
	want := map[uint32][]int64{}
	for ref := uint32(1); ref <= 400; ref++ {
		n := 1 + rng.IntN(8)
		if ref == 200 {
			n = 3000 // alone larger than a page
		}
		s := seriesData{ref: ref}
		for i := range n {
			s.ts = append(s.ts, int64(i)*15000)
			s.vs = append(s.vs, rng.Float64())
		}
		series = append(series, s)
		want[ref] = s.ts
	}
	const limit = 4063
	blocks := packBlocks(series, limit)
	got := map[uint32][]int64{}
	for i, b := range blocks {
		if len(b) > limit {
			t.Fatalf("block %d is %d bytes, limit %d", i, len(b), limit)
		}
		_, data, err := decodeBlock(b)
		if err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		for _, s := range data {
			got[s.ref] = append(got[s.ref], s.ts...)
		}
	}
	for ref, ts := range want {
		if fmt.Sprint(got[ref]) != fmt.Sprint(ts) {
			t.Fatalf("series %d: %d timestamps back, want %d in order", ref, len(got[ref]), len(ts))
		}
	}
	// Packing must fill pages, not leave them half empty.
	total := 0
	for _, b := range blocks {
		total += len(b)
	}
	if fill := float64(total) / float64(len(blocks)*limit); fill < 0.8 {
		t.Errorf("blocks fill %.0f%% of their pages", fill*100)
	}
}

// FuzzCheckFile: the meta-page check reads whatever file it finds and must
// answer, never panic.
func FuzzCheckFile(f *testing.F) {
	dir := f.TempDir()
	b, err := Open(Options{Dir: dir, MaxSize: 8 << 20})
	if err != nil {
		f.Fatal(err)
	}
	appendRound(b, 5, 1000)
	b.Close()
	good, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:5000])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), FileName)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_ = checkFile(path)
	})
}

// TestPackBlocksAtKeepsTheCutsOfTheCommitBefore: with the cuts of the last
// commit, the next one with the same series starts its blocks at the same
// refs where they fit, so that thinning finds blocks of the same series.
func TestPackBlocksAtKeepsTheCutsOfTheCommitBefore(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	commit := func(at int64) []seriesData {
		var series []seriesData
		for ref := uint32(1); ref <= 1000; ref++ {
			s := seriesData{ref: ref}
			for i := range 4 {
				s.ts = append(s.ts, at+int64(i)*15000)
				s.vs = append(s.vs, float64(rng.IntN(1000)))
			}
			series = append(series, s)
		}
		return series
	}
	const limit = 4063
	// How many of 20 commits start their blocks where the one before did,
	// with the cuts as hints or without.
	kept := func(hinted bool) int {
		_, cuts := packBlocksAt(commit(0), limit, nil)
		same := 0
		for c := 1; c <= 20; c++ {
			var hint []uint32
			if hinted {
				hint = cuts
			}
			blocks, next := packBlocksAt(commit(int64(c)*60000), limit, hint)
			for i, b := range blocks {
				if len(b) > limit {
					t.Fatalf("commit %d, block %d: %d bytes over the limit", c, i, len(b))
				}
			}
			if slices.Equal(next, cuts) {
				same++
			}
			cuts = next
		}
		return same
	}
	// Random values are the worst case: a block packed to the brim may not
	// take the next commit's values; then it is cut where they fit.
	with, without := kept(true), kept(false)
	if with < 10 || with < 2*without {
		t.Errorf("the cuts held in %d of 20 commits with hints, %d without; want at least 10 and twice as many", with, without)
	}
}
