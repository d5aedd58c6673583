package main

import (
	"fmt"
	"io"
	"time"
)

// compare checks, sample for sample, what a boot recovered (cur) against
// what the boot before recovered (prev) and what the agent claimed in the
// run between them (last). Every sample recovered before must still be
// there; the samples claimed in the run are the new ones up to the newest
// claimed timestamp. New samples past it are the batch in flight: written
// by a commit whose claim did not reach the console before the cut.
func compare(prev, cur map[Sample]struct{}, last bootResult) row {
	vanished := 0
	for s := range prev {
		if _, ok := cur[s]; !ok {
			vanished++
		}
	}
	claimed := len(prev)
	var newest int64 = -1
	if last.claims > 0 {
		claimed, newest = last.claim.Samples, last.claim.Newest
	}
	newClaimed := max(0, claimed-len(prev))
	inClaimedRange := 0
	for s := range cur {
		if _, old := prev[s]; !old && s.T <= newest {
			inClaimedRange++
		}
	}
	lost := vanished + max(0, newClaimed-inClaimedRange)
	r := row{
		delay:      last.ran,
		commits:    last.claims,
		claimed:    claimed,
		newClaimed: newClaimed,
		found:      len(cur),
		lost:       lost,
		unclaimed:  max(0, len(cur)-(claimed-lost)),
		window:     last.ran,
	}
	if last.claims > 0 {
		r.window = time.Duration(last.lastEpoch*1000-newest) * time.Millisecond
	}
	return r
}

const tableHeader = "| cut | ran (s) | commits | claimed | found | lost | in flight | dup | uncommitted at cut (s) | file bytes | journal replayed | clean start |\n" +
	"|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|:---:|\n"

func formatRow(r row) string {
	clean := "yes"
	if !r.clean {
		clean = "NO: " + r.trouble
	}
	return fmt.Sprintf("| %d | %.0f | %d | %d | %d | %d | %d | %d | %.0f | %d | %s | %s |\n",
		r.cut, r.delay.Seconds(), r.commits, r.claimed, r.found, r.lost, r.unclaimed, r.dups,
		r.window.Seconds(), r.dataBytes, yesNo(r.replayed), clean)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func printRow(r row, first bool) {
	if first {
		fmt.Print(tableHeader)
	}
	fmt.Print(formatRow(r))
}

// totals sums a run up.
type totals struct {
	claimedInRuns, lost, unclaimed, dups, clean, replayed, commits int
	maxWindow                                                      time.Duration
	maxBytes                                                       int64
	ran                                                            time.Duration
	flushes                                                        int
	bytesFlushed                                                   int64
	pagesLost, pagesKept                                           int
}

func sum(rows []row) totals {
	var t totals
	for _, r := range rows {
		t.claimedInRuns += r.newClaimed
		t.lost += r.lost
		t.unclaimed += r.unclaimed
		t.dups += r.dups
		t.commits += r.commits
		if r.clean {
			t.clean++
		}
		if r.replayed {
			t.replayed++
		}
		t.maxWindow = max(t.maxWindow, r.window)
		t.maxBytes = max(t.maxBytes, r.dataBytes)
		t.ran += r.delay
		t.flushes += r.flushes
		t.bytesFlushed += r.bytesFlush
		t.pagesLost += r.pagesLost
		t.pagesKept += r.pagesKept
	}
	return t
}

func printTotals(w io.Writer, o options, rows []row, maxBytes int64, pass bool) {
	t := sum(rows)
	verdict := "PASS"
	if !pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "\n%s: %s\n", o.label, verdict)
	fmt.Fprintf(w, "cuts %d; clean starts %d/%d; journal replays %d\n", len(rows), t.clean, len(rows), t.replayed)
	fmt.Fprintf(w, "claimed in the runs %d samples over %d commits; lost %d; in flight (found, never claimed) %d; duplicated %d\n",
		t.claimedInRuns, t.commits, t.lost, t.unclaimed, t.dups)
	fmt.Fprintf(w, "largest buffer file %d bytes (cap %d); longest uncommitted stretch at a cut %.0f s (the loss window)\n",
		t.maxBytes, maxBytes, t.maxWindow.Seconds())
	fmt.Fprintf(w, "the agent ran %.0f s (guest clock) in all: %d disk flushes (%.1f/min), %d bytes made durable (%.1f per claimed sample)\n",
		t.ran.Seconds(), t.flushes, perMinute(t.flushes, t.ran), t.bytesFlushed, perSample(t.bytesFlushed, t.claimedInRuns))
	fmt.Fprintf(w, "unflushed 4 KiB pages at the cuts: %d lost, %d written out anyway (keep %.2f)\n", t.pagesLost, t.pagesKept, o.keep)
}

func perMinute(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Minutes()
}

func perSample(b int64, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(b) / float64(n)
}

func writeMarkdown(w io.Writer, o options, kvm bool, rows []row, maxBytes int64, pass bool) {
	accel := "TCG, -icount sleep=off"
	if kvm {
		accel = "KVM"
	}
	fmt.Fprintf(w, "\n### %s (%s, seed %d, %s)\n\n", o.label, time.Now().UTC().Format("2006-01-02"), o.seed, accel)
	fmt.Fprint(w, tableHeader)
	for _, r := range rows {
		fmt.Fprint(w, formatRow(r))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "```")
	printTotals(w, o, rows, maxBytes, pass)
	fmt.Fprintln(w, "```")
}
