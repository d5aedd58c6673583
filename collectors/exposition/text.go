package exposition

import (
	"bytes"
	"strconv"

	"github.com/ferry-agent/ferry/collectors"
)

// The Prometheus text format 0.0.4, as Prometheus reads it: spaces and tabs
// between tokens, blank lines, comments; label values may span lines; a
// label needs no comma before the next; a NUL byte at the start of a line
// ends the body.

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func (p *Parser) skipBlanks(i int) int {
	for i < len(p.b) && isBlank(p.b[i]) {
		i++
	}
	return i
}

// lineEnd is the index of the newline ending the line that i is in, or
// len(b) (the body needs no final newline).
func (p *Parser) lineEnd(i int) int {
	for ; i < len(p.b); i++ {
		if p.b[i] == '\n' {
			return i
		}
	}
	return i
}

func (p *Parser) nextText() bool {
	for {
		p.unit = p.i
		i := p.skipBlanks(p.i)
		if i >= len(p.b) {
			p.more = !p.final
			return false
		}
		if p.b[i] == 0 {
			return false
		}
		switch c := p.b[i]; {
		case c == '\n':
			p.i = i + 1
		case c == '#':
			if !p.textComment(i) {
				return false
			}
		case c == '{' || isNameStart(c):
			return p.textSeries(i)
		default:
			return p.fail("expected a metric name, a '{' or a comment, got %q: %s", c, p.context(i))
		}
	}
}

// keyword matches word followed by at least one space or tab at i, with
// NUL bytes after its first byte passed over as Prometheus' lexer does
// inside comments; it returns the index after the blanks, or -1.
func (p *Parser) keyword(i int, word string) int {
	for k := 0; k < len(word); k++ {
		if k > 0 {
			for i < len(p.b) && p.b[i] == 0 {
				i++
			}
		}
		if i >= len(p.b) || p.b[i] != word[k] {
			return -1
		}
		i++
	}
	n := 0
	for i < len(p.b) && (isBlank(p.b[i]) || p.b[i] == 0) {
		if p.b[i] != 0 {
			n++
		}
		i++
	}
	if n == 0 {
		return -1
	}
	return i
}

// textComment reads a line starting with '#' at i: HELP, TYPE, or a
// comment, which is ignored. NUL bytes are where Prometheus' lexer is
// quirky, and ferry does as it does: a NUL in a comment without a blank
// after the '#', or right after the blanks, ends the body; any other NUL in
// a comment is passed over.
func (p *Parser) textComment(i int) bool {
	end := p.lineEnd(i)
	j := i + 1
	if j < len(p.b) && isBlank(p.b[j]) {
		j = p.skipBlanks(j)
		if j < len(p.b) && p.b[j] == 0 {
			return false
		}
		if k := p.keyword(j, "HELP"); k >= 0 {
			return p.textMeta(i, k, true)
		}
		if k := p.keyword(j, "TYPE"); k >= 0 {
			return p.textMeta(i, k, false)
		}
	} else if bytes.IndexByte(p.b[j:end], 0) >= 0 {
		return false
	}
	p.i = min(end+1, len(p.b))
	return true
}

// metaName reads a family name in a HELP, TYPE or UNIT line at i: bare or
// quoted (Prometheus 3's UTF-8 names). It returns the name without quotes
// and the index after it, or ok false.
func (p *Parser) metaName(i int) (name []byte, next int, ok bool) {
	if i < len(p.b) && p.b[i] == '"' {
		j := p.quoted(i, true, false)
		if j < 0 {
			return nil, 0, false
		}
		return p.b[i+1 : j-1], j, true
	}
	j := p.metricName(i)
	if j == i {
		return nil, 0, false
	}
	return p.b[i:j], j, true
}

func (p *Parser) textMeta(lineStart, i int, help bool) bool {
	what := "TYPE"
	if help {
		what = "HELP"
	}
	i = p.skipBlanks(i)
	name, j, ok := p.metaName(i)
	if !ok {
		return p.fail("expected a metric name after %s: %s", what, p.context(lineStart))
	}
	end := p.lineEnd(j)
	// The text is the rest of the line but its first byte (the separator);
	// a rest of only blanks (and NULs after the first) is no text, and one
	// starting with a NUL no line.
	rest := p.b[j:end]
	text := rest[:0]
	if len(rest) > 0 && rest[0] == 0 {
		return p.fail("linebreak expected after metadata: %s", p.context(lineStart))
	}
	for _, c := range rest {
		if !isBlank(c) && c != 0 {
			text = rest[1:]
			break
		}
	}
	p.i = min(end+1, len(p.b))
	if help {
		if !validUTF8(text) {
			return p.fail("help text %q is not valid UTF-8", text)
		}
		p.setHelp(name, text)
		return true
	}
	var t collectors.Type
	switch string(text) {
	case "counter":
		t = collectors.Counter
	case "gauge":
		t = collectors.Gauge
	case "histogram":
		t = collectors.Histogram
	case "summary":
		t = collectors.Summary
	case "untyped":
		t = collectors.Untyped
	default:
		return p.fail("invalid metric type %q", text)
	}
	p.setType(name, t)
	return true
}

