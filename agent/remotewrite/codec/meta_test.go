package codec

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferry-agent/ferry/agent/remotewrite/codec/codectest"
	"github.com/ferry-agent/ferry/bench"
	"github.com/ferry-agent/ferry/buffer"
)

var metricTypes = map[string]model.MetricType{
	"counter": model.MetricTypeCounter, "gauge": model.MetricTypeGauge, "histogram": model.MetricTypeHistogram,
	"gaugehistogram": model.MetricTypeGaugeHistogram, "summary": model.MetricTypeSummary, "info": model.MetricTypeInfo,
	"stateset": model.MetricTypeStateset, "untyped": model.MetricTypeUnknown, "unknown": model.MetricTypeUnknown, "": model.MetricTypeUnknown,
}

// TestRequestV2CarriesMetadataAndStart: random series of every type, with
// and without help, unit and start time, some in two Metas in one request
// (a counter reset between two blocks), encoded as 2.0 and read back by
// Prometheus' own types as its handler reads them: every series has its
// type, help and unit, every sample its series' start time, and the
// _created series of counters, histograms and summaries are not sent.
func TestRequestV2CarriesMetadataAndStart(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	types := []string{"counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset", "untyped", "unknown", ""}
	for trial := range 50 {
		type want struct {
			meta    buffer.Meta
			samples int
		}
		var blocks []buffer.Block
		var wants []want // in the order the request holds them
		created := 0
		nSeries := 1 + rng.IntN(30)
		metas := make([]buffer.Meta, nSeries)
		lsets := make([]labels.Labels, nSeries)
		for s := range nSeries {
			fam := fmt.Sprintf("fam%d", s%7)
			m := buffer.Meta{Family: fam, Type: types[rng.IntN(len(types))]}
			if rng.IntN(3) > 0 {
				m.Help = fmt.Sprintf("Help of %s: ä \"quoted\" %d.", fam, s%7)
			}
			if rng.IntN(2) == 0 {
				m.Unit = []string{"seconds", "bytes"}[s%2]
			}
			if rng.IntN(2) == 0 {
				m.Start = 1_700_000_000_000 + rng.Int64N(1e9)
			}
			name := fam + []string{"_total", "_bucket", "", "_created", "_sum"}[rng.IntN(5)]
			lsets[s] = labels.FromStrings("__name__", name, "s", fmt.Sprint(s))
			metas[s] = m
		}
		expect := map[uint32]int{} // index into wants, by ref
		for b := range 1 + rng.IntN(3) {
			blk := buffer.Block{Seq: uint64(b + 1)}
			for s := range nSeries {
				m := metas[s]
				if b > 0 && m.Start != 0 && rng.IntN(4) == 0 {
					m.Start += 1000 // reset: another ref, another Meta
				}
				ref := uint32(s + 1 + 1000*b)
				if m == metas[s] {
					ref = uint32(s + 1)
				}
				ser := codectest.Series(ref, lsets[s], 1_800_000_000_000+int64(b)*15_000)
				ser.Meta = &m
				blk.Series = append(blk.Series, ser)
				isCreated := IsCreatedSeries(&Series{Labels: lsets[s], Meta: &m})
				if strings.HasSuffix(lsets[s].Get("__name__"), "_created") && (m.Type == "counter" || m.Type == "histogram" || m.Type == "summary") != isCreated {
					t.Fatalf("%s of a %s: IsCreatedSeries %v", lsets[s], m.Type, isCreated)
				}
				if isCreated {
					created++
					continue
				}
				if i, ok := expect[ref]; ok {
					wants[i].samples++
				} else {
					expect[ref] = len(wants)
					wants = append(wants, want{m, 1})
				}
			}
			blocks = append(blocks, blk)
		}
		series, n, _ := GroupBySeries(blocks, math.MinInt64)
		if c := CreatedSamples(series); c != created {
			t.Fatalf("trial %d: CreatedSamples %d, want %d", trial, c, created)
		}
		got, err := codectest.DecodeV2Series(marshalRequestV2(nil, series, nil))
		if err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		if len(got) != len(wants) {
			t.Fatalf("trial %d: %d TimeSeries, want %d", trial, len(got), len(wants))
		}
		total := 0
		for i, g := range got {
			w := wants[i]
			if g.Meta.Type != metricTypes[w.meta.Type] || g.Meta.Help != w.meta.Help || g.Meta.Unit != w.meta.Unit {
				t.Fatalf("trial %d: %s: metadata %+v, want %+v", trial, g.Labels, g.Meta, w.meta)
			}
			if len(g.Samples) != w.samples {
				t.Fatalf("trial %d: %s: %d samples, want %d", trial, g.Labels, len(g.Samples), w.samples)
			}
			for _, smp := range g.Samples {
				if smp.StartTimestamp != w.meta.Start {
					t.Fatalf("trial %d: %s: start %d, want %d", trial, g.Labels, smp.StartTimestamp, w.meta.Start)
				}
			}
			total += len(g.Samples)
		}
		if total+created != n {
			t.Fatalf("trial %d: %d samples sent and %d as start times, of %d", trial, total, created, n)
		}
	}
}

