package buffer

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// TestModelConservesEverySample tries to break the buffer's central
// promise against a model that knows, for every sample appended, where it
// is: in the head, in flight on the live path, in the file (seen through
// ForEach after every step that may change it), delivered, or gone with a
// reason. A sender model drives the buffer as the real one does (live
// takes while caught up, oldest-first reads with batched acks, fresh-first
// splits with Delete), beside appends with clock steps back and label-set
// churn, Journal, Sync, Commit (also while a live block is in flight),
// eviction at small caps, thinning switched at reopens, clean reopens and
// process crashes (crashCopy).
//
// After every step: file + journal within the cap; the head, the block in
// flight and the committed samples as the model says; every sample that
// left the file or a commit without being delivered counted by the
// buffer's drop counters, exactly; out_of_order exactly as predicted. A
// crash may lose only samples appended since the Journal call before the
// last one (journalRecordLocked writes what waited a tick). At the end,
// everything drained: every sample delivered, or dropped with a reason, or
// lost to a crash as allowed; none delivered twice but where allowed (a
// block delivered and not yet acknowledged when the process died: a live
// block delivered while the journal held it is journaled as delivered, and
// never sent again); each
// series in timestamp order (with FreshFirst and thinning too, the backlog
// and the fresh part each in order).
//
// MODEL_SEED=n reruns one seed verbosely; MODEL_STEPS (default 1500, 300
// with -short) and MODEL_DURATION (e.g. 5m: new random seeds until it has
// passed) make long runs (make test-model).
func TestModelConservesEverySample(t *testing.T) {
	steps := 1500
	if testing.Short() {
		steps = 300
	}
	if s := os.Getenv("MODEL_STEPS"); s != "" {
		steps, _ = strconv.Atoi(s)
	}
	if s := os.Getenv("MODEL_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		runModel(t, seed, steps, true)
		return
	}
	seeds := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 42, 1234}
	if testing.Short() {
		seeds = seeds[:4]
	}
	random := uint64(time.Now().UnixNano())
	seeds = append(seeds, random)
	t.Logf("random seed %d (MODEL_SEED=%d reruns it)", random, random)
	var deadline time.Time
	if s := os.Getenv("MODEL_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		deadline = time.Now().Add(d)
	}
	total, runs := 0, 0
	for i := 0; i < len(seeds) || time.Now().Before(deadline); i++ {
		seed := random + uint64(i-len(seeds)+1)
		if i < len(seeds) {
			seed = seeds[i]
		}
		ok := t.Run(fmt.Sprint(seed), func(t *testing.T) { total += runModel(t, seed, steps, false) })
		runs++
		if !ok && !deadline.IsZero() {
			break
		}
	}
	t.Logf("%d runs, %d operations", runs, total)
}

// Where a sample is.
const (
	locMem  = iota // in the head
	locLive        // taken by TakeLive, in flight
	locFile        // committed
	locGone        // delivered and deleted, or dropped, or lost
)

type sampleKey struct {
	series string
	t      int64
}

type sampleState struct {
	v         float64
	loc       int
	epoch     int    // Journal calls since Open when appended
	delivered int    // times the receiver got it
	fromSeq   uint64 // the block it was delivered from (0: live)
	taken     bool   // taken live since it was appended: it may be at the receiver
	repeatOK  bool   // may reach the receiver again (see the test's comment)
	fate      string
}

type modelRun struct {
	t       *testing.T
	seed    uint64
	rng     *rand.Rand
	verbose bool
	step    int
	op      string

	dir     string
	b       *Buffer
	maxSize int64
	thin    bool
	fresh   bool // the sender's FreshFirst
	// linkDown: the last live block failed (none delivered since), so a
	// Journal call journals the whole head, not only what came before the
	// call before it.
	linkDown bool

	samples  map[sampleKey]*sampleState
	active   map[sampleKey]*sampleState // in the head or in flight
	file     map[sampleKey]uint64       // what ForEach saw last, with the seq
	lastT    map[string]int64           // per series, appended since Open
	jcount   int                        // Journal calls since Open
	ooo      uint64                     // out_of_order expected of the buffer open now
	counted  uint64                     // drops the model saw, of the buffer open now
	closedDr map[string]uint64          // drop counters of buffers closed or crashed
	fates    map[string]int

	// The live block in flight.
	inFlight bool
	// everRead: blocks Read returned since Open. The buffer counts such
	// a block evicted undelivered only when the sender gives it up (its
	// next Read, or Close): pending until then.
	everRead map[uint64]bool
	pending  uint64
	pendingK []pendingSample // the samples pending counts
	flight   []sampleKey

	// The sender.
	next, acked, unacked uint64 // next seq to read; delivered, not yet acked
	split                bool
	liveFrom, liveNext   uint64
	lastDel              map[string]int64 // per series, of the main (fresh) part
	lastBack             map[string]int64 // per series, of the backlog part

	// The collectors.
	clock, floor int64
	maxClock     int64 // the newest time appended
	pool         []labels.Labels
	retired      []labels.Labels
	nextID       int
	heavyChurn   bool

	down int // steps the receiver stays down (an outage)

	crashes, commits, delivers, stepsBack int
	neverSent                             int // samples replayed after crashes as never sent
	repeats, overlap, uncounted           int
	deliveredMark                         uint64 // the last seq told to Delivered since Open
}

