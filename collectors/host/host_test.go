package host

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferry-agent/ferry/collectors"
)

var update = flag.Bool("update", false, "rewrite the fixtures' golden files")

// fixturePaths point at testdata/proc: /proc of an armv7 board with 4 CPUs.
// testdata/sys and testdata/root: /sys and / of the same board (a Raspberry
// Pi 4 class arm64 board running Debian, with an SD card and a USB disk).
var fixturePaths = collectors.Paths{ProcFS: "testdata/proc", SysFS: "testdata/sys", RootFS: "testdata/root"}

// collectAll runs every host collector, in Collectors() order, into one
// collection, with the fixture's system calls in place of the machine's.
func collectAll(t *testing.T, f *fixture) *collectors.Collection {
	t.Helper()
	var c collectors.Collection
	for _, e := range Collectors() {
		col := e.New(f.paths)
		f.hooks(col)
		if err := col.Collect(context.Background(), &c); err != nil {
			t.Errorf("collector %s: %v", e.Name, err)
		}
	}
	return &c
}

func TestGolden(t *testing.T) {
	for _, f := range []*fixture{piFixture, openwrtFixture} {
		t.Run(f.golden, func(t *testing.T) {
			c := collectAll(t, f)
			var buf bytes.Buffer
			if err := collectors.WriteText(&buf, c); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", f.golden)
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got := buf.String(); got != string(want) {
				t.Errorf("output differs from %s (go test -update rewrites it):\n%s", golden, lineDiff(string(want), got))
			}
		})
	}
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	count := map[string]int{}
	for _, l := range strings.Split(got, "\n") {
		count[l]++
	}
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if count[l] > 0 {
			count[l]--
			continue
		}
		b.WriteString("- " + l + "\n")
	}
	for _, l := range strings.Split(got, "\n") {
		if count[l] > 0 {
			count[l]--
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

// TestNodeExporterNames checks, independently of the golden file, the
// names, labels and units that node_exporter's dashboards rely on.
func TestNodeExporterNames(t *testing.T) {
	c := collectAll(t, piFixture)
	got := map[string]float64{}
	for _, s := range c.Samples {
		key := s.Labels.String()
		if _, dup := got[key]; dup {
			t.Errorf("duplicate series %s", key)
		}
		got[key] = s.V
		if s.T != 0 {
			t.Errorf("%s has a timestamp; host samples take the collection's", key)
		}
	}
	for _, tc := range []struct {
		lset labels.Labels
		want float64
	}{
		// /proc/stat counts USER_HZ (100) ticks; node_exporter exposes seconds.
		{labels.FromStrings("__name__", "node_cpu_seconds_total", "cpu", "0", "mode", "user"), 3318.70},
		{labels.FromStrings("__name__", "node_cpu_seconds_total", "cpu", "0", "mode", "idle"), 95844.01},
		{labels.FromStrings("__name__", "node_cpu_seconds_total", "cpu", "0", "mode", "softirq"), 96.50},
		{labels.FromStrings("__name__", "node_cpu_seconds_total", "cpu", "3", "mode", "nice"), 15.42},
		{labels.FromStrings("__name__", "node_cpu_seconds_total", "cpu", "3", "mode", "iowait"), 61.69},
		{labels.FromStrings("__name__", "node_cpu_seconds_total", "cpu", "2", "mode", "system"), 974.63},
		{labels.FromStrings("__name__", "node_cpu_seconds_total", "cpu", "1", "mode", "steal"), 0},
		{labels.FromStrings("__name__", "node_cpu_guest_seconds_total", "cpu", "1", "mode", "user"), 12.50},
		{labels.FromStrings("__name__", "node_cpu_guest_seconds_total", "cpu", "1", "mode", "nice"), 1.00},
		{labels.FromStrings("__name__", "node_cpu_guest_seconds_total", "cpu", "2", "mode", "nice"), 2.00},
		{labels.FromStrings("__name__", "node_load1"), 0.52},
		{labels.FromStrings("__name__", "node_load5"), 0.58},
		{labels.FromStrings("__name__", "node_load15"), 0.59},
		// kB fields are bytes with a _bytes suffix; "(anon)" becomes "_anon".
		{labels.FromStrings("__name__", "node_memory_MemTotal_bytes"), 948304 * 1024},
		{labels.FromStrings("__name__", "node_memory_MemAvailable_bytes"), 745632 * 1024},
		{labels.FromStrings("__name__", "node_memory_Active_anon_bytes"), 78420 * 1024},
		{labels.FromStrings("__name__", "node_memory_Inactive_file_bytes"), 196224 * 1024},
		{labels.FromStrings("__name__", "node_memory_Committed_AS_bytes"), 503648 * 1024},
		{labels.FromStrings("__name__", "node_memory_Hugepagesize_bytes"), 2048 * 1024},
		// Unitless fields are counts and keep their name.
		{labels.FromStrings("__name__", "node_memory_HugePages_Total"), 8},
		{labels.FromStrings("__name__", "node_memory_HugePages_Free"), 6},
	} {
		v, ok := got[tc.lset.String()]
		if !ok {
			t.Errorf("missing %s", tc.lset)
			continue
		}
		if diff := v - tc.want; diff > 1e-9 || diff < -1e-9 {
			t.Errorf("%s = %v, want %v", tc.lset, v, tc.want)
		}
	}

	for key := range got {
		switch {
		case strings.Contains(key, `cpu="cpu`), strings.Contains(key, `cpu="cpu-total"`):
			t.Errorf("%s: the cpu label is node_exporter's bare number", key)
		case strings.Contains(key, "HugePages_Total_bytes"),
			strings.Contains(key, `"node_memory_`) && (strings.Contains(key, "(") || strings.Contains(key, ")")):
			t.Errorf("%s: not a node_exporter name", key)
		}
	}
	// 4 CPUs x (8 modes + 2 guest modes), 3 loads, 51 meminfo lines.
	n := 0
	for _, s := range c.Samples {
		name := s.Labels.Get("__name__")
		if strings.HasPrefix(name, "node_cpu_") || strings.HasPrefix(name, "node_load") || strings.HasPrefix(name, "node_memory_") {
			n++
		}
	}
	if want := 4*10 + 3 + 51; n != want {
		t.Errorf("%d cpu, load and memory samples, want %d", n, want)
	}

	types := map[string]collectors.Type{}
	for _, d := range c.Families {
		types[d.Name] = d.Type
		if d.Help == "" {
			t.Errorf("family %s has no help text", d.Name)
		}
	}
	for name, want := range map[string]collectors.Type{
		"node_cpu_seconds_total":       collectors.Counter,
		"node_cpu_guest_seconds_total": collectors.Counter,
		"node_load1":                   collectors.Gauge,
		"node_memory_MemTotal_bytes":   collectors.Gauge,
		"node_memory_HugePages_Total":  collectors.Gauge,
	} {
		if types[name] != want {
			t.Errorf("family %s has type %q, want %q", name, types[name], want)
		}
	}
}

func TestCollectorNames(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range Collectors() {
		if seen[e.Name] {
			t.Errorf("collector %s registered twice", e.Name)
		}
		seen[e.Name] = true
		if e.Help == "" || e.New == nil {
			t.Errorf("collector %s: want help text and a constructor", e.Name)
		}
	}
	for _, name := range []string{"cpu", "loadavg", "meminfo", "filesystem", "netdev", "diskstats", "stat", "time", "uname", "os", "thermal_zone", "hwmon", "pressure", "wifi",
		"conntrack", "entropy", "filefd", "sockstat", "vmstat", "netstat", "openwrt", "nat_traffic", "wifi_stations"} {
		if !seen[name] {
			t.Errorf("collector %s not registered", name)
		}
	}
}

func TestMissingFile(t *testing.T) {
	empty := collectors.Paths{ProcFS: t.TempDir(), SysFS: t.TempDir(), RootFS: t.TempDir()}
	for _, e := range Collectors() {
		if readsNoFile[e.Name] {
			continue
		}
		t.Run(e.Name, func(t *testing.T) {
			var c collectors.Collection
			err := e.New(empty).Collect(context.Background(), &c)
			if optionalHardware[e.Name] {
				if err != nil || len(c.Samples) != 0 {
					t.Fatalf("hardware that is absent: %v, %d samples; want neither", err, len(c.Samples))
				}
				return
			}
			if err == nil {
				t.Fatalf("no error with an empty procfs (%d samples)", len(c.Samples))
			}
			if !strings.HasPrefix(err.Error(), e.Name+":") {
				t.Errorf("error %q does not start with the collector's name", err)
			}
			if len(c.Samples) != 0 {
				t.Errorf("%d samples from a missing file", len(c.Samples))
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	for _, tc := range []struct {
		name      string
		collector string
		file      string // under procfs
		content   string
	}{
		{"loadavg empty", "loadavg", "loadavg", ""},
		{"loadavg two fields", "loadavg", "loadavg", "0.52 0.58\n"},
		{"loadavg not numbers", "loadavg", "loadavg", "a b c 1/2 3\n"},
		{"loadavg comma decimals", "loadavg", "loadavg", "0,52 0,58 0,59 2/187 12345\n"},
		{"meminfo not a number", "meminfo", "meminfo", "MemTotal:  lots kB\n"},
		{"meminfo unknown unit", "meminfo", "meminfo", "MemTotal:  948304 MB\n"},
		{"stat not numbers", "cpu", "stat", "cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 a b c d e f g h i j\n"},
		{"stat btime not a number", "stat", "stat", "cpu  1 2 3 4 5 6 7 8 9 10\nbtime soon\n"},
		{"stat no btime", "stat", "stat", "cpu  1 2 3 4 5 6 7 8 9 10\nctxt 12\n"},
		{"mounts short line", "filesystem", "1/mounts", "/dev/root / ext4\n"},
		{"netdev no colon", "netdev", "net/dev", "h1\nh2\n  eth0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"},
		{"netdev few fields", "netdev", "net/dev", "h1\nh2\n  eth0: 1 2 3\n"},
		{"netdev negative", "netdev", "net/dev", "h1\nh2\n  eth0: -1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"},
		{"diskstats few fields", "diskstats", "diskstats", " 179 0 mmcblk0 1 2 3\n"},
		{"diskstats not numbers", "diskstats", "diskstats", " 179 0 mmcblk0 1 2 3 4 5 6 7 8 9 x 11\n"},
		{"pressure no total", "pressure", "pressure/cpu", "some avg10=0.00 avg60=0.00 avg300=0.00\n"},
		{"pressure bad total", "pressure", "pressure/cpu", "some avg10=0.00 avg60=0.00 avg300=0.00 total=1e3\n"},
		{"os-release not key=value", "os", "etc/os-release", "NAME Debian\n"},
		{"os-release open quote", "os", "etc/os-release", "NAME=\"Debian\n"},
		{"thermal temp not a number", "thermal_zone", "class/thermal/thermal_zone0/temp", "hot\n"},
		{"hwmon temp not a number", "hwmon", "class/hwmon/hwmon0/temp1_input", "48.3\n"},
		{"conntrack count not a number", "conntrack", "sys/net/netfilter/nf_conntrack_count", "many\n"},
		{"conntrack count negative", "conntrack", "sys/net/netfilter/nf_conntrack_count", "-1\n"},
		{"conntrack count empty", "conntrack", "sys/net/netfilter/nf_conntrack_count", ""},
		{"entropy past 2^64", "entropy", "sys/kernel/random/entropy_avail", "18446744073709551616\n"},
		{"filefd two fields", "filefd", "sys/fs/file-nr", "1088\t0\n"},
		{"filefd not numbers", "filefd", "sys/fs/file-nr", "1088\t0\tlots\n"},
		{"sockstat odd pairs", "sockstat", "net/sockstat", "sockets: used 12\nTCP: inuse 9 orphan\n"},
		{"sockstat no colon", "sockstat", "net/sockstat", "TCP inuse 9\n"},
		{"sockstat name not a metric name", "sockstat", "net/sockstat", "TCP{x=\"1\"}: inuse 9\n"},
		{"sockstat value not a number", "sockstat", "net/sockstat", "TCP: inuse 9.5\n"},
		{"vmstat one field", "vmstat", "vmstat", "pgfault\n"},
		{"vmstat not a number", "vmstat", "vmstat", "pgfault 1e9\n"},
		{"vmstat name not a metric name", "vmstat", "vmstat", "pg-fault 12\n"},
		{"netstat names without values", "netstat", "net/netstat", "TcpExt: ListenDrops ListenOverflows\n"},
		{"netstat truncated values", "netstat", "net/netstat", "TcpExt: ListenDrops ListenOverflows\nTcpExt: 1\n"},
		{"netstat protocols differ", "netstat", "net/netstat", "TcpExt: ListenDrops\nIpExt: 1\n"},
		{"netstat value not a number", "netstat", "net/netstat", "TcpExt: ListenDrops\nTcpExt: x\n"},
		{"openwrt_release not key=value", "openwrt", "etc/openwrt_release", "DISTRIB_ID OpenWrt\n"},
		{"nf_conntrack line too long", "nat_traffic", "net/nf_conntrack", "ipv4 2 tcp 6 src=1.2.3.4 dst=5.6.7.8 " + strings.Repeat("x", 5000) + "\n"},
		{"nf_conntrack no addresses", "nat_traffic", "net/nf_conntrack", "ipv4 2 tcp 6 7431 ESTABLISHED bytes=12\n"},
		{"nf_conntrack bytes not a number", "nat_traffic", "net/nf_conntrack", "ipv4 2 udp 17 28 src=1.2.3.4 dst=5.6.7.8 bytes=-3\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tc.file)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(tc.file, "class/thermal/") {
				os.WriteFile(filepath.Join(filepath.Dir(path), "type"), []byte("cpu-thermal\n"), 0o644)
			}
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			var entry collectors.Entry
			for _, e := range Collectors() {
				if e.Name == tc.collector {
					entry = e
				}
			}
			var c collectors.Collection
			err := entry.New(collectors.Paths{ProcFS: dir, SysFS: dir, RootFS: dir}).Collect(context.Background(), &c)
			if err == nil {
				t.Fatalf("no error for %s containing %q (%d samples)", tc.file, tc.content, len(c.Samples))
			}
			if !strings.HasPrefix(err.Error(), tc.collector+":") {
				t.Errorf("error %q does not start with the collector's name", err)
			}
			if !strings.Contains(err.Error(), filepath.Base(tc.file)) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestParseMeminfo(t *testing.T) {
	for _, tc := range []struct {
		line  string
		name  string
		value float64
	}{
		{"MemTotal:         948304 kB", "node_memory_MemTotal_bytes", 948304 * 1024},
		{"Active(anon):      78420 kB", "node_memory_Active_anon_bytes", 78420 * 1024},
		{"Inactive(file):   196224 kB", "node_memory_Inactive_file_bytes", 196224 * 1024},
		{"NFS_Unstable:          0 kB", "node_memory_NFS_Unstable_bytes", 0},
		{"HugePages_Total:       8", "node_memory_HugePages_Total", 8},
		{"HugePages_Surp:        0", "node_memory_HugePages_Surp", 0},
	} {
		fields, err := parseMeminfo(strings.NewReader(tc.line + "\n"))
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		if len(fields) != 1 || fields[0].name != tc.name || fields[0].value != tc.value {
			t.Errorf("%q: got %+v, want %s %v", tc.line, fields, tc.name, tc.value)
		}
	}
}
