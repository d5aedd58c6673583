// Package carry reads and writes carry files: a buffer's backlog as the
// remote-write requests the agent would send, for sites whose data leaves on
// a USB stick ("ferry buffer export --format=remote-write", "ferry push").
// The format is described in FORMAT.md next to this file.
//
// A reader holds one record at a time, checks every record's checksums,
// skips damaged ones with a count, and bounds every length it reads: a
// corrupt or hostile file costs an error, never a panic or unbounded memory.
package carry

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Version is the format version this package writes and reads.
const Version = 1

// MaxBody bounds a record's body (compressed). The agent's requests are
// ~100 KiB at the default 5000 samples; this leaves room for large
// --remote-write.max-samples-per-send values while keeping a hostile length
// from allocating more.
const MaxBody = 16 << 20

// MaxDecodedBody bounds a body once decompressed, for the decoder of its
// WriteRequest.
const MaxDecodedBody = 64 << 20

// MaxSamples bounds a record's samples: above the largest buffer block
// (the head's memory bound is 4 MiB at 16 bytes a sample), so that a
// record is never too small for the agent's requests, and low enough that
// decoding a record costs tens of MiB at most. A reader refuses a header
// that claims more, and the decoder is held to what the header claims.
const MaxSamples = 1 << 18

var (
	magic      = []byte("FERRYCAR")
	recordSync = []byte{0xff, 'R', 'E', 'C'}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

const (
	fileHeaderSize   = 12 // magic, version
	recordHeaderSize = 36 // sync, body length, samples, minT, maxT, CRC
)

var (
	// ErrNotCarry: the file does not start like a carry file.
	ErrNotCarry = errors.New("not a ferry carry file")
	// ErrTruncated: the file ends before its end mark, as a copy that was
	// cut short does.
	ErrTruncated = errors.New("carry file is truncated")
)

// Record is one remote-write request.
type Record struct {
	Samples int64  // in the request
	MinT    int64  // ms, the oldest sample
	MaxT    int64  // ms, the newest sample
	Body    []byte // snappy-compressed Remote-Write 1.0 WriteRequest
}

// Writer writes a carry file. Close writes the end mark; a file without it
// reads as truncated. A Writer is not safe for concurrent use. Errors of
// the underlying writer are returned as they are; the file may then be
// damaged or cut short there, and the Writer must not be used further.
type Writer struct {
	w       io.Writer
	samples int64
	minT    int64
	maxT    int64
	records int64
	hdr     []byte
}

// NewWriter writes the file header to w, and returns w's error if that
// fails. The Writer writes to w unbuffered, a few writes per record:
// give it a buffered w for a slow device.
func NewWriter(w io.Writer) (*Writer, error) {
	hdr := binary.LittleEndian.AppendUint32(append([]byte(nil), magic...), Version)
	if _, err := w.Write(hdr); err != nil {
		return nil, err
	}
	return &Writer{w: w}, nil
}

// Write appends one request. rec.Body is written before Write returns and
// not kept. A record without samples or body, over MaxBody or over
// MaxSamples, is refused before anything is written.
func (w *Writer) Write(rec Record) error {
	if rec.Samples <= 0 || len(rec.Body) == 0 {
		return fmt.Errorf("carry: a record needs samples and a body (%d samples, %d bytes)", rec.Samples, len(rec.Body))
	}
	if len(rec.Body) > MaxBody {
		return fmt.Errorf("carry: a request of %d bytes is over the limit of %d; export fewer samples per request", len(rec.Body), MaxBody)
	}
	if rec.Samples > MaxSamples {
		return fmt.Errorf("carry: a request of %d samples is over the limit of %d; export fewer samples per request", rec.Samples, MaxSamples)
	}
	if w.records == 0 || rec.MinT < w.minT {
		w.minT = rec.MinT
	}
	w.maxT = max(w.maxT, rec.MaxT)
	w.records++
	w.samples += rec.Samples
	return w.write(rec)
}

// Close writes the end mark, which carries the file's sample total; it
// does not close the underlying writer.
func (w *Writer) Close() error {
	return w.write(Record{Samples: w.samples, MinT: w.minT, MaxT: w.maxT})
}

func (w *Writer) write(rec Record) error {
	h := append(w.hdr[:0], recordSync...)
	h = binary.LittleEndian.AppendUint32(h, uint32(len(rec.Body)))
	h = binary.LittleEndian.AppendUint64(h, uint64(rec.Samples))
	h = binary.LittleEndian.AppendUint64(h, uint64(rec.MinT))
	h = binary.LittleEndian.AppendUint64(h, uint64(rec.MaxT))
	h = binary.LittleEndian.AppendUint32(h, crc32.Checksum(h, castagnoli))
	w.hdr = h
	if _, err := w.w.Write(h); err != nil {
		return err
	}
	if _, err := w.w.Write(rec.Body); err != nil {
		return err
	}
	_, err := w.w.Write(binary.LittleEndian.AppendUint32(nil, crc32.Checksum(rec.Body, castagnoli)))
	return err
}

// Stats count what a Reader has read so far.
type Stats struct {
	Records        int64 // intact records returned
	Samples        int64 // their samples
	DamagedRecords int64 // records whose body failed its checksum, plus damaged stretches skipped
	DamagedSamples int64 // samples in the damaged records whose header was intact
	SkippedBytes   int64 // bytes of damaged stretches passed over to find the next record
	// From the end mark, once read: the samples the writer wrote, and
	// of them those neither returned nor counted as damaged (they were in
	// a damaged stretch).
	EndSeen      bool
	TotalSamples int64
	LostSamples  int64
}

// Reader reads a carry file, one record at a time. It is not safe for
// concurrent use; it holds one record's body, reused from call to call.
type Reader struct {
	r     *bufio.Reader
	off   int64 // bytes consumed, for error messages
	body  []byte
	stats Stats
	err   error // sticky: the end mark, truncation or an I/O error
}

// NewReader checks the file header: ErrNotCarry for a file that is not a
// carry file, an error naming the version for one of another version, or
// r's error.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if err := readFileHeader(br); err != nil {
		return nil, err
	}
	return &Reader{r: br, off: fileHeaderSize}, nil
}

