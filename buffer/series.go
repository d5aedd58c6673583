package buffer

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"iter"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	bolt "go.etcd.io/bbolt"

	"github.com/ferry-agent/ferry/internal/sortedmap"
)

// seriesIndex maps label sets to the small integer refs that blocks store
// instead of labels, and back. It lives in memory and in the "series" bucket;
// disk says which label sets the file holds.
type seriesIndex struct {
	// byHash has the entry of each label hash; a hash of several refs (a
	// label set under several Metas, or label sets whose hashes collide)
	// has its first there and the others in moreByHash.
	byHash     sortedmap.Map[indexed]
	moreByHash map[uint64][]uint32
	byRef      sortedmap.Map[indexed] // by ref
	metas      map[Meta]*sharedMeta   // byRef's Metas, each once
	nextRef    uint32

	// disk has an entry for each label set in the file: its encoded size
	// and the newest block that may hold the series. A series without an
	// entry is written with the first block that holds it.
	disk      map[uint32]diskSeries
	diskBytes int64 // their footprint in the file, estimated (seriesFootprint)

	memBytes  int64 // of the label sets in memory, estimated (labelBytes)
	liveBytes int64 // memBytes when unused ones were last removed
}

// diskSeries is what the buffer knows of a label set in the file.
type diskSeries struct {
	size int // encoded (encodeLabels)
	// lastSeq is the newest block that may hold the series: once every
	// block up to it is gone (evicted, acknowledged, deleted), and no
	// block being written, head or live sample holds it, nothing refers to
	// the label set. A series in the file at Open gets the newest block
	// of the file, since the blocks' series are not read at Open.
	lastSeq uint64
}

// indexed is a ref's label set and Meta, and the buffer's state of the
// series: one map lookup finds all three, for each sample appended and
// each series the sender takes.
type indexed struct {
	lset labels.Labels
	meta *sharedMeta // nil: the zero Meta
	// state is kept while tracked: from the series' first sample since
	// Open (or its newest in the file, seedNewest) until the buffer
	// forgets it (Buffer.stateLocked).
	state   seriesState
	ref     uint32
	tracked bool
	removed bool // out of the index (remove): a Ref to it is stale
}

// setStateLocked gives e the state st, tracked or not, and forgets what
// the journal has of it: its labels and every sample not older than the
// buffer now refuses are journaled again. The caller holds mu.
func (b *Buffer) setStateLocked(e *indexed, st seriesState, tracked bool) {
	e.state, e.tracked = st, tracked
	delete(b.journaled, e.ref)
}

// sortedByRef sorts entries in ref order, as commits write series, and
// returns them: the head lists its series in the order of the
// collections, nearly sorted already.
func sortedByRef(entries []*indexed) []*indexed {
	slices.SortFunc(entries, func(x, y *indexed) int { return cmp.Compare(x.ref, y.ref) })
	return entries
}

// sharedMeta is a Meta and the number of refs that have it: the series of
// a family share their Meta's memory (unless each has its own Start).
type sharedMeta struct {
	Meta
	refs int
}

// Meta is e's Meta; the zero Meta for nil.
func (e *indexed) Meta() Meta {
	if e == nil || e.meta == nil {
		return Meta{}
	}
	return e.meta.Meta
}

// metaRef is e's Meta as a Series has it: the shared one, nil for none.
func (e *indexed) metaRef() *Meta {
	if e.meta == nil {
		return nil
	}
	return &e.meta.Meta
}

// has reports whether e is lset with m; false for nil.
func (e *indexed) has(lset labels.Labels, m Meta) bool {
	return e != nil && e.Meta() == m && labels.Equal(e.lset, lset)
}

func newSeriesIndex() *seriesIndex {
	return &seriesIndex{moreByHash: map[uint64][]uint32{}, metas: map[Meta]*sharedMeta{}, nextRef: 1, disk: map[uint32]diskSeries{}}
}

