package buffer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
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
// journal was emptied (count; each ref and the labels as in the series
// bucket), then its samples (series count; each ref as the difference from
// the one before, sample count, and per sample the delta-of-delta of its
// timestamp and its value as in a block, both against the series' previous
// sample in the journal). A torn or damaged record ends the replay.

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
	lastT int64 // newest sample appended: older ones are out of order

	// Journal state, since it was last emptied.
	markT     int64   // newest sample in the head at the previous Journal
	jT, jD    int64   // newest journaled timestamp and the delta before it
	jV        float64 // its value
	jDefined  bool    // labels written
	journaled bool    // jT, jD, jV are set
}

type journal struct {
	f        *os.File
	size     int64
	unsynced bool
}

// Journal appends to the journal the samples that were already in the head
// (or in flight on the live path) at the previous call and are not in it
// yet. It does not sync. Safe for concurrent use; serialised with commits.
func (b *Buffer) Journal() error {
	if b.jf == nil {
		return nil
	}
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	b.mu.Lock()
	rec := b.journalRecordLocked()
	b.mu.Unlock()
	if rec == nil {
		return nil
	}
	if err := b.jf.append(rec); err != nil {
		return fmt.Errorf("buffer journal: %w", err)
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
	return nil
}

// journalRecordLocked encodes the samples due for the journal, nil if none,
// and marks what is in the head now for the next call. The caller holds mu.
func (b *Buffer) journalRecordLocked() []byte {
	type due struct {
		ref    uint32
		ts     []int64
		vs     []float64
		newest int64
	}
	var all []due
	add := func(s seriesData) {
		if len(s.ts) > 0 {
			all = append(all, due{ref: s.ref, ts: s.ts, vs: s.vs})
		}
	}
	for _, s := range b.head {
		add(*s)
	}
	for _, s := range b.live {
		add(s)
	}
	slices.SortFunc(all, func(x, y due) int { return int(x.ref) - int(y.ref) })
	// A series may be both in flight and in the head (the head newer):
	// merged by ref, the live part first.
	var defs, body []byte
	nDefs, nSeries := 0, 0
	var prevRef uint32
	var cand [10]byte
	for i := 0; i < len(all); {
		ref := all[i].ref
		st := b.state[ref]
		var ts []int64
		var vs []float64
		newest := st.markT
		for ; i < len(all) && all[i].ref == ref; i++ {
			d := all[i]
			for k, t := range d.ts {
				if (!st.journaled || t > st.jT) && t <= st.markT {
					ts, vs = append(ts, t), append(vs, d.vs[k])
				}
				newest = max(newest, t)
			}
		}
		st.markT = newest
		if len(ts) == 0 {
			continue
		}
		if !st.jDefined {
			lb := encodeLabels(b.series.byRef[ref])
			defs = binary.AppendUvarint(defs, uint64(ref))
			defs = binary.AppendUvarint(defs, uint64(len(lb)))
			defs = append(defs, lb...)
			st.jDefined = true
			nDefs++
		}
		body = binary.AppendUvarint(body, uint64(ref-prevRef))
		prevRef = ref
		body = binary.AppendUvarint(body, uint64(len(ts)))
		for k, t := range ts {
			delta := t - st.jT
			body = binary.AppendVarint(body, delta-st.jD)
			body = appendValue(body, cand[:0], st.jV, vs[k])
			st.jT, st.jD, st.jV, st.journaled = t, delta, vs[k], true
		}
		nSeries++
	}
	if nSeries == 0 {
		return nil
	}
	payload := binary.AppendUvarint(nil, uint64(nDefs))
	payload = append(payload, defs...)
	payload = binary.AppendUvarint(payload, uint64(nSeries))
	return append(payload, body...)
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

// empty truncates the journal: everything it held is committed. The
// caller holds writeMu.
func (b *Buffer) emptyJournalLocked() error {
	if b.jf == nil || b.jf.size == 0 {
		return nil
	}
	if err := b.jf.f.Truncate(0); err != nil {
		return fmt.Errorf("buffer journal: %w", err)
	}
	b.jf.size, b.jf.unsynced = 0, false
	b.mu.Lock()
	for _, st := range b.state {
		st.jT, st.jD, st.jV, st.jDefined, st.journaled = 0, 0, 0, false, false
	}
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
	samples, rerr := replayJournal(bufio.NewReader(f), b.Append)
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

var errJournal = errors.New("damaged journal record")

// replayJournal decodes a journal, calling appendFn with each sample in
// order. It returns the samples replayed, and an error for a damaged
// record (a torn tail after a power cut ends it the same way).
func replayJournal(r *bufio.Reader, appendFn func(labels.Labels, int64, float64)) (int, error) {
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
		lset  labels.Labels
		t, d  int64
		v     float64
		known bool
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
			lset, err := decodeLabels(rd.bytes())
			if rd.err != nil || err != nil {
				return samples, fmt.Errorf("%w: labels", errJournal)
			}
			series[ref] = &replayState{lset: lset}
		}
		var ref uint32
		for range rd.count(len(payload)) {
			ref += uint32(rd.uvarint())
			st := series[ref]
			cnt := rd.count(len(payload))
			if st == nil || rd.err != nil {
				return samples, fmt.Errorf("%w: unknown series %d", errJournal, ref)
			}
			for range cnt {
				st.d += rd.varint()
				st.t += st.d
				st.v = rd.value(st.v)
				if rd.err != nil {
					return samples, fmt.Errorf("%w: samples", errJournal)
				}
				appendFn(st.lset, st.t, st.v)
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
