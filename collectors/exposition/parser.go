// Package exposition parses the two text formats that scrape targets answer
// in: the Prometheus text format 0.0.4 and OpenMetrics 1.0.0 text. It is
// ferry's own parser, shaped for the scraper's hot path: Next walks the
// samples of a body without allocating, a sample's series text (its name and
// labels as the target wrote them) is a key for a cache of label sets,
// labels are built only when the caller asks for them, and the labels of a
// series the caller knows (Known) are not even read. ParseFrom parses a
// body as it arrives, in windows, so that a scraper never holds it whole.
//
// What it accepts and refuses follows Prometheus' parsers of the same
// formats (model/textparse), which the tests compare it with on a corpus and
// under fuzzing; where it differs on purpose, diff_test.go says so.
//
// Metadata: each sample points to the collectors.Desc of its family (the
// name of the last HELP, TYPE or UNIT line, when the sample's name is that
// name or that name with one of the type's suffixes, as Prometheus decides)
// or to nil. OpenMetrics' "_created" lines give the start time of the
// series of their family (Starts). A "_created" sample is still a sample;
// IsCreated tells it apart, for a sender that should leave it out.
package exposition

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferry-agent/ferry/collectors"
)

// Format is an exposition format.
type Format uint8

const (
	Text        Format = iota // the Prometheus text format 0.0.4
	OpenMetrics               // OpenMetrics 1.0.0 text
)

// normalNaN is the NaN that every parsed NaN value becomes (Prometheus'
// value.NormalNaN): one bit pattern whatever the target wrote.
const normalNaN uint64 = 0x7ff8000000000001

// Start is the start time (a "_created" line's value) of the sample that
// Next returned as the Index-th sample (from 0) of the body.
type Start struct {
	Index int
	T     int64 // milliseconds since the epoch
}

// Parser parses one body at a time. Reset starts a body; the zero Parser is
// ready for Reset. A Parser keeps the Descs of the families it saw in the
// previous body and hands the same *Desc out again while a family's help,
// type and unit do not change, so a target scraped with one Parser costs no
// allocation per family in the steady state. It is not safe for concurrent
// use.
type Parser struct {
	// Known, when set, is asked about a sample's series text in the text
	// format before its labels are read. True says that the caller has
	// the text's label set from an earlier sample of the same format
	// (where Next checked the labels): they are neither checked again nor
	// kept, and Labels must not be called for the sample. The text is a
	// view of the body.
	Known func(series []byte) bool

	b      []byte
	i      int
	format Format
	err    error
	done   bool

	// Reading a body in windows (ParseFrom): final says that b ends the
	// body; more, that Next stopped at unit, the start of a line that b
	// may end before the body does, to go on in the next window.
	final      bool
	more       bool
	unit       int
	window     []byte    // ParseFrom's memory, kept from one body to the next
	windowSize int       // its size; 0: defaultWindow (tests make it small)
	famMem     [2][]byte // the family's name, help and unit once their window moved on, alternately

	// The current sample.
	series    []byte // name and labels as written: a key for the label set
	seriesAt  int    // offset of series in b
	nameAt    int    // the name's offsets in b, as written (escaped when quoted)
	nameEnd   int
	nameQuote bool   // the name was quoted: unescape it
	lbls      []span // name, value, name, value, ... as written, without quotes
	moreLbls  int    // labels of the line beyond maxLabels: counted, not kept
	maxLabels int    // LimitLabels'
	val       float64
	ts        int64
	hasTS     bool
	count     int // samples returned so far

	// Metadata: the family of the last HELP, TYPE or UNIT line, and the type
	// of the last TYPE line (Prometheus' parsers apply it to le and quantile
	// labels and to "_created" lines even after other families' HELP lines).
	fam      family
	lastType collectors.Type
	descs    map[string]*descEntry
	gen      uint64 // counts Resets
	scratch  []byte

	// OpenMetrics' start times (see meta.go).
	pending []pendingStart
	stKey   uint64
	stT     int64
	starts  []Start
	keyBuf  []byte
	lblBuf  []byte // Labels' unescaped text
}

type span struct {
	start, end int
	quoted     bool // a quoted label name (text between quotes) or any label value
}

type family struct {
	set     bool
	name    []byte
	help    []byte // as written
	hasHelp bool
	typ     collectors.Type // "" when no TYPE line
	unit    []byte
	desc    *collectors.Desc // resolved from the above; nil until a sample needs it
}

// descEntry holds the Descs of one family name and the last body (Reset's
// count) that used each.
type descEntry struct {
	descs []*collectors.Desc
	gens  []uint64
}

