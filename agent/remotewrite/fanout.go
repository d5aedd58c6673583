package remotewrite

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"

	"github.com/ferry-agent/ferry/buffer"
)

// Fanout lets several senders, one per remote_write endpoint, drain one
// Source (the buffer), each at its own pace: Endpoint(i) is endpoint i's
// own Source over it.
//
// Committed blocks: each endpoint reads from its own position. The buffer
// deletes a block when every endpoint has acknowledged it (Ack reaches the
// buffer at the minimum over endpoints), or when its cap evicts it: the
// samples of an evicted block are then counted for each endpoint that had
// not delivered it (Evicted, Dropped). A dead endpoint holds blocks back
// for itself only; the others read past them.
//
// The live path (samples straight from memory, never written to flash):
// an endpoint with no committed block left to deliver takes the head from
// the buffer; every other endpoint that is caught up too and not failing
// is woken to take the same block within claimWindow. The block leaves
// memory when all of them delivered all of it. If one failed, missed it,
// was behind, or was given only part (its MaxSamplesPerSend), the block
// goes back to the buffer's head, to be taken again or committed for it;
// the endpoints that delivered theirs remember, per series, the run of
// samples they have (marks), and those are left out of what they are given
// later, live or committed: no endpoint gets a collection twice, none
// loses one. While an endpoint is down, what it lacks stays in the head
// (journaled, as with one endpoint) until the next commit writes it. Its
// retries take their share of the head without holding the block: from
// its first failure on, the others never wait for its requests (until
// then, one request, at most its timeout, is waited for).
//
// Per endpoint also: write relabeling (Prometheus applies
// write_relabel_configs per remote_write entry; with several endpoints it
// cannot happen as samples are appended, so it happens here, as blocks are
// read).
//
// Not here: Delete and fresh data ahead of the backlog (FreshFirst, a
// daily budget): with several endpoints the configuration refuses them.
//
// Concurrency: each Endpoint is used by one sender goroutine, as Source
// says; the endpoints' methods may run at the same time. Evicted may be
// called from any goroutine, with the buffer's lock held. Run forwards the
// buffer's signals; Close ends the live block in flight.
type Fanout struct {
	src Source
	eps []*Endpoint

	mu       sync.Mutex
	live     *fanLive // the buffer's live block in flight, or nil
	claim    *time.Timer
	ackedAll uint64 // the last Ack forwarded to src
	closed   bool
}

// claimWindow is how long a live block waits for a caught-up endpoint to
// take it before it goes back to the buffer for that endpoint: the buffer's
// commit waits for a live block in flight, so it must be short. A sender
// that is woken takes it within milliseconds; one that is busy with
// committed blocks or a retry gets the samples committed instead.
const claimWindow = 2 * time.Second

// liveState is where one endpoint stands with the live block in flight.
type liveState uint8

const (
	liveNone     liveState = iota // not offered (behind or failing), or missed the claim window
	liveExpected                  // offered, not yet taken
	liveTaken
	liveDone
	liveFailed
)

type fanLive struct {
	blk   buffer.Block
	state []liveState
	// given: what each endpoint that took the block was given (before
	// relabeling): blk less what it had, at most its maxSamples.
	given   []buffer.Block
	trimmed []bool // given is not all it lacked of blk
	// settled: what an endpoint that failed had delivered (or dropped
	// with a count) of its share before the failure.
	settled []buffer.Block
}

// EndpointConfig is what the fan-out does per endpoint.
type EndpointConfig struct {
	// WriteRelabel is applied to each series as blocks are read; a series
	// it drops, or leaves without a name, is not sent to this endpoint.
	WriteRelabel []*relabel.Config
}

// NewFanout returns a fan-out of src to len(eps) endpoints. Call Run to
// forward src's signals.
func NewFanout(src Source, eps []EndpointConfig) *Fanout {
	f := &Fanout{src: src}
	for i, c := range eps {
		f.eps = append(f.eps, &Endpoint{f: f, i: i, cfg: c,
			committed: make(chan struct{}, 1), liveReady: make(chan struct{}, 1)})
	}
	return f
}