// entryOf returns the entry of ref r, nil if there is none.
func (s *seriesIndex) entryOf(r uint32) *indexed { return s.byRef.Get(uint64(r)) }

// entry returns the entry of lset with m, creating it, with a new ref, if
// the series is new or its Meta changed. m has been clamped (clampMeta).
func (s *seriesIndex) entry(lset labels.Labels, m Meta) *indexed {
	for e := range s.entriesOf(lset.Hash()) {
		if e.has(lset, m) {
			return e
		}
	}
	return s.add(s.newRef(), lset, m)
}

// newRef hands out the next ref that no series has. Ref 0 is none; past
// 2^32 series (churn over a long time) refs wrap and skip those in use.
func (s *seriesIndex) newRef() uint32 {
	r := s.nextRef
	for r == 0 || s.entryOf(r) != nil {
		r++
	}
	s.nextRef = r + 1
	return r
}

// newestMeta is the Meta of lset's newest ref, the zero Meta if it has
// none.
func (s *seriesIndex) newestMeta(lset labels.Labels) Meta {
	var newest *indexed
	for e := range s.entriesOf(lset.Hash()) {
		if (newest == nil || e.ref > newest.ref) && labels.Equal(e.lset, lset) {
			newest = e
		}
	}
	return newest.Meta()
}

// entriesOf yields the entries of label hash h, oldest first.
func (s *seriesIndex) entriesOf(h uint64) iter.Seq[*indexed] {
	return func(yield func(*indexed) bool) {
		if e := s.byHash.Get(h); e == nil || !yield(e) {
			return
		}
		for _, r := range s.moreByHash[h] {
			if !yield(s.entryOf(r)) {
				return
			}
		}
	}
}

// add makes the entry of r, lset with m, and returns it.
func (s *seriesIndex) add(r uint32, lset labels.Labels, m Meta) *indexed {
	h := lset.Hash()
	e := &indexed{lset: lset, ref: r}
	if s.byHash.Get(h) != nil {
		s.moreByHash[h] = append(s.moreByHash[h], r)
	} else {
		s.byHash.Put(h, e)
	}
	s.memBytes += labelBytes(lset)
	if !m.IsZero() {
		if e.meta = s.metas[m]; e.meta == nil {
			e.meta = &sharedMeta{Meta: m}
			s.metas[m] = e.meta
		}
		e.meta.refs++
		s.memBytes += metaBytes(m)
	}
	s.byRef.Put(uint64(r), e)
	if r >= s.nextRef {
		s.nextRef = r + 1
	}
	return e
}

// remove forgets refs. The caller has removed them from disk first.
func (s *seriesIndex) remove(refs []uint32) {
	for _, r := range refs {
		e := s.entryOf(r)
		if e == nil {
			continue
		}
		s.byRef.Delete(uint64(r))
		e.removed = true
		s.memBytes -= labelBytes(e.lset) + metaBytes(e.Meta())
		if e.meta != nil {
			if e.meta.refs--; e.meta.refs == 0 {
				delete(s.metas, e.meta.Meta)
			}
		}
		h := e.lset.Hash()
		more := s.moreByHash[h]
		if first := s.byHash.Get(h); first != nil && first.ref == r {
			if len(more) == 0 {
				s.byHash.Delete(h)
				continue
			}
			s.byHash.Put(h, s.entryOf(more[0]))
			more = more[1:]
		} else {
			more = slices.DeleteFunc(more, func(x uint32) bool { return x == r })
		}
		if len(more) == 0 {
			delete(s.moreByHash, h)
		} else {
			s.moreByHash[h] = more
		}
	}
}

// saved records that the label set of r, size bytes encoded, is in the
// file, held by blocks up to lastSeq.
func (s *seriesIndex) saved(r uint32, size int, lastSeq uint64) {
	if d, ok := s.disk[r]; ok {
		s.diskBytes -= seriesFootprint(d.size)
	}
	s.disk[r] = diskSeries{size: size, lastSeq: lastSeq}
	s.diskBytes += seriesFootprint(size)
}

