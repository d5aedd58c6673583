package carry

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"testing"

	"github.com/ferry-agent/ferry/agent/remotewrite/codec"
)

// testRecords are requests of varied sizes; their bodies are arbitrary
// bytes (this package does not look inside).
func testRecords() []Record {
	var recs []Record
	for i := range 5 {
		body := bytes.Repeat([]byte{byte(i + 1), 0xff, 'R', 'E', 'C'}, 10+i*37) // sync bytes inside a body must not confuse the reader
		recs = append(recs, Record{Samples: int64(100 + i), MinT: int64(1000 * i), MaxT: int64(1000*i + 999), Body: body})
	}
	return recs
}

func writeFile(t testing.TB, recs []Record) ([]byte, []int) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var offsets []int // where each record starts
	for _, r := range recs {
		offsets = append(offsets, buf.Len())
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	offsets = append(offsets, buf.Len()) // the end mark
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), offsets
}

// readAll returns the intact records and the error that ended the file.
func readAll(t testing.TB, data []byte) ([]Record, Stats, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, Stats{}, err
	}
	var out []Record
	for {
		rec, err := r.Next()
		if err != nil {
			return out, r.Stats(), err
		}
		rec.Body = bytes.Clone(rec.Body)
		out = append(out, rec)
	}
}

func equalRecords(a, b Record) bool {
	return a.Samples == b.Samples && a.MinT == b.MinT && a.MaxT == b.MaxT && bytes.Equal(a.Body, b.Body)
}

func TestRoundTrip(t *testing.T) {
	recs := testRecords()
	data, _ := writeFile(t, recs)
	got, st, err := readAll(t, data)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("ended with %v, want io.EOF", err)
	}
	if len(got) != len(recs) {
		t.Fatalf("%d records, want %d", len(got), len(recs))
	}
	var total int64
	for i := range recs {
		if !equalRecords(got[i], recs[i]) {
			t.Errorf("record %d differs", i)
		}
		total += recs[i].Samples
	}
	want := Stats{Records: 5, Samples: total, EndSeen: true, TotalSamples: total}
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	sum, err := Scan(bytes.NewReader(data))
	if err != nil || sum != (Summary{Records: 5, Samples: total, Complete: true}) {
		t.Errorf("Scan: %+v, %v", sum, err)
	}
}

func TestEmptyFile(t *testing.T) {
	data, _ := writeFile(t, nil)
	got, st, err := readAll(t, data)
	if !errors.Is(err, io.EOF) || len(got) != 0 || !st.EndSeen {
		t.Fatalf("records %d, stats %+v, err %v", len(got), st, err)
	}
}

// Cut anywhere, a file yields the records before the cut and then a clear
// error: never a panic, never a record that was not written whole.
func TestTruncatedEverywhere(t *testing.T) {
	recs := testRecords()
	data, offsets := writeFile(t, recs)
	for cut := range len(data) {
		got, _, err := readAll(t, data[:cut])
		if cut < fileHeaderSize {
			if !errors.Is(err, ErrNotCarry) {
				t.Fatalf("cut at %d: %v, want ErrNotCarry", cut, err)
			}
			continue
		}
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut at %d: %v, want ErrTruncated", cut, err)
		}
		whole := 0
		for whole < len(recs) && offsets[whole+1] <= cut {
			whole++
		}
		if len(got) != whole {
			t.Fatalf("cut at %d: %d records, want %d", cut, len(got), whole)
		}
		for i := range got {
			if !equalRecords(got[i], recs[i]) {
				t.Fatalf("cut at %d: record %d differs", cut, i)
			}
		}
	}
}

// A flipped bit in a body costs that record, counted; one in a header costs
// that record too, found again by the next header's sync bytes.
func TestEveryBitFlipCostsAtMostOneRecord(t *testing.T) {
	recs := testRecords()
	data, offsets := writeFile(t, recs)
	for bit := fileHeaderSize * 8; bit < len(data)*8; bit++ {
		damaged := bytes.Clone(data)
		damaged[bit/8] ^= 1 << (bit % 8)
		got, st, err := readAll(t, damaged)
		at := bit / 8
		if at >= offsets[len(recs)] { // the end mark
			if len(got) != len(recs) {
				t.Fatalf("bit %d in the end mark: %d records, want %d", bit, len(got), len(recs))
			}
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, io.EOF) {
				t.Fatalf("bit %d in the end mark: %v", bit, err)
			}
			continue
		}
		hit := 0
		for offsets[hit+1] <= at {
			hit++
		}
		if !errors.Is(err, io.EOF) {
			t.Fatalf("bit %d (record %d): %v, want the end mark read", bit, hit, err)
		}
		if len(got) != len(recs)-1 || st.DamagedRecords != 1 {
			t.Fatalf("bit %d (record %d): %d records, %d damaged; want %d, 1", bit, hit, len(got), st.DamagedRecords, len(recs)-1)
		}
		for i, j := 0, 0; i < len(recs); i++ {
			if i == hit {
				continue
			}
			if !equalRecords(got[j], recs[i]) {
				t.Fatalf("bit %d: record %d differs", bit, i)
			}
			j++
		}
		// Every sample of the damaged record is accounted for: known from
		// its header if that is intact, else from the end mark's total.
		wantDamaged, wantLost := recs[hit].Samples, int64(0)
		if at < offsets[hit]+recordHeaderSize {
			wantDamaged, wantLost = 0, recs[hit].Samples
		}
		if st.DamagedSamples != wantDamaged || st.LostSamples != wantLost {
			t.Fatalf("bit %d (record %d): %d damaged, %d lost samples; want %d, %d", bit, hit, st.DamagedSamples, st.LostSamples, wantDamaged, wantLost)
		}
	}
}

