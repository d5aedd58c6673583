// Package client posts encoded Remote-Write requests to a receiver and
// says, with one error type, whether a request that failed may succeed if
// sent again. Retry is the loop around it.
//
// It knows HTTP and the protocol's headers, not the messages: the body,
// its Content-Type and its version header come from the caller (the codec).
package client

import (
	"bytes"
	"context"
	"io"
	"math"
	"net/http"
	"strconv"
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
// kept once Post returns; the caller must not change it meanwhile.
//
// written is the answer's X-Prometheus-Remote-Write-Samples-Written, which
// a 2.0 receiver sends with every answer: 0 if it is missing or invalid
// while another Written header is there, -1 if there is none of them (no
// answer, or a receiver that knows only 1.0).
func (c *Client) Post(ctx context.Context, body []byte, contentType, version string) (written int, _ error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return -1, &Error{Retry: true, err: err}
	}
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
