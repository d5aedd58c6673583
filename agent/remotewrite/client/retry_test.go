package client

import (
	"testing"
	"time"
)

// The waits double from Min up to Max, each jittered into [d/2, d); a
// longer Retry-After wins, spread over a quarter more; a success starts
// again from Min.
func TestBackoff(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 8 * time.Second}
	for i, full := range []time.Duration{1, 2, 4, 8, 8} {
		full *= time.Second
		if w := b.Failed(0); w < full/2 || w >= full {
			t.Fatalf("failure %d: wait %v, want in [%v, %v)", i+1, w, full/2, full)
		}
	}
	if w := b.Failed(time.Minute); w < time.Minute || w >= time.Minute+15*time.Second {
		t.Fatalf("with Retry-After 1m: wait %v, want in [1m, 1m15s)", w)
	}
	b.Reset()
	if w := b.Failed(0); w >= time.Second {
		t.Fatalf("after Reset: wait %v, want under Min", w)
	}
}

func TestJitter(t *testing.T) {
	for range 100 {
		if d := jitter(time.Second); d < time.Second/2 || d >= time.Second {
			t.Fatalf("jitter(1s) = %v, want in [0.5s, 1s)", d)
		}
	}
	if jitter(0) != 0 || jitter(1) != 1 {
		t.Fatal("jitter of 0 or 1ns must be itself")
	}
}

// A fleet told the same Retry-After at once does not come back in step:
// every device waits at least that long, and they spread over the next
// quarter of it instead of all returning in the same second.
func TestRetryAfterSpreadsAFleet(t *testing.T) {
	const devices = 200
	retryAfter := 40 * time.Second
	first, last := time.Duration(1<<62), time.Duration(0)
	for range devices {
		b := Backoff{Min: time.Second, Max: 2 * time.Second}
		w := b.Failed(retryAfter)
		if w < retryAfter {
			t.Fatalf("wait %v is shorter than Retry-After %v", w, retryAfter)
		}
		first, last = min(first, w), max(last, w)
	}
	// 200 uniform draws over 10 s all within one second of each other:
	// a chance of about 200 * 0.1^199.
	if last-first < time.Second {
		t.Fatalf("%d devices told Retry-After %v come back within %v of each other", devices, retryAfter, last-first)
	}
}
