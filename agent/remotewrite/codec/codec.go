// Package codec turns buffer blocks into Remote-Write request bodies and
// back: 1.0 (prometheus.WriteRequest) and 2.0 (io.prometheus.write.v2.Request),
// snappy-compressed (block format) as the protocol sends them.
//
// Everything here is a pure function of its arguments: no I/O, no shared
// state, safe to call from any number of goroutines at once.
package codec

import (
	"encoding/binary"
	"fmt"

	"github.com/golang/snappy"

	"github.com/ferry-agent/ferry/buffer"
)

// Protocol is the Remote-Write message a request carries; it is a flag
// value ("1" or "2") and the zero value means 1.0.
type Protocol int

const (
	Protocol1 Protocol = 1 // prometheus.WriteRequest
	Protocol2 Protocol = 2 // io.prometheus.write.v2.Request
)

// Proto message names, as Prometheus' protobuf_message setting has them.
const (
	MessageV1 = "prometheus.WriteRequest"
	MessageV2 = "io.prometheus.write.v2.Request"
)

func (p Protocol) String() string {
	if p == Protocol2 {
		return "2"
	}
	return "1"
}

// Set takes 1, 2, 1.0, 2.0 or a proto message name; anything else is an
// error naming what it takes, and leaves p as it was.
func (p *Protocol) Set(s string) error {
	switch s {
	case "1", "1.0", MessageV1:
		*p = Protocol1
	case "2", "2.0", MessageV2:
		*p = Protocol2
	default:
		return fmt.Errorf("%q: want 1 (%s) or 2 (%s)", s, MessageV1, MessageV2)
	}
	return nil
}

func (p *Protocol) Type() string { return "version" }

// ContentType is the Content-Type header of a request in p: 2.0 names its
// message, so that a receiver can refuse it with a 415 rather than misread
// it; 1.0 keeps the bare type older receivers expect.
func (p Protocol) ContentType() string {
	if p == Protocol2 {
		return "application/x-protobuf;proto=" + MessageV2
	}
	return "application/x-protobuf"
}

// Version is the X-Prometheus-Remote-Write-Version header of a request in p.
func (p Protocol) Version() string {
	if p == Protocol2 {
		return "2.0.0"
	}
	return "0.1.0"
}

// Series is the samples of one series gathered across blocks, oldest
// first: what one TimeSeries of a request carries. It is a buffer.Series
// (Ref, Labels, Meta, T, V): a block's own Series can be sent as it is.
type Series buffer.Series

// GroupBySeries merges blocks into one Series per series (by buffer.Series
// Ref), keeping the order in which series first appear and, within a
// series, the blocks' order. Samples before minT are left out and counted
// in tooOld (math.MinInt64 keeps them all); samples counts the rest.
//
// The returned Series, and their T and V slices, may be the blocks' own:
// the caller must neither write into them nor append to T or V. Labels are
// the blocks' own (label sets are immutable). blocks is not modified.
func GroupBySeries(blocks []buffer.Block, minT int64) (series []*Series, samples, tooOld int) {
	var g Grouper // what it returns is the caller's: the Grouper goes with this call
	return g.Group(blocks, minT)
}

// Grouper is GroupBySeries in memory it keeps from one call to the next: a
// sender groups each request's blocks, the live path's at every
// collection. Not safe for concurrent use: each sender has its own.
type Grouper struct {
	// slab holds the Series made anew: a series of several blocks, or one
	// cut at minT. A block's own are used as they are, so the live path
	// (one block) needs none; slab is let go once slabIdle groupings in a
	// row made none (the last drain is over).
	slab   []Series
	idle   int // groupings in a row that made no Series
	series []*Series
	index  map[uint32]*Series
}

// slabIdle is how many groupings in a row that made no Series let the
// Grouper's slab go: with fresh data ahead of a drain, the live path's
// requests and the backlog's alternate, and the slab is kept for the
// backlog's.
const slabIdle = 16

