package client

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// earlyAnswer answers every request at once, without reading its body (as
// a 413 or an auth proxy may), and keeps the body and GetBody for later.
type earlyAnswer struct {
	bodies []io.ReadCloser
}

func (e *earlyAnswer) RoundTrip(req *http.Request) (*http.Response, error) {
	e.bodies = append(e.bodies, req.Body)
	if req.GetBody != nil {
		again, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		e.bodies = append(e.bodies, again)
	}
	return &http.Response{StatusCode: http.StatusRequestEntityTooLarge, Status: "413 Request Entity Too Large",
		Header: http.Header{}, Body: io.NopCloser(strings.NewReader("")), Request: req}, nil
}

// TestPostLeavesTheBodyWhenItReturns: the sender writes its next request
// into the memory of the one before as soon as Post returns, while Go's
// transport may go on writing a body after the answer came. Whatever still
// reads the body, or a retry's copy of it (GetBody), after Post returned
// must get an error, not bytes of the next request.
func TestPostLeavesTheBodyWhenItReturns(t *testing.T) {
	c, err := New(Config{URL: "http://127.0.0.1:1/api/v1/write", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rt := &earlyAnswer{}
	c.http.Transport = rt
	body := []byte("the first request")
	if _, err := c.Post(context.Background(), body, "application/x-protobuf", "0.1.0"); err == nil {
		t.Fatal("a 413 taken for a success")
	}
	copy(body, "the next request!")
	if len(rt.bodies) != 2 {
		t.Fatalf("the transport got %d bodies, want the request's and GetBody's", len(rt.bodies))
	}
	for i, rc := range rt.bodies {
		if got, err := io.ReadAll(rc); err == nil || len(got) > 0 {
			t.Errorf("body %d read after Post returned: %q, %v; want nothing and an error", i, got, err)
		}
	}
}
