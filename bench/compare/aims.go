package main

import (
	"fmt"
	"math"
	"strings"
)

// aim is one of ferry's targets, checked in every workload's run against
// the same run's peers.
type aim struct {
	label string
	prec  int
	value func(r *results) map[string]float64 // per agent; nil: not measured in this run
	check func(r *results, v map[string]float64) (met bool, how string)
}

var aims = []aim{
	{"fresh with the link up: of what was scraped more than two intervals earlier, % at the receiver (steady, every second, pooled) ≥ 99", 1,
		func(r *results) map[string]float64 {
			return r.perAgent("steady", func(p *phaseResult, n string) float64 { return p.fresh[n].pooled })
		}, atLeast(99, "%")},
	{"written to disk per sample with the link up (steady, bytes) ≤ 0.5", 2,
		func(r *results) map[string]float64 { return r.value("steady", rowWrittenPerSample) }, atMost(0.5, " B")},
	{"written to disk per sample during the outage ≤ 0.5× vmagent", 2,
		func(r *results) map[string]float64 { return r.value("outage", rowWrittenPerSample) }, ratioAtMost(0.5)},
	{"kill -9 mid-outage: % of the pre-kill backlog at the receiver at the end ≥ 95", 1,
		func(r *results) map[string]float64 {
			if r.killKept == nil {
				return nil
			}
			v := map[string]float64{}
			for n, k := range r.killKept {
				v[n] = div(100*float64(k[1]), float64(k[0]))
			}
			return v
		}, atLeast(95, "%")},
	{"first accepted request after the link returned (drain, s) ≤ 3", 1,
		func(r *results) map[string]float64 {
			return r.perAgent("drain", func(p *phaseResult, n string) float64 { return sec(p.drain[n].firstOK) })
		}, atMost(3, " s")},
	{"drain rate from the link's return (samples of the outage per second) faster than both peers", 0,
		func(r *results) map[string]float64 {
			return r.perAgent("drain", func(p *phaseResult, n string) float64 { return p.drain[n].rate(false) })
		}, fasterThanBoth},
	{"RSS median with the link up (steady, MiB) ≤ 10 (typical), 20 (heavy)", 1,
		func(r *results) map[string]float64 { return r.value("steady", rowRSSMedian) },
		func(r *results, v map[string]float64) (bool, string) { return atMost(r.wl.rssAim, " MiB")(r, v) }},
	{"CPU per sample (steady) ≤ 0.7× vmagent", 2,
		func(r *results) map[string]float64 { return r.value("steady", rowCPUPerSample) }, ratioAtMost(0.7)},
	{"wire bytes per sample (steady) ≤ 1× vmagent", 2,
		func(r *results) map[string]float64 { return r.value("steady", rowWirePerSample) }, ratioAtMost(1)},
	{"wire bytes per sample (drain) ≤ 0.5× vmagent", 2,
		func(r *results) map[string]float64 { return r.value("drain", rowWirePerSample) }, ratioAtMost(0.5)},
}

func atMost(limit float64, unit string) func(*results, map[string]float64) (bool, string) {
	return func(_ *results, v map[string]float64) (bool, string) {
		f := v["ferry"]
		if f <= limit {
			return true, fmt.Sprintf("met: %s%s ≤ %g%s", short(f), unit, limit, unit)
		}
		return false, fmt.Sprintf("missed by %s%s (%s%s > %g%s)", short(f-limit), unit, short(f), unit, limit, unit)
	}
}

func atLeast(limit float64, unit string) func(*results, map[string]float64) (bool, string) {
	return func(_ *results, v map[string]float64) (bool, string) {
		f := v["ferry"]
		if f >= limit {
			return true, fmt.Sprintf("met: %s%s ≥ %g%s", short(f), unit, limit, unit)
		}
		by := short(limit-f) + unit
		if unit == "%" {
			by = short(limit-f) + " points"
		}
		return false, fmt.Sprintf("missed by %s (%s%s < %g%s)", by, short(f), unit, limit, unit)
	}
}

func ratioAtMost(limit float64) func(*results, map[string]float64) (bool, string) {
	return func(_ *results, v map[string]float64) (bool, string) {
		ra := div(v["ferry"], v["vmagent"])
		if ra <= limit || (v["ferry"] == 0 && v["vmagent"] == 0) {
			return true, fmt.Sprintf("met: %s× ≤ %g×", short(ra), limit)
		}
		return false, fmt.Sprintf("missed by %s× (%s× > %g×)", short(ra-limit), short(ra), limit)
	}
}

func fasterThanBoth(_ *results, v map[string]float64) (bool, string) {
	f, va, pr := v["ferry"], v["vmagent"], v["prometheus"]
	how := fmt.Sprintf("%s× vmagent's, %s× prometheus'", short(div(f, va)), short(div(f, pr)))
	if f > va && f > pr {
		return true, "met: " + how
	}
	return false, "missed: " + how
}

// short formats a figure of an aim's verdict: two decimals below 10, one
// above.
func short(v float64) string {
	if math.Abs(v) < 10 {
		return num(v, 2)
	}
	return num(v, 1)
}

// aimsTable writes one line per aim and workload.
func aimsTable(b *strings.Builder, runs []*results) {
	b.WriteString("| aim | workload | ferry | vmagent | prometheus | ferry/vmagent | ferry/prometheus | verdict |\n|---|---|---|---|---|---|---|---|\n")
	for _, a := range aims {
		for _, r := range runs {
			v := a.value(r)
			if v == nil {
				fmt.Fprintf(b, "| %s | %s | | | | | | not measured: its phase did not run |\n", a.label, r.wl.name)
				continue
			}
			verdict := "not measured"
			if !math.IsNaN(v["ferry"]) {
				_, verdict = a.check(r, v)
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", a.label, r.wl.name,
				num(v["ferry"], a.prec), num(v["vmagent"], a.prec), num(v["prometheus"], a.prec),
				ratio(v["ferry"], v["vmagent"]), ratio(v["ferry"], v["prometheus"]), verdict)
		}
	}
}

// value returns a row of the phase tables for every agent; nil if the
// phase did not run.
func (r *results) value(phase, label string) map[string]float64 {
	for _, rw := range r.rows() {
		if rw.label == label {
			return r.perAgent(phase, rw.val)
		}
	}
	panic("no row " + label)
}

// perAgent returns f of the phase for every agent; nil if it did not run.
func (r *results) perAgent(phase string, f func(*phaseResult, string) float64) map[string]float64 {
	p := r.phase(phase)
	if p == nil {
		return nil
	}
	v := map[string]float64{}
	for _, n := range agentNames {
		v[n] = f(p, n)
	}
	return v
}
