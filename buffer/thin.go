package buffer

import (
	"cmp"
	"maps"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/value"
	bolt "go.etcd.io/bbolt"
)

// Making room. Without thinning, the oldest blocks go whole. With
// Options.Thin, a full buffer keeps data at levels of resolution: a block
// of level L holds one sample in 2^L of what was collected. To make room,
// two blocks of one level holding the same series at successive times are
// merged into one of the next level that keeps every other sample of each
// series. Each level gets an equal share of the buffer; the coarsest level
// over its share is merged first, oldest blocks first, so the older the
// data, the coarser it gets, and an outage many times longer than the
// buffer holds at full resolution stays there whole, sparser towards its
// start, instead of only its end. When no level is over its share (or the
// blocks over it have no partner), the oldest block is evicted. Staleness
// markers are always kept: they say where a series ended.
//
// A block is merged with the next block that may hold any of its series
// (by the range of series refs each block holds), so no block between them
// holds its series and each series stays in time order. With thinning on,
// a commit starts its blocks at the series where the commit before did
// (packBlocksAt), so that such partners hold nearly the same series: two
// blocks of different series would not fit one page even thinned. The
// merged block takes the newer block's seq, so the sender's order holds.
// Blocks the sender has read and not yet deleted are never merged: it may
// be delivering them, and their samples sent again after newer ones would
// be out of order at the receiver (which refuses the whole request). Nor
// are blocks on both sides of the sender's fresh-first split (SplitAt).

// maxThinLevel keeps one sample in 2^maxThinLevel of the oldest data: with
// an equal share per level the buffer covers up to
// (2^(maxThinLevel+1)-1)/(maxThinLevel+1) = 18 times as long as unthinned.
const maxThinLevel = 6

// keyThinLevel holds a thinned block's level in its bucket (FORMAT.md);
// a block without it is at level 0.
var keyThinLevel = []byte("t")

// roomChange is what making room did, to apply to the in-memory index once
// its transaction has committed.
type roomChange struct {
	blocks  []blockInfo // the index afterwards
	evicted int         // samples of blocks deleted whole
	// evictedRead holds, by seq, the evicted blocks that the sender had
	// read: counted full only if it does not deliver them.
	evictedRead map[uint64]readBlock
	gone        []blockInfo // the blocks deleted whole, delivered or not (Options.Evicted)
	thinned     int         // samples thinned out of merged blocks
	freed       int64

	forgotten []uint32          // label sets deleted
	held      map[uint32]uint64 // series now held by a merged block up to this seq
	raised    map[uint32]uint64 // of held, not yet seen by makeRoom
}

// makeRoom frees at least n bytes of blocks in tx (all of them if there
// are not that many), and with them the label sets that no block left, nor
// the head, a live block or a ref in keep, refers to: at once, those that
// nothing refers to already, then those of each block evicted. A merged
// block, and a leaf rewritten to delete label sets, is written before the
// pages it frees are free (bbolt reuses them in later transactions only),
// so merges and deletions stop when they would take more than allowance
// bytes. The caller holds writeMu, so the index does not change meanwhile.
func (b *Buffer) makeRoom(tx *bolt.Tx, n, allowance int64, keep map[uint32]bool) (roomChange, error) {
	bb, sb := tx.Bucket(bucketBlocks), tx.Bucket(bucketSeries)
	b.mu.Lock()
	ch := roomChange{blocks: slices.Clone(b.blocks)}
	delivered := b.delivered
	fence := mergeFence{split: b.split, read: maps.Clone(b.readAs)}
	cands := b.candidateSeriesLocked(keep)
	leaves := leafPagesBound(b.series.diskBytes)
	b.mu.Unlock()
	done := 0 // cands[:done] are deleted, or left for the next transaction
	stop := false
	unused := func() error {
		if len(ch.raised) > 0 {
			// Merged blocks hold series under a newer seq.
			for i := done; i < len(cands); i++ {
				cands[i].lastSeq = max(cands[i].lastSeq, ch.raised[cands[i].ref])
			}
			slices.SortFunc(cands[done:], func(x, y deadSeries) int { return cmp.Compare(x.lastSeq, y.lastSeq) })
			clear(ch.raised)
		}
		first := uint64(math.MaxUint64)
		if len(ch.blocks) > 0 {
			first = ch.blocks[0].seq
		}
		end := done
		for end < len(cands) && cands[end].lastSeq < first {
			end++
		}
		if end == done || stop {
			return nil
		}
		batch := slices.Clone(cands[done:end])
		done = end
		slices.SortFunc(batch, func(x, y deadSeries) int { return cmp.Compare(x.ref, y.ref) })
		// Deleting keys rewrites the leaves that keep others: at most two
		// per run of adjacent refs, and never more than the bucket has.
		// What would take more than allowance waits for the next
		// transaction, which has the pages this one frees.
		runs, spent := int64(0), int64(0)
		for i, d := range batch {
			if i == 0 || d.ref != batch[i-1].ref+1 {
				runs++
			}
			if cost := min(2*runs, leaves) * pageSize; cost > spent {
				if cost > allowance {
					stop = true
					break
				}
				allowance -= cost - spent
				spent = cost
			}
			if err := deleteSeries(sb, d.ref, d.size); err != nil {
				return err
			}
			ch.freed += seriesFootprint(d.size)
			ch.forgotten = append(ch.forgotten, d.ref)
		}
		return nil
	}
	if err := unused(); err != nil {
		return ch, err
	}
	for ch.freed < n && len(ch.blocks) > 0 {
		// Blocks already delivered go first, whole: they are no loss.
		if b.thin && ch.blocks[0].seq > delivered {
			if allowance < pageSize && ch.freed > 0 {
				break // no page left for a merged block: the next transaction has the freed ones
			}
			merged, err := b.thinOldestPair(bb, &ch, &allowance, fence)
			if err != nil {
				return ch, err
			}
			if merged {
				if err := unused(); err != nil {
					return ch, err
				}
				continue
			}
		}
		oldest := ch.blocks[0]
		if err := deleteBlock(bb, oldest.seq); err != nil {
			return ch, err
		}
		switch {
		case oldest.seq <= delivered: // delivered, not yet acknowledged: no loss
		case fence.isRead(oldest.seq): // its request may be on its way
			if ch.evictedRead == nil {
				ch.evictedRead = map[uint64]readBlock{}
			}
			ch.evictedRead[oldest.seq] = fence.read[oldest.seq]
		default:
			ch.evicted += oldest.samples
		}
		ch.gone = append(ch.gone, oldest)
		ch.freed += oldest.size
		ch.blocks = ch.blocks[1:]
		if err := unused(); err != nil {
			return ch, err
		}
	}
	return ch, nil
}

