package host

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/ferry-agent/ferry/collectors"
)

// The wifi collector asks the kernel's nl80211 generic netlink family, as
// node_exporter's does: per-station statistics of an access point exist
// nowhere else (/proc/net/wireless knows only a client's own link, and is
// compiled out of many OpenWrt kernels). It speaks netlink through the
// standard library's syscall package; a netlink library would cost flash for
// the three dump requests below.

var (
	wifiFrequencyDesc = collectors.NewDesc("node_wifi_interface_frequency_hertz",
		"The current frequency a WiFi interface is operating at, in hertz.", collectors.Gauge, "device")
	wifiStationInfoDesc = collectors.NewDesc("node_wifi_station_info",
		"Labeled WiFi interface station information as provided by the operating system.", collectors.Gauge,
		"device", "bssid", "ssid", "mode")
	wifiConnectedDesc = stationDesc("station_connected_seconds_total",
		"The total number of seconds a station has been connected to an access point.", collectors.Counter)
	wifiInactiveDesc = stationDesc("station_inactive_seconds",
		"The number of seconds since any wireless activity has occurred on a station.", collectors.Gauge)
	wifiRxBitrateDesc = stationDesc("station_receive_bits_per_second",
		"The current WiFi receive bitrate of a station, in bits per second.", collectors.Gauge)
	wifiTxBitrateDesc = stationDesc("station_transmit_bits_per_second",
		"The current WiFi transmit bitrate of a station, in bits per second.", collectors.Gauge)
	wifiRxBytesDesc = stationDesc("station_receive_bytes_total",
		"The total number of bytes received by a WiFi station.", collectors.Counter)
	wifiTxBytesDesc = stationDesc("station_transmit_bytes_total",
		"The total number of bytes transmitted by a WiFi station.", collectors.Counter)
	wifiSignalDesc = stationDesc("station_signal_dbm",
		"The current WiFi signal strength, in decibel-milliwatts (dBm).", collectors.Gauge)
	wifiRetriesDesc = stationDesc("station_transmit_retries_total",
		"The total number of times a station has had to retry while sending a packet.", collectors.Counter)
	wifiFailedDesc = stationDesc("station_transmit_failed_total",
		"The total number of times a station has failed to send a packet.", collectors.Counter)
	wifiBeaconLossDesc = stationDesc("station_beacon_loss_total",
		"The total number of times a station has detected a beacon loss.", collectors.Counter)
)

// The wifi_stations families of prometheus-node-exporter-lua, which OpenWrt
// router dashboards read: its names, labels (ifname, mac in upper case, as
// iwinfo writes it) and units (kbit/s, ms). As it does, signal, bitrates and
// expected throughput are left out while the driver reports 0 (unknown).
var (
	luaStationsDesc = collectors.NewDesc("wifi_stations",
		"Stations associated with a WiFi interface.", collectors.Gauge, "ifname")
	luaSignalDesc        = luaStationDesc("signal_dbm", "Signal strength of a station, in dBm.", collectors.Gauge)
	luaInactiveDesc      = luaStationDesc("inactive_milliseconds", "Time since a station was last active, in milliseconds.", collectors.Gauge)
	luaExpThroughputDesc = luaStationDesc("expected_throughput_kilobits_per_second", "Throughput the driver expects to a station, in kbit/s.", collectors.Gauge)
	luaTxBitrateDesc     = luaStationDesc("transmit_kilobits_per_second", "Transmit bitrate to a station, in kbit/s.", collectors.Gauge)
	luaRxBitrateDesc     = luaStationDesc("receive_kilobits_per_second", "Receive bitrate from a station, in kbit/s.", collectors.Gauge)
	luaTxPacketsDesc     = luaStationDesc("transmit_packets_total", "Packets transmitted to a station.", collectors.Counter)
	luaRxPacketsDesc     = luaStationDesc("receive_packets_total", "Packets received from a station.", collectors.Counter)
	luaTxBytesDesc       = luaStationDesc("transmit_bytes_total", "Bytes transmitted to a station.", collectors.Counter)
	luaRxBytesDesc       = luaStationDesc("receive_bytes_total", "Bytes received from a station.", collectors.Counter)
)

func luaStationDesc(name, help string, typ collectors.Type) *collectors.Desc {
	return collectors.NewDesc("wifi_station_"+name, help, typ, "ifname", "mac")
}

