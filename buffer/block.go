package buffer

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"
	"slices"

	"github.com/golang/snappy"
)

// blockVersion is the first byte of every block value; see FORMAT.md.
const blockVersion = 1

// maxBlockSamples bounds what a decoder allocates for one block, so that a
// corrupt count cannot exhaust memory. Blocks are written far below it.
const maxBlockSamples = 1 << 22

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt marks bytes that do not decode. The buffer drops such a block
// with a count instead of stopping.
var errCorrupt = errors.New("corrupt block")

// seriesData is the samples of one series within a block, timestamps
// ascending.
type seriesData struct {
	ref uint32
	ts  []int64
	vs  []float64
}

// blockHeader is what the buffer keeps in memory of every block; it is read
// without decompressing the payload.
type blockHeader struct {
	samples    int
	minT, maxT int64
}

// packBlocks encodes series as blocks that each fit in one bbolt page
// (at most limit bytes). bbolt stores a value larger than a page in
// contiguous pages and grows the file when no free run is long enough; with
// one-page blocks every page freed by eviction or acknowledgement can take
// a new block, which is what lets the buffer hold its cap (buffer.go).
//
// Each block takes as many whole series as fit; a series that alone does
// not fit is split in time, its older samples in the earlier block.
func packBlocks(series []seriesData, limit int) [][]byte {
	blocks, _ := packBlocksAt(series, limit, nil)
	return blocks
}

// packBlocksAt is packBlocks that first tries to start blocks at the given
// series refs (the cuts of the commit before), so that successive commits
// split the series the same way and thinning can merge their blocks (thin.go).
// It returns the cuts it made.
func packBlocksAt(series []seriesData, limit int, cuts []uint32) ([][]byte, []uint32) {
	var out [][]byte
	var made []uint32
	guess := 64
	for len(series) > 0 {
		if len(encodeBlock(series[:1])) > limit {
			// One series with too many samples for a page: split it where
			// the older part just fits.
			s := series[0]
			k := largestFit(len(s.ts), 1, func(k int) bool {
				return len(encodeBlock([]seriesData{{ref: s.ref, ts: s.ts[:k], vs: s.vs[:k]}})) <= limit
			})
			k = max(k, 1)
			series = append([]seriesData{{ref: s.ref, ts: s.ts[:k], vs: s.vs[:k]}, {ref: s.ref, ts: s.ts[k:], vs: s.vs[k:]}}, series[1:]...)
		}
		n := 0
		// The commit before cut at the first ref past this block's start.
		if i, _ := slices.BinarySearch(cuts, series[0].ref+1); i < len(cuts) {
			k, _ := slices.BinarySearchFunc(series, cuts[i], func(s seriesData, ref uint32) int { return cmp.Compare(s.ref, ref) })
			if k > 0 && len(encodeBlock(series[:k])) <= limit {
				n = k
			}
		}
		if n == 0 {
			n = largestFit(len(series), min(guess, len(series)), func(n int) bool {
				return len(encodeBlock(series[:n])) <= limit
			})
		}
		out = append(out, encodeBlock(series[:n]))
		series, guess = series[n:], n
		if len(series) > 0 {
			made = append(made, series[0].ref)
		}
	}
	return out, made
}

