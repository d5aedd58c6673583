package codec

import (
	"encoding/binary"
)

// Family is one metric family's metadata, as a 1.0 metadata request
// carries it (prometheus.MetricMetadata).
type Family struct {
	Name string // metric_family_name
	Type string // as after "# TYPE"; "" unknown
	Help string
	Unit string
}

// 1.0's metadata, from prometheus/prompb:
//
//	WriteRequest   { repeated MetricMetadata metadata = 3; }
//	MetricMetadata { MetricType type = 1; string metric_family_name = 2; string help = 4; string unit = 5; }
const (
	keyMetadataV1 = 3<<3 | 2
	keyMDType     = 1<<3 | 0
	keyMDName     = 2<<3 | 2
	keyMDHelp     = 4<<3 | 2
	keyMDUnit     = 5<<3 | 2
)

// EncodeMetadata returns the body of a 1.0 metadata request, as Prometheus
// sends them (metadata_config): a WriteRequest holding only metadata, one
// entry per family, snappy-compressed. The body is new, owned by the
// caller.
func EncodeMetadata(families []Family) []byte {
	var b, m []byte
	for _, f := range families {
		m = m[:0]
		if t := MetricType(f.Type); t != 0 {
			m = append(m, keyMDType)
			m = binary.AppendUvarint(m, t)
		}
		m = appendString(m, keyMDName, f.Name)
		if f.Help != "" {
			m = appendString(m, keyMDHelp, f.Help)
		}
		if f.Unit != "" {
			m = appendString(m, keyMDUnit, f.Unit)
		}
		b = appendBytes(b, keyMetadataV1, m)
	}
	return snappyEncode(b)
}
