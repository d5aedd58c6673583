package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/ferry-agent/ferry/collectors"
)

const nodeExporterBinary = "prometheus-node-exporter"

// staticFamilies do not change between two reads a moment apart: their
// values must be identical to node_exporter's.
var staticFamilies = map[string]bool{
	"node_memory_MemTotal_bytes":           true,
	"node_memory_SwapTotal_bytes":          true,
	"node_memory_Hugepagesize_bytes":       true,
	"node_filesystem_size_bytes":           true,
	"node_filesystem_files":                true,
	"node_filesystem_readonly":             true,
	"node_filesystem_device_error":         true,
	"node_boot_time_seconds":               true,
	"node_uname_info":                      true,
	"node_os_info":                         true,
	"node_os_version":                      true,
	"node_time_zone_offset_seconds":        true,
	"node_time_clocksource_available_info": true,
	"node_time_clocksource_current_info":   true,
	"node_hwmon_chip_names":                true,
}

// movingSlack is how far a moving gauge may stray outside the range of
// ferry's two reads around node_exporter's: relative, and at least absolute.
func movingSlack(name string, v float64) float64 {
	abs := 1.0
	switch {
	case strings.HasPrefix(name, "node_memory_") && strings.HasSuffix(name, "_bytes"):
		abs = 64 << 20
	case strings.HasPrefix(name, "node_memory_"):
		abs = 64
	case strings.HasPrefix(name, "node_filesystem_"):
		abs = 256 << 20
	case strings.HasPrefix(name, "node_procs_"), name == "node_disk_io_now",
		// node_exporter's own sockets and files count, while it serves the scrape.
		strings.HasPrefix(name, "node_sockstat_"), name == "node_filefd_allocated":
		abs = 64
	case strings.HasPrefix(name, "node_thermal_"), strings.HasPrefix(name, "node_hwmon_"):
		abs = 5
	}
	return math.Max(abs, 0.05*math.Abs(v))
}

// TestAgainstNodeExporter runs Debian's node_exporter with the collectors
// ferry has, and compares every family both emit: help, type, label names,
// and values. ferry collects just before and just after node_exporter's
// scrape; node_exporter's counters must lie between the two reads, its
// static values equal them, and its moving gauges lie near them.
func TestAgainstNodeExporter(t *testing.T) {
	var names []string
	for _, e := range Collectors() {
		if !routerExporterOnly[e.Name] {
			names = append(names, e.Name)
		}
	}
	url := startNodeExporter(t, collectors.Paths{ProcFS: "/proc", SysFS: "/sys", RootFS: "/"}, names)

	live := collectors.Paths{ProcFS: "/proc", SysFS: "/sys", RootFS: "/"}
	before := collectLive(t, live)
	body := get(t, url)
	after := collectLive(t, live)
	ne := parseNodeExporter(t, body)

	ferryTypes := map[string]collectors.Type{}
	ferryHelp := map[string]string{}
	for _, d := range before.types {
		ferryTypes[d.Name] = d.Type
		ferryHelp[d.Name] = d.Help
	}
	var both, neOnly, ferryOnly []string
	for name := range ne.types {
		if _, ok := ferryTypes[name]; ok {
			both = append(both, name)
		} else if !strings.HasPrefix(name, "node_scrape_") && !strings.HasPrefix(name, "go_") &&
			!strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "promhttp_") &&
			!strings.HasPrefix(name, "node_exporter_") {
			neOnly = append(neOnly, name)
		}
	}
	for name := range ferryTypes {
		if _, ok := ne.types[name]; !ok {
			ferryOnly = append(ferryOnly, name)
		}
	}
	sort.Strings(both)
	sort.Strings(neOnly)
	sort.Strings(ferryOnly)
	t.Logf("%d families in both; node_exporter only: %v; ferry only: %v", len(both), neOnly, ferryOnly)
	if len(both) < 20 {
		t.Errorf("only %d families in common: %v", len(both), both)
	}

	for _, name := range both {
		if name == "node_uname_info" && os.Getenv("FERRY_TEST_EXEC") != "" {
			// qemu-user answers uname with the emulated machine (aarch64),
			// node_exporter runs natively (x86_64); compared in native runs.
			continue
		}
		if got, want := ferryTypes[name], ne.types[name]; string(got) != want {
			t.Errorf("%s: ferry's type %s, node_exporter's %s", name, got, want)
		}
		if got, want := ferryHelp[name], ne.help[name]; got != want {
			t.Errorf("%s: ferry's help %q, node_exporter's %q", name, got, want)
		}
		if got, want := before.labelNames(name), ne.labelNames(name); got != want {
			t.Errorf("%s: ferry's label names %s, node_exporter's %s", name, got, want)
		}
		for key, n := range ne.series[name] {
			a, okA := before.series[name][key]
			b, okB := after.series[name][key]
			if !okA && !okB {
				// node_exporter's series must be ferry's: Debian's
				// defaults exclude more (lo, /run, partitions), not less.
				t.Errorf("%s: node_exporter has %s, ferry has not", name, key)
				continue
			}
			if !okA {
				a = b
			}
			if !okB {
				b = a
			}
			lo, hi := math.Min(a, b), math.Max(a, b)
			switch {
			case staticFamilies[name]:
				if a != n || b != n {
					t.Errorf("%s: node_exporter %v, ferry %v and %v", key, n, a, b)
				}
			case ferryTypes[name] == collectors.Counter:
				// Reads before and after bracket node_exporter's; a little
				// slack for counters the kernel lets step back (iowait).
				slack := math.Max(1, 0.01*hi)
				if n < lo-slack || n > hi+slack {
					t.Errorf("%s: node_exporter %v, ferry %v before and %v after", key, n, a, b)
				}
			default:
				slack := movingSlack(name, n)
				if n < lo-slack || n > hi+slack {
					t.Errorf("%s: node_exporter %v, ferry %v before and %v after", key, n, a, b)
				}
			}
		}
	}
}

