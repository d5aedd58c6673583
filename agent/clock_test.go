package agent

import (
	"context"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferry-agent/ferry/buffer"
	"github.com/ferry-agent/ferry/collectors"
)

// fakeClock is a clock source the test sets: a board's wall clock, its
// monotonic clock, and what the kernel says of the wall clock.
type fakeClock struct {
	r               reading
	isSynced, known bool
}

func (c *fakeClock) read() reading        { return c.r }
func (c *fakeClock) synced() (bool, bool) { return c.isSynced, c.known }
func (c *fakeClock) tick(d time.Duration) { c.r.wall, c.r.mono = c.r.wall.Add(d), c.r.mono+d }
func (c *fakeClock) set(wall time.Time)   { c.r.wall = wall }

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
	clock := &fakeClock{r: reading{wall: time.Unix(12, 0), mono: 12 * time.Second}} // booted at 1970
	a.clock = newClockGuard(clock, at("2026-06-01T00:00:00Z"), false, slog.New(slog.DiscardHandler))
	s := newSource("app/h:1", "app", "h:1", constant())

	for range 3 {
		a.collectOnce(context.Background(), s)
		clock.tick(15 * time.Second)
	}
	if got := stamps(t, a); len(got) != 0 {
		t.Fatalf("samples stamped while the clock read 1970: %v", got)
	}
	if st := a.clock.stats(); st.held != 3 {
		t.Errorf("%d samples held, want 3", st.held)
	}

	// NTP sets the clock 5 s before the next collection.
	clock.tick(10 * time.Second)
	clock.set(at("2026-11-24T12:00:00Z"))
	clock.tick(5 * time.Second)
	a.collectOnce(context.Background(), s)

	// 12:00:05 minus the monotonic time since each collection: 60, 45, 30 s.
	want := []string{"2026-11-24T11:59:05Z", "2026-11-24T11:59:20Z", "2026-11-24T11:59:35Z", "2026-11-24T12:00:05Z"}
	if got := stamps(t, a); !reflect.DeepEqual(got, want) {
		t.Errorf("stamped %v, want %v", got, want)
	}
	st := a.clock.stats()
	if st.held != 0 || st.dropped != 0 || st.jumps["forward"] != 1 || st.jumps["backward"] != 0 {
		t.Errorf("stats %+v, want nothing held or dropped, one forward jump", st)
	}
}

func TestClockGuardDropsWhatItCannotHold(t *testing.T) {
	a := testAgent(t, labels.EmptyLabels())
	clock := &fakeClock{r: reading{wall: time.Unix(0, 0).Add(time.Hour), mono: time.Hour}}
	a.clock = newClockGuard(clock, at("2026-06-01T00:00:00Z"), false, slog.New(slog.DiscardHandler))
	a.clock.maxHeld = 2
	s := newSource("app/h:1", "app", "h:1", constant())
	for range 3 {
		a.collectOnce(context.Background(), s)
		clock.tick(time.Second)
	}
	if st := a.clock.stats(); st.held != 2 || st.dropped != 1 {
		t.Errorf("held %d, dropped %d; want 2 and 1", st.held, st.dropped)
	}
}

func TestClockGuardRequireSync(t *testing.T) {
	a := testAgent(t, labels.EmptyLabels())
	// A stale but plausible time, as fake-hwclock or OpenWrt's sysfixtime
	// set at boot, with the kernel saying it is not synchronised.
	clock := &fakeClock{r: reading{wall: at("2026-10-01T08:00:00Z"), mono: time.Minute}, known: true}
	a.clock = newClockGuard(clock, at("2026-06-01T00:00:00Z"), true, slog.New(slog.DiscardHandler))
	s := newSource("app/h:1", "app", "h:1", constant())
	a.collectOnce(context.Background(), s)
	if got := stamps(t, a); len(got) != 0 {
		t.Fatalf("stamped %v before the clock was synchronised", got)
	}
	clock.tick(15 * time.Second)
	clock.set(at("2026-11-24T12:00:00Z"))
	clock.isSynced = true
	a.collectOnce(context.Background(), s)
	if got, want := stamps(t, a), []string{"2026-11-24T11:59:45Z", "2026-11-24T12:00:00Z"}; !reflect.DeepEqual(got, want) {
		t.Errorf("stamped %v, want %v", got, want)
	}

	// A kernel that cannot tell does not hold samples forever.
	clock.known, clock.isSynced = false, false
	clock.tick(15 * time.Second)
	a.collectOnce(context.Background(), s)
	if got := stamps(t, a); len(got) != 3 {
		t.Errorf("stamped %v, want a third sample when the kernel cannot say", got)
	}
}

func TestClockGuardCountsBackwardJumps(t *testing.T) {
	a := testAgent(t, labels.EmptyLabels())
	clock := &fakeClock{r: reading{wall: at("2026-11-24T12:00:00Z"), mono: time.Hour}}
	a.clock = newClockGuard(clock, at("2026-06-01T00:00:00Z"), false, slog.New(slog.DiscardHandler))
	s := newSource("app/h:1", "app", "h:1", constant())
	a.collectOnce(context.Background(), s)
	clock.tick(15 * time.Second)
	clock.set(clock.r.wall.Add(-time.Hour)) // an operator sets the clock back
	a.collectOnce(context.Background(), s)
	clock.tick(15 * time.Second)
	a.collectOnce(context.Background(), s)
	st := a.clock.stats()
	if st.jumps["backward"] != 1 || st.jumps["forward"] != 0 {
		t.Errorf("jumps %v, want one backward", st.jumps)
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