func (m *modelRun) fatalf(format string, args ...any) {
	m.t.Helper()
	m.t.Fatalf("seed %d step %d (%s; cap %d thin %v fresh-first %v): %s", m.seed, m.step, m.op, m.maxSize, m.thin, m.fresh, fmt.Sprintf(format, args...))
}

func (m *modelRun) logf(format string, args ...any) {
	if m.verbose {
		m.t.Logf("step %d %s: %s", m.step, m.op, fmt.Sprintf(format, args...))
	}
}

func runModel(t *testing.T, seed uint64, steps int, verbose bool) int {
	rng := rand.New(rand.NewPCG(seed, 0xfe77))
	caps := []int64{256 << 10, 384 << 10, 512 << 10, 1 << 20}
	m := &modelRun{
		t: t, seed: seed, rng: rng, verbose: verbose,
		maxSize:    caps[rng.IntN(len(caps))],
		thin:       rng.IntN(2) == 0,
		fresh:      rng.IntN(2) == 0,
		samples:    map[sampleKey]*sampleState{},
		active:     map[sampleKey]*sampleState{},
		file:       map[sampleKey]uint64{},
		lastT:      map[string]int64{},
		closedDr:   map[string]uint64{},
		fates:      map[string]int{},
		lastDel:    map[string]int64{},
		lastBack:   map[string]int64{},
		clock:      1_000_000,
		heavyChurn: rng.IntN(3) == 0,
	}
	m.floor = m.clock
	m.dir = t.TempDir()
	m.open()
	defer func() { _ = m.b.Close() }()
	for range 10 + rng.IntN(150) {
		m.pool = append(m.pool, m.newLabels())
	}
	m.op = "start"
	m.logf("cap %d thin %v fresh-first %v series %d heavy churn %v", m.maxSize, m.thin, m.fresh, len(m.pool), m.heavyChurn)

	for m.step = 0; m.step < steps; m.step++ {
		switch r := rng.IntN(100); {
		case r < 30:
			m.collect()
		case r < 40:
			m.journal()
		case r < 43:
			m.op = "sync"
			if err := m.b.Sync(); err != nil {
				m.fatalf("%v", err)
			}
		case r < 52:
			m.commit()
		case r < 62:
			m.takeLive()
		case r < 70:
			m.endLive()
		case r < 85:
			m.sendBlocks()
		case r < 89:
			m.ack()
		case r < 93:
			if m.fresh {
				m.startSplit()
			} else {
				m.sendBlocks()
			}
		case r < 95:
			m.crash()
		case r < 97:
			m.reopen()
		default:
			m.churn()
		}
		if m.down > 0 {
			m.down--
		} else if rng.IntN(150) == 0 {
			m.down = 20 + rng.IntN(300) // an outage: the backlog grows to the cap
			m.logf("the receiver goes down for %d steps", m.down)
		}
		m.checkDisk()
		select {
		case <-m.b.HeadFull(): // the agent commits at once
			m.commit()
			m.checkDisk()
		default:
		}
	}
	m.step = steps
	m.down = 0
	dropped := m.finish()
	t.Logf("seed %d cap %d thin %v fresh-first %v: %d steps, %d samples, %d commits, %d crashes (%d samples replayed as never sent), %d clock steps back, %d deliveries; fates %v; drop counters %v; allowed repeats %d, delivered and counted dropped %d, deleted uncounted %d",
		seed, m.maxSize, m.thin, m.fresh, steps, len(m.samples), m.commits, m.crashes, m.neverSent, m.stepsBack, m.delivers, m.fates, dropped, m.repeats, m.overlap, m.uncounted)
	return steps
}

func (m *modelRun) open() {
	b, err := Open(Options{Dir: m.dir, MaxSize: m.maxSize, Thin: m.thin, MaxHeadBytes: 64 << 10})
	if err != nil {
		m.fatalf("open: %v", err)
	}
	m.b, m.deliveredMark, m.linkDown = b, 0, false // a new Buffer knows nothing delivered, nor failed
}

func (m *modelRun) newLabels() labels.Labels {
	m.nextID++
	return labels.FromStrings("__name__", "m", "job", fmt.Sprint("j", m.nextID%7), "id", fmt.Sprint(m.nextID))
}

