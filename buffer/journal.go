package buffer

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"slices"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
)

// The journal keeps what waits in the head across a crash of the process
// without the cost of a commit. Journal writes what stayed in the head for
// a tick to a file beside the buffer's, appended to the page cache and not
// synced: the kernel keeps it when ferry is killed (kill -9, the OOM killer,
// a watchdog, a panic), so such a crash loses at most the last tick or two.
// Sync makes it survive a power cut; the agent calls it every sync interval.
// A commit writes the head to the buffer's file and empties the journal, so
// the journal holds at most the head: bounded by Options.MaxHeadBytes in
// memory, and by its own share of the cap on disk. At Open, the journal of a
// process that died is replayed into the head and committed.
//
// Format: the 8-byte magic, then records, each a uvarint payload length,
// the payload's CRC-32C (big-endian) and the payload, snappy-compressed:
// the label sets of the series it names for the first time since the
// journal was emptied (count; each ref and the labels, with their metadata
// if any, as in the series bucket), then its samples in groups of one timestamp (group count; each
// the timestamp as the difference from the group before, the sample count,
// and per sample its series' ref as the difference from the sample before
// and its value as in a block, against the series' previous value in the
// journal). A torn or damaged record ends the replay.

// JournalSuffix names the journal: the buffer's file name and this.
const JournalSuffix = ".journal"

var journalMagic = []byte("FERRYJ1\n")

// maxJournalRecord bounds what the replay reads and allocates for one
// record: far above what a tick writes at the head's memory bound.
const maxJournalRecord = 16 << 20

// journalShare is the journal's part of the cap: the rest is the buffer
// file's. When the journal reaches it, the agent commits.
func journalShare(maxSize int64) int64 {
	return min(max(maxSize/16, 64<<10), 4<<20)
}

// seriesState is what the buffer keeps per series while it is open.
type seriesState struct {
	lastT int64       // newest sample appended: older ones are out of order
	head  headSamples // its samples in the head (Buffer.head lists it), none when out of it

	// markT is the newest sample in the head at the previous Journal. What
	// the journal has of the series is in Buffer.journaled, which only
	// holds the series journaled since it was last emptied.
	markT int64
}

// headSamples is a series' samples in the head, timestamps ascending: a
// block's seriesData without the ref, which the series' entry has.
type headSamples struct {
	ts []int64
	vs []float64
}

// inHead reports whether the head has samples of the series: it has none
// but while it is in the head.
func (st *seriesState) inHead() bool { return len(st.head.ts) > 0 }

type journal struct {
	f        *os.File
	size     int64
	unsynced bool

	// Samples written since the journal was emptied, and as of the last
	// Sync: those survive a power cut.
	written, synced journaledSamples
}

// journaledSample is the newest sample the journal has of a series: only
// newer ones are due, and a value is written as its change from the one
// before. Its series' labels are in the journal.
type journaledSample struct {
	t int64
	v float64
}

type journaledSamples struct {
	n      int
	newest int64 // ms
}

// Journal appends to the journal the samples that were already in the head
// (or in flight on the live path) at the previous call and are not in it
// yet; while the live path fails (JournalDue), all of them that are not in
// it yet. It does not sync. Safe for concurrent use; serialised with
// commits.
func (b *Buffer) Journal() error {
	if b.jf == nil {
		return nil
	}
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	b.mu.Lock()
	rec, due := b.journalRecordLocked(b.liveFailing.Load())
	b.mu.Unlock()
	if rec == nil {
		return nil
	}
	if b.jf.size+journalRecordBound(len(rec)) > journalShare(b.maxSize) {
		// Written, the record could take the journal past its share of
		// the cap: commit instead.
		return b.commitInsteadLocked()
	}
	if err := b.jf.append(rec); err != nil {
		return errors.Join(fmt.Errorf("buffer journal: %w", err), b.commitInsteadLocked())
	}
	b.jf.written.n += due.n
	b.jf.written.newest = max(b.jf.written.newest, due.newest)
	if b.jf.size >= journalShare(b.maxSize) {
		signal(b.headFull)
	}
	return nil
}

// Sync makes what the journal holds durable (fsync), if anything was
// written since the last Sync. Safe for concurrent use.
func (b *Buffer) Sync() error {
	if b.jf == nil {
		return nil
	}
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	if !b.jf.unsynced {
		return nil
	}
	if err := b.jf.f.Sync(); err != nil {
		return fmt.Errorf("buffer journal sync: %w", err)
	}
	b.jf.unsynced = false
	b.mu.Lock() // Stats reads synced under mu
	b.jf.synced = b.jf.written
	b.mu.Unlock()
	return nil
}

