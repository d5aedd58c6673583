package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

type snapshot struct {
	at       time.Time
	cpu      map[string]float64
	write    map[string]int64
	wire     map[string]wireCounts
	synth    map[string]int
	node     map[string]int
	dirAlloc map[string]int64
}

func takeSnapshot(agents map[string]*agent, synth *synthTarget, node *scrapeCounter) snapshot {
	s := snapshot{at: time.Now(), cpu: map[string]float64{}, write: map[string]int64{}, wire: map[string]wireCounts{},
		synth: map[string]int{}, node: map[string]int{}, dirAlloc: map[string]int64{}}
	for n, a := range agents {
		s.cpu[n], s.write[n] = a.totals()
		s.wire[n] = a.proxy.counts()
		s.synth[n] = synth.scrapeCount(n)
		s.node[n] = node.scrapeCount(n)
		s.dirAlloc[n], _ = dirSize(a.dataDir)
	}
	return s
}

type phaseResult struct {
	name, note string
	from, to   snapshot
	rss        map[string][]procSample
	drain      map[string]drainResult
	fresh      map[string]freshness // link-up phases whose freshness was measured
	compl      map[string]completenessResult
	complErr   string
}

// results are one workload's run of the phases.
type results struct {
	cfg         config
	wl          workload
	env         [][2]string
	agents      map[string]*agent
	synth       *synthTarget
	nodeCounter *scrapeCounter
	nodeSeries  int
	started     time.Time
	duration    time.Duration
	phases      []*phaseResult
	failure     string
	final       map[string][]probeSample // every probe sample at each receiver at the end
	crashFrom   time.Time                // the crash outage began; zero: not run
	killKept    map[string][2]int64      // samples scraped from crashFrom until the kill: served, at the receiver at the end
}

// measureFreshness measures, for a link-up phase, how much of what each
// agent scraped more than two intervals earlier was at its receiver, once a
// second.
func (r *results) measureFreshness(p *phaseResult) {
	p.fresh = map[string]freshness{}
	for _, n := range agentNames {
		p.fresh[n] = r.deliveries(n).freshness(p.from.at, p.to.at, 2*r.cfg.interval, time.Second)
	}
}

type drainResult struct {
	firstOK         time.Duration // first 2xx after the link came back; <0: none in the phase, or the link was up
	drained         time.Duration // every sample of the window at the receiver; <0: not within the phase
	served, arrived int64         // samples of the synthetic target in the window, and at the receiver when the phase ended
}

// rate is samples of the window delivered per second, from the link's
// return (or, fromFirstOK, from the first accepted request) until all were
// there; NaN if they were not.
func (d drainResult) rate(fromFirstOK bool) float64 {
	if d.drained < 0 {
		return math.NaN()
	}
	t := d.drained
	if fromFirstOK && d.firstOK >= 0 {
		t -= d.firstOK
	}
	return div(float64(d.served), t.Seconds())
}

// drain waits, from the snapshot s on (the link just came back, or
// linkBack false: it has been up), until each receiver holds every sample of
// the synthetic target served to its agent from windowFrom(agent) until s,
// or limit. The moment each one had them all comes from the proxy's record,
// not from the polling.
func (r *results) drain(name, note string, linkBack bool, windowFrom func(agent string) time.Time, limit time.Duration, s snapshot, phase func(string, string, snapshot) snapshot) snapshot {
	upAt := s.at
	res := map[string]drainResult{}
	for _, n := range agentNames {
		res[n] = drainResult{firstOK: -1, drained: -1}
	}
	for {
		time.Sleep(250 * time.Millisecond)
		done := true
		for _, n := range agentNames {
			d := res[n]
			if d.drained < 0 {
				if at, ok := r.deliveries(n).completeAt(windowFrom(n), upAt); ok {
					d.drained = max(0, at.Sub(upAt))
				}
			}
			res[n] = d
			done = done && d.drained >= 0
		}
		if done || time.Since(upAt) >= limit {
			break
		}
	}
	out := phase(name, note, s)
	for _, n := range agentNames {
		d := res[n]
		if t := r.agents[n].proxy.counts().FirstOKAfterUp; linkBack && !t.IsZero() {
			d.firstOK = t.Sub(upAt)
		}
		d.served, d.arrived = r.deliveries(n).share(windowFrom(n), upAt, out.at)
		res[n] = d
	}
	r.phases[len(r.phases)-1].drain = res
	return out
}

