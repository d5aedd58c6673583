package host

import (
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferry-agent/ferry/collectors"
)

// openwrtFixture is testdata/openwrt-ipq40xx: an armv7 router (Qualcomm
// IPQ4019, 4 Cortex-A7 cores, 256 MB RAM, 32 MB NOR flash) on OpenWrt
// 23.05: squashfs root in /rom, jffs2 on /overlay, both joined by overlayfs
// on /, a USB stick on /mnt/sda1. Two radios: 2.4 GHz access point with
// two stations, 5 GHz access point with one and a client link upstream.
// /tmp/sysinfo names the board a GL.iNet GL-B1300 (IPQ4028, the same SoC
// family); the connection table holds 22 connections of four LAN clients,
// the router itself and IPv6 hosts, NATed to 203.0.113.45.
var openwrtFixture = &fixture{
	paths:  collectors.Paths{ProcFS: "testdata/openwrt-ipq40xx/proc", SysFS: "testdata/openwrt-ipq40xx/sys", RootFS: "testdata/openwrt-ipq40xx/root"},
	golden: "openwrt-ipq40xx.golden",
	statfs: map[string]fsStats{
		"/rom":      {size: 3932160, free: 0, avail: 0, files: 1102, filesFree: 0},
		"/tmp":      {size: 125679616, free: 117116928, avail: 117116928, files: 30684, filesFree: 30401},
		"/overlay":  {size: 19791872, free: 17211392, avail: 16162816},
		"/":         {size: 19791872, free: 17211392, avail: 16162816},
		"/dev":      {size: 524288, free: 524288, avail: 524288, files: 30684, filesFree: 30392},
		"/mnt/sda1": {size: 15614754816, free: 12201041920, avail: 11401011200, files: 953312, filesFree: 950022},
	},
	uname: utsname{sysname: "Linux", release: "5.15.150", version: "#0 SMP Thu Mar 21 13:52:42 2024",
		machine: "armv7l", nodename: "OpenWrt", domainname: "(none)"},
	wifi: []fakeWifiInterface{
		{index: 9, name: "phy0-ap0", freqMHz: 2437,
			stations: []fakeStation{
				{mac: []byte{0x3c, 0x22, 0xfb, 0x10, 0x20, 0x30}, connectedS: 5231, inactiveMs: 1250, rxBytes64: 41203384, txBytes64: 170011222,
					signal: -61, rxRate16: 650, txRate16: 722, txRetries: 1842, txFailed: 12, beaconLoss: 0,
					rxPackets: 301877, txPackets: 412022, expectedKbps: 51200},
				{mac: []byte{0x84, 0xf3, 0xeb, 0xaa, 0xbb, 0xcc}, connectedS: 86011, inactiveMs: 30120, rxBytes64: 812334, txBytes64: 401223,
					signal: -78, rxRate16: 10, txRate16: 65, txRetries: 3311, txFailed: 87, beaconLoss: 2,
					rxPackets: 9120, txPackets: 7733},
			},
			// A neighbour seen by the automatic channel selection: not joined.
			scan: []fakeBSS{{bssid: []byte{0x00, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e}, ies: ssidIE("neighbour"), status: -1}},
		},
		{index: 10, name: "phy1-ap0", freqMHz: 5180,
			stations: []fakeStation{
				// Past 4 GiB: the 32-bit counters have wrapped.
				{mac: []byte{0xa4, 0x83, 0xe7, 0x01, 0x02, 0x03}, connectedS: 3602, inactiveMs: 40, rxBytes64: 6012345678901, txBytes64: 912384120,
					signal: -52, rxRate16: 7800, txRate16: 8667, rxRate32: 7800, txRate32: 8667, txRetries: 9123, txFailed: 4,
					rxPackets: 4120877, txPackets: 1012334, expectedKbps: 612000},
			},
		},
		{index: 11, name: "phy1-sta0", freqMHz: 5180,
			// In client mode the one station is the access point upstream.
			stations: []fakeStation{
				{mac: []byte{0x74, 0xac, 0xb9, 0x5a, 0x6b, 0x7c}, connectedS: 172800, inactiveMs: 10, rxBytes64: 24187201, txBytes64: 8812340,
					signal: -67, rxRate16: 5850, txRate16: 4333, txRetries: 120, txFailed: 1, beaconLoss: 3,
					rxPackets: 88123, txPackets: 51233, expectedKbps: 301000},
			},
			scan: []fakeBSS{
				{bssid: []byte{0x74, 0xac, 0xb9, 0x5a, 0x6b, 0x7c}, ies: ssidIE("Upstream café"), status: 1},
			},
		},
		{index: 0}, // a P2P device: no netdev, no name
	},
}

