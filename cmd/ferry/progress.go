package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// progress shows how far a long command is: on a terminal, one line redrawn
// in place (samples done of total, rate, time left), at most every
// redrawInterval; elsewhere (a log, a pipe) nothing until the summary line,
// so that scripts and journald get one line per run.
type progress struct {
	w     io.Writer
	live  bool   // redraw a line; else stay quiet until the summary
	verb  string // "pushed", "exported"
	total int64  // 0: unknown
	now   func() time.Time

	start, drawn time.Time
	shown        bool // a progress line is on the screen
	done         int64
}

const redrawInterval = 250 * time.Millisecond

// progressLive reads --progress: auto redraws a line when w is a terminal.
func progressLive(mode string, w io.Writer) (bool, error) {
	switch mode {
	case "auto":
		return isTerminal(w), nil
	case "always":
		return true, nil
	case "never":
		return false, nil
	}
	return false, fmt.Errorf("--progress: %q is not auto, always or never", mode)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func newProgress(w io.Writer, live bool, verb string, total int64) *progress {
	p := &progress{w: w, live: live, verb: verb, total: total, now: time.Now}
	p.start = p.now()
	return p
}

// update sets the samples done; the line is redrawn if it is time.
func (p *progress) update(done int64) {
	p.done = done
	if !p.live {
		return
	}
	now := p.now()
	if p.shown && now.Sub(p.drawn) < redrawInterval {
		return
	}
	p.drawn, p.shown = now, true
	fmt.Fprintf(p.w, "\r%s\x1b[K", p.line(now))
}

func (p *progress) line(now time.Time) string {
	elapsed := now.Sub(p.start)
	s := p.verb + " " + group(p.done)
	total := max(p.total, p.done)
	if total > 0 {
		s += " of " + group(total) + fmt.Sprintf(" samples (%d%%)", p.done*100/total)
	} else {
		s += " samples"
	}
	if elapsed < time.Second || p.done == 0 {
		return s
	}
	rate := float64(p.done) / elapsed.Seconds()
	s += ", " + group(int64(rate)) + "/s"
	if total > p.done {
		left := time.Duration(float64(total-p.done) / rate * float64(time.Second))
		s += ", " + left.Round(time.Second).String() + " left"
	}
	return s
}

// clear removes the progress line, so that a message can take its place.
func (p *progress) clear() {
	if p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.shown = false
	}
}

// printf writes a message line without breaking the progress line.
func (p *progress) printf(format string, args ...any) {
	p.clear()
	fmt.Fprintf(p.w, format, args...)
}

// Write lets a logger share the terminal with the progress line.
func (p *progress) Write(b []byte) (int, error) {
	p.clear()
	return p.w.Write(b)
}

// finish replaces the progress line with the summary line.
func (p *progress) finish(format string, args ...any) {
	p.clear()
	fmt.Fprintf(p.w, format+"\n", args...)
}

// elapsed is the time since the start, for summaries.
func (p *progress) elapsed() time.Duration { return p.now().Sub(p.start).Round(time.Millisecond) }

// group writes n with thousands separators: 1,234,567.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}