// finalCheck reads every receiver's probe samples once more and computes
// each phase's completeness: of the probe values served to the agent in
// the phase, how many its receiver holds now.
func (r *results) finalCheck() error {
	r.final = map[string][]probeSample{}
	for _, n := range agentNames {
		got, err := exportProbe(r.agents[n].vmURL, r.started)
		r.final[n] = got
		for _, p := range r.phases {
			if p.compl == nil {
				p.compl = map[string]completenessResult{}
			}
			if err != nil {
				p.complErr = err.Error()
				continue
			}
			p.compl[n] = completeness(r.synth.served(n, p.from.at, p.to.at), got)
		}
		if err != nil {
			return fmt.Errorf("%s receiver: %w", n, err)
		}
	}
	if !r.crashFrom.IsZero() {
		r.killKept = map[string][2]int64{}
		for _, n := range agentNames {
			served, arrived := r.deliveries(n).share(r.crashFrom, r.agents[n].killedAt, time.Now())
			r.killKept[n] = [2]int64{served, arrived}
		}
	}
	return nil
}

func collectEnv(c config) [][2]string {
	first := func(bin string, args ...string) string {
		out, err := exec.Command(bin, args...).CombinedOutput()
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		if err != nil {
			return fmt.Sprintf("(%s: %v)", strings.Join(append([]string{bin}, args...), " "), err)
		}
		if line == "" {
			return "(prints nothing)"
		}
		return line
	}
	dpkg := func(pkg string) string {
		out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", pkg).Output()
		if err != nil {
			return "unknown"
		}
		return string(out)
	}
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	mem := "unknown"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		l, _, _ := strings.Cut(string(b), "\n")
		mem = strings.Join(strings.Fields(l)[1:], " ")
	}
	return [][2]string{
		{"date", time.Now().UTC().Format("2006-01-02 15:04 MST")},
		{"machine", fmt.Sprintf("%d CPUs (nproc), %s, %s, MemTotal %s, Linux %s", runtime.NumCPU(), cpu, runtime.GOARCH, mem, strings.TrimSpace(string(kernel)))},
		{"ferry", first(c.ferry, "version")},
		{"vmagent", fmt.Sprintf("`vmagent -version`: %s; %s", first(c.vmagent, "-version"), origin(c.vmagent, dpkg("victoria-metrics")))},
		{"prometheus", first(c.prometheus, "--version") + "; " + origin(c.prometheus, dpkg("prometheus"))},
		{"receivers", "victoria-metrics, Debian package " + dpkg("victoria-metrics")},
		{"node_exporter", first(c.nodeExporter, "--version")},
		{"harness", "Go " + runtime.Version()},
	}
}

// origin tells where a peer's binary comes from: Debian's package (those
// under /usr), or scripts/build-peers.sh.
func origin(bin, debianVersion string) string {
	if strings.HasPrefix(bin, "/usr/") {
		return "Debian package " + debianVersion + ", dynamically linked"
	}
	return "built by scripts/build-peers.sh from the Go module proxy (static, stripped)"
}

// --- the report ---

const mib = 1 << 20

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func peak(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	return slices.Max(v)
}

func num(v float64, prec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.*f", prec, v)
}

