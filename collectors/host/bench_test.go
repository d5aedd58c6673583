package host

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-agent/ferry/collectors"
)

// BenchmarkRouterCollectors measures each file-reading collector on the
// OpenWrt fixture, and nat_traffic on a full table of 16384 connections
// (OpenWrt's default nf_conntrack_max): time, memory, and series per
// collection. The figures behind the README's on/off choices:
//
//	go test -run '^$' -bench RouterCollectors -benchmem ./collectors/host/
func BenchmarkRouterCollectors(b *testing.B) {
	for _, e := range Collectors() {
		if readsNoFile[e.Name] || e.Name == "filesystem" {
			continue // system calls, not files: measured elsewhere
		}
		b.Run(e.Name, func(b *testing.B) { benchCollector(b, e.New(openwrtFixture.paths)) })
	}
	b.Run("nat_traffic_16384", func(b *testing.B) {
		var t strings.Builder
		for i := 0; i < 16384; i++ {
			fmt.Fprintf(&t, "ipv4     2 tcp      6 7431 ESTABLISHED src=192.168.%d.%d dst=198.51.%d.%d sport=%d dport=443 packets=12 bytes=1402 src=198.51.%d.%d dst=203.0.113.45 sport=443 dport=%d packets=14 bytes=16023 [ASSURED] mark=0 zone=0 use=2\n",
				i%4, i%50, i/250%250, i%250, 30000+i%30000, i/250%250, i%250, 30000+i%30000)
		}
		dir := b.TempDir()
		writeFile(b, filepath.Join(dir, "net", "nf_conntrack"), t.String())
		benchCollector(b, newNATTraffic(collectors.Paths{ProcFS: dir}))
	})
}

func benchCollector(b *testing.B, col collectors.Collector) {
	var series int
	b.ResetTimer() // not the fixture's setup
	for i := 0; i < b.N; i++ {
		var c collectors.Collection
		if err := col.Collect(context.Background(), &c); err != nil {
			b.Fatal(err)
		}
		series = len(c.Samples)
	}
	b.ReportMetric(float64(series), "series")
}
