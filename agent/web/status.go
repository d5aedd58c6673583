package agent

import (
	"fmt"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferry-agent/ferry/collectors"
	"github.com/ferry-agent/ferry/collectors/host"
	"github.com/ferry-agent/ferry/internal/httpclient"
	"github.com/ferry-agent/ferry/internal/units"
)

// The status page on "/" answers an operator's question about this device:
// is it keeping up, and if not, how much history waits and why. It is
// rendered on the server from the same collection as /metrics, with no
// script and no outside asset, so that it works in any browser over an SSH
// tunnel to the router's loopback.

// figure is one number on the page: the series of /metrics it comes from,
// its exact value (both in a <data> element, for tests and scripts) and the
// text a person reads.
type figure struct {
	Series string
	Value  string
	Text   string
}

type statusView struct {
	Version, Host, Now, Uptime string

	Verdict string
	Behind  bool

	BufferUsed, BufferFile, BufferMax      figure
	Samples, HeadSamples, Series, Blocks   figure
	Oldest, Newest, BacklogAge             figure
	Sending                                bool
	URL                                    string
	Sent, BytesSent, Failures, LastSuccess figure
	SendRate                               string
	LastError, LastErrorAt                 string
	Drops                                  []dropView
	Sources                                []sourceView
	Collectors                             []collectorView
}

type dropView struct {
	Where, Reason string
	Count         figure
}

type sourceView struct {
	Name, State, LastRun, LastErr string
	OK                            bool
	Appended, Errors              figure
}

type collectorView struct {
	Name, State string
	OK          bool
}

// statusPage serves "/". It remembers the previous look at the sender, to
// show a send rate over the time between two looks.
type statusPage struct {
	a *Agent

	mu       sync.Mutex
	prevAt   time.Time
	prevSent float64
}

// minRateWindow keeps quick reloads from showing the rate of a moment.
const minRateWindow = 10 * time.Second

func (p *statusPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var c collectors.Collection
	_ = selfCollector{p.a}.Collect(r.Context(), &c)
	view := p.view(&c, time.Now())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// Nothing from elsewhere: the page must work with no link but the tunnel.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	_, _ = w.Write(renderStatus(view))
}

