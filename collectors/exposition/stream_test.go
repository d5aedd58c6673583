package exposition

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// chunkReader gives its body in pieces of random sizes, empty ones
// included, as a network connection may.
type chunkReader struct {
	body []byte
	rnd  *rand.Rand
	max  int
}

func (r *chunkReader) Read(b []byte) (int, error) {
	if len(r.body) == 0 {
		return 0, io.EOF
	}
	n := min(len(b), len(r.body), r.rnd.IntN(r.max+1))
	copy(b, r.body[:n])
	r.body = r.body[n:]
	return n, nil
}

// windowedParse parses body with ParseFrom from a chunkReader, in windows
// of window bytes to start with, as ourParse does whole.
func windowedParse(p *Parser, body []byte, format Format, window int, rnd *rand.Rand) (outcome, error) {
	var o outcome
	var b labels.ScratchBuilder
	p.windowSize = window
	defer func() { p.windowSize = 0 }()
	err := p.ParseFrom(&chunkReader{body, rnd, 1 + rnd.IntN(2*window)}, format, int64(len(body)), func() error {
		o.add(p, &b)
		return nil
	})
	o.end(p)
	return o, err
}

// sameOutcome returns what differs between the whole body's outcome and
// the windowed one's: the same samples (labels, value bits, timestamp,
// start time, family), the same error.
func sameOutcome(whole, windowed outcome) string {
	if fmt.Sprint(whole.err) != fmt.Sprint(windowed.err) {
		return fmt.Sprintf("error %v whole, %v in windows", whole.err, windowed.err)
	}
	if len(whole.samples) != len(windowed.samples) {
		return fmt.Sprintf("%d samples whole, %d in windows", len(whole.samples), len(windowed.samples))
	}
	for i, w := range whole.samples {
		o := windowed.samples[i]
		if !labels.Equal(w.lset, o.lset) || w.v != o.v || w.t != o.t || w.hasT != o.hasT || w.start != o.start || !sameDesc(w.desc, o.desc) {
			return fmt.Sprintf("sample %d: %+v whole, %+v in windows", i, w, o)
		}
	}
	return ""
}

// checkWindows requires ParseFrom to give body's samples as a parse of the
// whole body does, in windows of several sizes; the small ones cut lines,
// quoted strings and families everywhere.
func checkWindows(t *testing.T, p *Parser, body []byte, format Format, rnd *rand.Rand) {
	t.Helper()
	whole := ourParse(p, body, format)
	for _, window := range []int{1, 2, 3, 7, 16, 1 + rnd.IntN(64), 1 + rnd.IntN(512), defaultWindow} {
		windowed, err := windowedParse(p, body, format, window, rnd)
		if d := sameOutcome(whole, windowed); d != "" {
			t.Fatalf("window %d: %s\nbody %q", window, d, body)
		}
		if !errors.Is(err, windowed.err) {
			t.Fatalf("window %d: ParseFrom returned %v, Err %v", window, err, windowed.err)
		}
	}
}

// TestWindowsAreTheWholeBody cuts the corpus, the fuzz seeds and random
// bodies made of their lines (multiline label values and quoted names, a
// missing final newline, NULs, "# EOF" anywhere) into windows.
func TestWindowsAreTheWholeBody(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	var p Parser
	for name, c := range corpus(t) {
		t.Run(name, func(t *testing.T) {
			checkWindows(t, &p, c.body, c.format, rnd)
		})
	}
	var lines []string
	for _, s := range fuzzSeeds {
		lines = append(lines, strings.SplitAfter(s, "\n")...)
	}
	lines = append(lines, "# HELP \"multi\nline\" help\n", "foo{a=\"x\n\ny\"} 1\n", "# EOF\n", "\x00\n", "foo 1")
	for range 3000 {
		var b bytes.Buffer
		for range 1 + rnd.IntN(12) {
			b.WriteString(lines[rnd.IntN(len(lines))])
		}
		format := Format(rnd.IntN(2))
		checkWindows(t, &p, b.Bytes(), format, rnd)
	}
}

