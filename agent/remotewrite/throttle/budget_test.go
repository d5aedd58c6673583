package throttle

import (
	"testing"
	"time"
)

// TestBudgetKeepsAQuarterForFreshData walks a day of 400 bytes in steps of
// 100: the backlog stops at 300, fresh data at 400, and the next UTC day
// (not the next 24 hours) starts again.
func TestBudgetKeepsAQuarterForFreshData(t *testing.T) {
	day := time.Date(2025, 3, 30, 22, 0, 0, 0, time.FixedZone("CEST", 2*3600)) // 20:00 UTC
	b := NewBudget(400)
	for _, step := range []struct {
		at           time.Time
		spend        int
		fresh, allow bool
		used         int64 // after the step
	}{
		{day, 100, false, true, 100},
		{day, 100, false, true, 200},
		{day, 100, false, true, 300},
		{day, 0, false, false, 300}, // a quarter left: the backlog waits
		{day, 100, true, true, 400}, // fresh data takes it
		{day, 0, true, false, 400},
		{day.Add(3*time.Hour + 59*time.Minute), 0, true, false, 400}, // 23:59 UTC
		{day.Add(4 * time.Hour), 100, false, true, 100},              // 00:00 UTC: a new day
	} {
		if got := b.Allows(step.at, step.fresh); got != step.allow {
			t.Fatalf("at %s with %d used, fresh=%v: Allows = %v, want %v", step.at.UTC(), b.Used(), step.fresh, got, step.allow)
		}
		if step.allow {
			b.Spend(step.spend)
		}
		if b.Used() != step.used {
			t.Fatalf("at %s: used %d, want %d", step.at.UTC(), b.Used(), step.used)
		}
	}
}

// A request may overshoot by its own size: only what was spent before it
// counts.
func TestBudgetOvershootsByOneRequest(t *testing.T) {
	now := time.Unix(0, 0)
	b := NewBudget(400)
	if !b.Allows(now, true) {
		t.Fatal("an unused budget refuses")
	}
	b.Spend(1000)
	if b.Allows(now, true) {
		t.Fatal("an overspent budget allows")
	}
}

func TestBudgetWithoutCap(t *testing.T) {
	now := time.Unix(0, 0)
	b := NewBudget(0)
	for range 3 {
		if !b.Allows(now, false) {
			t.Fatal("no cap must always allow")
		}
		b.Spend(1 << 30) // fits a 32-bit int
		now = now.Add(48 * time.Hour)
	}
	if b.Used() != 3<<30 {
		t.Fatalf("used %d, want every byte since the start", b.Used())
	}
}
