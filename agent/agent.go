package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-agent/ferry/agent/remotewrite"
	"github.com/ferry-agent/ferry/buffer"
	"github.com/ferry-agent/ferry/collectors"
	"github.com/ferry-agent/ferry/collectors/host"
	"github.com/ferry-agent/ferry/collectors/scrape"
)

// Agent runs the pipeline: sources -> labels -> buffer -> sender.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	buf     *buffer.Buffer
	sender  *remotewrite.Sender // nil without a remote-write URL
	sources []*source
	started time.Time

	ready        atomic.Bool
	commitErrors atomic.Uint64
}

// Run starts ferry with cfg and returns when ctx ends, after committing what
// it collected, or when it cannot start.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	buf, err := openBuffer(ctx, cfg, log, bufferRetryInterval)
	if err != nil {
		return err
	}
	a := &Agent{cfg: cfg, log: log, buf: buf, started: time.Now()}
	a.sources = a.buildSources()
	if cfg.RemoteWrite.URL != "" {
		rw := cfg.RemoteWrite
		rw.UserAgent = "ferry/" + cfg.Version
		if a.sender, err = remotewrite.New(rw, buf, log.With("component", "remote-write")); err != nil {
			buf.Close()
			return fmt.Errorf("remote write: %w", err)
		}
	}

	var srv *http.Server
	if cfg.ListenAddress != "" {
		ln, err := net.Listen("tcp", cfg.ListenAddress)
		if err != nil {
			buf.Close()
			return fmt.Errorf("--web.listen-address: %w", err)
		}
		srv = &http.Server{Handler: a.handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				log.Error("web server stopped", "err", err)
			}
		}()
	}

	senderCtx, stopSender := context.WithCancel(context.Background())
	var senderDone sync.WaitGroup
	if a.sender == nil {
		log.Warn("no --remote-write.url given: collecting and buffering only; the buffer keeps the newest data up to its cap")
	} else {
		senderDone.Go(func() { a.sender.Run(senderCtx) })
		log.Info("sending to remote write", "url", redact(cfg.RemoteWrite.URL))
	}

	st := buf.Stats()
	log.Info("ferry started", "version", cfg.Version, "buffer", cfg.StoragePath, "buffered_samples", st.Samples,
		"max_size", formatSize(cfg.StorageMaxSize), "interval", cfg.ScrapeInterval, "sources", len(a.sources), "listen", cfg.ListenAddress)

	var collecting sync.WaitGroup
	for _, s := range a.sources {
		collecting.Go(func() { a.runSource(ctx, s) })
	}
	collecting.Go(func() { a.commitLoop(ctx) })
	a.ready.Store(true)

	<-ctx.Done()
	a.ready.Store(false)
	log.Info("stopping: committing collected samples")
	collecting.Wait()
	stopSender()
	senderDone.Wait()
	if srv != nil {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = srv.Shutdown(shutdownCtx)
		cancel()
	}
	if err := buf.Close(); err != nil {
		return fmt.Errorf("closing the buffer: %w", err)
	}
	st = buf.Stats()
	log.Info("stopped", "buffered_samples", st.Samples)
	return nil
}

// bufferRetryInterval is how often ferry tries again to open a buffer that
// the filesystem refused (read-only, no space, permissions).
const bufferRetryInterval = 30 * time.Second

// openBuffer opens the buffer, waiting for the filesystem to allow it: a
// device whose flash came up read-only must not make ferry exit and its
// supervisor give up on it. Another ferry holding the buffer, a cap this
// system cannot map, or ctx ending are final.
func openBuffer(ctx context.Context, cfg Config, log *slog.Logger, retry time.Duration) (*buffer.Buffer, error) {
	for {
		buf, err := buffer.Open(buffer.Options{Dir: cfg.StoragePath, MaxSize: cfg.StorageMaxSize, Logger: log})
		if err == nil {
			return buf, nil
		}
		if errors.Is(err, buffer.ErrInUse) || errors.Is(err, buffer.ErrTooLarge) {
			return nil, err
		}
		log.Error("cannot open the buffer; retrying", "err", err, "in", retry)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("stopped before the buffer could be opened: %w", err)
		case <-time.After(retry):
		}
	}
}

// commitLoop makes the head durable every sync interval.
func (a *Agent) commitLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return // Close commits the rest
		case <-t.C:
			if err := a.buf.Commit(); err != nil {
				a.commitErrors.Add(1)
				a.log.Error("committing to the buffer", "err", err)
			}
		}
	}
}

// buildSources turns the configuration into sources: the host collectors as
// job "node", each scrape target, and ferry's own metrics as job "ferry".
func (a *Agent) buildSources() []*source {
	hostname, err := os.Hostname()
	if err != nil {
		hostname = "localhost"
	}
	var sources []*source
	if hc := HostCollector(a.cfg); hc != nil {
		sources = append(sources, newSource("node", "node", hostname, hc))
	}
	timeout := min(a.cfg.ScrapeInterval, 10*time.Second)
	for _, t := range a.cfg.Targets {
		sources = append(sources, newSource(t.Job+"/"+t.Instance(), t.Job, t.Instance(), scrape.New(t, timeout, scrape.DefaultLimits)))
	}
	return append(sources, newSource("ferry", "ferry", hostname, selfCollector{a}))
}

// HostCollector returns the host collectors cfg enables as one collector,
// nil if it enables none.
func HostCollector(cfg Config) collectors.Collector {
	var m multiCollector
	for _, e := range host.Collectors() {
		if cfg.Collectors[e.Name] {
			m = append(m, namedCollector{e.Name, e.New(cfg.Paths)})
		}
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

type namedCollector struct {
	name string
	collectors.Collector
}

// multiCollector runs several host collectors as one source; one failing
// collector does not stop the others.
type multiCollector []namedCollector

func (m multiCollector) Collect(ctx context.Context, c *collectors.Collection) error {
	var errs []error
	for _, nc := range m {
		if err := nc.Collect(ctx, c); err != nil {
			errs = append(errs, fmt.Errorf("collector %s: %w", nc.name, err))
		}
	}
	return errors.Join(errs...)
}

func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return raw
}
