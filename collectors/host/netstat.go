package host

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
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
	descs                descCache
}

func newNetstat(p collectors.Paths) collectors.Collector {
	dir := filepath.Join(p.ProcFS, "net")
	return &netstatCollector{
		netstat: filepath.Join(dir, "netstat"), snmp: filepath.Join(dir, "snmp"), snmp6: filepath.Join(dir, "snmp6"),
		descs: descCache{},
	}
}

// netstatValue is one counter: protocol ("TcpExt", "Ip6"), field
// ("ListenDrops", "InOctets") and value.
type netstatValue struct {
	proto, field string
	value        float64
}

func (c *netstatCollector) Collect(_ context.Context, out *collectors.Collection) error {
	var all []netstatValue
	for _, path := range []string{c.netstat, c.snmp} {
		v, err := parseFile("netstat", path, parseNetstatPairs)
		if err != nil {
			return err
		}
		all = append(all, v...)
	}
	v6, err := parseFile("netstat", c.snmp6, parseSNMP6)
	if err != nil && !errors.Is(err, fs.ErrNotExist) { // no snmp6 without IPv6: nothing wrong
		return err
	}
	all = append(all, v6...)
	seen := map[string]bool{}
	for _, v := range all {
		key := v.proto + "_" + v.field
		d := c.descs.getMatching(netstatFields, key, newNetstatDesc)
		if d == nil || seen[key] {
			continue
		}
		seen[key] = true
		out.Add(d, v.value)
	}
	return nil
}

// newNetstatDesc builds the family of a field "Proto_Field".
func newNetstatDesc(key string) *collectors.Desc {
	return collectors.NewDesc("node_netstat_"+key, "Statistic "+strings.Replace(key, "_", "", 1)+".", collectors.Untyped)
}

// parseNetstatPairs reads /proc/net/netstat and /proc/net/snmp: for each
// protocol a line of field names, then a line of their values, both
// starting with "Protocol:". Values can be negative (Tcp MaxConn is -1).
func parseNetstatPairs(r io.Reader) ([]netstatValue, error) {
	var out []netstatValue
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line += 2 {
		names := strings.Fields(sc.Text())
		if !sc.Scan() {
			return nil, fmt.Errorf("line %d: field names without values", line)
		}
		values := strings.Fields(sc.Text())
		if len(names) == 0 || len(names) != len(values) || names[0] != values[0] || !strings.HasSuffix(names[0], ":") {
			return nil, fmt.Errorf("lines %d-%d: names and values do not pair up", line, line+1)
		}
		proto := strings.TrimSuffix(names[0], ":")
		for i := 1; i < len(names); i++ {
			nv, err := netstatParse(proto, names[i], values[i])
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", line+1, err)
			}
			out = append(out, nv)
		}
	}
	return out, sc.Err()
}

// parseSNMP6 reads /proc/net/snmp6: "Ip6InReceives   1234" lines. The
// protocol is the name up to its first "6" (Ip6, Icmp6, Udp6, UdpLite6).
func parseSNMP6(r io.Reader) ([]netstatValue, error) {
	var out []netstatValue
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		six := strings.IndexByte(f[0], '6')
		if len(f) != 2 || six < 0 {
			return nil, fmt.Errorf("line %d: not \"Proto6Field value\": %q", line, sc.Text())
		}
		nv, err := netstatParse(f[0][:six+1], f[0][six+1:], f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, nv)
	}
	return out, sc.Err()
}

func netstatParse(proto, field, value string) (netstatValue, error) {
	if !validNamePart(proto) || !validNamePart(field) {
		return netstatValue{}, fmt.Errorf("field %q %q", proto, field)
	}
	v, err := parseInt(value)
	if err != nil {
		return netstatValue{}, fmt.Errorf("%s%s: %w", proto, field, err)
	}
	return netstatValue{proto, field, v}, nil
}
