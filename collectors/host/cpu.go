package host

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ferry-agent/ferry/collectors"
)

var (
	cpuSecondsDesc = collectors.NewDesc("node_cpu_seconds_total",
		"Seconds the CPUs spent in each mode.", collectors.Counter, "cpu", "mode")
	cpuGuestSecondsDesc = collectors.NewDesc("node_cpu_guest_seconds_total",
		"Seconds the CPUs spent in guests (VMs) for each mode.", collectors.Counter, "cpu", "mode")
)

// userHZ is the unit of /proc/stat's CPU times: the kernel reports them in
// USER_HZ ticks, 100 a second on every architecture Linux runs ferry on
// (it is part of the kernel's ABI, whatever its internal HZ).
const userHZ = 100

// cpuModes are /proc/stat's columns after "cpuN", in order (proc(5)).
var cpuModes = []string{"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice"}

// cpuCollector reads /proc/stat itself: gopsutil's parser cost ~60 KiB of
// flash for what is one loop over a file (README, size budget).
type cpuCollector struct{ paths collectors.Paths }

func newCPU(p collectors.Paths) collectors.Collector { return &cpuCollector{paths: p} }

// cpuTimes is one "cpuN" line of /proc/stat, in seconds.
type cpuTimes struct {
	id    string
	modes [10]float64 // in cpuModes' order; missing columns (old kernels) are 0
}

func (c *cpuCollector) Collect(ctx context.Context, out *collectors.Collection) error {
	times, err := parseFile("cpu", filepath.Join(c.paths.ProcFS, "stat"), parseCPUTimes)
	if err != nil {
		return err
	}
	// One family after the other: the text format wants a family's samples
	// together. user and nice include guest and guest_nice, as in the kernel
	// and node_exporter.
	for _, t := range times {
		for m, mode := range cpuModes[:8] {
			out.Add(cpuSecondsDesc, t.modes[m], t.id, mode)
		}
	}
	for _, t := range times {
		out.Add(cpuGuestSecondsDesc, t.modes[8], t.id, "user")
		out.Add(cpuGuestSecondsDesc, t.modes[9], t.id, "nice")
	}
	return nil
}

// parseCPUTimes reads the per-CPU lines of /proc/stat ("cpu0 ...", not the
// "cpu" total).
func parseCPUTimes(r io.Reader) ([]cpuTimes, error) {
	var out []cpuTimes
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20) // the intr line is long
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || !strings.HasPrefix(fields[0], "cpu") || fields[0] == "cpu" {
			continue
		}
		t := cpuTimes{id: strings.TrimPrefix(fields[0], "cpu")}
		if _, err := strconv.ParseUint(t.id, 10, 32); err != nil {
			return nil, fmt.Errorf("line %q: not a CPU number", fields[0])
		}
		for i, f := range fields[1:min(len(fields), 1+len(cpuModes))] {
			ticks, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: column %d: %w", fields[0], i+1, err)
			}
			t.modes[i] = float64(ticks) / userHZ
		}
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no cpuN lines")
	}
	return out, nil
}
