package host

import (
	"context"
	"fmt"
	"strings"

	"github.com/shirou/gopsutil/v4/cpu"

	"github.com/ferry-agent/ferry/collectors"
)

var (
	cpuSecondsDesc = collectors.NewDesc("node_cpu_seconds_total",
		"Seconds the CPUs spent in each mode.", collectors.Counter, "cpu", "mode")
	cpuGuestSecondsDesc = collectors.NewDesc("node_cpu_guest_seconds_total",
		"Seconds the CPUs spent in guests (VMs) for each mode.", collectors.Counter, "cpu", "mode")
)

type cpuCollector struct {
	paths collectors.Paths
	stat  *cpu.ExLinux
}

func newCPU(p collectors.Paths) collectors.Collector {
	return &cpuCollector{paths: p, stat: cpu.NewExLinux()}
}

func (c *cpuCollector) Collect(ctx context.Context, out *collectors.Collection) error {
	// ExLinux reports an unreadable or malformed /proc/stat; cpu.Times
	// returns an empty list for both.
	rows, err := c.stat.TimesWithContext(withPaths(ctx, c.paths), true)
	if err != nil {
		return fmt.Errorf("cpu: %w", err)
	}
	times := make([]cpu.TimesStat, len(rows))
	for i, r := range rows {
		times[i] = r.ToTimesStat()
	}
	// One family after the other: the text format wants a family's samples
	// together.
	for _, t := range times {
		id := cpuID(t)
		for _, m := range []struct {
			mode  string
			value float64
		}{
			{"user", t.User}, {"nice", t.Nice}, {"system", t.System}, {"idle", t.Idle},
			{"iowait", t.Iowait}, {"irq", t.Irq}, {"softirq", t.Softirq}, {"steal", t.Steal},
		} {
			out.Add(cpuSecondsDesc, m.value, id, m.mode)
		}
	}
	for _, t := range times {
		out.Add(cpuGuestSecondsDesc, t.Guest, cpuID(t), "user")
		out.Add(cpuGuestSecondsDesc, t.GuestNice, cpuID(t), "nice")
	}
	return nil
}

// cpuID turns gopsutil's "cpu0" into node_exporter's label value "0".
func cpuID(t cpu.TimesStat) string { return strings.TrimPrefix(t.CPU, "cpu") }
