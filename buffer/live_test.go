package buffer

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// What the sender delivers from memory is never written to the file: not
// its samples, not its label sets.
func TestLiveDeliveredSamplesNeverReachTheFile(t *testing.T) {
	dir := t.TempDir()
	b := openTest(t, dir, 4<<20)
	if err := b.Commit(); err != nil { // the buckets of a new file
		t.Fatal(err)
	}
	before := fileBytes(t, dir)
	for round := range 20 {
		appendRound(b, 500, int64(1_000_000+round*15_000))
		b.Collected()
		<-b.LiveReady()
		blk, ok := b.TakeLive(1<<20, false)
		if !ok || blk.Samples() != 500 || blk.Seq != 0 {
			t.Fatalf("round %d: TakeLive = %d samples, seq %d, %v; want the 500 appended", round, blk.Samples(), blk.Seq, ok)
		}
		b.LiveDone()
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	st := b.Stats()
	if st.Blocks != 0 || st.HeadSamples != 0 {
		t.Fatalf("after live delivery: %d blocks, %d head samples; want none", st.Blocks, st.HeadSamples)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if after := fileBytes(t, dir); after != before {
		t.Errorf("the file grew from %d to %d bytes although everything was delivered from memory", before, after)
	}
	b = openTest(t, dir, 4<<20)
	defer b.Close()
	if st := b.Stats(); st.Series != 0 || st.Samples != 0 {
		t.Errorf("reopened: %d series, %d samples in the file; want none", st.Series, st.Samples)
	}
}

func fileBytes(t *testing.T, dir string) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// The live path waits behind committed data, so that every series still
// reaches the receiver oldest first.
func TestLiveWaitsBehindTheBacklog(t *testing.T) {
	b := openTest(t, t.TempDir(), 4<<20)
	defer b.Close()
	appendRound(b, 10, 1000)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	appendRound(b, 10, 2000)
	if blk, ok := b.TakeLive(100, false); ok {
		t.Fatalf("TakeLive took %d samples while a committed block waits", blk.Samples())
	}
	got := drain(t, b)
	if len(got) != 10 {
		t.Fatalf("drained %d series, want 10", len(got))
	}
	blk, ok := b.TakeLive(100, false)
	if !ok || blk.Samples() != 10 || blk.Series[0].T[0] != 2000 {
		t.Fatalf("after the drain TakeLive = %d samples, %v; want the 10 at 2000", blk.Samples(), ok)
	}
	if _, again := b.TakeLive(100, false); again {
		t.Fatal("a second live block while one is in flight")
	}
	b.LiveDone()
}

// A randomized run of the live path against a model: whatever the order of
// appends, takes, failures (some of a live block delivered first),
// deliveries and commits, every sample appended is delivered once or
// committed once, and each series' samples arrive in order.
func TestLivePathConservesEverySample(t *testing.T) {
	seed := uint64(rand.Int64())
	rng := rand.New(rand.NewPCG(seed, 7))
	b := openTest(t, t.TempDir(), 8<<20)
	defer b.Close()
	lsets := make([]labels.Labels, 40)
	for i := range lsets {
		lsets[i] = labels.FromStrings("__name__", "m", "i", fmt.Sprint(i))
	}
	appended := map[string][]int64{}
	delivered := map[string][]int64{}
	next := make([]int64, len(lsets))
	inFlight := false
	var flight Block
	deliver := func(blk Block) {
		for _, s := range blk.Series {
			k := s.Labels.String()
			if n := len(delivered[k]); n > 0 && s.T[0] <= delivered[k][n-1] {
				t.Fatalf("seed %d: %s: %d delivered after %d", seed, k, s.T[0], delivered[k][n-1])
			}
			delivered[k] = append(delivered[k], s.T...)
		}
	}
	// TakeLive's list of the head's series must name each of them once.
	headRefsMatch := func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		seen := map[uint32]bool{}
		for _, e := range b.head {
			r := e.ref
			if b.series.entryOf(r) != e || !b.inHeadLocked(r) || seen[r] {
				t.Fatalf("seed %d: ref %d listed for the head twice, or not in it", seed, r)
			}
			seen[r] = true
		}
		inHead := 0
		for _, e := range b.series.byRef.All() {
			if e.state.inHead() {
				inHead++
			}
			if !e.tracked && !reflect.ValueOf(e.state).IsZero() {
				t.Fatalf("seed %d: a series not tracked has a state: %+v", seed, e.state)
			}
		}
		if len(seen) != inHead {
			t.Fatalf("seed %d: %d of the head's %d series listed", seed, len(seen), inHead)
		}
	}
	for range 3000 {
		headRefsMatch()
		switch op := rng.IntN(10); {
		case op < 4: // a collection
			for range rng.IntN(30) {
				i := rng.IntN(len(lsets))
				next[i] += 1 + int64(rng.IntN(3))
				b.Append(lsets[i], 1000*next[i], float64(next[i]))
				appended[lsets[i].String()] = append(appended[lsets[i].String()], 1000*next[i])
			}
		case op < 6 && !inFlight:
			blk, ok := b.TakeLive(1+rng.IntN(60), false)
			if ok {
				inFlight, flight = true, blk
			}
		case op < 8 && inFlight:
			if rng.IntN(3) == 0 {
				// Failed after delivering some of it: each series' first
				// samples, as the sender settles them.
				var settled Block
				for _, s := range flight.Series {
					if k := rng.IntN(len(s.T) + 1); k > 0 && rng.IntN(2) == 0 {
						s.T, s.V = s.T[:k:k], s.V[:k:k]
						settled.Series = append(settled.Series, s)
					}
				}
				deliver(settled)
				b.LiveFailed(settled)
			} else {
				deliver(flight)
				b.LiveDone()
			}
			inFlight = false
		case op == 8 && inFlight: // the agent commits while the sender waits for an answer
			done := make(chan error)
			go func() { done <- b.Commit() }()
			time.Sleep(200 * time.Microsecond) // let the commit reach the head first
			if rng.IntN(2) == 0 {
				b.LiveFailed(Block{})
			} else {
				deliver(flight)
				b.LiveDone()
			}
			inFlight = false
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		case op == 8:
			if err := b.Commit(); err != nil {
				t.Fatal(err)
			}
		case !inFlight: // the sender drains some of the committed backlog
			blocks, err := b.Read(0, 1+rng.IntN(200))
			if err != nil {
				t.Fatal(err)
			}
			for _, blk := range blocks {
				deliver(blk)
			}
			if len(blocks) > 0 {
				if err := b.Ack(blocks[len(blocks)-1].Seq); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if inFlight {
		b.LiveFailed(Block{})
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	for {
		blocks, err := b.Read(0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(blocks) == 0 {
			break
		}
		for _, blk := range blocks {
			deliver(blk)
		}
		if err := b.Ack(blocks[len(blocks)-1].Seq); err != nil {
			t.Fatal(err)
		}
	}
	for k, want := range appended {
		if got := delivered[k]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("seed %d: %s: delivered %v, appended %v", seed, k, got, want)
		}
	}
	if st := b.Stats(); st.Dropped[ReasonOutOfOrder] != 0 {
		t.Fatalf("seed %d: %d samples counted out of order", seed, st.Dropped[ReasonOutOfOrder])
	}
}
