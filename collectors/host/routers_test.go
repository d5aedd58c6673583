package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferry-agent/ferry/collectors"
)

// collectOne runs the named host collector on paths.
func collectOne(t *testing.T, name string, p collectors.Paths) (map[string]float64, error) {
	t.Helper()
	for _, e := range Collectors() {
		if e.Name == name {
			var c collectors.Collection
			err := e.New(p).Collect(context.Background(), &c)
			got := map[string]float64{}
			for _, s := range c.Samples {
				if _, dup := got[s.Labels.String()]; dup {
					t.Errorf("duplicate series %s", s.Labels)
				}
				got[s.Labels.String()] = s.V
			}
			return got, err
		}
	}
	t.Fatalf("no collector %s", name)
	return nil, nil
}

func metric(name string, kv ...string) string {
	return labels.FromStrings(append([]string{"__name__", name}, kv...)...).String()
}

func TestRouterFixtureValues(t *testing.T) {
	c := collectAll(t, openwrtFixture)
	got := map[string]float64{}
	for _, s := range c.Samples {
		got[s.Labels.String()] = s.V
	}
	page := float64(os.Getpagesize())
	for key, want := range map[string]float64{
		metric("node_nf_conntrack_entries"):       22,
		metric("node_nf_conntrack_entries_limit"): 16384,
		// Sums of the four CPUs' hexadecimal columns.
		metric("node_nf_conntrack_stat_found"):          0x4b1 + 0x3dc + 0x5fa + 0x44e,
		metric("node_nf_conntrack_stat_invalid"):        0x138 + 0x78 + 0x36d + 0xd3,
		metric("node_nf_conntrack_stat_drop"):           2,
		metric("node_nf_conntrack_stat_search_restart"): 4,
		metric("node_entropy_available_bits"):           256,
		metric("node_filefd_allocated"):                 1088,
		metric("node_filefd_maximum"):                   23934,
		metric("node_sockstat_sockets_used"):            212,
		metric("node_sockstat_TCP_mem_bytes"):           3 * page,
		metric("node_sockstat_UDP6_inuse"):              17,
		metric("node_sockstat_FRAG_memory"):             0,
		metric("node_vmstat_oom_kill"):                  1,
		metric("node_vmstat_pgmajfault"):                3912,
		metric("node_netstat_Tcp_CurrEstab"):            14,
		metric("node_netstat_Ip_Forwarding"):            1,
		metric("node_netstat_IpExt_InOctets"):           11281907133,
		metric("node_netstat_Ip6_InOctets"):             3201877412,
		metric("node_netstat_Udp_NoPorts"):              1011,
		metric("node_netstat_TcpExt_TCPTimeouts"):       1877,
		metric("node_openwrt_info", "board_name", "glinet,gl-b1300", "id", "OpenWrt", "model", "GL.iNet GL-B1300",
			"release", "23.05.3", "revision", "r23809-234f1a2efa", "system", "ARMv7 Processor rev 5 (v7l)", "target", "ipq40xx/generic"): 1,
		// Three TCP connections and a QUIC flow of one client to one
		// server, both directions.
		metric("node_nat_traffic", "src", "192.168.1.130", "dest", "142.250.185.78"):                                                    140211 + 2810334 + 9120 + 120877 + 512877 + 11203877,
		metric("node_nat_traffic", "src", "2001:0db8:0001:0010:0000:0000:0000:0130", "dest", "2a00:1450:4001:082b:0000:0000:0000:200e"): 412011 + 6120334 + 120334 + 2301122,
		metric("node_nat_traffic", "src", "192.168.1.130", "dest", "93.184.215.14"):                                                     60, // unreplied
		metric("node_nat_traffic_unlisted_entries"):                                                                                     0,
		// The router exporter's station names, labels and units.
		metric("wifi_stations", "ifname", "phy0-ap0"):                                                                    2,
		metric("wifi_stations", "ifname", "phy1-sta0"):                                                                   1,
		metric("wifi_station_signal_dbm", "ifname", "phy0-ap0", "mac", "84:F3:EB:AA:BB:CC"):                              -78,
		metric("wifi_station_inactive_milliseconds", "ifname", "phy0-ap0", "mac", "84:F3:EB:AA:BB:CC"):                   30120,
		metric("wifi_station_transmit_kilobits_per_second", "ifname", "phy1-ap0", "mac", "A4:83:E7:01:02:03"):            866700,
		metric("wifi_station_receive_kilobits_per_second", "ifname", "phy0-ap0", "mac", "84:F3:EB:AA:BB:CC"):             1000,
		metric("wifi_station_expected_throughput_kilobits_per_second", "ifname", "phy1-ap0", "mac", "A4:83:E7:01:02:03"): 612000,
		metric("wifi_station_receive_packets_total", "ifname", "phy1-ap0", "mac", "A4:83:E7:01:02:03"):                   4120877,
		metric("wifi_station_transmit_packets_total", "ifname", "phy0-ap0", "mac", "84:F3:EB:AA:BB:CC"):                  7733,
		metric("wifi_station_receive_bytes_total", "ifname", "phy1-ap0", "mac", "A4:83:E7:01:02:03"):                     6012345678901,
	} {
		v, ok := got[key]
		if !ok {
			t.Errorf("missing %s", key)
		} else if v != want {
			t.Errorf("%s = %v, want %v", key, v, want)
		}
	}
	// A driver that gives no expected throughput: no series, as the router
	// exporter leaves out zeros, rather than a 0 that a dashboard would plot.
	if _, ok := got[metric("wifi_station_expected_throughput_kilobits_per_second", "ifname", "phy0-ap0", "mac", "84:F3:EB:AA:BB:CC")]; ok {
		t.Error("expected throughput 0 reported")
	}
	families := map[string]int{}
	for _, s := range c.Samples {
		families[s.Labels.Get("__name__")]++
	}
	for name, want := range map[string]int{
		"node_nat_traffic":          17, // pairs among the 22 connections
		"node_netstat_Icmp6_InMsgs": 1,
		"node_vmstat_nr_free_pages": 0, // not in node_exporter's default fields
		"node_netstat_Tcp_MaxConn":  0,
		"wifi_station_signal_dbm":   4,
	} {
		if families[name] != want {
			t.Errorf("%d %s series, want %d", families[name], name, want)
		}
	}
}

