package exposition

import (
	"bytes"
	"cmp"
	"errors"
	"io"
)

// Reading a body in windows: a scrape target's answer is parsed as it
// arrives, a window of it at a time, instead of read whole first. A window
// ends after a newline, so every line in it is whole, but for a line that
// goes on past the newline inside a quoted string (the text format's label
// values may span lines): Next fails on it, or finds the body's end, only
// because the window ends, and ParseFrom reads that line again from the
// next window. What a window cannot end for sure (a line over its end,
// OpenMetrics' "# EOF", which must end the body) is left to the next one.

// defaultWindow is ParseFrom's window: a few hundred lines of a typical
// target. A longer line makes the window grow, up to the body's limit, for
// that body only.
const defaultWindow = 64 << 10

// ErrTooLarge is ParseFrom's error for a body over its limit.
var ErrTooLarge = errors.New("body larger than the limit")

// ReadError is ParseFrom's error for a failure of the reader, such as a
// connection reset or a timeout.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// ParseFrom parses a body in format f from r, up to limit bytes, in windows
// of the Parser's memory instead of the whole body in memory: it calls
// each for every sample, with the Parser at that sample as Next would
// leave it (Series, Labels, Value, Timestamp, Desc; Known is asked as
// Next asks it), and gives the same samples as Reset and Next on the
// whole body. It returns a *ReadError for r's error, ErrTooLarge for a
// body past limit, each's first error, or the parse's error, which Err
// returns too; in that order, as if the body had been read whole before
// it was parsed: after each's or the parse's error it reads the rest of
// the body, up to limit. Samples may have gone to each before any error.
// Starts is complete after it returned nil. The window is kept for the
// next body, unless one long line made it grow.
func (p *Parser) ParseFrom(r io.Reader, f Format, limit int64, each func() error) error {
	p.Reset(nil, f)
	size := int(min(int64(cmp.Or(p.windowSize, defaultWindow)), limit+1)) // a body known to be small needs no more
	buf := p.window[:0]
	if cap(buf) != size {
		buf = make([]byte, 0, size)
	}
	defer func() {
		if cap(buf) == size {
			p.window = buf[:0]
		} else {
			p.window = nil
		}
		for i, mem := range p.famMem {
			if cap(mem) > 4<<10 { // a family with a long help text
				p.famMem[i] = nil
			}
		}
	}()
	var read int64
	eof := false
	// rest reads what is left of the body, up to the limit, for its
	// errors; err is the parse's, which they come before.
	rest := func(err error) error {
		if !eof {
			n, rerr := io.Copy(io.Discard, io.LimitReader(r, limit-read+1))
			if read += n; read > limit {
				return ErrTooLarge
			}
			if rerr != nil {
				return &ReadError{rerr}
			}
		}
		return err
	}
	stalled := 0
	for {
		for !eof && len(buf) < cap(buf) {
			n, err := r.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if read += int64(n); read > limit {
				return ErrTooLarge
			}
			switch {
			case err == io.EOF: // not wrapped, by io.Reader's contract
				eof = true
			case err != nil: // io.ErrUnexpectedEOF included: a body cut short
				return &ReadError{err}
			case n > 0:
				stalled = 0
			default:
				if stalled++; stalled == 100 {
					return &ReadError{io.ErrNoProgress}
				}
			}
		}
		end := len(buf)
		if !eof {
			end = bytes.LastIndexByte(buf, '\n') + 1
		}
		p.feed(buf[:end], eof)
		for p.Next() {
			if err := each(); err != nil {
				return rest(err)
			}
		}
		if p.err != nil || !p.more {
			// An error, the body's end, or a NUL at the start of a line,
			// which ends the body before its end: the rest is not parsed.
			return rest(p.err)
		}
		buf = buf[:copy(buf, buf[p.i:])]
		if len(buf) == cap(buf) { // one line fills the window
			grown := make([]byte, len(buf), min(2*int64(cap(buf)), limit+1))
			copy(grown, buf)
			buf = grown
		}
	}
}

// feed gives Next the next window of the body: b goes on where the last
// window's unparsed rest began; final says that it ends the body.
func (p *Parser) feed(b []byte, final bool) {
	p.b, p.i, p.final, p.more = b, 0, final, false
}

// keepFamily copies the family's name, help and unit, views of the
// window, out of it before the window moves on.
func (p *Parser) keepFamily() {
	if !p.fam.set {
		return
	}
	mem := p.famMem[0][:0]
	mem = append(mem, p.fam.name...)
	mem = append(mem, p.fam.help...)
	mem = append(mem, p.fam.unit...)
	n, h := len(p.fam.name), len(p.fam.help)
	p.fam.name, p.fam.help, p.fam.unit = mem[:n:n], mem[n:n+h:n+h], mem[n+h:]
	// The next copy goes to the other array: this one holds the source.
	p.famMem[0], p.famMem[1] = p.famMem[1], mem
}
