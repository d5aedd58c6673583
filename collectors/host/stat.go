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

// The families of node_exporter's stat collector, from the summary lines of
// /proc/stat (the per-CPU lines are the cpu collector's).
var (
	intrDesc = collectors.NewDesc("node_intr_total",
		"Total number of interrupts serviced.", collectors.Counter)
	contextSwitchesDesc = collectors.NewDesc("node_context_switches_total",
		"Total number of context switches.", collectors.Counter)
	forksDesc = collectors.NewDesc("node_forks_total",
		"Total number of forks.", collectors.Counter)
	bootTimeDesc = collectors.NewDesc("node_boot_time_seconds",
		"Node boot time, in unixtime.", collectors.Gauge)
	procsRunningDesc = collectors.NewDesc("node_procs_running",
		"Number of processes in runnable state.", collectors.Gauge)
	procsBlockedDesc = collectors.NewDesc("node_procs_blocked",
		"Number of processes blocked waiting for I/O to complete.", collectors.Gauge)
)

// statKeys maps the first word of a /proc/stat line to its family, in the
// order node_exporter emits them.
var statKeys = []struct {
	key  string
	desc *collectors.Desc
}{
	{"intr", intrDesc},
	{"ctxt", contextSwitchesDesc},
	{"processes", forksDesc},
	{"btime", bootTimeDesc},
	{"procs_running", procsRunningDesc},
	{"procs_blocked", procsBlockedDesc},
}

type statCollector struct{ path string }

func newStat(p collectors.Paths) collectors.Collector {
	return &statCollector{path: filepath.Join(p.ProcFS, "stat")}
}

func (c *statCollector) Collect(_ context.Context, out *collectors.Collection) error {
	values, err := parseFile("stat", c.path, parseStat)
	if err != nil {
		return err
	}
	for _, k := range statKeys {
		if v, ok := values[k.key]; ok {
			out.Add(k.desc, v)
		}
	}
	if _, ok := values["btime"]; !ok {
		return fmt.Errorf("stat: %s: no btime line", c.path)
	}
	return nil
}

// parseStat returns the first number of each line of /proc/stat whose key
// is in statKeys ("intr 123 0 4 ..." gives intr = 123, the total).
func parseStat(r io.Reader) (map[string]float64, error) {
	values := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20) // intr lines are long: the buffer grows from 4 KiB as they need
	for sc.Scan() {
		key, rest, _ := strings.Cut(sc.Text(), " ")
		for _, k := range statKeys {
			if k.key != key {
				continue
			}
			first, _, _ := strings.Cut(strings.TrimSpace(rest), " ")
			v, err := strconv.ParseUint(first, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
			values[key] = float64(v)
		}
	}
	return values, sc.Err()
}
