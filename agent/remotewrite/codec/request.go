package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferry-agent/ferry/buffer"
)

// EncodeRequest returns the body the sender posts for blocks in 1.0 (a
// snappy-compressed WriteRequest) and its sample count: what
// "ferry buffer export --format=remote-write" writes into a carry file.
// The body is new and owned by the caller; blocks is not modified.
func EncodeRequest(blocks []buffer.Block) (body []byte, samples int) {
	series, n, _ := GroupBySeries(blocks, math.MinInt64)
	var e Encoder // its body is the caller's: the Encoder goes with this call
	return e.Encode(series, Protocol1, nil), n
}

// MaxLabelsPerSeries bounds the labels of one series DecodeRequest takes:
// far above what any exporter writes, far below what a hostile body could
// make a decoder allocate.
const MaxLabelsPerSeries = 512

// DecodeRequest reads a body as EncodeRequest makes it back into one block,
// one series per TimeSeries, in the request's order, so that the sender
// encodes it again into the same bytes. Label sets are sorted by name;
// fields ferry does not send (exemplars, histograms, metadata) are skipped.
// Series refs are their index in the request; Seq is left 0 for the caller.
//
// body is outside input (a carry file): any bytes give a block or an
// error, never a panic, and memory stays bounded by the limits, whatever
// the body says: it decompresses to at most maxDecoded bytes, holds at most
// maxSamples samples (the caller passes what the request claims to hold,
// itself capped), and every series has a label, at most
// MaxLabelsPerSeries of them, and a sample, or it is an error. The block
// shares no memory with body; the caller owns it.
func DecodeRequest(body []byte, maxDecoded, maxSamples int) (buffer.Block, error) {
	n, err := snappy.DecodedLen(body)
	if err != nil {
		return buffer.Block{}, fmt.Errorf("request: %w", err)
	}
	if n > maxDecoded {
		return buffer.Block{}, fmt.Errorf("request: %d bytes decompressed, over the limit of %d", n, maxDecoded)
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return buffer.Block{}, fmt.Errorf("request: %w", err)
	}
	var blk buffer.Block
	var sb labels.ScratchBuilder
	samples := 0
	err = eachField(raw, func(key uint64, v []byte, _ uint64) error {
		if key != keyTimeseries {
			return nil
		}
		s := buffer.Series{Ref: uint32(len(blk.Series))}
		sb.Reset()
		nlabels := 0
		err := eachField(v, func(key uint64, v []byte, _ uint64) error {
			switch key {
			case keyLabels:
				if nlabels++; nlabels > MaxLabelsPerSeries {
					return fmt.Errorf("series %d: more than %d labels", len(blk.Series), MaxLabelsPerSeries)
				}
				var name, value string
				err := eachField(v, func(key uint64, v []byte, _ uint64) error {
					switch key {
					case keyName:
						name = string(v)
					case keyValue:
						value = string(v)
					}
					return nil
				})
				sb.Add(name, value)
				return err
			case keySamples:
				if samples++; samples > maxSamples {
					return fmt.Errorf("more than the %d samples it may hold", maxSamples)
				}
				var t int64
				var val float64
				err := eachField(v, func(key uint64, v []byte, x uint64) error {
					switch key {
					case keySampleVal:
						val = math.Float64frombits(x)
					case keySampleTS:
						t = int64(x)
					}
					return nil
				})
				s.T, s.V = append(s.T, t), append(s.V, val)
				return err
			}
			return nil
		})
		if err != nil {
			return err
		}
		if nlabels == 0 || len(s.T) == 0 {
			return fmt.Errorf("series %d: %d labels, %d samples: a series needs both", len(blk.Series), nlabels, len(s.T))
		}
		sb.Sort()
		s.Labels = sb.Labels()
		blk.Series = append(blk.Series, s)
		return nil
	})
	if err != nil {
		return buffer.Block{}, fmt.Errorf("request: %w", err)
	}
	return blk, nil
}

var errProtobuf = errors.New("malformed protobuf")

// eachField calls fn with each field of a protobuf message: its key (field
// number << 3 | wire type) and, by wire type, the bytes of a length-delimited
// field or the value of a varint or fixed field.
func eachField(b []byte, fn func(key uint64, v []byte, x uint64) error) error {
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		if n <= 0 {
			return errProtobuf
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch key & 7 {
		case 0:
			x, n = binary.Uvarint(b)
			if n <= 0 {
				return errProtobuf
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return errProtobuf
			}
			x, b = binary.LittleEndian.Uint64(b), b[8:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return errProtobuf
			}
			v, b = b[n:n+int(l)], b[n+int(l):]
		case 5:
			if len(b) < 4 {
				return errProtobuf
			}
			x, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
		default:
			return fmt.Errorf("%w: wire type %d", errProtobuf, key&7)
		}
		if err := fn(key, v, x); err != nil {
			return err
		}
	}
	return nil
}
