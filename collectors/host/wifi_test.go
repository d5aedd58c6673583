package host

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/ferry-agent/ferry/collectors"
)

// fakeNl80211Family is the number the fake kernel gives nl80211; a real
// kernel picks one when cfg80211 loads.
const fakeNl80211Family = 28

// fakeWifiInterface is one wifi interface of a fake kernel, described in
// the terms of linux/nl80211.h.
type fakeWifiInterface struct {
	index    uint32
	name     string // "": a P2P device, which has no netdev
	freqMHz  uint32 // 0: not operating
	stations []fakeStation
	scan     []fakeBSS
}

type fakeStation struct {
	mac                             []byte
	connectedS, inactiveMs          uint32
	rxBytes64, txBytes64            uint64 // also sent as 32-bit counters, truncated, as the kernel does
	signal                          int8
	rxRate16, txRate16              uint16 // 100 kbit/s
	rxRate32, txRate32              uint32 // 100 kbit/s; 0: not sent
	txRetries, txFailed, beaconLoss uint32
	rxPackets, txPackets            uint32
	expectedKbps                    uint32 // 0: not sent, as drivers without rate control estimates do
}

type fakeBSS struct {
	bssid  []byte
	ies    []byte
	status int // -1: no status (a BSS seen in a scan, not joined)
}

// fakeNl80211 answers generic netlink requests as a kernel with the given
// wifi interfaces would: one message per datagram, NLMSG_DONE after a dump.
type fakeNl80211 struct {
	ifaces  []fakeWifiInterface
	pending [][]byte
	closed  bool
}

func (k *fakeNl80211) Send(req []byte) error {
	if len(req) < syscall.NLMSG_HDRLEN+4 || int(binary.NativeEndian.Uint32(req)) != len(req) {
		return errors.New("fake kernel: malformed request")
	}
	family := binary.NativeEndian.Uint16(req[4:])
	flags := binary.NativeEndian.Uint16(req[6:])
	seq := binary.NativeEndian.Uint32(req[8:])
	cmd := req[syscall.NLMSG_HDRLEN]
	attrs := parseAttrs(req[syscall.NLMSG_HDRLEN+4:])
	if flags&syscall.NLM_F_REQUEST == 0 {
		return errors.New("fake kernel: not a request")
	}
	// A stale reply to an earlier request comes first; the client must skip it.
	k.pending = append(k.pending, nlmsg(syscall.NLMSG_DONE, 0, seq-1, make([]byte, 4)))
	switch {
	case family == genlIDCtrl && cmd == ctrlCmdGetFamily:
		if string(attrs[ctrlAttrFamilyName]) != "nl80211\x00" || k.ifaces == nil {
			k.pending = append(k.pending, nlerr(seq, syscall.ENOENT))
			return nil
		}
		id := make([]byte, 2)
		binary.NativeEndian.PutUint16(id, fakeNl80211Family)
		k.pending = append(k.pending, nlmsg(genlIDCtrl, 0, seq, genl(1, attr(ctrlAttrFamilyID, id))))
	case family == fakeNl80211Family && flags&syscall.NLM_F_DUMP != 0 && cmd == nl80211CmdGetIface:
		for _, ifc := range k.ifaces {
			a := attr(nl80211AttrIfindex, u32(ifc.index))
			if ifc.name != "" {
				a = append(a, attr(nl80211AttrIfname, append([]byte(ifc.name), 0))...)
			}
			if ifc.freqMHz != 0 {
				a = append(a, attr(nl80211AttrFreq, u32(ifc.freqMHz))...)
			}
			k.pending = append(k.pending, nlmsg(fakeNl80211Family, syscall.NLM_F_MULTI, seq, genl(7, a)))
		}
		k.pending = append(k.pending, nlmsg(syscall.NLMSG_DONE, syscall.NLM_F_MULTI, seq, make([]byte, 4)))
	case family == fakeNl80211Family && flags&syscall.NLM_F_DUMP != 0 && (cmd == nl80211CmdGetSta || cmd == nl80211CmdGetScan):
		var ifc *fakeWifiInterface
		for i := range k.ifaces {
			if len(attrs[nl80211AttrIfindex]) == 4 && k.ifaces[i].index == binary.NativeEndian.Uint32(attrs[nl80211AttrIfindex]) {
				ifc = &k.ifaces[i]
			}
		}
		if ifc == nil {
			k.pending = append(k.pending, nlerr(seq, syscall.ENODEV))
			return nil
		}
		if cmd == nl80211CmdGetSta {
			for _, st := range ifc.stations {
				k.pending = append(k.pending, nlmsg(fakeNl80211Family, syscall.NLM_F_MULTI, seq, genl(19, st.encode(ifc.index))))
			}
		} else {
			for _, b := range ifc.scan {
				k.pending = append(k.pending, nlmsg(fakeNl80211Family, syscall.NLM_F_MULTI, seq, genl(34, b.encode(ifc.index))))
			}
		}
		k.pending = append(k.pending, nlmsg(syscall.NLMSG_DONE, syscall.NLM_F_MULTI, seq, make([]byte, 4)))
	default:
		k.pending = append(k.pending, nlerr(seq, syscall.EOPNOTSUPP))
	}
	return nil
}