// Endpoint returns endpoint i's Source, for its sender.
func (f *Fanout) Endpoint(i int) *Endpoint { return f.eps[i] }

// Dropped returns the samples evicted at the cap before endpoint i had
// them. Safe for concurrent use.
func (f *Fanout) Dropped(i int) uint64 { return f.eps[i].dropped.Load() }

// Evicted counts a block deleted whole to make room (buffer.Options'
// Evicted) against each endpoint that had not delivered it. The count is
// never less than what an endpoint lost; it may be more: samples it had
// from a live block before they were committed for another endpoint are
// counted too, as the block's contents are not known here. It takes no
// lock of the fan-out's: the buffer calls it with its own held, while the
// fan-out may be waiting for that one.
func (f *Fanout) Evicted(seq uint64, samples int) {
	for _, e := range f.eps {
		if seq >= e.seen.Load() {
			e.dropped.Add(uint64(samples))
		}
	}
}

// Run forwards src's commit and collection signals to every endpoint
// until ctx ends: the buffer's channels wake one receiver each.
func (f *Fanout) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.src.Committed():
			for _, e := range f.eps {
				signal(e.committed)
			}
		case <-f.src.LiveReady():
			for _, e := range f.eps {
				signal(e.liveReady)
			}
		}
	}
}

// Close hands a live block still in flight back to the buffer (after the
// senders stopped: one that is waited for will not come) and takes no new
// one. Call it before the buffer's Close, whose commit waits for it.
func (f *Fanout) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	if f.live != nil {
		for i, st := range f.live.state {
			if st == liveExpected || st == liveTaken {
				f.live.state[i] = liveNone
			}
		}
		f.finishLocked()
	}
}

// Endpoint is one endpoint's Source over the fan-out's. Its methods are
// Source's; it has its own Committed and LiveReady channels.
type Endpoint struct {
	f   *Fanout
	i   int
	cfg EndpointConfig

	// seen: every committed block below it is delivered to this endpoint,
	// or gone. Written by the endpoint's goroutine, read by Evicted.
	seen    atomic.Uint64
	dropped atomic.Uint64

	committed, liveReady chan struct{}

	// Under f.mu:
	acked   uint64
	failing bool            // its last live block failed: not waited for until it delivers
	marks   map[uint32]mark // by ref: samples delivered live that went back to the buffer
	// forget: marks to drop once the block of this seq is delivered: it
	// holds the last of their samples.
	forget map[uint32]uint64
	// detached: the share of a live block given to it while failing,
	// which did not wait for it; Series nil when none.
	detached buffer.Block

	relabeled map[uint32]relabeled // the endpoint goroutine's alone
	lb        labels.Builder
}

// mark: the endpoint has a series' samples from lo to hi (ms), delivered
// live; they went back to the buffer for another endpoint. Samples older
// than lo it has not (a block the disk refused for a while, committed
// late) are still given to it.
type mark struct{ lo, hi int64 }

type relabeled struct {
	in, out labels.Labels
	keep    bool
}

// maxRelabelCache bounds the memory of relabeling results.
const maxRelabelCache = 1 << 16

// Read returns the blocks from the buffer, less what this endpoint already
// has from a live block and what its relabeling drops.
func (e *Endpoint) Read(from uint64, maxSamples int) ([]buffer.Block, error) {
	last := e.f.src.LastSeq() // before Read: a block committed after it is not passed over
	blocks, err := e.f.src.Read(from, maxSamples)
	if err != nil {
		return blocks, err
	}
	if len(blocks) == 0 {
		// None from `from` on: those up to last are delivered or gone.
		e.see(last + 1)
		return nil, nil
	}
	e.f.mu.Lock()
	for i := range blocks {
		blocks[i] = e.unmarkedLocked(blocks[i], true)
	}
	e.f.mu.Unlock()
	for i := range blocks {
		blocks[i] = e.relabel(blocks[i])
	}
	return blocks, nil
}

