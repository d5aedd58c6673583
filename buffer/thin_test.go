package buffer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
)

func TestThinSeriesKeepsEveryOtherAndStalenessMarkers(t *testing.T) {
	stale := math.Float64frombits(value.StaleNaN)
	in := []seriesData{{ref: 1, ts: []int64{1, 2, 3, 4, 5, 6}, vs: []float64{1, 2, 3, stale, 5, 6}}}
	got := thinSeries(in, math.MaxInt64)
	if want := []int64{1, 3, 4, 5}; !slices.Equal(got[0].ts, want) {
		t.Errorf("kept %v, want %v (every other, and the marker at 4)", got[0].ts, want)
	}
	if !value.IsStaleNaN(got[0].vs[2]) || got[0].vs[3] != 5 {
		t.Errorf("values %v", got[0].vs)
	}
	if got := thinSeries(in, 4); !slices.Equal(got[0].ts, []int64{1, 3, 4, 5, 6}) {
		t.Errorf("thinned before 4: kept %v, want 1, 3 and everything from 4 on", got[0].ts)
	}

	merged := mergeSeries(
		[]seriesData{{ref: 2, ts: []int64{10, 20}, vs: []float64{1, 2}}, {ref: 5, ts: []int64{10}, vs: []float64{7}}},
		[]seriesData{{ref: 1, ts: []int64{30}, vs: []float64{9}}, {ref: 2, ts: []int64{20, 30}, vs: []float64{2, 3}}},
	)
	want := []seriesData{
		{ref: 1, ts: []int64{30}, vs: []float64{9}},
		{ref: 2, ts: []int64{10, 20, 30}, vs: []float64{1, 2, 3}},
		{ref: 5, ts: []int64{10}, vs: []float64{7}},
	}
	if fmt.Sprint(merged) != fmt.Sprint(want) {
		t.Errorf("merged %v, want %v", merged, want)
	}
}

