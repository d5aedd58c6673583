// Package host holds ferry's built-in host collectors. Each file is one
// collector with node_exporter's metric names, labels, types and help texts,
// so that existing node_exporter dashboards work on ferry's data.
package host

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/ferry-agent/ferry/collectors"
)

// Collectors lists every host collector, in the order their samples are
// collected. The agent turns this list into --collector.NAME flags.
func Collectors() []collectors.Entry {
	return []collectors.Entry{
		{Name: "cpu", Help: "CPU time per CPU and mode (/proc/stat)", DefaultEnabled: true, New: newCPU},
		{Name: "loadavg", Help: "load averages (/proc/loadavg)", DefaultEnabled: true, New: newLoadavg},
		{Name: "meminfo", Help: "memory statistics (/proc/meminfo)", DefaultEnabled: true, New: newMeminfo},
		{Name: "filesystem", Help: "filesystem space and inodes (mounts, statfs)", DefaultEnabled: true, New: newFilesystem},
		{Name: "netdev", Help: "network interface statistics (/proc/net/dev)", DefaultEnabled: true, New: newNetdev},
		{Name: "diskstats", Help: "disk I/O statistics (/proc/diskstats)", DefaultEnabled: true, New: newDiskstats},
		{Name: "stat", Help: "boot time, forks, context switches, interrupts (/proc/stat)", DefaultEnabled: true, New: newStat},
		{Name: "time", Help: "system time, time zone and clock source", DefaultEnabled: true, New: newTime},
		{Name: "uname", Help: "uname system call", DefaultEnabled: true, New: newUname},
		{Name: "os", Help: "OS release (/etc/os-release)", DefaultEnabled: true, New: newOS},
		{Name: "thermal_zone", Help: "thermal zone temperatures (/sys/class/thermal)", DefaultEnabled: true, New: newThermalZone},
		{Name: "hwmon", Help: "hardware monitor temperatures (/sys/class/hwmon)", DefaultEnabled: true, New: newHwmon},
		{Name: "pressure", Help: "pressure stall information (/proc/pressure)", DefaultEnabled: true, New: newPressure},
		{Name: "conntrack", Help: "connection tracking table use and statistics (/proc/sys/net/netfilter, /proc/net/stat/nf_conntrack)", DefaultEnabled: true, New: newConntrack},
		{Name: "entropy", Help: "kernel entropy pool (/proc/sys/kernel/random)", DefaultEnabled: true, New: newEntropy},
		{Name: "filefd", Help: "file descriptors allocated and maximum (/proc/sys/fs/file-nr)", DefaultEnabled: true, New: newFilefd},
		{Name: "sockstat", Help: "sockets in use per protocol (/proc/net/sockstat, sockstat6)", DefaultEnabled: true, New: newSockstat},
		{Name: "vmstat", Help: "paging, swapping, page faults, OOM kills (/proc/vmstat)", DefaultEnabled: true, New: newVmstat},
		// On in node_exporter; off here: some 40 series a collection.
		{Name: "netstat", Help: "IP, ICMP, TCP and UDP statistics (/proc/net/netstat, snmp, snmp6)", DefaultEnabled: false, New: newNetstat},
		{Name: "openwrt", Help: "OpenWrt release and board (/etc/openwrt_release, /tmp/sysinfo)", DefaultEnabled: true, New: newOpenWrt},
		// Off: it walks the whole connection table, and its series come and go with the peers.
		{Name: "nat_traffic", Help: "bytes per source and destination of tracked connections (/proc/net/nf_conntrack)", DefaultEnabled: false, New: newNATTraffic},
		// Off by default, as in node_exporter; on a router, --collector.wifi.
		{Name: "wifi", Help: "WiFi interfaces and their stations (nl80211 netlink)", DefaultEnabled: false, New: newWifi},
		{Name: "wifi_stations", Help: "WiFi stations with the router exporter's names (nl80211 netlink)", DefaultEnabled: false, New: newWifiStations},
	}
}

// readUint reads a file of the kernel's that holds one unsigned number,
// such as /proc/sys/fs/file-max.
func readUint(collector, path string) (float64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", collector, err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %s: %w", collector, path, err)
	}
	return float64(v), nil
}

// descCache holds the descriptors of families whose names come from the
// file read (meminfo, netstat, vmstat, sockstat), built on first sight.
// Not safe for concurrent use; each collector has its own.
type descCache map[string]*collectors.Desc

func (dc descCache) get(name, help string, typ collectors.Type) *collectors.Desc {
	d := dc[name]
	if d == nil {
		d = collectors.NewDesc(name, help, typ)
		dc[name] = d
	}
	return d
}

// getMatching is get for the families a field filter selects: nil when re
// does not match field. Both answers are kept, so that the filter runs once
// per field, not once per field and collection (the kernel's field names
// do not change while it runs).
// The cache is keyed by field; newDesc builds a field's descriptor.
func (dc descCache) getMatching(re *regexp.Regexp, field string, newDesc func(field string) *collectors.Desc) *collectors.Desc {
	d, ok := dc[field]
	if !ok {
		if re.MatchString(field) {
			d = newDesc(field)
		}
		dc[field] = d
	}
	return d
}

// readFields calls fn with the whitespace-separated fields of each line
// of a kernel file, numbered from 1, and stops at fn's first error. Errors
// are parseFile's, with the line.
func readFields(collector, path string, fn func(line int, fields []string) error) error {
	_, err := parseFile(collector, path, func(r io.Reader) (struct{}, error) {
		sc := bufio.NewScanner(r)
		for n := 1; sc.Scan(); n++ {
			if err := fn(n, strings.Fields(sc.Text())); err != nil {
				return struct{}{}, fmt.Errorf("line %d: %w", n, err)
			}
		}
		return struct{}{}, sc.Err()
	})
	return err
}

// parseFile opens a file of the kernel's and parses it. Errors name the
// collector, and the file when its content is malformed.
func parseFile[T any](collector, path string, parse func(io.Reader) (T, error)) (T, error) {
	f, err := os.Open(path)
	if err != nil {
		var zero T
		return zero, fmt.Errorf("%s: %w", collector, err)
	}
	defer f.Close()
	v, err := parse(f)
	if err != nil {
		return v, fmt.Errorf("%s: %s: %w", collector, path, err)
	}
	return v, nil
}

// validNamePart reports whether s, read from a kernel file, can be part of
// a metric name: letters, digits and underscores, not empty.
func validNamePart(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return s != ""
}

// parseInt reads a decimal integer of a kernel file: signed, or an
// unsigned 64-bit counter past 2^63.
func parseInt(s string) (float64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err == nil {
		return float64(v), nil
	}
	if u, uerr := strconv.ParseUint(s, 10, 64); uerr == nil {
		return float64(u), nil
	}
	return 0, err
}
