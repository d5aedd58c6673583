package host

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferry-agent/ferry/collectors"
)

// readsNoFile are the collectors that ask the kernel by system call or
// clock, so an empty procfs does not make them fail.
var readsNoFile = map[string]bool{"time": true, "uname": true, "wifi": true, "wifi_stations": true}

// optionalHardware are the collectors of things many boards or kernels do
// not have (no conntrack on an access point, no IPv4 or IPv6 sockets, not
// OpenWrt): their absence is no error, and yields no samples.
var optionalHardware = map[string]bool{"hwmon": true, "thermal_zone": true, "pressure": true,
	"conntrack": true, "sockstat": true, "openwrt": true, "nat_traffic": true}

// fixtureNow is the collection time of the golden files.
var fixtureNow = time.Date(2024, 6, 10, 12, 30, 0, 250e6, time.FixedZone("CEST", 2*3600))

// A fixture is a device's /proc, /sys and / under testdata, with what the
// collectors would learn from the kernel by system call.
type fixture struct {
	paths  collectors.Paths
	golden string             // under testdata
	statfs map[string]fsStats // by mount point; others fail like a dead server
	uname  utsname
	wifi   []fakeWifiInterface // nil: a kernel without nl80211
}

// piFixture is testdata/{proc,sys,root}: a Raspberry Pi class board running
// Debian, with an SD card, a USB disk and a dead NFS server.
var piFixture = &fixture{
	paths:  fixturePaths,
	golden: "host.golden",
	statfs: map[string]fsStats{
		"/":               {size: 31109140480, free: 24536350720, avail: 23210311680, files: 1933312, filesFree: 1781023},
		"/run":            {size: 805949440, free: 804614144, avail: 804614144, files: 819200, filesFree: 818421},
		"/run/lock":       {size: 5242880, free: 5226496, avail: 5226496, files: 980812, filesFree: 980809},
		"/boot/firmware":  {size: 535805952, free: 472150016, avail: 472150016},
		"/tmp":            {size: 1967370240, free: 1967259648, avail: 1967259648, files: 491842, filesFree: 491820},
		"/media/usb disk": {size: 61991632896, free: 40146001920, avail: 36995567616, files: 3784704, filesFree: 3770170},
	},
	uname: utsname{sysname: "Linux", release: "6.6.31+rpt-rpi-v8", version: "#1 SMP PREEMPT Debian 1:6.6.31-1+rpt1 (2024-05-29)",
		machine: "aarch64", nodename: "gateway-7", domainname: "(none)"},
}

// hooks replaces a collector's system calls and clock with the
// fixture's, so the golden file does not depend on the machine running it.
func (f *fixture) hooks(col collectors.Collector) {
	switch c := col.(type) {
	case *filesystemCollector:
		c.statfs = func(path string) (fsStats, error) {
			rel, err := filepath.Rel(f.paths.RootFS, path)
			if err != nil {
				return fsStats{}, err
			}
			st, ok := f.statfs[filepath.Join("/", rel)]
			if !ok {
				return fsStats{}, syscall.EHOSTDOWN
			}
			return st, nil
		}
	case *timeCollector:
		c.now = func() time.Time { return fixtureNow }
	case *unameCollector:
		c.uname = func() (utsname, error) { return f.uname, nil }
	case *wifiCollector:
		c.open = func() (netlinkSocket, error) { return &fakeNl80211{ifaces: f.wifi}, nil }
	}
}

