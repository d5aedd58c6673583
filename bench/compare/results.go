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

type drainResult struct {
	firstOK   time.Duration // first 2xx after the link came back; <0: none
	drained   time.Duration // every probe sample of the outage at the receiver; <0: not within the phase
	delivered completenessResult
}

type phaseResult struct {
	name, note string
	from, to   snapshot
	rss        map[string][]procSample
	drain      map[string]drainResult
	compl      map[string]completenessResult
	complErr   string
}

type results struct {
	cfg         config
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
}

// drain waits, after an outage, until each receiver holds every probe
// sample served to its agent from windowFrom(agent) until the link came
// back, or drainMax.
func (r *results) drain(name string, windowFrom func(agent string) time.Time, s snapshot, snap func() snapshot, phase func(string, string, snapshot) snapshot) snapshot {
	upAt := s.at
	res := map[string]drainResult{}
	for _, n := range agentNames {
		res[n] = drainResult{firstOK: -1, drained: -1}
	}
	for time.Since(upAt) < r.cfg.drainMax {
		time.Sleep(2 * time.Second)
		done := true
		for _, n := range agentNames {
			d := res[n]
			if d.firstOK < 0 {
				if t := r.agents[n].proxy.counts().FirstOKAfterUp; !t.IsZero() {
					d.firstOK = t.Sub(upAt)
				}
			}
			if d.drained < 0 {
				got, err := exportProbe(r.agents[n].vmURL, r.started)
				if err == nil {
					d.delivered = completeness(r.synth.served(n, windowFrom(n), upAt), got)
					if d.delivered.Arrived == d.delivered.Served {
						d.drained = time.Since(upAt)
					}
				}
			}
			res[n] = d
			if d.drained < 0 {
				done = false
			}
		}
		if done {
			break
		}
	}
	out := phase(name, "link back; ends when every receiver holds every probe sample of the outage, or after -drain-max", s)
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
		{"vmagent", fmt.Sprintf("`vmagent -version`: %s; Debian package victoria-metrics %s", first(c.vmagent, "-version"), dpkg("victoria-metrics"))},
		{"prometheus", first(c.prometheus, "--version") + "; Debian package " + dpkg("prometheus")},
		{"receivers", "victoria-metrics, Debian package " + dpkg("victoria-metrics")},
		{"node_exporter", first(c.nodeExporter, "--version")},
		{"harness", "Go " + runtime.Version()},
	}
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
		{"RSS median (MiB)", 1, rss(func(s procSample) int64 { return s.rss }, median)},
		{"RSS peak (MiB)", 1, rss(func(s procSample) int64 { return s.rss }, peak)},
		{"RssAnon median (MiB)", 1, rss(func(s procSample) int64 { return s.anon }, median)},
		{"RssAnon peak (MiB)", 1, rss(func(s procSample) int64 { return s.anon }, peak)},
		{"RssFile median (MiB)", 1, rss(func(s procSample) int64 { return s.file }, median)},
		{"RssFile peak (MiB)", 1, rss(func(s procSample) int64 { return s.file }, peak)},
		{"CPU (s, utime+stime)", 2, cpu},
		{"CPU per 1k samples scraped (ms)", 2, func(p *phaseResult, n string) float64 {
			return div(1e6*cpu(p, n), r.samplesScraped(p, n))
		}},
		{"written to disk (MiB, /proc io write_bytes)", 2, func(p *phaseResult, n string) float64 { return written(p, n) / mib }},
		{"written to disk per sample scraped (bytes)", 2, func(p *phaseResult, n string) float64 { return div(written(p, n), r.samplesScraped(p, n)) }},
		{"data directory at the end (MiB allocated)", 2, func(p *phaseResult, n string) float64 { return float64(p.to.dirAlloc[n]) / mib }},
		{"data directory growth per sample scraped (bytes)", 2, func(p *phaseResult, n string) float64 {
			return div(float64(p.to.dirAlloc[n]-p.from.dirAlloc[n]), r.samplesScraped(p, n))
		}},
		{"remote-write requests accepted (2xx)", 0, func(p *phaseResult, n string) float64 { a, b := wire(p, n); return float64(b.Requests - a.Requests) }},
		{"samples accepted by the receiver", 0, func(p *phaseResult, n string) float64 { a, b := wire(p, n); return float64(b.Samples - a.Samples) }},
		{"wire bytes accepted (request bodies, snappy)", 0, func(p *phaseResult, n string) float64 { a, b := wire(p, n); return float64(b.Bytes - a.Bytes) }},
		{"wire bytes per sample (snappy)", 2, func(p *phaseResult, n string) float64 {
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

func (r *results) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# ferry side by side with vmagent and Prometheus agent mode\n\n")
	w("Written by `bench/compare` (`make bench-compare`). All three agents ran at the same time on the same machine, through the same scenario, scraping the same two targets; each sent to its own VictoriaMetrics behind a counting proxy of the harness.\n\n")
	if r.failure != "" {
		w("**The run failed before its end: %s.** The figures below are those of the phases that completed.\n\n", r.failure)
	}
	for _, kv := range r.env {
		w("- %s: %s\n", kv[0], kv[1])
	}
	w("- command: `%s`\n", commandLine())
	if r.duration > 0 {
		w("- run time: %s\n", r.duration.Round(time.Second))
	}
	w("\n## Setup\n\n")
	w("- Targets, scraped every %s by every agent: a synthetic target served by the harness (`bench.NewWorkload(%d, 1)`: %d series, values advanced every interval, plus `ferry_bench_probe` whose value is the Unix second it was served in), and Debian's prometheus-node-exporter (%d samples per scrape when counted at the start) through a pass-through proxy of the harness. Each agent scrapes both under its own path prefix (`/ferry/metrics`, `/vmagent/metrics`, `/prometheus/metrics`; the same content), so the harness counts the scrapes of each.\n", r.cfg.interval, r.cfg.appSeries, r.synth.series, r.nodeSeries)
	w("- Agents:\n")
	for _, n := range agentNames {
		a := r.agents[n]
		w("  - %s: `%s %s`\n", n, a.bin, strings.Join(a.args, " "))
	}
	w("  - ferry's host collectors are all off (so it only scrapes, like the others); `--storage.sync-interval` is left at its default (1m). Its own self-metrics are still written and sent (job `ferry`), a few dozen series the peers do not send; they count in its wire samples but not in \"samples scraped\".\n")
	w("- Receivers: `victoria-metrics -retentionPeriod=1` per agent, each behind a reverse proxy (`net/http/httputil`) of the harness that decodes each remote-write request (snappy, protobuf) to count samples and bytes, and answers 503 during an outage without forwarding.\n")
	w("- Figures from `/proc/PID`: `status` VmRSS, RssAnon, RssFile sampled every second (median and peak per phase); `stat` utime+stime; `io` write_bytes (what the process caused to be written to the block device; the data directories are under `%s`). Across the kill -9 the counters of the killed and the restarted process are added.\n", dirOf(r.cfg.workdir))
	w("- ferry writes to disk and sends only what it has committed, every `--storage.sync-interval` (1m) from its start; a phase's disk and wire figures for ferry hold the commits that fell within it (up to a minute of samples from the phase before).\n")
	w("- \"samples scraped\" is an estimate: scrapes served to the agent × series of that target (node_exporter's series counted once at the start). Scrapes that an agent started but failed still count.\n")
	w("- Completeness: the harness remembers each probe value it served to each agent; at the end of the run it reads `/api/v1/export?match[]=ferry_bench_probe` from each receiver and counts how many of the values served in each phase are there (with a timestamp within 2 s of the value).\n")
	w("- The harness (targets, proxies with protobuf decoding) and three VictoriaMetrics run on the same %d CPUs as the agents; the figures are relative, for this machine.\n", runtime.NumCPU())
	if p := r.phase("crash"); p != nil {
		w("- Crash: during the second outage every agent was killed with SIGKILL and restarted on the same data directory a second later:")
		for _, n := range agentNames {
			a := r.agents[n]
			w(" %s killed %s into the outage, restarted %s later;", n, a.killedAt.Sub(p.from.at).Round(100*time.Millisecond), a.restartedAt.Sub(a.killedAt).Round(100*time.Millisecond))
		}
		w(" the crash-drain phase ends when every probe sample scraped after the restart (and before the link came back) is at the receiver.\n")
	}

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
	sizeRow("ferry amd64", r.cfg.ferry, "`"+r.cfg.ferry+"` (make build: static, stripped with -s -w)")
	sizeRow("ferry armv7", r.cfg.ferryArmv7, "`"+r.cfg.ferryArmv7+"` (make cross: static, stripped)")
	sizeRow("vmagent amd64", r.cfg.vmagent, "Debian's, dynamically linked, stripped")
	sizeRow("prometheus amd64", r.cfg.prometheus, "Debian's, dynamically linked, stripped; the whole server, agent mode is a flag")
	if fi1, err1 := os.Stat(r.cfg.ferry); err1 == nil {
		if fi2, err2 := os.Stat(r.cfg.vmagent); err2 == nil {
			w("\nferry/vmagent (amd64): %.2f. ", float64(fi1.Size())/float64(fi2.Size()))
		}
		if fi3, err3 := os.Stat(r.cfg.prometheus); err3 == nil {
			w("ferry/prometheus (amd64): %.2f. No armv7 builds of the peers are measured here.\n", float64(fi1.Size())/float64(fi3.Size()))
		}
	}

	rows := r.rows()
	for _, p := range r.phases {
		w("\n## Phase: %s (%s)\n\n%s.\n\n", p.name, p.to.at.Sub(p.from.at).Round(time.Second), p.note)
		if p.complErr != "" {
			w("Completeness not measured: %s\n\n", p.complErr)
		}
		w("| | ferry | vmagent | prometheus | ferry/vmagent | ferry/prometheus |\n|---|---|---|---|---|---|\n")
		for _, rw := range rows {
			v := map[string]float64{}
			for _, n := range agentNames {
				v[n] = rw.val(p, n)
			}
			w("| %s | %s | %s | %s | %s | %s |\n", rw.label, num(v["ferry"], rw.prec), num(v["vmagent"], rw.prec), num(v["prometheus"], rw.prec),
				ratio(v["ferry"], v["vmagent"]), ratio(v["ferry"], v["prometheus"]))
		}
		if p.drain != nil {
			dur := func(d time.Duration) string {
				if d < 0 {
					return "not within the phase"
				}
				return fmt.Sprintf("%.1f", d.Seconds())
			}
			w("| first 2xx after the link came back (s) | %s | %s | %s | | |\n", dur(p.drain["ferry"].firstOK), dur(p.drain["vmagent"].firstOK), dur(p.drain["prometheus"].firstOK))
			w("| every probe sample of the outage at the receiver after (s; polled every 2 s) | %s | %s | %s | %s | %s |\n",
				dur(p.drain["ferry"].drained), dur(p.drain["vmagent"].drained), dur(p.drain["prometheus"].drained),
				durRatio(p.drain["ferry"].drained, p.drain["vmagent"].drained), durRatio(p.drain["ferry"].drained, p.drain["prometheus"].drained))
			w("| probe samples of the outage at the receiver when the phase ended (0/0: none scraped in the window) | %d/%d | %d/%d | %d/%d | | |\n",
				p.drain["ferry"].delivered.Arrived, p.drain["ferry"].delivered.Served,
				p.drain["vmagent"].delivered.Arrived, p.drain["vmagent"].delivered.Served,
				p.drain["prometheus"].delivered.Arrived, p.drain["prometheus"].delivered.Served)
		}
	}
	r.aims(&b)
	w("\n## Not measured\n\n")
	w("- CPU, RSS and disk of the receivers and node_exporter (not agents).\n")
	w("- Power cuts (a kill -9 is not one: the page cache survives it).\n")
	w("- Peers' armv7 binary sizes and anything on ARM hardware: everything here ran on %s.\n", runtime.GOARCH)
	w("- Request header bytes and TCP overhead: wire bytes are request bodies only.\n")
	w("- Drain times are resolved to the 2 s polling interval of the receivers, and rest on the probe series only (an agent may still be sending other series of its backlog).\n")
	return b.String()
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

// aims checks the targets of issue 8 against this run.
func (r *results) aims(b *strings.Builder) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("\n## ferry against its aims (issue 8), in this run\n\n| aim | ferry | vmagent | prometheus | ratio | verdict |\n|---|---|---|---|---|---|\n")
	rows := r.rows()
	get := func(phase, label string) map[string]float64 {
		p := r.phase(phase)
		if p == nil {
			return nil
		}
		for _, rw := range rows {
			if rw.label == label {
				v := map[string]float64{}
				for _, n := range agentNames {
					v[n] = rw.val(p, n)
				}
				return v
			}
		}
		return nil
	}
	check := func(aim, phase, label string, max float64, prec int) {
		v := get(phase, label)
		if v == nil {
			w("| %s | not measured | | | | phase %s did not run |\n", aim, phase)
			return
		}
		ra := div(v["ferry"], v["vmagent"])
		verdict := "not measured"
		if !math.IsNaN(ra) {
			if ra <= max {
				verdict = "met"
			} else {
				verdict = fmt.Sprintf("missed: %.3f× > %.2f×", ra, max)
			}
		}
		w("| %s | %s | %s | %s | %s | %s |\n", aim, num(v["ferry"], prec), num(v["vmagent"], prec), num(v["prometheus"], prec), num(ra, 2), verdict)
	}
	check("RSS median (steady) ≤ 0.4× vmagent", "steady", "RSS median (MiB)", 0.4, 1)
	check("CPU per sample (steady) ≤ 0.7× vmagent", "steady", "CPU per 1k samples scraped (ms)", 0.7, 2)
	check("disk bytes written per sample (outage) ≤ 0.33× vmagent", "outage", "written to disk per sample scraped (bytes)", 0.33, 2)
	check("wire bytes per sample (steady) ≤ 1× vmagent", "steady", "wire bytes per sample (snappy)", 1, 2)
	check("wire bytes per sample (drain) ≤ 0.5× vmagent", "drain", "wire bytes per sample (snappy)", 0.5, 2)
	for _, ph := range []string{"outage", "crash"} {
		v := get(ph, "completeness at the end of the run (% of those at the receiver)")
		if v == nil {
			continue
		}
		verdict := "missed"
		if v["ferry"] >= 100 {
			verdict = "met"
		} else if ph == "crash" {
			verdict = "below 100%: compare with the sync window (1m of a " + r.cfg.crashOutage.String() + " outage, killed in its middle)"
		}
		w("| 100%% of the probe samples of the %s phase | %s | %s | %s | | %s |\n", ph, num(v["ferry"], 1), num(v["vmagent"], 1), num(v["prometheus"], 1), verdict)
	}
	if r.phase("crash") != nil && r.final != nil {
		// Of the probe samples served before the kill, the ones missing
		// at the end: within the minute before the kill (ferry's sync
		// window) and older.
		lost := map[string][2]int{}
		for _, n := range agentNames {
			a := r.agents[n]
			served := r.synth.served(n, r.started, a.killedAt)
			have := map[int64]bool{}
			for _, s := range r.final[n] {
				have[int64(s.value)] = true
			}
			var l [2]int
			for _, v := range served {
				if !have[v] {
					if v >= a.killedAt.Add(-time.Minute).Unix() {
						l[0]++
					} else {
						l[1]++
					}
				}
			}
			lost[n] = l
		}
		verdict := "met"
		if lost["ferry"][1] > 0 {
			verdict = "missed"
		}
		f := func(n string) string {
			return fmt.Sprintf("%d lost within 1m before the kill, %d older", lost[n][0], lost[n][1])
		}
		w("| kill -9: nothing lost but the sync window (probe samples served before the kill, missing at the end) | %s | %s | %s | | %s |\n", f("ferry"), f("vmagent"), f("prometheus"), verdict)
	}
	if p := r.phase("drain"); p != nil && p.drain != nil {
		f, va, pr := p.drain["ferry"].drained, p.drain["vmagent"].drained, p.drain["prometheus"].drained
		verdict := "missed"
		if f >= 0 && (va < 0 || f < va) && (pr < 0 || f < pr) {
			verdict = "met"
		} else if f < 0 {
			verdict = "missed: ferry did not drain within the phase"
		}
		ds := func(d time.Duration) string {
			if d < 0 {
				return "not drained"
			}
			return fmt.Sprintf("%.1f s", d.Seconds())
		}
		w("| drain after the outage faster than both peers | %s | %s | %s | | %s |\n", ds(f), ds(va), ds(pr), verdict)
	}
}
