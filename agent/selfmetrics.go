package agent

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-agent/ferry/agent/clock"
	"github.com/ferry-agent/ferry/agent/config"
	"github.com/ferry-agent/ferry/agent/remotewrite"
	"github.com/ferry-agent/ferry/agent/web"
	"github.com/ferry-agent/ferry/buffer"
	"github.com/ferry-agent/ferry/collectors"
	"github.com/ferry-agent/ferry/collectors/scrape"
	"github.com/ferry-agent/ferry/internal/httpclient"
)

// ferry's own metrics: served on /metrics and, as job "ferry", written into
// the buffer like any other source, so the central store sees how each
// device keeps up.
var (
	buildInfoDesc = collectors.NewDesc("ferry_build_info", "ferry's version and the Go version it was built with.", collectors.Gauge, "version", "goversion")

	appendedDesc       = collectors.NewDesc("ferry_samples_appended_total", "Samples appended to the buffer, by source.", collectors.Counter, "source")
	scrapeFailuresDesc = collectors.NewDesc("ferry_scrape_failures_total", "Failed scrapes of a target, by reason.", collectors.Counter, "source", "reason")
	duplicatesDesc     = collectors.NewDesc("ferry_scrape_duplicate_samples_total", "Samples of a source dropped because their series came twice in one collection.", collectors.Counter, "source")
	collectErrorsDesc  = collectors.NewDesc("ferry_collect_errors_total", "Collections of a source that failed in whole or in part.", collectors.Counter, "source")

	bufferSamplesDesc  = collectors.NewDesc("ferry_buffer_samples", "Samples committed to the buffer and not yet acknowledged by the receiver.", collectors.Gauge)
	bufferHeadDesc     = collectors.NewDesc("ferry_buffer_head_samples", "Samples collected and waiting in memory: not yet taken by the sender nor committed to disk.", collectors.Gauge)
	bufferBlocksDesc   = collectors.NewDesc("ferry_buffer_blocks", "Blocks in the buffer.", collectors.Gauge)
	bufferSeriesDesc   = collectors.NewDesc("ferry_buffer_series", "Label sets in the buffer's series dictionary.", collectors.Gauge)
	bufferBytesDesc    = collectors.NewDesc("ferry_buffer_bytes", "Size of the buffer's file on disk.", collectors.Gauge)
	bufferUsedDesc     = collectors.NewDesc("ferry_buffer_used_bytes", "Bytes of the buffer's file in use; the rest of the file is free for reuse.", collectors.Gauge)
	bufferMaxBytesDesc = collectors.NewDesc("ferry_buffer_max_bytes", "The buffer's size cap (--storage.max-size).", collectors.Gauge)
	bufferOldestDesc   = collectors.NewDesc("ferry_buffer_oldest_timestamp_seconds", "Timestamp of the oldest buffered sample; 0 when empty.", collectors.Gauge)
	bufferNewestDesc   = collectors.NewDesc("ferry_buffer_newest_timestamp_seconds", "Timestamp of the newest buffered sample; 0 when empty.", collectors.Gauge)
	backlogAgeDesc     = collectors.NewDesc("ferry_buffer_backlog_age_seconds", "How far behind the sender is: now minus the oldest sample not yet delivered, committed or in memory; 0 when caught up.", collectors.Gauge)
	bufferDroppedDesc  = collectors.NewDesc("ferry_buffer_dropped_samples_total", "Samples the buffer dropped, by reason.", collectors.Counter, "reason")
	bufferAsideDesc    = collectors.NewDesc("ferry_buffer_files_moved_aside_total", "Damaged buffer files moved aside for a fresh one holding what could be salvaged.", collectors.Counter)
	bufferAsideDelDesc = collectors.NewDesc("ferry_buffer_aside_files_deleted_total", "Moved-aside buffer files deleted: one is kept, and only while it fits in the cap.", collectors.Counter)
	commitErrorsDesc   = collectors.NewDesc("ferry_buffer_commit_errors_total", "Commits to the buffer that failed (the block is kept in memory and retried).", collectors.Counter)

	sentDesc        = collectors.NewDesc("ferry_remote_write_samples_sent_total", "Samples the receiver acknowledged.", collectors.Counter, "endpoint")
	sentBytesDesc   = collectors.NewDesc("ferry_remote_write_bytes_sent_total", "Compressed request bytes the receiver acknowledged.", collectors.Counter, "endpoint")
	failuresDesc    = collectors.NewDesc("ferry_remote_write_failures_total", "Requests that failed and were retried (network errors, 5xx, 429, 408, 401, 403, 404, 407, redirects, HTML pages of portals and proxies, 2xx too).", collectors.Counter, "endpoint")
	rwDroppedDesc   = collectors.NewDesc("ferry_remote_write_dropped_samples_total", "Samples the sender dropped, by reason, or the buffer evicted at its cap before this endpoint had them (full).", collectors.Counter, "endpoint", "reason")
	budgetDesc      = collectors.NewDesc("ferry_remote_write_budget_bytes", "The daily byte budget (--remote-write.max-bytes-per-day); 0 without one.", collectors.Gauge, "endpoint")
	budgetUsedDesc  = collectors.NewDesc("ferry_remote_write_budget_used_bytes", "Request bytes sent this UTC day, against the daily budget.", collectors.Gauge, "endpoint")
	lastSuccessDesc = collectors.NewDesc("ferry_remote_write_last_success_timestamp_seconds", "Time of the last acknowledged request; 0 before the first.", collectors.Gauge, "endpoint")

	clockHeldDesc    = collectors.NewDesc("ferry_clock_held_samples", "Samples held in memory until the wall clock is plausible.", collectors.Gauge)
	clockDroppedDesc = collectors.NewDesc("ferry_clock_dropped_samples_total", "Samples dropped because the wall clock stayed implausible for longer than ferry holds samples, or until ferry stopped.", collectors.Counter)
	clockJumpsDesc   = collectors.NewDesc("ferry_clock_jumps_total", "Jumps of the wall clock against the monotonic clock, by direction.", collectors.Counter, "direction")

	residentDesc  = collectors.NewDesc("process_resident_memory_bytes", "Resident memory size in bytes.", collectors.Gauge)
	cpuDesc       = collectors.NewDesc("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", collectors.Counter)
	startTimeDesc = collectors.NewDesc("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", collectors.Gauge)
)

