package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ferry-agent/ferry/agent/config"
	"github.com/ferry-agent/ferry/agent/remotewrite"
	"github.com/ferry-agent/ferry/buffer"
	"github.com/ferry-agent/ferry/internal/httpclient"
)

// senders are the remote_write endpoints' senders. One endpoint's sender
// drains the buffer itself, as it always has: no fan-out, no copy. Several
// share the buffer through a remotewrite.Fanout, each at its own position,
// with its own retries, auth, headers and write relabeling.
type senders struct {
	eps []config.RemoteWrite
	all []*remotewrite.Sender
	fan *remotewrite.Fanout // nil with one endpoint
}

// newSenders returns the senders cfg asks for; nil without a URL.
func newSenders(cfg config.Config, buf *buffer.Buffer, log *slog.Logger) (*senders, error) {
	eps := cfg.Endpoints()
	if len(eps) == 0 {
		return nil, nil
	}
	g := &senders{eps: eps}
	var src []remotewrite.Source
	if len(eps) == 1 {
		src = []remotewrite.Source{buf}
	} else {
		conf := make([]remotewrite.EndpointConfig, len(eps))
		maxLive := eps[0].MaxSamplesPerSend
		for i, ep := range eps {
			conf[i].WriteRelabel = ep.WriteRelabel
			maxLive = min(maxLive, ep.MaxSamplesPerSend)
		}
		g.fan = remotewrite.NewFanout(buf, conf)
		for i := range eps {
			src = append(src, g.fan.Endpoint(i))
		}
	}
	// What an earlier run delivered and did not live to delete from the
	// buffer is sent again: a receiver that refuses it as duplicate or out
	// of order most likely has it; what the journal of a run that died
	// knew it never sent is not taken for such. (Fresh-first is what the
	// flag says: a daily budget puts fresh data ahead of the backlog only
	// once it holds the backlog back, and the sender says so.)
	start := time.Now()
	for i, ep := range eps {
		rw := ep.Config
		rw.UserAgent = "ferry/" + cfg.Version
		rw.SentBefore, rw.NeverSent = start, buf.NeverSent()
		l := log.With("component", "remote-write")
		if len(eps) > 1 {
			l = l.With("endpoint", ep.Label())
		}
		s, err := remotewrite.New(rw, src[i], l)
		if err != nil {
			if len(eps) > 1 {
				return nil, fmt.Errorf("remote write %s: %w", ep.Label(), err)
			}
			return nil, fmt.Errorf("remote write: %w", err)
		}
		g.all = append(g.all, s)
	}
	return g, nil
}

// logStart says where the senders send.
func (g *senders) logStart(log *slog.Logger) {
	for _, ep := range g.eps {
		log.Info("sending to remote write", "url", httpclient.RedactURL(ep.URL), "endpoint", ep.Label())
	}
}

// failing reports whether some endpoint's last attempt failed.
func (g *senders) failing() bool {
	for _, s := range g.all {
		if st := s.Stats(); st.LastErrorUnix > st.LastSuccessUnix {
			return true
		}
	}
	return false
}

// evicted returns the samples the buffer evicted at its cap before
// endpoint i had them: with one endpoint, or none (g nil: nothing was sent
// of them either), the buffer's own count. With several, the buffer's own
// count is not this: it cannot tell which endpoint had a block.
func (g *senders) evicted(i int, st buffer.Stats) uint64 {
	if g == nil || g.fan == nil {
		return st.Dropped[buffer.ReasonFull]
	}
	return g.fan.Dropped(i)
}

// run runs the senders (and the fan-out) until the returned stop is
// called; stop waits until each sender has recorded what it delivered, and
// hands a live block still in flight back to the buffer. setFan is called
// with the fan-out running, and with nil once it stopped.
func (g *senders) run(setFan func(*remotewrite.Fanout)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if g.fan != nil {
		setFan(g.fan)
		wg.Go(func() { g.fan.Run(ctx) })
	}
	for _, s := range g.all {
		wg.Go(func() { s.Run(ctx) })
	}
	return func() {
		cancel()
		wg.Wait()
		if g.fan != nil {
			g.fan.Close()
			setFan(nil)
		}
	}
}
