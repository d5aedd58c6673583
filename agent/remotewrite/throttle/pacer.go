// Package throttle keeps the sender within what a metered link allows: a
// Pacer for bytes per second (--remote-write.max-bytes-per-second) and a
// Budget for bytes per UTC day (--remote-write.max-bytes-per-day).
//
// Both take the time as an argument instead of reading a clock, so that
// tests can drive them with any clock; neither sleeps, and neither is safe
// for concurrent use: the caller serializes.
package throttle

import "time"

// Pacer spreads request bodies over time so that on average they use at
// most a given number of bytes per second: each request starts when the
// bytes before it have had their time. The zero value does not limit.
type Pacer struct {
	bytesPerSecond int64
	next           time.Time // when the next request may start
}

// NewPacer returns a Pacer for bytesPerSecond; 0 or less means no limit.
func NewPacer(bytesPerSecond int64) *Pacer {
	return &Pacer{bytesPerSecond: bytesPerSecond}
}

// Delay returns how long a request of n bytes must wait at now, and books
// its time as if it started then: call it once per request sent, retries
// included, since they use the link too. A clock stepped back delays the
// next request by as much; it never lets one go early.
func (p *Pacer) Delay(now time.Time, n int) time.Duration {
	if p.bytesPerSecond <= 0 {
		return 0
	}
	if p.next.Before(now) {
		p.next = now
	}
	wait := p.next.Sub(now)
	p.next = p.next.Add(time.Duration(float64(n) / float64(p.bytesPerSecond) * float64(time.Second)))
	return wait
}