func TestHostFixtureValues(t *testing.T) {
	c := collectAll(t, piFixture)
	got := map[string]float64{}
	for _, s := range c.Samples {
		got[s.Labels.String()] = s.V
	}
	fs := func(name, dev, typ, mp string) labels.Labels {
		return labels.FromStrings("__name__", name, "device", dev, "fstype", typ, "mountpoint", mp)
	}
	dev := func(name, device string) labels.Labels {
		return labels.FromStrings("__name__", name, "device", device)
	}
	for _, tc := range []struct {
		lset labels.Labels
		want float64
	}{
		{fs("node_filesystem_size_bytes", "/dev/root", "ext4", "/"), 31109140480},
		{fs("node_filesystem_avail_bytes", "/dev/root", "ext4", "/"), 23210311680},
		{fs("node_filesystem_files_free", "/dev/root", "ext4", "/"), 1781023},
		{fs("node_filesystem_readonly", "/dev/root", "ext4", "/"), 0},
		{fs("node_filesystem_device_error", "/dev/root", "ext4", "/"), 0},
		{fs("node_filesystem_readonly", "/dev/sda1", "ext4", "/media/usb disk"), 1},
		{fs("node_filesystem_free_bytes", "/dev/mmcblk0p1", "vfat", "/boot/firmware"), 472150016},
		{fs("node_filesystem_size_bytes", "tmpfs", "tmpfs", "/run/lock"), 5242880},
		{fs("node_filesystem_device_error", "nas:/export/logs", "nfs4", "/mnt/nfs"), 1},
		{dev("node_network_receive_bytes_total", "eth0"), 3907815402},
		{dev("node_network_receive_drop_total", "wlan0"), 310},
		{dev("node_network_receive_multicast_total", "eth0"), 18233},
		{dev("node_network_transmit_packets_total", "wlan0"), 61002},
		{dev("node_network_transmit_errs_total", "wlan0"), 3},
		{dev("node_network_receive_bytes_total", "lo"), 812340},
		{dev("node_disk_reads_completed_total", "mmcblk0"), 84211},
		{dev("node_disk_read_bytes_total", "mmcblk0"), 4312866 * 512},
		{dev("node_disk_written_bytes_total", "mmcblk0p2"), 13802310 * 512},
		{dev("node_disk_write_time_seconds_total", "mmcblk0"), 1620.510},
		{dev("node_disk_io_time_seconds_total", "mmcblk0"), 690.410},
		{dev("node_disk_io_time_weighted_seconds_total", "sda"), 4.430},
		{dev("node_disk_discarded_sectors_total", "mmcblk0"), 98304},
		{dev("node_disk_flush_requests_total", "mmcblk0"), 41022},
		{dev("node_disk_flush_requests_time_seconds_total", "mmcblk0"), 19.720},
		{dev("node_disk_discards_completed_total", "zram0"), 0},
		{labels.FromStrings("__name__", "node_boot_time_seconds"), 1718000000},
		{labels.FromStrings("__name__", "node_context_switches_total"), 681244877},
		{labels.FromStrings("__name__", "node_forks_total"), 1253017},
		{labels.FromStrings("__name__", "node_intr_total"), 392754031},
		{labels.FromStrings("__name__", "node_procs_running"), 1},
		{labels.FromStrings("__name__", "node_time_seconds"), 1718015400.25},
		{labels.FromStrings("__name__", "node_time_zone_offset_seconds", "time_zone", "CEST"), 7200},
		{labels.FromStrings("__name__", "node_time_clocksource_current_info", "clocksource", "arch_sys_counter", "device", "0"), 1},
		{labels.FromStrings("__name__", "node_uname_info", "sysname", "Linux", "release", "6.6.31+rpt-rpi-v8",
			"version", "#1 SMP PREEMPT Debian 1:6.6.31-1+rpt1 (2024-05-29)", "machine", "aarch64",
			"nodename", "gateway-7", "domainname", "(none)"), 1},
		{labels.FromStrings("__name__", "node_os_version", "id", "debian", "name", "Debian GNU/Linux"), 12},
		{labels.FromStrings("__name__", "node_os_info", "id", "debian", "name", "Debian GNU/Linux", "pretty_name", "Debian GNU/Linux 12 (bookworm)",
			"version", "12 (bookworm)", "version_codename", "bookworm", "version_id", "12"), 1},
		{labels.FromStrings("__name__", "node_thermal_zone_temp", "zone", "0", "type", "cpu-thermal"), 48.312},
		{labels.FromStrings("__name__", "node_thermal_zone_temp", "zone", "1", "type", "gpu-thermal"), 46.85},
		{labels.FromStrings("__name__", "node_hwmon_temp_celsius", "chip", "thermal_thermal_zone0", "sensor", "temp1"), 48.312},
		{labels.FromStrings("__name__", "node_hwmon_temp_celsius", "chip", "i2c_1_1_0048", "sensor", "temp2"), -5.25},
		{labels.FromStrings("__name__", "node_hwmon_chip_names", "chip", "rpi_volt", "chip_name", "rpi_volt"), 1},
		{labels.FromStrings("__name__", "node_pressure_cpu_waiting_seconds_total"), 48.331922},
		{labels.FromStrings("__name__", "node_pressure_io_stalled_seconds_total"), 61.734505},
		{labels.FromStrings("__name__", "node_pressure_memory_waiting_seconds_total"), 0.001208},
	} {
		v, ok := got[tc.lset.String()]
		if !ok {
			t.Errorf("missing %s", tc.lset)
			continue
		}
		if diff := v - tc.want; diff > 1e-6 || diff < -1e-6 {
			t.Errorf("%s = %v, want %v", tc.lset, v, tc.want)
		}
	}

	for key := range got {
		for _, excluded := range []string{
			`mountpoint="/proc"`, `mountpoint="/sys`, `mountpoint="/dev`, `fstype="squashfs"`, `fstype="overlay"`,
			`device="ram0"`, `device="loop0"`, `device="sda1"`,
		} {
			if strings.Contains(key, excluded) {
				t.Errorf("%s: excluded by node_exporter's defaults", key)
			}
		}
		if strings.Contains(key, "/mnt/nfs") && !strings.Contains(key, `__name__="node_filesystem_device_error"`) {
			t.Errorf("%s: a filesystem that failed statfs has only device_error", key)
		}
	}
	// /dev/root is mounted twice on / in the fixture: one series.
	n := 0
	for _, s := range c.Samples {
		if s.Labels.Get("__name__") == "node_filesystem_size_bytes" && s.Labels.Get("mountpoint") == "/" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d node_filesystem_size_bytes series for /, want 1", n)
	}
	// The text format needs each family's samples together.
	done := map[string]bool{}
	last := ""
	for _, s := range c.Samples {
		name := s.Labels.Get("__name__")
		if name != last && done[name] {
			t.Errorf("family %s is split", name)
		}
		done[name] = true
		last = name
	}
}

