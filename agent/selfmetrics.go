package agent

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-agent/ferry/agent/remotewrite"
	"github.com/ferry-agent/ferry/buffer"
	"github.com/ferry-agent/ferry/collectors"
	"github.com/ferry-agent/ferry/collectors/scrape"
)

// ferry's own metrics: served on /metrics and, as job "ferry", written into
// the buffer like any other source, so the central store sees how each
// device keeps up.
var (
	buildInfoDesc = collectors.NewDesc("ferry_build_info", "ferry's version and the Go version it was built with.", collectors.Gauge, "version", "goversion")

	appendedDesc       = collectors.NewDesc("ferry_samples_appended_total", "Samples appended to the buffer, by source.", collectors.Counter, "source")
	scrapeFailuresDesc = collectors.NewDesc("ferry_scrape_failures_total", "Failed scrapes of a target, by reason.", collectors.Counter, "source", "reason")
	duplicatesDesc     = collectors.NewDesc("ferry_scrape_duplicate_samples_total", "Samples of a target dropped because their series came twice in one scrape.", collectors.Counter, "source")
	collectErrorsDesc  = collectors.NewDesc("ferry_collect_errors_total", "Collections of a source that failed in whole or in part.", collectors.Counter, "source")

	bufferSamplesDesc  = collectors.NewDesc("ferry_buffer_samples", "Samples committed to the buffer and not yet acknowledged by the receiver.", collectors.Gauge)
	bufferHeadDesc     = collectors.NewDesc("ferry_buffer_head_samples", "Samples collected and not yet committed to disk.", collectors.Gauge)
	bufferBlocksDesc   = collectors.NewDesc("ferry_buffer_blocks", "Blocks in the buffer.", collectors.Gauge)
	bufferSeriesDesc   = collectors.NewDesc("ferry_buffer_series", "Label sets in the buffer's series dictionary.", collectors.Gauge)
	bufferBytesDesc    = collectors.NewDesc("ferry_buffer_bytes", "Size of the buffer's file on disk.", collectors.Gauge)
	bufferUsedDesc     = collectors.NewDesc("ferry_buffer_used_bytes", "Bytes of the buffer's file in use; the rest of the file is free for reuse.", collectors.Gauge)
	bufferMaxBytesDesc = collectors.NewDesc("ferry_buffer_max_bytes", "The buffer's size cap (--storage.max-size).", collectors.Gauge)
	bufferOldestDesc   = collectors.NewDesc("ferry_buffer_oldest_timestamp_seconds", "Timestamp of the oldest buffered sample; 0 when empty.", collectors.Gauge)
	bufferNewestDesc   = collectors.NewDesc("ferry_buffer_newest_timestamp_seconds", "Timestamp of the newest buffered sample; 0 when empty.", collectors.Gauge)
	backlogAgeDesc     = collectors.NewDesc("ferry_buffer_backlog_age_seconds", "How far behind the sender is: now minus the oldest committed sample not yet acknowledged; 0 when caught up.", collectors.Gauge)
	bufferDroppedDesc  = collectors.NewDesc("ferry_buffer_dropped_samples_total", "Samples the buffer dropped, by reason.", collectors.Counter, "reason")
	bufferAsideDesc    = collectors.NewDesc("ferry_buffer_files_moved_aside_total", "Unreadable buffer files moved aside for a fresh one.", collectors.Counter)
	commitErrorsDesc   = collectors.NewDesc("ferry_buffer_commit_errors_total", "Commits to the buffer that failed (the block is kept in memory and retried).", collectors.Counter)

	sentDesc        = collectors.NewDesc("ferry_remote_write_samples_sent_total", "Samples the receiver acknowledged.", collectors.Counter)
	sentBytesDesc   = collectors.NewDesc("ferry_remote_write_bytes_sent_total", "Compressed request bytes the receiver acknowledged.", collectors.Counter)
	failuresDesc    = collectors.NewDesc("ferry_remote_write_failures_total", "Requests that failed and were retried (network errors, 5xx, 429).", collectors.Counter)
	rwDroppedDesc   = collectors.NewDesc("ferry_remote_write_dropped_samples_total", "Samples the sender dropped, by reason.", collectors.Counter, "reason")
	budgetDesc      = collectors.NewDesc("ferry_remote_write_budget_bytes", "The daily byte budget (--remote-write.max-bytes-per-day); 0 without one.", collectors.Gauge)
	budgetUsedDesc  = collectors.NewDesc("ferry_remote_write_budget_used_bytes", "Request bytes sent this UTC day, against the daily budget.", collectors.Gauge)
	lastSuccessDesc = collectors.NewDesc("ferry_remote_write_last_success_timestamp_seconds", "Time of the last acknowledged request; 0 before the first.", collectors.Gauge)

	clockHeldDesc    = collectors.NewDesc("ferry_clock_held_samples", "Samples held in memory until the wall clock is plausible.", collectors.Gauge)
	clockDroppedDesc = collectors.NewDesc("ferry_clock_dropped_samples_total", "Samples dropped because the wall clock stayed implausible for longer than ferry holds samples.", collectors.Counter)
	clockJumpsDesc   = collectors.NewDesc("ferry_clock_jumps_total", "Jumps of the wall clock against the monotonic clock, by direction.", collectors.Counter, "direction")

	residentDesc  = collectors.NewDesc("process_resident_memory_bytes", "Resident memory size in bytes.", collectors.Gauge)
	cpuDesc       = collectors.NewDesc("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", collectors.Counter)
	startTimeDesc = collectors.NewDesc("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", collectors.Gauge)
)