// collect appends one collection: every series of the pool at one time,
// now and then after the clock stepped back.
func (m *modelRun) collect() {
	m.op = "collect"
	if m.rng.IntN(12) == 0 && m.clock-m.floor > 2000 {
		m.clock -= 1 + m.rng.Int64N(min(m.clock-m.floor-1, 40_000))
		m.stepsBack++
		m.op = "collect after a clock step back"
	} else {
		m.clock += 1000 + m.rng.Int64N(15_000)
	}
	m.maxClock = max(m.maxClock, m.clock)
	n := 0
	for _, lset := range m.pool {
		if m.rng.IntN(10) == 0 {
			continue // a sample missing from this scrape
		}
		k := sampleKey{lset.String(), m.clock}
		v := m.rng.Float64()
		m.b.Append(lset, k.t, v)
		if k.t <= m.lastT[k.series] {
			m.ooo++
			m.fates["out_of_order"]++
			continue
		}
		m.lastT[k.series] = k.t
		if m.samples[k] != nil {
			m.fatalf("model: %v appended twice", k)
		}
		m.samples[k] = &sampleState{v: v, loc: locMem, epoch: m.jcount}
		m.active[k] = m.samples[k]
		n++
	}
	m.b.Collected()
	m.logf("t=%d: %d accepted of %d series", m.clock, n, len(m.pool))
	m.checkCounts()
}

// churn replaces series: a target's label sets change, or old ones come back.
func (m *modelRun) churn() {
	m.op = "churn"
	frac := 10
	if m.heavyChurn {
		frac = 2
	}
	for i := range m.pool {
		if m.rng.IntN(frac) != 0 {
			continue
		}
		m.retired = append(m.retired, m.pool[i])
		// A label set may come back after the buffer forgot it: it still
		// refuses samples older than its last.
		if len(m.retired) > 1 && m.rng.IntN(4) == 0 {
			j := m.rng.IntN(len(m.retired) - 1)
			m.pool[i] = m.retired[j]
			m.retired = slices.Delete(m.retired, j, j+1)
		} else {
			m.pool[i] = m.newLabels()
		}
	}
	if m.rng.IntN(4) == 0 {
		if m.rng.IntN(2) == 0 && len(m.pool) > 10 {
			m.pool = m.pool[:len(m.pool)/2]
		} else {
			for range m.rng.IntN(100) {
				m.pool = append(m.pool, m.newLabels())
			}
		}
	}
}

// journal calls Journal; with a live block in flight, in a goroutine, as
// the agent's ticker does while the sender waits for an answer: when
// Journal commits instead (its share of the cap is reached), it waits for
// the live block, which the sender then hands back.
func (m *modelRun) journal() {
	m.op = "journal"
	headBefore := m.count(locMem)
	if m.inFlight {
		done := make(chan error, 1)
		go func() { done <- m.b.Journal() }()
		select {
		case err := <-done:
			m.journaled(err, headBefore)
		case <-time.After(200 * time.Millisecond):
			m.op = "journal committing, live block handed back"
			m.resolveLive()
			m.journaled(<-done, m.count(locMem))
		}
		return
	}
	m.journaled(m.b.Journal(), headBefore)
}

func (m *modelRun) journaled(err error, headBefore int) {
	if err != nil {
		m.fatalf("journal: %v", err)
	}
	m.jcount++
	committed := headBefore > 0 && m.b.Stats().HeadSamples == 0
	if committed {
		m.op += " (committed instead)"
		m.commits++
	}
	m.reconcile(committed, nil, false)
}

func (m *modelRun) commit() {
	m.op = "commit"
	m.commits++
	if m.inFlight {
		m.op = "commit while a live block is in flight"
		done := make(chan error, 1)
		go func() { done <- m.b.Commit() }()
		time.Sleep(time.Millisecond)
		m.resolveLive()
		if err := <-done; err != nil {
			m.fatalf("commit: %v", err)
		}
	} else if err := m.b.Commit(); err != nil {
		m.fatalf("commit: %v", err)
	}
	m.reconcile(true, nil, false)
}

func (m *modelRun) count(loc int) int {
	n := 0
	for _, s := range m.active {
		if s.loc == loc {
			n++
		}
	}
	return n
}

