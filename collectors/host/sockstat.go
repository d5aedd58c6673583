package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferry-agent/ferry/collectors"
)

var sockstatUsedDesc = collectors.NewDesc("node_sockstat_sockets_used",
	"Number of IPv4 sockets in use.", collectors.Gauge)

// sockstatKeys are the per-protocol values node_exporter exports, in its
// order; inuse always, the others where the line has them. Memory counted
// in pages (mem) is also exported in bytes (mem_bytes).
var sockstatKeys = []string{"inuse", "orphan", "tw", "alloc", "mem", "memory"}

type sockstatCollector struct {
	paths [2]string // IPv4's, IPv6's
	descs descCache
}

func newSockstat(p collectors.Paths) collectors.Collector {
	return &sockstatCollector{
		paths: [2]string{filepath.Join(p.ProcFS, "net", "sockstat"), filepath.Join(p.ProcFS, "net", "sockstat6")},
		descs: descCache{},
	}
}

// Collect reads lines like "TCP: inuse 9 orphan 0 tw 2 alloc 12 mem 2".
func (c *sockstatCollector) Collect(_ context.Context, out *collectors.Collection) error {
	pageSize := float64(os.Getpagesize())
	for i, path := range c.paths {
		err := readFields("sockstat", path, func(_ int, f []string) error {
			if len(f) < 3 || len(f)%2 == 0 || !strings.HasSuffix(f[0], ":") || !validNamePart(strings.TrimSuffix(f[0], ":")) {
				return fmt.Errorf("not \"PROTOCOL: key value ...\": %q", strings.Join(f, " "))
			}
			proto := strings.TrimSuffix(f[0], ":")
			values := map[string]float64{}
			for k := 1; k < len(f); k += 2 {
				v, err := parseInt(f[k+1])
				if err != nil {
					return fmt.Errorf("%s %s: %w", proto, f[k], err)
				}
				values[f[k]] = v
			}
			if proto == "sockets" {
				// Only IPv4's file has it; node_exporter takes it from there.
				if v, ok := values["used"]; ok && i == 0 {
					out.Add(sockstatUsedDesc, v)
				}
				return nil
			}
			for _, k := range sockstatKeys {
				if v, ok := values[k]; ok || k == "inuse" {
					c.add(out, proto, k, v)
				}
			}
			if v, ok := values["mem"]; ok {
				c.add(out, proto, "mem_bytes", v*pageSize)
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) { // no IPv6 (or IPv4) in this kernel: nothing wrong
			return err
		}
	}
	return nil
}

func (c *sockstatCollector) add(out *collectors.Collection, proto, key string, v float64) {
	name := "node_sockstat_" + proto + "_" + key
	out.Add(c.descs.get(name, "Number of "+proto+" sockets in state "+key+".", collectors.Gauge), v)
}
