// Command compare runs ferry, vmagent and Prometheus in agent mode side by
// side, each at its defaults, through the same scenarios (steady, receiver
// outage, kill -9 during an outage), against the same targets, each agent
// with its own VictoriaMetrics receiver behind a counting proxy, once per
// workload (the typical device, a heavy one), and writes the figures and
// ferry's aims as markdown.
//
//	scripts/build-peers.sh    # the pinned peers into .tools/peers/, once
//	go run ./bench/compare -ferry bin/ferry -out bench/RESULTS-compare.md
//
// Everything listens on 127.0.0.1; every process it starts is ended at the
// end, also on failure; its files live in a fresh temporary directory.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

type config struct {
	ferry, ferryArmv7      string
	vmagent, prometheus    string
	victoria, nodeExporter string
	out, workdir           string
	keep                   bool
	workloads              string
	appSeries              int
	interval               time.Duration
	warmup, steady, outage time.Duration
	drainMax, crashOutage  time.Duration
	settle                 time.Duration
	skipCrash              bool

	scenario                  string
	drainSeries, drainBacklog int
	drainInterval, drainSync  time.Duration
	drainProtocol             string
}

// workload is one run of the phases: what the targets serve, how often
// every agent scrapes them, how long each phase lasts, and ferry's memory
// aim there.
type workload struct {
	name, title         string
	appSeries           int
	interval            time.Duration
	warmup, steady      time.Duration
	outage, crashOutage time.Duration
	rssAim              float64 // MiB, RSS median with the link up
}

// workloads are what `make bench` runs, one after the other; "custom" takes
// the -series, -interval and phase flags.
var workloads = map[string]workload{
	"typical": {name: "typical", title: "the typical device: 1k application series and node_exporter, every 15 s",
		appSeries: 1_000, interval: 15 * time.Second, warmup: 30 * time.Second, steady: 3 * time.Minute,
		outage: 3 * time.Minute, crashOutage: 2 * time.Minute, rssAim: 10},
	"heavy": {name: "heavy", title: "a heavy device: 10k application series and node_exporter, every 5 s",
		appSeries: 10_000, interval: 5 * time.Second, warmup: 30 * time.Second, steady: 2 * time.Minute,
		outage: 3 * time.Minute, crashOutage: time.Minute, rssAim: 20},
}

// customWorkload is the workload the flags describe.
func customWorkload(c config) workload {
	return workload{name: "custom", title: fmt.Sprintf("%d application series and node_exporter, every %s", c.appSeries, c.interval),
		appSeries: c.appSeries, interval: c.interval, warmup: c.warmup, steady: c.steady, outage: c.outage, crashOutage: c.crashOutage, rssAim: 20}
}

// withWorkload returns c with the workload's series, interval and phases.
func (c config) withWorkload(w workload) config {
	c.appSeries, c.interval = w.appSeries, w.interval
	c.warmup, c.steady, c.outage, c.crashOutage = w.warmup, w.steady, w.outage, w.crashOutage
	return c
}

var agentNames = []string{"ferry", "vmagent", "prometheus"}

type agent struct {
	name    string
	bin     string
	args    []string
	dataDir string
	logPath string
	ready   string
	proxy   *rwProxy
	rwAddr  string
	vmURL   string

	mu          sync.Mutex
	cmd         *exec.Cmd
	carryCPU    float64 // /proc counters of processes killed earlier
	carryWrite  int64
	last        procSample
	samples     []procSample // of the current phase
	restarts    int
	killedAt    time.Time
	restartedAt time.Time
}

func (a *agent) pid() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cmd.Process.Pid
}

func (a *agent) sample() {
	s := readProc(a.pid())
	a.mu.Lock()
	defer a.mu.Unlock()
	if s.ok {
		a.last = s
		a.samples = append(a.samples, s)
	}
}

// totals returns cumulative CPU seconds and bytes written over every
// process of this agent.
func (a *agent) totals() (float64, int64) {
	s := readProc(a.pid())
	a.mu.Lock()
	defer a.mu.Unlock()
	if !s.ok {
		s = a.last
	}
	return a.carryCPU + s.cpu, a.carryWrite + s.writeBytes
}

