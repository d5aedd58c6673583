// Package web serves ferry's local HTTP endpoints: the status page on "/",
// ferry's own metrics on /metrics, and /-/healthy and /-/ready for
// supervisors. It knows the agent only as a Backend and its Snapshot:
// imports point from the agent to web, never back.
package web

import (
	"net/http"
	"time"

	"github.com/ferry-agent/ferry/collectors"
)

// Backend is the running agent as the endpoints see it. The server calls
// its methods from its own goroutines, concurrently with each other and
// with the pipeline: each must be safe for that, and must not wait on the
// network, for a supervisor's probe waits on it.
type Backend interface {
	// Collect adds ferry's own metrics to c, those of the source "ferry".
	// Its error is ignored: /metrics serves what c holds.
	collectors.Collector
	// Snapshot returns the agent's state as of now, for the status page.
	// The Snapshot is the caller's.
	Snapshot(now time.Time) Snapshot
	// Ready reports whether the agent runs: started, and not stopping.
	Ready() bool
}

// Handler returns the endpoints, serving b. It keeps the status page's
// memory of the previous look (for the send rate), so make one per server.
func Handler(b Backend) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", &statusPage{b: b})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		var c collectors.Collection
		_ = b.Collect(r.Context(), &c)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = collectors.WriteText(w, &c)
	})
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ferry is healthy.\n"))
	})
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !b.Ready() {
			http.Error(w, "ferry is not ready.", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ferry is ready.\n"))
	})
	return mux
}