// takeLive takes a live block as the sender does: while caught up, or
// with FreshFirst ahead of the backlog.
func (m *modelRun) takeLive() {
	m.op = "take live"
	if m.inFlight {
		return
	}
	ahead := m.split
	if ahead {
		// The sender takes from memory only when no fresh block waits:
		// the fresh part stays in order.
		for _, seq := range m.file {
			if seq >= m.liveFrom {
				return
			}
		}
	}
	blk, ok := m.b.TakeLive(1+m.rng.IntN(400), ahead)
	head := m.count(locMem)
	if !ok {
		if head > 0 && (ahead || len(m.file) == 0) {
			m.fatalf("TakeLive took nothing; the head holds %d samples, the file %d", head, len(m.file))
		}
		return
	}
	if len(m.file) > 0 && !ahead {
		m.fatalf("TakeLive took %d samples while %d committed samples wait", blk.Samples(), len(m.file))
	}
	if blk.Seq != 0 {
		m.fatalf("live block with seq %d", blk.Seq)
	}
	m.inFlight, m.flight = true, nil
	for _, s := range blk.Series {
		for i, ts := range s.T {
			k := sampleKey{s.Labels.String(), ts}
			st := m.samples[k]
			if st == nil || st.loc != locMem || st.v != s.V[i] {
				m.fatalf("TakeLive returned %v = %v, model has %+v", k, s.V[i], st)
			}
			st.loc, st.taken = locLive, true
			m.flight = append(m.flight, k)
		}
	}
	m.logf("%d samples", len(m.flight))
	m.checkCounts()
}

// endLive answers the live block in flight: delivered, or the receiver failed.
func (m *modelRun) endLive() {
	m.op = "live ends"
	if m.inFlight {
		m.resolveLive()
	}
	m.checkCounts()
}

func (m *modelRun) resolveLive() {
	m.inFlight = false
	if m.down > 0 || m.rng.IntN(3) == 0 {
		m.b.LiveFailed(Block{})
		m.linkDown = true
		for _, k := range m.flight {
			m.samples[k].loc = locMem
		}
		m.logf("live block failed: %d samples back to the head", len(m.flight))
		return
	}
	m.b.LiveDone()
	m.linkDown = false
	byS := map[string][]int64{}
	for _, k := range m.flight {
		st := m.samples[k]
		m.gone(k, st)
		byS[k.series] = append(byS[k.series], k.t)
	}
	for s, ts := range byS {
		m.deliver(s, ts, false, 0)
	}
	m.logf("live block delivered: %d samples", len(m.flight))
}

// deliver records samples that reached the receiver, and checks their order.
func (m *modelRun) deliver(series string, ts []int64, backlog bool, seq uint64) {
	last := m.lastDel
	if backlog {
		last = m.lastBack
	}
	for _, t := range ts {
		st := m.samples[sampleKey{series, t}]
		m.delivers++
		if st.delivered > 0 {
			if m.thin && seq > st.fromSeq && st.fromSeq != 0 {
				// Thinning merged the block it was delivered from, not
				// yet acknowledged, into a newer one (thin.go).
				st.repeatOK = true
			}
			if !st.repeatOK {
				m.fatalf("%s@%d delivered a second time", series, t)
			}
			m.repeats++
			st.delivered++
			continue
		}
		st.delivered++
		st.fromSeq = seq
		if t <= last[series] {
			m.fatalf("%s: %d delivered after %d (backlog part: %v)", series, t, last[series], backlog)
		}
		last[series] = t
	}
}

// sendBlocks reads committed blocks and delivers them, or fails: oldest
// first, or with a fresh-first split the fresh blocks (deleted at once)
// or the backlog.
func (m *modelRun) sendBlocks() {
	m.op = "send blocks"
	if m.inFlight {
		return
	}
	fresh := m.split && m.rng.IntN(2) == 0
	from := m.next
	if fresh {
		m.op = "send fresh blocks"
		from = max(m.liveFrom, m.liveNext)
	}
	blocks, err := m.read(from, 1+m.rng.IntN(2000))
	if err != nil {
		m.fatalf("read: %v", err)
	}
	if m.split && !fresh {
		blocks = slices.DeleteFunc(blocks, func(b Block) bool { return b.Seq >= m.liveFrom })
		if len(blocks) == 0 {
			m.op = "backlog drained"
			m.ack()
			m.next, m.split, m.liveFrom = max(m.next, m.liveNext), false, 0
			m.b.SplitAt(0)
			return
		}
	}
	if len(blocks) == 0 {
		return
	}
	for _, blk := range blocks {
		if blk.Seq < from {
			m.fatalf("Read(%d) returned block %d", from, blk.Seq)
		}
		for _, s := range blk.Series {
			for i, ts := range s.T {
				k := sampleKey{s.Labels.String(), ts}
				if seq, ok := m.file[k]; !ok || seq != blk.Seq || m.samples[k].v != s.V[i] {
					m.fatalf("Read returned %v = %v in block %d; ForEach saw it in block %d (%v)", k, s.V[i], blk.Seq, seq, ok)
				}
			}
		}
	}
	if m.down > 0 || m.rng.IntN(5) == 0 {
		m.logf("receiver failed %d blocks", len(blocks))
		return // the receiver failed: tried again later
	}
	for _, blk := range blocks {
		for _, s := range blk.Series {
			m.deliver(s.Labels.String(), s.T, m.split && !fresh, blk.Seq)
		}
	}
	last := blocks[len(blocks)-1].Seq
	m.logf("delivered blocks %d..%d", blocks[0].Seq, last)
	if !fresh {
		m.next, m.unacked = last+1, last
		m.b.Delivered(last) // as the sender does: evicting these before the ack is no loss
		m.deliveredMark = max(m.deliveredMark, last)
		if m.rng.IntN(3) == 0 {
			m.ack()
		}
		return
	}
	seqs := make([]uint64, len(blocks))
	for i, blk := range blocks {
		seqs[i] = blk.Seq
	}
	if m.thin && m.rng.IntN(4) == 0 {
		m.commit() // the agent commits between the read and the delete
		m.op = "send fresh blocks: delete"
	}
	if err := m.b.Delete(seqs); err != nil {
		m.fatalf("delete: %v", err)
	}
	m.deliveredPending(seqs)
	m.liveNext = last + 1
	deleted := map[uint64]bool{}
	for _, s := range seqs {
		deleted[s] = true
	}
	m.reconcile(false, deleted, true)
}

