package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The end-to-end test runs the real ferry binary against Debian's
// prometheus with its remote-write receiver, and checks through Prometheus'
// query API what arrived, across an outage of the receiver.

// needTool finds an external program. Under CI a missing one fails the run:
// a test that cannot run must not pass by skipping.
func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (scripts/test-deps.sh installs it)", name)
		}
		t.Skipf("%s is not installed; run scripts/test-deps.sh", name)
	}
	return path
}

// buildFerry compiles this package into a temporary binary, for the
// architecture the tests run as: under qemu-user (scripts/test-cross.sh
// sets FERRY_TEST_EXEC and GOARCH) it returns a wrapper that runs the ARM
// binary through the emulator, so that every end-to-end test runs ferry as
// a device would.
func buildFerry(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ferry")
	emulator := os.Getenv("FERRY_TEST_EXEC")
	target := bin
	if emulator != "" {
		target = bin + "-" + runtime.GOARCH
	}
	out, err := exec.Command("go", "build", "-o", target, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if emulator != "" {
		wrapper := fmt.Sprintf("#!/bin/sh\nexec %s %s \"$@\"\n", emulator, target)
		if err := os.WriteFile(bin, []byte(wrapper), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// process is a started program whose output goes to a log file that the
// test prints when it fails.
type process struct {
	cmd *exec.Cmd
	log string
}

func start(t *testing.T, name string, args ...string) *process {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), filepath.Base(name)+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, log: logPath}
	t.Cleanup(func() {
		p.stop(t)
		f.Close()
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("--- %s output:\n%s", filepath.Base(name), tail(string(data), 40))
		}
	})
	return p
}

// stop sends SIGTERM and waits; it reports the exit code (-1 if killed).
func (p *process) stop(t *testing.T) int {
	t.Helper()
	if p.cmd.ProcessState != nil {
		return p.cmd.ProcessState.ExitCode()
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
		t.Errorf("%s did not stop within 15 s of SIGINT", p.cmd.Path)
	}
	return p.cmd.ProcessState.ExitCode()
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// waitFor polls cond every 200 ms until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func httpOK(u string) bool {
	resp, err := http.Get(u)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// startReady starts ferry with args, listening on addr, and waits until it
// is ready.
func startReady(t *testing.T, bin, addr string, args ...string) *process {
	t.Helper()
	p := start(t, bin, append(args, "--web.listen-address="+addr)...)
	waitFor(t, 30*time.Second, "ferry to be ready", func() bool { return httpOK("http://" + addr + "/-/ready") })
	return p
}

// newestLoad1 returns the timestamp of the newest node_load1 at the
// Prometheus on addr, 0 if it has none.
func newestLoad1(t *testing.T, addr string) float64 {
	t.Helper()
	res := query(t, addr, `timestamp(node_load1{job="node"})`)
	if len(res) != 1 {
		return 0
	}
	return sampleValue(t, res[0].Value[1])
}

// startPrometheus runs a Prometheus that scrapes nothing and accepts
// remote write, on addr with its data in dir.
func startPrometheus(t *testing.T, bin, addr, dir string) *process {
	t.Helper()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr, "--web.enable-remote-write-receiver")
	waitFor(t, 60*time.Second, "prometheus to be ready", func() bool { return httpOK("http://" + addr + "/-/ready") })
	return p
}

type promSeries struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
	Values [][2]any          `json:"values"`
}

// query runs an instant query and returns its series.
func query(t *testing.T, addr, q string) []promSeries {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []promSeries `json:"result"`
		} `json:"data"`
	}
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		t.Fatalf("query %s: %s %v", q, body, err)
	}
	return r.Data.Result
}

func sampleValue(t *testing.T, v any) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(fmt.Sprint(v), 64)
	if err != nil {
		t.Fatalf("value %v: %v", v, err)
	}
	return f
}

// fakeProcfs makes a procfs with the host's real stat and meminfo but a
// fixed loadavg, so that the test knows the exact value node_load1 must have.
func fakeProcfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"stat", "meminfo"} {
		if err := os.Symlink("/proc/"+f, filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "loadavg"), []byte("0.42 0.33 0.25 1/123 4567\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func memTotalBytes(t *testing.T) float64 {
	t.Helper()
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 3 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseFloat(fields[1], 64)
			return kb * 1024
		}
	}
	t.Fatal("no MemTotal in /proc/meminfo")
	return 0
}

