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
// The journal also tells what became of its samples on the live path, so
// that after a crash the sender neither sends again what the receiver has
// nor takes for a duplicate what it never had. Resent, samples older than
// the receiver's newest are refused as out of order, and a receiver that
// refuses a request whole (Prometheus before its partial writes) takes
// the unsent samples of the request down too. Samples sent (taken live,
// so possibly written by the receiver) are marked sent; those the receiver
// acknowledged, delivered: a replay skips them. Marks cost a record only
// while the journal holds samples of a live block: with the link up and
// the sender keeping up, never.
//
// Format: the 8-byte magic, then records, each a uvarint payload length,
// the payload's CRC-32C (big-endian) and the payload, snappy-compressed. A
// payload is its kind (one byte) and its body:
//   - samples (0): the label sets of the series it names for the first time
//     since the journal was emptied (count; each ref and the labels, with
//     their metadata if any, as in the series bucket), then marks of what
//     was sent, as in a sent record, then its samples in groups of one
//     timestamp (group count; each the timestamp as the difference from the
//     group before, the sample count, and per sample its series' ref as the
//     difference from the sample before and its value as in a block,
//     against the series' previous value in the journal);
//   - delivered (1): series whose samples up to a time the receiver has
//     (count; each the ref and the time, as signed differences from the
//     ones before);
//   - sent (2): series whose samples up to a time were sent, as delivered.
//
// A mark holds for the series its ref names at the mark: a ref defined
// again (a series the buffer forgot and saw again) starts without marks. A
// torn or damaged record, or one of an unknown kind, ends the replay.
// Journals of the first format (magic FERRYJ1) hold samples records only,
// without the kind and the marks; all they hold may have been sent.

// JournalSuffix names the journal: the buffer's file name and this.
const JournalSuffix = ".journal"

var (
	journalMagic   = []byte("FERRYJ2\n")
	journalMagicV1 = []byte("FERRYJ1\n") // samples records only, without their kind
)

// The kinds of journal records.
const (
	recordSamples   byte = 0
	recordDelivered byte = 1
	recordSent      byte = 2

	// A samples record of a FERRYJ1 journal, without the sent marks: never
	// written, the kind journalRecords gives such records.
	recordSamplesV1 byte = 0xff
)

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

	// failed is the error of a record of marks (journalMarks), which the
	// next Journal reports.
	failed error
}

// journaledSample is the newest sample the journal has of a series: only
// newer ones are due, and a value is written as its change from the one
// before. Its series' labels are in the journal.
type journaledSample struct {
	t    int64
	v    float64
	sent int64 // the journal marks its samples up to this time sent (recordSent)
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
	failed := b.jf.failed
	b.jf.failed = nil
	b.mu.Lock()
	rec, due := b.journalRecordLocked(b.liveFailing.Load())
	b.mu.Unlock()
	if rec == nil {
		return failed
	}
	if err := b.appendRecordLocked(rec); err != nil {
		return errors.Join(failed, err)
	}
	b.jf.written.n += due.n
	b.jf.written.newest = max(b.jf.written.newest, due.newest)
	return failed
}

// journalFitsLocked reports whether rec, framed, keeps the journal within
// its share of the cap. The caller holds writeMu.
func (b *Buffer) journalFitsLocked(rec []byte) bool {
	return b.jf.size+journalRecordBound(len(rec)) <= journalShare(b.maxSize)
}

