package remotewrite

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ferry-agent/ferry/agent/remotewrite/codec"
	"github.com/ferry-agent/ferry/agent/remotewrite/codec/codectest"
)

// The body EncodeRequest makes is the one the sender posts for the same
// blocks, byte for byte.
func TestEncodeRequestIsWhatTheSenderPosts(t *testing.T) {
	var mu sync.Mutex
	var posted [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		posted = append(posted, b)
		mu.Unlock()
	}))
	defer srv.Close()
	src := newFakeSource(codectest.Blocks()...)
	s, err := New(Config{URL: srv.URL, Timeout: 5 * time.Second, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxSamplesPerSend: 100},
		src, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	src.waitAck(t)
	cancel()
	<-done

	want, n := codec.EncodeRequest(codectest.Blocks())
	if n != 6 {
		t.Errorf("%d samples, want 6", n)
	}
	if len(posted) != 1 || !bytes.Equal(posted[0], want) {
		t.Fatalf("the sender posted %d requests, the first different from EncodeRequest's body", len(posted))
	}
}
