package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ferry-agent/ferry/collectors"
)

var (
	pressureCPUWaitingDesc = collectors.NewDesc("node_pressure_cpu_waiting_seconds_total",
		"Total time in seconds that processes have waited for CPU time", collectors.Counter)
	pressureIOWaitingDesc = collectors.NewDesc("node_pressure_io_waiting_seconds_total",
		"Total time in seconds that processes have waited due to IO congestion", collectors.Counter)
	pressureIOStalledDesc = collectors.NewDesc("node_pressure_io_stalled_seconds_total",
		"Total time in seconds no process could make progress due to IO congestion", collectors.Counter)
	pressureMemoryWaitingDesc = collectors.NewDesc("node_pressure_memory_waiting_seconds_total",
		"Total time in seconds that processes have waited for memory", collectors.Counter)
	pressureMemoryStalledDesc = collectors.NewDesc("node_pressure_memory_stalled_seconds_total",
		"Total time in seconds no process could make progress due to memory congestion", collectors.Counter)
)

// pressureFamilies are the lines of /proc/pressure/* that node_exporter
// exposes: "some" is waiting, "full" is stalled (not for cpu).
var pressureFamilies = []struct {
	resource, kind string
	desc           *collectors.Desc
}{
	{"cpu", "some", pressureCPUWaitingDesc},
	{"io", "some", pressureIOWaitingDesc},
	{"io", "full", pressureIOStalledDesc},
	{"memory", "some", pressureMemoryWaitingDesc},
	{"memory", "full", pressureMemoryStalledDesc},
}

// pressureCollector reads the kernel's pressure stall information
// (Documentation/accounting/psi.rst), present since Linux 4.20 with
// CONFIG_PSI.
type pressureCollector struct{ dir string }

func newPressure(p collectors.Paths) collectors.Collector {
	return &pressureCollector{dir: filepath.Join(p.ProcFS, "pressure")}
}

func (c *pressureCollector) Collect(_ context.Context, out *collectors.Collection) error {
	if _, err := os.Stat(c.dir); errors.Is(err, fs.ErrNotExist) {
		return nil // a kernel without PSI (before 4.20, or CONFIG_PSI off): nothing wrong
	}
	totals := map[string]map[string]float64{}
	for _, res := range []string{"cpu", "io", "memory"} {
		path := filepath.Join(c.dir, res)
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("pressure: %w", err)
		}
		t, err := parsePressure(string(data))
		if err != nil {
			return fmt.Errorf("pressure: %s: %w", path, err)
		}
		totals[res] = t
	}
	for _, f := range pressureFamilies {
		if v, ok := totals[f.resource][f.kind]; ok {
			out.Add(f.desc, v)
		}
	}
	return nil
}

// parsePressure reads "some avg10=0.00 avg60=0.00 avg300=0.00 total=123"
// lines and returns each line's total, microseconds, as seconds.
func parsePressure(s string) (map[string]float64, error) {
	totals := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		fields := strings.Fields(line)
		if len(fields) != 5 || (fields[0] != "some" && fields[0] != "full") {
			return nil, fmt.Errorf("malformed line %q", line)
		}
		raw, ok := strings.CutPrefix(fields[4], "total=")
		if !ok {
			return nil, fmt.Errorf("malformed line %q", line)
		}
		us, err := strconv.ParseUint(raw, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fields[0], err)
		}
		totals[fields[0]] = float64(us) / 1e6
	}
	return totals, nil
}
