package web

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/ferry-agent/ferry/collectors"
	"github.com/ferry-agent/ferry/internal/units"
)

// The status page on "/" answers an operator's question about this device:
// is it keeping up, and if not, how much history waits and why. It is
// rendered on the server from a Snapshot, with no script and no outside
// asset, so that it works in any browser over an SSH tunnel to the router's
// loopback.

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
	ClockHeld, ClockDropped                figure
	ClockJumps                             []jumpView
	Sending                                bool
	Endpoint, URL                          string
	MoreSenders                            []senderLine
	Sent, BytesSent, Failures, LastSuccess figure
	SendRate                               string
	LastError, LastErrorAt                 string
	Drops                                  []dropView
	Sources                                []sourceView
	Collectors                             []collectorView
	Plots                                  []plotView
	NowUnix                                float64
}

// senderLine is a remote_write endpoint after the first, on one line.
type senderLine struct {
	Endpoint, URL          string
	Sent, Failures         figure
	LastSuccess            figure
	LastError, LastErrorAt string
}

type dropView struct {
	Where, Reason string
	Count         figure
}

type jumpView struct {
	Direction string
	Count     figure
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
	b Backend

	mu       sync.Mutex
	prevAt   time.Time
	prevSent float64
}

// minRateWindow keeps quick reloads from showing the rate of a moment.
const minRateWindow = 10 * time.Second

func (p *statusPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	view := p.view(p.b.Snapshot(time.Now()))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// Nothing from elsewhere: the page must work with no link but the tunnel.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	_, _ = w.Write(renderStatus(view))
}

// fig is a figure of the snapshot with the text a person reads.
func fig(f Figure, text func(float64) string) figure {
	return figure{Series: f.Series, Value: collectors.FormatValue(f.Value), Text: text(f.Value)}
}

func (p *statusPage) view(s Snapshot) statusView {
	now := s.Taken
	b := s.Buffer
	v := statusView{
		Version: s.Version,
		Host:    s.Host,
		Now:     timeText(float64(now.Unix())),
		Uptime:  durationText(now.Sub(s.Started).Seconds()),

		BufferUsed:   fig(b.UsedBytes, units.HumanBytes),
		BufferFile:   fig(b.FileBytes, units.HumanBytes),
		BufferMax:    fig(b.MaxBytes, units.HumanBytes),
		Samples:      fig(b.Samples, countText),
		HeadSamples:  fig(b.HeadSamples, countText),
		Series:       fig(b.Series, countText),
		Blocks:       fig(b.Blocks, countText),
		Oldest:       fig(b.Oldest, timeText),
		Newest:       fig(b.Newest, timeText),
		BacklogAge:   fig(b.BacklogAge, durationText),
		ClockHeld:    fig(s.Clock.Held, countText),
		ClockDropped: fig(s.Clock.Dropped, countText),
	}
	for _, j := range s.Clock.Jumps {
		v.ClockJumps = append(v.ClockJumps, jumpView{j.Direction, fig(j.Count, countText)})
	}
	for _, d := range s.Drops {
		v.Drops = append(v.Drops, dropView{d.Where, d.Reason, fig(d.Count, countText)})
	}

	if rw := s.Sender; rw != nil {
		v.Sending = true
		v.URL = rw.URL
		v.Sent = fig(rw.Sent, countText)
		v.BytesSent = fig(rw.BytesSent, units.HumanBytes)
		v.Failures = fig(rw.Failures, countText)
		v.LastSuccess = fig(rw.LastSuccess, timeText)
		if rw.LastError != "" {
			v.LastError, v.LastErrorAt = rw.LastError, timeText(rw.LastErrorUnix)
		}
		v.SendRate = p.rate(now, s.Started, rw.Sent.Value)
		if len(s.MoreSenders) > 0 {
			v.Endpoint = rw.Endpoint
		}
	}
	for _, o := range s.MoreSenders {
		l := senderLine{Endpoint: o.Endpoint, URL: o.URL, Sent: fig(o.Sent, countText), Failures: fig(o.Failures, countText), LastSuccess: fig(o.LastSuccess, timeText)}
		if o.LastError != "" {
			l.LastError, l.LastErrorAt = o.LastError, timeText(o.LastErrorUnix)
		}
		v.MoreSenders = append(v.MoreSenders, l)
	}
	// The verdict speaks of the first endpoint that fails, if one does.
	failing := s.Sender
	for i := range s.MoreSenders {
		if failing != nil && failing.FailingSince == 0 && s.MoreSenders[i].FailingSince > 0 {
			failing = &s.MoreSenders[i]
		}
	}
	receiver := "The receiver"
	if failing != nil && len(s.MoreSenders) > 0 {
		receiver = fmt.Sprintf("The receiver of endpoint %s (%s)", failing.Endpoint, failing.URL)
	}

	age := b.BacklogAge.Value
	waiting := countText(b.Samples.Value + b.HeadSamples.Value)
	switch caughtUp := max(2*s.SyncInterval, 30*time.Second).Seconds(); {
	case s.Sender == nil:
		v.Verdict, v.Behind = "Not sending: no --remote-write.url. Buffering only; the buffer keeps the newest data up to its cap.", true
	case failing.FailingSince > 0:
		v.Verdict, v.Behind = fmt.Sprintf("%s fails since %s (%s ago): %s. %s samples wait, the oldest %s old.", receiver,
			timeText(failing.FailingSince), durationText(float64(now.Unix())-failing.FailingSince), failing.LastError, waiting, durationText(age)), true
	case age <= caughtUp:
		v.Verdict = "Keeping up."
	default:
		v.Verdict, v.Behind = fmt.Sprintf("Behind by %s: %s samples wait to be sent.", durationText(age), waiting), true
		if v.LastError != "" && s.Sender.LastSuccess.Value < s.Sender.LastErrorUnix {
			v.Verdict += " The last request failed: see the receiver's answer below."
		}
	}

	v.Plots, v.NowUnix = plots(s.History, s.Sender != nil), float64(now.UnixMilli())/1000

	for _, src := range s.Sources {
		sv := sourceView{
			Name:     src.Name,
			Appended: fig(src.Appended, countText),
			Errors:   fig(src.Errors, countText),
		}
		switch {
		case src.LastRun.IsZero():
			sv.State, sv.LastRun = "not run yet", "never"
		case src.LastErr != "":
			sv.State, sv.LastErr = "failing", src.LastErr
		default:
			sv.State, sv.OK = "ok", true
		}
		if !src.LastRun.IsZero() {
			sv.LastRun = durationText(now.Sub(src.LastRun).Seconds()) + " ago"
		}
		v.Sources = append(v.Sources, sv)
	}
	for _, c := range s.Collectors {
		cv := collectorView{Name: c.Name, State: "ok", OK: true}
		if !c.OK {
			cv.State, cv.OK = "failing", false
		}
		v.Collectors = append(v.Collectors, cv)
	}
	return v
}

// rate returns the send rate since the previous look, or since the start
// on the first.
func (p *statusPage) rate(now, started time.Time, sent float64) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	from, fromSent, since := p.prevAt, p.prevSent, "the previous look"
	if from.IsZero() {
		from, fromSent, since = started, 0, "ferry's start"
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