func (a *agent) takeSamples() []procSample {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.samples
	a.samples = nil
	return s
}

func main() {
	var c config
	flag.StringVar(&c.ferry, "ferry", "bin/ferry", "ferry binary (make build)")
	flag.StringVar(&c.ferryArmv7, "ferry-armv7", "bin/ferry-linux-armv7", "ferry armv7 binary for its stripped size (make cross); empty or missing: not reported")
	flag.StringVar(&c.vmagent, "vmagent", ".tools/peers/vmagent-v1.151.0", "vmagent binary (scripts/build-peers.sh; Debian's is /usr/bin/vmagent)")
	flag.StringVar(&c.prometheus, "prometheus", ".tools/peers/prometheus-v0.316.0", "prometheus binary, run in agent mode (scripts/build-peers.sh; Debian's is /usr/bin/prometheus)")
	flag.StringVar(&c.victoria, "victoria-metrics", "/usr/bin/victoria-metrics", "VictoriaMetrics single-node binary (the receivers)")
	flag.StringVar(&c.nodeExporter, "node-exporter", "/usr/bin/prometheus-node-exporter", "node_exporter binary (a scrape target)")
	flag.StringVar(&c.out, "out", "", "write the markdown report here too (it always goes to stdout)")
	flag.StringVar(&c.workdir, "workdir", "", "parent of the fresh temporary directory (default: $TMPDIR); not tmpfs, or disk writes are not counted")
	flag.BoolVar(&c.keep, "keep", false, "keep the temporary directory (it is kept anyway on failure)")
	flag.StringVar(&c.workloads, "workloads", "typical,heavy", "workloads to run, one after the other: typical (1k series every 15 s), heavy (10k every 5 s), custom (the flags below)")
	flag.IntVar(&c.appSeries, "series", 10_000, "custom: application series of the synthetic target (plus 165 host-like series and the probe)")
	flag.DurationVar(&c.interval, "interval", 5*time.Second, "custom: scrape interval of every agent")
	flag.DurationVar(&c.warmup, "warmup", 30*time.Second, "custom: after every agent is ready, before the steady phase")
	flag.DurationVar(&c.steady, "steady", 2*time.Minute, "custom: steady phase")
	flag.DurationVar(&c.outage, "outage", 3*time.Minute, "custom: receivers down (503 from the proxies)")
	flag.DurationVar(&c.crashOutage, "crash-outage", time.Minute, "custom: second outage; every agent is killed with SIGKILL in its middle and restarted on the same data")
	flag.DurationVar(&c.drainMax, "drain-max", 2*time.Minute, "longest wait for the backlog after each outage")
	flag.DurationVar(&c.settle, "settle", 90*time.Second, "longest wait at the end for every receiver to hold what its agent scraped since the link last came back")
	flag.BoolVar(&c.skipCrash, "skip-crash", false, "leave out the crash scenario")
	flag.StringVar(&c.scenario, "scenario", "phases", "phases (startup, steady, outage, crash) or drain (a large backlog, then the link back)")
	flag.IntVar(&c.drainSeries, "drain-series", 20_000, "drain: application series of the synthetic target")
	flag.IntVar(&c.drainBacklog, "drain-backlog", 1_000_000, "drain: samples each agent is served while its receiver is down")
	flag.DurationVar(&c.drainInterval, "drain-interval", 2*time.Second, "drain: scrape interval")
	flag.DurationVar(&c.drainSync, "drain-sync", 10*time.Second, "drain: ferry's --storage.sync-interval")
	flag.StringVar(&c.drainProtocol, "drain-protocol", "1", "drain: ferry's --remote-write.protocol (the receivers, VictoriaMetrics 1.79, speak 1.0)")
	flag.Parse()

	run := run
	if c.scenario == "drain" {
		run = runDrain
	}
	out, err := run(c)
	if out != "" {
		fmt.Print(out)
		if c.out != "" {
			if werr := os.WriteFile(c.out, []byte(out), 0o644); werr != nil {
				fmt.Fprintln(os.Stderr, "compare:", werr)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// serve serves h on a fresh loopback port and returns host:port.
func serve(h http.Handler, servers *[]*http.Server) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	*servers = append(*servers, s)
	go s.Serve(l)
	return l.Addr().String(), nil
}

// workspace checks that the binaries a run needs exist and makes its
// working directory under dir.
func workspace(dir, prefix string, binaries ...string) (string, error) {
	for _, b := range binaries {
		if _, err := os.Stat(b); err != nil {
			return "", fmt.Errorf("binary: %w", err)
		}
	}
	work, err := os.MkdirTemp(dir, prefix)
	if err != nil {
		return "", err
	}
	logf("working in %s", work)
	return work, nil
}

// startReceivers starts one VictoriaMetrics receiver per agent, each behind
// its counting proxy (refusing with 503 from the start if down), and returns
// the agents with their receiver, proxy and paths filled in.
func startReceivers(ps *procs, servers *[]*http.Server, victoria, work string, down bool) (map[string]*agent, error) {
	agents := map[string]*agent{}
	for _, name := range agentNames {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		vmURL := fmt.Sprintf("http://127.0.0.1:%d", port)
		if _, err := ps.start(filepath.Join(work, "vm-"+name+".log"), victoria,
			"-storageDataPath="+filepath.Join(work, "vm-"+name),
			fmt.Sprintf("-httpListenAddr=127.0.0.1:%d", port),
			"-retentionPeriod=1"); err != nil {
			return nil, err
		}
		if err := waitHTTP(vmURL+"/health", 30*time.Second); err != nil {
			return nil, err
		}
		p := newRWProxy(vmURL)
		p.setDown(down)
		addr, err := serve(p, servers)
		if err != nil {
			return nil, err
		}
		agents[name] = &agent{name: name, proxy: p, rwAddr: addr, vmURL: vmURL, dataDir: filepath.Join(work, "data-"+name), logPath: filepath.Join(work, name+".log")}
	}
	return agents, nil
}

// startAgents starts every agent as configureAgents set it up, each in its
// own data directory, and waits until each one says it is ready.
func startAgents(ps *procs, agents map[string]*agent) error {
	for _, name := range agentNames {
		a := agents[name]
		if err := os.MkdirAll(a.dataDir, 0o755); err != nil {
			return err
		}
		cmd, err := ps.start(a.logPath, a.bin, a.args...)
		if err != nil {
			return err
		}
		a.cmd = cmd
	}
	for _, name := range agentNames {
		if err := waitHTTP(agents[name].ready, 60*time.Second); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// run runs the phases once per workload of -workloads, one after the
// other, each with fresh targets, receivers and agents, and writes one
// report for all of them.
func run(c config) (string, error) {
	for _, p := range []*string{&c.ferry, &c.ferryArmv7, &c.vmagent, &c.prometheus} {
		if *p != "" {
			if abs, err := filepath.Abs(*p); err == nil {
				*p = abs
			}
		}
	}
	var ws []workload
	for _, name := range strings.Split(c.workloads, ",") {
		w, ok := workloads[strings.TrimSpace(name)]
		if strings.TrimSpace(name) == "custom" {
			w, ok = customWorkload(c), true
		}
		if !ok {
			return "", fmt.Errorf("-workloads: unknown workload %q (typical, heavy, custom)", name)
		}
		ws = append(ws, w)
	}
	env := collectEnv(c)
	started := time.Now()
	var runs []*results
	for _, w := range ws {
		logf("workload %s: %s", w.name, w.title)
		r, err := runWorkload(c.withWorkload(w), w, env)
		if r != nil {
			runs = append(runs, r)
		}
		if err != nil {
			return report(c, env, runs, time.Since(started)), fmt.Errorf("workload %s: %w", w.name, err)
		}
	}
	return report(c, env, runs, time.Since(started)), nil
}

// runWorkload runs the phases for one workload: startup, steady, outage and
// its drain, the outage with a kill -9 and its drain, then waits until the
// receivers hold what was scraped since the link came back. The results
// are partial (failure set) when it returns an error after the agents ran.
func runWorkload(c config, wl workload, env [][2]string) (r *results, err error) {
	work, err := workspace(c.workdir, "ferry-bench-compare-"+wl.name+"-", c.ferry, c.vmagent, c.prometheus, c.victoria, c.nodeExporter)
	if err != nil {
		return nil, err
	}
	ps := &procs{}
	var servers []*http.Server
	stop := make(chan struct{})
	cleanup := func() {
		ps.stopAll(10 * time.Second)
		for _, s := range servers {
			s.Close()
		}
	}
	defer func() {
		cleanup()
		if err != nil || c.keep {
			logf("kept %s (logs of every process are there)", work)
		} else {
			os.RemoveAll(work)
		}
	}()
	defer close(stop)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		if _, ok := <-sigs; ok {
			logf("interrupted: stopping every process")
			cleanup()
			os.Exit(1)
		}
	}()
	defer signal.Stop(sigs)

	started := time.Now()

	// Targets.
	nePort, err := freePort()
	if err != nil {
		return nil, err
	}
	if _, err := ps.start(filepath.Join(work, "node-exporter.log"), c.nodeExporter, fmt.Sprintf("--web.listen-address=127.0.0.1:%d", nePort)); err != nil {
		return nil, err
	}
	neURL := fmt.Sprintf("http://127.0.0.1:%d", nePort)
	if err := waitHTTP(neURL+"/metrics", 30*time.Second); err != nil {
		return nil, err
	}
	nodeSeries, err := countTarget(neURL + "/metrics")
	if err != nil {
		return nil, err
	}
	synth := newSynthTarget(c.appSeries, c.interval, stop)
	synthAddr, err := serve(synth, &servers)
	if err != nil {
		return nil, err
	}
	nodeCounter := newScrapeCounter(neURL)
	nodeAddr, err := serve(nodeCounter, &servers)
	if err != nil {
		return nil, err
	}
	logf("targets: synthetic %s (%d series), node_exporter via %s (%d series)", synthAddr, synth.series, nodeAddr, nodeSeries)

	// Receivers, each behind its proxy.
	agents, err := startReceivers(ps, &servers, c.victoria, work, false)
	if err != nil {
		return nil, err
	}

	// Agents.
	if err := configureAgents(c, work, agents, synthAddr, nodeAddr); err != nil {
		return nil, err
	}
	if err := startAgents(ps, agents); err != nil {
		return nil, err
	}
	logf("all agents ready")

	// One reading of /proc per agent per second.
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				for _, a := range agents {
					a.sample()
				}
			}
		}
	}()

	r = &results{cfg: c, wl: wl, env: env, agents: agents, synth: synth, nodeCounter: nodeCounter, nodeSeries: nodeSeries, started: started}
	snap := func() snapshot { return takeSnapshot(agents, synth, nodeCounter) }
	phase := func(name, note string, from snapshot) snapshot {
		to := snap()
		p := &phaseResult{name: name, note: note, from: from, to: to, rss: map[string][]procSample{}}
		for n, a := range agents {
			p.rss[n] = a.takeSamples()
		}
		r.phases = append(r.phases, p)
		logf("phase %s done (%s)", name, to.at.Sub(from.at).Round(time.Second))
		return to
	}
	setDown := func(down bool) {
		for _, a := range agents {
			a.proxy.setDown(down)
		}
	}
	partial := func(e error) (*results, error) {
		r.failure = e.Error()
		return r, e
	}

	for _, a := range agents {
		a.takeSamples()
	}
	s := snap()
	time.Sleep(c.warmup)
	s = phase("startup", "from every agent ready to the steady phase", s)
	time.Sleep(c.steady)
	s = phase("steady", "link up", s)
	r.measureFreshness(r.phases[len(r.phases)-1])

	setDown(true)
	logf("outage: receivers down for %s", c.outage)
	time.Sleep(c.outage)
	s = phase("outage", "every receiver answers 503", s)
	outageFrom := r.phases[len(r.phases)-1].from.at
	setDown(false)
	s = r.drain("drain", "link back; ends when every receiver holds every sample of the synthetic target scraped during the outage, or after -drain-max", true,
		func(string) time.Time { return outageFrom }, c.drainMax, s, phase)
	upAt := s.at

	if !c.skipCrash {
		setDown(true)
		logf("crash: receivers down for %s, kill -9 in the middle", c.crashOutage)
		crashFrom := s.at
		time.Sleep(c.crashOutage / 2)
		for _, name := range agentNames {
			if err := killAndRestart(ps, agents[name]); err != nil {
				return partial(fmt.Errorf("%s: %w", name, err))
			}
		}
		for _, name := range agentNames {
			if err := waitHTTP(agents[name].ready, 60*time.Second); err != nil {
				return partial(fmt.Errorf("%s after restart: %w", name, err))
			}
		}
		if rest := c.crashOutage - time.Since(s.at); rest > 0 {
			time.Sleep(rest)
		}
		s = phase("crash", "receivers down; every agent killed with SIGKILL in the middle and restarted on the same data", s)
		r.crashFrom = crashFrom
		setDown(false)
		// What an agent held before the kill may be lost by design (the
		// kill -9 figure tells how much); the drain is over when what it
		// scraped after its restart is there.
		s = r.drain("crash-drain", "link back; ends when every receiver holds every sample of the synthetic target scraped after its agent's restart, or after -drain-max", true,
			func(n string) time.Time { return agents[n].restartedAt }, c.drainMax, s, phase)
		upAt = r.phases[len(r.phases)-1].from.at
	}

	// Not a fixed wait (an agent's send schedule is its own business): over
	// as soon as every receiver holds what its agent scraped since the link
	// last came back, at most -settle.
	logf("settle: until every receiver holds what was scraped since the link came back, at most %s", c.settle)
	r.drain("settle", "link up; ends when every receiver holds every sample of the synthetic target scraped since the link last came back, or after -settle; what was scraped in this phase is not waited for, so its completeness may be short", false,
		func(string) time.Time { return upAt }, c.settle, s, phase)
	r.wholeRun()
	if err := r.finalCheck(); err != nil {
		return partial(err)
	}
	r.duration = time.Since(started)
	return r, nil
}

// killAndRestart kills the agent with SIGKILL and starts it again on the
// same data directory.
func killAndRestart(ps *procs, a *agent) error {
	pid := a.pid()
	s := readProc(pid)
	a.mu.Lock()
	if !s.ok {
		s = a.last
	}
	a.carryCPU += s.cpu
	a.carryWrite += s.writeBytes
	a.last = procSample{}
	cmd := a.cmd
	a.mu.Unlock()
	if err := cmd.Process.Kill(); err != nil {
		return err
	}
	a.mu.Lock()
	a.killedAt = time.Now()
	a.mu.Unlock()
	for deadline := time.Now().Add(10 * time.Second); alive(pid); {
		if time.Now().After(deadline) {
			return errors.New("still alive 10 s after SIGKILL")
		}
		time.Sleep(50 * time.Millisecond)
	}
	logf("%s killed (pid %d)", a.name, pid)
	time.Sleep(time.Second)
	cmd, err := ps.start(a.logPath, a.bin, a.args...)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.cmd = cmd
	a.restarts++
	a.restartedAt = time.Now()
	a.mu.Unlock()
	return nil
}

func countTarget(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 64<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return countSamples([]byte(b.String())), nil
}

// configureAgents sets the command line of every agent: the same two
// targets at the same interval, remote write to its own proxy.
func configureAgents(c config, work string, agents map[string]*agent, synthAddr, nodeAddr string) error {
	ports := map[string]int{}
	for _, n := range agentNames {
		p, err := freePort()
		if err != nil {
			return err
		}
		ports[n] = p
	}
	rwURL := func(n string) string {
		return "http://" + agents[n].rwAddr + "/api/v1/write"
	}

	f := agents["ferry"]
	f.bin = c.ferry
	// ferry at its defaults: every flag here says where to scrape, where
	// to send, where to keep its data and where to listen, or makes it
	// measure the same thing as the peers; none tunes it.
	f.args = []string{
		"--scrape.target=" + synthJob + "=http://" + synthAddr + "/ferry/metrics",
		// The workload's interval, which every peer gets as its
		// scrape_interval (ferry's default is 15 s, the typical one).
		"--scrape.interval=" + c.interval.String(),
		// Its default, ./data, is relative to the working directory; the
		// harness measures the data directory it makes for each agent.
		"--storage.path=" + f.dataDir,
		"--remote-write.url=" + rwURL("ferry"),
		// A free loopback port instead of the default 127.0.0.1:9391, which
		// another ferry on the machine may hold; the harness polls /-/ready.
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", ports["ferry"]),
	}
	if nodeAddr != "" {
		f.args = append(f.args, "--scrape.target=node=http://"+nodeAddr+"/ferry/metrics")
	}
	// Its host collectors off: the peers have none, and they scrape
	// node_exporter instead, as ferry does here; so every agent collects
	// the same samples, and the figures per sample divide by the same count.
	cols, err := ferryCollectors(c.ferry)
	if err != nil {
		return err
	}
	for _, col := range cols {
		f.args = append(f.args, "--no-collector."+col)
	}
	f.ready = fmt.Sprintf("http://127.0.0.1:%d/-/ready", ports["ferry"])

	// The same targets for every agent; the path prefix only tells the
	// harness who is scraping.
	scrapeYAML := func(agent string) string {
		y := fmt.Sprintf(`global:
  scrape_interval: %s
scrape_configs:
  - job_name: %s
    metrics_path: /%s/metrics
    static_configs:
      - targets: ["%s"]
`, c.interval, synthJob, agent, synthAddr)
		if nodeAddr != "" {
			y += fmt.Sprintf(`  - job_name: node
    metrics_path: /%s/metrics
    static_configs:
      - targets: ["%s"]
`, agent, nodeAddr)
		}
		return y
	}

	v := agents["vmagent"]
	vmCfg := filepath.Join(work, "vmagent.yml")
	if err := os.WriteFile(vmCfg, []byte(scrapeYAML("vmagent")), 0o644); err != nil {
		return err
	}
	v.bin = c.vmagent
	v.args = []string{
		"-promscrape.config=" + vmCfg,
		"-remoteWrite.url=" + rwURL("vmagent"),
		"-remoteWrite.tmpDataPath=" + v.dataDir,
		fmt.Sprintf("-httpListenAddr=127.0.0.1:%d", ports["vmagent"]),
	}
	v.ready = fmt.Sprintf("http://127.0.0.1:%d/health", ports["vmagent"])

	p := agents["prometheus"]
	promCfg := filepath.Join(work, "prometheus.yml")
	if err := os.WriteFile(promCfg, []byte(scrapeYAML("prometheus")+"remote_write:\n  - url: "+rwURL("prometheus")+"\n"), 0o644); err != nil {
		return err
	}
	p.bin = c.prometheus
	p.args = []string{
		prometheusAgentFlag(c.prometheus),
		"--config.file=" + promCfg,
		"--storage.agent.path=" + p.dataDir,
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", ports["prometheus"]),
	}
	p.ready = fmt.Sprintf("http://127.0.0.1:%d/-/ready", ports["prometheus"])
	return nil
}

// ferryCollectors lists ferry's host collectors from its --help, so that
// every one of them is turned off and ferry only scrapes, like the others.
func ferryCollectors(bin string) ([]string, error) {
	out, _ := exec.Command(bin, "--help").CombinedOutput()
	var cols []string
	for _, f := range strings.Fields(string(out)) {
		if name, ok := strings.CutPrefix(f, "--no-collector."); ok {
			name, _, _ = strings.Cut(name, "[")
			cols = append(cols, name)
		}
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("%s --help lists no --no-collector flags:\n%s", bin, out)
	}
	return cols, nil
}

// prometheusAgentFlag is the flag that runs prometheus in agent mode:
// --agent since Prometheus 3, --enable-feature=agent before.
func prometheusAgentFlag(bin string) string {
	out, _ := exec.Command(bin, "--help").CombinedOutput()
	if h := string(out); strings.Contains(h, "--agent") || strings.Contains(h, "--[no-]agent") {
		return "--agent"
	}
	return "--enable-feature=agent"
}