func (k *fakeNl80211) Recv() ([]byte, error) {
	if len(k.pending) == 0 {
		return nil, syscall.EAGAIN // what SO_RCVTIMEO gives
	}
	b := k.pending[0]
	k.pending = k.pending[1:]
	return b, nil
}

func (k *fakeNl80211) Close() error { k.closed = true; return nil }

func (st fakeStation) encode(ifindex uint32) []byte {
	rate := func(r16 uint16, r32 uint32) []byte {
		b := make([]byte, 2)
		binary.NativeEndian.PutUint16(b, r16)
		a := attr(rateInfoBitrate, b)
		if r32 != 0 {
			a = append(a, attr(rateInfoBitrate32, u32(r32))...)
		}
		return a
	}
	info := concat(
		attr(staInfoInactive, u32(st.inactiveMs)),
		attr(staInfoRxBytes, u32(uint32(st.rxBytes64))),
		attr(staInfoTxBytes, u32(uint32(st.txBytes64))),
		attr(staInfoRxBytes64, u64(st.rxBytes64)),
		attr(staInfoTxBytes64, u64(st.txBytes64)),
		attr(staInfoSignal, []byte{byte(st.signal)}),
		attr(staInfoTxBitrate|syscall.NLA_F_NESTED, rate(st.txRate16, st.txRate32)),
		attr(staInfoRxBitrate|syscall.NLA_F_NESTED, rate(st.rxRate16, st.rxRate32)),
		attr(staInfoTxRetries, u32(st.txRetries)),
		attr(staInfoTxFailed, u32(st.txFailed)),
		attr(staInfoConnected, u32(st.connectedS)),
		attr(staInfoBeaconLoss, u32(st.beaconLoss)),
		attr(staInfoRxPackets, u32(st.rxPackets)),
		attr(staInfoTxPackets, u32(st.txPackets)),
	)
	if st.expectedKbps != 0 {
		info = append(info, attr(staInfoExpectedTput, u32(st.expectedKbps))...)
	}
	return concat(attr(nl80211AttrIfindex, u32(ifindex)), attr(nl80211AttrMAC, st.mac), attr(nl80211AttrStaInfo|syscall.NLA_F_NESTED, info))
}

func (b fakeBSS) encode(ifindex uint32) []byte {
	bss := concat(attr(bssAttrBSSID, b.bssid), attr(bssAttrIEs, b.ies))
	if b.status >= 0 {
		bss = append(bss, attr(bssAttrStatus, u32(uint32(b.status)))...)
	}
	return concat(attr(nl80211AttrIfindex, u32(ifindex)), attr(nl80211AttrBSS|syscall.NLA_F_NESTED, bss))
}

