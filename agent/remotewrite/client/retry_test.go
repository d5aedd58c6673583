package client

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRetry(t *testing.T) {
	again := &Error{Retry: true, msg: "503"}
	never := &Error{StatusCode: 400, msg: "400"}
	b := Backoff{Min: time.Millisecond, Max: 2 * time.Millisecond}
	for _, tc := range []struct {
		name    string
		answers []error // by attempt; the last one repeats
		want    error
		tries   int
	}{
		{"first time", []error{nil}, nil, 1},
		{"after failures", []error{again, again, again, nil}, nil, 4},
		{"dropped at once", []error{never}, never, 1},
		{"dropped after failures", []error{again, never}, never, 2},
		{"not an *Error ends it", []error{context.Canceled}, context.Canceled, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tries, retries := 0, 0
			err := Retry(context.Background(), b, func(try int) error {
				tries++
				if try != tries {
					t.Errorf("attempt %d called with %d", tries, try)
				}
				return tc.answers[min(try, len(tc.answers))-1]
			}, func(err *Error, try int, wait time.Duration) {
				retries++
				if err != again || try != retries || wait > b.Max {
					t.Errorf("onRetry(%v, %d, %v)", err, try, wait)
				}
			})
			if err != tc.want || tries != tc.tries || retries != tc.tries-1 {
				t.Errorf("err %v after %d attempts, %d retries; want %v after %d", err, tries, retries, tc.want, tc.tries)
			}
		})
	}
}

// The receiver's Retry-After wins over a shorter backoff, and a context
// that ends while waiting ends Retry with its error.
func TestRetryWaitsRetryAfterAndStopsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var waits []time.Duration
	err := Retry(ctx, Backoff{Min: time.Millisecond, Max: time.Millisecond}, func(int) error {
		return &Error{Retry: true, RetryAfter: time.Hour}
	}, func(_ *Error, _ int, wait time.Duration) {
		waits = append(waits, wait)
		cancel()
	})
	if !errors.Is(err, context.Canceled) || len(waits) != 1 || waits[0] != time.Hour {
		t.Fatalf("err %v, waits %v; want canceled after one wait of 1h", err, waits)
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
