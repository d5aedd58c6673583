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

// meminfoCollector reads /proc/meminfo itself rather than through gopsutil:
// node_exporter emits every field of the file, gopsutil only a subset.
type meminfoCollector struct {
	path  string
	descs descCache
}

func newMeminfo(p collectors.Paths) collectors.Collector {
	return &meminfoCollector{path: filepath.Join(p.ProcFS, "meminfo"), descs: descCache{}}
}

func (c *meminfoCollector) Collect(_ context.Context, out *collectors.Collection) error {
	fields, err := parseFile("meminfo", c.path, parseMeminfo)
	if err != nil {
		return err
	}
	for _, fv := range fields {
		help := "Memory information field " + strings.TrimPrefix(fv.name, "node_memory_") + "."
		out.Add(c.descs.get(fv.name, help, collectors.Gauge), fv.value)
	}
	return nil
}

type meminfoField struct {
	name  string  // node_exporter's metric name, e.g. "node_memory_Active_anon_bytes"
	value float64 // in bytes, or a count for fields without a unit
}

// meminfoName turns a field's name into node_exporter's: "Active(anon)"
// becomes "Active_anon". Built once: a Replacer's first use builds its
// tables, some KiB a collection if made per field.
var meminfoName = strings.NewReplacer("(", "_", ")", "")

// parseMeminfo turns lines like "Active(anon):   123 kB" into node_exporter's
// metrics: parentheses become underscores, kB fields are scaled to bytes and
// get the _bytes suffix, unitless fields (HugePages_Total) keep their name.
func parseMeminfo(r io.Reader) ([]meminfoField, error) {
	var fields []meminfoField
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		parts := strings.Fields(sc.Text())
		if len(parts) < 2 {
			continue
		}
		key := strings.TrimSuffix(parts[0], ":")
		v, err := strconv.ParseFloat(parts[1], 64)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", key, err)
		}
		name := meminfoName.Replace(key)
		switch {
		case len(parts) == 3 && parts[2] == "kB":
			v *= 1024
			name = "node_memory_" + name + "_bytes"
		case len(parts) == 2:
			name = "node_memory_" + name
		default:
			return nil, fmt.Errorf("field %s: unknown unit %q", key, parts[2])
		}
		fields = append(fields, meminfoField{name: name, value: v})
	}
	return fields, sc.Err()
}