// appendRecordLocked appends a record to the journal, or commits the head
// instead if the record could take the journal past its share of the cap,
// or if it could not be written. The caller holds writeMu.
func (b *Buffer) appendRecordLocked(rec []byte) error {
	if !b.journalFitsLocked(rec) {
		return b.commitInsteadLocked()
	}
	if err := b.jf.append(rec); err != nil {
		return errors.Join(fmt.Errorf("buffer journal: %w", err), b.commitInsteadLocked())
	}
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
			js := b.journaled[d.ref]
			groups = appendValue(groups, cand[:0], js.v, d.v)
			js.t, js.v = d.t, d.v
			b.journaled[d.ref] = js
		}
		nGroups++
		i = j
	}
	// The live block in flight is sent, and so were the samples that came
	// back from one: what the journal now holds of them is marked so, in
	// the same record.
	var sent []seriesMark
	markSent := func(ref uint32, last int64) {
		if js, ok := b.journaled[ref]; ok && js.sent < last {
			sent = append(sent, seriesMark{ref, last})
			js.sent = last
			b.journaled[ref] = js
		}
	}
	for _, l := range b.live {
		markSent(l.Ref, l.T[len(l.T)-1])
	}
	for ref, last := range b.putBack {
		markSent(ref, last)
	}
	payload := binary.AppendUvarint([]byte{recordSamples}, uint64(nDefs))
	payload = append(payload, defs...)
	payload = appendMarks(payload, sent)
	payload = binary.AppendUvarint(payload, uint64(nGroups))
	return append(payload, groups...), journaledSamples{len(due), due[len(due)-1].t}
}

// seriesMark is one series' part of a live block: its samples up to t were
// sent (recordSent) or are at the receiver (recordDelivered).
type seriesMark struct {
	ref uint32
	t   int64
}

// deliveredMarksLocked returns the marks of the samples of the live block
// in flight (the first settled[ref] of each series, all with settled nil)
// that the journal holds some of; nil, without allocating, when it holds
// none. The caller holds mu.
func (b *Buffer) deliveredMarksLocked(settled map[uint32]int) []seriesMark {
	if len(b.journaled) == 0 {
		return nil
	}
	var marks []seriesMark
	for _, s := range b.live {
		ts := s.T
		if settled != nil {
			ts = ts[:min(settled[s.Ref], len(ts))]
		}
		if j, ok := b.journaled[s.Ref]; ok && len(ts) > 0 && ts[0] <= j.t {
			marks = append(marks, seriesMark{s.Ref, ts[len(ts)-1]})
		}
	}
	return marks
}

// sentMarksLocked returns the marks of the samples of blk, just taken
// live, that the journal holds some of and has not marked sent, and
// counts them marked; nil, without allocating, when there are none. The
// caller holds writeMu and mu, and journals the marks before it lets go
// of writeMu.
func (b *Buffer) sentMarksLocked(blk Block) []seriesMark {
	if len(b.journaled) == 0 {
		return nil
	}
	var marks []seriesMark
	for _, s := range blk.Series {
		last := s.T[len(s.T)-1]
		if j, ok := b.journaled[s.Ref]; ok && s.T[0] <= j.t && j.sent < last {
			marks = append(marks, seriesMark{s.Ref, last})
			j.sent = last
			b.journaled[s.Ref] = j
		}
	}
	return marks
}

// journalMarks appends a record of the kind recordSent or recordDelivered
// with marks. The journal may have been emptied since the marks were
// taken: a mark before its series' definition holds for nothing, and a
// delivered mark is older than any sample the journal has of its series
// since. An error waits for the next Journal. Safe for concurrent use;
// serialised with commits.
func (b *Buffer) journalMarks(kind byte, marks []seriesMark) {
	if len(marks) == 0 || b.jf == nil {
		return
	}
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	if err := b.appendRecordLocked(appendMarks([]byte{kind}, marks)); err != nil {
		b.jf.failed = errors.Join(b.jf.failed, err)
	}
}

// journalSentLocked appends the sent record of the block TakeLive just
// took. Unlike Journal it cannot commit instead when the record does not
// fit or cannot be written, as a commit waits for that very block: it
// leaves the record out and asks for a commit (HeadFull); if a crash comes
// first, the block's samples count as never sent (NeverSent). An error
// waits for the next Journal. The caller holds writeMu.
func (b *Buffer) journalSentLocked(marks []seriesMark) {
	if len(marks) == 0 || b.jf == nil {
		return
	}
	rec := appendMarks([]byte{recordSent}, marks)
	if !b.journalFitsLocked(rec) {
		signal(b.headFull)
		return
	}
	if err := b.jf.append(rec); err != nil {
		b.jf.failed = errors.Join(b.jf.failed, fmt.Errorf("buffer journal: %w", err))
		signal(b.headFull)
	}
}

