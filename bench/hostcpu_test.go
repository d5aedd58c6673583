package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-agent/ferry/collectors"
	"github.com/ferry-agent/ferry/collectors/host"
)

// BenchmarkHostCPUAgainstNodeExporter measures, on the same host in the same
// run, the CPU time of one full host collection by ferry and of one scrape
// of Debian's node_exporter running the same collectors. node_exporter's
// scrape includes its text encoding, so ferry's is measured with it too.
// The aim: ferry at most half of node_exporter's CPU per cycle.
//
//	go test -run '^$' -bench HostCPUAgainstNodeExporter -benchtime 300x ./bench/
func BenchmarkHostCPUAgainstNodeExporter(b *testing.B) {
	bin, err := exec.LookPath("prometheus-node-exporter")
	if err != nil {
		if os.Getenv("CI") == "true" {
			b.Fatalf("prometheus-node-exporter not installed (apt-get install prometheus-node-exporter): %v", err)
		}
		b.Skipf("prometheus-node-exporter not installed: %v", err)
	}
	// Only the collectors both have: ferry's router ones (openwrt, ...)
	// carry the router exporter's names, which node_exporter lacks.
	help, _ := exec.Command(bin, "--help").CombinedOutput()
	var entries []collectors.Entry
	args := []string{"--collector.disable-defaults", "--no-collector.netdev.netlink"}
	for _, e := range host.Collectors() {
		if e.DefaultEnabled && strings.Contains(string(help), "--collector."+e.Name+" ") {
			entries = append(entries, e)
			args = append(args, "--collector."+e.Name)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, append(args, "--web.listen-address="+addr)...)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	url := "http://" + addr + "/metrics"
	// Like Prometheus' scraper: the text format, without compression.
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	scrape := func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); scrape() != nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("node_exporter not ready")
		}
	}

	paths := collectors.Paths{ProcFS: "/proc", SysFS: "/sys", RootFS: "/"}
	var cols []collectors.Collector
	for _, e := range entries {
		cols = append(cols, e.New(paths))
	}
	var buf bytes.Buffer
	ferryCycle := func() {
		var c collectors.Collection
		for _, col := range cols {
			col.Collect(context.Background(), &c) // a board without hwmon still counts
		}
		buf.Reset()
		if err := collectors.WriteText(&buf, &c); err != nil {
			b.Fatal(err)
		}
	}
	ferryCycle() // warm up both sides: first reads, first allocations
	scrape()

	b.ResetTimer()
	selfBefore := selfCPU(b)
	for range b.N {
		ferryCycle()
	}
	ferry := selfCPU(b) - selfBefore

	neBefore := processCPU(b, cmd.Process.Pid)
	for range b.N {
		if err := scrape(); err != nil {
			b.Fatal(err)
		}
	}
	ne := processCPU(b, cmd.Process.Pid) - neBefore
	b.StopTimer()

	b.ReportMetric(float64(ferry.Nanoseconds())/float64(b.N), "ferry-cpu-ns/cycle")
	b.ReportMetric(float64(ne.Nanoseconds())/float64(b.N), "node_exporter-cpu-ns/cycle")
	if ne > 0 {
		b.ReportMetric(float64(ferry)/float64(ne), "ferry/node_exporter")
	}
}

// selfCPU is this process's user and system time.
func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processCPU is another process's user and system time, from
// /proc/PID/stat in clock ticks (USER_HZ, 100 on Linux): 10 ms resolution,
// so the benchmark needs a few hundred scrapes.
func processCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name, which may contain spaces.
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %v %v", pid, err1, err2)
	}
	return time.Duration(utime+stime) * (time.Second / 100)
}
