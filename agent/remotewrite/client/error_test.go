package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name     string
		in       string
		ok       bool
		min, max time.Duration // the accepted range of the result
	}{
		{"empty", "", false, 0, 0},
		{"seconds", "5", true, 5 * time.Second, 5 * time.Second},
		{"zero", "0", true, 0, 0},
		{"seconds capped", "86400", true, 10 * time.Minute, 10 * time.Minute},
		{"huge seconds capped, not overflowed", "10000000000", true, 10 * time.Minute, 10 * time.Minute},
		{"negative is not a delay (RFC 9110: delay-seconds is 1*DIGIT)", "-3", false, 0, 0},
		{"garbage", "soon", false, 0, 0},
		{"fraction", "1.5", false, 0, 0},
		{"http date ahead", now.Add(2 * time.Minute).UTC().Format(http.TimeFormat), true, 100 * time.Second, 2 * time.Minute},
		{"http date past", now.Add(-time.Hour).UTC().Format(http.TimeFormat), true, 0, 0},
		{"http date far ahead capped", now.Add(24 * time.Hour).UTC().Format(http.TimeFormat), true, 10 * time.Minute, 10 * time.Minute},
		{"rfc850 date", now.Add(-time.Hour).UTC().Format(time.RFC850), true, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, ok := parseRetryAfter(tc.in)
			if ok != tc.ok {
				t.Fatalf("parseRetryAfter(%q) ok = %v, want %v", tc.in, ok, tc.ok)
			}
			if d < tc.min || d > tc.max {
				t.Errorf("parseRetryAfter(%q) = %v, want in [%v, %v]", tc.in, d, tc.min, tc.max)
			}
		})
	}
}

// TestPostAnswers: what each answer becomes, through a real HTTP exchange:
// the retry decision, the Retry-After honoured on retried answers, the
// error text the sender logs, and the 2.0 Written count.
func TestPostAnswers(t *testing.T) {
	for _, tc := range []struct {
		code       int
		header     map[string]string
		body       string
		wantErr    string // "" for success
		retry      bool
		tooLarge   bool
		retryAfter time.Duration
		written    int
	}{
		{code: 204, written: -1},
		{code: 200, header: map[string]string{"X-Prometheus-Remote-Write-Samples-Written": "7"}, written: 7},
		{code: 200, header: map[string]string{"X-Prometheus-Remote-Write-Exemplars-Written": "0"}, written: 0},
		{code: 200, header: map[string]string{"X-Prometheus-Remote-Write-Samples-Written": "-1", "X-Prometheus-Remote-Write-Histograms-Written": "0"}, written: 0},
		{code: 400, body: " out of order sample \n", wantErr: "400 Bad Request: out of order sample", written: -1},
		{code: 400, header: map[string]string{"X-Prometheus-Remote-Write-Samples-Written": "3"}, wantErr: "400 Bad Request: ", written: 3},
		{code: 415, header: map[string]string{"Retry-After": "5"}, wantErr: "415 Unsupported Media Type: ", written: -1}, // dropped: no wait
		{code: 409, body: "conflict: out of order sample", wantErr: "409 Conflict: conflict: out of order sample", written: -1},
		{code: 422, body: "bad labels", wantErr: "422 Unprocessable Entity: bad labels", written: -1},
		{code: 413, body: "too big", wantErr: "413 Request Entity Too Large: too big (sending it in smaller parts)", tooLarge: true, written: -1},
		// What the device or its network causes is retried, with a hint.
		{code: 401, body: "token expired", wantErr: "401 Unauthorized: token expired (check the credentials (an expired token or password file?); retrying)", retry: true, written: -1},
		{code: 403, wantErr: "403 Forbidden:  (check the credentials and the URL (a captive portal or proxy?); retrying)", retry: true, written: -1},
		{code: 404, wantErr: "404 Not Found:  (check --remote-write.url (a captive portal or proxy?); retrying)", retry: true, written: -1},
		{code: 407, wantErr: "407 Proxy Authentication Required:  (the proxy wants credentials (--remote-write.proxy-url user:password@); retrying)", retry: true, written: -1},
		{code: 418, wantErr: "418 I'm a teapot: ", retry: true, written: -1},
		// A 400 that is an HTML page is a portal or proxy, not the receiver.
		{code: 400, header: map[string]string{"Content-Type": "text/html"}, body: "<p>log in</p>", wantErr: "400 Bad Request: (an HTML page: not the receiver's answer? retrying)", retry: true, written: -1},
		{code: 400, body: "<!DOCTYPE html><html>portal</html>", wantErr: "400 Bad Request: (an HTML page: not the receiver's answer? retrying)", retry: true, written: -1},
		// A 2xx with an HTML page is a portal's login page: not delivered.
		{code: 200, header: map[string]string{"Content-Type": "text/html; charset=utf-8"}, body: "<form>log in</form>", wantErr: "200 OK with an HTML page: not a receiver's answer (a captive portal or proxy?); retrying", retry: true, written: -1},
		{code: 200, body: "\n<!doctype html><title>Welcome</title>", wantErr: "200 OK with an HTML page: not a receiver's answer (a captive portal or proxy?); retrying", retry: true, written: -1},
		{code: 204, header: map[string]string{"Content-Type": "text/html"}, written: -1}, // no page: the receiver's empty answer
		{code: 200, body: "ok", written: -1},
		{code: 413, header: map[string]string{"Content-Type": "text/html"}, body: "<html><h1>413 Request Entity Too Large</h1></html>", wantErr: "413 Request Entity Too Large: (an HTML page: a proxy's limit?) (sending it in smaller parts)", tooLarge: true, written: -1},
		{code: 408, wantErr: "408 Request Timeout: ", retry: true, written: -1},
		{code: 429, header: map[string]string{"Retry-After": "5"}, wantErr: "429 Too Many Requests: ", retry: true, retryAfter: 5 * time.Second, written: -1},
		{code: 503, body: "busy", wantErr: "503 Service Unavailable: busy", retry: true, written: -1},
		{code: 302, header: map[string]string{"Location": "/elsewhere"}, wantErr: `302 Found to "/elsewhere": ferry does not follow redirects; set --remote-write.url to the final address`, retry: true, written: -1},
	} {
		t.Run(fmt.Sprint(tc.code, " ", tc.body), func(t *testing.T) {
			var got http.Header
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = r.Header.Clone()
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.code)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			c, err := New(Config{URL: srv.URL, Timeout: 5 * time.Second, UserAgent: "ferry-test/1"})
			if err != nil {
				t.Fatal(err)
			}
			written, err := c.Post(context.Background(), []byte("body"), "application/x-protobuf", "0.1.0")
			if written != tc.written {
				t.Errorf("written %d, want %d", written, tc.written)
			}
			if got.Get("Content-Encoding") != "snappy" || got.Get("Content-Type") != "application/x-protobuf" ||
				got.Get("X-Prometheus-Remote-Write-Version") != "0.1.0" || got.Get("User-Agent") != "ferry-test/1" {
				t.Errorf("request headers %v", got)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("err %v, want nil", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err %v (%T), want an *Error", err, err)
			}
			if e.Error() != tc.wantErr || e.StatusCode != tc.code || e.Retry != tc.retry || e.RetryAfter != tc.retryAfter || e.TooLarge != tc.tooLarge {
				t.Errorf("got %q, code %d, retry %v, too large %v, after %v; want %q, %d, %v, %v, %v", e, e.StatusCode, e.Retry, e.TooLarge, e.RetryAfter, tc.wantErr, tc.code, tc.retry, tc.tooLarge, tc.retryAfter)
			}
		})
	}
}

// No answer at all is retried, and reads as the transport's error.
func TestPostWithoutAnswer(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := New(Config{URL: url, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	written, err := c.Post(context.Background(), nil, "application/x-protobuf", "0.1.0")
	var e *Error
	if !errors.As(err, &e) || !e.Retry || e.StatusCode != 0 || e.Unwrap() == nil || written != -1 {
		t.Fatalf("written %d, err %v (%T): want a retryable *Error wrapping the transport's", written, err, err)
	}
	if e.Error() != e.Unwrap().Error() {
		t.Errorf("Error() %q, want the transport's %q", e.Error(), e.Unwrap().Error())
	}
}

// TestDuplicate: the refusals that say the receiver holds the samples (or
// newer ones) already, as Prometheus, Mimir and Thanos word them; not
// those of samples it never took (out of bounds, too old), nor retries.
func TestDuplicate(t *testing.T) {
	for _, tc := range []struct {
		code int
		body string
		want bool
	}{
		{400, "out of order sample", true},
		{400, "duplicate sample for timestamp", true},
		{400, "duplicate sample for timestamp 1000; overrides not allowed: existing 1, new value 2", true},
		{400, "the sample has been rejected because another sample with a more recent timestamp has already been ingested and out-of-order samples are not allowed (err-mimir-sample-out-of-order)", true},
		{400, "err-mimir-sample-duplicate-timestamp", true},
		{409, "store locally for endpoint x: add 1 samples: out of order sample", true},
		{400, "out of bounds", false},
		{400, "too old sample", false},
		{400, "invalid labels", false},
		{503, "out of order sample", false},
	} {
		e := answerError(&http.Response{StatusCode: tc.code, Status: fmt.Sprint(tc.code), Header: http.Header{}}, []byte(tc.body))
		if got := e.Duplicate(); got != tc.want {
			t.Errorf("%d %q: Duplicate() = %v, want %v", tc.code, tc.body, got, tc.want)
		}
	}
}

// TestMayHaveWritten: a refused connection or an answer that says the
// request was not taken leaves nothing at the receiver; a gateway error
// or a connection dropped after the request went out may have.
func TestMayHaveWritten(t *testing.T) {
	post := func(url string) *Error {
		t.Helper()
		c, err := New(Config{URL: url, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Post(context.Background(), []byte("x"), "application/x-protobuf", "0.1.0")
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("err %v (%T), want an *Error", err, err)
		}
		return e
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	if post(closed.URL).MayHaveWritten() {
		t.Error("connection refused: may have written, want not")
	}
	dropped := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		conn, _, _ := http.NewResponseController(w).Hijack()
		conn.Close()
	}))
	defer dropped.Close()
	if !post(dropped.URL).MayHaveWritten() {
		t.Error("connection closed after the request was read: may not have written, want may")
	}
	for code, want := range map[int]bool{500: true, 502: true, 504: true, 503: false, 429: false, 408: false, 401: false, 404: false, 407: false} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }))
		if got := post(srv.URL).MayHaveWritten(); got != want {
			t.Errorf("%d: may have written %v, want %v", code, got, want)
		}
		srv.Close()
	}
}

// TestPostAnswersAtRandom: whatever a receiver, a proxy or a portal
// answers (any status, content type and body, up to megabytes), Post
// counts as delivered only a 2xx that is not an HTML page, never drops
// what an HTML page answered (a proxy's 413 page splits, as the
// receiver's would), and returns an error message of bounded
// length without the page in it.
func TestPostAnswersAtRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 16))
	seed := rng.Uint64()
	t.Logf("seed %d", seed)
	rng = rand.New(rand.NewPCG(seed, 16))
	type answer struct {
		code        int
		contentType string
		body        []byte
	}
	var cur atomic.Pointer[answer]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		a := cur.Load()
		if a.contentType != "" {
			w.Header().Set("Content-Type", a.contentType)
		}
		w.WriteHeader(a.code)
		w.Write(a.body)
	}))
	defer srv.Close()
	c, err := New(Config{URL: srv.URL, Timeout: 10 * time.Second, UserAgent: "ferry-test/1"})
	if err != nil {
		t.Fatal(err)
	}
	codes := []int{200, 201, 202, 204, 206, 299, 300, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 407, 408, 409, 413, 415, 418, 422, 429, 451, 499, 500, 502, 503, 504, 511, 599, 600, 799, 999}
	types := []string{"", "text/plain", "text/html", "text/html; charset=utf-8", "TEXT/HTML", "application/xhtml+xml", "application/json", "application/octet-stream"}
	bodies := []string{"", "ok", "out of order sample", "<!DOCTYPE html><html><body>Log in</body></html>", "  \n<html>", "<?xml version=\"1.0\"?><x/>", "{\"status\":\"error\"}", "\x00\x01\xff\xfe"}
	for i := range 300 {
		a := &answer{code: codes[rng.IntN(len(codes))], contentType: types[rng.IntN(len(types))]}
		a.body = []byte(bodies[rng.IntN(len(bodies))])
		if rng.IntN(10) == 0 { // megabytes of it
			a.body = bytes.Repeat(append(a.body, 'x'), 1+rng.IntN(4<<20)/(len(a.body)+1))
		}
		cur.Store(a)
		_, err := c.Post(context.Background(), []byte("body"), "application/x-protobuf", "0.1.0")
		body := a.body
		if a.code == http.StatusNoContent || a.code == http.StatusNotModified {
			body = nil // such answers carry none
		}
		head := bytes.ToLower(bytes.TrimSpace(body[:min(len(body), 512)]))
		page := strings.Contains(strings.ToLower(a.contentType), "html") || bytes.HasPrefix(head, []byte("<!doctype")) ||
			bytes.HasPrefix(head, []byte("<html")) || bytes.HasPrefix(head, []byte("<?xml"))
		if a.code/100 == 2 {
			page = page && len(head) > 0 // a receiver's empty 2xx, whatever its type
		}
		what := fmt.Sprintf("answer %d: %d %q with %d bytes starting %.40q", i, a.code, a.contentType, len(a.body), a.body)
		var e *Error
		switch {
		case a.code/100 == 2 && !page:
			if err != nil {
				t.Errorf("%s: %v, want delivered", what, err)
			}
		case err == nil || !errors.As(err, &e):
			t.Errorf("%s: err %v, want an *Error", what, err)
		case page && !e.Retry && !e.TooLarge:
			t.Errorf("%s: %v dropped: an HTML page is a portal's or a proxy's, never the receiver's refusal", what, err)
		case len(e.Error()) > 1024 || strings.Contains(strings.ToLower(e.Error()), "<html") || strings.Contains(strings.ToLower(e.Error()), "<!doctype"):
			t.Errorf("%s: message of %d bytes: %.200q", what, len(e.Error()), e.Error())
		}
	}
}