// appendMarks encodes marks: their count, then each one's ref and time as
// the (signed) differences from the mark before. Marks come mostly in ref
// order and share their time: a mark costs two or three bytes.
func appendMarks(dst []byte, marks []seriesMark) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(marks)))
	var prev seriesMark
	for _, m := range marks {
		dst = binary.AppendVarint(dst, int64(m.ref)-int64(prev.ref))
		dst = binary.AppendVarint(dst, m.t-prev.t)
		prev = m
	}
	return dst
}

// readMarks decodes what appendMarks wrote, calling fn with each mark.
func readMarks(rd *reader, fn func(ref uint32, t int64)) {
	var ref, t int64
	for range rd.count(len(rd.b)) {
		ref += rd.varint()
		t += rd.varint()
		if rd.err != nil {
			return
		}
		fn(uint32(ref), t)
	}
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
func (b *Buffer) openJournal() (samples, delivered int, err error) {
	f, err := os.OpenFile(b.path+JournalSuffix, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return 0, 0, fmt.Errorf("buffer journal: %w", err)
	}
	b.jf = &journal{f: f}
	samples, delivered, rerr := replayJournal(f, func(lset labels.Labels, m Meta, t int64, v float64, sent bool) {
		r := b.AppendMeta(Ref{}, lset, m, t, v)
		if sent || r.e == nil {
			return
		}
		if _, ok := b.neverSent[r.e.ref]; ok {
			return // the series' first unsent sample is known
		}
		b.mu.Lock()
		appended := r.e.tracked && r.e.state.lastT == t // not dropped (out of order)
		b.mu.Unlock()
		if appended {
			if b.neverSent == nil {
				b.neverSent = map[uint32]int64{}
			}
			b.neverSent[r.e.ref] = t
		}
	})
	if rerr != nil {
		b.log.Warn("buffer journal damaged; replayed what came before the damage", "file", b.path+JournalSuffix, "samples", samples, "err", rerr)
	}
	fi, err := f.Stat()
	if err != nil {
		return samples, delivered, fmt.Errorf("buffer journal: %w", err)
	}
	b.jf.size = fi.Size()
	return samples, delivered, nil
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
	samples, _, rerr := replayJournal(f, func(lset labels.Labels, m Meta, t int64, v float64, _ bool) {
		b.AppendMeta(Ref{}, lset, m, t, v)
	})
	if rerr != nil {
		b.log.Warn("buffer journal damaged; read what came before the damage", "file", b.path+JournalSuffix, "samples", samples, "err", rerr)
	}
	return nil
}

var errJournal = errors.New("damaged journal record")

// replayJournal decodes a journal, calling appendFn with each sample in
// order that the receiver had not acknowledged, and whether it was sent
// (it may be at the receiver). It returns the samples replayed and those
// skipped as delivered, and an error for a damaged record (a torn tail
// after a power cut ends it the same way). It reads r twice: the marks
// first, then the samples.
func replayJournal(r io.ReadSeeker, appendFn func(lset labels.Labels, m Meta, t int64, v float64, sent bool)) (replayed, delivered int, err error) {
	// A ref names one series from its definition on: a series the buffer
	// forgot is defined again, under a new generation, and marks of the
	// generation before do not hold for its samples.
	type refGen struct{ ref, gen uint32 }
	acked := map[refGen]int64{} // the receiver has the series' samples up to this time
	sentTo := map[refGen]int64{}
	gens := map[uint32]uint32{}
	mark := func(to map[refGen]int64) func(uint32, int64) {
		return func(ref uint32, t int64) {
			k := refGen{ref, gens[ref]}
			to[k] = max(to[k], t)
		}
	}
	err = journalRecords(r, func(kind byte, payload []byte) error {
		rd := reader{b: payload}
		switch kind {
		case recordSamples, recordSamplesV1:
			for range rd.count(len(payload)) {
				gens[uint32(rd.uvarint())]++
				rd.bytes()
			}
			if kind == recordSamples {
				readMarks(&rd, mark(sentTo))
			}
			if rd.err != nil {
				return fmt.Errorf("%w: labels", errJournal)
			}
			return nil
		case recordDelivered:
			readMarks(&rd, mark(acked))
		case recordSent:
			readMarks(&rd, mark(sentTo))
		}
		if rd.err != nil || len(rd.b) != 0 {
			return fmt.Errorf("%w: marks", errJournal)
		}
		return nil
	})
	// A mark is a fact wherever it lies, even beyond a record the second
	// pass finds damaged: the second pass may stop earlier than the first.
	if _, serr := r.Seek(0, io.SeekStart); serr != nil {
		return 0, 0, fmt.Errorf("buffer journal: %w", serr)
	}
	type replayState struct {
		lset labels.Labels
		meta Meta
		v    float64
		gen  uint32
	}
	series := map[uint32]*replayState{}
	err2 := journalRecords(r, func(kind byte, payload []byte) error {
		if kind != recordSamples && kind != recordSamplesV1 {
			return nil
		}
		rd := reader{b: payload}
		for range rd.count(len(payload)) {
			ref := uint32(rd.uvarint())
			lset, m, err := decodeSeries(rd.bytes())
			if rd.err != nil || err != nil {
				return fmt.Errorf("%w: labels", errJournal)
			}
			gen := uint32(1)
			if st := series[ref]; st != nil {
				gen = st.gen + 1
			}
			series[ref] = &replayState{lset: lset, meta: m, gen: gen}
		}
		if kind == recordSamples {
			readMarks(&rd, func(uint32, int64) {}) // read in the first pass
		}
		var t int64
		for range rd.count(len(payload)) {
			t += rd.varint()
			var ref uint32
			for range rd.count(len(payload)) {
				ref += uint32(rd.uvarint())
				st := series[ref]
				if st == nil || rd.err != nil {
					return fmt.Errorf("%w: unknown series %d", errJournal, ref)
				}
				st.v = rd.value(st.v)
				if rd.err != nil {
					return fmt.Errorf("%w: samples", errJournal)
				}
				k := refGen{ref, st.gen}
				if a, ok := acked[k]; ok && t <= a {
					delivered++
					continue
				}
				// A journal of the first format did not tell what was
				// sent: all of it may have been.
				s, ok := sentTo[k]
				appendFn(st.lset, st.meta, t, st.v, ok && t <= s || kind == recordSamplesV1)
				replayed++
			}
		}
		if rd.err != nil || len(rd.b) != 0 {
			return fmt.Errorf("%w: record body", errJournal)
		}
		return nil
	})
	return replayed, delivered, cmp.Or(err2, err)
}

// journalRecords reads a journal's records in order and calls fn with each
// one's kind and payload, until the end, a damaged record or an error of
// fn, which it returns.
func journalRecords(r io.Reader, fn func(kind byte, payload []byte) error) error {
	br := bufio.NewReader(r)
	magic := make([]byte, len(journalMagic))
	if _, err := io.ReadFull(br, magic); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty
		}
		return fmt.Errorf("%w: header", errJournal)
	}
	var kinds bool
	switch string(magic) {
	case string(journalMagic):
		kinds = true
	case string(journalMagicV1):
	default:
		return fmt.Errorf("%w: not a journal", errJournal)
	}
	for {
		n, err := binary.ReadUvarint(br)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil || n > maxJournalRecord {
			return fmt.Errorf("%w: record length", errJournal)
		}
		var crc [4]byte
		z := make([]byte, n)
		if _, err := io.ReadFull(br, crc[:]); err != nil {
			return fmt.Errorf("%w: torn record", errJournal)
		}
		if _, err := io.ReadFull(br, z); err != nil {
			return fmt.Errorf("%w: torn record", errJournal)
		}
		if crc32.Checksum(z, crcTable) != binary.BigEndian.Uint32(crc[:]) {
			return fmt.Errorf("%w: checksum", errJournal)
		}
		if l, err := snappy.DecodedLen(z); err != nil || l > maxJournalRecord {
			return fmt.Errorf("%w: payload size", errJournal)
		}
		payload, err := snappy.Decode(nil, z)
		if err != nil {
			return fmt.Errorf("%w: %v", errJournal, err)
		}
		kind := recordSamplesV1
		if kinds {
			if len(payload) == 0 || payload[0] > recordSent {
				return fmt.Errorf("%w: record kind", errJournal)
			}
			kind, payload = payload[0], payload[1:]
		}
		if err := fn(kind, payload); err != nil {
			return err
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