func stationDesc(name, help string, typ collectors.Type) *collectors.Desc {
	return collectors.NewDesc("node_wifi_"+name, help, typ, "device", "mac_address")
}

// Numbers from the kernel's uapi headers linux/genetlink.h and linux/nl80211.h.
const (
	genlIDCtrl          = 16
	ctrlCmdGetFamily    = 3
	ctrlAttrFamilyID    = 1
	ctrlAttrFamilyName  = 2
	nl80211CmdGetIface  = 5
	nl80211CmdGetSta    = 17
	nl80211CmdGetScan   = 32
	nl80211AttrIfindex  = 3
	nl80211AttrIfname   = 4
	nl80211AttrMAC      = 6
	nl80211AttrStaInfo  = 21
	nl80211AttrFreq     = 38
	nl80211AttrBSS      = 47
	staInfoInactive     = 1  // u32, ms
	staInfoRxBytes      = 2  // u32
	staInfoTxBytes      = 3  // u32
	staInfoSignal       = 7  // s8, dBm
	staInfoTxBitrate    = 8  // nested rate info
	staInfoRxPackets    = 9  // u32
	staInfoTxPackets    = 10 // u32
	staInfoTxRetries    = 11 // u32
	staInfoTxFailed     = 12 // u32
	staInfoRxBitrate    = 14 // nested rate info
	staInfoConnected    = 16 // u32, s
	staInfoBeaconLoss   = 18 // u32
	staInfoRxBytes64    = 23
	staInfoTxBytes64    = 24
	staInfoExpectedTput = 27 // u32, kbit/s
	rateInfoBitrate     = 1  // u16, 100 kbit/s
	rateInfoBitrate32   = 5  // u32, 100 kbit/s
	bssAttrBSSID        = 1
	bssAttrIEs          = 6
	bssAttrStatus       = 9 // present only on the BSS the interface is in
	bssStatusIBSSJoined = 2
	nlaTypeMask         = 0x3fff // without NLA_F_NESTED and NLA_F_NET_BYTEORDER
)

// netlinkSocket is a generic netlink socket; tests replace it with a fake
// kernel.
type netlinkSocket interface {
	Send(msg []byte) error
	Recv() ([]byte, error) // one datagram of one or more messages
	Close() error
}

type wifiCollector struct {
	open func() (netlinkSocket, error)
	// routerNames: prometheus-node-exporter-lua's wifi_stations families
	// instead of node_exporter's.
	routerNames bool
}

func newWifi(collectors.Paths) collectors.Collector {
	return &wifiCollector{open: openGenericNetlink}
}

// name is the collector's, for its errors.
func (c *wifiCollector) name() string {
	if c.routerNames {
		return "wifi_stations"
	}
	return "wifi"
}

func newWifiStations(collectors.Paths) collectors.Collector {
	return &wifiCollector{open: openGenericNetlink, routerNames: true}
}

