// Package clock decides when the wall clock may stamp samples.
//
// Many boards have no battery-backed clock: they boot at 1970, or at the
// time their image was built, until NTP sets the clock. A sample stamped
// then would be shipped with a false time, or dropped by the receiver as
// too old. The Guard holds such samples with the monotonic time of their
// collection and stamps them once the wall clock is plausible: wall time
// now minus the monotonic time elapsed since. A jump of the wall clock is
// noticed by comparing it with the monotonic clock.
package clock

import (
	"log/slog"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferry-agent/ferry/internal/lograte"
)

// Reading is one look at both clocks.
type Reading struct {
	Wall time.Time     // may be wrong
	Mono time.Duration // since an arbitrary start, never jumps
}

// Source reads both clocks, and says whether the kernel considers the wall
// clock synchronised. The Guard calls it with its lock held, from the
// goroutines of the sources; an implementation must not block for long.
type Source interface {
	Read() Reading
	// Synced is false until a time daemon has set the clock; ok is false
	// when the kernel cannot tell.
	Synced() (synced, ok bool)
}

// System is the real clock source: the wall clock, and the monotonic time
// since System was called.
func System() Source { return systemClock{start: time.Now()} }

type systemClock struct{ start time.Time }

func (c systemClock) Read() Reading {
	now := time.Now()
	return Reading{Wall: now.Round(0), Mono: now.Sub(c.start)}
}

// Synced asks adjtimex: the kernel's status says STA_UNSYNC until a time
// daemon (ntpd, chronyd, systemd-timesyncd, busybox ntpd) has set it.
func (systemClock) Synced() (bool, bool) {
	var tx syscall.Timex
	state, err := syscall.Adjtimex(&tx)
	if err != nil {
		return false, false
	}
	const timeError, staUnsync = 5, 0x0040
	return state != timeError && tx.Status&staUnsync == 0, true
}

// Directions of a jump of the wall clock, the values of the self-metric's
// direction label.
const (
	JumpForward  = "forward"
	JumpBackward = "backward"
)

// JumpDirections lists every direction, for counters that start at zero.
var JumpDirections = []string{JumpForward, JumpBackward}

// heldSample is a sample collected while the wall clock was not plausible.
type heldSample struct {
	lset labels.Labels
	mono time.Duration
	v    float64
}

// Guard decides when the wall clock may stamp samples, and holds the ones
// collected before that, in memory and bounded: beyond MaxHeld it drops
// them, counted in Stats. A Guard is safe for concurrent use. A nil *Guard
// trusts the system's wall clock and holds nothing.
type Guard struct {
	src         Source
	floor       time.Time // no real time is earlier: when this binary was built
	requireSync bool      // also wait for the kernel to call the clock synchronised
	maxHeld     int
	log         *slog.Logger
	jumpLog     lograte.Limiter // a clock that keeps jumping

	mu       sync.Mutex
	held     []heldSample
	dropped  uint64 // held samples beyond maxHeld
	jumps    map[string]uint64
	last     Reading
	wasBad   bool
	unsetLog *lograte.Limiter // hourly while the clock stays implausible
}

// MaxHeld bounds the memory held samples take, about 100 bytes each: ten
// minutes of a thousand series at 15 s.
const MaxHeld = 40_000

// jumpThreshold is how far wall and monotonic time may drift apart between
// two readings before it counts as a jump rather than NTP slewing.
const jumpThreshold = 30 * time.Second

// New returns a guard reading src that trusts no wall time before floor
// (BuildTime in ferry) and, with requireSync, none before the kernel calls
// the clock synchronised. It logs to log when the clock is unset (hourly),
// set, or jumps.
func New(src Source, floor time.Time, requireSync bool, log *slog.Logger) *Guard {
	return &Guard{src: src, floor: floor, requireSync: requireSync, maxHeld: MaxHeld, log: log, unsetLog: &lograte.Limiter{Every: time.Hour},
		jumps: map[string]uint64{JumpForward: 0, JumpBackward: 0}}
}

