package buffer

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"syscall"

	bolt "go.etcd.io/bbolt"

	"github.com/ferry-agent/ferry/internal/lograte"
)

// How the file stays under its cap. bbolt never shrinks its file and grows
// it when a transaction finds no free pages for what it writes. So every
// commit checks the room left (the cap minus the file's high-water mark,
// plus the free pages inside the file) and evicts the oldest blocks until
// the room after the commit is enough for another commit of the same size:
// pages freed by a transaction are reusable only by later ones. When the
// new data does not fit even now, a transaction of its own evicts first.
// The file's growth step is kept within the cap as well.

// commitOverheadPages covers the pages a commit rewrites besides its data:
// the leaf and branch pages it touches are copied on write.
const commitOverheadPages = 8

// maxGrowStep is the most the file grows by at once; fewer, larger steps
// mean fewer truncate+fsync rounds, but more of the cap reserved ahead.
const maxGrowStep = 1 << 20

// commitNeed estimates the bytes a commit of these label sets and the
// pending blocks allocates in the file.
func (b *Buffer) commitNeed(newSeries map[uint32][]byte) int64 {
	need := int64(commitOverheadPages) * pageSize
	for _, v := range newSeries {
		need += seriesFootprint(len(v))
	}
	for _, v := range b.pending {
		need += footprint(len(v))
	}
	return need
}

// commitMargin is room kept free beyond a commit's estimate, for what the
// estimates miss (partly filled leaves, branch pages).
var commitMargin = 16 * pageSize

// writePending writes the pending blocks and the label sets in newSeries
// (those of the pending blocks the file does not hold) in one transaction,
// making room first. keep holds every series the pending blocks refer to.
func (b *Buffer) writePending(newSeries map[uint32][]byte, keep map[uint32]bool) error {
	need := b.commitNeed(newSeries)
	margin := commitMargin
	b.releaseAside(2*need + margin) // a moved-aside file goes before data does

	room := b.room()
	if b.thin {
		// A merge writes a page for the two it frees, and freed pages are
		// reusable only by later transactions: thin ahead, in transactions
		// of their own, until this commit and the next fit.
		for target := 2*need + margin; room < target; {
			freed, err := b.makeRoomNow(target-room, room-int64(commitOverheadPages)*pageSize, keep)
			if err != nil {
				return err
			}
			if freed <= 0 {
				break
			}
			room = b.room()
		}
	}
	// Room is measured again after each transaction: the estimates of what
	// eviction frees are estimates.
	for need+margin > room {
		freed, err := b.makeRoomNow(need+margin-room, room-int64(commitOverheadPages)*pageSize, keep)
		if err != nil {
			return err
		}
		room = b.room()
		if freed <= 0 {
			break
		}
	}
	if need+margin > room {
		if b.limit < b.fileMax {
			// The disk is full, not the buffer: keep the data in
			// memory and try again at the next commit.
			return fmt.Errorf("disk full: %w", syscall.ENOSPC)
		}
		// Nothing left to evict: the commit alone exceeds the cap.
		var err error
		if newSeries, keep, err = b.fitCommit(newSeries, keep, margin); err != nil {
			return err
		}
		if len(b.pending) == 0 {
			return nil
		}
		need, room = b.commitNeed(newSeries), b.room()
	}
	b.mu.Lock()
	seq := b.nextSeq
	b.mu.Unlock()
	b.limitGrowth(need + margin)
	var infos []blockInfo
	var made roomChange
	err := b.db.Update(func(tx *bolt.Tx) error {
		sb, bb := tx.Bucket(bucketSeries), tx.Bucket(bucketBlocks)
		// Keys only ever grow: full leaves waste no space.
		sb.FillPercent, bb.FillPercent = 1, 1
		// In key order: bbolt inserts into one node per leaf until the
		// commit splits it, so keys in random order cost a copy each.
		for _, r := range slices.Sorted(maps.Keys(newSeries)) {
			if err := putSeries(sb, r, newSeries[r]); err != nil {
				return err
			}
		}
		// Make room ahead, so that the next commit of this size finds it;
		// label sets nothing refers to any more go now.
		var err error
		if made, err = b.makeRoom(tx, 2*need+margin-room, room-need-margin, keep); err != nil {
			return err
		}
		for i, v := range b.pending {
			s := seq + uint64(i)
			if err := putBlock(bb, s, v); err != nil {
				return err
			}
			h, _, _ := decodeHeader(v)
			bi := blockInfo{seq: s, size: footprint(len(v)), blockHeader: h}
			if b.thin {
				bi.refs = blockRefs(v)
			}
			infos = append(infos, bi)
		}
		return nil
	})
	if err != nil {
		return err
	}
	b.pending = nil

	last := seq + uint64(len(infos)) - 1
	b.mu.Lock()
	b.applyRoomLocked(made)
	for r, v := range newSeries {
		b.series.saved(r, len(v), last)
	}
	for r := range keep {
		b.series.held(r, last)
	}
	b.blocks = append(b.blocks, infos...)
	b.nextSeq = seq + uint64(len(infos))
	b.mu.Unlock()

	if made.evicted+made.thinned+len(made.forgotten) > 0 {
		b.log.Debug("buffer full: made room", "evicted_samples", made.evicted, "thinned_samples", made.thinned, "removed_series", len(made.forgotten), "cap_bytes", b.maxSize)
	}
	if len(infos) > 0 {
		signal(b.notify)
	}
	return nil
}

