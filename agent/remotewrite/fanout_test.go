package remotewrite

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"

	"github.com/ferry-agent/ferry/buffer"
)

// fakeEndpoint plays one sender against its fan-out endpoint, step by step,
// as Run does: committed blocks from its position, acks in batches, live
// blocks when caught up; a dead one fails every attempt.
type fakeEndpoint struct {
	ep        *Endpoint
	dead      bool
	next      uint64 // next seq to read
	delivered uint64 // last delivered, not yet acked
	unacked   int
	maxLive   int // its MaxSamplesPerSend; 0: no limit
	t         *testing.T
	holding   bool            // a live block taken, not yet handed back
	held      buffer.Block    // it
	got       map[string]int  // sample (series and time): times delivered
	seqs      map[uint64]bool // blocks delivered
	fromLive  int             // samples delivered live
	// partial, when set, decides whether a dead endpoint had delivered
	// some of a live block before it failed (a probe, a first request).
	partial func() bool
}

func sampleKey(lset labels.Labels, t int64) string { return fmt.Sprintf("%s@%d", lset.String(), t) }

func (fe *fakeEndpoint) record(blk buffer.Block, live bool) {
	for _, s := range blk.Series {
		for _, ts := range s.T {
			fe.got[sampleKey(s.Labels, ts)]++
			if live {
				fe.fromLive++
			}
		}
	}
}

// committedStep reads and, alive, delivers one batch; caught up, it acks.
func (fe *fakeEndpoint) committedStep(t *testing.T, maxSamples int) {
	if fe.holding {
		return
	}
	blocks, err := fe.ep.Read(fe.next, maxSamples)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) == 0 {
		fe.ack(t)
		return
	}
	if fe.dead {
		return // retrying: nothing moves
	}
	for _, b := range blocks {
		fe.record(b, false)
		fe.seqs[b.Seq] = true
		fe.unacked += b.Samples() + 1
	}
	fe.delivered = blocks[len(blocks)-1].Seq
	fe.next = fe.delivered + 1
	fe.ep.Delivered(fe.delivered)
	if fe.unacked > 3000 {
		fe.ack(t)
	}
}

func (fe *fakeEndpoint) ack(t *testing.T) {
	if fe.unacked == 0 {
		return
	}
	if err := fe.ep.Ack(fe.delivered); err != nil {
		t.Fatal(err)
	}
	fe.unacked = 0
}

func (fe *fakeEndpoint) take() {
	if fe.holding {
		return
	}
	fe.held, fe.holding = fe.ep.TakeLive(cmp.Or(fe.maxLive, 1<<20), false)
	if fe.holding && fe.held.Samples() == 0 {
		fe.t.Fatal("TakeLive gave an empty block")
	}
}

func (fe *fakeEndpoint) handBack() {
	if !fe.holding {
		return
	}
	fe.holding = false
	if fe.dead {
		var settled buffer.Block
		if fe.partial != nil && fe.partial() {
			// Each series' first half delivered: the sender settles each
			// series oldest first.
			for _, s := range fe.held.Series {
				k := (len(s.T) + 1) / 2
				s.T, s.V = s.T[:k:k], s.V[:k:k]
				settled.Series = append(settled.Series, s)
			}
			fe.record(settled, true)
		}
		fe.ep.LiveFailed(settled)
		return
	}
	fe.record(fe.held, true)
	fe.ep.LiveDone()
}

// Randomised interleavings of collections, commits that evict at the cap,
// and N endpoints that read, ack, take live blocks, hand them back (whole,
// or failed after delivering some of them), fail, die and come back: every
// sample reaches every endpoint once, or is counted dropped for it; no
// endpoint gets a sample twice; a block leaves the buffer only when every
// endpoint delivered it, or by eviction; and the buffer is empty once all
// caught up.
func TestFanoutConservesEverySampleForEachEndpoint(t *testing.T) {
	seeds := uint64(3) // two, three and four endpoints
	if testing.Short() {
		seeds = 1
	}
	for seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { fanoutRun(t, seed) })
	}
}