// held raises the newest block that may hold r, if r is in the file.
func (s *seriesIndex) held(r uint32, seq uint64) {
	if d, ok := s.disk[r]; ok && d.lastSeq < seq {
		d.lastSeq = seq
		s.disk[r] = d
	}
}

// unsaved records that the label set of r is no longer in the file.
func (s *seriesIndex) unsaved(r uint32) {
	if d, ok := s.disk[r]; ok {
		s.diskBytes -= seriesFootprint(d.size)
		delete(s.disk, r)
	}
}

// labelBytes estimates the memory of a label set, for the bound on unused
// ones kept in memory.
func labelBytes(lset labels.Labels) int64 {
	n := int64(32)
	lset.Range(func(l labels.Label) { n += int64(len(l.Name) + len(l.Value) + 4) })
	return n
}

// A label set is stored in the series bucket in chunks of at most
// seriesChunk bytes: the first under the series' ref (4 bytes), the others
// under the ref and the chunk's index (4 + 4 bytes), so that bbolt keeps
// them in key order, each chunk after the one before and before the next
// series. Every leaf page of the bucket then holds whole elements of at
// most a quarter page, and bbolt never needs more than one page at once
// for the dictionary: any page freed by eviction can take a new label
// set, as for blocks (block.go), and a label set of any size stays within
// the cap's accounting. bbolt puts at least two elements, and up to four
// unsplit, in a leaf: four of them with their headers fit one page.
const seriesChunk = 960

// seriesFootprint estimates the bytes a label set of size bytes (encoded)
// takes in the series bucket: its chunks, their keys and leaf elements.
func seriesFootprint(size int) int64 {
	chunks := max(1, (size+seriesChunk-1)/seriesChunk)
	return int64(size) + int64(chunks)*(8+leafElementSize)
}

func chunkKey(r uint32, i int) []byte {
	if i == 0 {
		return refKey(r)
	}
	return binary.BigEndian.AppendUint32(refKey(r), uint32(i))
}

// putSeries writes an encoded label set under r.
func putSeries(sb *bolt.Bucket, r uint32, v []byte) error {
	for i := 0; i == 0 || len(v) > 0; i++ {
		n := min(len(v), seriesChunk)
		if err := sb.Put(chunkKey(r, i), v[:n]); err != nil {
			return err
		}
		v = v[n:]
	}
	return nil
}

// deleteSeries deletes the label set of r, size bytes encoded.
func deleteSeries(sb *bolt.Bucket, r uint32, size int) error {
	for i := range max(1, (size+seriesChunk-1)/seriesChunk) {
		if err := sb.Delete(chunkKey(r, i)); err != nil {
			return err
		}
	}
	return nil
}