func (m *modelRun) ack() {
	if m.unacked == 0 {
		return
	}
	m.op += ": ack"
	seq := m.unacked
	if err := m.b.Ack(seq); err != nil {
		m.fatalf("ack: %v", err)
	}
	m.unacked = 0
	deleted := map[uint64]bool{}
	for _, s := range m.file {
		if s <= seq {
			deleted[s] = true
		}
	}
	m.reconcile(false, deleted, false)
	for k, s := range m.file {
		if s <= seq {
			m.fatalf("%v still in block %d after Ack(%d)", k, s, seq)
		}
		if st := m.samples[k]; st.delivered > 0 && !st.repeatOK {
			// Thinning merges no block the sender has read.
			m.fatalf("%v delivered and still in the file (block %d) after Ack(%d)", k, s, seq)
		}
	}
}

type pendingSample struct {
	k   sampleKey
	seq uint64 // of its block
}

// deliveredPending settles the pending samples of blocks the sender
// deleted as delivered (Delete): the buffer does not count them.
func (m *modelRun) deliveredPending(seqs []uint64) {
	m.pendingK = slices.DeleteFunc(m.pendingK, func(p pendingSample) bool {
		if !slices.Contains(seqs, p.seq) {
			return false
		}
		m.pending--
		if m.samples[p.k].delivered > 0 {
			m.overlap--
		}
		return true
	})
}

// read is the sender's Read: what earlier reads returned and were not
// delivered is given up, and counted if it was evicted meanwhile.
func (m *modelRun) read(from uint64, maxSamples int) ([]Block, error) {
	m.counted += m.pending
	m.pending, m.pendingK = 0, m.pendingK[:0]
	blocks, err := m.b.Read(from, maxSamples)
	if m.everRead == nil {
		m.everRead = map[uint64]bool{}
	}
	for _, blk := range blocks {
		m.everRead[blk.Seq] = true
	}
	return blocks, err
}

// startSplit is the sender's FreshFirst turn: blocks committed from now on
// go ahead of the backlog.
func (m *modelRun) startSplit() {
	m.op = "fresh-first split"
	if m.split || len(m.file) == 0 {
		return
	}
	m.split = true
	m.liveFrom = m.b.LastSeq() + 1
	m.liveNext = m.liveFrom
	m.b.SplitAt(m.liveFrom)
	m.logf("fresh from %d", m.liveFrom)
}

// gone marks a sample out of the head, the live block and the file.
func (m *modelRun) gone(k sampleKey, st *sampleState) {
	st.loc = locGone
	delete(m.active, k)
}

