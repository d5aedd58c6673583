// Package codectest holds what the tests of the remote-write packages
// share: series fixtures and a 2.0 decoder held to the spec. For tests
// only: it links Prometheus' generated protobuf types, which the agent
// itself does without.
package codectest

import (
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/ferry-agent/ferry/buffer"
)

// Label sets of the fixtures: a gauge, a counter with more labels, and a
// scrape target's up.
var (
	LabelsA = labels.FromStrings("__name__", "node_load1", "job", "node", "instance", "pi:9100")
	LabelsB = labels.FromStrings("__name__", "node_cpu_seconds_total", "cpu", "0", "mode", "user", "job", "node")
	LabelsC = labels.FromStrings("__name__", "up", "job", "app", "instance", "localhost:8080")
)

// Series returns a buffer series with samples at ts, each valued t/10, so
// that a sample's value tells which timestamp it belongs to.
func Series(ref uint32, lset labels.Labels, ts ...int64) buffer.Series {
	s := buffer.Series{Ref: ref, Labels: lset, T: ts}
	for _, t := range ts {
		s.V = append(s.V, float64(t)/10)
	}
	return s
}

// Blocks returns two blocks with the values an encoder gets wrong most
// easily: infinities, tiny and negative values, a NaN with a payload (like
// Prometheus' stale marker), refs out of order, a series in both blocks.
// Each call returns new slices.
func Blocks() []buffer.Block {
	return []buffer.Block{
		{Seq: 1, Series: []buffer.Series{
			{Ref: 7, Labels: LabelsA, T: []int64{1000, 2000}, V: []float64{0.5, math.Inf(1)}},
			{Ref: 3, Labels: LabelsB, T: []int64{1000}, V: []float64{-3}},
		}},
		{Seq: 2, Series: []buffer.Series{
			{Ref: 3, Labels: LabelsB, T: []int64{3000}, V: []float64{1e-300}},
			{Ref: 9, Labels: LabelsC, T: []int64{3000, 4000}, V: []float64{math.Float64frombits(0x7ff0000000000002), 0}},
		}},
	}
}

// DecodeV2 reads an uncompressed v2 request with Prometheus' generated
// types and checks what the spec asks of its symbols and label references;
// it returns each series' samples keyed by its labels' String. A label set
// in two TimeSeries is an error: use DecodeV2Series for requests that may
// hold a series twice, with two metadata or start times.
func DecodeV2(raw []byte) (map[string][]writev2.Sample, error) {
	all, err := DecodeV2Series(raw)
	if err != nil {
		return nil, err
	}
	out := map[string][]writev2.Sample{}
	for _, s := range all {
		if _, dup := out[s.Labels.String()]; dup {
			return nil, fmt.Errorf("%s in two TimeSeries", s.Labels)
		}
		out[s.Labels.String()] = s.Samples
	}
	return out, nil
}

// V2Series is one TimeSeries of a 2.0 request, as Prometheus' types and
// its remote-write handler read it.
type V2Series struct {
	Labels  labels.Labels
	Meta    metadata.Metadata // type (unknown when unspecified), help, unit
	Samples []writev2.Sample  // with their start timestamps
}

// DecodeV2Series is DecodeV2 returning every TimeSeries in order, with its
// metadata.
func DecodeV2Series(raw []byte) ([]V2Series, error) {
	var req writev2.Request
	if err := req.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("not an io.prometheus.write.v2.Request: %w", err)
	}
	if len(req.Symbols) == 0 || req.Symbols[0] != "" {
		return nil, fmt.Errorf("symbols must start with the empty string: %q", req.Symbols[:min(3, len(req.Symbols))])
	}
	seen := map[string]bool{}
	for _, s := range req.Symbols {
		if seen[s] {
			return nil, fmt.Errorf("symbol %q twice", s)
		}
		seen[s] = true
	}
	var out []V2Series
	b := labels.NewScratchBuilder(8)
	for _, ts := range req.Timeseries {
		if len(ts.LabelsRefs)%2 != 0 {
			return nil, fmt.Errorf("odd number of label refs: %v", ts.LabelsRefs)
		}
		lset, err := ts.ToLabels(&b, req.Symbols)
		if err != nil {
			return nil, err
		}
		var names []string
		var bad error
		lset.Range(func(l labels.Label) {
			if l.Name == "" || l.Value == "" {
				bad = fmt.Errorf("empty label name or value in %s", lset)
			}
			names = append(names, l.Name)
		})
		if bad != nil {
			return nil, bad
		}
		// ToLabels sorts; the refs must already be in that order.
		for i := 0; i < len(ts.LabelsRefs); i += 2 {
			if req.Symbols[ts.LabelsRefs[i]] != names[i/2] {
				return nil, fmt.Errorf("labels of %s not sorted by name in labels_refs", lset)
			}
		}
		if len(ts.Samples) == 0 || len(ts.Histograms) != 0 || len(ts.Exemplars) != 0 {
			return nil, fmt.Errorf("%s: %d samples, %d histograms, %d exemplars", lset, len(ts.Samples), len(ts.Histograms), len(ts.Exemplars))
		}
		m, err := ts.ToMetadata(req.Symbols)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", lset, err)
		}
		out = append(out, V2Series{Labels: lset, Meta: m, Samples: ts.Samples})
	}
	return out, nil
}
