package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferry-agent/ferry/agent/config"
	"github.com/ferry-agent/ferry/buffer"
)

// TestOpenBufferWaitsForTheFilesystem: a storage path that cannot be
// created yet (here: a file stands where its parent directory should be,
// as on flash that came up read-only) makes ferry retry, not exit; once the
// path can be created, the buffer opens.
func TestOpenBufferWaitsForTheFilesystem(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "flash")
	if err := os.WriteFile(parent, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.DefaultConfig()
	cfg.StoragePath = filepath.Join(parent, "data")

	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = os.Remove(parent) // the filesystem "comes back"
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	buf, err := openBuffer(ctx, cfg, slog.New(slog.DiscardHandler), 20*time.Millisecond, nil)
	if err != nil {
		t.Fatalf("openBuffer gave up: %v", err)
	}
	buf.Close()
}

func TestOpenBufferGivesUpOnlyOnFinalErrors(t *testing.T) {
	cfg := config.DefaultConfig()
	cfg.StoragePath = t.TempDir()
	held, err := buffer.Open(buffer.Options{Dir: cfg.StoragePath, MaxSize: cfg.StorageMaxSize})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := openBuffer(context.Background(), cfg, slog.New(slog.DiscardHandler), time.Millisecond, nil); !errors.Is(err, buffer.ErrInUse) {
		t.Fatalf("a buffer held by another ferry: %v, want ErrInUse at once", err)
	}

	// Stopping while it waits for the filesystem ends the wait.
	blocked := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocked, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.StoragePath = filepath.Join(blocked, "data")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := openBuffer(ctx, cfg, slog.New(slog.DiscardHandler), time.Hour, nil); err == nil {
		t.Fatal("openBuffer returned no error although it was stopped before the buffer opened")
	}
}

// TestMetricsEndpointShowsTheBuffer: /metrics serves ferry's own figures,
// taken from the buffer, with every drop reason present before any drop.
func TestMetricsEndpointShowsTheBuffer(t *testing.T) {
	cfg := config.DefaultConfig()
	buf, err := buffer.Open(buffer.Options{Dir: t.TempDir(), MaxSize: cfg.StorageMaxSize})
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	buf.Append(labels.FromStrings("__name__", "m"), 1000, 1)
	buf.Append(labels.FromStrings("__name__", "m"), 2000, 2)
	if err := buf.Commit(); err != nil {
		t.Fatal(err)
	}
	a := &Agent{cfg: cfg, log: slog.New(slog.DiscardHandler), buf: buf, started: time.Now()}
	if a.sources, err = a.buildSources(cfg); err != nil {
		t.Fatal(err)
	}

	rec := httptest.NewRecorder()
	a.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		"ferry_buffer_samples 2\n",
		"ferry_buffer_oldest_timestamp_seconds 1\n",
		"ferry_buffer_newest_timestamp_seconds 2\n",
		`ferry_buffer_dropped_samples_total{reason="full"} 0` + "\n",
		`ferry_remote_write_dropped_samples_total{reason="rejected"} 0` + "\n",
		"# TYPE ferry_samples_appended_total counter\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// The oldest sample is from 1970-01-01T00:00:01: the backlog is as old
	// as the epoch, give or take the second.
	var age float64
	if _, err := fmt.Sscanf(body[strings.Index(body, "\nferry_buffer_backlog_age_seconds ")+1:], "ferry_buffer_backlog_age_seconds %g", &age); err != nil {
		t.Fatalf("no backlog age in /metrics: %v", err)
	}
	if want := float64(time.Now().Unix() - 1); math.Abs(age-want) > 5 {
		t.Errorf("backlog age %v, want about %v", age, want)
	}

	rec = httptest.NewRecorder()
	a.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/-/ready", nil))
	if rec.Code != 503 {
		t.Errorf("/-/ready before start: %d, want 503", rec.Code)
	}
}

// TestInstanceIdentity: the host's series (job node) and ferry's own (job
// ferry) carry the configured instance, else the hostname; scrape targets
// keep their own.
func TestInstanceIdentity(t *testing.T) {
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ configured, want string }{{"", hostname}, {"SN-00042", "SN-00042"}} {
		cfg := config.DefaultConfig()
		cfg.Instance = tc.configured
		cfg.Collectors = map[string]bool{"loadavg": true}
		a := &Agent{cfg: cfg, log: slog.New(slog.DiscardHandler), started: time.Now()}
		sources, err := a.sourcesFor(cfg, &discovery{})
		if err != nil {
			t.Fatal(err)
		}
		jobs := map[string]string{}
		for _, s := range sources {
			jobs[s.target.Get("job")] = s.target.Get("instance")
		}
		if jobs["node"] != tc.want || jobs["ferry"] != tc.want {
			t.Errorf("instance %q configured: node %q, ferry %q; want %q", tc.configured, jobs["node"], jobs["ferry"], tc.want)
		}
	}
}
