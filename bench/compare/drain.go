package main

import (
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// The drain scenario (-scenario=drain): every agent scrapes one large
// synthetic target while its receiver is down until about -drain-backlog
// samples are queued; then the target fails (so no new samples come), the
// agents settle, and the receivers come back. The harness measures how long
// each agent takes to deliver its backlog (until every probe sample of the
// outage is at its receiver), the CPU it uses meanwhile, and the bytes and
// samples its proxy forwards.

type drainAgentResult struct {
	scraped   int           // samples served to it during the outage
	drained   time.Duration // -1: not within -drain-max
	firstOK   time.Duration
	cpu       float64 // s, from link up to drained
	wire      wireCounts
	delivered completenessResult
	rssPeak   float64 // MiB during the drain
}

func runDrain(c config) (report string, err error) {
	for _, p := range []*string{&c.ferry} {
		if abs, err := filepath.Abs(*p); err == nil {
			*p = abs
		}
	}
	work, err := workspace(c.workdir, "ferry-bench-drain-", c.ferry, c.vmagent, c.prometheus, c.victoria)
	if err != nil {
		return "", err
	}
	ps := &procs{}
	var servers []*http.Server
	stop := make(chan struct{})
	defer func() {
		close(stop)
		ps.stopAll(10 * time.Second)
		for _, s := range servers {
			s.Close()
		}
		if err != nil || c.keep {
			logf("kept %s", work)
		} else {
			os.RemoveAll(work)
		}
	}()
	env := collectEnv(c)
	started := time.Now()

	synth := newSynthTarget(c.drainSeries, c.drainInterval, stop)
	synthAddr, err := serve(synth, &servers)
	if err != nil {
		return "", err
	}
	logf("target %s: %d series every %s", synthAddr, synth.series, c.drainInterval)

	// Down from the start: everything goes to the backlog.
	agents, err := startReceivers(ps, &servers, c.victoria, work, true)
	if err != nil {
		return "", err
	}
	dc := c
	dc.interval = c.drainInterval
	if err := configureAgents(dc, work, agents, synthAddr, ""); err != nil {
		return "", err
	}
	f := agents["ferry"]
	f.args = append(f.args, "--storage.sync-interval="+c.drainSync.String(), "--remote-write.protocol="+c.drainProtocol)
	if err := startAgents(ps, agents); err != nil {
		return "", err
	}
	outageFrom := time.Now()
	logf("all agents ready; receivers down until each agent has been served %d samples", c.drainBacklog)
	scrapesNeeded := (c.drainBacklog + synth.series - 1) / synth.series
	for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(time.Second) {
		done := true
		for _, n := range agentNames {
			done = done && synth.scrapeCount(n) >= scrapesNeeded
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the backlog was not built within 10 minutes")
		}
	}
	synth.setFailing(true)
	frozenAt := time.Now()
	// Every agent notices the failing target at its next scrape (staleness
	// markers for its series, the same for all); ferry's last samples reach
	// its buffer at its next commit.
	settle := 2*c.drainInterval + c.drainSync + 5*time.Second
	logf("target failing; %s for every agent to queue what it has", settle)
	time.Sleep(settle)

	res := map[string]*drainAgentResult{}
	cpu0 := map[string]float64{}
	for _, n := range agentNames {
		a := agents[n]
		res[n] = &drainAgentResult{scraped: synth.scrapeCount(n) * synth.series, drained: -1, firstOK: -1}
		cpu0[n], _ = a.totals()
		a.takeSamples()
	}
	wire0 := map[string]wireCounts{}
	for _, n := range agentNames {
		wire0[n] = agents[n].proxy.counts()
	}
	upAt := time.Now()
	for _, n := range agentNames {
		agents[n].proxy.setDown(false)
	}
	logf("receivers up: draining")
	for time.Since(upAt) < c.drainMax {
		time.Sleep(500 * time.Millisecond)
		done := true
		for _, n := range agentNames {
			a, d := agents[n], res[n]
			a.sample()
			if d.firstOK < 0 {
				if t := a.proxy.counts().FirstOKAfterUp; !t.IsZero() {
					d.firstOK = t.Sub(upAt)
				}
			}
			if d.drained < 0 {
				got, err := exportProbe(a.vmURL, started)
				if err == nil {
					d.delivered = completeness(synth.served(n, outageFrom, frozenAt), got)
					if d.delivered.Arrived == d.delivered.Served {
						d.drained = time.Since(upAt)
						cpu, _ := a.totals()
						d.cpu = cpu - cpu0[n]
						w := a.proxy.counts()
						d.wire = wireCounts{Requests: w.Requests - wire0[n].Requests, Bytes: w.Bytes - wire0[n].Bytes, RawBytes: w.RawBytes - wire0[n].RawBytes, Samples: w.Samples - wire0[n].Samples, Failed: w.Failed - wire0[n].Failed}
						for _, s := range a.takeSamples() {
							d.rssPeak = math.Max(d.rssPeak, float64(s.rss)/(1<<20))
						}
						logf("%s drained in %s", n, d.drained.Round(10*time.Millisecond))
					}
				}
			}
			if d.drained < 0 {
				done = false
			}
		}
		if done {
			break
		}
	}
	return drainMarkdown(c, env, agents, synth, res, time.Since(started)), nil
}

func drainMarkdown(c config, env [][2]string, agents map[string]*agent, synth *synthTarget, res map[string]*drainAgentResult, took time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Drain of a %dk-sample backlog\n\n", c.drainBacklog/1000)
	fmt.Fprintf(&b, "Written by `bench/compare -scenario=drain` (%s, run time %s). All three agents ran at the same time on the same machine.\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), took.Round(time.Second))
	for _, kv := range env {
		fmt.Fprintf(&b, "- %s: %s\n", kv[0], kv[1])
	}
	fmt.Fprintf(&b, "- command: `%s`\n\n", commandLine())
	fmt.Fprintf(&b, "Setup: one synthetic target (`bench.NewWorkload(%d, 1)` plus the probe: %d series), scraped every %s by every agent, each sending to its own VictoriaMetrics behind the harness' counting proxy. The proxies answer 503 from the start until every agent has been served at least %d samples; then the target answers 503 (no new samples; each agent writes staleness markers for its series, as it does for any failed scrape), the agents get %s to queue what they hold, and the proxies let requests through. ",
		c.drainSeries, synth.series, c.drainInterval, c.drainBacklog, 2*c.drainInterval+c.drainSync+5*time.Second)
	fmt.Fprintf(&b, "ferry runs with `--storage.sync-interval=%s` (its default is 1m: its samples reach the buffer, and can be sent, only at a commit; short here so that the whole backlog is on disk when the link returns) and `--remote-write.protocol=%s`, so that each commit holds %s of samples per series; its other settings, and the peers', are defaults. ",
		c.drainSync, c.drainProtocol, durCount(c.drainSync, c.drainInterval))
	b.WriteString("The drain ends when every probe sample served during the outage is at the agent's receiver (`/api/v1/export`, polled every 0.5 s). CPU is utime+stime from `/proc/PID/stat` between the link's return and that moment; wire bytes and samples are what the proxy forwarded and the receiver answered 2xx in that time (request bodies as sent, snappy).\n\n")

	type line struct {
		name string
		val  func(d *drainAgentResult) float64
		prec int
	}
	lines := []line{
		{"samples served during the outage (scrapes × series)", func(d *drainAgentResult) float64 { return float64(d.scraped) }, 0},
		{"first accepted request after the link returned (s)", func(d *drainAgentResult) float64 { return sec(d.firstOK) }, 2},
		{"backlog delivered after (s)", func(d *drainAgentResult) float64 { return sec(d.drained) }, 2},
		{"samples accepted by the receiver until then", func(d *drainAgentResult) float64 { return float64(d.wire.Samples) }, 0},
		{"drain rate (samples accepted per second)", func(d *drainAgentResult) float64 { return div(float64(d.wire.Samples), sec(d.drained)) }, 0},
		{"drain rate from the first accepted request (samples per second)", func(d *drainAgentResult) float64 {
			return div(float64(d.wire.Samples), sec(d.drained)-sec(d.firstOK))
		}, 0},
		{"remote-write requests accepted", func(d *drainAgentResult) float64 { return float64(d.wire.Requests) }, 0},
		{"CPU during the drain (s, utime+stime)", func(d *drainAgentResult) float64 { return d.cpu }, 2},
		{"CPU per 1k samples sent (ms)", func(d *drainAgentResult) float64 { return div(1000*d.cpu, float64(d.wire.Samples)/1000) }, 3},
		{"wire bytes per sample (snappy)", func(d *drainAgentResult) float64 { return div(float64(d.wire.Bytes), float64(d.wire.Samples)) }, 2},
		{"bytes per sample before snappy", func(d *drainAgentResult) float64 { return div(float64(d.wire.RawBytes), float64(d.wire.Samples)) }, 2},
		{"RSS peak during the drain (MiB)", func(d *drainAgentResult) float64 { return d.rssPeak }, 1},
		{"probe samples of the outage at the receiver (%)", func(d *drainAgentResult) float64 { return d.delivered.pct() }, 1},
	}
	b.WriteString("| | ferry | vmagent | prometheus | ferry/vmagent | ferry/prometheus |\n|---|---|---|---|---|---|\n")
	for _, l := range lines {
		f, v, p := l.val(res["ferry"]), l.val(res["vmagent"]), l.val(res["prometheus"])
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", l.name, num(f, l.prec), num(v, l.prec), num(p, l.prec), ratio(f, v), ratio(f, p))
	}
	var notDrained []string
	for _, n := range agentNames {
		if res[n].drained < 0 {
			notDrained = append(notDrained, n)
		}
	}
	sort.Strings(notDrained)
	if len(notDrained) > 0 {
		fmt.Fprintf(&b, "\nNot drained within -drain-max (%s): %s; their figures are empty.\n", c.drainMax, strings.Join(notDrained, ", "))
	}
	return b.String()
}

func sec(d time.Duration) float64 {
	if d < 0 {
		return math.NaN()
	}
	return d.Seconds()
}

func durCount(sync, interval time.Duration) string {
	n := int(sync / interval)
	if n <= 1 {
		return "one scrape"
	}
	return fmt.Sprintf("%d scrapes", n)
}
