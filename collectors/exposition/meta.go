package exposition

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"github.com/ferry-agent/ferry/collectors"
)

func validUTF8(b []byte) bool { return utf8.Valid(b) }

// A HELP, TYPE or UNIT line names a family. Lines for one name in a row
// describe one family; a line for another name starts the next. A sample
// belongs to the family of the last such line when its name is the
// family's, or the family's with a suffix that the type gives its series
// (Prometheus' rule, plus OpenMetrics' "_created").

func (p *Parser) metaLine(name []byte) {
	p.endRun()
	if !p.fam.set || !bytes.Equal(p.fam.name, name) {
		p.fam = family{set: true, name: name}
	}
	p.fam.desc = nil
}

func (p *Parser) setHelp(name, help []byte) {
	p.metaLine(name)
	p.fam.help, p.fam.hasHelp = help, true
}

func (p *Parser) setType(name []byte, t collectors.Type) {
	p.metaLine(name)
	p.fam.typ = t
	p.lastType = t
}

func (p *Parser) setUnit(name, unit []byte) {
	p.metaLine(name)
	p.fam.unit = unit
}

// Desc is the family of the current sample, or nil when it has none. The
// same *Desc comes back for every sample of a family, and across bodies
// while the family's help, type and unit stay the same. The caller must
// not change it.
func (p *Parser) Desc() *collectors.Desc {
	if !p.fam.set {
		return nil
	}
	typ := p.fam.typ
	if typ == "" {
		typ = collectors.Untyped
	}
	if !partOfFamily(p.name(), p.fam.name, typ, p.format == OpenMetrics) {
		return nil
	}
	if p.fam.desc == nil {
		p.fam.desc = p.lookupDesc(typ)
	}
	return p.fam.desc
}

func (p *Parser) lookupDesc(typ collectors.Type) *collectors.Desc {
	help := p.fam.help
	if bytes.IndexByte(help, '\\') >= 0 {
		p.scratch = unescape(p.scratch[:0], help, p.format == Text)
		help = p.scratch
	}
	if p.descs == nil {
		p.descs = map[string]*descEntry{}
	}
	e := p.descs[string(p.fam.name)]
	if e == nil {
		e = &descEntry{}
		p.descs[string(p.fam.name)] = e
	}
	// Usually one family per name; a body may have two (client_golang's
	// OpenMetrics has go_memstats_alloc_bytes a gauge and a counter).
	for i, d := range e.descs {
		if d.Help == string(help) && d.Type == typ && d.Unit == string(p.fam.unit) {
			e.gens[i] = p.gen
			return d
		}
	}
	d := &collectors.Desc{Name: string(p.fam.name), Help: string(help), Type: typ, Unit: string(p.fam.unit)}
	e.descs, e.gens = append(e.descs, d), append(e.gens, p.gen)
	return d
}

// partOfFamily reports whether a sample named name belongs to the family
// named family of type typ. "_created" series belong to their family only
// in OpenMetrics: the text format has no such convention, and a target's
// "foo_created" there is a series of its own.
func partOfFamily(name, family []byte, typ collectors.Type, openMetrics bool) bool {
	if !bytes.HasPrefix(name, family) {
		return false
	}
	if len(name) == len(family) {
		return true
	}
	f := family
	var suffixes *[3]string
	switch typ {
	case collectors.Counter:
		f = bytes.TrimSuffix(f, []byte("_total"))
		suffixes = &counterSuffixes
	case collectors.Histogram:
		suffixes = &histogramSuffixes
	case collectors.GaugeHistogram:
		suffixes = &gaugeHistogramSuffixes
	case collectors.Summary:
		suffixes = &summarySuffixes
	case collectors.Info:
		f = bytes.TrimSuffix(f, []byte("_info"))
		suffixes = &infoSuffixes
	default:
		return false // only the name itself
	}
	if openMetrics && startType(typ) {
		if base, ok := bytes.CutSuffix(name, []byte("_created")); ok {
			return bytes.Equal(base, f)
		}
	}
	for _, s := range suffixes {
		if s == "" {
			break
		}
		if base, ok := bytes.CutSuffix(name, []byte(s)); ok {
			return bytes.Equal(base, f)
		}
	}
	return false
}