// writeTree writes files under a new directory and returns it.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		writeFile(t, filepath.Join(dir, name), content)
	}
	return dir
}

func TestConntrackOptionalParts(t *testing.T) {
	// Without /proc/net/stat/nf_conntrack (CONFIG_NF_CONNTRACK_PROCFS off):
	// the table's size only, no error.
	dir := writeTree(t, map[string]string{
		"sys/net/netfilter/nf_conntrack_count": "12\n",
		"sys/net/netfilter/nf_conntrack_max":   "65536\n",
	})
	got, err := collectOne(t, "conntrack", collectors.Paths{ProcFS: dir})
	if err != nil || len(got) != 2 || got[metric("node_nf_conntrack_entries_limit")] != 65536 {
		t.Errorf("got %v, %v", got, err)
	}
	// A kernel before 2.6.35: 16 columns, no search_restart (0).
	writeFile(t, filepath.Join(dir, "net/stat/nf_conntrack"),
		"entries searched found new invalid ignore delete delete_list insert insert_failed drop early_drop icmp_error expect_new expect_create expect_delete\n"+
			"0000000c 00000010 00000020 00000000 00000001 00000002 00000000 00000000 00000003 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n")
	got, err = collectOne(t, "conntrack", collectors.Paths{ProcFS: dir})
	if err != nil || got[metric("node_nf_conntrack_stat_found")] != 0x20 || got[metric("node_nf_conntrack_stat_search_restart")] != 0 {
		t.Errorf("got %v, %v", got, err)
	}
	// A line cut short: an error naming the file, the table's size still reported.
	writeFile(t, filepath.Join(dir, "net/stat/nf_conntrack"), "entries searched found\n0000000c 00000010 0000\n")
	got, err = collectOne(t, "conntrack", collectors.Paths{ProcFS: dir})
	if err == nil || !strings.Contains(err.Error(), "nf_conntrack") || len(got) != 2 {
		t.Errorf("got %v, %v", got, err)
	}
}

