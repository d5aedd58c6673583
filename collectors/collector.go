// Package collectors defines what a source of samples is, and the types that
// carry a collection from a source to the agent.
package collectors

import (
	"context"

	"github.com/prometheus/prometheus/model/labels"
)

// Type is a metric family's type, as written after "# TYPE".
type Type string

// The types that host collectors and scrape targets produce: the text
// format's and OpenMetrics' (whose "unknown" is the text format's untyped).
const (
	Counter        Type = "counter"
	Gauge          Type = "gauge"
	Untyped        Type = "untyped"
	Histogram      Type = "histogram"
	GaugeHistogram Type = "gaugehistogram"
	Summary        Type = "summary"
	Info           Type = "info"
	StateSet       Type = "stateset"
)

// Desc describes one metric family: node_exporter's name, help text, type,
// unit and the names of its variable labels, in the order Add takes their
// values. A Desc is shared by every sample of its family and never changed
// once a sample points to it.
type Desc struct {
	Name       string
	Help       string
	Type       Type
	Unit       string // OpenMetrics' UNIT ("seconds", "bytes"); "" when not given
	LabelNames []string
}

// NewDesc returns a Desc. It exists so that collectors read like
// node_exporter's: one var block of descriptors at the top of each file.
func NewDesc(name, help string, typ Type, labelNames ...string) *Desc {
	return &Desc{Name: name, Help: help, Type: typ, LabelNames: labelNames}
}

// Sample is one value of one series. T is in milliseconds since the epoch;
// 0 means "at the time of the collection", filled in by the agent.
type Sample struct {
	Labels labels.Labels
	T      int64
	V      float64
	// Desc is the sample's family (type, help, unit); nil when unknown
	// (a scrape target without TYPE or HELP lines).
	Desc *Desc
	// Start is when the series started counting from zero (a counter's,
	// histogram's or summary's created timestamp), in milliseconds since
	// the epoch; 0 when unknown.
	Start int64
	// Memo, when not nil, is the consumer's note on the sample's series,
	// kept by a collector that caches its series (a scraper) for as long
	// as it keeps the series: every sample of the series has the same
	// Memo until then.
	Memo *Memo
}

// Memo is a consumer's note on one series of a collector: the agent keeps
// there what it made of the series' labels, which it then finds without a
// lookup of its own. The collector only holds it; Note is the consumer's,
// read and written by one collection at a time.
type Memo struct{ Note any }

// Collection gathers the samples of one collection run, with the metadata of
// their families for the text exposition. It is not safe for concurrent use.
type Collection struct {
	Samples  []Sample
	Families []*Desc // in the order first added

	seen    map[string]bool
	builder labels.ScratchBuilder
}

// Add records a sample of a family described by d. labelValues are matched
// to d.LabelNames by position. An empty value means no such label, as in
// Prometheus (node_os_info{id_like=""} is stored without id_like) and in
// remote write, which forbids empty values.
func (c *Collection) Add(d *Desc, value float64, labelValues ...string) {
	c.noteFamily(d)
	c.builder.Reset()
	c.builder.Add(labels.MetricName, d.Name)
	for i, name := range d.LabelNames {
		if i < len(labelValues) && labelValues[i] != "" {
			c.builder.Add(name, labelValues[i])
		}
	}
	c.builder.Sort()
	c.Samples = append(c.Samples, Sample{Labels: c.builder.Labels(), V: value, Desc: d})
}

// AddSample records a sample that already has its full label set (including
// __name__), such as one parsed from a scrape target. d may be nil when the
// family's metadata is unknown; s.Desc is set to d. Labels with empty values
// are left out: remote write forbids them, and Prometheus treats them as
// absent.
func (c *Collection) AddSample(d *Desc, s Sample) {
	if d != nil {
		c.noteFamily(d)
	}
	s.Desc = d
	if hasEmptyValue(s.Labels) {
		// An empty value means no label, as in Add.
		s.Labels = dropEmptyValues(s.Labels)
	}
	c.Samples = append(c.Samples, s)
}

func hasEmptyValue(lset labels.Labels) bool {
	empty := false
	lset.Range(func(l labels.Label) { empty = empty || l.Value == "" })
	return empty
}

func dropEmptyValues(lset labels.Labels) labels.Labels {
	var b labels.ScratchBuilder
	lset.Range(func(l labels.Label) {
		if l.Value != "" {
			b.Add(l.Name, l.Value)
		}
	})
	return b.Labels()
}

func (c *Collection) noteFamily(d *Desc) {
	if c.seen == nil {
		c.seen = make(map[string]bool)
	}
	if !c.seen[d.Name] {
		c.seen[d.Name] = true
		c.Families = append(c.Families, d)
	}
}

// Collector is a source of samples: a host collector, a scrape target, or
// ferry's own metrics. Collect appends one collection to c. A collector that
// fails part-way returns an error; the samples it added are still used.
type Collector interface {
	Collect(ctx context.Context, c *Collection) error
}

// Entry names a collector, says whether it is on without flags, and builds it.
type Entry struct {
	Name           string
	Help           string
	DefaultEnabled bool
	New            func(Paths) Collector
}

// Paths are the roots that host collectors read, so tests can point them at
// fixture trees instead of the live system.
type Paths struct {
	ProcFS string // default /proc
	SysFS  string // default /sys
	RootFS string // default /: the root of /etc/os-release and of mount points
}
