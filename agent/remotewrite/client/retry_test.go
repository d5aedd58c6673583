package client

import (
	"testing"
	"time"
)

// The waits double from Min up to Max, each jittered into [d/2, d); a
// longer Retry-After wins; a success starts again from Min.
func TestBackoff(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 8 * time.Second}
	for i, full := range []time.Duration{1, 2, 4, 8, 8} {
		full *= time.Second
		if w := b.Failed(0); w < full/2 || w >= full {
			t.Fatalf("failure %d: wait %v, want in [%v, %v)", i+1, w, full/2, full)
		}
	}
	if w := b.Failed(time.Minute); w != time.Minute {
		t.Fatalf("with Retry-After 1m: wait %v", w)
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