// The suffixes of a family's series by type, as Prometheus' scrape loop
// cuts them (in this order).
var (
	counterSuffixes        = [3]string{"_total"}
	histogramSuffixes      = [3]string{"_bucket", "_sum", "_count"}
	gaugeHistogramSuffixes = [3]string{"_bucket", "_gsum", "_gcount"}
	summarySuffixes        = [3]string{"_sum", "_count"}
	infoSuffixes           = [3]string{"_info"}
)

// startType reports whether a family of type t has start times
// ("_created" lines), as Prometheus reads OpenMetrics.
func startType(t collectors.Type) bool {
	return t == collectors.Counter || t == collectors.Histogram || t == collectors.Summary
}

// IsCreated reports whether a sample named name of the family d is an
// OpenMetrics "_created" sample: the start time of its family's series
// (Sample.Start of those), which remote write 2.0 sends as their start
// timestamp rather than as a series. Only the OpenMetrics parser gives such
// samples a Desc of a counter, histogram or summary family; in the text
// format a "foo_created" series is a series of its own (Desc nil, or its
// own family's).
func IsCreated(name string, d *collectors.Desc) bool {
	if d == nil || !startType(d.Type) {
		return false
	}
	base, ok := strings.CutSuffix(name, "_created")
	if !ok {
		return false
	}
	f := d.Name
	if d.Type == collectors.Counter {
		f = strings.TrimSuffix(f, "_total")
	}
	return base == f
}

// Start times. OpenMetrics writes a series' start time after its samples:
// "foo_total{a="1"} 5", then "foo_created{a="1"} 1.7e9". Prometheus pairs
// a sample of a counter, histogram or summary (the type of the last TYPE
// line) with the first "_created" line after it, up to the next HELP, TYPE
// or UNIT line: the pair holds when that line's name without "_created" and
// its labels (le and quantile aside) are the sample's family name and
// labels; else the sample has none. It also remembers the last pair that
// held, and gives its start time to a later sample of the same key without
// looking ahead. ferry reads forward only, so it keeps the samples waiting
// for their "_created" line (a few: those of one series), and decides for
// them in order when the line comes, or none does, with the same outcome.

type pendingStart struct {
	index int
	key   uint64
	noKey bool // the name is shorter than the family's: never paired
}

// noteSample records the current sample (the p.count-th) for start times.
func (p *Parser) noteSample() {
	if p.format != OpenMetrics {
		return
	}
	if !startType(p.lastType) {
		p.stKey = 0
		return
	}
	name := p.name()
	if base, ok := bytes.CutSuffix(name, []byte("_created")); ok {
		key := p.hashKey(base)
		p.resolve(key, int64(p.val*1000), true)
		return
	}
	if len(name) < len(p.fam.name) || !p.fam.set {
		p.pending = append(p.pending, pendingStart{index: p.count, noKey: true})
		return
	}
	p.pending = append(p.pending, pendingStart{index: p.count, key: p.hashKey(name[:len(p.fam.name)])})
}

// endRun decides for the samples still waiting: no "_created" line came.
func (p *Parser) endRun() { p.resolve(0, 0, false) }

// resolve decides, in order, for the samples waiting when a "_created" line
// of key and start time t comes (found), or when none can come any more.
func (p *Parser) resolve(key uint64, t int64, found bool) {
	for _, w := range p.pending {
		var st int64
		switch {
		case !w.noKey && p.stKey != 0 && w.key == p.stKey && p.stT > 0:
			st = p.stT
		case found && !w.noKey && w.key == key:
			st, p.stKey, p.stT = t, key, t
		default:
			p.stKey = 0
		}
		if st != 0 {
			p.starts = append(p.starts, Start{Index: w.index, T: st})
		}
	}
	p.pending = p.pending[:0]
}