// Group is GroupBySeries; the Series it returns are the Grouper's or the
// blocks', valid until its next Group.
func (gr *Grouper) Group(blocks []buffer.Block, minT int64) (series []*Series, samples, tooOld int) {
	n := 0 // at most this many series: the slab is not grown, so &slab[i] stays
	for _, blk := range blocks {
		n += len(blk.Series)
	}
	clear(gr.slab) // the last request's samples and labels, not to be kept alive
	// A block holds each series once: one block (the live path's) needs no
	// index, and its Series are sent as they are unless minT cuts them.
	var index map[uint32]*Series
	if len(blocks) > 1 {
		if gr.index == nil {
			gr.index = make(map[uint32]*Series, n)
		}
		clear(gr.index)
		index = gr.index
	}
	slab, series := gr.slab[:0], gr.series[:0]
	for _, blk := range blocks {
		for i := range blk.Series {
			s := &blk.Series[i]
			first := 0
			for first < len(s.T) && s.T[first] < minT {
				first++ // timestamps ascend: the old ones come first
			}
			tooOld += first
			if first == len(s.T) {
				continue
			}
			samples += len(s.T) - first
			if index == nil && first == 0 {
				series = append(series, (*Series)(s))
				continue
			}
			t, v := s.T[first:len(s.T):len(s.T)], s.V[first:len(s.V):len(s.V)]
			if index != nil {
				if g := index[s.Ref]; g != nil {
					g.T, g.V = append(g.T, t...), append(g.V, v...)
					continue
				}
			}
			if len(slab) == 0 && cap(slab) < n {
				slab = make([]Series, 0, n)
			}
			slab = append(slab, Series{Ref: s.Ref, Labels: s.Labels, Meta: s.Meta, T: t, V: v})
			g := &slab[len(slab)-1]
			if index != nil {
				index[s.Ref] = g
			}
			series = append(series, g)
		}
	}
	if len(slab) > 0 {
		gr.idle = 0
	} else if gr.idle++; gr.idle >= slabIdle {
		slab = nil
	}
	gr.slab, gr.series = slab, series
	return series, samples, tooOld
}

// Encoder turns series into request bodies in memory it keeps from one
// request to the next: new memory for each request was most of a sender's
// garbage. A 1.0 request is compressed as it is marshalled, 64 KiB at a
// time (compressor), so that its whole uncompressed body (about 1 MiB for
// 5000 series) is never in memory. It keeps at most maxKept bytes of each
// buffer, so that one unusually large request is not held for good. Not
// safe for concurrent use: each sender has its own.
type Encoder struct {
	z compressor
}

// Encode returns the request body of series in p, snappy-compressed: what
// the sender posts. In a 2.0 request, a series whose noMeta is true goes
// without its type, help and unit (the receiver had them recently); nil
// noMeta leaves none out, and 1.0 ignores it. The body is the Encoder's,
// valid until its next Encode. A Protocol other than Protocol2 encodes 1.0.
func (e *Encoder) Encode(series []*Series, p Protocol, noMeta []bool) []byte {
	z := &e.z
	z.reset()
	if p == Protocol2 {
		z.window = marshalRequestV2(z.window, series, noMeta)
	} else {
		for _, s := range series {
			z.window = appendTimeSeries(z.window, s)
			if len(z.window) >= snappyBlock {
				z.compress(false)
			}
		}
	}
	return z.finish()
}

// compressor writes snappy's block format, which Remote-Write posts, of
// bytes appended to its window a piece at a time. The format compresses
// each 64 KiB of its input on its own, after a header of the whole
// input's length: compressing each full window as it comes gives the
// bytes snappy.Encode gives for the whole input, without the whole input
// in memory.
type compressor struct {
	window  []byte // input not compressed yet
	scratch []byte // snappy.Encode's output for one block
	out     []byte // room for the header, then the compressed blocks
	n       uint64 // input compressed so far
}

// snappyBlock is snappy's block size: the input it compresses on its own.
const snappyBlock = 64 << 10

func (z *compressor) reset() {
	z.window = z.window[:0]
	z.out = append(z.out[:0], make([]byte, binary.MaxVarintLen64)...)
	z.n = 0
}

// compress compresses the window's full blocks, and with final the rest.
func (z *compressor) compress(final bool) {
	done := 0
	for len(z.window)-done >= snappyBlock || final && len(z.window) > done {
		block := z.window[done:min(done+snappyBlock, len(z.window))]
		// Encode writes the block's length, then the block: only the
		// block goes on, the header being the whole input's.
		z.scratch = snappy.Encode(z.scratch[:cap(z.scratch)], block)
		z.out = append(z.out, z.scratch[uvarintSize(uint64(len(block))):]...)
		z.n += uint64(len(block))
		done += len(block)
	}
	z.window = z.window[:copy(z.window, z.window[done:])]
}

// finish compresses what is left and returns the body: the header of the
// input's length, then the blocks. It is the compressor's until reset.
func (z *compressor) finish() []byte {
	z.compress(true)
	start := binary.MaxVarintLen64 - uvarintSize(z.n)
	binary.PutUvarint(z.out[start:], z.n)
	body := z.out[start:]
	z.window, z.out = kept(z.window), kept(z.out)
	return body
}

// maxKept is the most memory an Encoder keeps of each buffer: room for a
// request of MaxSamplesPerSend (5000) samples of series with long labels.
const maxKept = 2 << 20

// kept is b emptied, or nil if its memory is more than maxKept.
func kept(b []byte) []byte {
	if cap(b) > maxKept {
		return nil
	}
	return b[:0]
}

func snappyEncode(raw []byte) []byte { return snappy.Encode(nil, raw) }
