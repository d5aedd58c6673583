package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"

	"github.com/ferry-agent/ferry/collectors"
)

var (
	conntrackEntriesDesc = collectors.NewDesc("node_nf_conntrack_entries",
		"Number of currently allocated flow entries for connection tracking.", collectors.Gauge)
	conntrackLimitDesc = collectors.NewDesc("node_nf_conntrack_entries_limit",
		"Maximum size of connection tracking table.", collectors.Gauge)
)

// conntrackStats are the columns of /proc/net/stat/nf_conntrack that
// node_exporter sums over the CPUs, by position: the header's names
// changed between kernels (searched became clashres), the positions did
// not. node_exporter calls them gauges, though they only grow.
var conntrackStats = []struct {
	column int
	desc   *collectors.Desc
}{
	{2, conntrackStatDesc("found", "Number of searched entries which were successful.")},
	{4, conntrackStatDesc("invalid", "Number of packets seen which can not be tracked.")},
	{5, conntrackStatDesc("ignore", "Number of packets seen which are already connected to a conntrack entry.")},
	{8, conntrackStatDesc("insert", "Number of entries inserted into the list.")},
	{9, conntrackStatDesc("insert_failed", "Number of entries for which list insertion was attempted but failed.")},
	{10, conntrackStatDesc("drop", "Number of packets dropped due to conntrack failure.")},
	{11, conntrackStatDesc("early_drop", "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached.")},
	{16, conntrackStatDesc("search_restart", "Number of conntrack table lookups which had to be restarted due to hashtable resizes.")},
}

func conntrackStatDesc(name, help string) *collectors.Desc {
	return collectors.NewDesc("node_nf_conntrack_stat_"+name, help, collectors.Gauge)
}

type conntrackCollector struct{ count, max, stat string }

func newConntrack(p collectors.Paths) collectors.Collector {
	dir := filepath.Join(p.ProcFS, "sys", "net", "netfilter")
	return &conntrackCollector{
		count: filepath.Join(dir, "nf_conntrack_count"),
		max:   filepath.Join(dir, "nf_conntrack_max"),
		stat:  filepath.Join(p.ProcFS, "net", "stat", "nf_conntrack"),
	}
}

func (c *conntrackCollector) Collect(_ context.Context, out *collectors.Collection) error {
	entries, err := readUint("conntrack", c.count)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // no connection tracking in this kernel (a bridge, an access point): nothing wrong
	}
	if err != nil {
		return err
	}
	limit, err := readUint("conntrack", c.max)
	if err != nil {
		return err
	}
	out.Add(conntrackEntriesDesc, entries)
	out.Add(conntrackLimitDesc, limit)
	// Per-CPU lines after a header. Kernels before 2.6.35 have 16 columns,
	// without search_restart; later ones 17.
	sums := make([]float64, len(conntrackStats))
	err = readFields("conntrack", c.stat, func(line int, fields []string) error {
		if line == 1 {
			return nil
		}
		if len(fields) != 16 && len(fields) != 17 {
			return fmt.Errorf("want 16 or 17 columns, got %d", len(fields))
		}
		for i, s := range conntrackStats {
			if s.column < len(fields) {
				v, err := strconv.ParseUint(fields[s.column], 16, 64)
				if err != nil {
					return err
				}
				sums[i] += float64(v)
			}
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil // CONFIG_NF_CONNTRACK_PROCFS off: no statistics
	}
	if err != nil {
		return err
	}
	for i, s := range conntrackStats {
		out.Add(s.desc, sums[i])
	}
	return nil
}