// typicalMeta gives the bench workload's series the metadata a device's
// collection has: node_exporter's help texts and types, the host's
// counters since boot starting at the boot time; the application's
// families, a help text each, counters without a start time (the
// Prometheus text format has no _created).
func typicalMeta(lset labels.Labels) buffer.Meta {
	name := lset.Get("__name__")
	// node_exporter's help texts, each family one (none names its family).
	helps := []string{
		"Seconds the CPUs spent in each mode.",
		"Memory information field MemAvailable_bytes.",
		"The total number of bytes read successfully.",
		"Network device statistic receive_packets.",
		"Total number of context switches.",
		"Number of processes blocked waiting for I/O to complete.",
		"Total seconds spent doing I/Os.",
		"1m load average.",
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	k := int(h.Sum32() % 1000)
	m := buffer.Meta{Family: name, Type: "gauge", Help: fmt.Sprintf("%s (%d)", helps[k%len(helps)], k)}
	if strings.HasSuffix(name, "_total") {
		m.Family, m.Type = strings.TrimSuffix(name, "_total"), "counter"
		if strings.HasPrefix(name, "node_cpu") {
			m.Start = 1_789_000_000_000
		}
	}
	if strings.HasSuffix(m.Family, "_bytes") {
		m.Unit = "bytes"
	}
	return m
}

// TestWireBytesV2WithMetadata: at the typical device's workload (800
// application series and the host's, a collection every 15 s), over a
// minute of requests as the live path sends them (one collection each; the
// first carries every series' type, help and unit, the next three none, as
// the sender's one-minute interval has it), 2.0 with metadata and start
// times takes less than 1.0, and at most 3% more than 2.0 did without them:
// the symbols, most used first, make up for most of the help texts.
func TestWireBytesV2WithMetadata(t *testing.T) {
	w := bench.NewWorkload(800, 1)
	var today, withMeta, v1, n int
	for k := range 4 {
		blk := buffer.Block{Seq: uint64(k + 1)}
		for i, lset := range w.Series {
			blk.Series = append(blk.Series, buffer.Series{Ref: uint32(i + 1), Labels: lset})
		}
		w.Next(func(i int, _ labels.Labels, v float64) {
			s := &blk.Series[i]
			s.T, s.V = append(s.T, 1_790_000_000_000+int64(k)*15000), append(s.V, v)
		})
		// Grouped before the metadata is set, on a copy: GroupBySeries
		// returns a single block's own Series.
		bare, samples, _ := GroupBySeries([]buffer.Block{{Seq: blk.Seq, Series: slices.Clone(blk.Series)}}, math.MinInt64)
		for i := range blk.Series {
			m := typicalMeta(blk.Series[i].Labels)
			blk.Series[i].Meta = &m
		}
		series, _, _ := GroupBySeries([]buffer.Block{blk}, math.MinInt64)
		noMeta := make([]bool, len(series))
		for i := range noMeta {
			noMeta[i] = k > 0
		}
		// Today's 2.0: labels only, symbols in order of first use.
		today += len(snappyEncode(marshalRequestV2FirstUse(bare)))
		withMeta += len(new(Encoder).Encode(series, Protocol2, noMeta))
		v1 += len(new(Encoder).Encode(bare, Protocol1, nil))
		n += samples
	}
	t.Logf("a minute, %d samples: 1.0 %.2f wire B/sample, 2.0 before metadata %.2f, 2.0 with metadata and start times %.2f (%+.1f%%)",
		n, float64(v1)/float64(n), float64(today)/float64(n), float64(withMeta)/float64(n), 100*float64(withMeta-today)/float64(today))
	if withMeta >= v1 || float64(withMeta) > 1.03*float64(today) {
		t.Errorf("2.0 with metadata takes %d bytes a minute, before %d, 1.0 %d", withMeta, today, v1)
	}
}

// marshalRequestV2FirstUse is the 2.0 encoding before metadata: symbols in
// order of first use, no metadata; the baseline of the wire bytes.
func marshalRequestV2FirstUse(series []*Series) []byte {
	index := map[string]uint32{"": 0}
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