func TestOpenWrtFixtureValues(t *testing.T) {
	c := collectAll(t, openwrtFixture)
	got := map[string]float64{}
	for _, s := range c.Samples {
		got[s.Labels.String()] = s.V
	}
	fs := func(name, dev, typ, mp string) labels.Labels {
		return labels.FromStrings("__name__", name, "device", dev, "fstype", typ, "mountpoint", mp)
	}
	sta := func(name, dev, mac string) labels.Labels {
		return labels.FromStrings("__name__", name, "device", dev, "mac_address", mac)
	}
	l := labels.FromStrings
	for _, tc := range []struct {
		lset labels.Labels
		want float64
	}{
		// The flash that fills up is jffs2 on /overlay: reported.
		{fs("node_filesystem_avail_bytes", "/dev/mtdblock10", "jffs2", "/overlay"), 16162816},
		{fs("node_filesystem_readonly", "/dev/mtdblock10", "jffs2", "/overlay"), 0},
		{fs("node_filesystem_size_bytes", "tmpfs", "tmpfs", "/tmp"), 125679616},
		{fs("node_filesystem_free_bytes", "/dev/sda1", "ext4", "/mnt/sda1"), 12201041920},
		{l("__name__", "node_memory_MemTotal_bytes"), 245468 * 1024},
		{l("__name__", "node_memory_SwapTotal_bytes"), 0},
		{l("__name__", "node_cpu_seconds_total", "cpu", "0", "mode", "softirq"), 311.20},
		{l("__name__", "node_network_receive_bytes_total", "device", "br-lan"), 1481276211},
		{l("__name__", "node_network_receive_drop_total", "device", "wan"), 117},
		{l("__name__", "node_network_transmit_drop_total", "device", "phy1-ap0"), 21},
		{l("__name__", "node_network_receive_bytes_total", "device", "phy1-sta0"), 24187201},
		{l("__name__", "node_disk_reads_completed_total", "device", "mtdblock9"), 1841},
		{l("__name__", "node_disk_written_bytes_total", "device", "mtdblock10"), 328 * 512},
		{l("__name__", "node_disk_info", "device", "mtdblock10", "major", "31", "minor", "10"), 1},
		{l("__name__", "node_thermal_zone_temp", "zone", "0", "type", "cpu-thermal"), 57.6},
		{l("__name__", "node_hwmon_temp_celsius", "chip", "soc_a800000_wifi", "sensor", "temp1"), 53},
		{l("__name__", "node_os_info", "id", "openwrt", "id_like", "lede openwrt", "name", "OpenWrt", "pretty_name", "OpenWrt 23.05.3",
			"version", "23.05.3", "version_id", "23.05.3", "build_id", "r23809-234f1a2efa"), 1},
		{l("__name__", "node_os_version", "id", "openwrt", "id_like", "lede openwrt", "name", "OpenWrt"), 23.05},
		{l("__name__", "node_uname_info", "sysname", "Linux", "release", "5.15.150", "version", "#0 SMP Thu Mar 21 13:52:42 2024",
			"machine", "armv7l", "nodename", "OpenWrt", "domainname", "(none)"), 1},

		// Wifi, with node_exporter's units: Hz, seconds, bit/s, dBm.
		{l("__name__", "node_wifi_interface_frequency_hertz", "device", "phy0-ap0"), 2.437e9},
		{l("__name__", "node_wifi_interface_frequency_hertz", "device", "phy1-sta0"), 5.18e9},
		{l("__name__", "node_wifi_station_info", "device", "phy1-sta0", "bssid", "74:ac:b9:5a:6b:7c", "ssid", "Upstream café", "mode", "client"), 1},
		{sta("node_wifi_station_signal_dbm", "phy0-ap0", "3c:22:fb:10:20:30"), -61},
		{sta("node_wifi_station_signal_dbm", "phy0-ap0", "84:f3:eb:aa:bb:cc"), -78},
		{sta("node_wifi_station_connected_seconds_total", "phy0-ap0", "84:f3:eb:aa:bb:cc"), 86011},
		{sta("node_wifi_station_inactive_seconds", "phy0-ap0", "84:f3:eb:aa:bb:cc"), 30.12},
		{sta("node_wifi_station_transmit_bits_per_second", "phy0-ap0", "3c:22:fb:10:20:30"), 72.2e6},
		{sta("node_wifi_station_receive_bits_per_second", "phy0-ap0", "84:f3:eb:aa:bb:cc"), 1e6},
		{sta("node_wifi_station_transmit_bits_per_second", "phy1-ap0", "a4:83:e7:01:02:03"), 866.7e6},
		{sta("node_wifi_station_receive_bytes_total", "phy1-ap0", "a4:83:e7:01:02:03"), 6012345678901},
		{sta("node_wifi_station_transmit_bytes_total", "phy0-ap0", "3c:22:fb:10:20:30"), 170011222},
		{sta("node_wifi_station_transmit_retries_total", "phy0-ap0", "84:f3:eb:aa:bb:cc"), 3311},
		{sta("node_wifi_station_transmit_failed_total", "phy0-ap0", "84:f3:eb:aa:bb:cc"), 87},
		{sta("node_wifi_station_beacon_loss_total", "phy1-sta0", "74:ac:b9:5a:6b:7c"), 3},
		{sta("node_wifi_station_signal_dbm", "phy1-sta0", "74:ac:b9:5a:6b:7c"), -67},
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

	// node_exporter's defaults leave out the read-only squashfs (its free
	// space is always 0) and the overlay on / (the same space as /overlay,
	// counted once), and the pseudo filesystems under /dev, /proc and /sys.
	families := map[string]int{}
	for _, s := range c.Samples {
		name := s.Labels.Get("__name__")
		families[name]++
		if strings.HasPrefix(name, "node_filesystem_") {
			switch mp := s.Labels.Get("mountpoint"); mp {
			case "/overlay", "/tmp", "/mnt/sda1":
			default:
				t.Errorf("%s: node_exporter does not report %s (%s)", s.Labels, mp, s.Labels.Get("fstype"))
			}
		}
	}
	// Every family of node_exporter's wifi collector, for every station.
	for name, want := range map[string]int{
		"node_wifi_interface_frequency_hertz":        3, // the P2P device has no name
		"node_wifi_station_info":                     1, // only the client link has joined a BSS
		"node_wifi_station_connected_seconds_total":  4,
		"node_wifi_station_inactive_seconds":         4,
		"node_wifi_station_receive_bits_per_second":  4,
		"node_wifi_station_transmit_bits_per_second": 4,
		"node_wifi_station_receive_bytes_total":      4,
		"node_wifi_station_transmit_bytes_total":     4,
		"node_wifi_station_signal_dbm":               4,
		"node_wifi_station_transmit_retries_total":   4,
		"node_wifi_station_transmit_failed_total":    4,
		"node_wifi_station_beacon_loss_total":        4,
		// No PSI in OpenWrt's kernel: no pressure families, no error.
		"node_pressure_cpu_waiting_seconds_total": 0,
		// 11 mtdblocks and the USB stick; its partition is excluded, as sda1 is.
		"node_disk_info": 12,
	} {
		if families[name] != want {
			t.Errorf("%d %s series, want %d", families[name], name, want)
		}
	}
}
