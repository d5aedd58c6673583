package web

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestHistoryIsBoundedToTheLastHour(t *testing.T) {
	var h History
	start := time.Unix(1_700_000_010, 0) // at the start of a step
	// Four hours of looks every 10 s: three per step.
	var last time.Time
	for i := range 4 * 360 {
		last = start.Add(time.Duration(i) * 10 * time.Second)
		h.Observe(last, Point{Unix: float64(last.Unix()), Waiting: float64(i)})
	}
	got := h.Points(last)
	if len(got) != historyPoints {
		t.Fatalf("%d points, want %d: one per %s of the last hour", len(got), historyPoints, HistoryStep)
	}
	for i, p := range got {
		if i > 0 && p.Unix-got[i-1].Unix != HistoryStep.Seconds() {
			t.Fatalf("points %d and %d are %v s apart, want a step", i-1, i, p.Unix-got[i-1].Unix)
		}
		// Each step keeps its last look: the third of three.
		if int(p.Waiting)%3 != 2 {
			t.Errorf("point %d holds look %v, want the last of its step", i, p.Waiting)
		}
	}
	if got[len(got)-1].Unix != float64(last.Unix()) {
		t.Errorf("newest point at %v, want the last look %v", got[len(got)-1].Unix, last.Unix())
	}
	// Later, only what is within the hour before now.
	if n := len(h.Points(last.Add(30*time.Minute + time.Second))); n != historyPoints/2 {
		t.Errorf("half an hour later: %d points, want %d", n, historyPoints/2)
	}
	// A clock set back does not reorder the points.
	h.Observe(start, Point{Unix: float64(start.Unix())})
	if p := h.Points(last); p[len(p)-1].Unix != float64(last.Unix()) {
		t.Errorf("after a look from the past the newest point is %v", p[len(p)-1].Unix)
	}
}

var (
	polyline = regexp.MustCompile(`<svg id="([a-z-]+)"[^>]* data-top="([^"]*)"[^>]*>\s*<rect[^>]*>\s*<line[^>]*>\s*<line[^>]*>\s*<polyline [^>]*points="([^"]*)" data-times="([^"]*)" data-values="([^"]*)"`)
)

// plotOf is one plot as the page has it: its top value, and its points as
// coordinates, times and values.
type plotOf struct {
	top           float64
	xy            [][2]float64
	times, values []float64
}

// readPlots parses the page's plots by their ids.
func readPlots(t *testing.T, page string) map[string]plotOf {
	t.Helper()
	floats := func(s string) []float64 {
		var out []float64
		for _, f := range strings.Fields(s) {
			v, err := strconv.ParseFloat(f, 64)
			if err != nil {
				t.Fatalf("%q: %v", f, err)
			}
			out = append(out, v)
		}
		return out
	}
	plots := map[string]plotOf{}
	for _, m := range polyline.FindAllStringSubmatch(page, -1) {
		p := plotOf{top: floats(m[2])[0], times: floats(m[4]), values: floats(m[5])}
		for _, pt := range strings.Fields(m[3]) {
			var x, y float64
			if _, err := fmt.Sscanf(pt, "%g,%g", &x, &y); err != nil {
				t.Fatalf("point %q: %v", pt, err)
			}
			p.xy = append(p.xy, [2]float64{x, y})
		}
		plots[m[1]] = p
	}
	return plots
}

// TestPlotsShowTheHistory: the page has a plot each of the samples waiting,
// the backlog age and the send rate, whose points are the history's values
// at their times, drawn where the value and time say.
func TestPlotsShowTheHistory(t *testing.T) {
	now := time.Unix(1_700_003_600, 0)
	snap := snapshot(now)
	// Ten minutes of an outage's backlog, then sending at 50 samples/s
	// from 30 min ago; the sender restarts (counter from 0) 5 min ago.
	for i := range 60 {
		at := float64(now.Unix()) - 3600 + 30 + float64(i)*60
		p := Point{Unix: at, Waiting: float64(1000 * (i % 7)), Age: float64(60 * i)}
		if i >= 30 {
			p.Sent = float64(i-30) * 60 * 50
		}
		if i >= 55 {
			p.Sent = float64(i-55) * 60 * 50
		}
		snap.History = append(snap.History, p)
	}
	page := serve(t, Handler(&fakeBackend{snap: snap}), "/").Body.String()
	plots := readPlots(t, page)
	check := func(id string, want func(i int, p Point) (float64, bool)) {
		t.Helper()
		p, ok := plots[id]
		if !ok {
			t.Fatalf("no plot %s on the page", id)
		}
		var times, values []float64
		for i, h := range snap.History {
			if v, ok := want(i, h); ok {
				times, values = append(times, h.Unix), append(values, v)
			}
		}
		if fmt.Sprint(p.times) != fmt.Sprint(times) || fmt.Sprint(p.values) != fmt.Sprint(values) {
			t.Fatalf("%s: times %v values %v,\nwant %v %v", id, p.times, p.values, times, values)
		}
		top := 0.0
		for _, v := range values {
			top = max(top, v)
		}
		if p.top != top {
			t.Errorf("%s: top %v, want the largest value %v", id, p.top, top)
		}
		for i, xy := range p.xy {
			wantX := (times[i] - float64(now.Unix()-3600)) / 3600 * plotWidth
			wantY := plotBottom - values[i]/top*(plotBottom-plotTop)
			if d := xy[0] - wantX; d > 0.06 || d < -0.06 {
				t.Errorf("%s point %d: x %v, want %v", id, i, xy[0], wantX)
			}
			if d := xy[1] - wantY; d > 0.06 || d < -0.06 {
				t.Errorf("%s point %d: y %v, want %v for %v of %v", id, i, xy[1], wantY, values[i], top)
			}
		}
	}
	check("plot-waiting", func(_ int, p Point) (float64, bool) { return p.Waiting, true })
	check("plot-age", func(_ int, p Point) (float64, bool) { return p.Age, true })
	check("plot-rate", func(i int, p Point) (float64, bool) {
		if i == 0 || i == 55 { // no rate before the first point, nor across the restart
			return 0, false
		}
		if i > 30 {
			return 50, true
		}
		return 0, true
	})
	if strings.Contains(page, "<script") || strings.Contains(page, "src=") || strings.Contains(page, `href="http`) {
		t.Error("the page brings a script or an outside asset")
	}
}

// With no sender there is no rate plot; with fewer than two points the
// plot says it is collecting.
func TestPlotsEarly(t *testing.T) {
	now := time.Unix(1_700_003_600, 0)
	snap := snapshot(now)
	snap.Sender = nil
	snap.History = []Point{{Unix: float64(now.Unix()), Waiting: 5}}
	page := serve(t, Handler(&fakeBackend{snap: snap}), "/").Body.String()
	plots := readPlots(t, page)
	if _, ok := plots["plot-rate"]; ok || len(plots) != 2 {
		t.Errorf("plots %v: want waiting and age only, without a sender", plots)
	}
	if !strings.Contains(page, "(collecting: a point every 30s)") {
		t.Error("a plot of one point does not say it is collecting")
	}
}
