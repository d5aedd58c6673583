package codec

import (
	"encoding/binary"

	"github.com/prometheus/prometheus/model/labels"
)

// Remote-Write 2.0 (https://prometheus.io/docs/specs/prw/remote_write_spec_2_0/),
// written by ferry as 1.0 is. The messages it uses, from Prometheus'
// prompb/io/prometheus/write/v2/types.proto (fields 1 to 3 of Request are
// reserved, so that a 1.0 decoder reads a 2.0 body as empty):
//
//	Request    { repeated string symbols = 4; repeated TimeSeries timeseries = 5; }
//	TimeSeries { repeated uint32 labels_refs = 1; repeated Sample samples = 2; }
//	Sample     { double value = 1; int64 timestamp = 2; }
//
// Every string is sent once per request, in symbols, whose first entry is
// the empty string; a series names its labels by index, name and value
// pairs, packed. The buffer keeps no metric type, help or unit, so no
// Metadata is sent (type unspecified), and there are no histograms or
// exemplars. Tests decode the output with Prometheus' generated v2 types.

const (
	keySymbols      = 4<<3 | 2
	keyTimeseriesV2 = 5<<3 | 2
	keyLabelsRefs   = 1<<3 | 2 // packed
)

// marshalRequestV2 encodes the series as an io.prometheus.write.v2.Request:
// each series' labels as references into the symbols, its samples as in
// 1.0.
func marshalRequestV2(series []*Series) []byte {
	index := map[string]uint32{"": 0} // the spec: symbols start with ""
	syms := appendString(nil, keySymbols, "")
	var body, refs, ts []byte
	for _, s := range series {
		refs = refs[:0]
		s.Labels.Range(func(l labels.Label) {
			for _, str := range [2]string{l.Name, l.Value} {
				r, ok := index[str]
				if !ok {
					r = uint32(len(index))
					index[str] = r
					syms = appendString(syms, keySymbols, str)
				}
				refs = binary.AppendUvarint(refs, uint64(r))
			}
		})
		ts = appendBytes(ts[:0], keyLabelsRefs, refs)
		ts = appendSamples(ts, s)
		body = appendBytes(body, keyTimeseriesV2, ts)
	}
	return append(syms, body...)
}

func appendBytes(b []byte, key byte, v []byte) []byte {
	b = append(b, key)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}