func fanoutRun(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	n := 2 + int(seed%3)
	const nSeries = 60
	var f *Fanout
	evicted := map[uint64]bool{}
	evictedSamples := 0
	buf, err := buffer.Open(buffer.Options{Dir: t.TempDir(), MaxSize: 256 << 10, Evicted: func(seq uint64, samples int) {
		evicted[seq] = true
		evictedSamples += samples
		f.Evicted(seq, samples)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	f = NewFanout(buf, make([]EndpointConfig, n))
	defer f.Close()
	fes := make([]*fakeEndpoint, n)
	for i := range fes {
		// Endpoints with small and large requests: a live block
		// is shared out in parts.
		fes[i] = &fakeEndpoint{ep: f.Endpoint(i), t: t, maxLive: 37 + 200*i, got: map[string]int{}, seqs: map[uint64]bool{},
			partial: func() bool { return rng.IntN(2) == 0 }}
	}
	lsets := make([]labels.Labels, nSeries)
	for i := range lsets {
		lsets[i] = labels.FromStrings("__name__", "m", "i", fmt.Sprint(i))
	}
	appended := map[string]bool{}
	ts := time.Now().Add(-3 * time.Hour).UnixMilli()
	collect := func() {
		ts += 1000
		for _, l := range lsets {
			buf.Append(l, ts, rng.Float64())
			appended[sampleKey(l, ts)] = true
		}
		buf.Collected()
	}
	firstKept := uint64(1) // the buffer's lowest seq not yet deleted
	checkDeletes := func(step int) {
		st := buf.Stats()
		now := buf.LastSeq() + 1
		if st.Blocks > 0 {
			now = st.FirstSeq
		}
		for seq := firstKept; seq < now; seq++ {
			if evicted[seq] {
				continue
			}
			for i, fe := range fes {
				if !fe.seqs[seq] {
					t.Fatalf("step %d: block %d left the buffer, neither evicted nor delivered to endpoint %d", step, seq, i)
				}
			}
		}
		firstKept = max(firstKept, now)
	}
	commit := func() {
		// A commit waits for the live block: the senders hand theirs
		// back within one request, and the claim window ends.
		for _, fe := range fes {
			fe.handBack()
		}
		f.mu.Lock()
		if l := f.live; l != nil {
			f.mu.Unlock()
			f.claimExpired(l)
		} else {
			f.mu.Unlock()
		}
		if err := buf.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	steps := 10000
	if testing.Short() {
		steps = 6000 // still well past the cap
	}
	for step := range steps {
		switch r := rng.IntN(100); {
		case r < 12:
			collect()
		case r < 14:
			commit()
			checkDeletes(step)
		case r < 15:
			fe := fes[rng.IntN(n)]
			// One endpoint at a time may be down for long stretches;
			// never all at once for long.
			fe.dead = !fe.dead && step < steps*3/4
		case r < 17:
			f.mu.Lock()
			l := f.live
			f.mu.Unlock()
			if l != nil {
				f.claimExpired(l)
			}
		default:
			fe := fes[rng.IntN(n)]
			switch rng.IntN(3) {
			case 0:
				fe.committedStep(t, 1+rng.IntN(2000))
				checkDeletes(step)
			case 1:
				fe.take()
			case 2:
				fe.handBack()
			}
		}
	}
	// Everyone back, until all caught up.
	for _, fe := range fes {
		fe.dead = false
	}
	for round := 0; ; round++ {
		if round > 1000 {
			t.Fatal("the endpoints never caught up")
		}
		commit()
		for _, fe := range fes {
			for range 200 {
				fe.committedStep(t, 5000)
			}
			fe.ack(t)
		}
		checkDeletes(steps + round)
		if st := buf.Stats(); st.Blocks == 0 && st.HeadSamples == 0 {
			break
		}
	}
	f.Close()
	if evictedSamples == 0 {
		t.Fatal("nothing was evicted: the test does not reach the cap")
	}
	for i, fe := range fes {
		missing, dups := 0, 0
		for k := range appended {
			switch c := fe.got[k]; {
			case c == 0:
				missing++
			case c > 1:
				dups++
			}
		}
		dropped := int(f.Dropped(i))
		t.Logf("endpoint %d: %d of %d samples, %d live, %d missing, %d counted dropped, %d duplicates (evicted in all: %d)",
			i, len(fe.got), len(appended), fe.fromLive, missing, dropped, dups, evictedSamples)
		if missing > dropped {
			t.Errorf("endpoint %d: %d samples never delivered, only %d counted dropped", i, missing, dropped)
		}
		if dropped > evictedSamples {
			t.Errorf("endpoint %d: %d counted dropped, more than the %d evicted", i, dropped, evictedSamples)
		}
		if dups > 0 {
			t.Errorf("endpoint %d: %d samples delivered more than once", i, dups)
		}
		for k := range fe.got {
			if !appended[k] {
				t.Fatalf("endpoint %d: got %s, never appended", i, k)
			}
		}
	}
}

// With one endpoint down, the other takes every collection live, and the
// down one gets them all from committed blocks once it is back; the live
// one gets none of them twice.
func TestFanoutLiveEndpointKeepsTakingWhileAnotherIsDown(t *testing.T) {
	buf, err := buffer.Open(buffer.Options{Dir: t.TempDir(), MaxSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	f := NewFanout(buf, make([]EndpointConfig, 2))
	defer f.Close() // a live block in flight goes back before the buffer's Close commits
	// Requests of 25 samples, collections of 30: what the one that is
	// down lacks piles up in the head, and the live one must still get
	// each new collection, not the pile again.
	up := &fakeEndpoint{ep: f.Endpoint(0), t: t, maxLive: 25, got: map[string]int{}, seqs: map[uint64]bool{}}
	down := &fakeEndpoint{ep: f.Endpoint(1), t: t, got: map[string]int{}, seqs: map[uint64]bool{}, dead: true}
	ts := time.Now().Add(-time.Hour).UnixMilli()
	const rounds, series = 40, 30
	for round := range rounds {
		ts += 1000
		for i := range series {
			buf.Append(labels.FromStrings("__name__", "m", "i", fmt.Sprint(i)), ts, float64(round))
		}
		buf.Collected()
		up.committedStep(t, 1000)
		down.committedStep(t, 1000)
		// The one that is down tries (its retry) and holds its request
		// over the next round, as an unreachable receiver holds it for
		// its timeout: the live one must not wait for it.
		switch {
		case round == 0: // its first failure: until then it is waited for
			down.take()
			down.handBack()
		case round%2 == 1:
			down.take()
		default:
			down.handBack()
		}
		for range 10 { // the sender asks until there is nothing left for it
			up.take()
			up.handBack()
		}
		if len(up.got) != (round+1)*series {
			t.Fatalf("round %d: the live endpoint has %d samples; want all %d collected", round, len(up.got), (round+1)*series)
		}
		if round == rounds/2 {
			if err := buf.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if up.fromLive != rounds*series {
		t.Fatalf("live endpoint: %d samples live; want all %d", up.fromLive, rounds*series)
	}
	if err := buf.Commit(); err != nil {
		t.Fatal(err)
	}
	if st := buf.Stats(); st.Samples != rounds*series {
		t.Fatalf("%d samples committed; want all %d, for the endpoint that is down", st.Samples, rounds*series)
	}
	down.handBack()
	down.dead = false
	for range 20 {
		up.committedStep(t, 1000)
		down.committedStep(t, 1000)
	}
	if len(down.got) != rounds*series {
		t.Fatalf("the endpoint that was down got %d samples; want %d", len(down.got), rounds*series)
	}
	for k, c := range up.got {
		if c != 1 {
			t.Fatalf("live endpoint got %s %d times", k, c)
		}
	}
	if st := buf.Stats(); st.Blocks != 0 {
		t.Fatalf("%d blocks left after both delivered everything", st.Blocks)
	}
}

// Each endpoint's write relabeling applies to what it is given, and only
// to it.
func TestFanoutRelabelsPerEndpoint(t *testing.T) {
	buf, err := buffer.Open(buffer.Options{Dir: t.TempDir(), MaxSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	drop := &relabel.Config{SourceLabels: model.LabelNames{"__name__"}, Regex: relabel.MustNewRegexp("secret.*"), Action: relabel.Drop}
	f := NewFanout(buf, []EndpointConfig{{}, {WriteRelabel: []*relabel.Config{drop}}})
	ts := time.Now().Add(-time.Hour).UnixMilli()
	buf.Append(labels.FromStrings("__name__", "secret_x"), ts, 1)
	buf.Append(labels.FromStrings("__name__", "public_y"), ts, 1)
	if err := buf.Commit(); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{2, 1} {
		blocks, err := f.Endpoint(i).Read(0, 100)
		if err != nil || len(blocks) != 1 {
			t.Fatalf("endpoint %d: %d blocks, %v", i, len(blocks), err)
		}
		if got := len(blocks[0].Series); got != want {
			t.Errorf("endpoint %d: %d series; want %d", i, got, want)
		}
	}
}