// FuzzWindowsAreTheWholeBody is TestWindowsAreTheWholeBody on any body.
func FuzzWindowsAreTheWholeBody(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), false, uint64(1))
		f.Add([]byte(s), true, uint64(2))
	}
	var p Parser
	f.Fuzz(func(t *testing.T, body []byte, om bool, seed uint64) {
		format := Text
		if om {
			format = OpenMetrics
		}
		checkWindows(t, &p, body, format, rand.New(rand.NewPCG(seed, seed)))
	})
}

// TestParseFromErrorsInOrder: a body over the limit fails as too large
// even when a line before the limit is bad, or when a NUL ended the body
// before it, as a body read whole before it is parsed does; the reader's
// error comes first of all.
func TestParseFromErrorsInOrder(t *testing.T) {
	long := strings.Repeat("foo 1\n", 1000)
	cut := errors.New("connection reset")
	errEach := errors.New("each")
	for _, tc := range []struct {
		name         string
		r            io.Reader
		limit        int64
		failEach     bool  // each refuses the first sample
		want         error // nil: see wantParseErr
		wantParseErr bool  // the parse's error (Err), else none
	}{
		{name: "bad line, then over the limit", r: strings.NewReader("foo{ 1\n" + long), limit: 100, want: ErrTooLarge},
		{name: "NUL, then over the limit", r: strings.NewReader("foo 1\n\x00" + long), limit: 100, want: ErrTooLarge},
		{name: "bad line within the limit", r: strings.NewReader("foo{ 1\n" + long), limit: int64(7 + len(long)), wantParseErr: true},
		{name: "NUL within the limit", r: strings.NewReader("foo 1\n\x00" + long), limit: int64(7 + len(long))},
		{name: "cut short after a bad line", r: io.MultiReader(strings.NewReader("foo{ 1\n"+long), failingReader{cut}), limit: 1 << 20, want: cut},
		{name: "each's error, then over the limit", r: strings.NewReader(long), limit: 100, failEach: true, want: ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Parser
			p.windowSize = 16
			err := p.ParseFrom(tc.r, Text, tc.limit, func() error {
				if tc.failEach {
					return errEach
				}
				return nil
			})
			switch {
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("error %v, want %v", err, tc.want)
			case tc.wantParseErr && (err == nil || err != p.Err()):
				t.Fatalf("error %v, want the parse's (Err %v)", err, p.Err())
			case tc.want == nil && !tc.wantParseErr && err != nil:
				t.Fatalf("error %v, want none", err)
			}
			if errors.Is(tc.want, cut) {
				if re := (*ReadError)(nil); !errors.As(err, &re) {
					t.Fatalf("error %T %v, want a *ReadError", err, err)
				}
			}
		})
	}
}

// failingReader fails every Read with err.
type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

// TestParseFromKeepsItsWindow: the window is used again for the next body
// (no allocation per body but what the samples need), unless a long line
// grew it.
func TestParseFromKeepsItsWindow(t *testing.T) {
	var p Parser
	body := []byte(strings.Repeat("foo{a=\"b\"} 1\n", 20000)) // several windows
	parse := func(body []byte) {
		if err := p.ParseFrom(bytes.NewReader(body), Text, 1<<30, func() error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	parse(body)
	if allocs := testing.AllocsPerRun(5, func() { parse(body) }); allocs > 2 {
		t.Errorf("%.0f allocations a body, want at most 2 (the reader)", allocs)
	}
	parse([]byte("foo{a=\"" + strings.Repeat("x", 3*defaultWindow) + "\"} 1\n"))
	if p.window != nil {
		t.Errorf("a window grown to %d bytes is kept", cap(p.window))
	}
	// A family's help, copied out of each window it outlives, is not kept
	// for the next body when it is long.
	parse(append([]byte("# HELP foo "+strings.Repeat("x", defaultWindow)+"\n"), body...))
	if n := cap(p.famMem[0]) + cap(p.famMem[1]); n > 4<<10 {
		t.Errorf("%d bytes of a family's help are kept", n)
	}
}
