package main

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// result is one mode's run.
type result struct {
	mode, flags string
	devices     int
	startup     time.Duration

	backlogAtUp int64           // samples buffered by the fleet when the link came back
	drainTimes  []time.Duration // per drained device, from the reconnect, sorted
	undrained   int
	peakRate    float64 // samples/s appended over the 3 nodes (each sample twice)
	peakAt      time.Duration
	codes       map[string]float64 // receivers' answers by status code, from the reconnect on
	retries     int64              // ferry's failed attempts, whole run
	sent        int64
	dupDropped  int64
	rejected    int64
	rss         []int64 // KiB, each process's peak, sorted

	strictOK, strictBad, strictMissing, strictDup int
	strictErrs                                    []string
	stored                                        int64
	countOK, countShort, countOver                int
	countErrs                                     []string
}

// pass: every device drained its backlog, and every check held. Samples
// held beyond what ferry counted (countOver) are reported, not failed: an
// attempt whose answer was lost delivers without ferry knowing.
func (r *result) pass() bool {
	return r.undrained == 0 && r.strictBad == 0 && r.countShort == 0 && r.strictOK > 0
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return ds[min(len(ds)-1, int(p*float64(len(ds))))]
}

func pctK(ks []int64, p float64) float64 {
	if len(ks) == 0 {
		return 0
	}
	return float64(ks[min(len(ks)-1, int(p*float64(len(ks))))]) / 1024
}

func markdown(o options, rs []*result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Fleet: %d devices, %s offline, Thanos Receive 3 nodes RF 2\n\n", o.devices, o.offline)
	kill := fmt.Sprintf("receiver node 2 of 3 SIGKILLed %s after the reconnect and restarted %s later", o.killAfter, o.killFor)
	if o.killAfter <= 0 {
		kill = "no receiver node killed"
	}
	fmt.Fprintf(&b, "Measured %s; each ferry: host collectors + a 4-series scrape target every %s, one of %d tenants; "+
		"cut off %s after start, reconnected at once; %s.\n\n",
		time.Now().UTC().Format("2006-01-02"), o.interval, o.groups, o.warmup, kill)
	b.WriteString("| | " + strings.Join(names(rs), " | ") + " |\n|---|" + strings.Repeat("---|", len(rs)) + "\n")
	row := func(name string, f func(r *result) string) {
		b.WriteString("| " + name + " |")
		for _, r := range rs {
			b.WriteString(" " + f(r) + " |")
		}
		b.WriteString("\n")
	}
	row("ferry flags", func(r *result) string { return "`" + r.flags + "`" })
	row("backlog at reconnect (samples, fleet)", func(r *result) string { return fmt.Sprint(r.backlogAtUp) })
	row("all backlogs delivered after", func(r *result) string {
		if r.undrained > 0 {
			return fmt.Sprintf("%d devices not drained", r.undrained)
		}
		return pct(r.drainTimes, 1).Round(time.Second).String()
	})
	row("per device: median / p90", func(r *result) string {
		return fmt.Sprintf("%s / %s", pct(r.drainTimes, 0.5).Round(time.Second), pct(r.drainTimes, 0.9).Round(time.Second))
	})
	row("peak ingest, samples/s (both replicas / per replica)", func(r *result) string {
		return fmt.Sprintf("%.0f / %.0f (at +%s)", r.peakRate, r.peakRate/2, r.peakAt.Round(time.Second))
	})
	row("receivers' answers after the reconnect", func(r *result) string { return codes(r.codes) })
	row("ferry: failed attempts, retried (fleet)", func(r *result) string { return fmt.Sprint(r.retries) })
	row("ferry: refused as held already (duplicate) / rejected", func(r *result) string {
		return fmt.Sprintf("%d / %d", r.dupDropped, r.rejected)
	})
	row("ferry RSS peak per process: median / max", func(r *result) string {
		return fmt.Sprintf("%.1f / %.1f MiB", pctK(r.rss, 0.5), pctK(r.rss, 1))
	})
	row("strict check (target samples: value, timestamp, once)", func(r *result) string {
		if r.strictBad == 0 {
			return fmt.Sprintf("%d ok", r.strictOK)
		}
		return fmt.Sprintf("%d ok, %d bad (%d missing, %d twice)", r.strictOK, r.strictBad, r.strictMissing, r.strictDup)
	})
	row("counts, all series: devices held = delivered", func(r *result) string {
		s := fmt.Sprintf("%d of %d (%d samples)", r.countOK, r.devices, r.stored)
		if r.countShort > 0 || r.countOver > 0 {
			s += fmt.Sprintf("; %d short, %d over", r.countShort, r.countOver)
		}
		return s
	})
	row("result", func(r *result) string {
		if r.pass() {
			return "pass"
		}
		return "FAIL"
	})
	b.WriteString("\n")
	return b.String()
}

func names(rs []*result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.mode)
	}
	return out
}

func codes(m map[string]float64) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s: %.0f", k, m[k]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
