package codec

import (
	"encoding/binary"
	"math"
	"math/bits"

	"github.com/prometheus/prometheus/model/labels"
)

// ferry writes the Remote-Write 1.0 protobuf itself instead of building
// prompb structs: one pass over the blocks, no per-sample allocation, and
// ~260 KiB less binary on armv7. The messages, from prometheus/prompb:
//
//	WriteRequest { repeated TimeSeries timeseries = 1; }
//	TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//	Label        { string name = 1; string value = 2; }
//	Sample       { double value = 1; int64 timestamp = 2; }
//
// Tests decode the output with prompb to hold it to that schema.

// Field keys: field number << 3 | wire type (0 varint, 1 fixed64, 2 bytes).
const (
	keyTimeseries = 1<<3 | 2
	keyLabels     = 1<<3 | 2
	keySamples    = 2<<3 | 2
	keyName       = 1<<3 | 2
	keyValue      = 2<<3 | 2
	keySampleVal  = 1<<3 | 1
	keySampleTS   = 2<<3 | 0
)

// marshalWriteRequest appends the series to b as a WriteRequest.
func marshalWriteRequest(b []byte, series []*Series) []byte {
	for _, s := range series {
		b = appendTimeSeries(b, s)
	}
	return b
}

// appendTimeSeries appends s to b as a WriteRequest's TimeSeries field.
func appendTimeSeries(b []byte, s *Series) []byte {
	b = append(b, keyTimeseries)
	// Written in one pass, its length put in front afterwards: two bytes
	// are left for it, which fit a TimeSeries of up to 16 KiB.
	start := len(b)
	b = append(b, 0, 0)
	s.Labels.Range(func(l labels.Label) {
		b = appendLabel(b, l)
	})
	b = appendSamples(b, s)
	return putLength(b, start, 2)
}

// putLength puts the length of b[start+room:] in front of it, as a varint
// at b[start:], where room bytes were left for it; the content moves when
// the varint takes more or fewer.
func putLength(b []byte, start, room int) []byte {
	n := len(b) - start - room
	size := uvarintSize(uint64(n))
	if size > room {
		b = append(b, make([]byte, size-room)...)
	}
	if size != room {
		copy(b[start+size:], b[start+room:start+room+n])
		b = b[:start+size+n]
	}
	binary.PutUvarint(b[start:], uint64(n))
	return b
}

// appendSamples appends the series' samples as repeated Sample field 2,
// the same in 1.0's TimeSeries and 2.0's.
func appendSamples(b []byte, s *Series) []byte {
	for i := range s.T {
		b = append(b, keySamples)
		b = binary.AppendUvarint(b, uint64(sampleSize(s.T[i])))
		b = appendSample(b, s.T[i], s.V[i])
	}
	return b
}

// appendSample appends a Sample's value and timestamp fields.
func appendSample(b []byte, t int64, v float64) []byte {
	b = append(b, keySampleVal)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	b = append(b, keySampleTS)
	return binary.AppendUvarint(b, uint64(t))
}

// appendLabel appends l as a TimeSeries' Label field.
func appendLabel(b []byte, l labels.Label) []byte {
	if n := 4 + len(l.Name) + len(l.Value); n < 0x80 {
		// Every length fits a one-byte varint: most labels.
		b = append(b, keyLabels, byte(n), keyName, byte(len(l.Name)))
		b = append(b, l.Name...)
		b = append(b, keyValue, byte(len(l.Value)))
		return append(b, l.Value...)
	}
	b = append(b, keyLabels)
	b = binary.AppendUvarint(b, uint64(labelSize(l)))
	b = appendString(b, keyName, l.Name)
	return appendString(b, keyValue, l.Value)
}

func labelSize(l labels.Label) int {
	return 1 + uvarintSize(uint64(len(l.Name))) + len(l.Name) + 1 + uvarintSize(uint64(len(l.Value))) + len(l.Value)
}

// sampleSize: the value as fixed64, the timestamp as a varint of its
// two's-complement bits (int64, not sint64).
func sampleSize(t int64) int { return 1 + 8 + 1 + uvarintSize(uint64(t)) }

func appendString(b []byte, key byte, s string) []byte {
	b = append(b, key)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func uvarintSize(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }
