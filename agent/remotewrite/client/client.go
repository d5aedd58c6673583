// Package client posts encoded Remote-Write requests to a receiver and
// says, with one error type, whether a request that failed may succeed if
// sent again. Retry is the loop around it.
//
// It knows HTTP and the protocol's headers, not the messages: the body,
// its Content-Type and its version header come from the caller (the codec).
package client

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/ferry-agent/ferry/internal/httpclient"
)

// Config is what a Client needs of the sender's configuration.
type Config struct {
	URL       string
	Timeout   time.Duration // for one request, the answer's body included
	UserAgent string
	HTTP      httpclient.Config // auth, TLS, headers, proxy
}

// Client posts requests to one receiver. It is safe for concurrent use; it
// keeps idle connections for reuse, and nothing else, between requests.
type Client struct {
	url, userAgent string
	http           *http.Client
}

// New returns a Client for cfg, or an error naming the HTTP setting that
// cannot work (a missing CA file, say). Files named in cfg.HTTP (tokens,
// passwords) are read again for each request, as httpclient does.
func New(cfg Config) (*Client, error) {
	if err := cfg.HTTP.Validate(); err != nil {
		return nil, err
	}
	transport, err := cfg.HTTP.NewTransport()
	if err != nil {
		return nil, err
	}
	return &Client{
		url:       cfg.URL,
		userAgent: cfg.UserAgent,
		http: &http.Client{
			Transport: transport,
			Timeout:   cfg.Timeout,
			// A redirected POST becomes a GET and its answer would drop the
			// batch; a redirect is a configuration error to retry and log.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// maxErrorBody bounds how much of a receiver's error message is read and
// logged; maxDrain how much more of a body is read, and thrown away, so
// that the connection can be reused.
const (
	maxErrorBody = 512
	maxDrain     = 64 << 10
)

// requestBody hands a request's body to the transport until Post returns,
// then to no one: the transport may go on writing a body after the answer
// came (a receiver that answers before reading it all), and the caller
// reuses its memory for the next request. A read after that fails.
type requestBody struct {
	mu       sync.Mutex
	b        []byte
	released bool
}

// errBodyReleased is what the transport reads of a body after Post
// returned; the request it belongs to has had its answer.
var errBodyReleased = errors.New("request body read after its answer")

func (rb *requestBody) reader() io.ReadCloser { return &bodyReader{src: rb} }

func (rb *requestBody) release() {
	rb.mu.Lock()
	rb.released = true
	rb.mu.Unlock()
}

// bodyReader is one read of a requestBody: the request's, or a retry's.
type bodyReader struct {
	src *requestBody
	off int
}

func (r *bodyReader) Read(p []byte) (int, error) {
	r.src.mu.Lock()
	defer r.src.mu.Unlock()
	switch {
	case r.src.released:
		return 0, errBodyReleased
	case r.off == len(r.src.b):
		return 0, io.EOF
	}
	n := copy(p, r.src.b[r.off:])
	r.off += n
	return n, nil
}

func (r *bodyReader) Close() error { return nil }

// Response headers of a 2.0 receiver: how many of each kind it wrote.
var writtenHeaders = []string{
	"X-Prometheus-Remote-Write-Samples-Written",
	"X-Prometheus-Remote-Write-Histograms-Written",
	"X-Prometheus-Remote-Write-Exemplars-Written",
}

// Post sends one snappy-compressed request body with the given
// Content-Type and X-Prometheus-Remote-Write-Version, and waits for the
// answer, at most the configured Timeout or until ctx ends.
//
// It returns nil on a 2xx; otherwise an *Error, whose Retry says whether
// sending the same body again may succeed (a canceled ctx gives one too,
// with Retry set: the caller looks at ctx). body is only read, and not
// touched once Post returns (its memory may go to the next request); the
// caller must not change it meanwhile.
//
// written is the answer's X-Prometheus-Remote-Write-Samples-Written, which
// a 2.0 receiver sends with every answer: 0 if it is missing or invalid
// while another Written header is there, -1 if there is none of them (no
// answer, or a receiver that knows only 1.0).
func (c *Client) Post(ctx context.Context, body []byte, contentType, version string) (written int, _ error) {
	src := &requestBody{b: body}
	defer src.release()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, src.reader())
	if err != nil {
		return -1, &Error{Retry: true, err: err}
	}
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return src.reader(), nil } // a retry on a stale connection
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-Prometheus-Remote-Write-Version", version)
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		return -1, &Error{Retry: true, err: err}
	}
	defer resp.Body.Close()
	written = -1
	for i, h := range writtenHeaders {
		if v := resp.Header.Get(h); v != "" {
			written = max(written, 0)
			if n, err := strconv.ParseInt(v, 10, 64); i == 0 && err == nil && n >= 0 {
				written = int(min(n, math.MaxInt32))
			}
		}
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	if err := answerError(resp, msg); err != nil {
		return written, err
	}
	return written, nil
}
