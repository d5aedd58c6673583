package client

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Error is a request that did not get a 2xx: the receiver's answer, or no
// answer (the network, a timeout, a canceled context). It carries the
// retry decision, so that nothing else has to know the status policy.
type Error struct {
	StatusCode int           // the answer's; 0 when there was none
	Retry      bool          // sending the same request again may succeed; false: it never will
	RetryAfter time.Duration // the receiver's Retry-After, at most maxRetryAfter; 0 without one
	msg        string        // the status and the start of the answer's body
	err        error         // the transport's error, when there was no answer
}

// Error reads as the answer's status and message, or as the transport's
// error: what the sender logs and shows as its last error.
func (e *Error) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return e.msg
}

// Unwrap returns the transport's error; nil for an answer.
func (e *Error) Unwrap() error { return e.err }

// outcome is what an answer's status means for the request.
type outcome int

const (
	delivered outcome = iota // the receiver has it
	retry                    // may succeed later: send it again after a backoff
	drop                     // retrying cannot change it: drop it and count it
)

// classify is the status policy, the one place that decides which answers
// are retried: Prometheus' queue manager's (retry 5xx and 429, drop other
// 4xx), with 408 retried too, since on a slow link it is often a proxy
// giving up, and redirects retried (and logged) since following one would
// turn the POST into a GET. Anything unexpected is retried: dropping data
// is the one thing that cannot be undone.
func classify(code int) outcome {
	switch {
	case code/100 == 2:
		return delivered
	case code == http.StatusTooManyRequests, code == http.StatusRequestTimeout, code/100 == 5:
		return retry
	case code/100 == 4:
		return drop
	default: // 3xx, and codes HTTP does not have
		return retry
	}
}

// answerError returns the *Error of an answer whose body starts with msg;
// nil for a 2xx.
func answerError(resp *http.Response, msg []byte) *Error {
	code := resp.StatusCode
	o := classify(code)
	if o == delivered {
		return nil
	}
	e := &Error{StatusCode: code, Retry: o == retry}
	switch code / 100 {
	case 4, 5:
		e.msg = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(msg))
		if e.Retry { // 429 and 503 are where receivers send it
			e.RetryAfter, _ = parseRetryAfter(resp.Header.Get("Retry-After"))
		}
	case 3:
		e.msg = fmt.Sprintf("%s to %q: ferry does not follow redirects; set --remote-write.url to the final address", resp.Status, resp.Header.Get("Location"))
	default:
		e.msg = fmt.Sprintf("unexpected answer %s", resp.Status)
	}
	return e
}

// maxRetryAfter caps a receiver's Retry-After: a far future (or a clock
// that is wrong) must not park the sender for a day.
const maxRetryAfter = 10 * time.Minute

// parseRetryAfter reads seconds or an HTTP date; far futures are capped.
func parseRetryAfter(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	const limit = maxRetryAfter
	var d time.Duration
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		// ParseUint saturates on overflow; cap before multiplying.
		d = time.Duration(min(secs, uint64(limit/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	} else {
		return 0, false
	}
	return min(max(d, 0), limit), true
}