func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func div(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

// samplesScraped estimates the samples an agent scraped in a phase: the
// scrapes the targets served to it times their series.
func (r *results) samplesScraped(p *phaseResult, n string) float64 {
	return float64(p.to.synth[n]-p.from.synth[n])*float64(r.synth.series) +
		float64(p.to.node[n]-p.from.node[n])*float64(r.nodeSeries)
}

// Rows the aims read.
const (
	rowRSSMedian        = "RSS median (MiB)"
	rowCPUPerSample     = "CPU per 1k samples scraped (ms)"
	rowWrittenPerSample = "written to disk per sample scraped (bytes)"
	rowWirePerSample    = "wire bytes per sample (snappy)"
)

type row struct {
	label string
	prec  int
	val   func(p *phaseResult, n string) float64
}

func (r *results) rows() []row {
	rss := func(get func(procSample) int64, agg func([]float64) float64) func(*phaseResult, string) float64 {
		return func(p *phaseResult, n string) float64 {
			var v []float64
			for _, s := range p.rss[n] {
				v = append(v, float64(get(s))/mib)
			}
			return agg(v)
		}
	}
	cpu := func(p *phaseResult, n string) float64 { return p.to.cpu[n] - p.from.cpu[n] }
	written := func(p *phaseResult, n string) float64 { return float64(p.to.write[n] - p.from.write[n]) }
	wire := func(p *phaseResult, n string) (wireCounts, wireCounts) { return p.from.wire[n], p.to.wire[n] }
	return []row{
		{"samples scraped (scrapes served × series)", 0, r.samplesScraped},
		{rowRSSMedian, 1, rss(func(s procSample) int64 { return s.rss }, median)},
		{"RSS peak (MiB)", 1, rss(func(s procSample) int64 { return s.rss }, peak)},
		{"RssAnon median (MiB)", 1, rss(func(s procSample) int64 { return s.anon }, median)},
		{"RssAnon peak (MiB)", 1, rss(func(s procSample) int64 { return s.anon }, peak)},
		{"RssFile median (MiB)", 1, rss(func(s procSample) int64 { return s.file }, median)},
		{"RssFile peak (MiB)", 1, rss(func(s procSample) int64 { return s.file }, peak)},
		{"CPU (s, utime+stime)", 2, cpu},
		{rowCPUPerSample, 2, func(p *phaseResult, n string) float64 {
			return div(1e6*cpu(p, n), r.samplesScraped(p, n))
		}},
		{"written to disk (MiB, /proc io write_bytes)", 2, func(p *phaseResult, n string) float64 { return written(p, n) / mib }},
		{rowWrittenPerSample, 2, func(p *phaseResult, n string) float64 { return div(written(p, n), r.samplesScraped(p, n)) }},
		{"data directory at the end (MiB allocated)", 2, func(p *phaseResult, n string) float64 { return float64(p.to.dirAlloc[n]) / mib }},
		{"data directory growth per sample scraped (bytes)", 2, func(p *phaseResult, n string) float64 {
			return div(float64(p.to.dirAlloc[n]-p.from.dirAlloc[n]), r.samplesScraped(p, n))
		}},
		{"remote-write requests accepted (2xx)", 0, func(p *phaseResult, n string) float64 { a, b := wire(p, n); return float64(b.Requests - a.Requests) }},
		{"samples accepted by the receiver", 0, func(p *phaseResult, n string) float64 { a, b := wire(p, n); return float64(b.Samples - a.Samples) }},
		{"wire bytes accepted (request bodies, snappy)", 0, func(p *phaseResult, n string) float64 { a, b := wire(p, n); return float64(b.Bytes - a.Bytes) }},
		{rowWirePerSample, 2, func(p *phaseResult, n string) float64 {
			a, b := wire(p, n)
			return div(float64(b.Bytes-a.Bytes), float64(b.Samples-a.Samples))
		}},
		{"bytes per sample before snappy", 2, func(p *phaseResult, n string) float64 {
			a, b := wire(p, n)
			return div(float64(b.RawBytes-a.RawBytes), float64(b.Samples-a.Samples))
		}},
		{"requests refused (503 while down, or non-2xx)", 0, func(p *phaseResult, n string) float64 { a, b := wire(p, n); return float64(b.Failed - a.Failed) }},
		{"bytes of refused requests", 0, func(p *phaseResult, n string) float64 {
			a, b := wire(p, n)
			return float64(b.FailedBytes - a.FailedBytes)
		}},
		{"samples accepted per second of the phase", 0, func(p *phaseResult, n string) float64 {
			a, b := wire(p, n)
			return float64(b.Samples-a.Samples) / p.to.at.Sub(p.from.at).Seconds()
		}},
		{"fresh: of the synthetic target's samples scraped more than two intervals earlier, % at the receiver (every second, pooled)", 1, func(p *phaseResult, n string) float64 {
			if f, ok := p.fresh[n]; ok {
				return f.pooled
			}
			return math.NaN()
		}},
		{"fresh: the same at the worst moment (%)", 1, func(p *phaseResult, n string) float64 {
			if f, ok := p.fresh[n]; ok {
				return f.worst
			}
			return math.NaN()
		}},
		{"probe samples served in the phase", 0, func(p *phaseResult, n string) float64 {
			if c, ok := p.compl[n]; ok {
				return float64(c.Served)
			}
			return math.NaN()
		}},
		{"completeness at the end of the run (% of those at the receiver)", 1, func(p *phaseResult, n string) float64 {
			if c, ok := p.compl[n]; ok {
				return c.pct()
			}
			return math.NaN()
		}},
		{"probe samples with a wrong value (>2 s off their timestamp)", 0, func(p *phaseResult, n string) float64 {
			if c, ok := p.compl[n]; ok {
				return float64(c.Wrong)
			}
			return math.NaN()
		}},
	}
}

// report is the markdown of every workload's run: the machine and the
// binaries once, ferry against its aims in every workload, then each run's
// setup and phases.
func report(c config, env [][2]string, runs []*results, took time.Duration) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# ferry side by side with vmagent and Prometheus agent mode\n\n")
	w("Written by `bench/compare` (`make bench-compare`). For each workload, all three agents ran at the same time on the same machine, through the same phases, scraping the same two targets, each at its defaults; each sent to its own VictoriaMetrics behind a counting proxy of the harness. The workloads ran one after the other, each with fresh targets, receivers, agents and data directories.\n\n")
	for _, r := range runs {
		if r.failure != "" {
			w("**The run of workload %s failed before its end: %s.** The figures below are those of the phases that completed.\n\n", r.wl.name, r.failure)
		}
	}
	for _, kv := range env {
		w("- %s: %s\n", kv[0], kv[1])
	}
	w("- command: `%s`\n", commandLine())
	w("- run time: %s\n", took.Round(time.Second))
	for _, r := range runs {
		w("- workload %s: %s (run time %s)\n", r.wl.name, r.wl.title, r.duration.Round(time.Second))
	}

	w("\n## ferry against its aims, in this run\n\n")
	w("Each aim in each workload, against the peers of the same run; how each figure is measured is under the workload's setup below.\n\n")
	aimsTable(&b, runs)

	w("\n## Binaries\n\n| | size (bytes) | what |\n|---|---|---|\n")
	sizeRow := func(label, path, what string) {
		if path == "" {
			w("| %s | not measured | no binary given |\n", label)
			return
		}
		fi, err := os.Stat(path)
		if err != nil {
			w("| %s | not measured | %v |\n", label, err)
			return
		}
		w("| %s | %d (%.1f MiB) | %s |\n", label, fi.Size(), float64(fi.Size())/mib, what)
	}
	sizeRow("ferry amd64", c.ferry, "`"+c.ferry+"` (make build: static, stripped with -s -w)")
	sizeRow("ferry armv7", c.ferryArmv7, "`"+c.ferryArmv7+"` (make cross: static, stripped)")
	sizeRow("vmagent amd64", c.vmagent, "`"+c.vmagent+"`: "+origin(c.vmagent, "victoria-metrics"))
	sizeRow("prometheus amd64", c.prometheus, "`"+c.prometheus+"`: "+origin(c.prometheus, "prometheus")+"; the whole server, agent mode is a flag")
	if fi1, err1 := os.Stat(c.ferry); err1 == nil {
		if fi2, err2 := os.Stat(c.vmagent); err2 == nil {
			w("\nferry/vmagent (amd64): %.2f. ", float64(fi1.Size())/float64(fi2.Size()))
		}
		if fi3, err3 := os.Stat(c.prometheus); err3 == nil {
			w("ferry/prometheus (amd64): %.2f. No armv7 builds of the peers are measured here.\n", float64(fi1.Size())/float64(fi3.Size()))
		}
	}

	for _, r := range runs {
		r.section(&b)
	}
	w("\n## Not measured\n\n")
	w("- CPU, RSS and disk of the receivers and node_exporter (not agents).\n")
	w("- Power cuts (a kill -9 is not one: the page cache survives it).\n")
	w("- Peers' armv7 binary sizes and anything on ARM hardware: everything here ran on %s.\n", runtime.GOARCH)
	w("- Request header bytes and TCP overhead: wire bytes are request bodies only.\n")
	w("- Freshness, drains and the kill -9 figure count the synthetic target's samples (job `synth`) only; node_exporter's and ferry's self-metrics are in the wire figures but not in those.\n")
	w("- The older Debian builds of the peers (vmagent 1.79, Prometheus 2.42): `-vmagent /usr/bin/vmagent -prometheus /usr/bin/prometheus` measures them instead, not beside.\n")
	return b.String()
}

