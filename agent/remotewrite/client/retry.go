package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Backoff is the wait between attempts: Min after the first failure,
// doubling after each further one up to Max.
type Backoff struct {
	Min, Max time.Duration
}

// Retry calls attempt with 1, 2, ... until it returns nil or an error that
// is not a retryable *Error, and returns that; or until ctx ends, and
// returns ctx.Err(). A retryable error waits the backoff, jittered over
// [d/2, d) so that a fleet back online does not retry in step, or the
// receiver's longer Retry-After. onRetry, if not nil, is called before
// each wait with the error, the attempt number and the wait: for counting
// and logging.
//
// A non-retryable error is returned even if ctx ended meanwhile: the
// receiver's answer is known, and the caller can account for it.
// Retry runs attempt and onRetry on the calling goroutine, one at a time.
func Retry(ctx context.Context, b Backoff, attempt func(try int) error, onRetry func(err *Error, try int, wait time.Duration)) error {
	backoff := b.Min
	for try := 1; ; try++ {
		err := attempt(try)
		var e *Error
		if err == nil || !errors.As(err, &e) || !e.Retry {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := max(jitter(backoff), e.RetryAfter)
		if onRetry != nil {
			onRetry(e, try, wait)
		}
		if !Sleep(ctx, wait) {
			return ctx.Err()
		}
		backoff = min(backoff*2, b.Max)
	}
}

// jitter spreads retries of a fleet over [d/2, d).
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// Sleep waits d or until ctx ends; it reports whether ctx is still live.
// It is Retry's wait, for the sender's other waits too.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