// BuildTime is when this binary was built (the commit's time, from the Go
// build info), or a fixed date before ferry's first release.
func BuildTime() time.Time {
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

// Now reads the clocks for a collection. ok says whether the wall clock
// may stamp samples; if not, they go to Hold with r.Mono. Samples held
// earlier are passed to release, stamped, as soon as the clock is good;
// release runs with the guard's lock held and must not call the guard.
func (g *Guard) Now(release func(lset labels.Labels, t int64, v float64)) (r Reading, ok bool) {
	if g == nil {
		return systemClock{}.Read(), true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	r = g.src.Read()
	g.noteJump(r)
	ok = !r.Wall.Before(g.floor)
	if ok && g.requireSync {
		synced, known := g.src.Synced()
		ok = synced || !known
	}
	if !ok {
		if !g.wasBad {
			g.unsetLog.Reset()
		}
		g.unsetLog.LogAt(r.Wall, g.log, slog.LevelWarn, "the wall clock is not set yet: holding samples until it is", "wall_clock", r.Wall.UTC(), "earliest_plausible", g.floor.UTC(), "require_sync", g.requireSync)
		g.wasBad = true
		return r, false
	}
	if g.wasBad {
		g.log.Info("the wall clock is set: stamping the held samples", "held", len(g.held), "dropped", g.dropped)
		g.wasBad = false
	}
	for _, h := range g.held {
		release(h.lset, r.Wall.Add(h.mono-r.Mono).UnixMilli(), h.v)
	}
	g.held = g.held[:0:0] // let the memory go
	return r, true
}

// Hold keeps a sample collected at the monotonic time mono until Now finds
// the clock good, or drops it, counted, when MaxHeld samples wait already.
// The guard keeps lset; the caller must not modify it.
func (g *Guard) Hold(lset labels.Labels, mono time.Duration, v float64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.held) >= g.maxHeld {
		g.dropped++
		return
	}
	g.held = append(g.held, heldSample{lset: lset, mono: mono, v: v})
}

// Discard drops the held samples, counted in Stats.Dropped, and returns
// how many: at a stop with the clock still not good, they can never be
// stamped.
func (g *Guard) Discard() int {
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	n := len(g.held)
	g.dropped += uint64(n)
	g.held = nil
	return n
}

// noteJump counts and logs a jump of the wall clock against the monotonic
// clock since the last reading. A forward jump from an unset clock is what
// releases the held samples; a backward one means samples stamped since the
// clock was last right carry times that are too late: the buffer drops the
// next ones of each series as out of order until the clock passes them.
func (g *Guard) noteJump(r Reading) {
	defer func() { g.last = r }()
	if g.last.Wall.IsZero() {
		return
	}
	drift := r.Wall.Sub(g.last.Wall) - (r.Mono - g.last.Mono)
	switch {
	case drift > jumpThreshold:
		g.jumps[JumpForward]++
	case drift < -jumpThreshold:
		g.jumps[JumpBackward]++
	default:
		return
	}
	g.jumpLog.Log(g.log, slog.LevelWarn, "the wall clock jumped", "by", drift.Round(time.Second), "now", r.Wall.UTC())
}

// Stats are the guard's figures for ferry's own metrics and status page.
type Stats struct {
	Held    uint64            // samples waiting for the clock
	Dropped uint64            // samples beyond MaxHeld, or held at a stop (Discard), since the start
	Jumps   map[string]uint64 // by JumpDirections, since the start
}

// Stats returns the guard's figures now; the caller owns the map.
func (g *Guard) Stats() Stats {
	if g == nil {
		return Stats{Jumps: map[string]uint64{}}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return Stats{Held: uint64(len(g.held)), Dropped: g.dropped,
		Jumps: map[string]uint64{JumpForward: g.jumps[JumpForward], JumpBackward: g.jumps[JumpBackward]}}
}
