package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"

	"github.com/ferry-agent/ferry/agent/config"
	"github.com/ferry-agent/ferry/agent/remotewrite"
	"github.com/ferry-agent/ferry/buffer"
	"github.com/ferry-agent/ferry/collectors/scrape"
)

// A clean stop (SIGTERM: a reboot for an update) with the receiver up:
// what was collected reaches the receiver within stopGrace, or, from a
// receiver that takes longer, is committed; Run returns within about
// stopGrace either way, and no sample collected is lost.
func TestStopDeliversOrCommitsWhatWasCollected(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a collection at the default interval's offset and for stopGrace; runs without -short")
	}
	const series = 50
	for _, tc := range []struct {
		name      string
		answerIn  time.Duration // how long the receiver takes to answer
		delivered bool
	}{
		{"receiver answers in a second", time.Second, true},
		{"receiver stalls", time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var scrapes atomic.Int64
			target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for i := range series {
					fmt.Fprintf(w, "m{i=\"%d\"} %d\n", i, i)
				}
				scrapes.Add(1)
			}))
			defer target.Close()
			var atReceiver atomic.Int64 // the target's m samples the receiver answered for
			rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := appSamples(t, r.Body)
				select {
				case <-time.After(tc.answerIn):
				case <-r.Context().Done():
					return
				}
				atReceiver.Add(int64(n))
				w.WriteHeader(http.StatusNoContent)
			}))
			defer rcv.Close()

			// The defaults, but for what this test needs: a target, a
			// receiver that reads 1.0, no host collectors, no listener.
			cfg := config.DefaultConfig()
			cfg.StoragePath = t.TempDir()
			cfg.RemoteWrite.URL = rcv.URL
			cfg.RemoteWrite.Protocol = remotewrite.Protocol1
			cfg.ListenAddress = ""
			u, _ := url.Parse(target.URL)
			cfg.Targets = []config.ScrapeTarget{{
				Target: scrape.Target{URL: u, HonorTimestamps: true, Limits: scrape.DefaultLimits},
				Labels: labels.FromStrings("job", "app", "instance", u.Host),
			}}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- Run(ctx, cfg, slog.New(slog.DiscardHandler), nil) }()

			deadline := time.Now().Add(2 * cfg.ScrapeInterval)
			for scrapes.Load() == 0 {
				if time.Now().After(deadline) {
					t.Fatal("no scrape within two intervals")
				}
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond) // the collection is in memory; its request, if any, in flight
			stopped := time.Now()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(stopGrace + 10*time.Second):
				t.Fatalf("Run had not returned %v after the stop", stopGrace+10*time.Second)
			}
			t.Logf("stopped in %v", time.Since(stopped).Round(10*time.Millisecond))

			collected := int64(series) * scrapes.Load()
			buf, err := buffer.Open(buffer.Options{Dir: cfg.StoragePath, MaxSize: cfg.StorageMaxSize})
			if err != nil {
				t.Fatal(err)
			}
			defer buf.Close()
			var buffered int64
			buf.ForEach(func(b buffer.Block) error {
				for _, s := range b.Series {
					if s.Labels.Get("__name__") == "m" {
						for i := range s.V {
							if !value.IsStaleNaN(s.V[i]) {
								buffered++
							}
						}
					}
				}
				return nil
			})
			got := atReceiver.Load()
			t.Logf("%d samples collected, %d at the receiver, %d buffered", collected, got, buffered)
			switch {
			case tc.delivered && (got != collected || buffered != 0):
				t.Errorf("%d of %d samples collected reached the receiver before the stop ended, %d buffered; want all delivered", got, collected, buffered)
			case !tc.delivered && (got != 0 || buffered != collected):
				t.Errorf("%d of %d samples collected buffered, %d at a receiver that never answered; want all buffered", buffered, collected, got)
			}
		})
	}
}

// appSamples decodes a 1.0 request and counts its samples of the target's
// metric m that are not staleness markers.
func appSamples(t *testing.T, body io.Reader) int {
	raw, _ := io.ReadAll(body)
	dec, err := snappy.Decode(nil, raw)
	var wr prompb.WriteRequest
	if err == nil {
		err = wr.Unmarshal(dec)
	}
	if err != nil {
		t.Errorf("request: %v", err)
		return 0
	}
	n := 0
	for _, ts := range wr.Timeseries {
		for _, l := range ts.Labels {
			if l.Name == "__name__" && l.Value == "m" {
				for _, s := range ts.Samples {
					if !value.IsStaleNaN(s.Value) {
						n++
					}
				}
			}
		}
	}
	return n
}