func (c *wifiCollector) Collect(_ context.Context, out *collectors.Collection) error {
	sock, err := c.open()
	if err != nil {
		if errors.Is(err, syscall.EPROTONOSUPPORT) || errors.Is(err, syscall.EAFNOSUPPORT) ||
			errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
			return nil // no netlink for us here (a sandbox): no wifi to report
		}
		return fmt.Errorf("%s: %w", c.name(), err)
	}
	defer sock.Close()
	nl := &genlClient{sock: sock}
	family, err := nl.familyID("nl80211")
	if errors.Is(err, syscall.ENOENT) {
		return nil // no cfg80211 in this kernel: no wifi hardware
	}
	if err != nil {
		return fmt.Errorf("%s: nl80211 family: %w", c.name(), err)
	}
	ifaces, err := nl.dump(family, nl80211CmdGetIface, nil)
	if err != nil {
		return fmt.Errorf("%s: interfaces: %w", c.name(), err)
	}
	type station struct {
		device string
		info   stationInfo
	}
	var stations []station
	var errs []error
	for _, msg := range ifaces {
		attrs := parseAttrs(msg)
		name := strings.TrimRight(string(attrs[nl80211AttrIfname]), "\x00")
		if name == "" || len(attrs[nl80211AttrIfindex]) < 4 {
			continue // a P2P device has no netdev
		}
		byIndex := attr(nl80211AttrIfindex, attrs[nl80211AttrIfindex])
		if !c.routerNames {
			out.Add(wifiFrequencyDesc, float64(attrU32(attrs[nl80211AttrFreq]))*1e6, name)
			scan, err := nl.dump(family, nl80211CmdGetScan, byIndex)
			if ignorableWifiError(err) {
				scan = nil
			} else if err != nil {
				errs = append(errs, fmt.Errorf("%s: %s: scan results: %w", c.name(), name, err))
			}
			if bss, ok := currentBSS(scan); ok {
				out.Add(wifiStationInfoDesc, 1, name, bss.bssid, bss.ssid, bss.mode)
			}
		}

		stas, err := nl.dump(family, nl80211CmdGetSta, byIndex)
		if ignorableWifiError(err) {
			stas = nil
		} else if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: stations: %w", c.name(), name, err))
		}
		n := 0
		for _, m := range stas {
			if si, ok := parseStation(m); ok {
				stations = append(stations, station{name, si})
				n++
			}
		}
		if c.routerNames {
			out.Add(luaStationsDesc, float64(n), name)
		}
	}
	if c.routerNames {
		for _, f := range []struct {
			desc     *collectors.Desc
			value    func(stationInfo) float64
			omitZero bool
		}{
			{luaSignalDesc, func(s stationInfo) float64 { return s.signal }, true},
			{luaInactiveDesc, func(s stationInfo) float64 { return s.inactiveSeconds * 1000 }, false},
			{luaExpThroughputDesc, func(s stationInfo) float64 { return s.expectedKbps }, true},
			{luaTxBitrateDesc, func(s stationInfo) float64 { return s.txBitrate / 1000 }, true},
			{luaRxBitrateDesc, func(s stationInfo) float64 { return s.rxBitrate / 1000 }, true},
			{luaTxPacketsDesc, func(s stationInfo) float64 { return s.txPackets }, false},
			{luaRxPacketsDesc, func(s stationInfo) float64 { return s.rxPackets }, false},
			{luaTxBytesDesc, func(s stationInfo) float64 { return s.txBytes }, false},
			{luaRxBytesDesc, func(s stationInfo) float64 { return s.rxBytes }, false},
		} {
			for _, s := range stations {
				if v := f.value(s.info); v != 0 || !f.omitZero {
					out.Add(f.desc, v, s.device, strings.ToUpper(s.info.mac))
				}
			}
		}
		return errors.Join(errs...)
	}
	for _, f := range []struct {
		desc  *collectors.Desc
		value func(stationInfo) float64
	}{
		{wifiConnectedDesc, func(s stationInfo) float64 { return s.connectedSeconds }},
		{wifiInactiveDesc, func(s stationInfo) float64 { return s.inactiveSeconds }},
		{wifiRxBitrateDesc, func(s stationInfo) float64 { return s.rxBitrate }},
		{wifiTxBitrateDesc, func(s stationInfo) float64 { return s.txBitrate }},
		{wifiRxBytesDesc, func(s stationInfo) float64 { return s.rxBytes }},
		{wifiTxBytesDesc, func(s stationInfo) float64 { return s.txBytes }},
		{wifiSignalDesc, func(s stationInfo) float64 { return s.signal }},
		{wifiRetriesDesc, func(s stationInfo) float64 { return s.txRetries }},
		{wifiFailedDesc, func(s stationInfo) float64 { return s.txFailed }},
		{wifiBeaconLossDesc, func(s stationInfo) float64 { return s.beaconLoss }},
	} {
		for _, s := range stations {
			out.Add(f.desc, f.value(s.info), s.device, s.info.mac)
		}
	}
	return errors.Join(errs...)
}

// ignorableWifiError: an interface that is down, or of a type without
// stations or scan results, answers with these.
func ignorableWifiError(err error) bool {
	return errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENOENT) ||
		errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENETDOWN) || errors.Is(err, syscall.EINVAL)
}

type stationInfo struct {
	mac                               string
	connectedSeconds, inactiveSeconds float64
	rxBitrate, txBitrate              float64 // bit/s
	rxBytes, txBytes                  float64
	signal                            float64 // dBm
	txRetries, txFailed, beaconLoss   float64
	rxPackets, txPackets              float64
	expectedKbps                      float64
}

