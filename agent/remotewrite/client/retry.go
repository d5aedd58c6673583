package client

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is the wait between attempts while a receiver fails: Min after
// the first failure, doubling after each further one up to Max, jittered
// over [d/2, d) so that a fleet back online does not retry in step. The
// zero value waits nothing. A Backoff is one sender's: not safe for
// concurrent use.
type Backoff struct {
	Min, Max time.Duration
	next     time.Duration // 0: no failure since the last success
}

// Failed returns how long to wait after one more failure: the backoff, or
// the receiver's Retry-After (retryAfter, 0 if none) when that is longer.
// A Retry-After is honoured as the least wait and spread over a quarter
// more: a receiver that tells a whole fleet "30" at once would otherwise
// get it back in one second, 30 seconds later.
func (b *Backoff) Failed(retryAfter time.Duration) time.Duration {
	if b.next == 0 {
		b.next = b.Min
	}
	wait := jitter(b.next)
	if retryAfter > 0 {
		wait = max(wait, retryAfter+spread(retryAfter/4))
	}
	b.next = min(b.next*2, b.Max)
	return wait
}

// Reset starts again from Min: the receiver took a request.
func (b *Backoff) Reset() { b.next = 0 }

// jitter spreads retries of a fleet over [d/2, d).
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// spread is uniform over [0, d).
func spread(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

// Sleep waits d or until ctx ends; it reports whether ctx is still live.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