// selfCollector gathers the agent's figures as the source "ferry".
type selfCollector struct{ a *Agent }

func (s selfCollector) Collect(_ context.Context, c *collectors.Collection) error {
	s.a.gather(c, nil, time.Now())
	return nil
}

// webBackend is the agent as its web endpoints see it.
type webBackend struct{ selfCollector }

func (b webBackend) Snapshot(now time.Time) web.Snapshot {
	var c collectors.Collection
	var snap web.Snapshot
	b.a.gather(&c, &snap, now)
	return snap
}

func (b webBackend) Ready() bool { return b.a.ready.Load() }

// gather takes one look at the agent's figures: it adds them to c as ferry's
// own metrics and, if snap is not nil, fills snap for the status page with
// the very values added, so that the page and /metrics cannot disagree.
// Every reason, direction and source is there, zero or not, so that rates
// and alerts work before the first drop.
func (a *Agent) gather(c *collectors.Collection, snap *web.Snapshot, now time.Time) {
	// fig adds a sample and returns it as the page shows it.
	fig := func(d *collectors.Desc, v float64, labelValues ...string) web.Figure {
		c.Add(d, v, labelValues...)
		if snap == nil {
			return web.Figure{}
		}
		return web.Figure{Series: string(collectors.AppendSeries(nil, c.Samples[len(c.Samples)-1].Labels)), Value: v}
	}
	cfg, sender, sources := a.running()
	var s web.Snapshot
	c.Add(buildInfoDesc, 1, cfg.Version, runtime.Version())
	s.Sources = make([]web.Source, len(sources))
	for i, src := range sources {
		s.Sources[i].Name = src.name
		s.Sources[i].Appended = fig(appendedDesc, float64(src.appended.Load()), src.name)
	}
	for i, src := range sources {
		s.Sources[i].Errors = fig(collectErrorsDesc, float64(src.errors.Load()), src.name)
	}
	for _, src := range sources {
		for _, r := range scrape.Reasons {
			if f := src.failures[r]; f != nil {
				c.Add(scrapeFailuresDesc, float64(f.Load()), src.name, r)
			}
		}
	}
	for _, src := range sources {
		c.Add(duplicatesDesc, float64(src.duplicates.Load()), src.name)
	}

	st := a.buf.Stats()
	s.Buffer.Samples = fig(bufferSamplesDesc, float64(st.Samples))
	s.Buffer.HeadSamples = fig(bufferHeadDesc, float64(st.HeadSamples))
	s.Buffer.Blocks = fig(bufferBlocksDesc, float64(st.Blocks))
	s.Buffer.Series = fig(bufferSeriesDesc, float64(st.Series))
	s.Buffer.FileBytes = fig(bufferBytesDesc, float64(st.FileBytes))
	s.Buffer.UsedBytes = fig(bufferUsedDesc, float64(st.UsedBytes))
	s.Buffer.MaxBytes = fig(bufferMaxBytesDesc, float64(st.MaxBytes))
	s.Buffer.Oldest = fig(bufferOldestDesc, float64(st.OldestT)/1000)
	s.Buffer.Newest = fig(bufferNewestDesc, float64(st.NewestT)/1000)
	oldest := st.HeadOldestT
	if st.Samples > 0 && (oldest == 0 || st.OldestT < oldest) {
		oldest = st.OldestT
	}
	var age float64
	if oldest > 0 {
		age = max(0, float64(now.UnixMilli()-oldest)/1000)
	}
	s.Buffer.BacklogAge = fig(backlogAgeDesc, age)
	for _, r := range buffer.DropReasons {
		s.Drops = append(s.Drops, web.Drop{Where: "buffer", Reason: r, Count: fig(bufferDroppedDesc, float64(st.Dropped[r]), r)})
	}
	c.Add(bufferAsideDesc, float64(st.FilesMovedAside))
	c.Add(bufferAsideDelDesc, float64(st.FilesDeleted))
	c.Add(commitErrorsDesc, float64(a.commitErrors.Load()))

	// One set of sender figures per endpoint; without any, one set of
	// zeros without the label, so that rates and alerts work from the start.
	eps, n := cfg.Endpoints(), 1
	var sentAll uint64 // over every endpoint, for the plot of the send rate
	if sender != nil {
		n = len(sender.all)
	}
	for i := range n {
		var rw remotewrite.Stats
		var ep config.RemoteWrite
		evicted := sender.evicted(i, st)
		if sender != nil {
			rw, ep = sender.all[i].Stats(), sender.eps[i]
		} else if len(eps) > 0 {
			ep = eps[0]
		}
		sentAll += rw.SamplesSent
		label := ""
		if sender != nil {
			label = ep.Label()
		}
		sent := web.Sender{
			Endpoint:      label,
			URL:           httpclient.RedactURL(ep.URL),
			Sent:          fig(sentDesc, float64(rw.SamplesSent), label),
			BytesSent:     fig(sentBytesDesc, float64(rw.BytesSent), label),
			Failures:      fig(failuresDesc, float64(rw.RequestsFailed), label),
			LastError:     rw.LastError,
			LastErrorUnix: rw.LastErrorUnix,
			FailingSince:  rw.FailingSinceUnix,
		}
		where := "sender"
		if n > 1 {
			where = "sender " + label
		}
		for _, r := range remotewrite.DropReasons {
			s.Drops = append(s.Drops, web.Drop{Where: where, Reason: r, Count: fig(rwDroppedDesc, float64(rw.Dropped[r]), label, r)})
		}
		s.Drops = append(s.Drops, web.Drop{Where: where, Reason: buffer.ReasonFull, Count: fig(rwDroppedDesc, float64(evicted), label, buffer.ReasonFull)})
		sent.LastSuccess = fig(lastSuccessDesc, rw.LastSuccessUnix, label)
		c.Add(budgetDesc, float64(ep.MaxBytesPerDay), label)
		c.Add(budgetUsedDesc, float64(rw.BudgetUsedBytes), label)
		switch {
		case sender == nil:
		case i == 0:
			s.Sender = &sent
		default:
			s.MoreSenders = append(s.MoreSenders, sent)
		}
	}

	cs := a.clock.Stats()
	s.Clock.Held = fig(clockHeldDesc, float64(cs.Held))
	s.Clock.Dropped = fig(clockDroppedDesc, float64(cs.Dropped))
	for _, d := range clock.JumpDirections {
		s.Clock.Jumps = append(s.Clock.Jumps, web.Jump{Direction: d, Count: fig(clockJumpsDesc, float64(cs.Jumps[d]), d)})
	}

	// Each look also feeds the status page's plots: the source "ferry"
	// looks every interval, so the hour has its points without a visitor.
	a.history.Observe(now, web.Point{Unix: float64(now.UnixMilli()) / 1000,
		Waiting: float64(st.Samples + st.HeadSamples), Age: age, Sent: float64(sentAll)})

	c.Add(startTimeDesc, float64(a.started.UnixMilli())/1000)
	if rss, cpu, ok := readProcSelf(cfg.Paths.ProcFS); ok {
		c.Add(residentDesc, rss)
		c.Add(cpuDesc, cpu)
	}

	if snap == nil {
		return
	}
	s.Version, s.Taken, s.Started, s.SyncInterval = cfg.Version, now, a.started, cfg.SyncInterval
	s.Host = instanceOf(cfg)
	s.History = a.history.Points(now)
	for i, src := range sources {
		src.mu.Lock()
		s.Sources[i].LastRun, s.Sources[i].LastErr = src.lastRun, src.lastErr
		src.mu.Unlock()
		if src.host == nil {
			continue
		}
		failing := map[string]bool{}
		for _, o := range src.host.Outcomes() {
			failing[o.Name] = !o.OK()
		}
		for _, name := range src.host.Names() {
			s.Collectors = append(s.Collectors, web.Collector{Name: name, OK: !failing[name]})
		}
	}
	*snap = s
}

// readProcSelf returns RSS bytes and CPU seconds from /proc/self/stat.
func readProcSelf(procfs string) (rss, cpu float64, ok bool) {
	data, err := os.ReadFile(procfs + "/self/stat")
	if err != nil {
		return 0, 0, false
	}
	// Fields after the command name, which is in parentheses and may
	// contain spaces: state is field 3, utime 14, stime 15, rss 24.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 22 {
		return 0, 0, false
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	pages, _ := strconv.ParseFloat(f[21], 64)
	const userHZ = 100 // USER_HZ is 100 on every Linux architecture ferry targets
	return pages * float64(os.Getpagesize()), (utime + stime) / userHZ, true
}
