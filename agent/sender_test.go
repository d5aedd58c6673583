package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/ferry-agent/ferry/agent/config"
	"github.com/ferry-agent/ferry/agent/remotewrite"
	"github.com/ferry-agent/ferry/buffer"
)

// TestDailyBudgetAloneKeepsOldestFirst: --remote-write.max-bytes-per-day
// without --remote-write.fresh-first sends an old backlog oldest first,
// with data committed meanwhile behind it, while the budget does not hold
// it back: a receiver without an out-of-order window would refuse the
// backlog sent behind fresh data.
func TestDailyBudgetAloneKeepsOldestFirst(t *testing.T) {
	buf, err := buffer.Open(buffer.Options{Dir: t.TempDir(), MaxSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	commit := func(at time.Time) {
		for i := range 10 {
			buf.Append(labels.FromStrings("__name__", "m", "i", fmt.Sprint(i)), at.UnixMilli(), 1)
		}
		if err := buf.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	for step := range 6 { // an hour-old backlog
		commit(time.Now().Add(-time.Hour + time.Duration(step)*15*time.Second))
	}

	var mu sync.Mutex
	var oldest []int64 // per request
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		raw, _ := snappy.Decode(nil, body)
		var wr prompb.WriteRequest
		if err := wr.Unmarshal(raw); err != nil {
			t.Errorf("request: %v", err)
		}
		o := int64(1 << 62)
		for _, ts := range wr.Timeseries {
			for _, s := range ts.Samples {
				o = min(o, s.Timestamp)
			}
		}
		mu.Lock()
		first := len(oldest) == 0
		oldest = append(oldest, o)
		mu.Unlock()
		if first {
			<-release // new data is committed while the first request is in flight
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	cfg := config.DefaultConfig()
	cfg.RemoteWrite.URL = srv.URL
	cfg.RemoteWrite.Protocol = remotewrite.Protocol1 // the receiver reads 1.0 only
	cfg.RemoteWrite.MaxSamplesPerSend = 20           // two commits a request
	cfg.RemoteWrite.MaxBytesPerDay = 1 << 30
	g, err := newSenders(cfg, buf, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s := g.all[0]
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	for {
		mu.Lock()
		n := len(oldest)
		mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	commit(time.Now())
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for buf.Stats().Samples > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not drained: %+v", buf.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(oldest); i++ {
		if oldest[i] < oldest[i-1] {
			t.Fatalf("requests start at %v: request %d goes back in time, the backlog sent behind fresh data", oldest, i)
		}
	}
}