// routerExporterOnly are ferry's collectors with prometheus-node-exporter-lua's
// families, which node_exporter does not have.
var routerExporterOnly = map[string]bool{"openwrt": true, "nat_traffic": true, "wifi_stations": true}

// startNodeExporter runs Debian's node_exporter with only the given
// collectors, reading under paths, until the test ends; it returns the URL
// of its metrics. It skips the test with -short, and where node_exporter is
// not installed unless CI=true.
func startNodeExporter(t *testing.T, paths collectors.Paths, names []string, extraArgs ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts node_exporter; not with -short")
	}
	bin, err := exec.LookPath(nodeExporterBinary)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed (apt-get install prometheus-node-exporter): %v", nodeExporterBinary, err)
		}
		t.Skipf("%s not installed: %v", nodeExporterBinary, err)
	}
	addr := freeLoopbackAddr(t)
	args := []string{"--web.listen-address=" + addr, "--collector.disable-defaults",
		"--path.procfs=" + paths.ProcFS, "--path.sysfs=" + paths.SysFS, "--path.rootfs=" + paths.RootFS,
		// ferry reads /proc/net/dev; so does node_exporter with this.
		"--no-collector.netdev.netlink"}
	for _, name := range names {
		args = append(args, "--collector."+name)
	}
	args = append(args, extraArgs...)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("node_exporter's log:\n%s", stderr.String())
		}
	})
	url := "http://" + addr + "/metrics"
	waitReady(t, url)
	return url
}

// fixtureCollectors are the collectors that read nothing but files under
// procfs, so that node_exporter pointed at a fixture's procfs reads exactly
// what ferry reads.
var fixtureCollectors = []string{"loadavg", "meminfo", "netdev", "stat", "conntrack", "entropy", "filefd", "sockstat", "vmstat", "netstat"}

// TestAgainstNodeExporterOnFixtures runs node_exporter on each fixture's
// procfs and compares, for the collectors that read only files there, the
// two outputs family by family: the same families, help texts, types and
// series, and identical values (the files do not move).
func TestAgainstNodeExporterOnFixtures(t *testing.T) {
	for _, f := range []*fixture{openwrtFixture, piFixture} {
		t.Run(f.golden, func(t *testing.T) {
			procfs, err := filepath.Abs(f.paths.ProcFS)
			if err != nil {
				t.Fatal(err)
			}
			empty := t.TempDir() // nothing under sysfs and rootfs for these collectors
			// Debian's node_exporter leaves out lo by default, upstream's does not.
			url := startNodeExporter(t, collectors.Paths{ProcFS: procfs, SysFS: empty, RootFS: empty}, fixtureCollectors,
				"--collector.netdev.device-exclude=^$")
			ne := parseNodeExporter(t, get(t, url))

			var c collectors.Collection
			for _, e := range Collectors() {
				if !slices.Contains(fixtureCollectors, e.Name) {
					continue
				}
				if err := e.New(f.paths).Collect(context.Background(), &c); err != nil {
					t.Errorf("collector %s: %v", e.Name, err)
				}
			}
			ferry := map[string]map[string]float64{}
			for _, s := range c.Samples {
				name := s.Labels.Get(labels.MetricName)
				if ferry[name] == nil {
					ferry[name] = map[string]float64{}
				}
				ferry[name][s.Labels.String()] = s.V
			}
			for _, d := range c.Families {
				if _, ok := ne.types[d.Name]; !ok {
					t.Errorf("%s: ferry has it, node_exporter has not", d.Name)
					continue
				}
				if got, want := string(d.Type), ne.types[d.Name]; got != want {
					t.Errorf("%s: ferry's type %s, node_exporter's %s", d.Name, got, want)
				}
				if got, want := d.Help, ne.help[d.Name]; got != want {
					t.Errorf("%s: ferry's help %q, node_exporter's %q", d.Name, got, want)
				}
			}
			n := 0
			for name, series := range ne.series {
				if strings.HasPrefix(name, "node_scrape_") || strings.HasPrefix(name, "node_exporter_") ||
					strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") || strings.HasPrefix(name, "promhttp_") {
					continue
				}
				for key, want := range series {
					n++
					got, ok := ferry[name][key]
					if !ok {
						t.Errorf("%s: node_exporter has it, ferry has not", key)
					} else if got != want {
						t.Errorf("%s: ferry %v, node_exporter %v", key, got, want)
					}
				}
				for key := range ferry[name] {
					if _, ok := series[key]; !ok {
						t.Errorf("%s: ferry has it, node_exporter has not", key)
					}
				}
			}
			if n < 100 {
				t.Errorf("only %d series compared", n)
			}
			t.Logf("%d series of %d families identical", n, len(c.Families))
		})
	}
}

