package exposition

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/ferry-agent/ferry/collectors"
)

// The differential tests parse the same body with this package and with
// Prometheus' parsers (model/textparse, the reference) and require the same
// outcome: the same accept or refuse decision and, when both accept, the
// same samples in the same order: label sets, values (bit for bit, every
// NaN being Prometheus' one NaN), timestamps, start times (textparse's
// StartTimestamp) and the family metadata that Prometheus' scrape loop
// gives a sample (its Help, Type and Unit entries, and the rule by which a
// sample is part of the family of the last metadata line).
//
// Intentional differences, each handled below where it arises:
//
//  1. Text format, a sample line indented with spaces or tabs: textparse
//     keeps the indentation in the metric name ("  foo"); ferry does not
//     (a name with leading blanks is no metric a receiver would want, and
//     Prometheus' own text exposition never indents). The reference's name
//     is compared with its leading blanks trimmed.
//  2. The start time of a "_created" sample itself is not compared: it
//     is the start of nothing (a sender leaves the sample out, IsCreated),
//     and textparse's answer depends on the lines after it.
//  3. A quoted metric name that is not the first item in the braces
//     (`{a="b","foo"} 1`): textparse's StartTimestamp slices the series at
//     the wrong offset (a wrong key, or a panic); such samples' start times
//     are not compared, and an input on which the reference panics is
//     skipped.
//  4. Metadata for a family whose HELP/TYPE/UNIT lines are not in a row
//     (HELP foo, TYPE bar, TYPE foo): Prometheus merges them all into
//     foo's entry; ferry starts a family afresh at a line for another name.
//     Samples after a family name's second, separate run of lines are not
//     compared for metadata.
//  5. "_created" samples of a counter, histogram or summary in OpenMetrics
//     belong to their family in ferry (Prometheus' rule leaves them out).
//  6. NUL bytes right after a label value's closing quote, or at the start
//     of the line after an OpenMetrics HELP line: textparse's lexer, which
//     passes over NULs inside label values and help texts, goes on passing
//     over them after the token's end and takes them into it, which shifts
//     the value (`a="x"<NUL>` gives a="x\""; the help text gets the newline).
//     ferry refuses such a body (a NUL is no token anywhere else); where
//     textparse accepts a body that ferry refuses and it has a NUL after a
//     quote or a newline, the comparison skips it.

type refSample struct {
	lset   labels.Labels
	t      int64
	hasT   bool
	v      uint64
	start  int64
	desc   *collectors.Desc
	noMeta bool // metadata not compared (difference 4)
	noST   bool // start time not compared (differences 2, 3)
}

type outcome struct {
	err     error
	samples []refSample
}

type refMeta struct {
	help, unit string
	typ        model.MetricType
	hasHelp    bool
}

func refType(t model.MetricType) collectors.Type {
	switch t {
	case model.MetricTypeCounter:
		return collectors.Counter
	case model.MetricTypeGauge:
		return collectors.Gauge
	case model.MetricTypeHistogram:
		return collectors.Histogram
	case model.MetricTypeGaugeHistogram:
		return collectors.GaugeHistogram
	case model.MetricTypeSummary:
		return collectors.Summary
	case model.MetricTypeInfo:
		return collectors.Info
	case model.MetricTypeStateset:
		return collectors.StateSet
	}
	return collectors.Untyped
}

// refParse parses body with textparse twice: once as Prometheus does
// without start times, where "_created" lines are samples, and once asking
// textparse for each sample's start time, which makes it pass over
// "_created" lines. The samples of the first get the start times of the
// second. panicked reports a panic of the reference (difference 3).
func refParse(body []byte, format Format) (o outcome, panicked bool) {
	o, panicked = refParse1(body, format, false)
	if panicked || o.err != nil || format != OpenMetrics {
		return o, panicked
	}
	withST, panicked := refParse1(body, format, true)
	if panicked {
		return o, true
	}
	j := 0
	for i := range o.samples {
		s := &o.samples[i]
		if j < len(withST.samples) && labels.Equal(withST.samples[j].lset, s.lset) && withST.samples[j].v == s.v {
			s.start = withST.samples[j].start
			j++
		} else {
			s.noST = true // a "_created" sample, which that pass does not see
		}
	}
	return o, false
}

