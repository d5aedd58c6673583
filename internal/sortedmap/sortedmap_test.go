package sortedmap

import (
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSortedMapMatchesAMap drives a Map and a Go map with the same random
// puts (in order, as counters come; out of order, as hashes come; again,
// to replace a value), deletions (of a key, or of those a function picks)
// and lookups, and requires the same answers throughout.
func TestSortedMapMatchesAMap(t *testing.T) {
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 0x5041ed))
		var m Map[value]
		model := map[uint64]*value{}
		next := uint64(1)
		keys := 16 + rng.Uint64N(2000) // past and below merge's thresholds
		for step := range 3000 {
			switch op := rng.IntN(10); {
			case op < 3: // the next key
				v := &value{rng.Uint64()}
				m.Put(next, v)
				model[next] = v
				next += 1 + rng.Uint64N(3)
			case op < 6: // any key, maybe one the map has
				k, v := rng.Uint64N(keys), &value{rng.Uint64()}
				m.Put(k, v)
				model[k] = v
				next = max(next, k+1)
			case op < 8:
				k := rng.Uint64N(keys)
				m.Delete(k)
				delete(model, k)
			case op == 8 && rng.IntN(10) == 0: // a share of the keys, as a collection's end forgets the gone
				r := rng.Uint64N(4)
				gone := func(k uint64, v *value) bool { return (k+v.v)%4 == r }
				m.DeleteFunc(gone)
				maps.DeleteFunc(model, gone)
			default:
				k := rng.Uint64N(keys + 8)
				if got, want := m.Get(k), model[k]; got != want {
					t.Fatalf("seed %d step %d: get(%d) = %v, want %v", seed, step, k, got, want)
				}
			}
			if m.Len() != len(model) {
				t.Fatalf("seed %d step %d: len %d, want %d", seed, step, m.Len(), len(model))
			}
			c := &m.c
			if len(c.tail) > max(32, 2*int(math.Sqrt(float64(len(c.keys))))) {
				t.Fatalf("seed %d step %d: a tail of %d keys beside %d, which Get scans", seed, step, len(c.tail), len(c.keys))
			}
			// Room past the arrays' ends holds no value: none is kept
			// from the garbage collector.
			for _, v := range append(c.vals[len(c.vals):cap(c.vals)], c.tailVals[len(c.tailVals):cap(c.tailVals)]...) {
				if v != nil {
					t.Fatalf("seed %d step %d: a stale value %p past the arrays' ends", seed, step, v)
				}
			}
		}
		seen := map[uint64]bool{}
		for k, v := range m.All() {
			if model[k] != v || seen[k] {
				t.Fatalf("seed %d: all yields %d=%v (twice: %v), want %v", seed, k, v, seen[k], model[k])
			}
			seen[k] = true
		}
		if len(seen) != len(model) || !slices.IsSorted(m.c.keys) {
			t.Fatalf("seed %d: all yields %d keys, want %d; arrays sorted: %v", seed, len(seen), len(model), slices.IsSorted(m.c.keys))
		}
	}
}

type value struct{ v uint64 }

// TestSortedMapGivesBackMemory checks that a map most of whose keys are
// gone, deleted one by one or by DeleteFunc, does not keep the arrays they
// needed.
func TestSortedMapGivesBackMemory(t *testing.T) {
	gone := func(k uint64, _ *value) bool { return k%100 != 0 }
	for _, byFunc := range []bool{false, true} {
		var m Map[value]
		for r := range uint64(100_000) {
			m.Put(r, &value{r})
		}
		if byFunc {
			m.DeleteFunc(gone)
		} else {
			for r := range uint64(100_000) {
				if gone(r, nil) {
					m.Delete(r)
				}
			}
		}
		if m.Len() != 1000 || cap(m.c.keys) > 2000 || cap(m.c.vals) > 2000 {
			t.Fatalf("by DeleteFunc %v: %d keys kept in room for %d keys and %d values, want 1000 in at most 2000", byFunc, m.Len(), cap(m.c.keys), cap(m.c.vals))
		}
		for r := uint64(0); r < 100_000; r += 100 {
			if e := m.Get(r); e == nil || e.v != r {
				t.Fatalf("by DeleteFunc %v: key %d: value %+v", byFunc, r, e)
			}
		}
	}
}
