package host

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ferry-agent/ferry/collectors"
)

// TestSet: one failing collector does not stop the others, and each one's
// outcome is there by name, in the order they run.
func TestSet(t *testing.T) {
	if NewSet(map[string]bool{"loadavg": false}, collectors.Paths{}) != nil {
		t.Error("a set of no collectors is not nil")
	}
	procfs := t.TempDir() // loadavg can be read, meminfo cannot
	if err := os.WriteFile(filepath.Join(procfs, "loadavg"), []byte("0.42 0.33 0.25 1/123 4567\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := NewSet(map[string]bool{"meminfo": true, "loadavg": true, "nonexistent": true}, collectors.Paths{ProcFS: procfs})
	if got, want := s.Names(), []string{"loadavg", "meminfo"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("names %v, want %v", got, want)
	}
	if got := s.Outcomes(); got != nil {
		t.Errorf("outcomes before a collection: %v", got)
	}
	var c collectors.Collection
	err := s.Collect(context.Background(), &c)
	if err == nil || !strings.HasPrefix(err.Error(), "collector meminfo: ") || strings.Contains(err.Error(), "loadavg") {
		t.Errorf("error %v, want meminfo's alone", err)
	}
	if len(c.Samples) == 0 {
		t.Error("no samples from loadavg")
	}
	out := s.Outcomes()
	if len(out) != 2 || out[0].Name != "loadavg" || !out[0].OK() || out[1].Name != "meminfo" || out[1].OK() || out[1].Err == nil {
		t.Errorf("outcomes %+v, want loadavg ok and meminfo failing", out)
	}
	// node_exporter's families of each run, as its dashboards read them.
	got := map[string]float64{}
	for _, smp := range c.Samples {
		if name := smp.Labels.Get("__name__"); strings.HasPrefix(name, "node_scrape_collector_") {
			got[name+"/"+smp.Labels.Get("collector")] = smp.V
		}
	}
	if got["node_scrape_collector_success/loadavg"] != 1 || got["node_scrape_collector_success/meminfo"] != 0 || len(got) != 4 {
		t.Errorf("node_scrape_collector_* %v, want success 1 for loadavg, 0 for meminfo, and both durations", got)
	}
}

// TestSetStartsBootCountersAtBoot: the counters the kernel starts at boot
// (CPU time, /proc/stat's totals) get the boot time as their start, read
// from /proc/stat whether or not the stat collector runs; gauges and
// device counters (an interface may appear after boot) get none.
func TestSetStartsBootCountersAtBoot(t *testing.T) {
	procfs := t.TempDir()
	stat := "cpu  10 0 20 300 5 0 1 0 0 0\ncpu0 10 0 20 300 5 0 1 0 0 0\nintr 100 1 2\nctxt 2000\nbtime 1700000000\nprocesses 300\nprocs_running 1\nprocs_blocked 0\n"
	netdev := "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n"
	for name, data := range map[string]string{"stat": stat, "loadavg": "0.42 0.33 0.25 1/123 4567\n", "net/dev": netdev} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(procfs, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(procfs, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, enabled := range []map[string]bool{
		{"cpu": true, "stat": true, "loadavg": true, "netdev": true},
		{"cpu": true, "loadavg": true, "netdev": true}, // btime read by the set itself
	} {
		var c collectors.Collection
		s := NewSet(enabled, collectors.Paths{ProcFS: procfs, SysFS: t.TempDir()})
		_ = s.Collect(context.Background(), &c)
		counters := 0
		for _, smp := range c.Samples {
			name := smp.Labels.Get("__name__")
			bootCounter := smp.Desc.Type == collectors.Counter && !strings.HasPrefix(name, "node_network_")
			switch {
			case bootCounter && smp.Start != 1_700_000_000_000:
				t.Errorf("%v: %s: start %d, want the boot time", enabled, smp.Labels, smp.Start)
			case !bootCounter && smp.Start != 0:
				t.Errorf("%v: %s: start %d, want none", enabled, smp.Labels, smp.Start)
			}
			if bootCounter {
				counters++
			}
		}
		if counters == 0 {
			t.Fatalf("%v: no counters collected", enabled)
		}
	}
}