// textSeries reads a sample line starting at i.
func (p *Parser) textSeries(i int) bool {
	p.lbls, p.moreLbls = p.lbls[:0], 0
	p.seriesAt, p.nameAt, p.nameEnd, p.nameQuote = i, -1, -1, false
	j := i
	if p.b[i] != '{' {
		j = p.metricName(i)
		p.nameAt, p.nameEnd = i, j
		j = p.skipBlanks(j)
	}
	seriesEnd := p.nameEnd
	if j < len(p.b) && p.b[j] == '{' {
		if end := p.knownLabels(i, j); end >= 0 {
			j = end
		} else {
			var ok bool
			if j, ok = p.textLabels(i, j+1); !ok {
				return false
			}
		}
		seriesEnd = j
	}
	if p.nameAt < 0 {
		return p.fail("metric name not set while parsing: %s", p.context(i))
	}
	p.series = p.b[i:seriesEnd]
	j = p.skipBlanks(j)
	// The value: anything up to a blank or the end of the line.
	v := j
	for j < len(p.b) && p.b[j] != ' ' && p.b[j] != '\t' && p.b[j] != '\n' && p.b[j] != '{' && p.b[j] != 0 {
		j++
	}
	if j == v {
		return p.fail("expected a value after the metric: %s", p.context(i))
	}
	if !p.value(p.b[v:j], i) {
		return false
	}
	j = p.skipBlanks(j)
	p.hasTS = false
	if j < len(p.b) && '0' <= p.b[j] && p.b[j] <= '9' {
		t := j
		for j < len(p.b) && '0' <= p.b[j] && p.b[j] <= '9' {
			j++
		}
		ts, err := strconv.ParseInt(string(p.b[t:j]), 10, 64)
		if err != nil {
			return p.fail("%v while parsing: %s", err, p.context(i))
		}
		p.ts, p.hasTS = ts, true
		j = p.skipBlanks(j)
	}
	if j < len(p.b) && p.b[j] != '\n' {
		return p.fail("expected a timestamp or the end of the line, got %q: %s", p.b[j], p.context(i))
	}
	p.i = min(j+1, len(p.b))
	return true
}

// knownLabels finds the end of the labels at the '{' at i of a series
// whose name starts at lineStart, and returns the index after the closing
// '}' if Known knows the series' text; -1 otherwise. Finding the end needs
// only the quotes: a text Known knows is one that textLabels read to the
// same '}' before.
func (p *Parser) knownLabels(lineStart, i int) int {
	if p.Known == nil || p.nameAt < 0 {
		return -1
	}
	end := plainLabelsEnd(p.b[i+1:])
	if end >= 0 {
		end += i + 1
	} else {
		end = p.labelsEnd(i)
	}
	if end < 0 || !p.Known(p.b[lineStart:end+1]) {
		return -1
	}
	return end + 1
}

// plainLabelsEnd returns the index in b, the text after a '{', of the '}'
// that labelsEnd would find, when nothing before it needs labelsEnd's
// quote-by-quote scan: no backslash, no line end, and quotes in pairs, so
// that this first '}' is outside them. Otherwise -1. A few passes of the
// library's vectorized searches cost a quarter of that scan.
func plainLabelsEnd(b []byte) int {
	end := bytes.IndexByte(b, '}')
	if end < 0 {
		return -1
	}
	b = b[:end]
	if bytes.IndexByte(b, '\\') >= 0 || bytes.IndexByte(b, '\n') >= 0 || bytes.Count(b, quote)%2 != 0 {
		return -1
	}
	return end
}

var quote = []byte{'"'}

// labelsEnd returns the index of the first '}' after the '{' at i that is
// outside quoted strings, or -1 if the line ends first.
func (p *Parser) labelsEnd(i int) int {
	for i++; i >= 0 && i < len(p.b); {
		switch p.b[i] {
		case '"':
			i = p.quotedEnd(i)
		case '}':
			return i
		case '\n':
			return -1
		default:
			i++
		}
	}
	return -1
}

// quotedEnd returns the index after the quoted string at b[i] == '"', or
// -1: it ends at the first quote that no odd run of backslashes escapes.
// It checks nothing inside (knownLabels' texts were checked before).
func (p *Parser) quotedEnd(i int) int {
	for j := i + 1; ; j++ {
		k := bytes.IndexByte(p.b[j:], '"')
		if k < 0 {
			return -1
		}
		j += k
		n := 0
		for n < j-i-1 && p.b[j-1-n] == '\\' {
			n++
		}
		if n%2 == 0 {
			return j + 1
		}
	}
}

// textLabels reads the labels after the '{' at i-1 and returns the index
// after the closing '}'. A quoted string alone is the metric name.
func (p *Parser) textLabels(lineStart, i int) (int, bool) {
	for {
		i = p.skipBlanks(i)
		if i >= len(p.b) {
			return 0, p.fail("expected a label name: %s", p.context(lineStart))
		}
		if p.b[i] == '}' {
			return i + 1, true
		}
		var n span
		if p.b[i] == '"' {
			j := p.quoted(i, true, false)
			if j < 0 {
				return 0, p.fail("unterminated quoted name: %s", p.context(lineStart))
			}
			n = span{i + 1, j - 1, true}
			i = p.skipBlanks(j)
			if i < len(p.b) && (p.b[i] == ',' || p.b[i] == '}') {
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
			i = p.skipBlanks(j)
		}
		if i >= len(p.b) || p.b[i] != '=' {
			return 0, p.fail("expected '=' after a label name: %s", p.context(lineStart))
		}
		i = p.skipBlanks(i + 1)
		if i >= len(p.b) || p.b[i] != '"' {
			return 0, p.fail("expected a quoted label value: %s", p.context(lineStart))
		}
		j := p.quoted(i, true, true)
		if j < 0 {
			return 0, p.fail("unterminated label value: %s", p.context(lineStart))
		}
		v := span{i + 1, j - 1, true}
		if !p.checkValue(v) {
			return 0, false
		}
		p.keepLabel(n, v)
		i = p.skipBlanks(j)
		if i < len(p.b) && p.b[i] == ',' {
			i++
		}
	}
}
