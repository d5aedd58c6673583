package host

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/ferry-agent/ferry/collectors"
)

// natTrafficMaxPairs caps the source/destination pairs of one collection:
// the connection table of a busy router holds tens of thousands of
// connections, and each pair is a series.
const natTrafficMaxPairs = 1024

var (
	// prometheus-node-exporter-lua's family, read by OpenWrt router dashboards.
	natTrafficDesc = collectors.NewDesc("node_nat_traffic",
		"Bytes of the tracked connections from src to dest, both directions, while they are in the connection table.", collectors.Gauge,
		"src", "dest")
	natTrafficUnlistedEntriesDesc = collectors.NewDesc("node_nat_traffic_unlisted_entries",
		"Tracked connections left out of node_nat_traffic: their pair came after the first 1024.", collectors.Gauge)
	natTrafficUnlistedBytesDesc = collectors.NewDesc("node_nat_traffic_unlisted_bytes",
		"Bytes of the tracked connections left out of node_nat_traffic.", collectors.Gauge)
)

// natTrafficCollector sums, as prometheus-node-exporter-lua's nat_traffic
// does, the bytes of each connection in /proc/net/nf_conntrack by its
// original direction's source and destination. The kernel counts bytes
// only with net.netfilter.nf_conntrack_acct=1 (OpenWrt's default);
// without, every pair has 0.
type natTrafficCollector struct {
	path     string
	maxPairs int
}

func newNATTraffic(p collectors.Paths) collectors.Collector {
	return &natTrafficCollector{path: filepath.Join(p.ProcFS, "net", "nf_conntrack"), maxPairs: natTrafficMaxPairs}
}

type natPair struct{ src, dst string }

func (c *natTrafficCollector) Collect(ctx context.Context, out *collectors.Collection) error {
	f, err := os.Open(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // no connection tracking, or CONFIG_NF_CONNTRACK_PROCFS off
	}
	if err != nil {
		return fmt.Errorf("nat_traffic: %w", err)
	}
	defer f.Close()
	// Memory is bounded by the cap: a line is read into one buffer, and
	// only a pair's first sighting copies its addresses.
	sums := map[string]map[string]float64{}
	pairs, malformed := 0, 0
	var unlistedEntries, unlistedBytes float64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 4096) // a line is about 300 bytes
	for n := 0; sc.Scan(); n++ {
		if n%512 == 0 && ctx.Err() != nil {
			return fmt.Errorf("nat_traffic: %s: stopped after %d lines: %w", c.path, n, ctx.Err())
		}
		src, dst, b, ok := parseConntrackLine(sc.Bytes())
		if !ok {
			malformed++
			continue
		}
		bySrc := sums[string(src)]
		if _, seen := bySrc[string(dst)]; seen {
			bySrc[string(dst)] += b
			continue
		}
		if pairs >= c.maxPairs {
			unlistedEntries++
			unlistedBytes += b
			continue
		}
		if bySrc == nil {
			bySrc = map[string]float64{}
			sums[string(src)] = bySrc
		}
		bySrc[string(dst)] = b
		pairs++
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("nat_traffic: %s: %w", c.path, err)
	}
	list := make([]natPair, 0, pairs)
	for src, bySrc := range sums {
		for dst := range bySrc {
			list = append(list, natPair{src, dst})
		}
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].src != list[j].src {
			return list[i].src < list[j].src
		}
		return list[i].dst < list[j].dst
	})
	for _, p := range list {
		out.Add(natTrafficDesc, sums[p.src][p.dst], p.src, p.dst)
	}
	out.Add(natTrafficUnlistedEntriesDesc, unlistedEntries)
	out.Add(natTrafficUnlistedBytesDesc, unlistedBytes)
	if malformed > 0 {
		return fmt.Errorf("nat_traffic: %s: %d lines without src=, dst= or a valid bytes= skipped", c.path, malformed)
	}
	return nil
}

// parseConntrackLine finds, in a line of /proc/net/nf_conntrack, the first
// src= and dst= (the original direction) and the sum of its bytes= (both
// directions).
func parseConntrackLine(line []byte) (src, dst []byte, sum float64, ok bool) {
	for len(line) > 0 {
		var field []byte
		if i := bytes.IndexByte(line, ' '); i >= 0 {
			field, line = line[:i], line[i+1:]
		} else {
			field, line = line, nil
		}
		switch {
		case src == nil && bytes.HasPrefix(field, []byte("src=")):
			src = field[4:]
		case dst == nil && bytes.HasPrefix(field, []byte("dst=")):
			dst = field[4:]
		case bytes.HasPrefix(field, []byte("bytes=")):
			v, err := strconv.ParseUint(string(field[6:]), 10, 64)
			if err != nil {
				return nil, nil, 0, false
			}
			sum += float64(v)
		}
	}
	ok = len(src) > 0 && len(dst) > 0 && utf8.Valid(src) && utf8.Valid(dst)
	return src, dst, sum, ok
}