// emptyFilePages is what a buffer file with no block and no series takes:
// bbolt's two meta pages, the free list, the root and the buckets.
const emptyFilePages = 8

// capFor returns the cap (--storage.max-size) whose part for the file is
// at least fileBytes, rounded up to a MiB.
func capFor(fileBytes int64) int64 {
	c := fileBytes
	for c-journalShare(c) < fileBytes {
		c = fileBytes + journalShare(c)
	}
	return (c + 1<<20 - 1) &^ (1<<20 - 1)
}

// fitCommit makes a commit that does not fit the cap even in an empty file
// fit: it keeps the series that fit, in ref order (the same at every
// commit: those known longest), and of those the newest samples that fit;
// the rest is counted as cap_too_small. It says once which cap the commit
// needed whole. It returns what is left to write of newSeries and keep;
// b.pending is what is left of the blocks.
func (b *Buffer) fitCommit(newSeries map[uint32][]byte, keep map[uint32]bool, margin int64) (map[uint32][]byte, map[uint32]bool, error) {
	all := decodePending(b.pending)
	total := samplesIn(all)
	overhead := int64(commitOverheadPages) * pageSize

	b.mu.Lock()
	size := make([]int, len(all)) // of each label set, encoded
	var inFile int64
	for i, s := range all {
		if v, ok := newSeries[s.ref]; ok {
			size[i] = len(v)
		} else if d, ok := b.series.disk[s.ref]; ok {
			size[i] = d.size
			inFile += seriesFootprint(d.size)
		}
	}
	b.mu.Unlock()

	whole := overhead + margin + emptyFilePages*pageSize
	for i := range all {
		whole += seriesFootprint(size[i])
	}
	for _, v := range b.pending {
		whole += footprint(len(v))
	}
	b.noteNeeded(capFor(whole))

	room := b.room()
	// The label sets in the file that this commit does not keep go, so
	// the series that fit may have all of the room.
	avail := room + inFile - margin - overhead
	var fits []seriesData
	var fitSize []int
	cum := int64(0)
	for i, s := range all {
		if c := seriesFootprint(size[i]) + 16; cum+c <= avail { // and a sample
			cum += c
			fits, fitSize = append(fits, s), append(fitSize, size[i])
		}
	}
	for n := len(fits); n > 0; n /= 2 {
		chosen, size := fits[:n], fitSize[:n]
		keepNow := make(map[uint32]bool, n)
		for _, s := range chosen {
			keepNow[s.ref] = true
		}
		for {
			freed, err := b.makeRoomNow(0, room-overhead, keepNow)
			if err != nil {
				return nil, nil, err
			}
			room = b.room()
			if freed <= 0 {
				break
			}
		}
		var times []int64
		for _, s := range chosen {
			times = append(times, s.ts...)
		}
		slices.Sort(times)
		times = slices.Compact(times)
		// The newest samples that fit: those from times[k] on, k smallest.
		try := func(k int) ([][]byte, []seriesData, bool) {
			var kept []seriesData
			need := overhead
			for i, s := range chosen {
				j, _ := slices.BinarySearch(s.ts, times[k])
				if j == len(s.ts) {
					continue
				}
				kept = append(kept, seriesData{ref: s.ref, ts: s.ts[j:], vs: s.vs[j:]})
				if _, ok := newSeries[s.ref]; ok {
					need += seriesFootprint(size[i])
				}
			}
			blocks := packBlocks(kept, maxBlockBytes)
			for _, v := range blocks {
				need += footprint(len(v))
			}
			return blocks, kept, need+margin <= room
		}
		k, found := sort.Find(len(times), func(k int) int {
			if _, _, ok := try(k); ok {
				return 0
			}
			return 1
		})
		if !found {
			continue
		}
		blocks, kept, _ := try(k)
		b.pending = blocks
		if b.thin {
			b.cuts = nil // the next commit starts its blocks afresh
		}
		fitSeries, fitKeep := map[uint32][]byte{}, map[uint32]bool{}
		for _, s := range kept {
			fitKeep[s.ref] = true
			if v, ok := newSeries[s.ref]; ok {
				fitSeries[s.ref] = v
			}
		}
		dropped := total - samplesIn(kept)
		b.countDrop(ReasonCapTooSmall, dropped)
		b.capLog.drops.Log(b.log, slog.LevelWarn, "buffer: a commit is larger than the cap; kept the newest samples of the series that fit",
			"kept_series", len(kept), "series", len(all), "kept_samples", total-dropped, "dropped_samples", dropped, "cap_bytes", b.maxSize)
		return fitSeries, fitKeep, nil
	}
	b.countDrop(ReasonCapTooSmall, total)
	b.pending = nil
	b.capLog.drops.Log(b.log, slog.LevelWarn, "buffer: a commit is larger than the cap; not one series fits, dropped it",
		"series", len(all), "dropped_samples", total, "cap_bytes", b.maxSize)
	return nil, nil, nil
}