// reconcile compares the file with what the model expects after a step.
// committed: the head went to the file (each of its samples is there, or
// counted dropped). deleted: blocks the sender deleted.
func (m *modelRun) reconcile(committed bool, deleted map[uint64]bool, byDelete bool) {
	m.t.Helper()
	now := m.snapshot()
	var drops uint64
	for k := range now {
		if _, was := m.file[k]; was {
			continue
		}
		st := m.samples[k]
		switch {
		case st == nil:
			m.fatalf("%v in the file, never appended", k)
		case st.loc == locMem && committed:
			st.loc = locFile
			delete(m.active, k)
		default:
			m.fatalf("%v came into the file from %+v", k, *st)
		}
	}
	for k, seq := range m.file {
		if _, still := now[k]; still {
			continue
		}
		st := m.samples[k]
		m.gone(k, st)
		switch {
		case deleted[seq] && st.delivered > 0:
		case deleted[seq]:
			// Also a Delete of a block thinning merged since it was read:
			// Delete keeps such a block, so its older samples stay.
			m.fatalf("%v deleted from block %d, never delivered", k, seq)
		case st.delivered > 0 && seq <= m.deliveredMark:
			// Evicted after Delivered, before its ack: no loss, not counted.
		default:
			if m.everRead[seq] {
				m.pending++ // counted when the sender gives the block up
				m.pendingK = append(m.pendingK, pendingSample{k, seq})
			} else {
				drops++
			}
			if st.delivered > 0 {
				m.overlap++ // evicted before its ack: delivered, and counted dropped
			} else {
				st.fate = "dropped"
			}
		}
	}
	if committed {
		for k, st := range m.active {
			if st.loc == locMem {
				m.gone(k, st)
				st.fate = "dropped"
				drops++
			}
		}
	}
	m.file = now
	if byDelete {
		for k, seq := range m.file {
			// Thinning merges no block the sender has read.
			if st := m.samples[k]; st.delivered > 0 && !st.repeatOK && seq >= m.liveFrom {
				m.fatalf("%v delivered and still in the file after Delete", k)
			}
		}
	}
	m.counted += drops
	m.checkCounts()
}

func (m *modelRun) snapshot() map[sampleKey]uint64 {
	out := map[sampleKey]uint64{}
	err := m.b.ForEach(func(blk Block) error {
		for _, s := range blk.Series {
			name := s.Labels.String()
			for i, ts := range s.T {
				k := sampleKey{name, ts}
				if seq, dup := out[k]; dup {
					m.fatalf("%v in blocks %d and %d", k, seq, blk.Seq)
				}
				if i > 0 && ts <= s.T[i-1] {
					m.fatalf("%s: block %d holds %d after %d", name, blk.Seq, ts, s.T[i-1])
				}
				if st := m.samples[k]; st != nil && st.v != s.V[i] {
					m.fatalf("%v holds %v, appended %v", k, s.V[i], st.v)
				}
				out[k] = blk.Seq
			}
		}
		return nil
	})
	if err != nil {
		m.fatalf("ForEach: %v", err)
	}
	return out
}

// countedDrops is the buffer's drops that the model sees as samples
// leaving the file or a commit.
func countedDrops(st Stats) uint64 {
	var n uint64
	for r, c := range st.Dropped {
		if r != ReasonOutOfOrder {
			n += c
		}
	}
	return n
}

func (m *modelRun) checkCounts() {
	m.t.Helper()
	st := m.b.Stats()
	if got := countedDrops(st); got != m.counted {
		m.fatalf("the buffer counts %d dropped (%v), the model saw %d samples leave", got, st.Dropped, m.counted)
	}
	if got := st.Dropped[ReasonOutOfOrder]; got != m.ooo {
		m.fatalf("the buffer counts %d out of order, the model expects %d", got, m.ooo)
	}
	if head, live := m.count(locMem), m.count(locLive); st.HeadSamples != head || st.LiveSamples != live {
		m.fatalf("head %d live %d samples; the model has %d and %d", st.HeadSamples, st.LiveSamples, head, live)
	}
	if st.Samples != len(m.file) {
		m.fatalf("%d committed samples; ForEach saw %d", st.Samples, len(m.file))
	}
}

func (m *modelRun) checkDisk() {
	m.t.Helper()
	if n := onDisk(m.t, m.dir); n > m.maxSize {
		m.fatalf("file + journal take %d bytes, cap %d", n, m.maxSize)
	}
}

// closing adds the drop counters of the buffer about to go.
func (m *modelRun) closing() {
	for r, n := range m.b.Stats().Dropped {
		m.closedDr[r] += n
	}
	m.ooo, m.counted, m.jcount, m.pending = 0, 0, 0, 0
	clear(m.everRead)
	clear(m.lastT)
	// Append's order holds since Open: no step back past a restart.
	m.clock = max(m.clock, m.maxClock)
	m.floor = m.clock
	m.next, m.unacked, m.split, m.liveFrom, m.liveNext = 0, 0, false, 0, 0
}

// reopen closes the buffer and opens it again (maybe with thinning
// switched): nothing is lost.
func (m *modelRun) reopen() {
	m.op = "reopen"
	if m.inFlight {
		m.resolveLive()
	}
	m.ack()
	m.op = "reopen"
	if err := m.b.Close(); err != nil {
		m.fatalf("close: %v", err)
	}
	m.checkDisk()
	m.commits++
	// Close committed the head: account for it with the closed buffer's counters.
	m.closeCommitted()
	m.closing()
	if m.rng.IntN(3) == 0 {
		m.thin = !m.thin
	}
	m.open()
	m.reconcileOpen(nil)
	m.restarted()
}

