// Package memtrim gives memory that ferry holds but no longer uses back to
// the kernel: once, the pages of its own code and tables that only its
// start ran; and, on a schedule, the heap's free pages.
//
// Both are process-wide: only the agent's main calls Run.
package memtrim

import (
	"context"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// Schedule says when Run trims.
type Schedule struct {
	// ReleaseCodeAfter: this long after Run starts, ReleaseCode, once; 0:
	// never.
	ReleaseCodeAfter time.Duration
	// ReturnFreeEvery: the heap's free pages go back to the kernel this
	// often (a garbage collection, then all free pages at once; Go's own
	// scavenger keeps about a tenth above the heap's goal, and returns it
	// slowly); 0: never. The first time is ReturnFreeFirst after Run
	// starts: set between collections, when what a collection and its
	// requests allocated is garbage.
	ReturnFreeFirst, ReturnFreeEvery time.Duration
}

// Run trims on schedule until ctx ends. A failure to release the code (a
// kernel before 5.4, without MADV_PAGEOUT) is logged at debug level: the
// pages then stay mapped, as without Run.
func Run(ctx context.Context, s Schedule, log *slog.Logger) {
	var release, free <-chan time.Time
	if s.ReleaseCodeAfter > 0 {
		release = time.After(s.ReleaseCodeAfter)
	}
	next := time.Now().Add(s.ReturnFreeFirst)
	for {
		if s.ReturnFreeEvery > 0 && free == nil {
			free = time.After(time.Until(next))
			next = next.Add(s.ReturnFreeEvery) // on the schedule, not after the last one
		}
		select {
		case <-ctx.Done():
			return
		case <-release:
			release = nil
			if n, err := ReleaseCode(); err != nil {
				log.Debug("the pages of code only the start ran stay mapped", "err", err)
			} else {
				log.Debug("released the pages of code only the start ran", "mapped_bytes", n)
			}
		case <-free:
			free = nil
			debug.FreeOSMemory()
		}
	}
}

// span is an address range [start, end).
type span struct{ start, end uintptr }

// codeSpans returns the ranges that /proc/self/maps (maps) shows mapped
// read-only from the executable at path exe: its code and read-only data.
// Writable mappings (its data, copied on write) are left out.
func codeSpans(maps, exe string) []span {
	var out []span
	for _, line := range strings.Split(maps, "\n") {
		// address perms offset dev inode path
		f := strings.Fields(line)
		if len(f) < 6 || strings.Join(f[5:], " ") != exe || len(f[1]) < 2 || f[1][1] == 'w' {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		out = append(out, span{uintptr(start), uintptr(end)})
	}
	return out
}