func readFileHeader(r io.Reader) error {
	hdr := make([]byte, fileHeaderSize)
	if n, err := io.ReadFull(r, hdr); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: only %d bytes", ErrNotCarry, n)
		}
		return err
	}
	if !bytes.Equal(hdr[:len(magic)], magic) {
		return ErrNotCarry
	}
	if v := binary.LittleEndian.Uint32(hdr[len(magic):]); v != Version {
		return fmt.Errorf("carry file version %d; this ferry reads version %d", v, Version)
	}
	return nil
}

// Stats returns the counts so far, a copy.
func (r *Reader) Stats() Stats { return r.stats }

// Next returns the next intact record, skipping and counting damaged ones.
// A record's Samples is at most MaxSamples; that its body holds as many is
// for the decoder to check (codec.DecodeRequest, with rec.Samples).
// The record's Body belongs to the Reader and is valid until the next call:
// the caller must copy what it keeps. At the end mark it returns io.EOF; a
// file that ends before it, ErrTruncated. Errors stick: every later call
// returns the same one.
func (r *Reader) Next() (Record, error) {
	if r.err != nil {
		return Record{}, r.err
	}
	rec, err := r.next()
	if err != nil {
		r.err = err
	}
	return rec, err
}

func (r *Reader) next() (Record, error) {
	for {
		h, err := r.r.Peek(recordHeaderSize)
		if len(h) < recordHeaderSize {
			if errors.Is(err, io.EOF) {
				return Record{}, r.truncated()
			}
			return Record{}, err
		}
		rec, length, ok := parseRecordHeader(h)
		if !ok {
			if err := r.resync(); err != nil {
				return Record{}, err
			}
			continue
		}
		if length > MaxBody {
			// The header's checksum holds, so the writer meant it.
			return Record{}, fmt.Errorf("carry file, byte %d: a request of %d bytes is over this ferry's limit of %d", r.off, length, MaxBody)
		}
		if length > 0 && rec.Samples > MaxSamples {
			return Record{}, fmt.Errorf("carry file, byte %d: a request of %d samples is over this ferry's limit of %d", r.off, rec.Samples, MaxSamples)
		}
		r.discard(recordHeaderSize)
		if cap(r.body) < int(length)+4 {
			r.body = make([]byte, length+4)
		}
		buf := r.body[:length+4]
		if _, err := io.ReadFull(r.r, buf); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return Record{}, r.truncated()
			}
			return Record{}, err
		}
		r.off += int64(len(buf))
		rec.Body = buf[:length]
		if crc32.Checksum(rec.Body, castagnoli) != binary.LittleEndian.Uint32(buf[length:]) {
			r.stats.DamagedRecords++
			r.stats.DamagedSamples += rec.Samples
			continue
		}
		if length == 0 { // the end mark: Samples is the file's total
			r.stats.EndSeen = true
			r.stats.TotalSamples = rec.Samples
			r.stats.LostSamples = max(0, rec.Samples-r.stats.Samples-r.stats.DamagedSamples)
			return Record{}, io.EOF
		}
		r.stats.Records++
		r.stats.Samples += rec.Samples
		return rec, nil
	}
}

