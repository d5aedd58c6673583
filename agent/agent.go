// Package agent runs ferry's pipeline: the sources on their schedules,
// their labels, the buffer's commits, the sender's lifecycle, reloads, and
// ferry's own metrics. Its configuration comes from agent/config; its web
// endpoints are in agent/web, fed by a snapshot of the agent's state.
package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"

	"github.com/ferry-agent/ferry/agent/clock"
	"github.com/ferry-agent/ferry/agent/config"
	"github.com/ferry-agent/ferry/agent/remotewrite"
	"github.com/ferry-agent/ferry/agent/web"
	"github.com/ferry-agent/ferry/buffer"
	"github.com/ferry-agent/ferry/collectors/host"
	"github.com/ferry-agent/ferry/collectors/scrape"
	"github.com/ferry-agent/ferry/internal/lograte"
	"github.com/ferry-agent/ferry/internal/units"
)

// Agent runs the pipeline: sources -> labels -> buffer -> sender.
type Agent struct {
	log     *slog.Logger
	buf     *buffer.Buffer
	started time.Time

	ready        atomic.Bool
	commitErrors atomic.Uint64
	clock        *clock.Guard // nil: the wall clock is trusted

	mu      sync.RWMutex // guards what a reload replaces
	cfg     config.Config
	sender  *senders // nil without a remote-write URL
	sources []*source

	// fan is the running senders' fan-out, nil with one endpoint: the
	// buffer's evictions are counted against its endpoints.
	fan atomic.Pointer[remotewrite.Fanout]

	disc *discovery // the jobs with file_sd_configs, or nil; the agent's loop's alone

	history web.History // the status page's last hour, fed by gather
}

// Run starts ferry with cfg and returns when ctx ends, after committing what
// it collected, or when it cannot start. Each configuration received from
// reloads replaces the running one without touching the buffer; one that
// cannot work is refused with a log line and the running one stays.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, reloads <-chan config.Config) error {
	a := &Agent{cfg: cfg, log: log, started: time.Now(),
		clock: clock.New(clock.System(), clock.BuildTime(), cfg.ClockRequireSync, log)}
	buf, err := openBuffer(ctx, cfg, log, bufferRetryInterval, a.evicted)
	if err != nil {
		return err
	}
	a.buf = buf
	a.disc = startDiscovery(ctx, cfg.FileSD, log)
	if a.sources, err = a.buildSources(cfg); err == nil {
		a.sender, err = newSenders(cfg, buf, log)
	}
	if err != nil {
		a.disc.close()
		buf.Close()
		return err
	}

	var srv *http.Server
	if cfg.ListenAddress != "" {
		ln, err := net.Listen("tcp", cfg.ListenAddress)
		if err != nil {
			a.disc.close()
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

	if a.sender == nil {
		log.Warn("no --remote-write.url given: collecting and buffering only; the buffer keeps the newest data up to its cap")
	} else {
		a.sender.logStart(log)
	}
	stopSender := a.runSender(a.sender)
	st := buf.Stats()
	log.Info("ferry started", "version", cfg.Version, "buffer", cfg.StoragePath, "buffered_samples", st.Samples,
		"max_size", units.FormatBytes(cfg.StorageMaxSize), "interval", cfg.ScrapeInterval, "sources", len(a.sources), "listen", cfg.ListenAddress)

	a.runSources(ctx, a.sources)
	var committing sync.WaitGroup
	committing.Go(func() { a.commitLoop(ctx, cfg.SyncInterval) })
	a.ready.Store(true)

	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case next := <-reloads:
			stopSender = a.reload(ctx, next, stopSender)
		case u := <-a.disc.changes():
			a.retarget(ctx, u)
		}
	}
	a.ready.Store(false)
	log.Info("stopping: committing collected samples")
	a.disc.close()
	stopSources(a.sources)
	a.settleClock()
	committing.Wait()
	a.awaitDelivery(stopGrace)
	stopSender()
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

// stopGrace bounds how long a stopping ferry (SIGTERM: a reboot for an
// update) waits for the sender to deliver what was collected from memory
// before it commits the rest to flash.
const stopGrace = 5 * time.Second

// awaitDelivery waits, at most grace, until the sender has taken and
// delivered the head. It does not wait when the sender is failing or a
// committed backlog waits ahead of the head: then the head is committed.
func (a *Agent) awaitDelivery(grace time.Duration) {
	_, sender, _ := a.running()
	if sender == nil {
		return
	}
	a.buf.Collected()
	for deadline := time.Now().Add(grace); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		st := a.buf.Stats()
		if st.HeadSamples+st.LiveSamples == 0 || st.Blocks > 0 || sender.failing() {
			return
		}
	}
}

// runSources runs each source on its schedule until its stop is called or
// ctx ends; its stop waits for it.
func (a *Agent) runSources(ctx context.Context, sources []*source) {
	for _, s := range sources {
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			a.runSource(ctx, s)
		}()
		s.stop = func() { cancel(); <-done }
	}
}