// capLog rate-limits what the cap logs.
type capLog struct {
	told  bool // the cap a commit needs was logged
	drops lograte.Limiter
}

// noteNeeded records that a commit needed a cap of c, and logs it the
// first time.
func (b *Buffer) noteNeeded(c int64) {
	b.mu.Lock()
	b.neededBytes = max(b.neededBytes, c)
	told := b.capLog.told
	b.capLog.told = true
	b.mu.Unlock()
	if !told {
		b.log.Warn("buffer: the cap is too small for the series collected: one commit's label sets and samples need more; the series that do not fit are dropped, counted as "+ReasonCapTooSmall+" (see the buffer's needed bytes on the status page)",
			"cap_bytes", b.maxSize, "needed_bytes", c)
	}
}

// decodePending returns the series of encoded blocks (in order, oldest
// first), each series' samples together, sorted by ref.
func decodePending(blocks [][]byte) []seriesData {
	index := map[uint32]int{}
	var out []seriesData
	for _, v := range blocks {
		_, data, err := decodeBlock(v)
		if err != nil {
			continue // encoded by this process: does not happen
		}
		for _, d := range data {
			i, ok := index[d.ref]
			if !ok {
				index[d.ref] = len(out)
				out = append(out, seriesData{ref: d.ref})
				i = len(out) - 1
			}
			out[i].ts = append(out[i].ts, d.ts...)
			out[i].vs = append(out[i].vs, d.vs...)
		}
	}
	slices.SortFunc(out, func(x, y seriesData) int { return cmp.Compare(x.ref, y.ref) })
	return out
}

// isNoSpace reports a full disk. bbolt formats its file-resize error with
// %s, so the message is all that is left of the errno.
func isNoSpace(err error) bool {
	return err != nil && (errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), syscall.ENOSPC.Error()))
}

// highWaterMark is where the file's used pages end; bbolt sizes the file
// to at least one page past its last page id.
func (b *Buffer) highWaterMark() int64 {
	var hwm int64
	_ = b.db.View(func(tx *bolt.Tx) error {
		hwm = tx.Size() + pageSize
		return nil
	})
	return hwm
}

// room returns how many bytes the next transaction can allocate without
// the file passing its cap.
func (b *Buffer) room() int64 {
	return b.limit - b.highWaterMark() + int64(b.db.Stats().FreeAlloc)
}

// limitGrowth keeps bbolt's next growth step within the cap. bbolt adds
// the step to the size it needs, which can be up to need bytes past the
// current file; near the cap the step shrinks to nothing and the file grows
// by exactly what a commit needs.
func (b *Buffer) limitGrowth(need int64) {
	var fileSize int64
	if fi, err := os.Stat(b.path); err == nil {
		fileSize = fi.Size()
	}
	b.db.AllocSize = int(min(maxGrowStep, max(b.limit-fileSize-2*need, 0)))
}

// makeRoomNow frees at least n bytes in a transaction of its own, merges
// and rewrites taking at most allowance bytes; it returns the bytes freed
// (estimated). Label sets nothing refers to go whatever n; keep is what
// the caller is about to write.
func (b *Buffer) makeRoomNow(n, allowance int64, keep map[uint32]bool) (int64, error) {
	b.limitGrowth(int64(commitOverheadPages) * pageSize)
	var ch roomChange
	err := b.db.Update(func(tx *bolt.Tx) error {
		var err error
		ch, err = b.makeRoom(tx, n, allowance, keep)
		return err
	})
	if err != nil {
		return 0, err
	}
	b.mu.Lock()
	b.applyRoomLocked(ch)
	b.mu.Unlock()
	return ch.freed, nil
}
