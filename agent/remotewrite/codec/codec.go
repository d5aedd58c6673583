// Package codec turns buffer blocks into Remote-Write request bodies and
// back: 1.0 (prometheus.WriteRequest) and 2.0 (io.prometheus.write.v2.Request),
// snappy-compressed (block format) as the protocol sends them.
//
// Everything here is a pure function of its arguments: no I/O, no shared
// state, safe to call from any number of goroutines at once.
package codec

import (
	"fmt"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"

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
// first: what one TimeSeries of a request carries.
type Series struct {
	Ref    uint32 // the buffer's (buffer.Series.Ref): one label set and Meta
	Labels labels.Labels
	Meta   buffer.Meta // type, help, unit, start; the zero Meta when unknown
	// NoMeta leaves Meta's type, help and unit out of a 2.0 request (the
	// receiver had them recently); start times are sent all the same.
	NoMeta bool
	T      []int64
	V      []float64
}

// GroupBySeries merges blocks into one Series per series (by buffer.Series
// Ref), keeping the order in which series first appear and, within a
// series, the blocks' order. Samples before minT are left out and counted
// in tooOld (math.MinInt64 keeps them all); samples counts the rest.
//
// The returned T and V slices may be the blocks' own, capped at their
// length (the caller must not write to them; appending copies); Labels are
// the blocks' own (label sets are immutable). blocks is not modified.
func GroupBySeries(blocks []buffer.Block, minT int64) (series []*Series, samples, tooOld int) {
	var g Grouper // what it returns is the caller's: the Grouper goes with this call
	return g.Group(blocks, minT)
}

// Grouper is GroupBySeries in memory it keeps from one call to the next: a
// sender groups each request's blocks, the live path's at every
// collection. Not safe for concurrent use: each sender has its own.
type Grouper struct {
	slab   []Series
	series []*Series
	index  map[uint32]*Series
}

// Group is GroupBySeries; the Series it returns are the Grouper's, valid
// until its next Group.
func (gr *Grouper) Group(blocks []buffer.Block, minT int64) (series []*Series, samples, tooOld int) {
	n := 0 // at most this many series: the slab is not grown, so &slab[i] stays
	for _, blk := range blocks {
		n += len(blk.Series)
	}
	clear(gr.slab) // the last request's samples and labels, not to be kept alive
	if cap(gr.slab) < n {
		gr.slab = make([]Series, 0, n)
	}
	// A block holds each series once: one block (the live path's) needs no
	// index.
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
		for _, s := range blk.Series {
			first := 0
			for first < len(s.T) && s.T[first] < minT {
				first++ // timestamps ascend: the old ones come first
			}
			tooOld += first
			if first == len(s.T) {
				continue
			}
			t, v := s.T[first:len(s.T):len(s.T)], s.V[first:len(s.V):len(s.V)]
			samples += len(t)
			if index != nil {
				if g := index[s.Ref]; g != nil {
					g.T, g.V = append(g.T, t...), append(g.V, v...)
					continue
				}
			}
			slab = append(slab, Series{Ref: s.Ref, Labels: s.Labels, Meta: s.Meta, T: t, V: v})
			g := &slab[len(slab)-1]
			if index != nil {
				index[s.Ref] = g
			}
			series = append(series, g)
		}
	}
	gr.slab, gr.series = slab, series
	return series, samples, tooOld
}

// Encoder turns series into request bodies in memory it keeps from one
// request to the next: new memory for each request was most of a sender's
// garbage. It keeps at most maxKept bytes of each buffer, so that one
// unusually large request is not held for good. Not safe for concurrent
// use: each sender has its own.
type Encoder struct {
	raw, body []byte
}

// Encode returns the request body of series in p, snappy-compressed: what
// the sender posts. The body is the Encoder's, valid until its next
// Encode. A Protocol other than Protocol2 encodes 1.0.
func (e *Encoder) Encode(series []*Series, p Protocol) []byte {
	if p == Protocol2 {
		e.raw = marshalRequestV2(e.raw[:0], series)
	} else {
		e.raw = marshalWriteRequest(e.raw[:0], series)
	}
	body := snappy.Encode(e.body[:cap(e.body)], e.raw) // in e.body when it is large enough
	e.raw, e.body = kept(e.raw), kept(body)
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
