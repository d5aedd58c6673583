package buffer

// The live path: while the sender keeps up, it takes what was collected
// straight from the head and the receiver acknowledges it before any commit
// comes: those samples never cost flash. Only what waits is committed.

// Default bound of the head's memory (Options.MaxHeadBytes): about 4 s of
// 10k series every second, or a quarter of an hour of a typical device, at
// a few MiB of RSS.
const DefaultMaxHeadBytes = 4 << 20

// The head's memory, as estimated for its bound: a sample's timestamp and
// value, and a series' entry in the head.
const (
	headSampleBytes = 16
	headSeriesBytes = 96
)

// headSlab hands out the room of a series' first sample in the head from
// arrays made for many at once: a series new to the head (all of them
// after each commit, or after the sender took the head) costs no
// allocation of its own; its entry is in its state (seriesState.head). A
// sample more grows the slices as append does. The room is never used
// again, as the sender may still read a live block's samples after it
// handed the block back (Fanout); an array is freed when none of its
// slices is in use any more. The caller holds Buffer.mu.
type headSlab struct {
	t []int64
	v []float64
}

// headSlabSize is how many samples one array of a headSlab holds: the
// typical device's series, a tenth of the heavy one's.
const headSlabSize = 1024

// ts returns room for one timestamp.
func (h *headSlab) ts() []int64 { return roomForOne(&h.t) }

// vs returns room for one value.
func (h *headSlab) vs() []float64 { return roomForOne(&h.v) }

// roomForOne returns an empty slice with room for one element, cut from
// the front of *arr, which is made anew when used up.
func roomForOne[T int64 | float64](arr *[]T) []T {
	if len(*arr) == 0 {
		*arr = make([]T, headSlabSize)
	}
	s := (*arr)[:0:1]
	*arr = (*arr)[1:]
	return s
}

// Collected tells the buffer that one collection's samples are all in the
// head, ready for the live path: it wakes a sender waiting on LiveReady,
// and while the live path fails, signals JournalDue. Safe for concurrent
// use; it never blocks.
func (b *Buffer) Collected() {
	signal(b.liveReady)
	if b.liveFailing.Load() {
		signal(b.journalDue)
	}
}

// JournalDue is signalled after a collection while the live path fails
// (its last block came back with LiveFailed): the sender will not take
// the collection soon, and Journal, called now, writes all of the head at
// once instead of what waited a tick, so that a crash loses the
// collection in progress, not the one before it too. It holds at most one
// signal.
func (b *Buffer) JournalDue() <-chan struct{} { return b.journalDue }

// LiveReady is signalled after Collected. The channel is the buffer's; it
// holds at most one signal, so several collections may wake the sender once.
func (b *Buffer) LiveReady() <-chan struct{} { return b.liveReady }

// HeadFull is signalled when the head reaches its memory bound: the agent
// commits at once instead of waiting for its interval.
func (b *Buffer) HeadFull() <-chan struct{} { return b.headFull }

// TakeLive moves up to maxSamples of the head's samples (at least one whole
// series, or the first maxSamples samples of it) into a block for the
// sender to deliver straight from memory. Its Seq is 0: it is not
// committed, and Commit waits while it is in flight: the request that
// carries it must be bounded in time.
//
// It takes nothing (ok false) while committed or pending blocks wait, so
// that every series still reaches the receiver oldest first, unless
// aheadOfBacklog (the sender's FreshFirst, for receivers that take samples
// out of order); while another live block is in flight; and when the head
// is empty.
//
// If the journal holds some of the block's samples, TakeLive first journals
// that they are sent, waiting for a commit in progress: after a crash they
// may be at the receiver, and NeverSent does not count them.
//
// The caller must hand the block back, once, with LiveDone (delivered, or
// dropped by the sender with a count of its own) or LiveFailed (not
// delivered: its samples go back to the head, ahead of newer ones, and are
// committed with it). Until then the buffer reads the block's Series as
// its record of what is in flight: the caller may read them and reslice
// copies of them, but must write into neither the Series slice nor their
// T, V and labels. After that, the Series slice is the buffer's again, for
// the next live block; T and V are not written again. Safe for concurrent
// use with every other method.
func (b *Buffer) TakeLive(maxSamples int, aheadOfBacklog bool) (blk Block, ok bool) {
	// pending is guarded by writeMu; held to the end, it also keeps a
	// commit, which would wait for the block, from the sent record.
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	var sent []seriesMark
	defer func() { b.journalSentLocked(sent) }() // after mu is released
	backlog := len(b.pending) > 0
	b.mu.Lock()
	defer b.mu.Unlock()
	if (backlog || len(b.blocks) > 0) && !aheadOfBacklog || b.live != nil || b.headSamples == 0 {
		return Block{}, false
	}
	entries := sortedByRef(b.head)
	// At most one series per sample; the memory of the last live block,
	// handed back, is used again.
	blk.Series = b.liveMem[:0]
	if want := min(len(entries), max(maxSamples, 1)); cap(blk.Series) < want {
		blk.Series = make([]Series, 0, want)
	}
	n, left := 0, len(entries) // entries[left:] stay in the head
	for i, e := range entries {
		st := &e.state // tracked: the series is in the head
		s := &st.head
		if n > 0 && n+len(s.ts) > maxSamples {
			left = i
			break
		}
		ts, vs := s.ts, s.vs
		if k := maxSamples - n; len(ts) > k && k > 0 {
			ts, vs = ts[:k:k], vs[:k:k]
			s.ts, s.vs = s.ts[k:], s.vs[k:]
			left = i // the rest of it stays; n is maxSamples: nothing more goes
		} else {
			st.head = headSamples{}
			b.headBytes -= headSeriesBytes
		}
		b.headSamples -= len(ts)
		b.headBytes -= int64(len(ts)) * headSampleBytes
		n += len(ts)
		blk.Series = append(blk.Series, Series{Ref: e.ref, Labels: e.lset, Meta: e.metaRef(), T: ts, V: vs})
		if left == i {
			break
		}
	}
	kept := copy(entries, entries[left:])
	clear(entries[kept:])
	b.head = entries[:kept]
	b.live, b.liveMem = blk.Series, blk.Series
	sent = b.sentMarksLocked(blk)
	return blk, true
}