// largestFit returns the largest n in [1, max] for which fits holds, given
// that it holds for 1 (or returns 0 if it does not) and that it holds for
// every n below one for which it holds. It starts looking at guess, so that
// a good guess costs few calls.
func largestFit(maxN, guess int, fits func(int) bool) int {
	lo, hi := 0, maxN+1 // fits(lo) holds (lo = 0 trivially); fits(hi) does not
	for n := max(guess, 1); n < hi; n = min(2*n, hi) {
		if !fits(n) {
			hi = n
			break
		}
		lo = n
		if n == maxN {
			return n
		}
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if fits(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// encodeBlock writes series (sorted by ref, each with at least one sample)
// in format version 1.
func encodeBlock(series []seriesData) []byte {
	h := blockHeader{minT: math.MaxInt64, maxT: math.MinInt64}
	for _, s := range series {
		h.samples += len(s.ts)
		h.minT = min(h.minT, s.ts[0])
		h.maxT = max(h.maxT, s.ts[len(s.ts)-1])
	}

	// Series scraped together share their timestamps: each distinct
	// timestamp column is stored once, and series refer to it by index.
	var columns [][]byte
	columnOf := map[string]int{}
	colIndex := make([]int, len(series))
	for i, s := range series {
		col := binary.AppendUvarint(nil, uint64(len(s.ts)))
		col = appendTimestamps(col, s.ts, h.minT)
		idx, ok := columnOf[string(col)]
		if !ok {
			idx = len(columns)
			columnOf[string(col)] = idx
			columns = append(columns, col)
		}
		colIndex[i] = idx
	}

	body := binary.AppendUvarint(nil, uint64(len(columns)))
	for _, col := range columns {
		body = append(body, col...)
	}
	body = binary.AppendUvarint(body, uint64(len(series)))
	var prevRef uint32
	for i, s := range series {
		body = binary.AppendUvarint(body, uint64(s.ref-prevRef))
		prevRef = s.ref
		body = binary.AppendUvarint(body, uint64(colIndex[i]))
		body = appendValues(body, s.vs)
	}
	payload := snappy.Encode(nil, body)

	out := make([]byte, 0, 32+len(payload))
	out = append(out, blockVersion)
	out = binary.AppendUvarint(out, uint64(h.samples))
	out = binary.AppendVarint(out, h.minT)
	out = binary.AppendUvarint(out, uint64(h.maxT-h.minT))
	crc := crc32.Update(crc32.Checksum(out, crcTable), crcTable, payload)
	out = binary.BigEndian.AppendUint32(out, crc)
	return append(out, payload...)
}

// decodeHeader reads and checks a block's header, verifies the checksum
// over header and payload, and returns the payload.
func decodeHeader(b []byte) (blockHeader, []byte, error) {
	var h blockHeader
	if len(b) == 0 || b[0] != blockVersion {
		return h, nil, fmt.Errorf("%w: unknown version", errCorrupt)
	}
	r := reader{b: b[1:]}
	n := r.uvarint()
	h.minT = r.varint()
	span := r.uvarint()
	headerLen := len(b) - len(r.b)
	crc := r.uint32()
	if r.err != nil {
		return h, nil, r.err
	}
	if n == 0 || n > maxBlockSamples || span > math.MaxInt64 || h.minT > math.MaxInt64-int64(span) {
		return h, nil, fmt.Errorf("%w: bad header", errCorrupt)
	}
	// The count is returned even when the checksum fails, so that the
	// samples of a damaged block are counted as dropped.
	h.samples, h.maxT = int(n), h.minT+int64(span)
	if crc32.Update(crc32.Checksum(b[:headerLen], crcTable), crcTable, r.b) != crc {
		return h, nil, fmt.Errorf("%w: checksum mismatch", errCorrupt)
	}
	return h, r.b, nil
}

// decodeBlock returns the series of an encoded block.
func decodeBlock(b []byte) (blockHeader, []seriesData, error) {
	h, payload, err := decodeHeader(b)
	if err != nil {
		return h, nil, err
	}
	if n, err := snappy.DecodedLen(payload); err != nil || n > 32*maxBlockSamples {
		return h, nil, fmt.Errorf("%w: bad payload length", errCorrupt)
	}
	body, err := snappy.Decode(nil, payload)
	if err != nil {
		return h, nil, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	r := reader{b: body}
	nCols := r.uvarint()
	if nCols == 0 || nCols > uint64(h.samples) {
		return h, nil, fmt.Errorf("%w: %d timestamp columns for %d samples", errCorrupt, nCols, h.samples)
	}
	columns := make([][]int64, nCols)
	for i := range columns {
		n := r.uvarint()
		if r.err != nil || n == 0 || n > uint64(h.samples) {
			return h, nil, fmt.Errorf("%w: bad timestamp column", errCorrupt)
		}
		ts := make([]int64, n)
		r.timestamps(ts, h.minT)
		if !slices.IsSorted(ts) || ts[0] < h.minT || ts[n-1] > h.maxT {
			return h, nil, fmt.Errorf("%w: timestamps out of range", errCorrupt)
		}
		columns[i] = ts[:n:n] // shared by series: appending must copy
	}
	nSeries := r.uvarint()
	if nSeries > uint64(h.samples) {
		return h, nil, fmt.Errorf("%w: %d series for %d samples", errCorrupt, nSeries, h.samples)
	}
	series := make([]seriesData, 0, nSeries)
	var ref uint64
	left := h.samples
	for range nSeries {
		ref += r.uvarint()
		col := r.uvarint()
		if r.err != nil || col >= nCols || ref > math.MaxUint32 {
			return h, nil, fmt.Errorf("%w: bad series entry", errCorrupt)
		}
		ts := columns[col]
		if len(ts) > left {
			return h, nil, fmt.Errorf("%w: more samples than the header says", errCorrupt)
		}
		left -= len(ts)
		s := seriesData{ref: uint32(ref), ts: ts, vs: make([]float64, len(ts))}
		r.values(s.vs)
		series = append(series, s)
	}
	if r.err != nil || left != 0 || len(r.b) != 0 {
		return h, nil, fmt.Errorf("%w: body does not match header", errCorrupt)
	}
	return h, series, nil
}

// appendTimestamps writes the first timestamp as an offset from the block's
// minimum, then delta-of-deltas: regular scrapes cost one byte per sample.
func appendTimestamps(b []byte, ts []int64, minT int64) []byte {
	b = binary.AppendVarint(b, ts[0]-minT)
	var prevDelta int64
	for i := 1; i < len(ts); i++ {
		delta := ts[i] - ts[i-1]
		b = binary.AppendVarint(b, delta-prevDelta)
		prevDelta = delta
	}
	return b
}

// Value encoding: each value is written relative to the previous one of
// the series (the first relative to 0), in whichever of these forms is
// shortest; the first byte says which (FORMAT.md):
//
//	0x80             unchanged
//	0xC0-0xFF        both integers, the difference in [-32, 31] (counters)
//	0x81+k, varint   the difference in units of 10^-k, k in 0..3, when both
//	                 values have at most k decimals (bytes, seconds, %)
//	(L<<4)|T, bytes  the IEEE-754 bits XOR the previous bits: L leading and
//	                 T trailing zero bytes (0..7) dropped, the rest written
const (
	valueSame       = 0x80
	valueDecimal    = 0x81 // + k
	maxDecimals     = 3
	valueSmallDelta = 0xC0
)

var pow10 = [maxDecimals + 1]float64{1, 10, 100, 1000}

// maxExact bounds scaled values so that int64 and float64 hold them exactly.
const maxExact = 1 << 53

func appendValues(b []byte, vs []float64) []byte {
	var prev float64
	var cand [10]byte
	for _, v := range vs {
		b = appendValue(b, cand[:0], prev, v)
		prev = v
	}
	return b
}

func appendValue(b, cand []byte, prev, v float64) []byte {
	x := math.Float64bits(v) ^ math.Float64bits(prev)
	if x == 0 {
		return append(b, valueSame)
	}
	// The XOR form always works; a decimal form replaces it when shorter
	// and when decoding it gives back exactly the same bits.
	lead, trail := bits.LeadingZeros64(x)/8, bits.TrailingZeros64(x)/8
	best := 1 + 8 - lead - trail
	for k := range maxDecimals + 1 {
		p, ok1 := scaled(prev, k)
		c, ok2 := scaled(v, k)
		if !ok1 || !ok2 || math.Float64bits(unscale(c, k)) != math.Float64bits(v) {
			continue
		}
		d := c - p
		if k == 0 && d >= -32 && d < 32 {
			return append(b, valueSmallDelta|byte(d+32))
		}
		cand = binary.AppendVarint(append(cand[:0], valueDecimal+byte(k)), d)
		if len(cand) < best {
			return append(b, cand...)
		}
		break // more decimals only make the difference longer
	}
	b = append(b, byte(lead<<4|trail))
	for i := 7 - lead; i >= trail; i-- {
		b = append(b, byte(x>>(8*i)))
	}
	return b
}

// scaled returns v*10^k as an integer, if v has at most k decimals.
func scaled(v float64, k int) (int64, bool) {
	s := math.Round(v * pow10[k])
	if math.Abs(s) >= maxExact || s != s {
		return 0, false
	}
	return int64(s), true
}

func unscale(c int64, k int) float64 { return float64(c) / pow10[k] }

// reader decodes varints from a byte slice, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated", errCorrupt)
	}
	r.b = nil
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uint32() uint32 {
	if len(r.b) < 4 {
		r.fail()
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) timestamps(ts []int64, minT int64) {
	t := minT + r.varint()
	var delta int64
	ts[0] = t
	for i := 1; i < len(ts); i++ {
		delta += r.varint()
		t += delta
		ts[i] = t
	}
}

func (r *reader) values(vs []float64) {
	var prev float64
	for i := range vs {
		prev = r.value(prev)
		if r.err != nil {
			return
		}
		vs[i] = prev
	}
}

// value decodes one value written by appendValue after prev.
func (r *reader) value(prev float64) float64 {
	if len(r.b) == 0 {
		r.fail()
		return 0
	}
	hdr := r.b[0]
	r.b = r.b[1:]
	switch {
	case hdr == valueSame:
		return prev
	case hdr >= valueSmallDelta:
		p, ok := scaled(prev, 0)
		if !ok {
			r.fail()
			return 0
		}
		return unscale(p+int64(hdr-valueSmallDelta)-32, 0)
	case hdr >= valueDecimal && hdr <= valueDecimal+maxDecimals:
		k := int(hdr - valueDecimal)
		p, ok := scaled(prev, k)
		d := r.varint()
		if !ok || r.err != nil {
			r.fail()
			return 0
		}
		return unscale(p+d, k)
	default:
		lead, trail := int(hdr>>4), int(hdr&0x0f)
		n := 8 - lead - trail
		if lead > 7 || trail > 7 || n <= 0 || len(r.b) < n {
			r.fail()
			return 0
		}
		var x uint64
		for j := range n {
			x = x<<8 | uint64(r.b[j])
		}
		r.b = r.b[n:]
		return math.Float64frombits(math.Float64bits(prev) ^ x<<(8*trail))
	}
}
