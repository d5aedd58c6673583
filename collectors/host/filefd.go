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

var (
	filefdAllocatedDesc = collectors.NewDesc("node_filefd_allocated",
		"File descriptor statistics: allocated.", collectors.Gauge)
	filefdMaximumDesc = collectors.NewDesc("node_filefd_maximum",
		"File descriptor statistics: maximum.", collectors.Gauge)
)

type filefdCollector struct{ path string }

func newFilefd(p collectors.Paths) collectors.Collector {
	return &filefdCollector{path: filepath.Join(p.ProcFS, "sys", "fs", "file-nr")}
}

// Collect reads file-nr: allocated, free (always 0 since Linux 2.6), maximum.
func (c *filefdCollector) Collect(_ context.Context, out *collectors.Collection) error {
	data, err := os.ReadFile(c.path)
	if err != nil {
		return fmt.Errorf("filefd: %w", err)
	}
	fields := strings.Fields(string(data))
	if len(fields) != 3 {
		return fmt.Errorf("filefd: %s: want 3 fields, got %d", c.path, len(fields))
	}
	var v [3]float64
	for i, f := range fields {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return fmt.Errorf("filefd: %s: %w", c.path, err)
		}
		v[i] = float64(n)
	}
	out.Add(filefdAllocatedDesc, v[0])
	out.Add(filefdMaximumDesc, v[2])
	return nil
}