func TestNetstatOptionalParts(t *testing.T) {
	files := map[string]string{
		"net/netstat": "TcpExt: ListenDrops ListenOverflows\nTcpExt: 3 18446744073709551615\n",
		"net/snmp":    "Tcp: MaxConn CurrEstab\nTcp: -1 9\n",
	}
	// No snmp6 without IPv6: no error, no Ip6 families. A counter past
	// 2^63 is read as the unsigned number it is.
	got, err := collectOne(t, "netstat", collectors.Paths{ProcFS: writeTree(t, files)})
	if err != nil || len(got) != 3 || got[metric("node_netstat_TcpExt_ListenOverflows")] != 18446744073709551615 ||
		got[metric("node_netstat_Tcp_CurrEstab")] != 9 {
		t.Errorf("got %v, %v", got, err)
	}
	// No /proc/net/snmp is an error, as in node_exporter.
	delete(files, "net/snmp")
	if _, err := collectOne(t, "netstat", collectors.Paths{ProcFS: writeTree(t, files)}); err == nil || !strings.Contains(err.Error(), "snmp") {
		t.Errorf("no snmp: %v", err)
	}
	// A protocol twice (a kernel that never does that): one series.
	files["net/snmp"] = "Tcp: CurrEstab\nTcp: 9\nTcp: CurrEstab\nTcp: 10\n"
	got, err = collectOne(t, "netstat", collectors.Paths{ProcFS: writeTree(t, files)})
	if err != nil || got[metric("node_netstat_Tcp_CurrEstab")] != 9 {
		t.Errorf("got %v, %v", got, err)
	}
}

func TestSockstatIPv4Only(t *testing.T) {
	dir := writeTree(t, map[string]string{"net/sockstat": "sockets: used 7\nTCP: inuse 2 orphan 0 tw 1 alloc 3 mem 1\nRAW: inuse 0\n"})
	got, err := collectOne(t, "sockstat", collectors.Paths{ProcFS: dir})
	if err != nil || len(got) != 8 || got[metric("node_sockstat_sockets_used")] != 7 ||
		got[metric("node_sockstat_TCP_mem_bytes")] != float64(os.Getpagesize()) {
		t.Errorf("got %v, %v", got, err)
	}
}

func TestOpenWrtBoards(t *testing.T) {
	release := "DISTRIB_ID='OpenWrt'\nDISTRIB_RELEASE='23.05.5'\nDISTRIB_REVISION='r24106-10cc5fcd00'\nDISTRIB_TARGET='ath79/generic'\n"
	// A MIPS board: the SoC is cpuinfo's "system type". No /tmp/sysinfo
	// (written by the platform's scripts at boot): the model from the
	// device tree, NUL-terminated; no board name.
	dir := writeTree(t, map[string]string{
		"root/etc/openwrt_release": release,
		"proc/cpuinfo":             "system type\t\t: Qualcomm Atheros QCA9558 ver 1 rev 0\nmachine\t\t\t: TP-Link Archer C7 v2\nprocessor\t\t: 0\ncpu model\t\t: MIPS 74Kc V5.0\n",
		"proc/device-tree/model":   "TP-Link Archer C7 v2\x00",
	})
	p := collectors.Paths{ProcFS: filepath.Join(dir, "proc"), RootFS: filepath.Join(dir, "root")}
	got, err := collectOne(t, "openwrt", p)
	want := metric("node_openwrt_info", "id", "OpenWrt", "model", "TP-Link Archer C7 v2", "release", "23.05.5",
		"revision", "r24106-10cc5fcd00", "system", "Qualcomm Atheros QCA9558 ver 1 rev 0", "target", "ath79/generic")
	if err != nil || len(got) != 1 || got[want] != 1 {
		t.Errorf("got %v, %v; want %s", got, err, want)
	}
	// Not OpenWrt: nothing, and no error.
	got, err = collectOne(t, "openwrt", collectors.Paths{ProcFS: "testdata/proc", RootFS: "testdata/root"})
	if err != nil || len(got) != 0 {
		t.Errorf("Debian: %v, %v", got, err)
	}
}