// parseRecordHeader checks a record header's sync bytes and checksum.
func parseRecordHeader(h []byte) (rec Record, length uint32, ok bool) {
	if !bytes.Equal(h[:4], recordSync) || crc32.Checksum(h[:32], castagnoli) != binary.LittleEndian.Uint32(h[32:36]) {
		return Record{}, 0, false
	}
	le := binary.LittleEndian
	length = le.Uint32(h[4:])
	rec = Record{Samples: int64(le.Uint64(h[8:])), MinT: int64(le.Uint64(h[16:])), MaxT: int64(le.Uint64(h[24:]))}
	if rec.Samples < 0 || (length > 0 && rec.Samples == 0) {
		return Record{}, 0, false
	}
	return rec, length, true
}

// resync passes over a damaged stretch to the next intact record header:
// one damaged record in the counts, however long the stretch.
func (r *Reader) resync() error {
	r.stats.DamagedRecords++
	for {
		r.discard(1)
		r.stats.SkippedBytes++
		h, err := r.r.Peek(recordHeaderSize)
		if len(h) < recordHeaderSize {
			if errors.Is(err, io.EOF) {
				return r.truncated()
			}
			return err
		}
		if i := bytes.Index(h, recordSync[:1]); i != 0 {
			if i < 0 {
				i = len(h)
			}
			r.discard(i - 1) // the loop discards one more
			r.stats.SkippedBytes += int64(i - 1)
			continue
		}
		if _, _, ok := parseRecordHeader(h); ok {
			return nil
		}
	}
}

func (r *Reader) discard(n int) {
	d, _ := r.r.Discard(n)
	r.off += int64(d)
}

func (r *Reader) truncated() error {
	return fmt.Errorf("%w: it ends at byte %d, before its end mark, after %d intact records", ErrTruncated, r.off, r.stats.Records)
}

// Summary is what Scan finds in a file without reading its bodies.
type Summary struct {
	Records  int64
	Samples  int64
	Complete bool // the end mark was reached and its total agrees
}

// Scan reads a file's record headers, seeking past the bodies, to learn its
// size in samples before sending it. It stops at the first damaged header;
// the Reader finds out what follows. It starts at the beginning of f and
// leaves f's offset wherever it stopped: seek back before reading f again.
// An error is f's; damage is not an error here.
func Scan(f io.ReadSeeker) (Summary, error) {
	var s Summary
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return s, err
	}
	if err := readFileHeader(f); err != nil {
		return s, err
	}
	h := make([]byte, recordHeaderSize)
	for {
		if _, err := io.ReadFull(f, h); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return s, nil
			}
			return s, err
		}
		rec, length, ok := parseRecordHeader(h)
		if !ok {
			return s, nil
		}
		if length == 0 {
			s.Complete = rec.Samples == s.Samples
			return s, nil
		}
		s.Records++
		s.Samples += rec.Samples
		if _, err := f.Seek(int64(length)+4, io.SeekCurrent); err != nil {
			return s, err
		}
	}
}
