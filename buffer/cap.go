package buffer

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"

	bolt "go.etcd.io/bbolt"
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

func (b *Buffer) writePending(newSeries map[uint32][]byte) error {
	need := int64(commitOverheadPages) * pageSize
	for _, v := range newSeries {
		need += int64(len(v)) + 4 + leafElementSize
	}
	for _, v := range b.pending {
		need += footprint(len(v))
	}
	margin := 16 * pageSize

	room := b.room()
	if b.thin {
		// A merge writes a page for the two it frees, and freed pages are
		// reusable only by later transactions: thin ahead, in transactions
		// of their own, until this commit and the next fit.
		for target := 2*need + margin; room < target; {
			freed, err := b.makeRoomNow(target-room, room-int64(commitOverheadPages)*pageSize)
			if err != nil {
				return err
			}
			if freed <= 0 {
				break
			}
			room = b.room()
		}
	}
	if need+margin > room {
		freed, err := b.makeRoomNow(need+margin-room, room-int64(commitOverheadPages)*pageSize)
		if err != nil {
			return err
		}
		if room += freed; need+margin > room {
			if b.limit < b.fileMax {
				// The disk is full, not the buffer: keep the data in
				// memory and try again at the next commit.
				return fmt.Errorf("disk full: %w", syscall.ENOSPC)
			}
			// Nothing left to evict: the new data alone exceeds the cap.
			for _, v := range b.pending {
				h, _, _ := decodeHeader(v)
				b.countDrop(ReasonFull, h.samples)
			}
			b.pending = nil
			b.log.Error("a commit is larger than the buffer's cap allows; dropped it", "need_bytes", need, "cap_bytes", b.maxSize)
			if len(newSeries) == 0 {
				return nil
			}
		}
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
		for r, v := range newSeries {
			if err := sb.Put(refKey(r), v); err != nil {
				return err
			}
		}
		// Make room ahead, so that the next commit of this size finds it.
		var err error
		if made, err = b.makeRoom(bb, 2*need+margin-room, room-need-margin); err != nil {
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

	b.mu.Lock()
	b.series.unsaved = slices.DeleteFunc(b.series.unsaved, func(r uint32) bool { return newSeries[r] != nil })
	b.applyRoomLocked(made)
	b.blocks = append(b.blocks, infos...)
	b.nextSeq = seq + uint64(len(infos))
	b.mu.Unlock()

	if made.evicted+made.thinned > 0 {
		b.log.Debug("buffer full: made room", "evicted_samples", made.evicted, "thinned_samples", made.thinned, "cap_bytes", b.maxSize)
	}
	if len(infos) > 0 {
		signal(b.notify)
	}
	return nil
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
// taking at most allowance bytes; it returns the bytes freed.
func (b *Buffer) makeRoomNow(n, allowance int64) (int64, error) {
	b.limitGrowth(int64(commitOverheadPages) * pageSize)
	var ch roomChange
	err := b.db.Update(func(tx *bolt.Tx) error {
		var err error
		ch, err = b.makeRoom(tx.Bucket(bucketBlocks), n, allowance)
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