// TestEndToEndPrometheusWithOutage runs ferry at its defaults, as a user
// starts it, against a real Prometheus: fresh samples arrive within two
// intervals; through an outage of the receiver, during which ferry is
// killed with SIGKILL and started again, no collection is lost; after the
// outage fresh samples arrive within two intervals again; and a clean stop
// delivers what was collected last.
func TestEndToEndPrometheusWithOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; runs without -short")
	}
	const interval = 15 * time.Second // ferry's default
	promBin := needTool(t, "prometheus")
	ferryBin := buildFerry(t)
	promAddr, ferryAddr := freeAddr(t), freeAddr(t)
	promDir, dataDir, procfs := t.TempDir(), filepath.Join(t.TempDir(), "data"), fakeProcfs(t)
	startFerry := func() *process {
		return startReady(t, ferryBin, ferryAddr,
			"--remote-write.url=http://"+promAddr+"/api/v1/write",
			"--storage.path="+dataDir,
			"--external-label=site=e2e",
			"--path.procfs="+procfs, // a fixed load average, to check a value
		)
	}
	newest := func() float64 { return newestLoad1(t, promAddr) }
	// fresh waits until the receiver has a sample collected after from:
	// within two intervals of it, as the aim says.
	fresh := func(what string, from time.Time) {
		t.Helper()
		waitFor(t, 2*interval+5*time.Second, what, func() bool { return newest() >= float64(from.Unix()) })
	}

	prom := startPrometheus(t, promBin, promAddr, promDir)
	started := time.Now()
	ferry := startFerry()
	fresh("the first samples at the receiver", started)

	hostname, _ := os.Hostname()
	wantLabels := map[string]string{"job": "node", "instance": hostname, "site": "e2e"}
	for _, c := range []struct {
		metric string
		want   float64
	}{
		{"node_load1", 0.42},
		{"node_memory_MemTotal_bytes", memTotalBytes(t)},
	} {
		res := query(t, promAddr, c.metric)
		if len(res) != 1 {
			t.Fatalf("%s: %d series, want 1: %+v", c.metric, len(res), res)
		}
		for k, v := range wantLabels {
			if res[0].Metric[k] != v {
				t.Errorf("%s: label %s=%q, want %q (labels %v)", c.metric, k, res[0].Metric[k], v, res[0].Metric)
			}
		}
		if got := sampleValue(t, res[0].Value[1]); got != c.want {
			t.Errorf("%s = %v, want %v", c.metric, got, c.want)
		}
	}

	// Outage: the receiver goes away. Two collections later, once the
	// journal holds them, ferry is killed and started again; two more
	// collections, and the receiver comes back on the same data.
	outageStart := time.Now()
	if code := prom.stop(t); code != 0 {
		t.Fatalf("prometheus exited %d", code)
	}
	journal := filepath.Join(dataDir, "ferry.db.journal")
	journaled := func(n int) {
		t.Helper()
		sizes := 0
		var last int64
		waitFor(t, time.Duration(n+1)*interval, fmt.Sprintf("%d collections in the journal", n), func() bool {
			if fi, err := os.Stat(journal); err == nil && fi.Size() > last {
				last = fi.Size()
				sizes++
			}
			return sizes >= n
		})
	}
	journaled(2)
	if err := ferry.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = ferry.cmd.Wait()
	killedAt := time.Now()
	ferry = startFerry()
	journaled(2)
	outageEnd := time.Now()
	startPrometheus(t, promBin, promAddr, promDir)
	fresh("fresh samples after the outage", outageEnd)

	// Everything collected, before the kill and after it, arrived: the raw
	// samples from before the outage to after it have no gap above an
	// interval and a half (one lost collection would make two).
	window := time.Since(outageStart).Round(time.Second) + 2*interval
	res := query(t, promAddr, fmt.Sprintf(`node_load1{job="node"}[%ds]`, int(window.Seconds())))
	if len(res) != 1 {
		t.Fatalf("%d series of node_load1 over the outage", len(res))
	}
	var times []float64
	for _, v := range res[0].Values {
		times = append(times, sampleValue(t, v[0]))
	}
	if times[0] >= float64(outageStart.UnixMilli())/1000 {
		t.Fatalf("first sample at %v, want samples from before the outage at %v", times[0], outageStart)
	}
	for i := 1; i < len(times); i++ {
		if gap := times[i] - times[i-1]; gap > 1.5*interval.Seconds() {
			t.Errorf("gap of %.1f s at the receiver at %.0f (outage %d..%d, killed at %d)", gap, times[i-1], outageStart.Unix(), outageEnd.Unix(), killedAt.Unix())
		}
	}
	t.Logf("%d samples of node_load1 over %.0f s, outage of %.0f s with a SIGKILL", len(times), times[len(times)-1]-times[0], outageEnd.Sub(outageStart).Seconds())

	// A clean stop exits 0 (agent's TestStopDeliversOrCommitsWhatWasCollected
	// holds the stop to delivering, or committing, the last collection).
	before := newest()
	waitFor(t, 2*interval, "a new collection at the receiver", func() bool { return newest() > before })
	before = newest()
	if code := ferry.stop(t); code != 0 {
		t.Errorf("ferry exited %d after SIGINT, want 0", code)
	}
	if after := newest(); after < before {
		t.Errorf("newest sample %v after the stop, %v before", after, before)
	}
}