// parseStation reads one NL80211_CMD_NEW_STATION message of a station dump.
func parseStation(msg []byte) (stationInfo, bool) {
	attrs := parseAttrs(msg)
	mac := attrs[nl80211AttrMAC]
	if len(mac) != 6 {
		return stationInfo{}, false
	}
	si := stationInfo{mac: net.HardwareAddr(mac).String()}
	info := parseAttrs(attrs[nl80211AttrStaInfo])
	si.connectedSeconds = float64(attrU32(info[staInfoConnected]))
	si.inactiveSeconds = float64(attrU32(info[staInfoInactive])) / 1000
	si.rxBitrate = rateBitsPerSecond(info[staInfoRxBitrate])
	si.txBitrate = rateBitsPerSecond(info[staInfoTxBitrate])
	// The 32-bit byte counters wrap after 4 GiB; kernels since 4.0 also send 64-bit ones.
	si.rxBytes = float64(attrU32(info[staInfoRxBytes]))
	if b := info[staInfoRxBytes64]; len(b) == 8 {
		si.rxBytes = float64(binary.NativeEndian.Uint64(b))
	}
	si.txBytes = float64(attrU32(info[staInfoTxBytes]))
	if b := info[staInfoTxBytes64]; len(b) == 8 {
		si.txBytes = float64(binary.NativeEndian.Uint64(b))
	}
	if s := info[staInfoSignal]; len(s) >= 1 {
		si.signal = float64(int8(s[0]))
	}
	si.txRetries = float64(attrU32(info[staInfoTxRetries]))
	si.txFailed = float64(attrU32(info[staInfoTxFailed]))
	si.beaconLoss = float64(attrU32(info[staInfoBeaconLoss]))
	si.rxPackets = float64(attrU32(info[staInfoRxPackets]))
	si.txPackets = float64(attrU32(info[staInfoTxPackets]))
	si.expectedKbps = float64(attrU32(info[staInfoExpectedTput]))
	return si, true
}

// rateBitsPerSecond reads a nested rate info: the 32-bit bitrate when
// present (rates above 6.5 Gbit/s do not fit the 16-bit one).
func rateBitsPerSecond(nested []byte) float64 {
	rate := parseAttrs(nested)
	if b := rate[rateInfoBitrate32]; len(b) == 4 {
		return float64(binary.NativeEndian.Uint32(b)) * 100e3
	}
	if b := rate[rateInfoBitrate]; len(b) >= 2 {
		return float64(binary.NativeEndian.Uint16(b)) * 100e3
	}
	return 0
}

type bssInfo struct{ bssid, ssid, mode string }

// currentBSS finds, in a scan dump, the BSS that the interface has joined:
// the only one with a status.
func currentBSS(scan [][]byte) (bssInfo, bool) {
	for _, msg := range scan {
		bss := parseAttrs(parseAttrs(msg)[nl80211AttrBSS])
		status, ok := bss[bssAttrStatus]
		if !ok || len(bss[bssAttrBSSID]) != 6 {
			continue
		}
		mode := "client" // authenticated or associated
		if attrU32(status) == bssStatusIBSSJoined {
			mode = "ad-hoc"
		}
		return bssInfo{bssid: net.HardwareAddr(bss[bssAttrBSSID]).String(), ssid: ssidFromIEs(bss[bssAttrIEs]), mode: mode}, true
	}
	return bssInfo{}, false
}

// ssidFromIEs finds the SSID element (ID 0) among 802.11 information
// elements: ID, length, data. An SSID is any 32 bytes; label values must be UTF-8.
func ssidFromIEs(ies []byte) string {
	for len(ies) >= 2 {
		id, n := ies[0], int(ies[1])
		if len(ies) < 2+n {
			break
		}
		if id == 0 {
			ssid := string(ies[2 : 2+n])
			if !utf8.ValidString(ssid) {
				ssid = strings.ToValidUTF8(ssid, "\uFFFD")
			}
			return ssid
		}
		ies = ies[2+n:]
	}
	return ""
}

// genlClient sends generic netlink requests and collects the replies.
type genlClient struct {
	sock netlinkSocket
	seq  uint32
}

// familyID resolves a generic netlink family's name to its number.
func (g *genlClient) familyID(name string) (uint16, error) {
	replies, err := g.request(genlIDCtrl, ctrlCmdGetFamily, 0, attr(ctrlAttrFamilyName, append([]byte(name), 0)))
	if err != nil {
		return 0, err
	}
	for _, r := range replies {
		if id := parseAttrs(r)[ctrlAttrFamilyID]; len(id) >= 2 {
			return binary.NativeEndian.Uint16(id), nil
		}
	}
	return 0, fmt.Errorf("no id for family %s", name)
}

