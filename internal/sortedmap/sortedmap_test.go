package sortedmap

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSortedMapMatchesAMap drives a Map and a Go map with the same random
// puts (in order, as counters come; out of order, as hashes come; again,
// to replace a value), deletions and lookups, and requires the same
// answers throughout.
func TestSortedMapMatchesAMap(t *testing.T) {
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 0x5041ed))
		var m Map[uint32, uint64]
		model := map[uint32]uint64{}
		next := uint32(1)
		keys := 16 + rng.IntN(2000) // past and below merge's thresholds
		for step := range 3000 {
			switch op := rng.IntN(10); {
			case op < 3: // the next key
				v := 1 + rng.Uint64N(1e6)
				m.Put(next, v)
				model[next] = v
				next += 1 + uint32(rng.IntN(3))
			case op < 6: // any key, maybe one the map has
				k, v := uint32(rng.IntN(keys)), 1+rng.Uint64N(1e6)
				m.Put(k, v)
				model[k] = v
				next = max(next, k+1)
			case op < 8:
				k := uint32(rng.IntN(keys))
				m.Delete(k)
				delete(model, k)
			default:
				k := uint32(rng.IntN(keys + 8))
				if got, want := m.Get(k), model[k]; got != want {
					t.Fatalf("seed %d step %d: get(%d) = %d, want %d", seed, step, k, got, want)
				}
			}
			if m.Len() != len(model) {
				t.Fatalf("seed %d step %d: len %d, want %d", seed, step, m.Len(), len(model))
			}
			if len(m.tail) > max(32, 2*int(math.Sqrt(float64(len(m.keys))))) {
				t.Fatalf("seed %d step %d: a tail of %d keys beside %d, which Get scans", seed, step, len(m.tail), len(m.keys))
			}
			// Room past the arrays' ends holds no value: none is kept
			// from the garbage collector.
			for _, v := range append(m.vals[len(m.vals):cap(m.vals)], m.tailVals[len(m.tailVals):cap(m.tailVals)]...) {
				if v != 0 {
					t.Fatalf("seed %d step %d: a stale value %d past the arrays' ends", seed, step, v)
				}
			}
		}
		seen := map[uint32]bool{}
		for k, v := range m.All() {
			if model[k] != v || seen[k] {
				t.Fatalf("seed %d: all yields %d=%d (twice: %v), want %d", seed, k, v, seen[k], model[k])
			}
			seen[k] = true
		}
		if len(seen) != len(model) || !slices.IsSorted(m.keys) {
			t.Fatalf("seed %d: all yields %d keys, want %d; arrays sorted: %v", seed, len(seen), len(model), slices.IsSorted(m.keys))
		}
	}
}

// TestSortedMapGivesBackMemory checks that a map most of whose keys are
// gone does not keep the arrays they needed.
func TestSortedMapGivesBackMemory(t *testing.T) {
	type entry struct{ key uint32 }
	var m Map[uint32, *entry]
	for r := range uint32(100_000) {
		m.Put(r, &entry{r})
	}
	for r := range uint32(100_000) {
		if r%100 != 0 {
			m.Delete(r)
		}
	}
	if m.Len() != 1000 || cap(m.keys) > 2000 || cap(m.vals) > 2000 {
		t.Fatalf("%d keys kept in room for %d keys and %d values, want 1000 in at most 2000", m.Len(), cap(m.keys), cap(m.vals))
	}
	for r := uint32(0); r < 100_000; r += 100 {
		if e := m.Get(r); e == nil || e.key != r {
			t.Fatalf("ref %d: entry %+v", r, e)
		}
	}
}
