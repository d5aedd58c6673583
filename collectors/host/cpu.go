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

type cpuCollector struct{ paths collectors.Paths }

func newCPU(p collectors.Paths) collectors.Collector { return &cpuCollector{paths: p} }

func (c *cpuCollector) Collect(ctx context.Context, out *collectors.Collection) error {
	times, err := cpu.TimesWithContext(withPaths(ctx, c.paths), true)
	if err != nil {
		return fmt.Errorf("cpu: %w", err)
	}
	for _, t := range times {
		// gopsutil names CPUs "cpu0"; node_exporter's label is "0".
		id := strings.TrimPrefix(t.CPU, "cpu")
		for _, m := range []struct {
			mode  string
			value float64
		}{
			{"user", t.User}, {"nice", t.Nice}, {"system", t.System}, {"idle", t.Idle},
			{"iowait", t.Iowait}, {"irq", t.Irq}, {"softirq", t.Softirq}, {"steal", t.Steal},
		} {
			out.Add(cpuSecondsDesc, m.value, id, m.mode)
		}
		out.Add(cpuGuestSecondsDesc, t.Guest, id, "user")
		out.Add(cpuGuestSecondsDesc, t.GuestNice, id, "nice")
	}
	return nil
}
