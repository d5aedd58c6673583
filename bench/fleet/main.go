// Command fleet runs a fleet of ferry processes against a Thanos Receive
// hashring (3 nodes, replication factor 2) on loopback, cuts them all off
// for some minutes, reconnects them at once, kills one receiver node during
// the drain and brings it back, and checks through Thanos Query that every
// sample arrived once with its value and timestamp. It runs the whole
// scenario once per mode (ferry's reconnect tuning off, then on) and
// writes the figures as Markdown. `make test-fleet-scale` runs it.
//
// Every process it starts is stopped by its PID, and killed if the harness
// dies (Pdeathsig); everything listens on 127.0.0.1.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type options struct {
	thanos, ferry, work, out  string
	devices, groups           int
	warmup, offline, interval time.Duration
	killAfter, killFor        time.Duration
	drainTimeout              time.Duration
	drainRate, jitter         string
	modes                     []string
}

func main() {
	var o options
	var modes string
	flag.StringVar(&o.thanos, "thanos", "", "the thanos binary (scripts/build-thanos.sh)")
	flag.StringVar(&o.ferry, "ferry", "bin/ferry", "the ferry binary")
	flag.StringVar(&o.work, "work", "", "working directory (default: a new temporary one, removed at the end)")
	flag.StringVar(&o.out, "out", "", "also write the Markdown report to this file")
	flag.IntVar(&o.devices, "devices", envInt("FLEET_DEVICES", 120), "ferry processes (FLEET_DEVICES)")
	flag.IntVar(&o.groups, "groups", 4, "device groups, one tenant (THANOS-TENANT) each")
	flag.DurationVar(&o.warmup, "warmup", 30*time.Second, "online before the cut")
	flag.DurationVar(&o.offline, "offline", envDuration("FLEET_OFFLINE", 2*time.Minute), "how long the fleet is cut off (FLEET_OFFLINE)")
	flag.DurationVar(&o.interval, "interval", 15*time.Second, "ferry's --scrape.interval")
	flag.DurationVar(&o.killAfter, "kill-after", 5*time.Second, "a receiver node is killed this long after the reconnect (0: none is)")
	flag.DurationVar(&o.killFor, "kill-for", 30*time.Second, "and restarted this long after")
	flag.DurationVar(&o.drainTimeout, "drain-timeout", 10*time.Minute, "longest wait for every backlog after the reconnect")
	flag.StringVar(&o.drainRate, "drain-rate", "8KiB", "--remote-write.backlog-bytes-per-second of the tuned mode")
	flag.StringVar(&o.jitter, "jitter", "20s", "--remote-write.reconnect-jitter of the tuned mode")
	flag.StringVar(&modes, "modes", "untuned,tuned", "modes to run, in order: untuned (no reconnect jitter, no drain limit), tuned (-jitter and -drain-rate)")
	flag.Parse()
	o.modes = strings.Split(modes, ",")
	if o.thanos == "" {
		log.Fatal("fleet: -thanos is required")
	}
	for _, bin := range []string{o.thanos, o.ferry} {
		if _, err := os.Stat(bin); err != nil {
			log.Fatalf("fleet: %v", err)
		}
	}
	if o.work == "" {
		dir, err := os.MkdirTemp("", "ferry-fleet-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(dir)
		o.work = dir
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer running.killAll()
	// Pdeathsig follows the thread that started a child: keep the
	// starting goroutine on one thread for the harness's life.
	runtime.LockOSThread()

	var results []*result
	ok := true
	for _, m := range o.modes {
		if ctx.Err() != nil {
			break
		}
		r, err := runMode(ctx, o, m)
		if err != nil {
			running.killAll()
			log.Printf("fleet: mode %s: %v", m, err)
			ok = false
			if r == nil {
				continue
			}
		}
		results = append(results, r)
		ok = ok && r.pass()
	}
	report := markdown(o, results)
	fmt.Print(report)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(report), 0o644); err != nil {
			log.Printf("fleet: %v", err)
			ok = false
		}
	}
	if !ok || ctx.Err() != nil {
		running.killAll()
		os.Exit(1)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// receiver is one node of the hashring.
type receiver struct {
	httpAddr, grpcAddr, rwAddr, capnpAddr string
	args                                  []string
	cmd                                   *exec.Cmd
	logDir                                string
	starts                                int
}

func (r *receiver) start() error {
	r.starts++
	cmd, err := running.start(filepath.Join(r.logDir, fmt.Sprintf("receive-%s-%d.log", r.rwAddr, r.starts)), r.args[0], r.args[1:]...)
	r.cmd = cmd
	return err
}

// waitReady polls addr's /-/ready until it answers 200.
func waitReady(ctx context.Context, addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		resp, err := httpc.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within %s", addr, within)
}

// device is one ferry process.
type device struct {
	name    string
	web     string
	cmd     *exec.Cmd
	drained time.Time // after the reconnect: since when every poll found no backlog; zero while there is one
	maxRSS  int64     // KiB
	final   exposition
}

func runMode(ctx context.Context, o options, mode string) (*result, error) {
	r := &result{mode: mode, devices: o.devices}
	var extra []string
	switch mode {
	case "untuned":
		extra = []string{"--remote-write.reconnect-jitter=0"}
	case "tuned":
		extra = []string{"--remote-write.reconnect-jitter=" + o.jitter, "--remote-write.backlog-bytes-per-second=" + o.drainRate}
	default:
		return nil, fmt.Errorf("unknown mode %q", mode)
	}
	r.flags = strings.Join(extra, " ")
	dir := filepath.Join(o.work, mode)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	log.Printf("fleet: mode %s: %d devices, %s offline, work in %s", mode, o.devices, o.offline, dir)

	// The hashring: 3 nodes, replication factor 2, each a receiver and an
	// ingester.
	ports := freePorts(3*4 + 2)
	recvs := make([]*receiver, 3)
	var endpoints []string
	for i := range recvs {
		recvs[i] = &receiver{
			httpAddr:  fmt.Sprintf("127.0.0.1:%d", ports[4*i]),
			grpcAddr:  fmt.Sprintf("127.0.0.1:%d", ports[4*i+1]),
			rwAddr:    fmt.Sprintf("127.0.0.1:%d", ports[4*i+2]),
			capnpAddr: fmt.Sprintf("127.0.0.1:%d", ports[4*i+3]),
			logDir:    dir,
		}
		endpoints = append(endpoints, fmt.Sprintf(`{"address":%q,"capnproto_address":%q}`, recvs[i].grpcAddr, recvs[i].capnpAddr))
	}
	ring := filepath.Join(dir, "hashring.json")
	if err := os.WriteFile(ring, []byte(`[{"hashring":"default","endpoints":[`+strings.Join(endpoints, ",")+`]}]`), 0o644); err != nil {
		return nil, err
	}
	for i, rc := range recvs {
		rc.args = []string{o.thanos, "receive",
			"--log.level=warn",
			"--tsdb.path=" + filepath.Join(dir, fmt.Sprintf("receive-%d", i)),
			"--tsdb.retention=1d",
			"--http-address=" + rc.httpAddr,
			"--grpc-address=" + rc.grpcAddr,
			"--remote-write.address=" + rc.rwAddr,
			"--receive.hashrings-file=" + ring,
			"--receive.hashrings-algorithm=ketama",
			"--receive.replication-factor=2",
			// Its own port for the Cap'n Proto replication server,
			// which listens even while replication speaks protobuf (the
			// default): 0.0.0.0:19391 would be taken by the first node.
			"--receive.capnproto-address=" + rc.capnpAddr,
			"--receive.local-endpoint=" + rc.grpcAddr,
			"--receive.tenant-header=THANOS-TENANT",
			fmt.Sprintf("--label=receive_replica=\"%d\"", i),
		}
		if err := rc.start(); err != nil {
			return nil, err
		}
	}
	queryHTTP := fmt.Sprintf("127.0.0.1:%d", ports[12])
	qargs := []string{"query", "--log.level=warn", "--http-address=" + queryHTTP,
		fmt.Sprintf("--grpc-address=127.0.0.1:%d", ports[13]), "--query.replica-label=receive_replica"}
	for _, rc := range recvs {
		qargs = append(qargs, "--endpoint="+rc.grpcAddr)
	}
	query, err := running.start(filepath.Join(dir, "query.log"), o.thanos, qargs...)
	if err != nil {
		return nil, err
	}
	defer running.stop(query, 10*time.Second)
	defer func() {
		for _, rc := range recvs {
			if rc.cmd != nil {
				running.stop(rc.cmd, 20*time.Second)
			}
		}
	}()
	for _, rc := range recvs {
		if err := waitReady(ctx, rc.httpAddr, 2*time.Minute); err != nil {
			return nil, fmt.Errorf("receiver: %v (log in %s)", err, dir)
		}
	}
	if err := waitReady(ctx, queryHTTP, time.Minute); err != nil {
		return nil, fmt.Errorf("query: %v", err)
	}

	// One cut-off proxy per receiver; device i writes through proxy i%3.
	proxies := make([]*cutProxy, 3)
	for i, rc := range recvs {
		p, err := newCutProxy(rc.rwAddr)
		if err != nil {
			return nil, err
		}
		defer p.close()
		proxies[i] = p
	}
	setLink := func(up bool) {
		for _, p := range proxies {
			p.set(up)
		}
	}
	tgt, err := newTarget(o.devices)
	if err != nil {
		return nil, err
	}
	defer tgt.srv.Close()

	devs := make([]*device, o.devices)
	webPorts := freePorts(o.devices)
	start := time.Now()
	for i := range devs {
		d := &device{name: fmt.Sprintf("dev-%04d", i), web: fmt.Sprintf("127.0.0.1:%d", webPorts[i])}
		args := []string{
			"--storage.path=" + filepath.Join(dir, d.name),
			"--web.listen-address=" + d.web,
			"--remote-write.url=http://" + proxies[i%3].addr() + "/api/v1/receive",
			fmt.Sprintf("--remote-write.header=THANOS-TENANT=group-%d", i%o.groups),
			"--external-label=fleet_device=" + d.name, // not "device": host series have one (the disk, the interface)
			"--scrape.target=probe=" + tgt.url(i),
			"--scrape.interval=" + o.interval.String(),
			"--log.level=warn",
		}
		args = append(args, extra...)
		if d.cmd, err = running.start(filepath.Join(dir, d.name+".log"), o.ferry, args...); err != nil {
			return nil, err
		}
		devs[i] = d
	}
	defer func() {
		var cmds []*exec.Cmd
		for _, d := range devs {
			if d != nil {
				cmds = append(cmds, d.cmd)
			}
		}
		running.stopAll(cmds, 15*time.Second)
	}()
	r.startup = time.Since(start)

	// The pollers: every device's backlog, failures and RSS; the
	// receivers' ingest and answers.
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	var tUp time.Time
	var upMu sync.Mutex
	reconnected := func() time.Time { upMu.Lock(); defer upMu.Unlock(); return tUp }
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		pollDevices(pollCtx, devs, reconnected)
	}()
	ingest := &ingestStats{}
	ingestDone := make(chan struct{})
	go func() {
		defer close(ingestDone)
		ingest.poll(pollCtx, recvs, reconnected)
	}()

	if !sleepCtx(ctx, o.warmup) {
		return nil, ctx.Err()
	}
	log.Printf("fleet: %s: cut off for %s", mode, o.offline)
	setLink(false)
	if !sleepCtx(ctx, o.offline) {
		return nil, ctx.Err()
	}
	r.backlogAtUp = backlogSum(ctx, devs)
	upMu.Lock()
	tUp = time.Now()
	upMu.Unlock()
	setLink(true)
	log.Printf("fleet: %s: reconnected, backlog %d samples", mode, r.backlogAtUp)

	// One receiver node dies during the drain and comes back.
	go func() {
		if o.killAfter <= 0 || !sleepCtx(ctx, o.killAfter) {
			return
		}
		log.Printf("fleet: %s: killing receiver %s (SIGKILL)", mode, recvs[1].rwAddr)
		running.kill(recvs[1].cmd)
		if !sleepCtx(ctx, o.killFor) {
			return
		}
		if err := recvs[1].start(); err != nil {
			log.Printf("fleet: restarting the receiver: %v", err)
		}
		log.Printf("fleet: %s: receiver %s restarted", mode, recvs[1].rwAddr)
	}()

	deadline := tUp.Add(o.drainTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if allDrained(devs) && time.Since(tUp) > o.killAfter+o.killFor+10*time.Second {
			break
		}
		time.Sleep(time.Second)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	for _, d := range devs {
		d0 := d.drainedAt()
		if d0.IsZero() {
			r.undrained++
			continue
		}
		r.drainTimes = append(r.drainTimes, d0.Sub(tUp))
	}
	slices.Sort(r.drainTimes)
	log.Printf("fleet: %s: drained %d of %d devices", mode, len(r.drainTimes), o.devices)

	// Fresh data flows for a while, then the proxies take no new request,
	// so that what ferry counts as sent and what the receivers hold stay
	// put (a request cut in flight could be held and counted as unsent).
	sleepCtx(ctx, 2*o.interval)
	for _, p := range proxies {
		p.freeze()
	}
	tFreeze := time.Now()
	sleepCtx(ctx, 5*time.Second)
	stopPoll()
	<-pollDone
	<-ingestDone
	r.peakRate, r.peakAt, r.codes = ingest.peak, ingest.peakAt.Sub(tUp), ingest.codes
	finalCounters(ctx, devs)
	for _, d := range devs {
		r.rss = append(r.rss, d.maxRSS)
		r.retries += int64(d.final.sum("ferry_remote_write_failures_total"))
		r.sent += int64(d.final.sum("ferry_remote_write_samples_sent_total"))
		r.dupDropped += int64(d.final.sum("ferry_remote_write_dropped_samples_total", `reason="duplicate"`))
		r.rejected += int64(d.final.sum("ferry_remote_write_dropped_samples_total", `reason="rejected"`))
	}
	slices.Sort(r.rss)

	// Every receiver up again before the checks: the restarted one must
	// answer for its series too, and Query must have seen it again (it
	// looks at its endpoints every 5 s).
	for _, rc := range recvs {
		if err := waitReady(ctx, rc.httpAddr, 2*time.Minute); err != nil {
			return r, err
		}
	}
	sleepCtx(ctx, 10*time.Second)
	err = verify(ctx, o, r, queryHTTP, tgt, devs, start, tFreeze)
	return r, err
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

var devMu sync.Mutex

func (d *device) drainedAt() time.Time { devMu.Lock(); defer devMu.Unlock(); return d.drained }

func allDrained(devs []*device) bool {
	for _, d := range devs {
		if d.drainedAt().IsZero() {
			return false
		}
	}
	return true
}

// forEach runs f for every device, 16 at a time.
func forEach(devs []*device, f func(*device)) {
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, d := range devs {
		wg.Add(1)
		sem <- struct{}{}
		go func() { defer wg.Done(); defer func() { <-sem }(); f(d) }()
	}
	wg.Wait()
}

// backlog is what a device holds that the receiver does not have yet:
// committed blocks, and collections in memory not yet committed (a
// device caught up sends each collection from memory at once).
func backlog(e exposition) float64 {
	return e.sum("ferry_buffer_samples") + e.sum("ferry_buffer_head_samples")
}

// pollDevices looks at every device every 2 s until ctx ends: its
// resident memory, and after the reconnect whether it has a backlog. A
// device that builds one again (its receiver node killed) is drained only
// once that is delivered too.
func pollDevices(ctx context.Context, devs []*device, reconnected func() time.Time) {
	for ctx.Err() == nil {
		up := reconnected()
		forEach(devs, func(d *device) {
			rss := rssKiB(d.cmd.Process.Pid)
			devMu.Lock()
			d.maxRSS = max(d.maxRSS, rss)
			devMu.Unlock()
			if up.IsZero() {
				return
			}
			e, err := scrapeMetrics(ctx, d.web)
			if err != nil {
				return
			}
			devMu.Lock()
			defer devMu.Unlock()
			switch {
			case backlog(e) > 0:
				d.drained = time.Time{}
			case d.drained.IsZero():
				d.drained = time.Now()
			}
		})
		sleepCtx(ctx, 2*time.Second)
	}
}

func backlogSum(ctx context.Context, devs []*device) int64 {
	var mu sync.Mutex
	var total int64
	forEach(devs, func(d *device) {
		if e, err := scrapeMetrics(ctx, d.web); err == nil {
			mu.Lock()
			total += int64(backlog(e))
			mu.Unlock()
		}
	})
	return total
}

func finalCounters(ctx context.Context, devs []*device) {
	forEach(devs, func(d *device) {
		e, err := scrapeMetrics(ctx, d.web)
		if err != nil {
			log.Printf("fleet: %s: %v", d.name, err)
			e = exposition{}
		}
		devMu.Lock()
		d.final = e
		devMu.Unlock()
	})
}

// ingestStats follows the receivers: samples appended to their heads (each
// sample twice: replication factor 2) and the answers of their
// remote-write handler by status code, from the reconnect on.
type ingestStats struct {
	peak   float64 // samples/s, both replicas counted
	peakAt time.Time
	codes  map[string]float64
}

func (s *ingestStats) poll(ctx context.Context, recvs []*receiver, reconnected func() time.Time) {
	prev := make([]float64, len(recvs))
	prevT := make([]time.Time, len(recvs))
	prevCodes := make([]map[string]float64, len(recvs))
	s.codes = map[string]float64{}
	for ctx.Err() == nil {
		var rate float64
		for i, rc := range recvs {
			e, err := scrapeMetrics(ctx, rc.httpAddr)
			if err != nil {
				continue // down: its counters start from zero when back
			}
			now := time.Now()
			a := e.sum("prometheus_tsdb_head_samples_appended_total")
			if a < prev[i] {
				prev[i] = 0 // restarted
			}
			if !prevT[i].IsZero() {
				rate += (a - prev[i]) / now.Sub(prevT[i]).Seconds()
			}
			prev[i], prevT[i] = a, now
			codes := map[string]float64{}
			for k, v := range e {
				if strings.HasPrefix(k, "http_requests_total{") && strings.Contains(k, `handler="receive"`) {
					if j := strings.Index(k, `code="`); j >= 0 {
						c := k[j+6 : j+9]
						codes[c] += v
					}
				}
			}
			if !reconnected().IsZero() {
				for c, v := range codes {
					p := prevCodes[i][c]
					if v < p {
						p = 0
					}
					s.codes[c] += v - p
				}
			}
			prevCodes[i] = codes
		}
		if !reconnected().IsZero() && rate > s.peak {
			s.peak, s.peakAt = rate, time.Now()
		}
		sleepCtx(ctx, time.Second)
	}
}