// journalRecordLocked encodes the samples due for the journal, nil if none,
// and marks what is in the head now for the next call. With all, every
// sample not journaled yet is due, marked or not: the live path fails.
// The caller holds mu.
func (b *Buffer) journalRecordLocked(all bool) ([]byte, journaledSamples) {
	type sample struct {
		ref uint32
		t   int64
		v   float64
	}
	var due []sample
	mark := func(ref uint32, ts []int64, vs []float64) {
		st, last := b.stateLocked(ref), b.journaled[ref]
		for k, t := range ts {
			if t > last.t && (all || t <= st.markT) {
				due = append(due, sample{ref, t, vs[k]})
			}
		}
	}
	for _, e := range b.head {
		mark(e.ref, e.state.head.ts, e.state.head.vs)
	}
	for _, s := range b.live {
		mark(s.Ref, s.T, s.V)
	}
	// Marked after all is read: a series both in flight and in the head
	// (the head's part newer) is judged against the same mark in both.
	for _, e := range b.head {
		st := &e.state
		st.markT = st.head.ts[len(st.head.ts)-1]
	}
	for _, s := range b.live {
		st := b.stateLocked(s.Ref)
		st.markT = max(st.markT, s.T[len(s.T)-1])
	}
	if len(due) == 0 {
		return nil, journaledSamples{}
	}
	// Samples of one collection share their timestamp: grouped by it, a
	// sample costs its series' ref delta and its value.
	slices.SortFunc(due, func(x, y sample) int {
		if x.t != y.t {
			return cmp.Compare(x.t, y.t)
		}
		return cmp.Compare(x.ref, y.ref)
	})
	if b.journaled == nil {
		b.journaled = map[uint32]journaledSample{}
	}
	var defs []byte
	nDefs := 0
	for _, d := range due {
		if _, defined := b.journaled[d.ref]; !defined {
			e := b.series.entryOf(d.ref)
			lb := encodeSeries(e.lset, e.Meta())
			defs = binary.AppendUvarint(defs, uint64(d.ref))
			defs = binary.AppendUvarint(defs, uint64(len(lb)))
			defs = append(defs, lb...)
			b.journaled[d.ref] = journaledSample{}
			nDefs++
		}
	}
	var groups []byte
	var cand [10]byte
	nGroups := 0
	var prevT int64
	for i := 0; i < len(due); {
		j := i
		for j < len(due) && due[j].t == due[i].t {
			j++
		}
		groups = binary.AppendVarint(groups, due[i].t-prevT)
		prevT = due[i].t
		groups = binary.AppendUvarint(groups, uint64(j-i))
		var prevRef uint32
		for _, d := range due[i:j] {
			groups = binary.AppendUvarint(groups, uint64(d.ref-prevRef))
			prevRef = d.ref
			groups = appendValue(groups, cand[:0], b.journaled[d.ref].v, d.v)
			b.journaled[d.ref] = journaledSample{d.t, d.v}
		}
		nGroups++
		i = j
	}
	payload := binary.AppendUvarint(nil, uint64(nDefs))
	payload = append(payload, defs...)
	payload = binary.AppendUvarint(payload, uint64(nGroups))
	return append(payload, groups...), journaledSamples{len(due), due[len(due)-1].t}
}

// journalRecordBound is the most bytes append writes for a payload of n
// bytes: the magic, the length, the CRC and snappy's worst case.
func journalRecordBound(n int) int64 {
	return int64(len(journalMagic) + binary.MaxVarintLen64 + 4 + snappy.MaxEncodedLen(n))
}

func (j *journal) append(payload []byte) error {
	z := snappy.Encode(nil, payload)
	rec := binary.AppendUvarint(nil, uint64(len(z)))
	rec = binary.BigEndian.AppendUint32(rec, crc32.Checksum(z, crcTable))
	rec = append(rec, z...)
	if j.size == 0 {
		rec = append(slices.Clone(journalMagic), rec...)
	}
	n, err := j.f.WriteAt(rec, j.size)
	if err != nil {
		// A partial record is cut off, so that the next one follows a
		// whole one; replay would stop at it otherwise.
		_ = j.f.Truncate(j.size)
		return err
	}
	j.size += int64(n)
	j.unsynced = true
	return nil
}

// commitInsteadLocked commits the head in place of a record that
// journalRecordLocked marked and that is not written: the commit empties
// the journal and, with it, what the buffer counts as journaled, the
// record's samples and labels included. If the commit fails, the journal
// is emptied all the same, and what it held waits in memory (pending
// blocks) like the rest. The caller holds writeMu.
func (b *Buffer) commitInsteadLocked() error {
	if err := b.commitLocked(); err != nil {
		return errors.Join(err, b.emptyJournalLocked())
	}
	return nil
}

// emptyJournalLocked truncates the journal: everything it held is
// committed. It also forgets what the buffer counts as journaled, first
// and even when the journal is empty: a record marked and not written
// (commitInsteadLocked) must not count, and a journal that failed to
// truncate, journaled again, replays samples twice (dropped as out of
// order) rather than losing those the buffer took for journaled. The
// caller holds writeMu.
func (b *Buffer) emptyJournalLocked() error {
	if b.jf == nil {
		return nil
	}
	b.mu.Lock()
	b.journaled = nil // its memory too: an outage's series may be gone
	b.mu.Unlock()
	if b.jf.size == 0 {
		return nil
	}
	if err := b.jf.f.Truncate(0); err != nil {
		return fmt.Errorf("buffer journal: %w", err)
	}
	b.jf.size, b.jf.unsynced = 0, false
	b.mu.Lock()
	b.jf.written, b.jf.synced = journaledSamples{}, journaledSamples{}
	b.mu.Unlock()
	return nil
}