// stopSources stops each source and waits for them.
func stopSources(sources []*source) {
	for _, s := range sources {
		if s.stop != nil {
			s.stop()
		}
	}
}

// replaceSources runs next instead of the running sources. A scrape target
// that is the same in both keeps running, with its counters; a source of
// the same name that changed restarts with its memory of series, so that
// only the series it no longer has are ended; one that is gone stops, and
// its series end with staleness markers. Called from the agent's loop.
func (a *Agent) replaceSources(ctx context.Context, next []*source) (started, stopped int) {
	a.mu.RLock()
	old := a.sources
	a.mu.RUnlock()
	byName := map[string]*source{}
	for _, s := range old {
		byName[s.name] = s
	}
	var start []*source
	for i, s := range next {
		prev, ok := byName[s.name]
		delete(byName, s.name)
		switch {
		case ok && prev == s:
		case ok && s.def != nil && prev.def != nil && reflect.DeepEqual(*s.def, *prev.def):
			next[i] = prev
		case ok:
			stopSources([]*source{prev})
			s.series = prev.series
			start = append(start, s)
		default:
			start = append(start, s)
		}
	}
	for _, gone := range byName {
		stopSources([]*source{gone})
	}
	a.mu.Lock()
	a.sources = next
	a.mu.Unlock()
	for _, gone := range byName {
		a.markAllStale(gone)
	}
	a.runSources(ctx, start)
	return len(start), len(byName)
}

// runSender runs g, if any, until the returned stop is called; stop waits
// until the senders have recorded what they delivered.
func (a *Agent) runSender(g *senders) (stop func()) {
	if g == nil {
		return func() {}
	}
	return g.run(func(f *remotewrite.Fanout) { a.fan.Store(f) })
}

// evicted is the buffer's Options.Evicted: the running fan-out counts the
// block against the endpoints that had not delivered it. (With one
// endpoint, the buffer's own count of full is that endpoint's.)
func (a *Agent) evicted(seq uint64, samples int) {
	if f := a.fan.Load(); f != nil {
		f.Evicted(seq, samples)
	}
}

// handler serves the agent's web endpoints.
func (a *Agent) handler() http.Handler { return web.Handler(webBackend{selfCollector{a}}) }

// running returns the configuration, sender and sources in use.
func (a *Agent) running() (config.Config, *senders, []*source) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.cfg, a.sender, a.sources
}

// sendLabels are the running configuration's external labels and, with one
// remote_write endpoint, its write_relabel_configs (with several, each
// endpoint's sender applies its own).
func (a *Agent) sendLabels() (labels.Labels, []*relabel.Config) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if len(a.cfg.MoreRemoteWrite) > 0 {
		return a.cfg.ExternalLabels, nil
	}
	return a.cfg.ExternalLabels, a.cfg.WriteRelabel
}

// bufferRetryInterval is how often ferry tries again to open a buffer that
// the filesystem refused (read-only, no space, permissions).
const bufferRetryInterval = 30 * time.Second