func TestFilesystemStatfsTimeout(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	c := newFilesystem(fixturePaths).(*filesystemCollector)
	c.timeout = 50 * time.Millisecond
	c.statfs = func(path string) (fsStats, error) {
		if strings.HasSuffix(path, "mnt/nfs") {
			calls.Add(1)
			<-release // a hung NFS server
		}
		return fsStats{size: 1}, nil
	}
	for round := 0; round < 3; round++ {
		var out collectors.Collection
		start := time.Now()
		if err := c.Collect(context.Background(), &out); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("collection took %v with a hung mount", d)
		}
		found := false
		for _, s := range out.Samples {
			if s.Labels.Get("mountpoint") == "/mnt/nfs" {
				if s.Labels.Get("__name__") != "node_filesystem_device_error" || s.V != 1 {
					t.Errorf("hung mount: %s %v", s.Labels, s.V)
				}
				found = true
			}
		}
		if !found {
			t.Error("hung mount not reported")
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("statfs of a hung mount called %d times, want once until it returns", n)
	}
	close(release)
	deadline := time.Now().Add(2 * time.Second)
	for {
		c.mu.Lock()
		stuck := c.stuck["/mnt/nfs"]
		c.mu.Unlock()
		if !stuck {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("mount still marked stuck after statfs returned")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFilesystemSelfMounts(t *testing.T) {
	// Without /proc/1/mounts (a container without the host's /proc), the
	// collector reads /proc/self/mounts.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "self", "mounts"), "/dev/root / ext4 ro 0 0\n")
	c := newFilesystem(collectors.Paths{ProcFS: dir, RootFS: "/"}).(*filesystemCollector)
	c.statfs = func(string) (fsStats, error) { return fsStats{size: 42}, nil }
	var out collectors.Collection
	if err := c.Collect(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Samples) != 7 || out.Samples[0].V != 42 {
		t.Errorf("got %v", out.Samples)
	}
}

func TestParseMounts(t *testing.T) {
	m, err := parseMounts(strings.NewReader("/dev/sda1 /media/usb\\040disk\\011x ext4 rw 0 0\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || m[0].mountPoint != "/media/usb disk\tx" || m[0].fsType != "ext4" || m[0].options != "rw" {
		t.Errorf("got %+v", m)
	}
}

func TestParseOSRelease(t *testing.T) {
	// OpenWrt 23.05's /usr/lib/os-release (excerpt).
	kv, err := parseOSRelease(strings.NewReader(`NAME="OpenWrt"
VERSION="23.05.3"
ID="openwrt"
ID_LIKE="lede openwrt"
PRETTY_NAME="OpenWrt 23.05.3"
VERSION_ID="23.05.3"
BUILD_ID="r23809-234f1a2efa"
OPENWRT_BOARD="mediatek/filogic"
OPENWRT_ARCH="aarch64_cortex-a53"
# a comment
ANSI_COLOR='0;32'
QUOTED="say \"hi\""
`))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"NAME": "OpenWrt", "ID_LIKE": "lede openwrt", "VERSION_ID": "23.05.3", "BUILD_ID": "r23809-234f1a2efa",
		"ANSI_COLOR": "0;32", "QUOTED": `say "hi"`,
	} {
		if kv[k] != want {
			t.Errorf("%s = %q, want %q", k, kv[k], want)
		}
	}
	if got := osVersionPrefix.FindString(kv["VERSION_ID"]); got != "23.05" {
		t.Errorf("version %q, want 23.05", got)
	}
}

func TestThermalZoneNotReady(t *testing.T) {
	// A zone whose sensor is not ready is left out; the others stay.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "class/thermal/thermal_zone0/type"), "cpu-thermal\n")
	writeFile(t, filepath.Join(dir, "class/thermal/thermal_zone0/temp"), "51000\n")
	writeFile(t, filepath.Join(dir, "class/thermal/thermal_zone10/type"), "ddr-thermal\n")
	writeFile(t, filepath.Join(dir, "class/thermal/thermal_zone10/temp"), "-1500\n")
	var out collectors.Collection
	if err := newThermalZone(collectors.Paths{SysFS: dir}).Collect(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Samples) != 2 || out.Samples[0].V != 51 || out.Samples[1].V != -1.5 || out.Samples[1].Labels.Get("zone") != "10" {
		t.Errorf("got %v", out.Samples)
	}
}

func TestDiskstatsOldKernel(t *testing.T) {
	// Before Linux 4.18 a line has 11 counters: no discard or flush families.
	disks, err := parseDiskstats(strings.NewReader(" 179 0 mmcblk0 1 2 3 4 5 6 7 8 9 10 11\n"))
	if err != nil {
		t.Fatal(err)
	}
	var out collectors.Collection
	for i, fd := range diskstatsFields {
		for _, d := range disks {
			if i < len(d.values) {
				out.Add(fd.desc, d.values[i]*fd.scale, d.name)
			}
		}
	}
	if len(out.Samples) != 11 {
		t.Errorf("%d samples, want 11", len(out.Samples))
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFilesystemRootFS(t *testing.T) {
	// ferry in a container, the host's / mounted at /host: mount points
	// are the host's, statfs goes through /host.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "1", "mounts"), "overlay / overlay rw 0 0\n/dev/root /host ext4 ro 0 0\n/dev/mmcblk0p1 /host/boot vfat rw 0 0\n")
	c := newFilesystem(collectors.Paths{ProcFS: dir, RootFS: "/host"}).(*filesystemCollector)
	var statted []string
	c.statfs = func(path string) (fsStats, error) {
		statted = append(statted, path)
		return fsStats{size: 1}, nil
	}
	var out collectors.Collection
	if err := c.Collect(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	var mps []string
	for _, s := range out.Samples {
		if s.Labels.Get("__name__") == "node_filesystem_size_bytes" {
			mps = append(mps, s.Labels.Get("mountpoint"))
		}
	}
	if strings.Join(mps, " ") != "/ /boot" || strings.Join(statted, " ") != "/host /host/boot" {
		t.Errorf("mount points %q, statfs of %q", mps, statted)
	}
}