// Reset starts parsing body in format f. The parser keeps references into
// body until Next returns false; body must not change meanwhile.
func (p *Parser) Reset(body []byte, f Format) {
	p.b, p.i, p.format, p.err, p.done = body, 0, f, nil, false
	p.final, p.more, p.unit = true, false, 0
	p.series, p.lbls, p.moreLbls, p.count = nil, p.lbls[:0], 0, 0
	p.fam = family{}
	p.lastType = ""
	p.pending, p.starts, p.stKey, p.stT = p.pending[:0], p.starts[:0], 0, 0
	// Forget the Descs of families that the previous body did not have.
	for k, e := range p.descs {
		n := 0
		for i, d := range e.descs {
			if e.gens[i] == p.gen {
				e.descs[n], e.gens[n] = d, e.gens[i]
				n++
			}
		}
		clear(e.descs[n:])
		e.descs, e.gens = e.descs[:n], e.gens[:n]
		if n == 0 {
			delete(p.descs, k)
		}
	}
	p.gen++
}

// LimitLabels makes the parser keep at most n labels of a series and only
// count the rest (LabelCount), so that a line of a million labels costs no
// memory per label; Labels is then incomplete, and the caller refuses the
// series. 0: no limit. It holds until changed, across Resets.
func (p *Parser) LimitLabels(n int) { p.maxLabels = n }

// LabelCount is the number of labels of the current sample's series,
// __name__ included, kept or not (LimitLabels).
func (p *Parser) LabelCount() int { return 1 + len(p.lbls)/2 + p.moreLbls }

// keepLabel appends a label's spans unless LimitLabels' bound is reached.
func (p *Parser) keepLabel(n, v span) {
	if p.maxLabels > 0 && len(p.lbls)/2 >= p.maxLabels {
		p.moreLbls++
		return
	}
	p.lbls = append(p.lbls, n, v)
}

// Err is the error that ended the parse, or nil when Next returned false at
// the end of the body.
func (p *Parser) Err() error { return p.err }

// Series is the current sample's name and labels as the target wrote them:
// two samples with the same series text have the same label set within one
// format (the caller keeps the cache apart per format). It is a view of the
// body.
func (p *Parser) Series() []byte { return p.series }

// Value is the current sample's value; every NaN has the same bits.
func (p *Parser) Value() float64 { return p.val }

// Timestamp is the current sample's timestamp in milliseconds, if it has one.
func (p *Parser) Timestamp() (int64, bool) {
	if !p.hasTS {
		return 0, false
	}
	return p.ts, true
}

// Starts lists the samples of the body that have a start time, in the order
// of their "_created" lines. It is complete once Next has returned false;
// it is valid until Reset.
func (p *Parser) Starts() []Start { return p.starts }

func (p *Parser) fail(format string, args ...any) bool {
	p.err = fmt.Errorf(format, args...)
	p.done = true
	return false
}

// Next advances to the next sample. It returns false at the end of the body
// or at the first error (Err).
func (p *Parser) Next() bool {
	if p.done {
		return false
	}
	var ok bool
	if p.format == OpenMetrics {
		ok = p.nextOM()
	} else {
		ok = p.nextText()
	}
	if !ok {
		if !p.final && (p.more || p.err != nil) {
			// The window may end inside the line at unit: it is read
			// again, whole, from the next window.
			p.err, p.done, p.more, p.i = nil, false, true, p.unit
			p.keepFamily()
			return false
		}
		if p.err == nil {
			p.endRun()
		}
		// Let go of the body: a Parser kept per target between scrapes
		// would hold it otherwise.
		p.b, p.series, p.fam = nil, nil, family{}
		p.done = true
		return false
	}
	p.noteSample()
	p.count++
	return true
}

// context quotes the line from start, up to 200 bytes, for errors.
func (p *Parser) context(start int) string {
	return strconv.Quote(string(p.b[start:min(p.lineEnd(start), start+200)]))
}