// bufferReasons and senderReasons are always exported, zero or not, so that
// rates and alerts work before the first drop.
var (
	bufferReasons = []string{buffer.ReasonFull, buffer.ReasonCorrupt, buffer.ReasonOutOfOrder,
		buffer.ReasonOutOfBounds, buffer.ReasonInvalid, buffer.ReasonWriteError, buffer.ReasonThinned}
	senderReasons = []string{remotewrite.ReasonRejected, remotewrite.ReasonTooOld}
)

// selfCollector gathers the agent's figures.
type selfCollector struct{ a *Agent }

func (s selfCollector) Collect(_ context.Context, c *collectors.Collection) error {
	a := s.a
	cfg, sender, sources := a.running()
	c.Add(buildInfoDesc, 1, cfg.Version, runtime.Version())
	for _, src := range sources {
		c.Add(appendedDesc, float64(src.appended.Load()), src.name)
	}
	for _, src := range sources {
		c.Add(collectErrorsDesc, float64(src.errors.Load()), src.name)
	}
	for _, src := range sources {
		for _, r := range scrape.Reasons {
			if f := src.failures[r]; f != nil {
				c.Add(scrapeFailuresDesc, float64(f.Load()), src.name, r)
			}
		}
	}
	for _, src := range sources {
		if src.duplicates != nil {
			c.Add(duplicatesDesc, float64(src.duplicates.DuplicatesDropped()), src.name)
		}
	}

	st := a.buf.Stats()
	c.Add(bufferSamplesDesc, float64(st.Samples))
	c.Add(bufferHeadDesc, float64(st.HeadSamples))
	c.Add(bufferBlocksDesc, float64(st.Blocks))
	c.Add(bufferSeriesDesc, float64(st.Series))
	c.Add(bufferBytesDesc, float64(st.FileBytes))
	c.Add(bufferUsedDesc, float64(st.UsedBytes))
	c.Add(bufferMaxBytesDesc, float64(st.MaxBytes))
	c.Add(bufferOldestDesc, float64(st.OldestT)/1000)
	c.Add(bufferNewestDesc, float64(st.NewestT)/1000)
	var age float64
	if st.Samples > 0 {
		age = max(0, float64(time.Now().UnixMilli()-st.OldestT)/1000)
	}
	c.Add(backlogAgeDesc, age)
	for _, r := range bufferReasons {
		c.Add(bufferDroppedDesc, float64(st.Dropped[r]), r)
	}
	c.Add(bufferAsideDesc, float64(st.FilesMovedAside))
	c.Add(commitErrorsDesc, float64(a.commitErrors.Load()))

	var rw remotewrite.Stats
	if sender != nil {
		rw = sender.Stats()
	}
	c.Add(sentDesc, float64(rw.SamplesSent))
	c.Add(sentBytesDesc, float64(rw.BytesSent))
	c.Add(failuresDesc, float64(rw.RequestsFailed))
	for _, r := range senderReasons {
		c.Add(rwDroppedDesc, float64(rw.Dropped[r]), r)
	}
	c.Add(lastSuccessDesc, rw.LastSuccessUnix)
	c.Add(budgetDesc, float64(cfg.RemoteWrite.MaxBytesPerDay))
	c.Add(budgetUsedDesc, float64(rw.BudgetUsedBytes))

	cs := a.clock.stats()
	c.Add(clockHeldDesc, float64(cs.held))
	c.Add(clockDroppedDesc, float64(cs.dropped))
	for _, d := range []string{"forward", "backward"} {
		c.Add(clockJumpsDesc, float64(cs.jumps[d]), d)
	}

	c.Add(startTimeDesc, float64(a.started.UnixMilli())/1000)
	if rss, cpu, ok := readProcSelf(cfg.Paths.ProcFS); ok {
		c.Add(residentDesc, rss)
		c.Add(cpuDesc, cpu)
	}
	return nil
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
