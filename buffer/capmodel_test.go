package buffer

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// TestCapHoldsUnderRandomChurn tries to break the cap: series come and go
// across commits with label values from a few bytes to hundreds of KiB,
// while the journal is written, the sender takes live blocks (delivered or
// failed), reads, acknowledges and deletes, and the buffer is reopened;
// somewhere in the run an outage delivers nothing until the files hold
// half the cap.
// After every step the file and the journal together stay within the cap,
// and every sample appended is delivered, kept, waiting or counted.
func TestCapHoldsUnderRandomChurn(t *testing.T) {
	seeds := []uint64{1, 2, 3, 42, uint64(time.Now().UnixNano())}
	if s := os.Getenv("CAP_SEED"); s != "" {
		n, _ := strconv.ParseUint(s, 10, 64)
		seeds = []uint64{n}
	}
	for i, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			if i == len(seeds)-1 {
				t.Logf("random seed %d (rerun with it in the list above)", seed)
			}
			capModel(t, seed)
		})
	}
}

func capModel(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	caps := []int64{512 << 10, 1 << 20, 3<<20 + 12345}
	maxSize := caps[rng.IntN(len(caps))]
	thin := rng.IntN(3) == 0
	dir := t.TempDir()
	open := func() *Buffer {
		b, err := Open(Options{Dir: dir, MaxSize: maxSize, Thin: thin, MaxHeadBytes: 256 << 10})
		if err != nil {
			t.Fatalf("seed %d: open: %v", seed, err)
		}
		return b
	}
	b := open()
	defer func() { b.Close() }()

	valueSize := func() int {
		switch r := rng.IntN(1000); {
		case r < 940:
			return 1 + rng.IntN(40)
		case r < 998:
			return 500 + rng.IntN(4000)
		default:
			return 50<<10 + rng.IntN(300<<10)
		}
	}
	// The series a target exposes now; some are replaced at each step.
	var pool []labels.Labels
	newSeries := func() labels.Labels {
		return labels.FromStrings("__name__", "m", "id", fmt.Sprintf("%d-%s", rng.Uint32(), strings.Repeat("v", valueSize())))
	}
	for range 50 * maxSize / (512 << 10) {
		pool = append(pool, newSeries())
	}

	var appended, delivered uint64
	dropped := map[string]uint64{} // of buffers closed
	ts := int64(1000)
	inFlight, flightSamples := false, 0
	var most int64
	// An outage somewhere in the run: nothing is delivered from its first
	// step until the files hold half the cap, so the cap is reached
	// whatever the dice give the other steps.
	outageFrom, outageOver := rng.IntN(200), false
	check := func(step int, what string) {
		t.Helper()
		n := onDisk(t, dir)
		most = max(most, n)
		if n > maxSize {
			t.Fatalf("seed %d step %d (%s): %d bytes on disk, cap %d (thin %v)", seed, step, what, n, maxSize, thin)
		}
	}
	for step := 0; step < 400 || !outageOver; step++ {
		if step == 5000 {
			t.Fatalf("seed %d: 5000 steps without delivery did not fill half the cap of %d (at most %d bytes)", seed, maxSize, most)
		}
		outageOver = outageOver || step > outageFrom && most >= maxSize/2
		linkDown := step >= outageFrom && !outageOver
		what := ""
		switch op := rng.IntN(20); {
		case op < 7:
			what = "collect"
			for k := range pool {
				if rng.IntN(10) == 0 {
					pool[k] = newSeries()
				}
			}
			if rng.IntN(8) == 0 { // a target comes or goes
				if rng.IntN(2) == 0 || len(pool) < 10 {
					for range rng.IntN(300) {
						pool = append(pool, newSeries())
					}
				} else {
					pool = pool[:len(pool)/2]
				}
			}
			ts += 1000
			for _, lset := range pool {
				b.Append(lset, ts, rng.Float64())
			}
			appended += uint64(len(pool))
		case op < 9 && !inFlight:
			what = "journal"
			if err := b.Journal(); err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
		case op < 11 && !inFlight:
			what = "take live"
			if blk, ok := b.TakeLive(1+rng.IntN(2000), false); ok {
				inFlight, flightSamples = true, blk.Samples()
			}
		case op < 13 && inFlight:
			what = "live ends"
			if rng.IntN(2) == 0 && !linkDown {
				b.LiveDone()
				delivered += uint64(flightSamples)
			} else {
				b.LiveFailed(Block{})
			}
			inFlight = false
		case op < 15 && !inFlight:
			what = "commit"
			before := b.Stats()
			if err := b.Commit(); err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			// What was collected is kept, but for what one commit
			// alone cannot have.
			after := b.Stats()
			if tooSmall := after.Dropped[ReasonCapTooSmall] - before.Dropped[ReasonCapTooSmall]; before.HeadSamples > int(tooSmall) && after.NewestT != ts {
				t.Fatalf("seed %d step %d: a commit of %d samples (%d dropped as %s) kept none of the newest: %+v", seed, step, before.HeadSamples, tooSmall, ReasonCapTooSmall, after)
			}
		case op < 17 && !linkDown:
			what = "ack"
			blocks, err := b.Read(0, 1+rng.IntN(3000))
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			if len(blocks) > 0 {
				for _, blk := range blocks {
					delivered += uint64(blk.Samples())
				}
				if err := b.Ack(blocks[len(blocks)-1].Seq); err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
			}
		case op < 18 && !linkDown:
			what = "delete newest"
			blocks, err := b.Read(b.LastSeq(), 1)
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			for _, blk := range blocks {
				delivered += uint64(blk.Samples())
				if err := b.Delete([]uint64{blk.Seq}); err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
			}
		case op == 18 && !inFlight:
			what = "reopen"
			if err := b.Close(); err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			for r, n := range b.Stats().Dropped {
				dropped[r] += n
			}
			check(step, "closed")
			b = open()
		}
		check(step, what)
		if os.Getenv("CAP_SEED") != "" {
			st := b.Stats()
			lost := lostSamples(st, dropped)
			t.Logf("step %d %s: appended %d delivered %d kept %d head %d live %d lost %d => %d", step, what, appended, delivered, st.Samples, st.HeadSamples, st.LiveSamples, lost, int64(appended)-int64(delivered+lost)-int64(st.Samples+st.HeadSamples+st.LiveSamples))
		}
	}
	if inFlight {
		b.LiveFailed(Block{})
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	check(-1, "last commit")
	st := b.Stats()
	lost := lostSamples(st, dropped)
	if kept := uint64(st.Samples); delivered+kept+lost != appended {
		t.Fatalf("seed %d: delivered %d + kept %d + dropped %d (%v) = %d, appended %d", seed, delivered, kept, lost, st.Dropped, delivered+kept+lost, appended)
	}
	t.Logf("seed %d cap %d thin %v: at most %d bytes on disk; appended %d, delivered %d, kept %d, dropped %v (of the last open)", seed, maxSize, thin, most, appended, delivered, st.Samples, st.Dropped)
}

// lostSamples adds the samples counted as dropped by the buffer open now
// and by those before it.
func lostSamples(st Stats, before map[string]uint64) uint64 {
	var n uint64
	for _, r := range DropReasons {
		n += st.Dropped[r] + before[r]
	}
	return n
}
