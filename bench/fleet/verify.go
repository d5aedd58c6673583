package main

import (
	"context"
	"fmt"
	"log"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The timestamp ferry gives a scrape is taken before the target answers:
// within this much before the target served it (a loaded machine with
// hundreds of processes), and never after it by more than clock rounding.
const (
	stampBefore = 10 * time.Second
	stampAfter  = time.Second
)

// verify checks through Thanos Query (deduplicated over the replica label,
// partial answers refused):
//
//   - strictly, for every device and every series of its scrape target:
//     every scrape served before the freeze is there exactly once, with
//     its value (the scrape's number) and a timestamp of when it was
//     served; nothing is there twice, nothing that was not served;
//   - by counts, for every device and all its series (host collectors,
//     ferry's own, the target's): the samples the receivers hold are the
//     samples ferry counted as delivered, plus those it sent again and the
//     receiver refused as held already (counted as duplicates).
func verify(ctx context.Context, o options, r *result, queryAddr string, tgt *target, devs []*device, start, freeze time.Time) error {
	at := time.Now()
	window := at.Sub(start) + time.Minute
	rng := strconv.Itoa(int(window.Seconds())) + "s"
	// What was served more than two intervals before the freeze must be
	// there; later scrapes may be, or still wait on the device.
	cutoff := freeze.Add(-2 * o.interval).UnixMilli()

	res, err := instantQuery(ctx, queryAddr, "fleet_probe["+rng+"]", at)
	if err != nil {
		return err
	}
	type key struct{ dev, series int }
	got := map[key][][2]any{}
	for _, s := range res {
		d, err1 := strconv.Atoi(strings.TrimPrefix(s.Metric["fleet_device"], "dev-"))
		k, err2 := strconv.Atoi(s.Metric["series"])
		if err1 != nil || err2 != nil || d < 0 || d >= len(devs) {
			r.strictErrs = append(r.strictErrs, fmt.Sprintf("unexpected series %v", s.Metric))
			continue
		}
		if _, dup := got[key{d, k}]; dup {
			r.strictErrs = append(r.strictErrs, fmt.Sprintf("series %v twice (a label differs: %v)", key{d, k}, s.Metric))
		}
		got[key{d, k}] = append(got[key{d, k}], s.Values...)
	}
	for d := range devs {
		served := tgt.servedTimes(d)
		for k := range probeSeries {
			seen := make([]bool, len(served))
			for _, p := range got[key{d, k}] {
				ts, v, err := point(p)
				if err != nil || math.IsNaN(v) || v != math.Trunc(v) || v < 1 || int(v) > len(served) {
					r.addStrict("dev-%04d series %d: sample %v was never served", d, k, p)
					continue
				}
				n := int(v)
				if seen[n-1] {
					r.addStrict("dev-%04d series %d: scrape %d twice", d, k, n)
					r.strictDup++
					continue
				}
				seen[n-1] = true
				if s := served[n-1]; ts < s-stampBefore.Milliseconds() || ts > s+stampAfter.Milliseconds() {
					r.addStrict("dev-%04d series %d: scrape %d stamped %s, served %s", d, k, n, time.UnixMilli(ts).Format(time.RFC3339Nano), time.UnixMilli(s).Format(time.RFC3339Nano))
				}
				r.strictOK++
			}
			for n, s := range served {
				if s <= cutoff && !seen[n] {
					r.addStrict("dev-%04d series %d: scrape %d (served %s) missing", d, k, n+1, time.UnixMilli(s).Format(time.RFC3339))
					r.strictMissing++
				}
			}
		}
	}

	// Counts per device, every series: the raw samples, counted here (a
	// count_over_time would merge series that differ only by name).
	stored := map[string]int64{}
	holes := map[string]string{}
	var mu sync.Mutex
	var qerr error
	sentBy := func(d *device) int64 { return int64(d.final.sum("ferry_remote_write_samples_sent_total")) }
	forEach(devs, func(d *device) {
		res, err := instantQuery(ctx, queryAddr, `{fleet_device="`+d.name+`"}[`+rng+`]`, at)
		var n int64
		for _, s := range res {
			for _, p := range s.Values {
				if _, v, err := point(p); err == nil && !math.IsNaN(v) {
					n++
				}
			}
		}
		h := ""
		if err == nil && n < sentBy(d) {
			h = findHoles(res) // only for a device that falls short
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			qerr = err
			return
		}
		stored[d.name], holes[d.name] = n, h
	})
	if qerr != nil {
		return qerr
	}
	for _, d := range devs {
		sent := sentBy(d)
		dup := int64(d.final.sum("ferry_remote_write_dropped_samples_total", `reason="duplicate"`))
		st := stored[d.name]
		r.stored += st
		switch {
		case st < sent:
			r.countShort++
			r.addCount("%s: receivers hold %d samples, ferry delivered %d; %s", d.name, st, sent, holes[d.name])
		case st > sent+dup:
			r.countOver++
			r.addCount("%s: receivers hold %d samples, ferry delivered %d and %d refused as held", d.name, st, sent, dup)
		default:
			r.countOK++
		}
	}
	if !r.pass() {
		for _, e := range r.strictErrs {
			log.Printf("fleet: %s: %s", r.mode, e)
		}
		for _, e := range r.countErrs {
			log.Printf("fleet: %s: %s", r.mode, e)
		}
	}
	return nil
}

const maxErrs = 20

// findHoles names what a device's stored series lack: the collection
// times (the timestamps its other series of the same job have) inside a
// series' own span that the series does not have, grouped by time. For a
// count that falls short, it tells a lost request (many series, one time)
// from a series' end or a scrape that failed.
func findHoles(res []promSeries) string {
	stamps := map[string]map[int64]bool{} // job: every timestamp seen
	have := make([]map[int64]bool, len(res))
	for i, s := range res {
		job := s.Metric["job"]
		if stamps[job] == nil {
			stamps[job] = map[int64]bool{}
		}
		have[i] = map[int64]bool{}
		for _, p := range s.Values {
			if ts, _, err := point(p); err == nil {
				have[i][ts] = true
				stamps[job][ts] = true
			}
		}
	}
	missing := map[int64][]string{}
	total := 0
	for i, s := range res {
		first, last := int64(math.MaxInt64), int64(math.MinInt64)
		for ts := range have[i] {
			first, last = min(first, ts), max(last, ts)
		}
		for ts := range stamps[s.Metric["job"]] {
			if ts > first && ts < last && !have[i][ts] {
				missing[ts] = append(missing[ts], s.Metric["__name__"])
				total++
			}
		}
	}
	if total == 0 {
		return "no holes inside any series' span"
	}
	times := slices.Sorted(maps.Keys(missing))
	var b strings.Builder
	fmt.Fprintf(&b, "%d samples missing inside series' spans:", total)
	for i, ts := range times {
		if i == 5 {
			fmt.Fprintf(&b, " and at %d more times", len(times)-i)
			break
		}
		names := missing[ts]
		slices.Sort(names)
		fmt.Fprintf(&b, " at %s %d series (%s", time.UnixMilli(ts).UTC().Format("15:04:05.000"), len(names), names[0])
		if len(names) > 1 {
			fmt.Fprintf(&b, ", %s", names[len(names)-1])
		}
		b.WriteString(");")
	}
	return b.String()
}

func (r *result) addStrict(format string, args ...any) {
	r.strictBad++
	if len(r.strictErrs) < maxErrs {
		r.strictErrs = append(r.strictErrs, fmt.Sprintf(format, args...))
	}
}

func (r *result) addCount(format string, args ...any) {
	if len(r.countErrs) < maxErrs {
		r.countErrs = append(r.countErrs, fmt.Sprintf(format, args...))
	}
}
