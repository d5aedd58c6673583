package throttle

import "time"

// Budget caps the request bytes of a UTC day on a metered link, and keeps
// a quarter of them for fresh data: the backlog may go while more than a
// quarter of the day's budget is left, fresh data while any is. After an
// outage the device stays current, and the backlog drains over the days.
type Budget struct {
	perDay int64
	day    time.Time // the UTC day used counts
	used   int64
}

// NewBudget returns a Budget of bytesPerDay; 0 or less means no cap.
func NewBudget(bytesPerDay int64) *Budget {
	return &Budget{perDay: bytesPerDay}
}

// Allows reports whether a request may go at now: fresh data while the
// day's budget lasts, the backlog while more than a quarter of it is left.
// It looks only at what was spent before the request, so a request may
// overshoot the budget by its own size. The first call of a new UTC day
// (by now) starts the count again. Without a cap it is always true and
// the count is never reset.
func (b *Budget) Allows(now time.Time, fresh bool) bool {
	if b.perDay <= 0 {
		return true
	}
	reserve := int64(0)
	if !fresh {
		reserve = b.perDay / 4
	}
	now = now.UTC()
	if y, d := now.Year(), now.YearDay(); y != b.day.Year() || d != b.day.YearDay() {
		b.day, b.used = now, 0
	}
	return b.used+reserve < b.perDay
}

// Spend counts n bytes sent: call it for each request the receiver took.
func (b *Budget) Spend(n int) { b.used += int64(n) }

// Used returns the bytes counted on the day of the last Allows; without a
// cap, every byte since the start.
func (b *Budget) Used() int64 { return b.used }

// Limit returns the bytes per day; 0 or less: no cap.
func (b *Budget) Limit() int64 { return b.perDay }