func refParse1(body []byte, format Format, askST bool) (o outcome, panicked bool) {
	defer func() {
		if recover() != nil {
			panicked = true
		}
	}()
	body = bytes.Clone(body) // the text parser may append a newline
	var p textparse.Parser
	if format == OpenMetrics {
		p = textparse.NewOpenMetricsParser(body, labels.NewSymbolTable())
	} else {
		p = textparse.NewPromParser(body, labels.NewSymbolTable(), false)
	}
	metas := map[string]*refMeta{}
	var lastName string
	var last *refMeta
	runs := map[string]int{} // separate runs of metadata lines per name
	meta := func(name []byte) *refMeta {
		n := string(name)
		if n != lastName || last == nil {
			runs[n]++
		}
		m := metas[n]
		if m == nil {
			m = &refMeta{typ: model.MetricTypeUnknown}
			metas[n] = m
		}
		lastName, last = n, m
		return m
	}
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			return o, false
		}
		if err != nil {
			o.err = err
			return o, false
		}
		switch e {
		case textparse.EntryHelp:
			n, h := p.Help()
			m := meta(n)
			m.help, m.hasHelp = string(h), true
		case textparse.EntryType:
			n, t := p.Type()
			meta(n).typ = t
		case textparse.EntryUnit:
			n, u := p.Unit()
			meta(n).unit = string(u)
		case textparse.EntrySeries:
			series, ts, v := p.Series()
			var s refSample
			p.Labels(&s.lset)
			if ts != nil {
				s.t, s.hasT = *ts, true
			}
			s.v = math.Float64bits(v)
			name := s.lset.Get(labels.MetricName)
			if trimmed := strings.TrimLeft(name, " \t"); trimmed != name && (series[0] == ' ' || series[0] == '\t') { // difference 1
				// A ScratchBuilder: labels.Builder would drop empty values.
				var b labels.ScratchBuilder
				s.lset.Range(func(l labels.Label) {
					if l.Name == labels.MetricName {
						l.Value = trimmed
					}
					b.Add(l.Name, l.Value)
				})
				s.lset = b.Labels()
				name = trimmed
			}
			if askST {
				s.start = p.StartTimestamp()
			}
			created := strings.HasSuffix(name, "_created")
			quotedFirst := bytes.HasPrefix(series, []byte(`{"`))
			if created || (series[0] == '{' && !quotedFirst) {
				s.noST = true // differences 2, 3
			}
			if last != nil {
				typ := refType(last.typ)
				if partOfFamily([]byte(name), []byte(lastName), typ, format == OpenMetrics) {
					s.desc = &collectors.Desc{Name: lastName, Help: last.help, Type: typ, Unit: last.unit}
				}
				s.noMeta = runs[lastName] > 1
			}
			o.samples = append(o.samples, s)
		}
	}
}

// ourParse parses body with this package.
func ourParse(p *Parser, body []byte, format Format) outcome {
	var o outcome
	p.Reset(body, format)
	var b labels.ScratchBuilder
	for p.Next() {
		o.add(p, &b)
	}
	o.end(p)
	return o
}

// add records the parser's current sample.
func (o *outcome) add(p *Parser, b *labels.ScratchBuilder) {
	s := refSample{lset: p.Labels(b), v: math.Float64bits(p.Value()), desc: p.Desc()}
	s.t, s.hasT = p.Timestamp()
	o.samples = append(o.samples, s)
}

// end records the parse's error and its samples' start times.
func (o *outcome) end(p *Parser) {
	o.err = p.Err()
	for _, st := range p.Starts() {
		o.samples[st.Index].start = st.T
	}
}

// compare returns what differs between the reference's and our outcome of
// body; "" when nothing does or the reference panicked.
func compare(p *Parser, body []byte, format Format) string {
	ref, panicked := refParse(body, format)
	if panicked {
		return ""
	}
	our := ourParse(p, body, format)
	if ref.err == nil && our.err != nil && (bytes.Contains(body, []byte("\"\x00")) || bytes.Contains(body, []byte("\n\x00"))) {
		return "" // difference 6
	}
	if (ref.err == nil) != (our.err == nil) {
		return fmt.Sprintf("reference error %v, ferry error %v", ref.err, our.err)
	}
	if ref.err != nil {
		return ""
	}
	if len(ref.samples) != len(our.samples) {
		return fmt.Sprintf("reference %d samples, ferry %d", len(ref.samples), len(our.samples))
	}
	for i, r := range ref.samples {
		o := our.samples[i]
		switch {
		case !labels.Equal(r.lset, o.lset):
			return fmt.Sprintf("sample %d: reference labels %s, ferry %s", i, r.lset, o.lset)
		case r.v != o.v:
			return fmt.Sprintf("sample %d %s: reference value %x, ferry %x", i, r.lset, r.v, o.v)
		case r.hasT != o.hasT || r.t != o.t:
			return fmt.Sprintf("sample %d %s: reference timestamp %v %d, ferry %v %d", i, r.lset, r.hasT, r.t, o.hasT, o.t)
		case !r.noST && r.start != o.start:
			return fmt.Sprintf("sample %d %s: reference start %d, ferry %d", i, r.lset, r.start, o.start)
		case !r.noMeta && !sameDesc(r.desc, o.desc):
			return fmt.Sprintf("sample %d %s: reference family %+v, ferry %+v", i, r.lset, r.desc, o.desc)
		}
	}
	return ""
}

func sameDesc(a, b *collectors.Desc) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Name == b.Name && a.Help == b.Help && a.Type == b.Type && a.Unit == b.Unit
}
