package host

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/ferry-agent/ferry/collectors"
)

// diskstatsExclude is node_exporter's default
// --collector.diskstats.device-exclude (1.5): RAM disks, loop and floppy
// devices, and partitions of sd, hd, vd, xvd and NVMe disks. mmcblk0p1 is
// kept, as node_exporter keeps it.
var diskstatsExclude = regexp.MustCompile(`^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$`)

// diskSectorSize is the unit of the sector fields of /proc/diskstats,
// 512 bytes whatever the device's own sector size.
const diskSectorSize = 512

// diskstatsField is one column of /proc/diskstats (Documentation/admin-guide/iostats.rst),
// counted from the first statistic after the device name.
type diskstatsField struct {
	desc  *collectors.Desc
	scale float64
}

func diskDesc(name, help string, typ collectors.Type) *collectors.Desc {
	return collectors.NewDesc("node_disk_"+name, help, typ, "device")
}

var diskstatsFields = []diskstatsField{
	{diskDesc("reads_completed_total", "The total number of reads completed successfully.", collectors.Counter), 1},
	{diskDesc("reads_merged_total", "The total number of reads merged.", collectors.Counter), 1},
	{diskDesc("read_bytes_total", "The total number of bytes read successfully.", collectors.Counter), diskSectorSize},
	{diskDesc("read_time_seconds_total", "The total number of seconds spent by all reads.", collectors.Counter), 0.001},
	{diskDesc("writes_completed_total", "The total number of writes completed successfully.", collectors.Counter), 1},
	{diskDesc("writes_merged_total", "The number of writes merged.", collectors.Counter), 1},
	{diskDesc("written_bytes_total", "The total number of bytes written successfully.", collectors.Counter), diskSectorSize},
	{diskDesc("write_time_seconds_total", "This is the total number of seconds spent by all writes.", collectors.Counter), 0.001},
	{diskDesc("io_now", "The number of I/Os currently in progress.", collectors.Gauge), 1},
	{diskDesc("io_time_seconds_total", "Total seconds spent doing I/Os.", collectors.Counter), 0.001},
	{diskDesc("io_time_weighted_seconds_total", "The weighted # of seconds spent doing I/Os.", collectors.Counter), 0.001},
	// Linux 4.18 and later.
	{diskDesc("discards_completed_total", "The total number of discards completed successfully.", collectors.Counter), 1},
	{diskDesc("discards_merged_total", "The total number of discards merged.", collectors.Counter), 1},
	{diskDesc("discarded_sectors_total", "The total number of sectors discarded successfully.", collectors.Counter), 1},
	{diskDesc("discard_time_seconds_total", "This is the total number of seconds spent by all discards.", collectors.Counter), 0.001},
	// Linux 5.5 and later.
	{diskDesc("flush_requests_total", "The total number of flush requests completed successfully", collectors.Counter), 1},
	{diskDesc("flush_requests_time_seconds_total", "This is the total number of seconds spent by all flush requests.", collectors.Counter), 0.001},
}

var diskInfoDesc = collectors.NewDesc("node_disk_info",
	"Info of /sys/block/<block_device>.", collectors.Gauge,
	"device", "major", "minor", "path", "wwn", "model", "serial", "revision")

type diskstatsCollector struct {
	path    string
	udevDir string // udev's database: /run/udev/data, absent on OpenWrt
}

func newDiskstats(p collectors.Paths) collectors.Collector {
	return &diskstatsCollector{
		path:    filepath.Join(p.ProcFS, "diskstats"),
		udevDir: filepath.Join(p.RootFS, "run", "udev", "data"),
	}
}

func (c *diskstatsCollector) Collect(_ context.Context, out *collectors.Collection) error {
	disks, err := parseFile("diskstats", c.path, parseDiskstats)
	if err != nil {
		return err
	}
	for _, d := range disks {
		// Like node_exporter: a device that udev does not know (no udev
		// on the board) still has its info series, with only the numbers.
		u := readUdevProperties(filepath.Join(c.udevDir, "b"+d.major+":"+d.minor))
		serial := u["SCSI_IDENT_SERIAL"] // the serial printed on the disk's label
		if serial == "" {
			serial = u["ID_SERIAL_SHORT"]
		}
		out.Add(diskInfoDesc, 1, d.name, d.major, d.minor, u["ID_PATH"], u["ID_WWN"], u["ID_MODEL"], serial, u["ID_REVISION"])
	}
	for i, fd := range diskstatsFields {
		for _, d := range disks {
			if i < len(d.values) { // older kernels have fewer columns
				out.Add(fd.desc, d.values[i]*fd.scale, d.name)
			}
		}
	}
	return nil
}

type diskStats struct {
	name, major, minor string
	values             []float64
}

// parseDiskstats reads /proc/diskstats: major, minor, name, then 11, 15 or
// 17 counters depending on the kernel. Excluded devices are left out.
func parseDiskstats(r io.Reader) ([]diskStats, error) {
	var disks []diskStats
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) < 3+11 {
			return nil, fmt.Errorf("line %d: want at least 14 fields, got %d", line, len(fields))
		}
		for _, n := range fields[:2] {
			if _, err := strconv.ParseUint(n, 10, 32); err != nil {
				return nil, fmt.Errorf("line %d: device number: %w", line, err)
			}
		}
		name := fields[2]
		if diskstatsExclude.MatchString(name) {
			continue
		}
		counters := fields[3:]
		if len(counters) > len(diskstatsFields) {
			counters = counters[:len(diskstatsFields)]
		}
		d := diskStats{name: name, major: fields[0], minor: fields[1], values: make([]float64, len(counters))}
		for i, f := range counters {
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", line, err)
			}
			d.values[i] = float64(v)
		}
		disks = append(disks, d)
	}
	return disks, sc.Err()
}

// readUdevProperties reads the properties ("E:KEY=value" lines) of udev's
// database file of one device. A missing or unreadable file has none.
func readUdevProperties(path string) map[string]string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	props := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if kv, ok := strings.CutPrefix(line, "E:"); ok {
			if k, v, ok := strings.Cut(kv, "="); ok {
				props[k] = v
			}
		}
	}
	return props
}