// outage fills a buffer of maxSize as a device does during a long outage:
// nSeries series every 15 s, a commit every five minutes, for the given hours;
// it checks the cap at every commit and returns the buffer's timestamps of
// series 0 and the number of samples appended.
func outage(t *testing.T, dir string, maxSize int64, thin bool, nSeries, hours int) ([]int64, int) {
	t.Helper()
	b, err := Open(Options{Dir: dir, MaxSize: maxSize, Thin: thin})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	lsets := make([]labels.Labels, nSeries)
	for i := range lsets {
		lsets[i] = labels.FromStrings("__name__", "node_metric", "i", fmt.Sprint(i))
	}
	appended := 0
	ts := int64(1_700_000_000_000)
	for minute := 0; minute < hours*60; minute += 5 {
		for range 4 * 5 {
			ts += 15_000
			for i, lset := range lsets {
				b.Append(lset, ts, float64(i)+rng.Float64())
				appended++
			}
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		if size, allocated := fileUsage(t, filepath.Join(dir, FileName)); size > maxSize || allocated > maxSize {
			t.Fatalf("minute %d: file %d bytes, %d allocated; cap %d", minute, size, allocated, maxSize)
		}
	}
	st := b.Stats()
	if got := st.Samples + int(st.Dropped[ReasonFull]+st.Dropped[ReasonThinned]); got != appended {
		t.Errorf("stored %d + full %d + thinned %d = %d, want the %d appended", st.Samples, st.Dropped[ReasonFull], st.Dropped[ReasonThinned], got, appended)
	}
	var first []int64
	err = b.ForEach(func(blk Block) error {
		for _, s := range blk.Series {
			if s.Labels.Get("i") == "0" {
				first = append(first, s.T...)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(first) {
		t.Error("series 0 is out of order after thinning")
	}
	return first, appended
}

func TestThinningKeepsTheWholeOutageCoarsely(t *testing.T) {
	if testing.Short() {
		t.Skip("two day-long outages; without -short")
	}
	const maxSize, series, hours = 1 << 20, 100, 24
	start := int64(1_700_000_000_000) + 15_000
	end := start + int64(hours*60*4-1)*15_000

	evicted, _ := outage(t, t.TempDir(), maxSize, false, series, hours)
	dir := t.TempDir()
	thinned, _ := outage(t, dir, maxSize, true, series, hours)

	// Without thinning the buffer holds the end of the outage only.
	if evicted[0] < start+int64(hours/2)*3_600_000 {
		t.Fatalf("the test did not overflow the buffer: without thinning the oldest sample is %d h in", (evicted[0]-start)/3_600_000)
	}
	// With thinning, the outage from its first hours on.
	if reach := (thinned[0] - start) / 3_600_000; reach > 2 {
		t.Errorf("with thinning the oldest sample is %d h into the %d h outage; want the start kept", reach, hours)
	}
	// The newest hour stays at full resolution, the oldest is coarser.
	if last := thinned[len(thinned)-1]; last != end {
		t.Errorf("newest sample %d, want %d", last, end)
	}
	gap := func(ts []int64, from, to int64) int64 {
		var worst int64
		for i := 1; i < len(ts); i++ {
			if ts[i] >= from && ts[i] <= to {
				worst = max(worst, ts[i]-ts[i-1])
			}
		}
		return worst
	}
	if g := gap(thinned, end-3_600_000, end); g != 15_000 {
		t.Errorf("in the last hour samples are up to %d ms apart, want 15000", g)
	}
	if g := gap(thinned, start, start+4*3_600_000); g < 60_000 {
		t.Errorf("in the first hours samples are at most %d ms apart: nothing was thinned there", g)
	}
	t.Logf("24 h outage into 1 MiB, 100 series: evicting keeps %.1f h, thinning keeps %.1f h (%d samples of series 0 vs %d)",
		float64(end-evicted[0])/3.6e6, float64(end-thinned[0])/3.6e6, len(evicted), len(thinned))

	// The levels survive a restart: thinning goes on where it was.
	b, err := Open(Options{Dir: dir, MaxSize: maxSize, Thin: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	levels := 0
	for _, bi := range b.blocks {
		levels = max(levels, int(bi.level))
	}
	if levels < 2 {
		t.Errorf("after reopening, the highest thinning level is %d, want the persisted ones", levels)
	}
}

// Thinning merges a block with a newer one under the newer seq. Merging
// across the sender's fresh-first split would carry backlog samples into
// the part sent first, after newer ones; merging a block the sender has
// read would send its samples again after newer ones. Receivers without an
// out-of-order window refuse either whole request.
func TestThinningMergesNeitherAcrossTheSplitNorBlocksInFlight(t *testing.T) {
	cases := []struct {
		name  string
		split bool    // fresh-first: blocks from the split on are read first
		at    float64 // else: where in the backlog the request in flight starts
	}{{name: "fresh-first split", split: true}}
	positions := []float64{0, 0.25, 0.5, 0.75, 0.95}
	if testing.Short() {
		positions = []float64{0.5}
	}
	for _, at := range positions {
		cases = append(cases, struct {
			name  string
			split bool
			at    float64
		}{fmt.Sprintf("in flight at %.0f%%", 100*at), false, at})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := Open(Options{Dir: t.TempDir(), MaxSize: 256 << 10, Thin: true})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			lsets := make([]labels.Labels, 40)
			for i := range lsets {
				lsets[i] = labels.FromStrings("__name__", "m", "i", fmt.Sprint(i))
			}
			ts := int64(1_700_000_000_000)
			rng := rand.New(rand.NewPCG(1, 2))
			commits := func(n int) {
				for range n {
					for range 20 {
						ts += 15_000
						for _, lset := range lsets {
							b.Append(lset, ts, rng.Float64())
						}
					}
					if err := b.Commit(); err != nil {
						t.Fatal(err)
					}
				}
			}
			commits(61) // full, thinning
			if b.Stats().Dropped[ReasonThinned] == 0 {
				t.Fatalf("the setup does not thin: %+v", b.Stats())
			}
			// sentUpTo is what the receiver will have of each series when
			// the sender reads on from from.
			sentUpTo := map[string]int64{}
			var from uint64
			if tc.split {
				from = b.LastSeq() + 1
				b.SplitAt(from)
				for _, lset := range lsets {
					sentUpTo[lset.String()] = ts // the backlog, sent after the fresh part
				}
			} else {
				// The sender is in the middle of the backlog; its request
				// is in flight while the agent commits.
				var seqs []uint64
				if err := b.ForEach(func(blk Block) error { seqs = append(seqs, blk.Seq); return nil }); err != nil {
					t.Fatal(err)
				}
				inFlight, err := b.Read(seqs[int(tc.at*float64(len(seqs)-1))], 2000)
				if err != nil || len(inFlight) == 0 {
					t.Fatalf("read: %d blocks, %v", len(inFlight), err)
				}
				for _, blk := range inFlight {
					for _, s := range blk.Series {
						sentUpTo[s.Labels.String()] = max(sentUpTo[s.Labels.String()], s.T[len(s.T)-1])
					}
				}
				from = inFlight[len(inFlight)-1].Seq + 1
			}
			thinned := b.Stats().Dropped[ReasonThinned]
			for range 40 {
				commits(1)
				err := b.ForEach(func(blk Block) error {
					if blk.Seq < from {
						return nil
					}
					for _, s := range blk.Series {
						if s.T[0] <= sentUpTo[s.Labels.String()] {
							t.Fatalf("block %d (read after %d) holds %s at %d, which the receiver has up to %d", blk.Seq, from, s.Labels, s.T[0], sentUpTo[s.Labels.String()])
						}
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			if b.Stats().Dropped[ReasonThinned] == thinned {
				t.Fatal("no thinning meanwhile")
			}
		})
	}
}
