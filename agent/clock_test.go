package agent

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferry-agent/ferry/agent/clock"
	"github.com/ferry-agent/ferry/buffer"
	"github.com/ferry-agent/ferry/collectors"
)

// These tests run the guard inside the agent: what reaches the buffer, and
// when. The guard's own tests are in agent/clock.

// fakeClock is a clock source the test sets: a board's wall clock, its
// monotonic clock, and what the kernel says of the wall clock.
type fakeClock struct {
	r               clock.Reading
	isSynced, known bool
}

func (c *fakeClock) Read() clock.Reading  { return c.r }
func (c *fakeClock) Synced() (bool, bool) { return c.isSynced, c.known }
func (c *fakeClock) tick(d time.Duration) { c.r.Wall, c.r.Mono = c.r.Wall.Add(d), c.r.Mono+d }
func (c *fakeClock) set(wall time.Time)   { c.r.Wall = wall }

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// stamps returns the times of metric m's samples in the buffer.
func stamps(t *testing.T, a *Agent) []string {
	t.Helper()
	if err := a.buf.Commit(); err != nil {
		t.Fatal(err)
	}
	var out []string
	a.buf.ForEach(func(b buffer.Block) error {
		for _, s := range b.Series {
			if s.Labels.Get("__name__") != "m" {
				continue
			}
			for _, ts := range s.T {
				out = append(out, time.UnixMilli(ts).UTC().Format(time.RFC3339))
			}
		}
		return nil
	})
	return out
}

func constant() collectors.Collector {
	return &scripted{steps: [][]collectors.Sample{{sample("__name__", "m")}}}
}

func TestClockGuardHoldsUntilTheClockIsSet(t *testing.T) {
	a := testAgent(t, labels.EmptyLabels())
	fc := &fakeClock{r: clock.Reading{Wall: time.Unix(12, 0), Mono: 12 * time.Second}} // booted at 1970
	a.clock = clock.New(fc, at("2026-06-01T00:00:00Z"), false, slog.New(slog.DiscardHandler))
	s := newSource("app/h:1", "app", "h:1", constant())

	for range 3 {
		a.collectOnce(context.Background(), s)
		fc.tick(15 * time.Second)
	}
	if got := stamps(t, a); len(got) != 0 {
		t.Fatalf("samples stamped while the clock read 1970: %v", got)
	}
	if st := a.clock.Stats(); st.Held != 3 {
		t.Errorf("%d samples held, want 3", st.Held)
	}

	// NTP sets the clock 5 s before the next collection.
	fc.tick(10 * time.Second)
	fc.set(at("2026-11-24T12:00:00Z"))
	fc.tick(5 * time.Second)
	a.collectOnce(context.Background(), s)

	// 12:00:05 minus the monotonic time since each collection: 60, 45, 30 s.
	want := []string{"2026-11-24T11:59:05Z", "2026-11-24T11:59:20Z", "2026-11-24T11:59:35Z", "2026-11-24T12:00:05Z"}
	if got := stamps(t, a); !reflect.DeepEqual(got, want) {
		t.Errorf("stamped %v, want %v", got, want)
	}
	st := a.clock.Stats()
	if st.Held != 0 || st.Dropped != 0 || st.Jumps[clock.JumpForward] != 1 || st.Jumps[clock.JumpBackward] != 0 {
		t.Errorf("stats %+v, want nothing held or dropped, one forward jump", st)
	}
}

// At a stop, the samples held for the clock are stamped if it was set
// since the last collection, and otherwise dropped and counted: no later
// run could stamp them.
func TestClockGuardAtAStop(t *testing.T) {
	for _, setBeforeStop := range []bool{true, false} {
		a := testAgent(t, labels.EmptyLabels())
		fc := &fakeClock{r: clock.Reading{Wall: time.Unix(12, 0), Mono: 12 * time.Second}}
		a.clock = clock.New(fc, at("2026-06-01T00:00:00Z"), false, slog.New(slog.DiscardHandler))
		s := newSource("app/h:1", "app", "h:1", constant())
		for range 2 {
			a.collectOnce(context.Background(), s)
			fc.tick(15 * time.Second)
		}
		if setBeforeStop {
			fc.set(at("2026-11-24T12:00:00Z"))
		}
		a.settleClock()
		got, st := stamps(t, a), a.clock.Stats()
		switch {
		case setBeforeStop && (!reflect.DeepEqual(got, []string{"2026-11-24T11:59:30Z", "2026-11-24T11:59:45Z"}) || st.Held != 0 || st.Dropped != 0):
			t.Errorf("clock set before the stop: stamped %v, stats %+v; want both samples stamped", got, st)
		case !setBeforeStop && (len(got) != 0 || st.Held != 0 || st.Dropped != 2):
			t.Errorf("clock still unset at the stop: stamped %v, stats %+v; want both held samples dropped and counted", got, st)
		}
	}
}