// loadSeries reads the series bucket into s. Every series is taken as held
// by blocks up to lastSeq.
func (s *seriesIndex) loadSeries(sb *bolt.Bucket, lastSeq uint64) error {
	var ref uint32
	var enc []byte
	chunks := 0
	flush := func() error {
		if chunks == 0 {
			return nil
		}
		lset, m, err := decodeSeries(enc)
		if err != nil {
			return err
		}
		s.add(ref, lset, m)
		s.saved(ref, len(enc), lastSeq)
		return nil
	}
	err := sb.ForEach(func(k, v []byte) error {
		switch {
		case len(k) == 4 && binary.BigEndian.Uint32(k) != 0: // ref 0 is none
			if err := flush(); err != nil {
				return err
			}
			ref, enc, chunks = binary.BigEndian.Uint32(k), append([]byte(nil), v...), 1
		case len(k) == 8 && chunks > 0 && binary.BigEndian.Uint32(k) == ref && binary.BigEndian.Uint32(k[4:]) == uint32(chunks):
			enc = append(enc, v...)
			chunks++
		default:
			return fmt.Errorf("%w: series key %x", errCorrupt, k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
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
	lset, rest, err := decodeLabelsRest(b)
	if err == nil && len(rest) != 0 {
		return labels.EmptyLabels(), fmt.Errorf("%w: trailing bytes after labels", errCorrupt)
	}
	return lset, err
}

// decodeLabelsRest reads a label set from the start of b and returns what
// follows it.
func decodeLabelsRest(b []byte) (labels.Labels, []byte, error) {
	r := reader{b: b}
	n := r.uvarint()
	if r.err != nil || n == 0 || n > uint64(len(b)) {
		return labels.EmptyLabels(), nil, fmt.Errorf("%w: label count %d", errCorrupt, n)
	}
	var builder labels.ScratchBuilder
	for range n {
		name := r.bytes()
		value := r.bytes()
		if r.err != nil {
			return labels.EmptyLabels(), nil, r.err
		}
		builder.Add(string(name), string(value))
	}
	builder.Sort()
	return builder.Labels(), r.b, nil
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

// unusedSeries lists the label sets in the file that nothing refers to
// while the blocks from firstSeq on are kept: no head, live or pending
// sample, nor a block up to firstSeq, nor a ref in keep (what the caller
// writes). The caller holds mu.
func (b *Buffer) unusedSeriesLocked(firstSeq uint64, keep map[uint32]bool) []deadSeries {
	var out []deadSeries
	for r, d := range b.series.disk {
		if keep[r] || b.inHeadLocked(r) || d.lastSeq >= firstSeq {
			continue
		}
		out = append(out, deadSeries{ref: r, diskSeries: d})
	}
	if len(b.live) > 0 {
		live := map[uint32]bool{}
		for _, s := range b.live {
			live[s.Ref] = true
		}
		out = slices.DeleteFunc(out, func(d deadSeries) bool { return live[d.ref] })
	}
	return out
}

// inHeadLocked reports whether the head has samples of r. The caller
// holds mu.
func (b *Buffer) inHeadLocked(r uint32) bool {
	st := b.stateLocked(r)
	return st != nil && st.inHead()
}

// stateLocked is the state of series r, nil when the buffer has none (r
// unknown, forgotten, or in the file and not appended to since Open). The
// caller holds mu.
func (b *Buffer) stateLocked(r uint32) *seriesState {
	if e := b.series.entryOf(r); e != nil && e.tracked {
		return &e.state
	}
	return nil
}

// candidateSeriesLocked lists the label sets in the file that nothing but
// blocks refers to, oldest lastSeq first: each is unused once the blocks up
// to its lastSeq are gone. The caller holds mu.
func (b *Buffer) candidateSeriesLocked(keep map[uint32]bool) []deadSeries {
	out := b.unusedSeriesLocked(^uint64(0), keep)
	slices.SortFunc(out, func(x, y deadSeries) int {
		if c := cmp.Compare(x.lastSeq, y.lastSeq); c != 0 {
			return c
		}
		return cmp.Compare(x.ref, y.ref)
	})
	return out
}

type deadSeries struct {
	ref uint32
	diskSeries
}

// leafPagesBound bounds the leaf pages of a series bucket holding n bytes
// of label sets (seriesFootprint): bbolt merges a leaf under a quarter full
// into its neighbour.
func leafPagesBound(n int64) int64 {
	return 4*n/pageSize + 2
}

// collectSeries forgets, in memory, label sets that nothing refers to any
// more and that are not in the file: series a target stopped exposing,
// whose samples were sent or evicted. It runs when their number or bytes
// have doubled since it last did, so that a series scraped now and then
// keeps its ref (and its check of order) across commits. The label sets in
// the file are deleted as soon as they are unused (makeRoom). The caller
// holds writeMu, so no block comes or goes meanwhile.
func (b *Buffer) collectSeries() {
	pending := refsIn(b.pending)
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.series
	if s.byRef.Len() <= 2*b.liveSeries+1024 && s.memBytes <= 2*s.liveBytes+(4<<20) {
		return
	}
	used := map[uint32]bool{}
	for _, l := range b.live {
		used[l.Ref] = true
	}
	var dead []uint32
	for _, e := range s.byRef.All() {
		r := e.ref
		if _, inFile := s.disk[r]; !inFile && !b.inHeadLocked(r) && !pending[r] && !used[r] {
			dead = append(dead, r)
			b.forgetStateLocked(r)
		}
	}
	// Forgotten here, under mu, so that a series coming back gets a new
	// ref.
	s.remove(dead)
	b.liveSeries, s.liveBytes = s.byRef.Len(), s.memBytes
}

// newSeriesLocked returns the encoded label sets of the refs in refs that
// the file does not hold yet. The caller holds mu.
func (b *Buffer) newSeriesLocked(refs map[uint32]bool) map[uint32][]byte {
	out := map[uint32][]byte{}
	for r := range refs {
		if _, ok := b.series.disk[r]; !ok {
			if e := b.series.entryOf(r); e != nil {
				out[r] = encodeSeries(e.lset, e.Meta())
			}
		}
	}
	return out
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

// maxForgotten bounds what the buffer remembers of series it forgot: past
// it, it forgets the oldest half of what it remembers, and a series
// forgotten among so many others loses its guard against older samples.
const maxForgotten = 1 << 16

// forgetStateLocked drops the state of series r, which nothing holds any
// more, remembering its newest timestamp by its label hash: a series that
// comes back keeps refusing samples older than those it had, as Append
// promises. The caller holds mu.
func (b *Buffer) forgetStateLocked(r uint32) {
	e := b.series.entryOf(r)
	if e == nil || !e.tracked {
		return
	}
	lastT := e.state.lastT
	b.setStateLocked(e, seriesState{}, false)
	if len(b.forgotten) >= maxForgotten {
		b.pruneForgottenLocked()
	}
	h := e.lset.Hash()
	b.forgotten[h] = max(b.forgotten[h], lastT) // another Meta of lset may have gone first
}

// pruneForgottenLocked forgets the older half of the forgotten series'
// timestamps. The caller holds mu.
func (b *Buffer) pruneForgottenLocked() {
	ts := make([]int64, 0, len(b.forgotten))
	for _, t := range b.forgotten {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	median := ts[len(ts)/2]
	for h, t := range b.forgotten {
		if t <= median {
			delete(b.forgotten, h)
		}
	}
}

// newStateLocked makes the state of series ref, entry e: new to the
// buffer, come back after it was forgotten, or in the file and appended
// to for the first time since Open. The caller holds mu.
func (b *Buffer) newStateLocked(ref uint32, e *indexed) *seriesState {
	b.setStateLocked(e, seriesState{}, true)
	st := &e.state
	if len(b.forgotten) > 0 {
		h := e.lset.Hash()
		if t, ok := b.forgotten[h]; ok {
			st.lastT = t
			delete(b.forgotten, h)
		}
	}
	b.siblingsLastTLocked(ref, e.lset, st)
	return st
}

// siblingsLastTLocked raises st.lastT to the newest sample of the other
// refs of lset (the series before its Meta changed), so that a change of
// Meta does not let older samples in. The caller holds mu.
func (b *Buffer) siblingsLastTLocked(ref uint32, lset labels.Labels, st *seriesState) {
	h := lset.Hash()
	if _, several := b.series.moreByHash[h]; !several {
		return
	}
	for o := range b.series.entriesOf(h) {
		if o.ref != ref && o.tracked && o.state.lastT > st.lastT && labels.Equal(o.lset, lset) {
			st.lastT = o.state.lastT
		}
	}
}
