package throttle

import (
	"testing"
	"time"
)

// TestPacerHoldsTheAverageRate: the delays it asks for add up so that the
// bytes sent never run ahead of the rate, whatever the request sizes.
func TestPacerHoldsTheAverageRate(t *testing.T) {
	p := NewPacer(1000)
	now := time.Unix(0, 0)
	sent := 0
	for i, n := range []int{500, 1500, 10, 3000, 700} {
		now = now.Add(p.Delay(now, n)) // the sender sleeps, then sends
		if allowed := 1000 * now.Sub(time.Unix(0, 0)).Seconds(); float64(sent) > allowed+1e-6 {
			t.Fatalf("request %d starts at %s after %d bytes: faster than 1000 B/s", i, now.Sub(time.Unix(0, 0)), sent)
		}
		sent += n
	}
	if got := now.Sub(time.Unix(0, 0)); got != 5010*time.Millisecond {
		t.Fatalf("last request starts at %s, want 5.01s (the 5010 bytes before it at 1000 B/s)", got)
	}
	if (&Pacer{}).Delay(now, 1<<30) != 0 {
		t.Fatal("no limit must mean no delay")
	}
}
