package buffer

import (
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

// encodeBlock writes series (sorted by ref, each with at least one sample)
// in format version 1.
func encodeBlock(series []seriesData) []byte {
	h := blockHeader{minT: math.MaxInt64, maxT: math.MinInt64}
	for _, s := range series {
		h.samples += len(s.ts)
		h.minT = min(h.minT, s.ts[0])
		h.maxT = max(h.maxT, s.ts[len(s.ts)-1])
	}

	body := binary.AppendUvarint(nil, uint64(len(series)))
	var prevRef uint32
	for _, s := range series {
		body = binary.AppendUvarint(body, uint64(s.ref-prevRef))
		prevRef = s.ref
		body = binary.AppendUvarint(body, uint64(len(s.ts)))
		body = appendTimestamps(body, s.ts, h.minT)
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
	if crc32.Update(crc32.Checksum(b[:headerLen], crcTable), crcTable, r.b) != crc {
		return h, nil, fmt.Errorf("%w: checksum mismatch", errCorrupt)
	}
	if n == 0 || n > maxBlockSamples || span > math.MaxInt64 || h.minT > math.MaxInt64-int64(span) {
		return h, nil, fmt.Errorf("%w: bad header", errCorrupt)
	}
	h.samples, h.maxT = int(n), h.minT+int64(span)
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
	nSeries := r.uvarint()
	if nSeries > uint64(h.samples) {
		return h, nil, fmt.Errorf("%w: %d series for %d samples", errCorrupt, nSeries, h.samples)
	}
	series := make([]seriesData, 0, nSeries)
	var ref uint64
	left := h.samples
	for range nSeries {
		ref += r.uvarint()
		n := r.uvarint()
		if r.err != nil || n == 0 || n > uint64(left) || ref > math.MaxUint32 {
			return h, nil, fmt.Errorf("%w: bad series entry", errCorrupt)
		}
		left -= int(n)
		s := seriesData{ref: uint32(ref), ts: make([]int64, n), vs: make([]float64, n)}
		r.timestamps(s.ts, h.minT)
		r.values(s.vs)
		series = append(series, s)
	}
	if r.err != nil || left != 0 || len(r.b) != 0 {
		return h, nil, fmt.Errorf("%w: body does not match header", errCorrupt)
	}
	for _, s := range series {
		if !slices.IsSorted(s.ts) || s.ts[0] < h.minT || s.ts[len(s.ts)-1] > h.maxT {
			return h, nil, fmt.Errorf("%w: timestamps out of range", errCorrupt)
		}
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

// appendValues writes each value XORed with the previous one of the series:
// a header byte with the counts of leading (high nibble) and trailing (low
// nibble) zero bytes of the XOR, then its remaining bytes. An unchanged value
// costs one byte; a slowly moving one two or three.
func appendValues(b []byte, vs []float64) []byte {
	var prev uint64
	for _, v := range vs {
		cur := math.Float64bits(v)
		x := cur ^ prev
		prev = cur
		if x == 0 {
			b = append(b, 0x80)
			continue
		}
		lead, trail := bits.LeadingZeros64(x)/8, bits.TrailingZeros64(x)/8
		b = append(b, byte(lead<<4|trail))
		for i := 7 - lead; i >= trail; i-- {
			b = append(b, byte(x>>(8*i)))
		}
	}
	return b
}

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
	var prev uint64
	for i := range vs {
		if len(r.b) == 0 {
			r.fail()
			return
		}
		hdr := r.b[0]
		r.b = r.b[1:]
		x := uint64(0)
		if hdr != 0x80 {
			lead, trail := int(hdr>>4), int(hdr&0x0f)
			n := 8 - lead - trail
			if lead > 7 || n <= 0 || len(r.b) < n {
				r.fail()
				return
			}
			for j := range n {
				x = x<<8 | uint64(r.b[j])
			}
			x <<= 8 * trail
			r.b = r.b[n:]
		}
		prev ^= x
		vs[i] = math.Float64frombits(prev)
	}
}
