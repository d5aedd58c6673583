// Command compare runs ferry, vmagent and Prometheus in agent mode side by
// side through the same scenarios (steady, receiver outage, kill -9 during
// an outage), against the same targets, each agent with its own
// VictoriaMetrics receiver behind a counting proxy, and writes the figures
// as markdown.
//
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
	flag.StringVar(&c.vmagent, "vmagent", "/usr/bin/vmagent", "vmagent binary")
	flag.StringVar(&c.prometheus, "prometheus", "/usr/bin/prometheus", "prometheus binary (run with --enable-feature=agent)")
	flag.StringVar(&c.victoria, "victoria-metrics", "/usr/bin/victoria-metrics", "VictoriaMetrics single-node binary (the receivers)")
	flag.StringVar(&c.nodeExporter, "node-exporter", "/usr/bin/prometheus-node-exporter", "node_exporter binary (a scrape target)")
	flag.StringVar(&c.out, "out", "", "write the markdown report here too (it always goes to stdout)")
	flag.StringVar(&c.workdir, "workdir", "", "parent of the fresh temporary directory (default: $TMPDIR); not tmpfs, or disk writes are not counted")
	flag.BoolVar(&c.keep, "keep", false, "keep the temporary directory (it is kept anyway on failure)")
	flag.IntVar(&c.appSeries, "series", 10_000, "application series of the synthetic target (plus 165 host-like series and the probe)")
	flag.DurationVar(&c.interval, "interval", 5*time.Second, "scrape interval of every agent")
	flag.DurationVar(&c.warmup, "warmup", 30*time.Second, "after every agent is ready, before the steady phase")
	flag.DurationVar(&c.steady, "steady", 2*time.Minute, "steady phase")
	flag.DurationVar(&c.outage, "outage", 3*time.Minute, "receivers down (503 from the proxies)")
	flag.DurationVar(&c.drainMax, "drain-max", 3*time.Minute, "longest wait for the backlog after each outage")
	flag.DurationVar(&c.crashOutage, "crash-outage", time.Minute, "second outage; every agent is killed with SIGKILL in its middle and restarted on the same data")
	flag.DurationVar(&c.settle, "settle", 70*time.Second, "wait at the end before the final completeness check (longer than ferry's --storage.sync-interval)")
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
	report, err := run(c)
	if report != "" {
		fmt.Print(report)
		if c.out != "" {
			if werr := os.WriteFile(c.out, []byte(report), 0o644); werr != nil {
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

func run(c config) (report string, err error) {
	for _, p := range []*string{&c.ferry, &c.ferryArmv7} {
		if *p != "" {
			if abs, err := filepath.Abs(*p); err == nil {
				*p = abs
			}
		}
	}
	work, err := workspace(c.workdir, "ferry-bench-compare-", c.ferry, c.vmagent, c.prometheus, c.victoria, c.nodeExporter)
	if err != nil {
		return "", err
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

	env := collectEnv(c)
	started := time.Now()

	// Targets.
	nePort, err := freePort()
	if err != nil {
		return "", err
	}
	if _, err := ps.start(filepath.Join(work, "node-exporter.log"), c.nodeExporter, fmt.Sprintf("--web.listen-address=127.0.0.1:%d", nePort)); err != nil {
		return "", err
	}
	neURL := fmt.Sprintf("http://127.0.0.1:%d", nePort)
	if err := waitHTTP(neURL+"/metrics", 30*time.Second); err != nil {
		return "", err
	}
	nodeSeries, err := countTarget(neURL + "/metrics")
	if err != nil {
		return "", err
	}
	synth := newSynthTarget(c.appSeries, c.interval, stop)
	synthAddr, err := serve(synth, &servers)
	if err != nil {
		return "", err
	}
	nodeCounter := newScrapeCounter(neURL)
	nodeAddr, err := serve(nodeCounter, &servers)
	if err != nil {
		return "", err
	}
	logf("targets: synthetic %s (%d series), node_exporter via %s (%d series)", synthAddr, synth.series, nodeAddr, nodeSeries)

	// Receivers, each behind its proxy.
	agents, err := startReceivers(ps, &servers, c.victoria, work, false)
	if err != nil {
		return "", err
	}

	// Agents.
	if err := configureAgents(c, work, agents, synthAddr, nodeAddr); err != nil {
		return "", err
	}
	if err := startAgents(ps, agents); err != nil {
		return "", err
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

	r := &results{cfg: c, env: env, agents: agents, synth: synth, nodeCounter: nodeCounter, nodeSeries: nodeSeries, started: started}
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
	partial := func(e error) (string, error) {
		r.failure = e.Error()
		return r.markdown(), e
	}

	for _, a := range agents {
		a.takeSamples()
	}
	s := snap()
	time.Sleep(c.warmup)
	s = phase("startup", "from every agent ready to the steady phase", s)
	time.Sleep(c.steady)
	s = phase("steady", "link up", s)

	setDown(true)
	logf("outage: receivers down for %s", c.outage)
	time.Sleep(c.outage)
	s = phase("outage", "every receiver answers 503", s)
	outageFrom := r.phases[len(r.phases)-1].from.at
	setDown(false)
	s = r.drain("drain", func(string) time.Time { return outageFrom }, s, snap, phase)

	if !c.skipCrash {
		setDown(true)
		logf("crash: receivers down for %s, kill -9 in the middle", c.crashOutage)
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
		setDown(false)
		// What an agent held before the kill may be lost by design; the
		// drain is over when what it scraped after its restart is there.
		s = r.drain("crash-drain", func(n string) time.Time { return agents[n].restartedAt }, s, snap, phase)
	}

	logf("settle %s before the final check", c.settle)
	time.Sleep(c.settle)
	phase("settle", "link up; its last samples may still be on their way at the final check (ferry: up to its 1m sync interval)", s)
	r.wholeRun()
	time.Sleep(10 * time.Second) // let what was scraped last arrive
	if err := r.finalCheck(); err != nil {
		return partial(err)
	}
	r.duration = time.Since(started)
	return r.markdown(), nil
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
	f.args = []string{
		"--scrape.target=synth=http://" + synthAddr + "/ferry/metrics",
		"--scrape.interval=" + c.interval.String(),
		"--storage.path=" + f.dataDir,
		"--remote-write.url=" + rwURL("ferry"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", ports["ferry"]),
	}
	if nodeAddr != "" {
		f.args = append(f.args, "--scrape.target=node=http://"+nodeAddr+"/ferry/metrics")
	}
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
  scrape_timeout: %s
scrape_configs:
  - job_name: synth
    metrics_path: /%s/metrics
    static_configs:
      - targets: ["%s"]
`, c.interval, c.interval, agent, synthAddr)
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
		"--enable-feature=agent",
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
