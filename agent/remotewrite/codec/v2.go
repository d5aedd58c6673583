package codec

import (
	"cmp"
	"encoding/binary"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
)

// Remote-Write 2.0 (https://prometheus.io/docs/specs/prw/remote_write_spec_2_0/),
// written by ferry as 1.0 is. The messages it uses, from Prometheus'
// prompb/io/prometheus/write/v2/types.proto (fields 1 to 3 of Request are
// reserved, so that a 1.0 decoder reads a 2.0 body as empty):
//
//	Request    { repeated string symbols = 4; repeated TimeSeries timeseries = 5; }
//	TimeSeries { repeated uint32 labels_refs = 1; repeated Sample samples = 2; Metadata metadata = 5; }
//	Sample     { double value = 1; int64 timestamp = 2; int64 start_timestamp = 3; }
//	Metadata   { MetricType type = 1; uint32 help_ref = 3; uint32 unit_ref = 4; }
//
// Every string is sent once per request, in symbols, whose first entry is
// the empty string; a series names its labels by index, name and value
// pairs, packed, and its help and unit the same way. Metadata goes with
// every series that has some; a sample carries its series' start time when
// it is known. There are no histograms or exemplars: ferry scrapes the text
// formats, whose histograms are classic ones (series of samples). Tests
// decode the output with Prometheus' generated v2 types.

const (
	keySymbols      = 4<<3 | 2
	keyTimeseriesV2 = 5<<3 | 2
	keyLabelsRefs   = 1<<3 | 2 // packed
	keyMetadataV2   = 5<<3 | 2
	keyMetaType     = 1<<3 | 0
	keyMetaHelpRef  = 3<<3 | 0
	keyMetaUnitRef  = 4<<3 | 0
	keySampleStart  = 3<<3 | 0
)

// MetricType is the metric type enum that 1.0's MetricMetadata and 2.0's
// Metadata share (same numbers): 0 is unknown (1.0) or unspecified (2.0).
func MetricType(typ string) uint64 {
	switch typ {
	case "counter":
		return 1
	case "gauge":
		return 2
	case "histogram":
		return 3
	case "gaugehistogram":
		return 4
	case "summary":
		return 5
	case "info":
		return 6
	case "stateset":
		return 7
	}
	return 0 // untyped, unknown, or not known
}

// IsCreatedSeries reports whether s is the "_created" series of a counter,
// histogram or summary (OpenMetrics writes foo_created beside foo_total):
// its value is the start time its family's other series carry as their
// start timestamp, so 2.0 does not send it as a series of its own.
func IsCreatedSeries(s *Series) bool {
	if s.Meta == nil {
		return false
	}
	switch s.Meta.Type {
	case "counter", "histogram", "summary":
	default:
		return false
	}
	name, family := s.Labels.Get(labels.MetricName), s.Meta.Family
	return len(name) == len(family)+len("_created") && name[len(family):] == "_created" && name[:len(family)] == family
}

// CreatedSamples counts the samples of the _created series among series:
// those a 2.0 request carries as start times instead (IsCreatedSeries).
func CreatedSamples(series []*Series) int {
	n := 0
	for _, s := range series {
		if IsCreatedSeries(s) {
			n += len(s.T)
		}
	}
	return n
}

// marshalRequestV2 appends the series to dst as an io.prometheus.write.v2.Request:
// each series' labels, help and unit as references into the symbols, its
// samples as in 1.0 with its start time if known. _created series
// (IsCreatedSeries) are left out: they are in their family's start times.
// A series whose noMeta is true goes without its metadata (Encode).
func marshalRequestV2(dst []byte, series []*Series, noMeta []bool) []byte {
	withMeta := func(i int) bool { return series[i].Meta != nil && (noMeta == nil || !noMeta[i]) }
	// How often the request names each label string, in order of first use.
	at := map[string]int{} // index in order
	var order []string
	var uses []int
	for _, s := range series {
		if IsCreatedSeries(s) {
			continue
		}
		s.Labels.Range(func(l labels.Label) {
			for _, str := range [2]string{l.Name, l.Value} {
				i, ok := at[str]
				if !ok {
					i = len(order)
					at[str] = i
					order = append(order, str)
					uses = append(uses, 0)
				}
				uses[i]++
			}
		})
	}
	// Most used first; ties in order of first use (a stable sort).
	slices.SortStableFunc(order, func(a, b string) int { return cmp.Compare(uses[at[b]], uses[at[a]]) })
	index := make(map[string]uint32, len(order)+1)
	index[""] = 0 // the spec: symbols start with ""
	syms := appendString(nil, keySymbols, "")
	symbol := func(str string) {
		if _, ok := index[str]; !ok {
			index[str] = uint32(len(index))
			syms = appendString(syms, keySymbols, str)
		}
	}
	for _, str := range order {
		symbol(str)
	}
	for i, s := range series {
		if !IsCreatedSeries(s) && withMeta(i) {
			symbol(s.Meta.Help)
			symbol(s.Meta.Unit)
		}
	}
	var body, refs, ts, meta []byte
	for i, s := range series {
		if IsCreatedSeries(s) {
			continue
		}
		refs = refs[:0]
		s.Labels.Range(func(l labels.Label) {
			refs = binary.AppendUvarint(refs, uint64(index[l.Name]))
			refs = binary.AppendUvarint(refs, uint64(index[l.Value]))
		})
		ts = appendBytes(ts[:0], keyLabelsRefs, refs)
		ts = appendSamplesV2(ts, s)
		if m := s.Meta.Value(); withMeta(i) && (m.Type != "" || m.Help != "" || m.Unit != "") {
			meta = meta[:0]
			if t := MetricType(m.Type); t != 0 {
				meta = append(meta, keyMetaType)
				meta = binary.AppendUvarint(meta, t)
			}
			if m.Help != "" {
				meta = append(meta, keyMetaHelpRef)
				meta = binary.AppendUvarint(meta, uint64(index[m.Help]))
			}
			if m.Unit != "" {
				meta = append(meta, keyMetaUnitRef)
				meta = binary.AppendUvarint(meta, uint64(index[m.Unit]))
			}
			ts = appendBytes(ts, keyMetadataV2, meta)
		}
		body = appendBytes(body, keyTimeseriesV2, ts)
	}
	return append(append(dst, syms...), body...)
}

// appendSamplesV2 is appendSamples with each sample's start timestamp,
// the series' Start, when known.
func appendSamplesV2(b []byte, s *Series) []byte {
	start := s.Meta.Value().Start
	if start == 0 {
		return appendSamples(b, s)
	}
	for i := range s.T {
		b = append(b, keySamples)
		b = binary.AppendUvarint(b, uint64(sampleSize(s.T[i])+1+uvarintSize(uint64(start))))
		b = appendSample(b, s.T[i], s.V[i])
		b = append(b, keySampleStart)
		b = binary.AppendUvarint(b, uint64(start))
	}
	return b
}

func appendBytes(b []byte, key byte, v []byte) []byte {
	b = append(b, key)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}
