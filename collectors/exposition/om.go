package exposition

import (
	"math"

	"github.com/ferry-agent/ferry/collectors"
)

// OpenMetrics 1.0.0 text: one space between tokens and none elsewhere, no
// blank lines, no comments but HELP, TYPE, UNIT and the final "# EOF",
// timestamps in (float) seconds, exemplars after " # ".

func (p *Parser) nextOM() bool {
	for {
		i := p.i
		p.unit = i
		if i >= len(p.b) {
			return p.fail("data does not end with # EOF")
		}
		switch c := p.b[i]; {
		case c == '#':
			if i+1 >= len(p.b) || p.b[i+1] != ' ' {
				return p.fail("expected a valid start token: %s", p.context(i))
			}
			if !p.omComment(i) {
				return false
			}
			if p.done {
				return false // # EOF
			}
		case c == '{' || isNameStart(c):
			return p.omSeries(i)
		default:
			return p.fail("expected a metric name, a '{' or a comment, got %q: %s", c, p.context(i))
		}
	}
}

func (p *Parser) hasPrefix(i int, s string) bool {
	return len(p.b)-i >= len(s) && string(p.b[i:i+len(s)]) == s
}

// skipNULs passes over NUL bytes at i.
func (p *Parser) skipNULs(i int) int {
	for i < len(p.b) && p.b[i] == 0 {
		i++
	}
	return i
}

// omKeyword matches word at i as Prometheus' lexer does inside a comment:
// NUL bytes after its first byte, and right after it, pass unseen. It
// returns the index after it, or -1.
func (p *Parser) omKeyword(i int, word string) int {
	for k := 0; k < len(word); k++ {
		if k > 0 {
			i = p.skipNULs(i)
		}
		if i >= len(p.b) || p.b[i] != word[k] {
			return -1
		}
		i++
	}
	return p.skipNULs(i)
}

// omComment reads "# EOF", "# HELP", "# TYPE" or "# UNIT" at i.
func (p *Parser) omComment(i int) bool {
	j := i + 2
	if k := p.omKeyword(j, "EOF"); k >= 0 {
		if !p.final {
			p.more = true // what comes after it is only known at the body's end
			return false
		}
		if k < len(p.b) && p.b[k] == '\n' {
			k = p.skipNULs(k + 1)
		}
		if k != len(p.b) {
			return p.fail("unexpected data after # EOF")
		}
		p.i, p.done = k, true
		return true
	}
	var what string
	k := -1
	for _, w := range [...]string{"HELP ", "TYPE ", "UNIT "} {
		if k = p.omKeyword(j, w); k >= 0 {
			what = w[:4]
			break
		}
	}
	if k < 0 {
		return p.fail("expected HELP, TYPE, UNIT or EOF after '# ': %s", p.context(i))
	}
	name, k, ok := p.metaName(k)
	if !ok {
		return p.fail("expected a metric name after %s: %s", what, p.context(i))
	}
	// " text\n": a space, then the rest of the line; the line must end.
	if k >= len(p.b) || p.b[k] != ' ' {
		return p.fail("expected text in %s: %s", what, p.context(i))
	}
	end := p.lineEnd(k)
	if end == len(p.b) {
		return p.fail("expected text in %s: %s", what, p.context(i))
	}
	text := p.b[k+1 : end]
	p.i = end + 1
	switch what[0] {
	case 'H':
		if !validUTF8(text) {
			return p.fail("help text %q is not valid UTF-8", text)
		}
		p.setHelp(name, text)
	case 'T':
		var t collectors.Type
		switch string(text) {
		case "counter":
			t = collectors.Counter
		case "gauge":
			t = collectors.Gauge
		case "histogram":
			t = collectors.Histogram
		case "gaugehistogram":
			t = collectors.GaugeHistogram
		case "summary":
			t = collectors.Summary
		case "info":
			t = collectors.Info
		case "stateset":
			t = collectors.StateSet
		case "unknown":
			t = collectors.Untyped
		default:
			return p.fail("invalid metric type %q", text)
		}
		p.setType(name, t)
	case 'U':
		// A unit must be the name's suffix after an underscore.
		if len(text) > 0 && (len(name) < len(text)+1 || string(name[len(name)-len(text):]) != string(text) || name[len(name)-len(text)-1] != '_') {
			return p.fail("unit %q not a suffix of metric %q", text, name)
		}
		p.setUnit(name, text)
	}
	return true
}

