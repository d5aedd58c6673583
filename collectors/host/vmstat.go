package host

import (
	"context"
	"fmt"
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
	descs descCache // by field; nil for fields the filter leaves out
}

func newVmstat(p collectors.Paths) collectors.Collector {
	return &vmstatCollector{path: filepath.Join(p.ProcFS, "vmstat"), descs: descCache{}}
}

func newVmstatDesc(field string) *collectors.Desc {
	return collectors.NewDesc("node_vmstat_"+field, "/proc/vmstat information field "+field+".", collectors.Untyped)
}

// Collect reads the lines "name value" of /proc/vmstat.
func (c *vmstatCollector) Collect(_ context.Context, out *collectors.Collection) error {
	seen := map[string]bool{}
	return readFields("vmstat", c.path, func(_ int, f []string) error {
		if len(f) != 2 || !validNamePart(f[0]) {
			return fmt.Errorf("not \"name value\": %q", strings.Join(f, " "))
		}
		v, err := parseInt(f[1])
		if err != nil {
			return err
		}
		if d := c.descs.getMatching(vmstatFields, f[0], newVmstatDesc); d != nil && !seen[f[0]] {
			seen[f[0]] = true
			out.Add(d, v)
		}
		return nil
	})
}
