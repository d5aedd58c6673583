package buffer

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	bolt "go.etcd.io/bbolt"
)

// seriesIndex maps label sets to the small integer refs that blocks store
// instead of labels, and back. It lives in memory and in the "series" bucket.
type seriesIndex struct {
	byHash  map[uint64][]uint32
	byRef   map[uint32]labels.Labels
	nextRef uint32
	unsaved []uint32 // refs not yet in the file: created since, and not in any block written
}

func newSeriesIndex() *seriesIndex {
	return &seriesIndex{byHash: map[uint64][]uint32{}, byRef: map[uint32]labels.Labels{}, nextRef: 1}
}

// ref returns the ref of lset, creating one if the series is new.
func (s *seriesIndex) ref(lset labels.Labels) uint32 {
	h := lset.Hash()
	for _, r := range s.byHash[h] {
		if labels.Equal(s.byRef[r], lset) {
			return r
		}
	}
	r := s.nextRef
	s.nextRef++
	s.add(r, lset)
	s.unsaved = append(s.unsaved, r)
	return r
}

func (s *seriesIndex) add(r uint32, lset labels.Labels) {
	h := lset.Hash()
	s.byHash[h] = append(s.byHash[h], r)
	s.byRef[r] = lset
	if r >= s.nextRef {
		s.nextRef = r + 1
	}
}

// remove forgets refs.
func (s *seriesIndex) remove(refs []uint32) {
	for _, r := range refs {
		lset, ok := s.byRef[r]
		if !ok {
			continue
		}
		delete(s.byRef, r)
		h := lset.Hash()
		s.byHash[h] = slices.DeleteFunc(s.byHash[h], func(x uint32) bool { return x == r })
		if len(s.byHash[h]) == 0 {
			delete(s.byHash, h)
		}
	}
}

func refKey(r uint32) []byte { return binary.BigEndian.AppendUint32(nil, r) }

// encodeLabels writes a label set as a count, then length-prefixed names and
// values.
func encodeLabels(lset labels.Labels) []byte {
	b := binary.AppendUvarint(nil, uint64(lset.Len()))
	lset.Range(func(l labels.Label) {
		b = binary.AppendUvarint(b, uint64(len(l.Name)))
		b = append(b, l.Name...)
		b = binary.AppendUvarint(b, uint64(len(l.Value)))
		b = append(b, l.Value...)
	})
	return b
}

func decodeLabels(b []byte) (labels.Labels, error) {
	r := reader{b: b}
	n := r.uvarint()
	if r.err != nil || n == 0 || n > uint64(len(b)) {
		return labels.EmptyLabels(), fmt.Errorf("%w: label count %d", errCorrupt, n)
	}
	var builder labels.ScratchBuilder
	for range n {
		name := r.bytes()
		value := r.bytes()
		if r.err != nil {
			return labels.EmptyLabels(), r.err
		}
		builder.Add(string(name), string(value))
	}
	if len(r.b) != 0 {
		return labels.EmptyLabels(), fmt.Errorf("%w: trailing bytes after labels", errCorrupt)
	}
	builder.Sort()
	return builder.Labels(), nil
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// collectSeries is collectSeriesLocked for a commit, which goes on without
// it when it fails: it is tried again at the next commit.
func (b *Buffer) collectSeries() {
	if err := b.collectSeriesLocked(); err != nil {
		b.log.Warn("buffer: removing unused series failed; retried later", "err", err)
	}
}

// collectSeriesLocked removes label sets that no block, pending block, head
// or live sample refers to any more: series that a target stopped exposing,
// whose samples were sent or evicted. Finding them reads every block, so it
// runs only when the dictionary has doubled since it last did. The caller
// holds writeMu, so no block comes or goes meanwhile.
func (b *Buffer) collectSeriesLocked() error {
	b.mu.Lock()
	due := len(b.series.byRef) > 2*b.liveSeries+1024
	b.mu.Unlock()
	if !due {
		return nil
	}
	used := map[uint32]bool{}
	err := b.db.View(func(tx *bolt.Tx) error {
		bb := tx.Bucket(bucketBlocks)
		return bb.ForEachBucket(func(k []byte) error {
			_, data, err := decodeBlock(getBlock(bb, binary.BigEndian.Uint64(k)))
			if err != nil {
				return nil // a damaged block is dropped when read; it keeps nothing alive
			}
			for _, d := range data {
				used[d.ref] = true
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	for r := range refsIn(b.pending) {
		used[r] = true
	}

	b.mu.Lock()
	for r := range b.head {
		used[r] = true
	}
	for _, s := range b.live {
		used[s.ref] = true
	}
	unsaved := map[uint32]bool{}
	for _, r := range b.series.unsaved {
		unsaved[r] = true
	}
	var dead, deadSaved []uint32
	for r := range b.series.byRef {
		if !used[r] {
			dead = append(dead, r)
			if !unsaved[r] {
				deadSaved = append(deadSaved, r)
			}
			delete(b.state, r)
		}
	}
	// Forgotten here, under mu, so that a series coming back gets a new
	// ref instead of one about to be deleted.
	b.series.remove(dead)
	b.series.unsaved = slices.DeleteFunc(b.series.unsaved, func(r uint32) bool { return !used[r] })
	b.liveSeries = len(b.series.byRef)
	b.mu.Unlock()

	if len(deadSaved) == 0 {
		return nil // nothing in the file to delete: no write
	}
	b.limitGrowth(int64(commitOverheadPages) * pageSize)
	return b.db.Update(func(tx *bolt.Tx) error {
		sb := tx.Bucket(bucketSeries)
		for _, r := range deadSaved {
			if err := sb.Delete(refKey(r)); err != nil {
				return err
			}
		}
		return nil
	})
}

// refsIn returns the series refs that encoded blocks refer to.
func refsIn(blocks [][]byte) map[uint32]bool {
	refs := map[uint32]bool{}
	for _, v := range blocks {
		if _, data, err := decodeBlock(v); err == nil {
			for _, d := range data {
				refs[d.ref] = true
			}
		}
	}
	return refs
}
