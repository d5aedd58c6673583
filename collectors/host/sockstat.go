package host

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
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

func (c *sockstatCollector) Collect(_ context.Context, out *collectors.Collection) error {
	pageSize := float64(os.Getpagesize())
	for _, path := range c.paths {
		lines, err := parseFile("sockstat", path, parseSockstat)
		if errors.Is(err, fs.ErrNotExist) {
			continue // IPv6 (or IPv4) not in this kernel
		}
		if err != nil {
			return err
		}
		for _, l := range lines {
			if l.proto == "sockets" {
				// Only IPv4's file has it; node_exporter takes it from there.
				if v, ok := l.values["used"]; ok && path == c.paths[0] {
					out.Add(sockstatUsedDesc, v)
				}
				continue
			}
			for _, k := range sockstatKeys {
				v, ok := l.values[k]
				if !ok && k != "inuse" {
					continue
				}
				c.add(out, l.proto, k, v)
			}
			if v, ok := l.values["mem"]; ok {
				c.add(out, l.proto, "mem_bytes", v*pageSize)
			}
		}
	}
	return nil
}

func (c *sockstatCollector) add(out *collectors.Collection, proto, key string, v float64) {
	name := "node_sockstat_" + proto + "_" + key
	out.Add(c.descs.get(name, "Number of "+proto+" sockets in state "+key+".", collectors.Gauge), v)
}

type sockstatLine struct {
	proto  string
	values map[string]float64
}

// parseSockstat reads lines like "TCP: inuse 9 orphan 0 tw 2 alloc 12 mem 2".
func parseSockstat(r io.Reader) ([]sockstatLine, error) {
	var lines []sockstatLine
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || len(fields)%2 == 0 || !strings.HasSuffix(fields[0], ":") {
			return nil, fmt.Errorf("line %d: not \"PROTOCOL: key value ...\": %q", n, sc.Text())
		}
		l := sockstatLine{proto: strings.TrimSuffix(fields[0], ":"), values: map[string]float64{}}
		if !validNamePart(l.proto) {
			return nil, fmt.Errorf("line %d: protocol %q", n, l.proto)
		}
		for i := 1; i < len(fields); i += 2 {
			v, err := parseInt(fields[i+1])
			if err != nil {
				return nil, fmt.Errorf("line %d: %s: %w", n, fields[i], err)
			}
			l.values[fields[i]] = v
		}
		lines = append(lines, l)
	}
	return lines, sc.Err()
}