// closeCommitted reconciles a Close: its commit, seen through a
// read-only open.
func (m *modelRun) closeCommitted() {
	ro, err := Open(Options{Dir: m.dir, MaxSize: m.maxSize, ReadOnly: true})
	if err != nil {
		m.fatalf("read-only open: %v", err)
	}
	old := m.b
	m.b = ro
	// The closed buffer's counters, against what its Close commit did.
	m.reconcileWith(old.Stats(), true)
	_ = ro.Close()
	m.b = old
}

// reconcileWith is reconcile for a commit whose counters are in st.
func (m *modelRun) reconcileWith(st Stats, committed bool) {
	now := m.snapshot()
	var drops uint64
	for k := range now {
		if _, was := m.file[k]; !was {
			if s := m.samples[k]; s == nil || s.loc != locMem {
				m.fatalf("%v came into the file at Close from %+v", k, s)
			}
			m.samples[k].loc = locFile
			delete(m.active, k)
		}
	}
	for k, seq := range m.file {
		if _, still := now[k]; !still {
			m.gone(k, m.samples[k])
			if m.samples[k].delivered > 0 && seq <= m.deliveredMark {
				continue // evicted after Delivered: no loss, not counted
			}
			drops++ // at Close, blocks read and evicted count too
			if m.samples[k].delivered > 0 {
				m.overlap++
			} else {
				m.samples[k].fate = "dropped"
			}
		}
	}
	for k, s := range m.active {
		m.gone(k, s)
		s.fate = "dropped"
		drops++
	}
	m.file = now
	drops += m.pending
	m.pending, m.pendingK = 0, m.pendingK[:0]
	if got := countedDrops(st); got != m.counted+drops {
		m.fatalf("Close: the buffer counts %d dropped (%v), the model saw %d", got, st.Dropped, m.counted+drops)
	}
	if st.Dropped[ReasonOutOfOrder] != m.ooo {
		m.fatalf("Close: %d out of order, want %d", st.Dropped[ReasonOutOfOrder], m.ooo)
	}
}

// crash kills the process: the files as they are now, reopened.
func (m *modelRun) crash() {
	m.op = "crash"
	m.crashes++
	dir := crashCopy(m.t, m.dir)
	old := m.b
	oldStats := old.Stats()
	if m.inFlight {
		old.LiveFailed(Block{})
		m.inFlight = false
	}
	n := m.jcount
	// What a crash may lose: in memory and appended since the Journal
	// call before the last one; everything else in memory was journaled.
	mayLose := map[sampleKey]bool{}
	for k, s := range m.active {
		s.loc = locMem
		if s.epoch >= n-1 {
			mayLose[k] = true
		}
	}
	for k := range m.file {
		if s := m.samples[k]; s.delivered > 0 {
			s.repeatOK = true // delivered, not yet acknowledged: sent again
		}
	}
	for r, c := range oldStats.Dropped {
		m.closedDr[r] += c
	}
	m.dir = dir
	_ = old.Close()                // the dead process's files are no longer looked at
	for _, p := range m.pendingK { // never counted: the process died first
		if st := m.samples[p.k]; st.delivered > 0 {
			m.overlap--
		} else {
			st.fate = "lost to the crash"
		}
	}
	m.pendingK = m.pendingK[:0]
	m.ooo, m.counted, m.jcount, m.pending = 0, 0, 0, 0
	clear(m.everRead)
	clear(m.lastT)
	m.clock = max(m.clock, m.maxClock)
	m.floor = m.clock
	m.next, m.unacked, m.split, m.liveFrom, m.liveNext = 0, 0, false, 0, 0
	if m.rng.IntN(3) == 0 {
		m.thin = !m.thin
	}
	m.open()
	m.reconcileOpen(mayLose)
	m.restarted()
}

// restarted is the sender after a restart: with FreshFirst, what waits
// is an old backlog, and fresh data goes first.
func (m *modelRun) restarted() {
	if m.fresh && len(m.file) > 0 {
		m.startSplit()
	}
}