// openJournal opens the journal for appending after replaying what a
// process that died left in it into the head. The caller commits the head
// and empties the journal before anything else is appended.
func (b *Buffer) openJournal() (samples int, err error) {
	f, err := os.OpenFile(b.path+JournalSuffix, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return 0, fmt.Errorf("buffer journal: %w", err)
	}
	b.jf = &journal{f: f}
	samples, rerr := replayJournal(bufio.NewReader(f), func(lset labels.Labels, m Meta, t int64, v float64) {
		b.AppendMeta(Ref{}, lset, m, t, v)
	})
	if rerr != nil {
		b.log.Warn("buffer journal damaged; replayed what came before the damage", "file", b.path+JournalSuffix, "samples", samples, "err", rerr)
	}
	fi, err := f.Stat()
	if err != nil {
		return samples, fmt.Errorf("buffer journal: %w", err)
	}
	b.jf.size = fi.Size()
	return samples, nil
}

// readJournal replays the journal a process that died left into the head
// of a buffer opened ReadOnly, in memory only: nothing is written, and the
// next writable Open replays and commits it as always.
func (b *Buffer) readJournal() error {
	f, err := os.Open(b.path + JournalSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("buffer journal: %w", err)
	}
	defer f.Close()
	samples, rerr := replayJournal(bufio.NewReader(f), func(lset labels.Labels, m Meta, t int64, v float64) {
		b.AppendMeta(Ref{}, lset, m, t, v)
	})
	if rerr != nil {
		b.log.Warn("buffer journal damaged; read what came before the damage", "file", b.path+JournalSuffix, "samples", samples, "err", rerr)
	}
	return nil
}

var errJournal = errors.New("damaged journal record")

// replayJournal decodes a journal, calling appendFn with each sample in
// order. It returns the samples replayed, and an error for a damaged
// record (a torn tail after a power cut ends it the same way).
func replayJournal(r *bufio.Reader, appendFn func(labels.Labels, Meta, int64, float64)) (int, error) {
	magic := make([]byte, len(journalMagic))
	if _, err := io.ReadFull(r, magic); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, nil // empty
		}
		return 0, fmt.Errorf("%w: header", errJournal)
	}
	if string(magic) != string(journalMagic) {
		return 0, fmt.Errorf("%w: not a journal", errJournal)
	}
	type replayState struct {
		lset labels.Labels
		meta Meta
		v    float64
	}
	series := map[uint32]*replayState{}
	samples := 0
	for {
		n, err := binary.ReadUvarint(r)
		if errors.Is(err, io.EOF) {
			return samples, nil
		}
		if err != nil || n > maxJournalRecord {
			return samples, fmt.Errorf("%w: record length", errJournal)
		}
		var crc [4]byte
		z := make([]byte, n)
		if _, err := io.ReadFull(r, crc[:]); err != nil {
			return samples, fmt.Errorf("%w: torn record", errJournal)
		}
		if _, err := io.ReadFull(r, z); err != nil {
			return samples, fmt.Errorf("%w: torn record", errJournal)
		}
		if crc32.Checksum(z, crcTable) != binary.BigEndian.Uint32(crc[:]) {
			return samples, fmt.Errorf("%w: checksum", errJournal)
		}
		if l, err := snappy.DecodedLen(z); err != nil || l > maxJournalRecord {
			return samples, fmt.Errorf("%w: payload size", errJournal)
		}
		payload, err := snappy.Decode(nil, z)
		if err != nil {
			return samples, fmt.Errorf("%w: %v", errJournal, err)
		}
		rd := reader{b: payload}
		for range rd.count(len(payload)) {
			ref := uint32(rd.uvarint())
			lset, m, err := decodeSeries(rd.bytes())
			if rd.err != nil || err != nil {
				return samples, fmt.Errorf("%w: labels", errJournal)
			}
			series[ref] = &replayState{lset: lset, meta: m}
		}
		var t int64
		for range rd.count(len(payload)) {
			t += rd.varint()
			var ref uint32
			for range rd.count(len(payload)) {
				ref += uint32(rd.uvarint())
				st := series[ref]
				if st == nil || rd.err != nil {
					return samples, fmt.Errorf("%w: unknown series %d", errJournal, ref)
				}
				st.v = rd.value(st.v)
				if rd.err != nil {
					return samples, fmt.Errorf("%w: samples", errJournal)
				}
				appendFn(st.lset, st.meta, t, st.v)
				samples++
			}
		}
		if rd.err != nil || len(rd.b) != 0 {
			return samples, fmt.Errorf("%w: record body", errJournal)
		}
	}
}

// count reads a count that cannot exceed the bytes it counts in (each
// counted item takes at least one byte), so that a damaged count cannot
// make a loop run long.
func (r *reader) count(limit int) int {
	n := r.uvarint()
	if r.err != nil || n > uint64(limit) {
		r.fail()
		return 0
	}
	return int(n)
}