func TestNATTrafficCap(t *testing.T) {
	// A busy router's table: 20000 connections from 50 clients to 400
	// servers each. The first 1024 pairs are listed; connections of the
	// others are counted, with their bytes; those of listed pairs that
	// come after the cap still add to their pair.
	var b strings.Builder
	conns := 0
	for client := 0; client < 50; client++ {
		for server := 0; server < 400; server++ {
			fmt.Fprintf(&b, "ipv4     2 tcp      6 7431 ESTABLISHED src=192.168.1.%d dst=198.51.%d.%d sport=40000 dport=443 packets=2 bytes=100 src=198.51.%d.%d dst=203.0.113.45 sport=443 dport=40000 packets=3 bytes=1000 [ASSURED] mark=0 zone=0 use=2\n",
				client, server/200, server%200, server/200, server%200)
			conns++
		}
	}
	// Again the first pair, at the end of the table.
	b.WriteString("ipv4     2 udp      17 28 src=192.168.1.0 dst=198.51.0.0 sport=5000 dport=443 packets=1 bytes=7 src=198.51.0.0 dst=203.0.113.45 sport=443 dport=5000 packets=1 bytes=3 mark=0 zone=0 use=2\n")
	dir := writeTree(t, map[string]string{"net/nf_conntrack": b.String()})
	got, err := collectOne(t, "nat_traffic", collectors.Paths{ProcFS: dir})
	if err != nil {
		t.Fatal(err)
	}
	pairs := 0
	for key := range got {
		if strings.HasPrefix(key, `{__name__="node_nat_traffic",`) {
			pairs++
		}
	}
	if pairs != natTrafficMaxPairs {
		t.Errorf("%d pairs listed, want the cap, %d", pairs, natTrafficMaxPairs)
	}
	if v := got[metric("node_nat_traffic", "src", "192.168.1.0", "dest", "198.51.0.0")]; v != 1100+10 {
		t.Errorf("first pair %v, want both of its connections, 1110 bytes", v)
	}
	unlisted := float64(conns - natTrafficMaxPairs)
	if got[metric("node_nat_traffic_unlisted_entries")] != unlisted || got[metric("node_nat_traffic_unlisted_bytes")] != unlisted*1100 {
		t.Errorf("unlisted: %v entries, %v bytes; want %v and %v", got[metric("node_nat_traffic_unlisted_entries")],
			got[metric("node_nat_traffic_unlisted_bytes")], unlisted, unlisted*1100)
	}
}

func TestNATTrafficBadLinesAndCancel(t *testing.T) {
	good := "ipv4     2 udp      17 28 src=192.168.1.5 dst=192.168.1.1 sport=5000 dport=53 packets=1 bytes=60 src=192.168.1.1 dst=192.168.1.5 sport=53 dport=5000 packets=1 bytes=90 mark=0 zone=0 use=2\n"
	dir := writeTree(t, map[string]string{"net/nf_conntrack": good + "garbage\n" + "ipv4 2 udp 17 src=\xff\xfe dst=1.1.1.1 bytes=1\n" + good})
	// Lines without addresses, or with addresses that are not text, are
	// skipped and counted in the error; the others are reported.
	got, err := collectOne(t, "nat_traffic", collectors.Paths{ProcFS: dir})
	if err == nil || !strings.Contains(err.Error(), "2 lines") {
		t.Errorf("error %v, want 2 lines counted", err)
	}
	if got[metric("node_nat_traffic", "src", "192.168.1.5", "dest", "192.168.1.1")] != 300 {
		t.Errorf("got %v", got)
	}
	// A collection whose time is up stops reading.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var c collectors.Collection
	err = newNATTraffic(collectors.Paths{ProcFS: dir}).Collect(ctx, &c)
	if !errors.Is(err, context.Canceled) || len(c.Samples) != 0 {
		t.Errorf("cancelled: %v, %d samples", err, len(c.Samples))
	}
}

func TestWifiStationsNoStations(t *testing.T) {
	// An access point nobody has joined: a 0 count, no station series.
	k := &fakeNl80211{ifaces: []fakeWifiInterface{{index: 3, name: "phy0-ap0", freqMHz: 2412}}}
	c := &wifiCollector{open: func() (netlinkSocket, error) { return k, nil }, routerNames: true}
	var out collectors.Collection
	if err := c.Collect(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Samples) != 1 || out.Samples[0].Labels.String() != metric("wifi_stations", "ifname", "phy0-ap0") || out.Samples[0].V != 0 {
		t.Errorf("got %v", out.Samples)
	}
}