func isNameStart(c byte) bool {
	return c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isNameChar(c byte) bool { return isNameStart(c) || '0' <= c && c <= '9' }

func isLabelStart(c byte) bool { return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func isLabelChar(c byte) bool { return isLabelStart(c) || '0' <= c && c <= '9' }

// metricName reads [a-zA-Z_:][a-zA-Z0-9_:]* at i; it returns i if none.
func (p *Parser) metricName(i int) int {
	if i >= len(p.b) || !isNameStart(p.b[i]) {
		return i
	}
	for i++; i < len(p.b) && isNameChar(p.b[i]); i++ {
	}
	return i
}

func (p *Parser) labelName(i int) int {
	if i >= len(p.b) || !isLabelStart(p.b[i]) {
		return i
	}
	for i++; i < len(p.b) && isLabelChar(p.b[i]); i++ {
	}
	return i
}

// quoted reads a double-quoted string at b[i] == '"', a backslash escaping
// the next byte but a newline; raw newlines are allowed when multiline. As
// in Prometheus' lexer, NUL bytes pass unseen in a label value (value: they
// stay in the value but escape nothing) and end any other quoted string
// (a name) in error. It returns the index after the closing quote, or -1.
func (p *Parser) quoted(i int, multiline, value bool) int {
	escaped := false
	for i++; i < len(p.b); i++ {
		c := p.b[i]
		switch {
		case c == 0:
			if !value {
				return -1
			}
		case escaped:
			if c == '\n' {
				return -1
			}
			escaped = false
		case c == '"':
			return i + 1
		case c == '\\':
			escaped = true
		case c == '\n' && !multiline:
			return -1
		}
	}
	return -1
}

// parseFloat parses a value as Prometheus does: Go's syntax without hex
// floats' exponents or digit separators.
func parseFloat(b []byte) (float64, error) {
	if f, ok := parseDecimal(b); ok {
		return f, nil
	}
	if bytes.ContainsAny(b, "pP_") {
		return 0, errors.New("unsupported character in float")
	}
	return strconv.ParseFloat(string(b), 64) // no allocation: the conversion does not escape
}

// Labels builds the current sample's label set, __name__ included, sorted,
// with b as scratch space. Escapes are resolved; le and quantile values of
// histograms and summaries are written as OpenMetrics floats ("1" becomes
// "1.0"), as Prometheus stores them. Label names may repeat: the caller
// checks. The label set is the one allocation (and a string per le or
// quantile value that changes).
func (p *Parser) Labels(b *labels.ScratchBuilder) labels.Labels {
	// Unescaped text goes to one buffer; a string into it stays valid when
	// a later append moves the buffer (the old array lives on).
	p.lblBuf = p.lblBuf[:0]
	text := func(start, end int, quoted bool) string {
		t := p.b[start:end]
		if quoted && bytes.IndexByte(t, '\\') >= 0 {
			from := len(p.lblBuf)
			p.lblBuf = unescape(p.lblBuf, t, false)
			t = p.lblBuf[from:]
		}
		return str(t)
	}
	b.Reset()
	b.Add(labels.MetricName, text(p.nameAt, p.nameEnd, p.nameQuote))
	for j := 0; j < len(p.lbls); j += 2 {
		n, v := p.lbls[j], p.lbls[j+1]
		name := text(n.start, n.end, n.quoted)
		value := text(v.start, v.end, true)
		if (p.lastType == collectors.Summary && name == "quantile") || (p.lastType == collectors.Histogram && name == "le") {
			if f, err := strconv.ParseFloat(value, 64); err == nil {
				value = labels.FormatOpenMetricsFloat(f)
			}
		}
		b.Add(name, value)
	}
	b.Sort()
	return b.Labels()
}

// name is the current sample's name as written (escaped when quoted).
func (p *Parser) name() []byte { return p.b[p.nameAt:p.nameEnd] }

// unescape appends t to dst with \" (unless helpText: the text format's
// HELP escapes only these two), \\ and \n resolved; any other backslash
// stays.
func unescape(dst, t []byte, helpText bool) []byte {
	for k := 0; k < len(t); k++ {
		c := t[k]
		if c == '\\' && k+1 < len(t) {
			switch t[k+1] {
			case '\\':
				dst = append(dst, '\\')
				k++
				continue
			case 'n':
				dst = append(dst, '\n')
				k++
				continue
			case '"':
				if !helpText {
					dst = append(dst, '"')
					k++
					continue
				}
			}
		}
		dst = append(dst, c)
	}
	return dst
}

// checkValue makes sure a label value is valid UTF-8, as Prometheus'
// parsers do (names are checked by the caller).
func (p *Parser) checkValue(v span) bool {
	if !utf8.Valid(p.b[v.start:v.end]) {
		return p.fail("invalid UTF-8 label value: %q", p.b[v.start:v.end])
	}
	return true
}

// value parses a sample value and makes NaN canonical.
func (p *Parser) value(b []byte, start int) bool {
	v, err := parseFloat(b)
	if err != nil {
		return p.fail("%v while parsing: %s", err, p.context(start))
	}
	if math.IsNaN(v) {
		v = math.Float64frombits(normalNaN)
	}
	p.val = v
	return true
}

// hashKey hashes a series' labels (without le for a histogram, quantile
// for a summary) and the name of its family, to pair a series with its
// "_created" line.
func (p *Parser) hashKey(name []byte) uint64 {
	k := p.keyBuf[:0]
	for j := 0; j < len(p.lbls); j += 2 {
		n, v := p.b[p.lbls[j].start:p.lbls[j].end], p.b[p.lbls[j+1].start:p.lbls[j+1].end]
		if p.lastType == collectors.Histogram && string(n) == "le" || p.lastType == collectors.Summary && string(n) == "quantile" {
			continue
		}
		k = append(k, n...)
		k = append(k, 0xff) // never in UTF-8: names and values cannot run together
		k = append(k, v...)
		k = append(k, 0xff)
	}
	k = append(k, name...)
	p.keyBuf = k
	return xxhash.Sum64(k)
}