// TestClockGuardRandomWalk: whatever the wall clock does between
// collections (ticks, steps back, a reset to 1970, a jump to 2099 and back,
// the kernel's word on synchronisation coming and going), every sample
// collected is stamped into the buffer, held, or dropped with a count, up
// to the stop; none is stamped before the guard's floor; none is held past
// MaxHeld.
func TestClockGuardRandomWalk(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1970))
	floor := at("2026-06-01T00:00:00Z")
	for run := range 20 {
		a := testAgent(t, labels.EmptyLabels())
		fc := &fakeClock{r: clock.Reading{Wall: time.Unix(rng.Int64N(1e9), 0), Mono: time.Minute}, known: rng.IntN(2) == 0}
		if rng.IntN(2) == 0 {
			fc.r.Wall = at("2026-11-24T12:00:00Z")
		}
		requireSync := rng.IntN(2) == 0
		a.clock = clock.New(fc, floor, requireSync, slog.New(slog.DiscardHandler))
		s := newSource("app/h:1", "app", "h:1", constant())
		collections := 0
		for range 100 {
			switch rng.IntN(8) {
			case 0:
				fc.set(fc.r.Wall.Add(-time.Duration(1 + rng.Int64N(int64(24*time.Hour)))))
			case 1:
				fc.set(time.Unix(rng.Int64N(1e9), 0))
			case 2:
				fc.set(at("2099-01-01T00:00:00Z"))
			case 3:
				fc.set(at("2026-11-24T12:00:00Z").Add(time.Duration(rng.Int64N(int64(time.Hour)))))
			case 4:
				fc.isSynced, fc.known = rng.IntN(2) == 0, rng.IntN(4) != 0
			default:
				fc.tick(15 * time.Second)
				a.collectOnce(context.Background(), s)
				collections++
			}
			if st := a.clock.Stats(); st.Held > clock.MaxHeld {
				t.Fatalf("run %d: %d samples held, more than MaxHeld", run, st.Held)
			}
		}
		a.settleClock()
		got := stamps(t, a)
		for _, ts := range got {
			if at(ts).Before(floor) {
				t.Errorf("run %d: a sample stamped %s, before the floor", run, ts)
			}
		}
		cs, dropped := a.clock.Stats(), 0
		for _, n := range a.buf.Stats().Dropped {
			dropped += int(n)
		}
		if accounted := len(got) + int(cs.Held) + int(cs.Dropped) + dropped; accounted != collections || cs.Held != 0 {
			t.Errorf("run %d (require sync %v): %d collections; %d stamped, %d held, %d dropped by the guard, %d by the buffer",
				run, requireSync, collections, len(got), cs.Held, cs.Dropped, dropped)
		}
	}
}

func TestClockGuardRequireSync(t *testing.T) {
	a := testAgent(t, labels.EmptyLabels())
	// A stale but plausible time, as fake-hwclock or OpenWrt's sysfixtime
	// set at boot, with the kernel saying it is not synchronised.
	fc := &fakeClock{r: clock.Reading{Wall: at("2026-10-01T08:00:00Z"), Mono: time.Minute}, known: true}
	a.clock = clock.New(fc, at("2026-06-01T00:00:00Z"), true, slog.New(slog.DiscardHandler))
	s := newSource("app/h:1", "app", "h:1", constant())
	a.collectOnce(context.Background(), s)
	if got := stamps(t, a); len(got) != 0 {
		t.Fatalf("stamped %v before the clock was synchronised", got)
	}
	fc.tick(15 * time.Second)
	fc.set(at("2026-11-24T12:00:00Z"))
	fc.isSynced = true
	a.collectOnce(context.Background(), s)
	if got, want := stamps(t, a), []string{"2026-11-24T11:59:45Z", "2026-11-24T12:00:00Z"}; !reflect.DeepEqual(got, want) {
		t.Errorf("stamped %v, want %v", got, want)
	}

	// A kernel that cannot tell does not hold samples forever.
	fc.known, fc.isSynced = false, false
	fc.tick(15 * time.Second)
	a.collectOnce(context.Background(), s)
	if got := stamps(t, a); len(got) != 3 {
		t.Errorf("stamped %v, want a third sample when the kernel cannot say", got)
	}
}

func TestClockGuardCountsBackwardJumps(t *testing.T) {
	a := testAgent(t, labels.EmptyLabels())
	fc := &fakeClock{r: clock.Reading{Wall: at("2026-11-24T12:00:00Z"), Mono: time.Hour}}
	a.clock = clock.New(fc, at("2026-06-01T00:00:00Z"), false, slog.New(slog.DiscardHandler))
	s := newSource("app/h:1", "app", "h:1", constant())
	a.collectOnce(context.Background(), s)
	fc.tick(15 * time.Second)
	fc.set(fc.r.Wall.Add(-time.Hour)) // an operator sets the clock back
	a.collectOnce(context.Background(), s)
	fc.tick(15 * time.Second)
	a.collectOnce(context.Background(), s)
	st := a.clock.Stats()
	if st.Jumps[clock.JumpBackward] != 1 || st.Jumps[clock.JumpForward] != 0 {
		t.Errorf("jumps %v, want one backward", st.Jumps)
	}
	// The samples after the jump are older than the first: the buffer
	// drops them, counted, rather than storing a series out of order.
	if got := stamps(t, a); len(got) != 1 {
		t.Errorf("stamped %v, want only the sample before the jump", got)
	}
	if d := a.buf.Stats().Dropped[buffer.ReasonOutOfOrder]; d < 2 {
		t.Errorf("%d out-of-order drops, want at least the 2 samples of m after the jump", d)
	}
}