type liveCollection struct {
	types  []*collectors.Desc
	series map[string]map[string]float64 // family → series → value
}

func collectLive(t *testing.T, p collectors.Paths) liveCollection {
	t.Helper()
	var c collectors.Collection
	for _, e := range Collectors() {
		if err := e.New(p).Collect(context.Background(), &c); err != nil {
			// A board without hwmon or thermal zones: the others still count.
			t.Logf("collector %s: %v", e.Name, err)
		}
	}
	lc := liveCollection{types: c.Families, series: map[string]map[string]float64{}}
	for _, s := range c.Samples {
		name := s.Labels.Get(labels.MetricName)
		if lc.series[name] == nil {
			lc.series[name] = map[string]float64{}
		}
		lc.series[name][s.Labels.String()] = s.V
	}
	return lc
}

func (lc liveCollection) labelNames(family string) string {
	return labelNameSet(lc.series[family])
}

type neScrape struct {
	help   map[string]string
	types  map[string]string
	series map[string]map[string]float64
}

func (s neScrape) labelNames(family string) string { return labelNameSet(s.series[family]) }

// labelNameSet lists the label names that a family's series use, from
// their label-set strings.
func labelNameSet(series map[string]float64) string {
	names := map[string]bool{}
	for key := range series {
		lset, err := parseSeriesKey(key)
		if err != nil {
			continue
		}
		lset.Range(func(l labels.Label) {
			if l.Name != labels.MetricName {
				names[l.Name] = true
			}
		})
	}
	var out []string
	for n := range names {
		out = append(out, n)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func parseSeriesKey(key string) (labels.Labels, error) {
	p := textparse.NewPromParser([]byte(strings.Replace(key, "{", "x{", 1)+" 1\n"), labels.NewSymbolTable(), false)
	if _, err := p.Next(); err != nil {
		return labels.EmptyLabels(), err
	}
	var lset labels.Labels
	p.Labels(&lset)
	return lset, nil
}

// parseNodeExporter reads node_exporter's text exposition. Empty label
// values are dropped, as Prometheus (and ferry) store them.
func parseNodeExporter(t *testing.T, body []byte) neScrape {
	t.Helper()
	s := neScrape{help: map[string]string{}, types: map[string]string{}, series: map[string]map[string]float64{}}
	p := textparse.NewPromParser(body, labels.NewSymbolTable(), false)
	var lset labels.Labels
	for {
		entry, err := p.Next()
		if errors.Is(err, io.EOF) {
			return s
		}
		if err != nil {
			t.Fatalf("parsing node_exporter's output: %v", err)
		}
		switch entry {
		case textparse.EntryHelp:
			name, help := p.Help()
			s.help[string(name)] = string(help)
		case textparse.EntryType:
			name, typ := p.Type()
			if typ == model.MetricTypeUnknown {
				typ = model.MetricType(collectors.Untyped) // the text format's name, which the parser renames
			}
			s.types[string(name)] = string(typ)
		case textparse.EntrySeries:
			_, _, v := p.Series()
			p.Labels(&lset)
			b := labels.NewBuilder(lset)
			lset.Range(func(l labels.Label) {
				if l.Value == "" {
					b.Del(l.Name)
				}
			})
			l := b.Labels()
			name := l.Get(labels.MetricName)
			if s.series[name] == nil {
				s.series[name] = map[string]float64{}
			}
			s.series[name][l.String()] = v
		}
	}
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node_exporter not ready at %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatal(fmt.Errorf("GET %s: %s", url, resp.Status))
	}
	return body
}