func TestHostileLengthIsRefusedWithoutAllocating(t *testing.T) {
	for _, tc := range []struct {
		name    string
		length  uint32
		samples uint64
	}{
		{"body length", 0xffffffff, 1},
		{"sample count", 100, MaxSamples + 1},
	} {
		t.Run(tc.name, func(t *testing.T) { testHostileHeader(t, tc.length, tc.samples) })
	}
}

func testHostileHeader(t *testing.T, length uint32, samples uint64) {
	var buf bytes.Buffer
	if _, err := NewWriter(&buf); err != nil {
		t.Fatal(err)
	}
	// A header whose checksum holds but whose length or count is past the limit.
	h := append([]byte(nil), recordSync...)
	h = binary.LittleEndian.AppendUint32(h, length)
	h = binary.LittleEndian.AppendUint64(h, samples)
	h = binary.LittleEndian.AppendUint64(h, 0)
	h = binary.LittleEndian.AppendUint64(h, 0)
	h = binary.LittleEndian.AppendUint32(h, crcOf(h))
	buf.Write(h)
	r, err := NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Next()
	if err == nil || errors.Is(err, io.EOF) || !bytes.Contains([]byte(err.Error()), []byte("over this ferry's limit")) {
		t.Fatalf("got %v, want a clear refusal", err)
	}
	if cap(r.body) != 0 {
		t.Fatalf("allocated %d bytes for a refused record", cap(r.body))
	}
}

func TestNotACarryFile(t *testing.T) {
	for _, data := range [][]byte{nil, []byte("# TYPE x counter\nx 1\n"), append([]byte("FERRYCAR"), 2, 0, 0, 0)} {
		_, _, err := readAll(t, data)
		if err == nil || errors.Is(err, io.EOF) {
			t.Errorf("%q: no error", data)
		}
		if _, err := Scan(bytes.NewReader(data)); err == nil {
			t.Errorf("Scan(%q): no error", data)
		}
	}
	_, _, err := readAll(t, append([]byte("FERRYCAR"), 2, 0, 0, 0))
	if want := "version 2"; err == nil || !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Errorf("newer version: %v, want it named", err)
	}
}

func TestWriterRefusesEmptyAndHugeRecords(t *testing.T) {
	w, _ := NewWriter(io.Discard)
	for _, rec := range []Record{{Samples: 0, Body: []byte{1}}, {Samples: 1}, {Samples: 1, Body: make([]byte, MaxBody+1)}, {Samples: MaxSamples + 1, Body: []byte{1}}} {
		if err := w.Write(rec); err == nil {
			t.Errorf("%d samples, %d bytes: accepted", rec.Samples, len(rec.Body))
		}
	}
}

func crcOf(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

func FuzzReader(f *testing.F) {
	data, offsets := writeFile(f, testRecords())
	f.Add(data)
	f.Add(data[:offsets[2]+7])
	flipped := bytes.Clone(data)
	flipped[offsets[1]+5] ^= 0x10
	f.Add(flipped)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		var samples int64
		for i := 0; ; i++ {
			rec, err := r.Next()
			if err != nil {
				break
			}
			if len(rec.Body) == 0 || len(rec.Body) > MaxBody || rec.Samples <= 0 || rec.Samples > MaxSamples {
				t.Fatalf("record %d: %d samples, %d bytes", i, rec.Samples, len(rec.Body))
			}
			samples += rec.Samples
			// What push does with a body: bounded by its header's count.
			if blk, err := codec.DecodeRequest(rec.Body, 1<<20, int(rec.Samples)); err == nil {
				if int64(blk.Samples()) > rec.Samples {
					t.Fatalf("record %d: decoded %d samples, its header says %d", i, blk.Samples(), rec.Samples)
				}
				for _, s := range blk.Series {
					if s.Labels.IsEmpty() || len(s.T) == 0 {
						t.Fatalf("record %d: a series with %d labels and %d samples", i, s.Labels.Len(), len(s.T))
					}
				}
			}
		}
		if st := r.Stats(); st.Samples != samples || st.SkippedBytes > int64(len(data)) {
			t.Fatalf("stats %+v after %d samples in %d bytes", st, samples, len(data))
		}
		if _, err := Scan(bytes.NewReader(data)); err != nil {
			t.Fatalf("Scan failed after NewReader succeeded: %v", err)
		}
	})
}
