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
	for _, v := range values {
		d := c.descs.get("node_vmstat_"+v.name, "/proc/vmstat information field "+v.name+".", collectors.Untyped)
		out.Add(d, v.value)
	}
	return nil
}

type vmstatValue struct {
	name  string
	value float64
}

// parseVmstat returns the lines "name value" of /proc/vmstat whose name
// vmstatFields selects, in the file's order.
func parseVmstat(r io.Reader) ([]vmstatValue, error) {
	var out []vmstatValue
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || !validNamePart(f[0]) {
			return nil, fmt.Errorf("line %d: not \"name value\": %q", line, sc.Text())
		}
		if !vmstatFields.MatchString(f[0]) || seen[f[0]] {
			continue
		}
		v, err := parseInt(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		seen[f[0]] = true
		out = append(out, vmstatValue{f[0], v})
	}
	return out, sc.Err()
}
