package host

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/ferry-agent/ferry/collectors"
)

// vmstatFields is node_exporter's default --collector.vmstat.fields: paging
// and swapping, page faults, OOM kills, out of some 150 lines.
var vmstatFields = regexp.MustCompile(`^(oom_kill|pgpg|pswp|pg.*fault).*`)

type vmstatCollector struct {
	path  string
	descs descCache
}

func newVmstat(p collectors.Paths) collectors.Collector {
	return &vmstatCollector{path: filepath.Join(p.ProcFS, "vmstat"), descs: descCache{}}
}

func (c *vmstatCollector) Collect(_ context.Context, out *collectors.Collection) error {
	values, err := parseFile("vmstat", c.path, parseVmstat)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, v := range values {
		d := c.descs.getMatching(vmstatFields, v.name, newVmstatDesc)
		if d == nil || seen[v.name] {
			continue
		}
		seen[v.name] = true
		out.Add(d, v.value)
	}
	return nil
}

func newVmstatDesc(field string) *collectors.Desc {
	return collectors.NewDesc("node_vmstat_"+field, "/proc/vmstat information field "+field+".", collectors.Untyped)
}

type vmstatValue struct {
	name  string
	value float64
}

// parseVmstat reads the lines "name value" of /proc/vmstat, in order.
func parseVmstat(r io.Reader) ([]vmstatValue, error) {
	var out []vmstatValue
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || !validNamePart(f[0]) {
			return nil, fmt.Errorf("line %d: not \"name value\": %q", line, sc.Text())
		}
		v, err := parseInt(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, vmstatValue{f[0], v})
	}
	return out, sc.Err()
}
