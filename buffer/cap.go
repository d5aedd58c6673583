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
	if need+margin > room {
		freed, err := b.evictOldest(need + margin - room)
		if err != nil {
			return err
		}
		if room += freed; need+margin > room {
			if b.limit < b.maxSize {
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
	// Evict ahead, so that the next commit of this size finds room.
	evict := b.oldestFreeing(2*need + margin - room)

	b.mu.Lock()
	seq := b.nextSeq
	b.mu.Unlock()
	b.limitGrowth(need + margin)
	var infos []blockInfo
	err := b.db.Update(func(tx *bolt.Tx) error {
		sb, bb := tx.Bucket(bucketSeries), tx.Bucket(bucketBlocks)
		// Keys only ever grow: full leaves waste no space.
		sb.FillPercent, bb.FillPercent = 1, 1
		for r, v := range newSeries {
			if err := sb.Put(refKey(r), v); err != nil {
				return err
			}
		}
		for _, bi := range evict {
			if err := deleteBlock(bb, bi.seq); err != nil {
				return err
			}
		}
		for i, v := range b.pending {
			s := seq + uint64(i)
			if err := putBlock(bb, s, v); err != nil {
				return err
			}
			h, _, _ := decodeHeader(v)
			infos = append(infos, blockInfo{seq: s, size: footprint(len(v)), blockHeader: h})
		}
		return nil
	})
	if err != nil {
		return err
	}
	b.pending = nil

	b.mu.Lock()
	b.series.unsaved = slices.DeleteFunc(b.series.unsaved, func(r uint32) bool { return newSeries[r] != nil })
	b.forgetBlocksLocked(evict, ReasonFull)
	b.blocks = append(b.blocks, infos...)
	b.nextSeq = seq + uint64(len(infos))
	b.mu.Unlock()

	if len(evict) > 0 {
		b.log.Debug("buffer full: evicted oldest blocks", "blocks", len(evict), "cap_bytes", b.maxSize)
	}
	if len(infos) > 0 {
		select {
		case b.notify <- struct{}{}:
		default:
		}
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

// oldestFreeing returns the oldest blocks whose pages add up to at least n
// bytes (all of them if they do not).
func (b *Buffer) oldestFreeing(n int64) []blockInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []blockInfo
	for _, bi := range b.blocks {
		if n <= 0 {
			break
		}
		out = append(out, bi)
		n -= bi.size
	}
	return out
}

// evictOldest deletes the oldest blocks, freeing at least n bytes if there
// are enough, in a transaction of its own. It returns the bytes freed.
func (b *Buffer) evictOldest(n int64) (int64, error) {
	evict := b.oldestFreeing(n)
	if len(evict) == 0 {
		return 0, nil
	}
	b.limitGrowth(int64(commitOverheadPages) * pageSize)
	err := b.db.Update(func(tx *bolt.Tx) error {
		bb := tx.Bucket(bucketBlocks)
		for _, bi := range evict {
			if err := deleteBlock(bb, bi.seq); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	var freed int64
	for _, bi := range evict {
		freed += bi.size
	}
	b.mu.Lock()
	b.forgetBlocksLocked(evict, ReasonFull)
	b.mu.Unlock()
	return freed, nil
}
