package host

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ferry-agent/ferry/collectors"
)

var loadDescs = [3]*collectors.Desc{
	collectors.NewDesc("node_load1", "1m load average.", collectors.Gauge),
	collectors.NewDesc("node_load5", "5m load average.", collectors.Gauge),
	collectors.NewDesc("node_load15", "15m load average.", collectors.Gauge),
}

type loadavgCollector struct{ path string }

func newLoadavg(p collectors.Paths) collectors.Collector {
	return &loadavgCollector{path: filepath.Join(p.ProcFS, "loadavg")}
}

func (c *loadavgCollector) Collect(_ context.Context, out *collectors.Collection) error {
	data, err := os.ReadFile(c.path)
	if err != nil {
		return fmt.Errorf("loadavg: %w", err)
	}
	loads, err := parseLoadavg(string(data))
	if err != nil {
		return fmt.Errorf("loadavg: %s: %w", c.path, err)
	}
	for i, v := range loads {
		out.Add(loadDescs[i], v)
	}
	return nil
}

// parseLoadavg reads the first three fields of /proc/loadavg,
// e.g. "0.52 0.58 0.59 2/1234 5678".
func parseLoadavg(s string) ([3]float64, error) {
	var loads [3]float64
	fields := strings.Fields(s)
	if len(fields) < 3 {
		return loads, fmt.Errorf("want at least 3 fields, got %d", len(fields))
	}
	for i := range loads {
		v, err := strconv.ParseFloat(fields[i], 64)
		if err != nil {
			return loads, err
		}
		loads[i] = v
	}
	return loads, nil
}
