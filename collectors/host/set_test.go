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
