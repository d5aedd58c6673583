package client

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error is a request that did not get a 2xx: the receiver's answer, or no
// answer (the network, a timeout, a canceled context). It carries the
// retry decision, so that nothing else has to know the status policy.
// An Error is a value: it is not modified once Post returns it.
type Error struct {
	StatusCode int           // the answer's; 0 when there was none
	Retry      bool          // sending the same request again may succeed; false: it never will
	TooLarge   bool          // 413: the request is over the receiver's size limit; smaller ones may pass (Retry is false)
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
	drop                     // the receiver refuses this payload: retrying cannot change it; drop it and count it
	split                    // too large for the receiver: send it in smaller parts
)

// classify is the status policy, the one place that decides which answers
// are retried. Only what the receiver says about the payload drops it: 400
// (malformed, out of order, too old), 409 (Thanos' answer to out-of-order
// and duplicate samples), 422 (unprocessable), and 415 (the sender has
// already fallen back from 2.0 to 1.0 when it gets it; no other encoding is
// left to try). 413 splits the request. Everything else is retried with
// backoff, because it is about the device, its network or the receiver's
// state, and the same request may pass later: 401 and 403 (an expired
// token file, a captive portal), 404 and 405 (a proxy or portal answering
// for the receiver, a receiver not yet configured), 407 (proxy
// authentication), 408 and 429, 5xx, redirects (following one would turn
// the POST into a GET), and codes HTTP does not have. Dropping data is the
// one thing that cannot be undone; see also isHTML in answerError.
func classify(code int) outcome {
	switch {
	case code/100 == 2:
		return delivered
	case code == http.StatusBadRequest, code == http.StatusConflict,
		code == http.StatusUnprocessableEntity, code == http.StatusUnsupportedMediaType:
		return drop
	case code == http.StatusRequestEntityTooLarge:
		return split
	default:
		return retry
	}
}

// hints say what an answer that is not about the payload usually means, for the log and the status page.
var hints = map[int]string{
	http.StatusUnauthorized:                  "check the credentials (an expired token or password file?); retrying",
	http.StatusForbidden:                     "check the credentials and the URL (a captive portal or proxy?); retrying",
	http.StatusNotFound:                      "check --remote-write.url (a captive portal or proxy?); retrying",
	http.StatusMethodNotAllowed:              "check --remote-write.url; retrying",
	http.StatusProxyAuthRequired:             "the proxy wants credentials (--remote-write.proxy-url user:password@); retrying",
	http.StatusRequestEntityTooLarge:         "sending it in smaller parts",
	http.StatusUnavailableForLegalReasons:    "a portal or filter on the network?; retrying",
	http.StatusNetworkAuthenticationRequired: "a captive portal wants a login; retrying",
}

// answerError returns the *Error of an answer whose body starts with msg;
// nil for a 2xx, unless its body is an HTML page.
func answerError(resp *http.Response, msg []byte) *Error {
	code := resp.StatusCode
	o := classify(code)
	if o == delivered {
		if len(bytes.TrimSpace(msg)) == 0 || !isHTML(resp, msg) {
			return nil
		}
		// Receivers acknowledge with an empty or plain-text body; a 2xx
		// with an HTML page is a captive portal's login page or a proxy's,
		// and the receiver never saw the request.
		o = retry
	}
	if o == drop && isHTML(resp, msg) {
		// Receivers answer in plain text; an HTML page is a portal, a
		// proxy or a load balancer speaking for them: not about the payload.
		o = retry
	}
	e := &Error{StatusCode: code, Retry: o == retry, TooLarge: o == split}
	switch code / 100 {
	case 4, 5:
		body := bytes.TrimSpace(msg)
		switch {
		case isHTML(resp, msg) && o == split:
			body = []byte("(an HTML page: a proxy's limit?)")
		case isHTML(resp, msg):
			body = []byte("(an HTML page: not the receiver's answer? retrying)")
		}
		e.msg = fmt.Sprintf("%s: %s", resp.Status, body)
		if h := hints[code]; h != "" {
			e.msg += " (" + h + ")"
		}
		if e.Retry { // 429 and 503 are where receivers send it
			e.RetryAfter, _ = parseRetryAfter(resp.Header.Get("Retry-After"))
		}
	case 2:
		e.msg = fmt.Sprintf("%s with an HTML page: not a receiver's answer (a captive portal or proxy?); retrying", resp.Status)
	case 3:
		e.msg = fmt.Sprintf("%s to %q: ferry does not follow redirects; set --remote-write.url to the final address", resp.Status, resp.Header.Get("Location"))
	default:
		e.msg = fmt.Sprintf("unexpected answer %s", resp.Status)
	}
	return e
}

// isHTML reports whether an answer is an HTML page, by its Content-Type or
// its first bytes.
func isHTML(resp *http.Response, msg []byte) bool {
	if strings.Contains(strings.ToLower(resp.Header.Get("Content-Type")), "html") {
		return true
	}
	b := bytes.ToLower(bytes.TrimSpace(msg))
	return bytes.HasPrefix(b, []byte("<!doctype")) || bytes.HasPrefix(b, []byte("<html")) || bytes.HasPrefix(b, []byte("<?xml"))
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

// duplicateMarks are how receivers word a refusal of samples older than, or
// at the time of, samples they already hold for the series: Prometheus
// (2.x and 3.x, 400: "out of order sample", "duplicate sample for
// timestamp"), Mimir and Cortex (400: "err-mimir-sample-out-of-order",
// "err-mimir-sample-duplicate-timestamp", "sample with repeated timestamp
// but different value"), Thanos Receive (409: its TSDB's same words).
// "out of bounds" and "too old sample" are not among them: those samples
// are older than the receiver takes at all, and never reached it.
var duplicateMarks = []string{
	"out of order sample",
	"sample-out-of-order",
	"duplicate sample",
	"duplicate-timestamp",
	"repeated timestamp",
}

// Duplicate reports whether a refusal (Retry false) says that the receiver
// already holds samples of the request's series at or after their time:
// what a receiver without an out-of-order window answers when samples are
// sent again. Whether they were indeed sent before only the sender can
// tell. False for answers that are retried, and for no answer.
func (e *Error) Duplicate() bool {
	if e.Retry || e.StatusCode == 0 {
		return false
	}
	m := strings.ToLower(e.msg)
	for _, d := range duplicateMarks {
		if strings.Contains(m, d) {
			return true
		}
	}
	return false
}

// MayHaveWritten reports whether the receiver may have written the
// request's samples although it did not say so: no answer after the
// request went out (a timeout, a reset), or an answer that a proxy or a
// failing receiver gives after the fact (500, 502, 504). Not for answers
// that say the request was not taken (408, 429, 503, the 4xx a device or
// its network causes), nor when no connection was made. Sent again, such
// samples may be refused as duplicates.
func (e *Error) MayHaveWritten() bool {
	if e.StatusCode == 0 {
		var op *net.OpError
		return !(errors.As(e.err, &op) && op.Op == "dial")
	}
	switch e.StatusCode {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusServiceUnavailable,
		http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusProxyAuthRequired:
		return false
	}
	return e.StatusCode >= 500
}
