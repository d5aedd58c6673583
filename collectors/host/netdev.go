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

// netdevFields are the columns of /proc/net/dev after the interface name,
// in order, as node_exporter names them.
var netdevFields = [16]string{
	"receive_bytes", "receive_packets", "receive_errs", "receive_drop",
	"receive_fifo", "receive_frame", "receive_compressed", "receive_multicast",
	"transmit_bytes", "transmit_packets", "transmit_errs", "transmit_drop",
	"transmit_fifo", "transmit_colls", "transmit_carrier", "transmit_compressed",
}

var netdevDescs = func() (d [16]*collectors.Desc) {
	for i, f := range netdevFields {
		d[i] = collectors.NewDesc("node_network_"+f+"_total",
			"Network device statistic "+f+".", collectors.Counter, "device")
	}
	return d
}()

// netdevCollector reads /proc/net/dev, which node_exporter reads when
// --no-collector.netdev.netlink is given; same names, same values. Like
// node_exporter by default, it keeps every device, lo included.
type netdevCollector struct{ path string }

func newNetdev(p collectors.Paths) collectors.Collector {
	return &netdevCollector{path: filepath.Join(p.ProcFS, "net", "dev")}
}

func (c *netdevCollector) Collect(_ context.Context, out *collectors.Collection) error {
	devs, err := parseFile("netdev", c.path, parseNetdev)
	if err != nil {
		return err
	}
	for i, d := range netdevDescs {
		for _, dev := range devs {
			out.Add(d, dev.values[i], dev.name)
		}
	}
	return nil
}

type netdevStats struct {
	name   string
	values [16]float64
}

// parseNetdev reads /proc/net/dev: two header lines, then
// "  eth0: 1234 56 0 0 0 0 0 0 7890 12 0 0 0 0 0 0".
func parseNetdev(r io.Reader) ([]netdevStats, error) {
	var devs []netdevStats
	sc := bufio.NewScanner(r)
	for line := 0; sc.Scan(); line++ {
		if line < 2 {
			continue
		}
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			return nil, fmt.Errorf("line %d: no interface name", line+1)
		}
		fields := strings.Fields(rest)
		if len(fields) != 16 {
			return nil, fmt.Errorf("line %d: want 16 fields, got %d", line+1, len(fields))
		}
		dev := netdevStats{name: strings.TrimSpace(name)}
		for i, f := range fields {
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", line+1, err)
			}
			dev.values[i] = float64(v)
		}
		devs = append(devs, dev)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return devs, nil
}