func (g *genlClient) dump(family uint16, cmd uint8, attrs []byte) ([][]byte, error) {
	return g.request(family, cmd, syscall.NLM_F_DUMP, attrs)
}

// request sends one request and returns the attributes of each reply
// (the payload after the generic netlink header), until the kernel says
// it is done: NLMSG_DONE after a dump, an error, or a single reply.
func (g *genlClient) request(family uint16, cmd uint8, flags uint16, attrs []byte) ([][]byte, error) {
	g.seq++
	req := make([]byte, syscall.NLMSG_HDRLEN+4, syscall.NLMSG_HDRLEN+4+len(attrs))
	binary.NativeEndian.PutUint16(req[4:], family)
	binary.NativeEndian.PutUint16(req[6:], syscall.NLM_F_REQUEST|flags)
	binary.NativeEndian.PutUint32(req[8:], g.seq)
	req[syscall.NLMSG_HDRLEN] = cmd
	req[syscall.NLMSG_HDRLEN+1] = 1 // genl version
	req = append(req, attrs...)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	if err := g.sock.Send(req); err != nil {
		return nil, err
	}
	var replies [][]byte
	for {
		buf, err := g.sock.Recv()
		if err != nil {
			return nil, err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf)
		if err != nil {
			return nil, fmt.Errorf("malformed netlink reply: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != g.seq {
				continue // a late reply to an earlier request
			}
			switch m.Header.Type {
			case syscall.NLMSG_DONE:
				return replies, nil
			case syscall.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return nil, errors.New("short netlink error message")
				}
				if errno := -int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
					return nil, syscall.Errno(errno)
				}
				return replies, nil // an acknowledgement
			}
			if len(m.Data) < 4 {
				return nil, errors.New("short generic netlink message")
			}
			replies = append(replies, m.Data[4:])
			if m.Header.Flags&syscall.NLM_F_MULTI == 0 {
				return replies, nil
			}
		}
	}
}

// attr encodes one netlink attribute: length, type, data, padding to 4.
func attr(typ uint16, data []byte) []byte {
	b := make([]byte, syscall.NLA_HDRLEN, syscall.NLA_HDRLEN+len(data)+3)
	binary.NativeEndian.PutUint16(b[0:], uint16(syscall.NLA_HDRLEN+len(data)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, data...)
	for len(b)%syscall.NLA_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

// parseAttrs indexes a run of netlink attributes by type. A truncated
// attribute ends the run: what came before it is kept.
func parseAttrs(b []byte) map[uint16][]byte {
	attrs := map[uint16][]byte{}
	for len(b) >= syscall.NLA_HDRLEN {
		n := int(binary.NativeEndian.Uint16(b[0:]))
		if n < syscall.NLA_HDRLEN || n > len(b) {
			break
		}
		attrs[binary.NativeEndian.Uint16(b[2:])&nlaTypeMask] = b[syscall.NLA_HDRLEN:n]
		aligned := (n + syscall.NLA_ALIGNTO - 1) &^ (syscall.NLA_ALIGNTO - 1)
		if aligned > len(b) {
			break
		}
		b = b[aligned:]
	}
	return attrs
}

func attrU32(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	return binary.NativeEndian.Uint32(b)
}

// netlinkTimeout bounds each receive, so that a kernel that does not
// answer cannot stall the collection.
const netlinkTimeout = 5 * time.Second

type genericNetlink struct {
	fd  int
	buf []byte
}

func openGenericNetlink() (netlinkSocket, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_GENERIC)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	tv := syscall.NsecToTimeval(netlinkTimeout.Nanoseconds())
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	// The kernel sizes dump datagrams to at most 32 KiB.
	return &genericNetlink{fd: fd, buf: make([]byte, 64<<10)}, nil
}

func (s *genericNetlink) Send(msg []byte) error {
	return syscall.Sendto(s.fd, msg, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK})
}

func (s *genericNetlink) Recv() ([]byte, error) {
	for {
		n, _, err := syscall.Recvfrom(s.fd, s.buf, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		return s.buf[:n], nil
	}
}

func (s *genericNetlink) Close() error { return syscall.Close(s.fd) }
