package web

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ferry-agent/ferry/collectors"
)

// The plots are SVG written into the page: no script, no outside asset, a
// few kilobytes. Each polyline carries its points' times and values in data
// attributes, for tests and scripts, as the figures do in <data> elements.

// plotView is one plot: the last hour of one figure.
type plotView struct {
	ID, Title string
	Label     func(float64) string // the text of a value, for the axis
	Times     []float64            // Unix seconds, ascending
	Values    []float64
}

// The plot's geometry, in SVG user units: the hour spans the width, the
// values the band between plotTop and plotBottom.
const (
	plotWidth  = 600
	plotHeight = 100
	plotTop    = 14
	plotBottom = 86
)

// plots turns the history into the page's plots: samples waiting, backlog
// age, and the send rate between consecutive points (none across a
// restart of the sender, whose counter starts again).
func plots(h []Point, sending bool) []plotView {
	waiting := plotView{ID: "plot-waiting", Title: "Samples waiting", Label: countText}
	age := plotView{ID: "plot-age", Title: "Backlog age", Label: durationText}
	rate := plotView{ID: "plot-rate", Title: "Send rate, samples/s", Label: rateText}
	for i, p := range h {
		waiting.Times, waiting.Values = append(waiting.Times, p.Unix), append(waiting.Values, p.Waiting)
		age.Times, age.Values = append(age.Times, p.Unix), append(age.Values, p.Age)
		if i == 0 {
			continue
		}
		if dt, d := p.Unix-h[i-1].Unix, p.Sent-h[i-1].Sent; dt > 0 && d >= 0 {
			rate.Times, rate.Values = append(rate.Times, p.Unix), append(rate.Values, d/dt)
		}
	}
	if !sending {
		return []plotView{waiting, age}
	}
	return []plotView{waiting, age, rate}
}

func rateText(v float64) string { return strconv.FormatFloat(v, 'g', 3, 64) + "/s" }

// plotY is the height of v in a plot whose top is top.
func plotY(v, top float64) float64 {
	return plotBottom - v/top*(plotBottom-plotTop)
}

// renderPlot writes p as a figure with an inline SVG; now is the right
// edge, an hour before it the left.
func (w *htmlWriter) renderPlot(p plotView, now float64) {
	top := 0.0
	for _, v := range p.Values {
		top = max(top, v)
	}
	if top == 0 {
		top = 1 // a flat line at the bottom
	}
	from := now - HistoryWindow.Seconds()
	var pts, times, values strings.Builder
	for i, t := range p.Times {
		if i > 0 {
			pts.WriteByte(' ')
			times.WriteByte(' ')
			values.WriteByte(' ')
		}
		x := (t - from) / HistoryWindow.Seconds() * plotWidth
		fmt.Fprintf(&pts, "%.1f,%.1f", x, plotY(p.Values[i], top))
		times.WriteString(strconv.FormatFloat(t, 'f', -1, 64))
		values.WriteString(collectors.FormatValue(p.Values[i]))
	}
	w.put(`<figure class="plot"><figcaption>`, esc(p.Title), `, last hour`)
	if len(p.Values) < 2 {
		w.put(` (collecting: a point every `, durationText(HistoryStep.Seconds()), `)`)
	}
	w.put(`</figcaption>`, "\n",
		`<svg id="`, p.ID, `" width="100%" height="`, strconv.Itoa(plotHeight), `" viewBox="0 0 `, strconv.Itoa(plotWidth), ` `, strconv.Itoa(plotHeight),
		`" preserveAspectRatio="none" role="img" aria-label="`, esc(p.Title), `" data-top="`, collectors.FormatValue(top), `">`, "\n",
		`<rect x="0" y="0" width="`, strconv.Itoa(plotWidth), `" height="`, strconv.Itoa(plotHeight), `" fill="#fafafa" stroke="#ddd"/>`,
		fmt.Sprintf(`<line x1="0" y1="%d" x2="%d" y2="%d" stroke="#ccc"/>`, plotTop, plotWidth, plotTop),
		fmt.Sprintf(`<line x1="0" y1="%d" x2="%d" y2="%d" stroke="#ccc"/>`, plotBottom, plotWidth, plotBottom), "\n",
		`<polyline fill="none" stroke="#1a73e8" stroke-width="2" vector-effect="non-scaling-stroke" points="`, pts.String(),
		`" data-times="`, times.String(), `" data-values="`, values.String(), `"/>`, "\n",
		`<text x="4" y="11" font-size="10" fill="#666">`, esc(p.Label(top)), `</text>`,
		`<text x="4" y="97" font-size="10" fill="#666">1 h ago</text>`,
		`<text x="596" y="97" font-size="10" fill="#666" text-anchor="end">now</text>`, "\n",
		"</svg></figure>\n")
}
