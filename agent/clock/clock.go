package agent

import (
	"log/slog"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/ferry-agent/ferry/internal/lograte"
	"github.com/prometheus/prometheus/model/labels"
)

// Many boards have no battery-backed clock: they boot at 1970, or at the
// time their image was built, until NTP sets the clock. A sample stamped
// then would be shipped with a false time, or dropped by the receiver as
// too old. The clock guard holds such samples with the monotonic time of
// their collection and stamps them once the wall clock is plausible:
// wall time now minus the monotonic time elapsed since. A jump of the wall
// clock is noticed by comparing it with the monotonic clock.

// reading is one look at both clocks.
type reading struct {
	wall time.Time     // may be wrong
	mono time.Duration // since an arbitrary start, never jumps
}

// clockSource reads both clocks, and says whether the kernel considers the
// wall clock synchronised (ok false: it cannot tell).
type clockSource interface {
	read() reading
	synced() (synced, ok bool)
}

// systemClock is the real clock source.
type systemClock struct{ start time.Time }

func (c systemClock) read() reading {
	now := time.Now()
	return reading{wall: now.Round(0), mono: now.Sub(c.start)}
}

// synced asks adjtimex: the kernel's status says STA_UNSYNC until a time
// daemon (ntpd, chronyd, systemd-timesyncd, busybox ntpd) has set it.
func (systemClock) synced() (bool, bool) {
	var tx syscall.Timex
	state, err := syscall.Adjtimex(&tx)
	if err != nil {
		return false, false
	}
	const timeError, staUnsync = 5, 0x0040
	return state != timeError && tx.Status&staUnsync == 0, true
}

// heldSample is a sample collected while the wall clock was not plausible.
type heldSample struct {
	lset labels.Labels
	mono time.Duration
	v    float64
}

// clockGuard decides when the wall clock may stamp samples, and holds the
// ones collected before that.
type clockGuard struct {
	src         clockSource
	floor       time.Time // no real time is earlier: when this binary was built
	requireSync bool      // also wait for the kernel to call the clock synchronised
	maxHeld     int
	log         *slog.Logger

	mu       sync.Mutex
	held     []heldSample
	dropped  uint64 // held samples beyond maxHeld
	jumps    map[string]uint64
	last     reading
	wasBad   bool
	unsetLog *lograte.Limiter // hourly while the clock stays implausible
}

// maxHeldSamples bounds the memory held samples take, about 100 bytes each:
// ten minutes of a thousand series at 15 s.
const maxHeldSamples = 40_000

// jumpThreshold is how far wall and monotonic time may drift apart between
// two readings before it counts as a jump rather than NTP slewing.
const jumpThreshold = 30 * time.Second

func newClockGuard(src clockSource, floor time.Time, requireSync bool, log *slog.Logger) *clockGuard {
	return &clockGuard{src: src, floor: floor, requireSync: requireSync, maxHeld: maxHeldSamples, log: log, unsetLog: &lograte.Limiter{Every: time.Hour},
		jumps: map[string]uint64{"forward": 0, "backward": 0}}
}

// buildTime is when this binary was built (the commit's time, from the Go
// build info), or a fixed date before ferry's first release.
func buildTime() time.Time {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.time" {
				if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
					return t
				}
			}
		}
	}
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
}

// now reads the clocks for a collection. ok says whether the wall clock
// may stamp samples; if not, they go to hold with r.mono. Samples held
// earlier are passed to release, stamped, as soon as the clock is good.
func (g *clockGuard) now(release func(lset labels.Labels, t int64, v float64)) (r reading, ok bool) {
	if g == nil { // an agent built without a guard: trust the clock
		return systemClock{}.read(), true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	r = g.src.read()
	g.noteJump(r)
	ok = !r.wall.Before(g.floor)
	if ok && g.requireSync {
		synced, known := g.src.synced()
		ok = synced || !known
	}
	if !ok {
		if !g.wasBad {
			g.unsetLog.Reset()
		}
		g.unsetLog.LogAt(r.wall, g.log, slog.LevelWarn, "the wall clock is not set yet: holding samples until it is", "wall_clock", r.wall.UTC(), "earliest_plausible", g.floor.UTC(), "require_sync", g.requireSync)
		g.wasBad = true
		return r, false
	}
	if g.wasBad {
		g.log.Info("the wall clock is set: stamping the held samples", "held", len(g.held), "dropped", g.dropped)
		g.wasBad = false
	}
	for _, h := range g.held {
		release(h.lset, r.wall.Add(h.mono-r.mono).UnixMilli(), h.v)
	}
	g.held = g.held[:0:0] // let the memory go
	return r, true
}

// hold keeps a sample collected at the monotonic time mono.
func (g *clockGuard) hold(lset labels.Labels, mono time.Duration, v float64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.held) >= g.maxHeld {
		g.dropped++
		return
	}
	g.held = append(g.held, heldSample{lset: lset, mono: mono, v: v})
}

// noteJump counts and logs a jump of the wall clock against the monotonic
// clock since the last reading. A forward jump from an unset clock is what
// releases the held samples; a backward one means samples stamped since the
// clock was last right carry times that are too late: the buffer drops the
// next ones of each series as out of order until the clock passes them.
func (g *clockGuard) noteJump(r reading) {
	defer func() { g.last = r }()
	if g.last.wall.IsZero() {
		return
	}
	drift := r.wall.Sub(g.last.wall) - (r.mono - g.last.mono)
	switch {
	case drift > jumpThreshold:
		g.jumps["forward"]++
	case drift < -jumpThreshold:
		g.jumps["backward"]++
	default:
		return
	}
	g.log.Warn("the wall clock jumped", "by", drift.Round(time.Second), "now", r.wall.UTC())
}

// clockStats are the guard's figures for ferry's own metrics.
type clockStats struct {
	held, dropped uint64
	jumps         map[string]uint64
}

func (g *clockGuard) stats() clockStats {
	if g == nil {
		return clockStats{jumps: map[string]uint64{}}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return clockStats{held: uint64(len(g.held)), dropped: g.dropped,
		jumps: map[string]uint64{"forward": g.jumps["forward"], "backward": g.jumps["backward"]}}
}