// LiveDone ends the live block in flight: the receiver has it, or the
// sender dropped it with a count. If the journal holds some of its
// samples, it appends that they are delivered (waiting for a commit in
// progress), so that a replay does not send them again. Safe for
// concurrent use.
func (b *Buffer) LiveDone() {
	b.liveFailing.Store(false)
	b.mu.Lock()
	marks := b.deliveredMarksLocked(nil)
	b.endLiveLocked()
	b.mu.Unlock()
	b.journalMarks(recordDelivered, marks)
}

// LiveFailed puts back into the head what the sender did not settle of the
// live block in flight, each series' samples ahead of those appended
// since: the next Commit writes them, or a later TakeLive takes them
// again. settled holds, per series (by Ref), the first samples of the live
// block that the sender delivered or dropped with a count of its own,
// those it must not send or count again (journaled as delivered, as with
// LiveDone); an empty Block puts all back. Safe for concurrent use.
func (b *Buffer) LiveFailed(settled Block) {
	b.liveFailing.Store(true)
	done := make(map[uint32]int, len(settled.Series))
	for _, s := range settled.Series {
		done[s.Ref] += len(s.T)
	}
	b.mu.Lock()
	marks := b.deliveredMarksLocked(done)
	defer b.journalMarks(recordDelivered, marks) // after mu is released
	defer b.mu.Unlock()
	for _, l := range b.live {
		k := min(done[l.Ref], len(l.T))
		ts, vs := l.T[k:], l.V[k:]
		if len(ts) == 0 {
			continue
		}
		e := b.series.entryOf(l.Ref) // kept while the series is in flight (collectSeries)
		st := &e.state
		s := &st.head
		if !st.inHead() {
			b.head = append(b.head, e)
			b.headBytes += headSeriesBytes
		}
		s.ts = append(ts[:len(ts):len(ts)], s.ts...)
		s.vs = append(vs[:len(vs):len(vs)], s.vs...)
		if b.putBack == nil {
			b.putBack = map[uint32]int64{}
		}
		b.putBack[l.Ref] = max(b.putBack[l.Ref], ts[len(ts)-1])
		b.headSamples += len(ts)
		b.headBytes += int64(len(ts)) * headSampleBytes
	}
	b.endLiveLocked()
}

// endLiveLocked ends the live block in flight, its memory kept for the
// next one without what it points to, and wakes a Commit waiting for it.
// The caller holds mu.
func (b *Buffer) endLiveLocked() {
	clear(b.liveMem)
	b.live = nil
	b.liveEnded.Broadcast()
}

// headOldestLocked is the oldest timestamp in the head or in flight, 0 if
// there is none. The caller holds mu.
func (b *Buffer) headOldestLocked() int64 {
	var oldest int64
	note := func(ts []int64) {
		if len(ts) > 0 && (oldest == 0 || ts[0] < oldest) {
			oldest = ts[0]
		}
	}
	for _, e := range b.head {
		note(e.state.head.ts)
	}
	for _, s := range b.live {
		note(s.T)
	}
	return oldest
}

// NeverSent returns, per series (by Ref) whose samples the journal of a
// process that died held, the oldest one it replayed that the process had
// not sent: that sample and the newer ones of the series are not at the
// receiver. Its older ones, and those of every series not in the map that
// Open found, may be: committed, they may have been delivered and not yet
// deleted, or in flight. Nil when the journal held nothing unsent. Set at
// Open and read-only after: safe for concurrent use; the caller must not
// modify it.
func (b *Buffer) NeverSent() map[uint32]int64 { return b.neverSent }

// signal wakes one waiter on a channel of capacity one, without blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
