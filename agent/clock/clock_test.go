package clock

import (
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// fakeClock is a clock source the test sets: a board's wall clock, its
// monotonic clock, and what the kernel says of the wall clock.
type fakeClock struct {
	r               Reading
	isSynced, known bool
}

func (c *fakeClock) Read() Reading        { return c.r }
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

var floor = at("2026-06-01T00:00:00Z")

// collect is what the agent does for one sample: stamp it if the clock is
// good, else hold it. It returns the stamps released or given, as RFC 3339.
func collect(g *Guard) []string {
	var out []string
	release := func(_ labels.Labels, t int64, _ float64) {
		out = append(out, time.UnixMilli(t).UTC().Format(time.RFC3339))
	}
	r, ok := g.Now(release)
	if ok {
		release(labels.EmptyLabels(), r.Wall.UnixMilli(), 1)
	} else {
		g.Hold(labels.FromStrings("__name__", "m"), r.Mono, 1)
	}
	return out
}

func TestGuardHoldsUntilTheClockIsSet(t *testing.T) {
	clock := &fakeClock{r: Reading{Wall: time.Unix(12, 0), Mono: 12 * time.Second}} // booted at 1970
	g := New(clock, floor, false, slog.New(slog.DiscardHandler))
	for range 3 {
		if got := collect(g); len(got) != 0 {
			t.Fatalf("stamped %v while the clock read 1970", got)
		}
		clock.tick(15 * time.Second)
	}
	if st := g.Stats(); st.Held != 3 {
		t.Errorf("%d samples held, want 3", st.Held)
	}

	// NTP sets the clock 5 s before the next collection.
	clock.tick(10 * time.Second)
	clock.set(at("2026-11-24T12:00:00Z"))
	clock.tick(5 * time.Second)
	// 12:00:05 minus the monotonic time since each collection: 60, 45, 30 s.
	want := []string{"2026-11-24T11:59:05Z", "2026-11-24T11:59:20Z", "2026-11-24T11:59:35Z", "2026-11-24T12:00:05Z"}
	if got := collect(g); !reflect.DeepEqual(got, want) {
		t.Errorf("stamped %v, want %v", got, want)
	}
	st := g.Stats()
	if st.Held != 0 || st.Dropped != 0 || st.Jumps[JumpForward] != 1 || st.Jumps[JumpBackward] != 0 {
		t.Errorf("stats %+v, want nothing held or dropped, one forward jump", st)
	}
}

func TestGuardDropsWhatItCannotHold(t *testing.T) {
	clock := &fakeClock{r: Reading{Wall: time.Unix(0, 0).Add(time.Hour), Mono: time.Hour}}
	g := New(clock, floor, false, slog.New(slog.DiscardHandler))
	g.maxHeld = 2
	for range 3 {
		collect(g)
		clock.tick(time.Second)
	}
	if st := g.Stats(); st.Held != 2 || st.Dropped != 1 {
		t.Errorf("held %d, dropped %d; want 2 and 1", st.Held, st.Dropped)
	}
}

func TestGuardRequireSync(t *testing.T) {
	// A stale but plausible time, as fake-hwclock or OpenWrt's sysfixtime
	// set at boot, with the kernel saying it is not synchronised.
	clock := &fakeClock{r: Reading{Wall: at("2026-10-01T08:00:00Z"), Mono: time.Minute}, known: true}
	g := New(clock, floor, true, slog.New(slog.DiscardHandler))
	if got := collect(g); len(got) != 0 {
		t.Fatalf("stamped %v before the clock was synchronised", got)
	}
	clock.tick(15 * time.Second)
	clock.set(at("2026-11-24T12:00:00Z"))
	clock.isSynced = true
	if got, want := collect(g), []string{"2026-11-24T11:59:45Z", "2026-11-24T12:00:00Z"}; !reflect.DeepEqual(got, want) {
		t.Errorf("stamped %v, want %v", got, want)
	}

	// A kernel that cannot tell does not hold samples forever.
	clock.known, clock.isSynced = false, false
	clock.tick(15 * time.Second)
	if got := collect(g); len(got) != 1 {
		t.Errorf("stamped %v, want the sample stamped when the kernel cannot say", got)
	}
}

func TestGuardCountsJumps(t *testing.T) {
	clock := &fakeClock{r: Reading{Wall: at("2026-11-24T12:00:00Z"), Mono: time.Hour}}
	g := New(clock, floor, false, slog.New(slog.DiscardHandler))
	collect(g)
	clock.tick(15 * time.Second)
	clock.set(clock.r.Wall.Add(-time.Hour)) // an operator sets the clock back
	collect(g)
	clock.tick(15 * time.Second)
	clock.r.Mono += 20 * time.Second // NTP slewing stays under the threshold
	collect(g)
	if st := g.Stats(); st.Jumps[JumpBackward] != 1 || st.Jumps[JumpForward] != 0 {
		t.Errorf("jumps %v, want one backward", st.Jumps)
	}
}

// A nil guard trusts the wall clock: an agent built without one.
func TestNilGuardTrustsTheClock(t *testing.T) {
	var g *Guard
	if r, ok := g.Now(nil); !ok || time.Since(r.Wall) > time.Minute {
		t.Errorf("Now: %v %v, want the wall clock, trusted", r, ok)
	}
	if st := g.Stats(); st.Held != 0 || st.Dropped != 0 {
		t.Errorf("Stats: %+v", st)
	}
}