// applyRoomLocked puts a committed roomChange into the index.
func (b *Buffer) applyRoomLocked(ch roomChange) {
	b.blocks = ch.blocks
	b.dropped[ReasonFull] += uint64(ch.evicted)
	for seq, rb := range ch.evictedRead {
		// Not if Delivered or Delete came during the transaction.
		if seq > b.delivered && !b.deletedOOO[seq] {
			b.evictedRead[seq] = rb
		}
	}
	oldest := uint64(math.MaxUint64)
	if len(b.blocks) > 0 {
		oldest = b.blocks[0].seq
	}
	for seq := range b.readAs { // evicted: Delete will not meet them
		if seq < oldest {
			delete(b.readAs, seq)
		}
	}
	for seq := range b.deletedOOO {
		if seq < oldest {
			delete(b.deletedOOO, seq)
		}
	}
	if b.onEvict != nil {
		for _, bi := range ch.gone {
			b.onEvict(bi.seq, bi.samples)
		}
	}
	b.dropped[ReasonThinned] += uint64(ch.thinned)
	for r, seq := range ch.held {
		b.series.held(r, seq)
	}
	for _, r := range ch.forgotten {
		b.series.unsaved(r)
	}
}

// mergeFence is what thinning must not merge: blocks the sender has read
// (it may be delivering them), and pairs across its fresh-first split.
type mergeFence struct {
	split uint64
	read  map[uint64]readBlock // a copy of Buffer.readAs
}

func (f mergeFence) isRead(seq uint64) bool {
	_, ok := f.read[seq]
	return ok
}

func (f mergeFence) allows(older, newer uint64) bool {
	across := f.split != 0 && older < f.split && newer >= f.split
	return !across && !f.isRead(older) && !f.isRead(newer)
}