func (p *statusPage) view(c *collectors.Collection, now time.Time) statusView {
	a := p.a
	cfg, sender, sources := a.running()
	values := map[string]float64{}
	for _, s := range c.Samples {
		values[string(collectors.AppendSeries(nil, s.Labels))] = s.V
	}
	fig := func(series string, text func(float64) string) figure {
		v := values[series]
		return figure{Series: series, Value: collectors.FormatValue(v), Text: text(v)}
	}
	hostname, _ := os.Hostname()
	v := statusView{
		Version: cfg.Version,
		Host:    hostname,
		Now:     timeText(float64(now.Unix())),
		Uptime:  durationText(now.Sub(a.started).Seconds()),

		BufferUsed:  fig("ferry_buffer_used_bytes", units.HumanBytes),
		BufferFile:  fig("ferry_buffer_bytes", units.HumanBytes),
		BufferMax:   fig("ferry_buffer_max_bytes", units.HumanBytes),
		Samples:     fig("ferry_buffer_samples", countText),
		HeadSamples: fig("ferry_buffer_head_samples", countText),
		Series:      fig("ferry_buffer_series", countText),
		Blocks:      fig("ferry_buffer_blocks", countText),
		Oldest:      fig("ferry_buffer_oldest_timestamp_seconds", timeText),
		Newest:      fig("ferry_buffer_newest_timestamp_seconds", timeText),
		BacklogAge:  fig("ferry_buffer_backlog_age_seconds", durationText),

		Sending:     sender != nil,
		URL:         httpclient.RedactURL(cfg.RemoteWrite.URL),
		Sent:        fig("ferry_remote_write_samples_sent_total", countText),
		BytesSent:   fig("ferry_remote_write_bytes_sent_total", units.HumanBytes),
		Failures:    fig("ferry_remote_write_failures_total", countText),
		LastSuccess: fig("ferry_remote_write_last_success_timestamp_seconds", timeText),
	}

	for _, r := range bufferReasons {
		v.Drops = append(v.Drops, dropView{"buffer", r, fig(`ferry_buffer_dropped_samples_total{reason="`+r+`"}`, countText)})
	}
	for _, r := range senderReasons {
		v.Drops = append(v.Drops, dropView{"sender", r, fig(`ferry_remote_write_dropped_samples_total{reason="`+r+`"}`, countText)})
	}

	var lastErrorUnix float64
	if sender != nil {
		st := sender.Stats()
		lastErrorUnix = st.LastErrorUnix
		if st.LastError != "" {
			v.LastError, v.LastErrorAt = st.LastError, timeText(st.LastErrorUnix)
		}
		v.SendRate = p.rate(now, float64(st.SamplesSent))
	}

	age := values["ferry_buffer_backlog_age_seconds"]
	switch caughtUp := max(2*cfg.SyncInterval, 30*time.Second).Seconds(); {
	case sender == nil:
		v.Verdict, v.Behind = "Not sending: no --remote-write.url. Buffering only; the buffer keeps the newest data up to its cap.", true
	case age <= caughtUp:
		v.Verdict = "Keeping up."
	default:
		v.Verdict, v.Behind = fmt.Sprintf("Behind by %s: %s samples wait to be sent.", durationText(age), v.Samples.Text), true
		if v.LastError != "" && values["ferry_remote_write_last_success_timestamp_seconds"] < lastErrorUnix {
			v.Verdict += " The last request failed: see the receiver's answer below."
		}
	}

	var failing map[string]bool
	for _, s := range sources {
		sv := sourceView{
			Name:     s.name,
			Appended: fig(`ferry_samples_appended_total{source="`+s.name+`"}`, countText),
			Errors:   fig(`ferry_collect_errors_total{source="`+s.name+`"}`, countText),
		}
		s.mu.Lock()
		lastRun, lastErr := s.lastRun, s.lastErr
		s.mu.Unlock()
		switch {
		case lastRun.IsZero():
			sv.State, sv.LastRun = "not run yet", "never"
		case lastErr != "":
			sv.State, sv.LastErr = "failing", lastErr
		default:
			sv.State, sv.OK = "ok", true
		}
		if !lastRun.IsZero() {
			sv.LastRun = durationText(now.Sub(lastRun).Seconds()) + " ago"
		}
		if s.name == "node" {
			failing = failingCollectors(lastErr)
		}
		v.Sources = append(v.Sources, sv)
	}
	for _, e := range host.Collectors() {
		if !cfg.Collectors[e.Name] {
			continue
		}
		cv := collectorView{Name: e.Name, State: "ok", OK: true}
		if failing[e.Name] {
			cv.State, cv.OK = "failing", false
		}
		v.Collectors = append(v.Collectors, cv)
	}
	return v
}

// failingCollectors reads the host source's error, in which multiCollector
// names each failing collector on a line of its own.
func failingCollectors(err string) map[string]bool {
	failing := map[string]bool{}
	for _, line := range strings.Split(err, "\n") {
		if rest, ok := strings.CutPrefix(line, "collector "); ok {
			name, _, _ := strings.Cut(rest, ":")
			failing[name] = true
		}
	}
	return failing
}

// rate returns the send rate since the previous look, or since the start
// on the first.
func (p *statusPage) rate(now time.Time, sent float64) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	from, fromSent, since := p.prevAt, p.prevSent, "the previous look"
	if from.IsZero() {
		from, fromSent, since = p.a.started, 0, "ferry's start"
	}
	d := now.Sub(from)
	if d <= 0 {
		return "unknown"
	}
	if d >= minRateWindow {
		p.prevAt, p.prevSent = now, sent
	}
	return fmt.Sprintf("%.1f samples/s over the %s since %s", (sent-fromSent)/d.Seconds(), durationText(d.Seconds()), since)
}

func countText(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// timeText is UTC to the second; 0 means there is no such time.
func timeText(unix float64) string {
	if unix == 0 {
		return "none"
	}
	return time.UnixMilli(int64(unix * 1000)).UTC().Format("2006-01-02 15:04:05 UTC")
}

// durationText is Go's duration format, to the second: "1h2m3s".
func durationText(secs float64) string {
	return (time.Duration(math.Round(secs)) * time.Second).String()
}
