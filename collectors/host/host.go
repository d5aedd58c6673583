// Package host holds ferry's built-in host collectors. Each file is one
// collector with node_exporter's metric names, labels, types and help texts,
// so that existing node_exporter dashboards work on ferry's data.
package host

import (
	"fmt"
	"io"
	"os"

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
		// Off by default, as in node_exporter; on a router, --collector.wifi.
		{Name: "wifi", Help: "WiFi interfaces and their stations (nl80211 netlink)", DefaultEnabled: false, New: newWifi},
	}
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
