package buffer

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// Meta is what the receiver is told about a series besides its samples:
// its family's type, help and unit, and when it started counting. It is
// part of the series' identity in the buffer: a series whose Meta changes
// (a counter reset gives it a new Start, a target its new help text) gets
// a new Ref, with the new Meta, in the dictionary, so that the samples
// before the change keep the Meta they were collected with, and the
// dictionary holds each Meta once, never once per sample.
//
// The zero Meta says nothing; a series appended without one costs the
// dictionary nothing more than before.
type Meta struct {
	// Family is the name of the series' metric family, as in "# TYPE
	// <family> counter": the series' __name__ or a prefix of it
	// (node_cpu_seconds for node_cpu_seconds_total, foo for foo_bucket).
	Family string
	// Type is a metric type as the text formats write it after "# TYPE":
	// counter, gauge, histogram, gaugehistogram, summary, info, stateset,
	// untyped or unknown; "" when not known.
	Type string
	Help string
	Unit string
	// Start is when the series started counting from zero (a counter's,
	// histogram's or summary's created time), ms since the epoch; 0 when
	// not known.
	Start int64
}

// IsZero reports whether m says nothing.
func (m Meta) IsZero() bool { return m == Meta{} }

// Value is *m, the zero Meta for nil: a Series' Meta.
func (m *Meta) Value() Meta {
	if m == nil {
		return Meta{}
	}
	return *m
}

// metaBytes estimates the memory of a Meta beyond the label set's.
func metaBytes(m Meta) int64 {
	if m.IsZero() {
		return 0
	}
	return int64(72 + len(m.Family) + len(m.Type) + len(m.Help) + len(m.Unit))
}

// maxMetaString bounds each of a Meta's strings in the dictionary: help
// texts longer than this are cut (at a UTF-8 boundary), so that one
// target's essay of a help text cannot take the cap's room from samples.
const maxMetaString = 1024

// metaTag starts the metadata after a label set in a series entry; a
// label set alone ends where its count says, so the tag is the only
// thing that can follow it.
const metaTag = 0x01

// appendMeta appends m, of a series named name, to an encoded label set,
// nothing for the zero Meta: the tag, the family (as the bytes cut from
// name when it is a prefix of it, else whole), the type, help and unit as
// length-prefixed strings, and Start as a varint.
func appendMeta(b []byte, name string, m Meta) []byte {
	if m.IsZero() {
		return b
	}
	b = append(b, metaTag)
	if strings.HasPrefix(name, m.Family) {
		b = binary.AppendUvarint(b, uint64(len(name)-len(m.Family))<<1)
	} else {
		b = binary.AppendUvarint(b, uint64(len(m.Family))<<1|1)
		b = append(b, m.Family...)
	}
	for _, s := range [3]string{m.Type, m.Help, m.Unit} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return binary.AppendVarint(b, m.Start)
}

// encodeSeries is a series entry: its label set and its Meta (FORMAT.md).
func encodeSeries(lset labels.Labels, m Meta) []byte {
	return appendMeta(encodeLabels(lset), lset.Get(labels.MetricName), m)
}

// decodeSeries reads a series entry: a label set, then its Meta if any.
// An entry written before metadata existed is a label set alone.
func decodeSeries(b []byte) (labels.Labels, Meta, error) {
	lset, rest, err := decodeLabelsRest(b)
	if err != nil {
		return lset, Meta{}, err
	}
	m, err := decodeMeta(rest, lset.Get(labels.MetricName))
	return lset, m, err
}

// decodeMeta reads what follows a label set in a series entry: nothing, or
// a Meta.
func decodeMeta(b []byte, name string) (Meta, error) {
	if len(b) == 0 {
		return Meta{}, nil
	}
	if b[0] != metaTag {
		return Meta{}, fmt.Errorf("%w: trailing bytes after labels", errCorrupt)
	}
	r := reader{b: b[1:]}
	var m Meta
	if f := r.uvarint(); f&1 == 1 {
		if f>>1 > uint64(len(r.b)) {
			return Meta{}, fmt.Errorf("%w: series metadata", errCorrupt)
		}
		m.Family = string(r.b[:f>>1])
		r.b = r.b[f>>1:]
	} else if f>>1 <= uint64(len(name)) {
		m.Family = name[:len(name)-int(f>>1)]
	} else {
		return Meta{}, fmt.Errorf("%w: series metadata", errCorrupt)
	}
	m.Type, m.Help, m.Unit = string(r.bytes()), string(r.bytes()), string(r.bytes())
	m.Start = r.varint()
	if r.err != nil || len(r.b) != 0 {
		return Meta{}, fmt.Errorf("%w: series metadata", errCorrupt)
	}
	return m, nil
}

// clampMeta cuts m's strings to maxMetaString bytes.
func clampMeta(m Meta) Meta {
	m.Family, m.Type, m.Help, m.Unit = clampString(m.Family), clampString(m.Type), clampString(m.Help), clampString(m.Unit)
	return m
}

func clampString(s string) string {
	if len(s) <= maxMetaString {
		return s
	}
	n := maxMetaString
	for n > 0 && s[n]&0xC0 == 0x80 { // not inside a UTF-8 sequence
		n--
	}
	return s[:n]
}