// section writes one workload's setup and phase tables.
func (r *results) section(b *strings.Builder) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("\n## Workload %s: %s\n\n### Setup\n\n", r.wl.name, r.wl.title)
	w("- Targets, scraped every %s by every agent: a synthetic target served by the harness (job `%s`; `bench.NewWorkload(%d, 1)`: %d series, values advanced every interval, plus `ferry_bench_probe` whose value is the Unix second it was served in), and Debian's prometheus-node-exporter (%d samples per scrape when counted at the start) through a pass-through proxy of the harness. Each agent scrapes both under its own path prefix (`/ferry/metrics`, `/vmagent/metrics`, `/prometheus/metrics`; the same content), so the harness counts the scrapes of each.\n", r.cfg.interval, synthJob, r.cfg.appSeries, r.synth.series, r.nodeSeries)
	w("- Phases: startup %s, steady %s (link up), outage %s, drain (at most %s), crash outage %s with a kill -9 in its middle, its drain, settle (at most %s).\n", r.cfg.warmup, r.cfg.steady, r.cfg.outage, r.cfg.drainMax, r.cfg.crashOutage, r.cfg.settle)
	w("- Agents, each at its defaults but for where to scrape, where to send, where to keep its data and where to listen:\n")
	for _, n := range agentNames {
		a := r.agents[n]
		w("  - %s: `%s %s`\n", n, a.bin, strings.Join(a.args, " "))
	}
	w("  - ferry's host collectors are all off, so that it only scrapes, like the others, and every agent's figures per sample divide by the same samples; `--scrape.interval` is the workload's, as every peer's `scrape_interval`. Its own self-metrics are still sent (job `ferry`), a few dozen series the peers do not send; they count in its wire samples but not in \"samples scraped\".\n")
	w("- Receivers: `victoria-metrics -retentionPeriod=1` per agent, each behind a reverse proxy (`net/http/httputil`) of the harness that decodes each remote-write request (snappy, protobuf) to count samples and bytes, keeps when it accepted the samples of job `%s` by their timestamp, and answers 503 during an outage without forwarding.\n", synthJob)
	w("- Figures from `/proc/PID`: `status` VmRSS, RssAnon, RssFile sampled every second (median and peak per phase); `stat` utime+stime; `io` write_bytes (what the process caused to be written to the block device; the data directories are under `%s`). Across the kill -9 the counters of the killed and the restarted process are added.\n", dirOf(r.cfg.workdir))
	w("- \"samples scraped\" is an estimate: scrapes served to the agent × series of that target (node_exporter's series counted once at the start). Scrapes that an agent started but failed still count.\n")
	w("- Fresh (steady phase): once a second, of the synthetic target's samples the agent scraped since the phase began and more than two intervals (%s) before that moment, the share its receiver had accepted by then (a sample belongs to the scrape served nearest to its timestamp, within half an interval; a scrape counts at most its series once). Pooled: all moments' samples summed.\n", 2*r.cfg.interval)
	w("- Drains: the phase ends when the receiver holds every sample of the synthetic target scraped in the outage (after the kill -9: scraped after the restart); that moment is taken from the proxy's record, to the request. Drain rate: those samples over the time from the link's return, or from the first accepted request, to that moment.\n")
	w("- Completeness (probe): at the end of the run the harness reads `/api/v1/export?match[]=ferry_bench_probe` from each receiver and counts how many of the values served in each phase are there (with a timestamp within 2 s of the value).\n")
	w("- The harness (targets, proxies with protobuf decoding) and three VictoriaMetrics run on the same %d CPUs as the agents; the figures are relative, for this machine.\n", runtime.NumCPU())
	if p := r.phase("crash"); p != nil {
		w("- Crash: during the second outage every agent was killed with SIGKILL and restarted on the same data directory a second later:")
		for _, n := range agentNames {
			a := r.agents[n]
			w(" %s killed %s into the outage, restarted %s later;", n, a.killedAt.Sub(p.from.at).Round(100*time.Millisecond), a.restartedAt.Sub(a.killedAt).Round(100*time.Millisecond))
		}
		w(" the pre-kill backlog is what the agent scraped of the synthetic target from the start of this outage until its kill; the kill -9 figure is the share of it at the receiver at the end of the run.\n")
	}

	rows := r.rows()
	for _, p := range r.phases {
		w("\n### Phase: %s (%s)\n\n%s.\n\n", p.name, p.to.at.Sub(p.from.at).Round(time.Second), p.note)
		if p.complErr != "" {
			w("Completeness not measured: %s\n\n", p.complErr)
		}
		w("| | ferry | vmagent | prometheus | ferry/vmagent | ferry/prometheus |\n|---|---|---|---|---|---|\n")
		line := func(label string, prec int, val func(n string) float64) {
			v := map[string]float64{}
			for _, n := range agentNames {
				v[n] = val(n)
			}
			w("| %s | %s | %s | %s | %s | %s |\n", label, num(v["ferry"], prec), num(v["vmagent"], prec), num(v["prometheus"], prec),
				ratio(v["ferry"], v["vmagent"]), ratio(v["ferry"], v["prometheus"]))
		}
		for _, rw := range rows {
			line(rw.label, rw.prec, func(n string) float64 { return rw.val(p, n) })
		}
		if p.drain != nil {
			d := func(f func(drainResult) float64) func(string) float64 {
				return func(n string) float64 { return f(p.drain[n]) }
			}
			line("first 2xx after the link came back (s; n/a: the link was up)", 2, d(func(x drainResult) float64 { return sec(x.firstOK) }))
			line("every sample of the window at the receiver after (s)", 2, d(func(x drainResult) float64 { return sec(x.drained) }))
			line("samples of the window (synthetic target)", 0, d(func(x drainResult) float64 { return float64(x.served) }))
			line("of those at the receiver when the phase ended (%)", 1, d(func(x drainResult) float64 { return div(100*float64(x.arrived), float64(x.served)) }))
			line("drain rate from the link's return (samples of the window per second)", 0, d(func(x drainResult) float64 { return x.rate(false) }))
			line("drain rate from the first accepted request (samples of the window per second)", 0, d(func(x drainResult) float64 { return x.rate(true) }))
		}
	}
	if r.killKept != nil {
		w("\nkill -9: samples of the synthetic target scraped from the start of the crash outage until the kill, and of those at the receiver at the end: ")
		for _, n := range agentNames {
			k := r.killKept[n]
			w("%s %d of %d (%s %%); ", n, k[1], k[0], num(div(100*float64(k[1]), float64(k[0])), 1))
		}
		w("\n")
	}
}

// wholeRun adds a phase that spans every other one.
func (r *results) wholeRun() {
	if len(r.phases) == 0 {
		return
	}
	w := &phaseResult{name: "whole run", note: "every phase above, from the start of startup to the end of settle", from: r.phases[0].from, to: r.phases[len(r.phases)-1].to, rss: map[string][]procSample{}}
	for _, p := range r.phases {
		for n, s := range p.rss {
			w.rss[n] = append(w.rss[n], s...)
		}
	}
	r.phases = append(r.phases, w)
}

func (r *results) phase(name string) *phaseResult {
	for _, p := range r.phases {
		if p.name == name {
			return p
		}
	}
	return nil
}

// commandLine is how the harness was started; a binary of go run shows as
// go run ./bench/compare.
func commandLine() string {
	args := append([]string(nil), os.Args...)
	if strings.Contains(args[0], "go-build") {
		args[0] = "go run ./bench/compare"
	}
	return strings.Join(args, " ")
}

func durRatio(a, b time.Duration) string {
	if a < 0 || b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a.Seconds()/b.Seconds())
}

func dirOf(d string) string {
	if d == "" {
		return os.TempDir()
	}
	return d
}
