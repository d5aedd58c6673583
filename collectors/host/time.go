package host

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferry-agent/ferry/collectors"
)

var (
	timeSecondsDesc = collectors.NewDesc("node_time_seconds",
		"System time in seconds since epoch (1970).", collectors.Gauge)
	timeZoneOffsetDesc = collectors.NewDesc("node_time_zone_offset_seconds",
		"System time zone offset in seconds.", collectors.Gauge, "time_zone")
	clocksourceAvailableDesc = collectors.NewDesc("node_time_clocksource_available_info",
		"Available clocksources read from '/sys/devices/system/clocksource'.", collectors.Gauge, "clocksource", "device")
	clocksourceCurrentDesc = collectors.NewDesc("node_time_clocksource_current_info",
		"Current clocksource read from '/sys/devices/system/clocksource'.", collectors.Gauge, "clocksource", "device")
)

type timeCollector struct {
	paths collectors.Paths
	now   func() time.Time // replaced in tests
}

func newTime(p collectors.Paths) collectors.Collector {
	return &timeCollector{paths: p, now: time.Now}
}

func (c *timeCollector) Collect(_ context.Context, out *collectors.Collection) error {
	now := c.now()
	out.Add(timeSecondsDesc, float64(now.UnixNano())/1e9)
	zone, offset := now.Zone()
	out.Add(timeZoneOffsetDesc, float64(offset), zone)

	// The clock sources are a nicety: boards without them still get the time.
	dirs, _ := filepath.Glob(filepath.Join(c.paths.SysFS, "devices", "system", "clocksource", "clocksource[0-9]*"))
	type source struct{ available, current []string }
	sources := make([]source, len(dirs))
	for i, dir := range dirs {
		avail, err := os.ReadFile(filepath.Join(dir, "available_clocksource"))
		if err != nil {
			return fmt.Errorf("time: %w", err)
		}
		cur, err := os.ReadFile(filepath.Join(dir, "current_clocksource"))
		if err != nil {
			return fmt.Errorf("time: %w", err)
		}
		sources[i] = source{strings.Fields(string(avail)), strings.Fields(string(cur))}
	}
	for i, dir := range dirs {
		for _, s := range sources[i].available {
			out.Add(clocksourceAvailableDesc, 1, s, strings.TrimPrefix(filepath.Base(dir), "clocksource"))
		}
	}
	for i, dir := range dirs {
		for _, s := range sources[i].current {
			out.Add(clocksourceCurrentDesc, 1, s, strings.TrimPrefix(filepath.Base(dir), "clocksource"))
		}
	}
	return nil
}
