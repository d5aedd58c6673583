package agent

import (
	"net/http"

	"github.com/ferry-agent/ferry/collectors"
)

// handler serves ferry's local endpoints.
func (a *Agent) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", &statusPage{a: a})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		var c collectors.Collection
		_ = selfCollector{a}.Collect(r.Context(), &c)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = collectors.WriteText(w, &c)
	})
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ferry is healthy.\n"))
	})
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !a.ready.Load() {
			http.Error(w, "ferry is not ready.", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ferry is ready.\n"))
	})
	return mux
}
