package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/ferry-agent/ferry/internal/memtrim"
)

func TestBadUsageIsOneLineNamingTheFlagAndExitsTwo(t *testing.T) {
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"--storage.max-size=12XB"}, "--storage.max-size"},
		{[]string{"--scrape.interval=soon"}, "--scrape.interval"},
		{[]string{"--scrape.interval=10ms"}, "--scrape.interval"},
		{[]string{"--remote-write.url=ftp://example/write"}, "--remote-write.url"},
		{[]string{"--external-label=9bad=x"}, "--external-label"},
		{[]string{"--log.level=loud"}, "--log.level"},
		{[]string{"--no-such-flag"}, "--no-such-flag"},
		{[]string{"--config.file=/nonexistent/ferry.yml"}, "--config.file"},
		{[]string{"--web.listen-address=9391"}, "--web.listen-address"},
		{[]string{"--web.listen-address=localhost:http-alt"}, "--web.listen-address"},
		{[]string{"--web.listen-address=:99999"}, "--web.listen-address"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(c.args, &stdout, &stderr)
		msg := stderr.String()
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", c.args, code, msg)
		}
		if strings.Count(msg, "\n") != 1 || !strings.Contains(msg, c.flag) {
			t.Errorf("%v: stderr %q: want one line naming %s", c.args, msg, c.flag)
		}
	}
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("--help exited %d", code)
	}
	for _, flag := range []string{
		"--remote-write.url", "--storage.path", "--storage.max-size", "--scrape.interval",
		"--scrape.target", "--external-label", "--web.listen-address", "--config.file", "--log.level",
		"--collector.cpu", "--no-collector.cpu",
	} {
		if !strings.Contains(stdout.String(), flag) {
			t.Errorf("--help does not mention %s", flag)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{arg}, &stdout, &stderr); code != 0 {
			t.Fatalf("%s exited %d", arg, code)
		}
		if out := stdout.String(); !strings.HasPrefix(out, "ferry ") || !strings.Contains(out, "commit") || !strings.Contains(out, "go1.") {
			t.Fatalf("%s printed %q", arg, out)
		}
	}
}

// TestCheckConfigCorpus: check-config takes the prometheus.yml files of
// public setups and lists what it ignores; a discovery ferry lacks is one
// line naming the file, the line and the way out.
func TestCheckConfigCorpus(t *testing.T) {
	files, _ := filepath.Glob("../../agent/config/testdata/prometheus/*.yml")
	if len(files) == 0 {
		t.Fatal("no corpus")
	}
	for _, f := range files {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"check-config", f}, &stdout, &stderr); code != 0 {
			t.Errorf("%s: exit %d: %s", f, code, stderr.String())
		}
		if !strings.HasPrefix(stdout.String(), f+": OK\n") {
			t.Errorf("%s: printed %q", f, stdout.String())
		}
	}
	var stdout, stderr bytes.Buffer
	run([]string{"check-config", "../../agent/config/testdata/prometheus/server-sections.yml"}, &stdout, &stderr)
	if out := stdout.String(); !strings.Contains(out, "ignored:\n    line 5: rule_files ignored") || !strings.Contains(out, "tracing ignored") {
		t.Errorf("check-config does not list what it ignores:\n%s", out)
	}

	path := filepath.Join(t.TempDir(), "prometheus.yml")
	os.WriteFile(path, []byte("scrape_configs:\n  - job_name: containers\n    docker_sd_configs:\n      - host: unix:///var/run/docker.sock\n"), 0o644)
	stdout.Reset()
	stderr.Reset()
	code := run([]string{"check-config", path}, &stdout, &stderr)
	if msg := stderr.String(); code != 1 || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, path+": line 3: docker_sd_configs") ||
		!strings.Contains(msg, "file_sd_configs") || strings.Contains(msg, "--") {
		t.Errorf("docker_sd_configs: exit %d, %q", code, msg)
	}
}

// TestCollectPrintsTheHostCollection: `ferry collect` prints what the host
// collectors would send, in the text format Prometheus parses.
func TestCollectPrintsTheHostCollection(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"collect"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	p := textparse.NewPromParser(stdout.Bytes(), labels.NewSymbolTable(), false)
	seen := map[string]bool{}
	for {
		entry, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("output does not parse: %v", err)
		}
		if entry == textparse.EntrySeries {
			var lset labels.Labels
			p.Labels(&lset)
			seen[lset.Get("__name__")] = true
		}
	}
	for _, name := range []string{"node_load1", "node_memory_MemTotal_bytes", "node_cpu_seconds_total", "node_boot_time_seconds"} {
		if !seen[name] {
			t.Errorf("%s missing from ferry collect", name)
		}
	}
	stdout.Reset()
	if code := run([]string{"collect", "--no-collector.cpu", "--no-collector.loadavg"}, &stdout, &stderr); code != 0 || strings.Contains(stdout.String(), "node_load1 ") || strings.Contains(stdout.String(), "node_cpu_seconds_total{") {
		t.Errorf("collectors turned off still print (exit %d)", code)
	}
}

// The agent's runtime defaults (a garbage collector target of 15, one
// processor) apply unless GOGC or GOMAXPROCS is set, each on its own.
func TestRuntimeDefaultsUnlessSet(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, tc := range []struct {
		gogc, maxprocs string
		wantGC         int
		wantProcs      int
	}{{"", "", defaultGCPercent, defaultMaxProcs}, {"100", "", 100, defaultMaxProcs}, {"off", "", 100, defaultMaxProcs}, {"", "3", defaultGCPercent, 3}} {
		debug.SetGCPercent(100) // as the runtime leaves them for the environment
		runtime.GOMAXPROCS(3)
		setRuntimeDefaults(func(name string) string {
			switch name {
			case "GOGC":
				return tc.gogc
			case "GOMAXPROCS":
				return tc.maxprocs
			}
			return ""
		})
		if got := debug.SetGCPercent(100); got != tc.wantGC {
			t.Errorf("GOGC=%q: GC percent %d, want %d", tc.gogc, got, tc.wantGC)
		}
		if got := runtime.GOMAXPROCS(0); got != tc.wantProcs {
			t.Errorf("GOMAXPROCS=%q: %d processors, want %d", tc.maxprocs, got, tc.wantProcs)
		}
	}
}

// The agent gives its start's code back once, a minute after the start,
// and the heap's free pages about once a minute, in whole collection
// intervals and half an interval after a collection, unless GOGC is set.
func TestTrimScheduleUnlessGOGCIsSet(t *testing.T) {
	for _, tc := range []struct {
		gogc        string
		interval    time.Duration
		first, want time.Duration
	}{
		{"", 15 * time.Second, 52500 * time.Millisecond, time.Minute},
		{"", 7 * time.Second, 59500 * time.Millisecond, 63 * time.Second},
		{"", 2 * time.Minute, time.Minute, 2 * time.Minute},
		{"100", 15 * time.Second, 0, 0},
	} {
		s := trimSchedule(tc.interval, func(name string) string {
			if name == "GOGC" {
				return tc.gogc
			}
			return ""
		})
		if want := (memtrim.Schedule{ReleaseCodeAfter: time.Minute, ReturnFreeFirst: tc.first, ReturnFreeEvery: tc.want}); s != want {
			t.Errorf("GOGC=%q, interval %v: %+v, want %+v", tc.gogc, tc.interval, s, want)
		}
	}
}