// reconcileOpen checks the buffer just opened: the journal of a crashed
// process replayed and committed. Samples in memory that are not in the
// file now were lost to the crash (allowed for mayLose) or dropped by the
// commit at Open (counted).
func (m *modelRun) reconcileOpen(mayLose map[sampleKey]bool) {
	now := m.snapshot()
	var drops uint64
	lost := 0
	for k := range now {
		if _, was := m.file[k]; was {
			continue
		}
		st := m.samples[k]
		switch {
		case st == nil:
			m.fatalf("%v in the file after Open, never appended", k)
		case st.loc == locMem:
			st.loc = locFile
			delete(m.active, k)
		default:
			m.fatalf("%v came into the file at Open from %+v", k, *st)
		}
	}
	// What the replay calls never sent was never taken live: a sender
	// would take a refusal of it for a loss, not a duplicate.
	never := m.b.NeverSent()
	if err := m.b.ForEach(func(blk Block) error {
		for _, s := range blk.Series {
			from, ok := never[s.Ref]
			for _, ts := range s.T {
				if !ok || ts < from {
					continue
				}
				if st := m.samples[sampleKey{s.Labels.String(), ts}]; st != nil && st.taken {
					m.fatalf("%s at %d: taken live before the crash, but NeverSent has the series from %d", s.Labels, ts, from)
				}
				m.neverSent++
			}
		}
		return nil
	}); err != nil {
		m.fatalf("ForEach: %v", err)
	}
	for k := range m.file {
		if _, still := now[k]; !still {
			st := m.samples[k]
			m.gone(k, st)
			drops++
			if st.delivered > 0 {
				m.overlap++
			} else {
				st.fate = "dropped"
			}
		}
	}
	var unsure []sampleKey
	for k, st := range m.active {
		m.gone(k, st)
		if mayLose[k] {
			st.fate = "lost to the crash"
			lost++
			continue
		}
		st.fate = "dropped"
		drops++
		unsure = append(unsure, k)
	}
	m.file = now
	st := m.b.Stats()
	if got := countedDrops(st); got != drops {
		slices.SortFunc(unsure, func(a, b sampleKey) int { return int(a.t - b.t) })
		m.fatalf("after Open the buffer counts %d dropped (%v), the model %d; journaled samples missing: %d (e.g. %v)", got, st.Dropped, drops, len(unsure), unsure[:min(5, len(unsure))])
	}
	m.counted = drops
	m.logf("opened: %d samples in the file, %d lost to the crash, %d dropped at Open", len(now), lost, drops)
	m.checkCounts()
}

// finish drains everything and checks every sample's fate.
func (m *modelRun) finish() map[string]uint64 {
	m.op = "drain"
	if m.inFlight {
		m.resolveLive()
	}
	if m.split {
		// The backlog first, then the rest: as the sender does, the
		// parts each in order.
		for m.split {
			m.op = "drain backlog"
			blocks, err := m.read(m.next, 5000)
			if err != nil {
				m.fatalf("%v", err)
			}
			blocks = slices.DeleteFunc(blocks, func(b Block) bool { return b.Seq >= m.liveFrom })
			if len(blocks) == 0 {
				m.ack()
				m.next, m.split, m.liveFrom = max(m.next, m.liveNext), false, 0
				break
			}
			for _, blk := range blocks {
				for _, s := range blk.Series {
					m.deliver(s.Labels.String(), s.T, true, blk.Seq)
				}
			}
			m.unacked, m.next = blocks[len(blocks)-1].Seq, blocks[len(blocks)-1].Seq+1
			m.ack()
		}
	}
	m.op = "drain"
	m.commit()
	m.ack()
	for {
		m.op = "drain"
		blocks, err := m.read(0, 5000)
		if err != nil {
			m.fatalf("%v", err)
		}
		if len(blocks) == 0 {
			break
		}
		for _, blk := range blocks {
			for _, s := range blk.Series {
				m.deliver(s.Labels.String(), s.T, false, blk.Seq)
			}
		}
		m.unacked = blocks[len(blocks)-1].Seq
		m.ack()
	}
	m.checkDisk()
	st := m.b.Stats()
	if st.Samples != 0 || st.HeadSamples != 0 || st.LiveSamples != 0 {
		m.fatalf("drained, still %+v", st)
	}
	dropped := map[string]uint64{}
	for r, n := range m.closedDr {
		dropped[r] += n
	}
	for r, n := range st.Dropped {
		dropped[r] += n
	}
	var droppedFates uint64
	for k, s := range m.samples {
		if s.loc != locGone {
			m.fatalf("%v still %d after the drain", k, s.loc)
		}
		switch {
		case s.delivered > 0:
			m.fates["delivered"]++
		case s.fate == "":
			m.fatalf("%v neither delivered nor dropped nor lost", k)
		default:
			m.fates[s.fate]++
			if s.fate == "dropped" {
				droppedFates++
			}
		}
	}
	// Every sample the counters name is one the model saw go: delivered
	// and counted (evicted before its ack) included.
	if got := countedDrops(Stats{Dropped: dropped}); got != droppedFates+uint64(m.overlap) {
		m.fatalf("dropped counters %v (%d), the model: %d dropped + %d delivered and counted", dropped, got, droppedFates, m.overlap)
	}
	if got := dropped[ReasonOutOfOrder]; got != uint64(m.fates["out_of_order"]) {
		m.fatalf("%d counted out of order, %d appended out of order", got, m.fates["out_of_order"])
	}
	for r, n := range dropped {
		if n == 0 {
			delete(dropped, r)
		}
	}
	return dropped
}