// see notes that every block below seq is delivered or gone.
func (e *Endpoint) see(seq uint64) {
	for {
		cur := e.seen.Load()
		if seq <= cur || e.seen.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// Ack forwards the acknowledgement when every endpoint has the blocks.
func (e *Endpoint) Ack(seq uint64) error {
	f := e.f
	f.mu.Lock()
	e.acked = max(e.acked, seq)
	low := e.acked
	for _, o := range f.eps {
		low = min(low, o.acked)
	}
	forward := low > f.ackedAll
	if forward {
		f.ackedAll = low
	}
	f.mu.Unlock()
	if !forward {
		return nil
	}
	return f.src.Ack(low)
}

// Delivered notes this endpoint's progress, and tells the buffer what
// every endpoint has.
func (e *Endpoint) Delivered(seq uint64) {
	f := e.f
	e.see(seq + 1)
	f.mu.Lock()
	e.failing = false
	for ref, at := range e.forget {
		if at <= seq {
			delete(e.marks, ref)
			delete(e.forget, ref)
		}
	}
	low := e.seen.Load()
	for _, o := range f.eps {
		low = min(low, o.seen.Load())
	}
	f.mu.Unlock()
	if low > 1 {
		f.src.Delivered(low - 1)
	}
}

// errSeveralEndpoints: see Fanout. The sender calls Delete only with FreshFirst or
// a daily budget, and Commit only with a budget, which the configuration
// refuses with several endpoints.
var errSeveralEndpoints = errors.New("deleting blocks out of order, or committing for one endpoint, is not supported with several remote_write endpoints")

func (e *Endpoint) Delete([]uint64) error { return errSeveralEndpoints }

// Commit comes with a daily budget only, as Delete.
func (e *Endpoint) Commit() error { return errSeveralEndpoints }

// SplitAt comes with fresh data sent ahead of the backlog only, as Delete.
func (e *Endpoint) SplitAt(uint64) {}

func (e *Endpoint) LastSeq() uint64              { return e.f.src.LastSeq() }
func (e *Endpoint) Committed() <-chan struct{}   { return e.committed }
func (e *Endpoint) LiveReady() <-chan struct{}   { return e.liveReady }
func (e *Endpoint) caughtUp(lastSeq uint64) bool { return e.seen.Load() > lastSeq }
func (f *Fanout) allCaughtUp(lastSeq uint64) bool {
	for _, e := range f.eps {
		if e.seen.Load() <= lastSeq {
			return false
		}
	}
	return true
}

// TakeLive gives this endpoint the live block in flight, or takes one from
// the buffer when none is, while it has no committed block left to
// deliver. The fan-out takes all of the head: an endpoint that is down
// keeps what it lacks there (until a commit writes it for it), and the
// others must still get what comes after. Each endpoint is given at most
// maxSamples of what it lacks, whole series first, as the buffer's
// TakeLive does; the rest stays for its next one.
func (e *Endpoint) TakeLive(maxSamples int, _ bool) (buffer.Block, bool) {
	f := e.f
	f.mu.Lock()
	defer f.mu.Unlock()
	last := f.src.LastSeq()
	if f.closed || !e.caughtUp(last) {
		return buffer.Block{}, false
	}
	if f.live == nil {
		// Ahead of committed blocks only when some endpoint still needs
		// them: this one has them all. Otherwise the buffer checks for
		// itself, blocks it could not write yet included.
		blk, ok := f.src.TakeLive(math.MaxInt32, !f.allCaughtUp(last))
		if !ok {
			return buffer.Block{}, false
		}
		// An endpoint may still send its share after the block went back
		// (a failing one's, detached): the block's series are the
		// buffer's again then, to use for its next live block.
		blk.Series = slices.Clone(blk.Series)
		n := len(f.eps)
		f.live = &fanLive{blk: blk, state: make([]liveState, n), given: make([]buffer.Block, n), trimmed: make([]bool, n), settled: make([]buffer.Block, n)}
		waiting := false
		for _, o := range f.eps {
			// One whose last attempt failed takes it when its own
			// backoff lets it; the others do not wait for it.
			if o != e && o.caughtUp(last) && !o.failing {
				f.live.state[o.i] = liveExpected
				signal(o.liveReady)
				waiting = true
			}
		}
		if waiting {
			l := f.live
			f.claim = time.AfterFunc(claimWindow, func() { f.claimExpired(l) })
		}
	} else if f.live.state[e.i] != liveExpected {
		return buffer.Block{}, false
	}
	given, trimmed := liveShare(e.unmarkedLocked(f.live.blk, false), max(maxSamples, 1))
	switch {
	case given.Samples() == 0:
		// It has all of it already: nothing to send (a sender given an
		// empty block would ask again at once, and again).
		f.live.state[e.i] = liveDone
		f.finishLocked()
		return buffer.Block{}, false
	case e.failing:
		// Its retry: it gets its share, but the block does not wait for
		// it (an unreachable receiver holds a request for its whole
		// timeout, and the buffer's commit and the other endpoints' next
		// collections would wait with it). The samples go back to the
		// head for it; if it delivers them after all, it marks them.
		f.live.state[e.i] = liveNone
		e.detached = given
		f.finishLocked()
		return e.relabel(given), true
	}
	f.live.state[e.i] = liveTaken
	f.live.given[e.i], f.live.trimmed[e.i] = given, trimmed
	return e.relabel(given), true
}

// liveShare returns blk's series while they fit in maxSamples, at least
// the first maxSamples samples of one; trimmed if that is not all of blk.
func liveShare(blk buffer.Block, maxSamples int) (buffer.Block, bool) {
	n := 0
	for i, s := range blk.Series {
		switch {
		case n+len(s.T) <= maxSamples:
			n += len(s.T)
			continue
		case i == 0:
			s.T, s.V = s.T[:maxSamples:maxSamples], s.V[:maxSamples:maxSamples]
			return buffer.Block{Seq: blk.Seq, Series: []buffer.Series{s}}, true
		}
		return buffer.Block{Seq: blk.Seq, Series: blk.Series[:i:i]}, true
	}
	return blk, false
}

// LiveDone: this endpoint delivered the live block (or dropped it, counted).
func (e *Endpoint) LiveDone() { e.handBack(liveDone, buffer.Block{}) }

// LiveFailed: it did not, but for what settled; it gets the rest from a
// committed block, and what settled is marked as delivered for it.
func (e *Endpoint) LiveFailed(settled buffer.Block) { e.handBack(liveFailed, settled) }

func (e *Endpoint) handBack(st liveState, settled buffer.Block) {
	f := e.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if d := e.detached; d.Series != nil {
		e.detached = buffer.Block{}
		switch {
		case st == liveDone:
			e.failing = false
			e.markLocked(d)
		case len(settled.Series) > 0:
			e.markLocked(settled)
		}
		return
	}
	if f.live == nil || f.live.state[e.i] != liveTaken {
		return // not this endpoint's to hand back
	}
	f.live.state[e.i], f.live.settled[e.i] = st, settled
	e.failing = st == liveFailed
	f.finishLocked()
}

func (f *Fanout) claimExpired(l *fanLive) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.live != l {
		return
	}
	for i, st := range l.state {
		if st == liveExpected {
			l.state[i] = liveNone
		}
	}
	f.finishLocked()
}

// finishLocked hands the live block back to the buffer once no endpoint
// holds or is offered it: done if every endpoint has all of it (given now,
// or marked from before), else back to the head, to be committed or taken
// again for those that lack some, with marks for what each of the others
// was given. The caller holds f.mu.
func (f *Fanout) finishLocked() {
	l := f.live
	all := true
	for i, st := range l.state {
		switch st {
		case liveExpected, liveTaken:
			return
		case liveDone:
			all = all && !l.trimmed[i]
		default:
			all = false
		}
	}
	if f.claim != nil {
		f.claim.Stop()
		f.claim = nil
	}
	f.live = nil
	if all {
		f.src.LiveDone()
		return
	}
	for i, st := range l.state {
		switch {
		case st == liveDone:
			f.eps[i].markLocked(l.given[i])
		case st == liveFailed && len(l.settled[i].Series) > 0:
			f.eps[i].markLocked(l.settled[i])
		}
	}
	f.src.LiveFailed(buffer.Block{})
}

// markLocked notes that the endpoint has blk's samples, delivered live and
// back in the buffer. The caller holds f.mu.
func (e *Endpoint) markLocked(blk buffer.Block) {
	if e.marks == nil {
		e.marks = map[uint32]mark{}
	}
	for _, s := range blk.Series {
		n := len(s.T)
		if n == 0 {
			continue
		}
		m, ok := e.marks[s.Ref]
		if !ok {
			m = mark{lo: s.T[0], hi: s.T[n-1]}
		}
		e.marks[s.Ref] = mark{lo: min(m.lo, s.T[0]), hi: max(m.hi, s.T[n-1])}
	}
}

// unmarkedLocked returns blk without the samples this endpoint delivered
// live before they went back to the buffer; blk itself if there are none
// (the blocks are shared, never modified). A series' mark goes once its
// marked samples are all behind: a committed block shows a newer sample of
// it (each series comes oldest first, and a commit takes all of the head)
// and is delivered, or a live block starts after them. Not while a block
// that holds them is in flight: it may fail, and be read or taken again.
// The caller holds f.mu.
func (e *Endpoint) unmarkedLocked(blk buffer.Block, committed bool) buffer.Block {
	if len(e.marks) == 0 {
		return blk
	}
	var out []buffer.Series
	for i, s := range blk.Series {
		m, ok := e.marks[s.Ref]
		n := len(s.T)
		if !ok || n == 0 || s.T[0] > m.hi || s.T[n-1] < m.lo {
			if ok && n > 0 && s.T[0] > m.hi {
				e.forgetLocked(s.Ref, blk.Seq, committed)
			}
			if out != nil {
				out = append(out, s)
			}
			continue
		}
		if committed && s.T[n-1] > m.hi {
			e.forgetLocked(s.Ref, blk.Seq, true)
		}
		if out == nil {
			out = append(make([]buffer.Series, 0, len(blk.Series)), blk.Series[:i]...)
		}
		// Left out: the samples from lo to hi, a run within the series.
		a, b := 0, 0
		for a < n && s.T[a] < m.lo {
			a++
		}
		for b = a; b < n && s.T[b] <= m.hi; b++ {
		}
		if a > 0 || b < n {
			t := append(append(make([]int64, 0, n-(b-a)), s.T[:a]...), s.T[b:]...)
			v := append(append(make([]float64, 0, n-(b-a)), s.V[:a]...), s.V[b:]...)
			out = append(out, buffer.Series{Ref: s.Ref, Labels: s.Labels, T: t, V: v})
		}
	}
	if out == nil {
		return blk
	}
	return buffer.Block{Seq: blk.Seq, Series: out}
}

// forgetLocked drops ref's mark: at once for a live block, once the
// committed block seq is delivered.
func (e *Endpoint) forgetLocked(ref uint32, seq uint64, committed bool) {
	if !committed {
		delete(e.marks, ref)
		return
	}
	if e.forget == nil {
		e.forget = map[uint32]uint64{}
	}
	e.forget[ref] = seq
}

// relabel applies this endpoint's write relabeling; blk itself without.
func (e *Endpoint) relabel(blk buffer.Block) buffer.Block {
	if len(e.cfg.WriteRelabel) == 0 {
		return blk
	}
	if e.relabeled == nil || len(e.relabeled) > maxRelabelCache {
		e.relabeled = map[uint32]relabeled{}
	}
	out := buffer.Block{Seq: blk.Seq, Series: make([]buffer.Series, 0, len(blk.Series))}
	for _, s := range blk.Series {
		r, ok := e.relabeled[s.Ref]
		if !ok || !labels.Equal(r.in, s.Labels) { // a ref may name another series after its last sample went
			e.lb.Reset(s.Labels)
			r = relabeled{in: s.Labels, keep: relabel.ProcessBuilder(&e.lb, e.cfg.WriteRelabel...) && e.lb.Get(model.MetricNameLabel) != ""}
			if r.keep {
				r.out = e.lb.Labels()
			}
			e.relabeled[s.Ref] = r
		}
		if r.keep {
			s.Labels = r.out
			out.Series = append(out.Series, s)
		}
	}
	return out
}

// signal wakes one waiter on a channel of capacity one, without blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
