package main

import (
	"math"
	"slices"
	"time"
)

// deliveries tells, for one agent, how much of each scrape of the synthetic
// target its receiver had accepted at any moment: the scrapes are the
// moments the harness served the target to the agent, the arrivals what its
// proxy accepted of job="synth", by sample timestamp. Every agent stamps a
// scrape's samples with the moment it started it, before its request
// reaches the target, by as much as its own delays (seconds, on a busy
// machine): a sample belongs to the first scrape served at or after its
// timestamp less a little slack, if that is within one interval.
type deliveries struct {
	scrapes   []time.Time // in order
	perScrape int64       // samples in one scrape: the target's series
	arrivals  []arrival   // in the order accepted
	interval  time.Duration
}

// stampSlack is how much later than the moment the target served it an
// agent may stamp a scrape (one that stamps when the response is in).
const stampSlack = 500 * time.Millisecond

func (r *results) deliveries(agent string) deliveries {
	return deliveries{
		scrapes:   r.synth.scrapeTimes(agent),
		perScrape: int64(r.synth.series),
		arrivals:  r.agents[agent].proxy.takeArrivals(),
		interval:  r.cfg.interval,
	}
}

// scrapeOf returns the index of the scrape that sample timestamp ts (ms)
// belongs to, or -1.
func (d deliveries) scrapeOf(ts int64) int {
	t := time.UnixMilli(ts)
	i, _ := slices.BinarySearchFunc(d.scrapes, t.Add(-stampSlack), func(s, t time.Time) int { return s.Compare(t) })
	if i == len(d.scrapes) || d.scrapes[i].Sub(t) >= d.interval-stampSlack {
		return -1
	}
	return i
}

// window returns the indexes [lo, hi) of the scrapes served in [from, to).
func (d deliveries) window(from, to time.Time) (lo, hi int) {
	cmp := func(s, t time.Time) int { return s.Compare(t) }
	lo, _ = slices.BinarySearchFunc(d.scrapes, from, cmp)
	hi, _ = slices.BinarySearchFunc(d.scrapes, to, cmp)
	return lo, max(lo, hi)
}

// share returns the samples of the scrapes served in [from, to) and how many
// of them the receiver had accepted by the moment by (duplicates, such as
// those resent after a crash, count once).
func (d deliveries) share(from, to, by time.Time) (served, arrived int64) {
	lo, hi := d.window(from, to)
	got := make([]int64, hi-lo)
	for _, a := range d.arrivals {
		if a.at.After(by) {
			continue
		}
		if i := d.scrapeOf(a.ts); i >= lo && i < hi {
			got[i-lo] += int64(a.n)
		}
	}
	for _, g := range got {
		arrived += min(g, d.perScrape)
	}
	return int64(hi-lo) * d.perScrape, arrived
}

// completeAt returns the moment the receiver held every sample of the
// scrapes served in [from, to); false if it does not yet. With no scrape in
// the window it is complete at from.
func (d deliveries) completeAt(from, to time.Time) (time.Time, bool) {
	lo, hi := d.window(from, to)
	if lo == hi {
		return from, true
	}
	arrivals := slices.Clone(d.arrivals)
	slices.SortStableFunc(arrivals, func(a, b arrival) int { return a.at.Compare(b.at) })
	got := make([]int64, hi-lo)
	missing := hi - lo
	for _, a := range arrivals {
		i := d.scrapeOf(a.ts)
		if i < lo || i >= hi || got[i-lo] >= d.perScrape {
			continue
		}
		got[i-lo] += int64(a.n)
		if got[i-lo] >= d.perScrape {
			if missing--; missing == 0 {
				return a.at, true
			}
		}
	}
	return time.Time{}, false
}

// freshness is, over a link-up stretch, how much of what an agent had
// collected more than lag earlier its receiver held, looked at every step.
type freshness struct {
	pooled  float64 // % of every moment's samples summed: Σ arrived / Σ served
	worst   float64 // % at the worst moment
	moments int
}

// freshness looks at moments m every step in (from+lag, to]: of the scrapes
// served in [from, m-lag), the share at the receiver at m.
func (d deliveries) freshness(from, to time.Time, lag, step time.Duration) freshness {
	f := freshness{pooled: math.NaN(), worst: math.NaN()}
	var served, arrived int64
	for m := from.Add(lag + step); !m.After(to); m = m.Add(step) {
		s, a := d.share(from, m.Add(-lag), m)
		if s == 0 {
			continue
		}
		served += s
		arrived += a
		pct := 100 * float64(a) / float64(s)
		if f.moments == 0 || pct < f.worst {
			f.worst = pct
		}
		f.moments++
	}
	if served > 0 {
		f.pooled = 100 * float64(arrived) / float64(served)
	}
	return f
}
