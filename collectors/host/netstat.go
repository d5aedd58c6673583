package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/ferry-agent/ferry/collectors"
)

// netstatFields is node_exporter's default --collector.netstat.fields (of
// 1.5.0): the counters that say something about a host's network health,
// out of some 300 the kernel keeps.
var netstatFields = regexp.MustCompile(`^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$`)

type netstatCollector struct {
	netstat, snmp, snmp6 string
	descs                descCache // by "Proto_Field"; nil for fields the filter leaves out
}

func newNetstat(p collectors.Paths) collectors.Collector {
	dir := filepath.Join(p.ProcFS, "net")
	return &netstatCollector{
		netstat: filepath.Join(dir, "netstat"), snmp: filepath.Join(dir, "snmp"), snmp6: filepath.Join(dir, "snmp6"),
		descs: descCache{},
	}
}

// newNetstatDesc builds the family of a field "Proto_Field".
func newNetstatDesc(key string) *collectors.Desc {
	return collectors.NewDesc("node_netstat_"+key, "Statistic "+strings.Replace(key, "_", "", 1)+".", collectors.Untyped)
}

func (c *netstatCollector) Collect(_ context.Context, out *collectors.Collection) error {
	seen := map[string]bool{}
	// add reports one counter: protocol ("TcpExt", "Ip6"), field
	// ("ListenDrops", "InOctets") and value. Values can be negative (Tcp
	// MaxConn is -1).
	add := func(proto, field, value string) error {
		if !validNamePart(proto) || !validNamePart(field) {
			return fmt.Errorf("field %q %q", proto, field)
		}
		key := proto + "_" + field
		d := c.descs.getMatching(netstatFields, key, newNetstatDesc)
		if d == nil || seen[key] {
			return nil
		}
		v, err := parseInt(value)
		if err != nil {
			return fmt.Errorf("%s%s: %w", proto, field, err)
		}
		seen[key] = true
		out.Add(d, v)
		return nil
	}
	// /proc/net/netstat and /proc/net/snmp: for each protocol a line of
	// field names, then a line of their values, both starting "Proto:".
	for _, path := range []string{c.netstat, c.snmp} {
		var names []string
		err := readFields("netstat", path, func(_ int, fields []string) error {
			if names == nil {
				names = fields
				return nil
			}
			values := fields
			if len(names) == 0 || len(names) != len(values) || names[0] != values[0] || !strings.HasSuffix(names[0], ":") {
				return errors.New("names and values do not pair up")
			}
			for i := 1; i < len(names); i++ {
				if err := add(strings.TrimSuffix(names[0], ":"), names[i], values[i]); err != nil {
					return err
				}
			}
			names = nil
			return nil
		})
		if err != nil {
			return err
		}
		if names != nil {
			return fmt.Errorf("netstat: %s: field names without values", path)
		}
	}
	// /proc/net/snmp6: "Ip6InReceives   1234"; the protocol is the name up
	// to its first "6" (Ip6, Icmp6, Udp6, UdpLite6). No IPv6, no file.
	err := readFields("netstat", c.snmp6, func(_ int, f []string) error {
		if len(f) == 0 {
			return nil
		}
		six := strings.IndexByte(f[0], '6')
		if len(f) != 2 || six < 0 {
			return fmt.Errorf("not \"Proto6Field value\": %q", strings.Join(f, " "))
		}
		return add(f[0][:six+1], f[0][six+1:], f[1])
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