func nlmsg(typ, flags uint16, seq uint32, payload []byte) []byte {
	b := make([]byte, syscall.NLMSG_HDRLEN, syscall.NLMSG_HDRLEN+len(payload))
	binary.NativeEndian.PutUint32(b[0:], uint32(syscall.NLMSG_HDRLEN+len(payload)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint16(b[6:], flags)
	binary.NativeEndian.PutUint32(b[8:], seq)
	return append(b, payload...)
}

func nlerr(seq uint32, errno syscall.Errno) []byte {
	return nlmsg(syscall.NLMSG_ERROR, 0, seq, u32(uint32(-int32(errno))))
}

func genl(cmd uint8, attrs []byte) []byte { return append([]byte{cmd, 1, 0, 0}, attrs...) }

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.NativeEndian.AppendUint64(nil, v) }

func concat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// ssidIE is an SSID information element followed by a supported-rates one.
func ssidIE(ssid string) []byte {
	return concat([]byte{0, byte(len(ssid))}, []byte(ssid), []byte{1, 4, 0x82, 0x84, 0x8b, 0x96})
}

func TestWifiNoNl80211(t *testing.T) {
	// A kernel without cfg80211 has no nl80211 family: no wifi, no error.
	k := &fakeNl80211{}
	c := &wifiCollector{open: func() (netlinkSocket, error) { return k, nil }}
	var out collectors.Collection
	if err := c.Collect(context.Background(), &out); err != nil || len(out.Samples) != 0 {
		t.Errorf("got %v, %d samples; want neither", err, len(out.Samples))
	}
	if !k.closed {
		t.Error("socket left open")
	}
	// No netlink at all for ferry (a sandbox): the same.
	c.open = func() (netlinkSocket, error) { return nil, syscall.EPROTONOSUPPORT }
	if err := c.Collect(context.Background(), &out); err != nil || len(out.Samples) != 0 {
		t.Errorf("got %v, %d samples; want neither", err, len(out.Samples))
	}
}

func TestWifiKernelSilent(t *testing.T) {
	// A kernel that does not answer a request: an error, not a hang.
	c := &wifiCollector{open: func() (netlinkSocket, error) { return &silentKernel{}, nil }}
	var out collectors.Collection
	err := c.Collect(context.Background(), &out)
	if !errors.Is(err, syscall.EAGAIN) || !strings.HasPrefix(err.Error(), "wifi:") {
		t.Errorf("got %v, want the receive timeout's EAGAIN", err)
	}
}

type silentKernel struct{}

func (silentKernel) Send([]byte) error     { return nil }
func (silentKernel) Recv() ([]byte, error) { return nil, syscall.EAGAIN }
func (silentKernel) Close() error          { return nil }

func TestGenericNetlinkRealKernel(t *testing.T) {
	// The socket code against this machine's kernel: the generic netlink
	// controller is always there, as family 16 under the name "nlctrl".
	sock, err := openGenericNetlink()
	if err != nil {
		if os := strings.ToLower(err.Error()); strings.Contains(os, "permission") || strings.Contains(os, "not supported") {
			t.Skipf("no netlink in this sandbox: %v", err)
		}
		t.Fatal(err)
	}
	defer sock.Close()
	nl := &genlClient{sock: sock}
	id, err := nl.familyID("nlctrl")
	if err != nil || id != genlIDCtrl {
		t.Fatalf("nlctrl: id %d, %v; want %d", id, err, genlIDCtrl)
	}
	if _, err := nl.familyID("no-such-family"); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("unknown family: %v, want ENOENT", err)
	}
	// And a dump: every family the controller knows, nlctrl among them.
	families, err := nl.dump(genlIDCtrl, ctrlCmdGetFamily, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		found = found || string(parseAttrs(f)[ctrlAttrFamilyName]) == "nlctrl\x00"
	}
	if !found {
		t.Errorf("nlctrl not among %d families of the dump", len(families))
	}
}

func TestParseAttrsTruncated(t *testing.T) {
	// An attribute whose length runs past the buffer ends the run; the
	// attributes before it are kept, nothing panics.
	b := concat(attr(1, u32(7)), attr(2, u32(9)))
	for n := 0; n <= len(b); n++ {
		got := parseAttrs(b[:n])
		if n >= 8 && attrU32(got[1]) != 7 {
			t.Errorf("%d bytes: first attribute lost", n)
		}
		if n < 16 && got[2] != nil {
			t.Errorf("%d bytes: truncated second attribute parsed", n)
		}
	}
}

func TestSSIDFromIEs(t *testing.T) {
	for _, tc := range []struct {
		ies  []byte
		want string
	}{
		{ssidIE("home"), "home"},
		{concat([]byte{1, 2, 0x82, 0x84}, ssidIE("after rates")), "after rates"},
		{[]byte{0, 3, 'a', 0xff, 'b'}, "a\uFFFDb"}, // not UTF-8
		{[]byte{0, 9, 'a'}, ""},                    // truncated
		{nil, ""},
	} {
		if got := ssidFromIEs(tc.ies); got != tc.want {
			t.Errorf("%x: %q, want %q", tc.ies, got, tc.want)
		}
	}
}