// thinOldestPair merges a pair of the coarsest level over its share that
// fence allows; false if there is none or it does not fit one page.
func (b *Buffer) thinOldestPair(bb *bolt.Bucket, ch *roomChange, allowance *int64, fence mergeFence) (bool, error) {
	var count [maxThinLevel + 1]int
	for _, bi := range ch.blocks {
		count[min(bi.level, maxThinLevel)]++
	}
	share := max(2, len(ch.blocks)/(maxThinLevel+1))
	i, j := -1, -1
	for level := maxThinLevel - 1; level >= 0 && i < 0; level-- {
		if count[level] > share {
			i, j = partners(ch.blocks, uint8(level), fence)
		}
	}
	if i < 0 {
		return false, nil
	}
	older, newer := ch.blocks[i], ch.blocks[j]
	_, s1, err1 := decodeBlock(getBlock(bb, older.seq))
	_, s2, err2 := decodeBlock(getBlock(bb, newer.seq))
	if err1 != nil || err2 != nil {
		return false, nil // the oldest is evicted, counted; Read drops a bad block anyway
	}
	// One level up: every other sample. If that is still more than a page,
	// the older block's samples are thinned again, and only then all; the
	// level stays one up so that the merged block pairs with its neighbours.
	series := thinSeries(mergeSeries(s1, s2), math.MaxInt64)
	v := encodeBlock(series)
	for tries := 0; len(v) > maxBlockBytes; tries++ {
		if tries == maxThinLevel {
			return false, nil
		}
		thinner := thinSeries(series, newer.minT)
		if samplesIn(thinner) == samplesIn(series) {
			thinner = thinSeries(series, math.MaxInt64)
		}
		series = thinner
		v = encodeBlock(series)
	}
	level := older.level + 1
	if footprint(len(v)) > *allowance {
		return false, nil
	}
	*allowance -= footprint(len(v))
	for _, seq := range []uint64{older.seq, newer.seq} {
		if err := deleteBlock(bb, seq); err != nil {
			return false, err
		}
	}
	if err := putBlock(bb, newer.seq, v); err != nil {
		return false, err
	}
	if err := bb.Bucket(seqKey(newer.seq)).Put(keyThinLevel, []byte{level}); err != nil {
		return false, err
	}
	h, _, _ := decodeHeader(v)
	merged := blockInfo{seq: newer.seq, size: footprint(len(v)), blockHeader: h, level: level,
		refs: refRange{lo: min(older.refs.lo, newer.refs.lo), hi: max(older.refs.hi, newer.refs.hi)}}
	ch.thinned += older.samples + newer.samples - merged.samples
	if ch.held == nil {
		ch.held, ch.raised = map[uint32]uint64{}, map[uint32]uint64{}
	}
	for _, s := range s1 {
		ch.held[s.ref], ch.raised[s.ref] = newer.seq, newer.seq
	}
	ch.freed += older.size + newer.size - merged.size
	ch.blocks[j] = merged
	ch.blocks = slices.Delete(ch.blocks, i, i+1)
	return true, nil
}

// partners finds the oldest block of level whose next block holding any
// of its series is of the same level, and that fence lets them merge.
func partners(blocks []blockInfo, level uint8, fence mergeFence) (int, int) {
	for i, x := range blocks {
		if x.level != level {
			continue
		}
		for j := i + 1; j < len(blocks); j++ {
			if y := blocks[j]; y.refs.overlaps(x.refs) {
				if y.level == level && fence.allows(x.seq, y.seq) {
					return i, j
				}
				break
			}
		}
	}
	return -1, -1
}

// refRange is the range of series refs a block holds. Blocks are packed
// from series sorted by ref, so the blocks of one commit hold disjoint
// ranges.
type refRange struct{ lo, hi uint32 }

func (r refRange) overlaps(o refRange) bool { return r.lo <= o.hi && o.lo <= r.hi }

// blockRefs reads the range of series refs of a block's bytes; a block
// that does not decode overlaps everything, so it is never skipped over.
func blockRefs(v []byte) refRange {
	_, series, err := decodeBlock(v)
	if err != nil || len(series) == 0 {
		return refRange{lo: 0, hi: ^uint32(0)}
	}
	return refRange{lo: series[0].ref, hi: series[len(series)-1].ref}
}

// mergeSeries joins the series of an older and a newer block by ref, the
// older samples first.
func mergeSeries(older, newer []seriesData) []seriesData {
	index := map[uint32]int{}
	var out []seriesData
	for _, blk := range [][]seriesData{older, newer} {
		for _, s := range blk {
			i, ok := index[s.ref]
			if !ok {
				index[s.ref] = len(out)
				out = append(out, seriesData{ref: s.ref, ts: slices.Clone(s.ts), vs: slices.Clone(s.vs)})
				continue
			}
			m := &out[i]
			for j, t := range s.ts {
				if t > m.ts[len(m.ts)-1] { // a series' samples only ever grow in time
					m.ts, m.vs = append(m.ts, t), append(m.vs, s.vs[j])
				}
			}
		}
	}
	slices.SortFunc(out, func(x, y seriesData) int { return cmp.Compare(x.ref, y.ref) })
	return out
}

// thinSeries keeps every other sample older than before of each series:
// the first, the later ones, and the staleness markers always.
func thinSeries(series []seriesData, before int64) []seriesData {
	out := make([]seriesData, len(series))
	for i, s := range series {
		t := seriesData{ref: s.ref}
		for j := range s.ts {
			if j%2 == 0 || s.ts[j] >= before || value.IsStaleNaN(s.vs[j]) {
				t.ts, t.vs = append(t.ts, s.ts[j]), append(t.vs, s.vs[j])
			}
		}
		out[i] = t
	}
	return out
}

func samplesIn(series []seriesData) int {
	n := 0
	for _, s := range series {
		n += len(s.ts)
	}
	return n
}