// omSeries reads a sample line starting at i.
func (p *Parser) omSeries(i int) bool {
	p.lbls, p.moreLbls = p.lbls[:0], 0
	p.seriesAt, p.nameAt, p.nameEnd, p.nameQuote = i, -1, -1, false
	j := i
	if p.b[i] != '{' {
		j = p.metricName(i)
		p.nameAt, p.nameEnd = i, j
	}
	if j < len(p.b) && p.b[j] == '{' {
		var ok bool
		if j, ok = p.omLabels(i, j+1, false); !ok {
			return false
		}
	}
	if p.nameAt < 0 {
		return p.fail("metric name not set while parsing: %s", p.context(i))
	}
	p.series = p.b[i:j]
	v, ok := p.omField(j)
	if !ok {
		return p.fail("expected a value after the metric: %s", p.context(i))
	}
	if !p.value(p.b[j+1:v], i) {
		return false
	}
	j = v
	p.hasTS = false
	if t, ok := p.omField(j); ok && !p.exemplarStart(j) {
		f, err := parseFloat(p.b[j+1 : t])
		if err != nil {
			return p.fail("%v while parsing: %s", err, p.context(i))
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return p.fail("invalid timestamp %f", f)
		}
		p.ts, p.hasTS = int64(f*1000), true
		j = t
	}
	if p.exemplarStart(j) {
		var ok bool
		if j, ok = p.omExemplar(i, j+4); !ok {
			return false
		}
	}
	if j >= len(p.b) {
		return p.fail("data does not end with # EOF")
	}
	if p.b[j] != '\n' {
		return p.fail("expected a timestamp, an exemplar or the end of the line, got %q: %s", p.b[j], p.context(i))
	}
	p.i = j + 1
	return true
}

// omField reads " token" (a space, then bytes up to a space or a newline)
// at i and returns the index after it.
func (p *Parser) omField(i int) (int, bool) {
	if i >= len(p.b) || p.b[i] != ' ' {
		return 0, false
	}
	j := i + 1
	for j < len(p.b) && p.b[j] != ' ' && p.b[j] != '\n' && p.b[j] != 0 {
		j++
	}
	return j, j > i+1
}

// exemplarStart reports whether " # {" is at i.
func (p *Parser) exemplarStart(i int) bool { return p.hasPrefix(i, " # {") }

// omExemplar checks the exemplar whose labels start at i (after "# {") and
// returns the index after it; ferry does not keep exemplars.
func (p *Parser) omExemplar(lineStart, i int) (int, bool) {
	j, ok := p.omLabels(lineStart, i, true)
	if !ok {
		return 0, false
	}
	v, ok := p.omField(j)
	if !ok {
		if j >= len(p.b) {
			return 0, p.fail("data does not end with # EOF")
		}
		return 0, p.fail("expected a value after exemplar labels: %s", p.context(lineStart))
	}
	if _, err := parseFloat(p.b[j+1 : v]); err != nil {
		return 0, p.fail("%v while parsing: %s", err, p.context(lineStart))
	}
	j = v
	if t, ok := p.omField(j); ok {
		f, err := parseFloat(p.b[j+1 : t])
		if err != nil {
			return 0, p.fail("%v while parsing: %s", err, p.context(lineStart))
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, p.fail("invalid exemplar timestamp %f", f)
		}
		j = t
	}
	return j, true
}

// omLabels reads labels after the '{' at i-1 and returns the index after the
// closing '}'. In a series a quoted string alone is the metric name; an
// exemplar's labels go nowhere (ferry does not keep exemplars).
func (p *Parser) omLabels(lineStart, i int, exemplar bool) (int, bool) {
	for {
		if i >= len(p.b) {
			return 0, p.fail("expected a label name: %s", p.context(lineStart))
		}
		if p.b[i] == '}' {
			return i + 1, true
		}
		var n span
		if p.b[i] == '"' {
			j := p.quoted(i, !exemplar, false)
			if j < 0 {
				return 0, p.fail("unterminated quoted name: %s", p.context(lineStart))
			}
			n = span{i + 1, j - 1, true}
			i = j
			if i < len(p.b) && (p.b[i] == ',' || p.b[i] == '}') {
				if exemplar {
					return 0, p.fail("expected a label name in an exemplar: %s", p.context(lineStart))
				}
				if p.nameAt >= 0 {
					return 0, p.fail("metric name already set while parsing: %s", p.context(lineStart))
				}
				p.nameAt, p.nameEnd, p.nameQuote = n.start, n.end, true
				if p.b[i] == '}' {
					return i + 1, true
				}
				i++
				continue
			}
		} else {
			j := p.labelName(i)
			if j == i {
				return 0, p.fail("expected a label name, got %q: %s", p.b[i], p.context(lineStart))
			}
			n = span{i, j, false}
			i = j
		}
		if i >= len(p.b) || p.b[i] != '=' {
			return 0, p.fail("expected '=' after a label name: %s", p.context(lineStart))
		}
		i++
		if i >= len(p.b) || p.b[i] != '"' {
			return 0, p.fail("expected a quoted label value: %s", p.context(lineStart))
		}
		j := p.quoted(i, false, !exemplar)
		if j < 0 {
			return 0, p.fail("unterminated label value: %s", p.context(lineStart))
		}
		v := span{i + 1, j - 1, true}
		if !p.checkValue(v) {
			return 0, false
		}
		if !exemplar {
			p.keepLabel(n, v)
		}
		i = j
		if i < len(p.b) && p.b[i] == ',' {
			i++
		} else if i >= len(p.b) || p.b[i] != '}' {
			return 0, p.fail("expected a comma or a '}' after a label: %s", p.context(lineStart))
		}
	}
}