// openBuffer opens the buffer, waiting for the filesystem to allow it: a
// device whose flash came up read-only must not make ferry exit and its
// supervisor give up on it. Another ferry holding the buffer, a cap this
// system cannot map, or ctx ending are final.
func openBuffer(ctx context.Context, cfg config.Config, log *slog.Logger, retry time.Duration, evicted func(uint64, int)) (*buffer.Buffer, error) {
	for {
		buf, err := buffer.Open(buffer.Options{Dir: cfg.StoragePath, MaxSize: cfg.StorageMaxSize, Thin: cfg.StorageThin, Logger: log, Evicted: evicted})
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

// settleClock deals, at a stop, with the samples the clock guard holds:
// stamped into the buffer if the wall clock was set since the last
// collection, or else dropped, counted and logged, since no later run
// could stamp them.
func (a *Agent) settleClock() {
	if _, ok := a.clock.Now(a.buf.Append); ok {
		return
	}
	if n := a.clock.Discard(); n > 0 {
		a.log.Warn("stopping with the wall clock still not set: the samples held for it are lost", "samples", n)
	}
}

// How what the sender has not taken becomes durable. Each collection waits
// in the head, in memory, for the sender; what is still there a journal
// tick later is appended to the journal (the page cache: a killed process
// loses about two ticks), and while the live path fails (the link is down)
// each collection as soon as it is in the head (a killed process loses the
// collection in progress); the journal is synced every --storage.sync-interval
// (a power cut loses at most that), and the head is committed to the
// buffer file every CommitInterval, or at once when the head or the journal
// reaches its bound. Longer commits cost less flash per sample: the blocks
// hold more samples of each series and the same commit overhead.
const (
	JournalTick    = time.Second
	CommitInterval = 15 * time.Minute
)

// commitLoop runs the durability schedule above until ctx ends; Close
// commits the rest.
func (a *Agent) commitLoop(ctx context.Context, syncInterval time.Duration) {
	journal, sync, commit := time.NewTicker(JournalTick), time.NewTicker(syncInterval), time.NewTicker(CommitInterval)
	defer journal.Stop()
	defer sync.Stop()
	defer commit.Stop()
	var errLog lograte.Limiter
	fail := func(what string, err error) {
		a.commitErrors.Add(1)
		errLog.Log(a.log, slog.LevelError, what, "err", err)
	}
	writeJournal := func() {
		if err := a.buf.Journal(); err != nil {
			fail("writing the buffer's journal", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-journal.C:
			writeJournal()
		case <-a.buf.JournalDue():
			// The link is down: a collection goes to the journal at
			// once, not a tick or two later.
			writeJournal()
		case <-sync.C:
			if err := a.buf.Sync(); err != nil {
				fail("syncing the buffer's journal", err)
			} else if a.log.Enabled(ctx, slog.LevelDebug) {
				st := a.buf.Stats()
				a.log.Debug("synced", "buffered_samples", st.Samples+st.JournalSynced, "newest_ms", max(st.NewestT, st.JournalSyncedNewestT))
			}
		case <-commit.C:
			a.commit(ctx, fail)
		case <-a.buf.HeadFull():
			a.commit(ctx, fail)
		}
	}
}

func (a *Agent) commit(ctx context.Context, fail func(string, error)) {
	if err := a.buf.Commit(); err != nil {
		fail("committing to the buffer", err)
	} else if a.log.Enabled(ctx, slog.LevelDebug) {
		// What is on disk now: the claim bench/powercut checks after a
		// power cut (as the "synced" line after each journal sync).
		st := a.buf.Stats()
		a.log.Debug("committed", "buffered_samples", st.Samples, "newest_ms", st.NewestT)
	}
}

// buildSources turns a configuration into sources: the host collectors as
// job "node", each scrape target (those of cfg, then those the agent's
// file_sd_configs found), and ferry's own metrics as job "ferry", last.
func (a *Agent) buildSources(cfg config.Config) ([]*source, error) {
	return a.sourcesFor(cfg, a.disc)
}

func (a *Agent) sourcesFor(cfg config.Config, disc *discovery) ([]*source, error) {
	hostname := instanceOf(cfg)
	defaultTimeout := min(cfg.ScrapeInterval, config.MaxScrapeTimeout)
	var sources []*source
	if hs := host.NewSet(cfg.Collectors, cfg.Paths); hs != nil {
		s := newSource("node", "node", hostname, hs)
		s.host = hs
		s.interval, s.timeout = cfg.ScrapeInterval, defaultTimeout
		sources = append(sources, s)
	}
	static, err := a.targetSources(cfg, cfg.Targets, true)
	if err != nil {
		return nil, err
	}
	discovered, _ := a.targetSources(cfg, disc.targets(a.log), false)
	sources = append(append(sources, static...), discovered...)
	self := newSource("ferry", "ferry", hostname, selfCollector{a})
	self.interval, self.timeout = cfg.ScrapeInterval, defaultTimeout
	return append(sources, self), nil
}

// targetSources returns a source for each target. A target whose scraper
// cannot be set up is an error if strict, else logged and left out.
func (a *Agent) targetSources(cfg config.Config, targets []config.ScrapeTarget, strict bool) ([]*source, error) {
	var sources []*source
	for _, t := range targets {
		s := &source{name: t.Name(), def: &t, target: t.Labels, honorLabels: t.HonorLabels, metricRelabel: t.MetricRelabel,
			report: true, interval: cmp.Or(t.Interval, cfg.ScrapeInterval), series: newSeriesSet()}
		s.timeout = cmp.Or(t.Timeout, min(s.interval, config.MaxScrapeTimeout))
		// The scraper adds the target labels to the label sets it caches:
		// one label set per series instead of two.
		st := t.Target
		st.Labels, st.HonorLabels = t.Labels, t.HonorLabels
		scraper, err := scrape.New(st, s.timeout)
		if err != nil {
			err = fmt.Errorf("scrape target %s: %w", s.name, err)
			if strict {
				return nil, err
			}
			a.log.Error("target left out", "err", err)
			continue
		}
		s.collector, s.targetLabelled = scraper, true
		s.failures = map[string]*atomic.Uint64{}
		for _, r := range scrape.Reasons {
			s.failures[r] = new(atomic.Uint64)
		}
		sources = append(sources, s)
	}
	return sources, nil
}

// instanceOf is the instance label of the host's and ferry's own series:
// the configured one (--instance, --instance-from, ferry.instance), else
// the hostname, as for node_exporter scraped by Prometheus less the port.
// README.md, "Fleet identity", documents the rule.
func instanceOf(cfg config.Config) string {
	if cfg.Instance != "" {
		return cfg.Instance
	}
	hostname, err := os.Hostname()
	if err != nil || hostname == "" {
		return "localhost"
	}
	return hostname
}
