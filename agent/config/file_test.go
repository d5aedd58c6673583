package config

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/spf13/pflag"

	"github.com/ferry-agent/ferry/agent/remotewrite"
)

// TestPrometheusCorpus: prometheus.yml files as they come from public
// setups (testdata/prometheus, each naming its source on its first line)
// are accepted as they are. A "# ignored:" line names the sections ferry
// warns about, and exactly those get a warning.
func TestPrometheusCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/prometheus/*.yml")
	if err != nil || len(files) < 10 {
		t.Fatalf("corpus: %d files, %v", len(files), err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			source, ignored := corpusHeader(t, path)
			if !strings.HasPrefix(source, "# Source: ") {
				t.Fatalf("first line %q: want \"# Source: ...\" naming where the file comes from", source)
			}
			cfg, err := CheckFile(path)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			var warned []string
			for _, w := range cfg.Warnings {
				rest, ok := strings.CutPrefix(w, path+": line ")
				if !ok {
					t.Errorf("warning %q does not name the file and line", w)
					continue
				}
				_, rest, _ = strings.Cut(rest, ": ")
				section, _, _ := strings.Cut(rest, " ")
				warned = append(warned, section)
			}
			slices.Sort(warned)
			slices.Sort(ignored)
			if !slices.Equal(warned, ignored) {
				t.Errorf("warnings for %v, want for %v:\n%s", warned, ignored, strings.Join(cfg.Warnings, "\n"))
			}
			if len(cfg.Targets)+len(cfg.FileSD) == 0 {
				t.Error("no scrape targets")
			}
		})
	}
}

// corpusHeader returns a corpus file's first line and the sections its
// "# ignored:" line names.
func corpusHeader(t *testing.T, path string) (first string, ignored []string) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for i := 0; sc.Scan() && i < 3; i++ {
		if i == 0 {
			first = sc.Text()
		}
		if rest, ok := strings.CutPrefix(sc.Text(), "# ignored:"); ok {
			ignored = strings.Fields(rest)
		}
	}
	return first, ignored
}

func TestCorpusMeaning(t *testing.T) {
	cfg, err := CheckFile("testdata/prometheus/remote-write-tuned.yml")
	if err != nil {
		t.Fatal(err)
	}
	rw := cfg.RemoteWrite
	if rw.MaxSamplesPerSend != 2000 || rw.MinBackoff != 30*time.Millisecond || rw.MaxBackoff != 5*time.Second ||
		rw.MaxSampleAge != time.Hour || rw.Timeout != 30*time.Second || rw.HTTP.Headers["X-Scope-OrgID"] != "edge" {
		t.Errorf("remote write %+v", rw)
	}

	cfg, err = CheckFile("testdata/prometheus/remote-write-grafana-cloud.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.WriteRelabel) != 1 || cfg.RemoteWrite.HTTP.BasicAuth == nil {
		t.Errorf("write relabel %d rules, basic auth %v", len(cfg.WriteRelabel), cfg.RemoteWrite.HTTP.BasicAuth)
	}

	cfg, err = CheckFile("testdata/prometheus/snmp-blackbox.yml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tg := range cfg.Targets {
		got = append(got, tg.Instance()+" "+tg.URL.String())
	}
	want := []string{
		"192.168.1.1 http://127.0.0.1:9116/snmp?auth=public_v2&module=if_mib&target=192.168.1.1",
		"http://prometheus.io http://127.0.0.1:9115/probe?module=http_2xx&target=http%3A%2F%2Fprometheus.io",
		"https://prometheus.io http://127.0.0.1:9115/probe?module=http_2xx&target=https%3A%2F%2Fprometheus.io",
	}
	if !slices.Equal(got, want) {
		t.Errorf("targets:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	cfg, err = CheckFile("testdata/prometheus/file-sd.yml")
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := filepath.Abs("testdata/prometheus")
	if len(cfg.FileSD) != 1 || cfg.FileSD[0].Job != "node" || cfg.FileSD[0].RefreshInterval != time.Minute ||
		!slices.Equal(cfg.FileSD[0].Files, []string{"testdata/prometheus/targets.json", "testdata/prometheus/targets/*.yml"}) {
		t.Errorf("file_sd %+v (config dir %s)", cfg.FileSD, dir)
	}
}

// TestServerSectionsWarn: what only a Prometheus server uses is accepted
// with one warning each, naming the file, the line, the section and why.
func TestServerSectionsWarn(t *testing.T) {
	path := writeConfigFile(t, `global:
  scrape_interval: 15s
  evaluation_interval: 1m
rule_files: [a.yml]
alerting:
  alertmanagers: [{static_configs: [{targets: ['am:9093']}]}]
remote_read: [{url: 'http://r/read'}]
storage: {tsdb: {out_of_order_time_window: 10m}}
tracing: {endpoint: 'tempo:4317'}
`)
	cfg, err := CheckFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		path + ": line 4: rule_files ignored: ferry evaluates no rules",
		path + ": line 5: alerting ignored: ferry sends no alerts",
		path + ": line 7: remote_read ignored: ferry answers no queries",
		path + ": line 8: storage ignored: ferry keeps no TSDB",
		path + ": line 9: tracing ignored: ferry exports no traces",
	}
	if len(cfg.Warnings) != len(want) {
		t.Fatalf("warnings:\n%s", strings.Join(cfg.Warnings, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(cfg.Warnings[i], w) {
			t.Errorf("warning %q, want it to start with %q", cfg.Warnings[i], w)
		}
	}
	// Sections left empty, as in Prometheus' example file, are no warning.
	cfg, err = CheckFile(writeConfigFile(t, "rule_files:\n  # - a.yml\nscrape_configs: []\n"))
	if err != nil || len(cfg.Warnings) != 0 {
		t.Errorf("empty rule_files: %v, warnings %q", err, cfg.Warnings)
	}
}

// TestServiceDiscoveryErrors: a discovery ferry does not have is an error
// naming the mechanism, the file and line, and file_sd_configs; never a
// flag or a path of ferry's repository.
func TestServiceDiscoveryErrors(t *testing.T) {
	for _, sd := range []string{"docker", "kubernetes", "consul", "dns", "ec2", "http", "dockerswarm", "nomad"} {
		path := writeConfigFile(t, "scrape_configs:\n  - job_name: a\n    static_configs: [{targets: ['h:1']}]\n  - job_name: b\n    "+sd+"_sd_configs:\n      - {}\n")
		_, err := CheckFile(path)
		if err == nil {
			t.Errorf("%s_sd_configs accepted", sd)
			continue
		}
		msg := err.Error()
		for _, w := range []string{path + ": line 5: " + sd + "_sd_configs: ferry has no " + sd + " service discovery", "file_sd_configs"} {
			if !strings.Contains(msg, w) {
				t.Errorf("error %q does not say %q", msg, w)
			}
		}
		if strings.Contains(msg, "--") || strings.Contains(msg, "packaging/") {
			t.Errorf("error %q names a flag or a repository path", msg)
		}
	}
}

// Several remote_write entries: each endpoint with its own URL, auth,
// headers, relabeling and queue settings; the flags speak of the first.
func TestSeveralRemoteWrites(t *testing.T) {
	path := writeConfigFile(t, `remote_write:
  - url: http://a/write
    queue_config: {max_samples_per_send: 100}
  - url: http://b/write
    name: backup
    remote_timeout: 7s
    headers: {X-Scope-OrgID: edge}
    basic_auth: {username: u, password: p}
    protobuf_message: io.prometheus.write.v2.Request
    write_relabel_configs:
      - {source_labels: [__name__], regex: "go_.*", action: drop}
    queue_config: {max_samples_per_send: 300, min_backoff: 100ms, max_backoff: 1s, sample_age_limit: 1h}
`)
	cfg, err := CheckFile(path)
	if err != nil {
		t.Fatal(err)
	}
	eps := cfg.Endpoints()
	if len(eps) != 2 {
		t.Fatalf("%d endpoints; want 2", len(eps))
	}
	a, b := eps[0], eps[1]
	if a.URL != "http://a/write" || a.MaxSamplesPerSend != 100 || a.Name != "" || len(a.WriteRelabel) != 0 || a.HTTP.BasicAuth != nil {
		t.Errorf("first endpoint %+v", a)
	}
	if b.URL != "http://b/write" || b.Name != "backup" || b.Timeout != 7*time.Second || b.HTTP.Headers["X-Scope-OrgID"] != "edge" ||
		b.HTTP.BasicAuth == nil || b.Protocol != remotewrite.Protocol2 || len(b.WriteRelabel) != 1 ||
		b.MaxSamplesPerSend != 300 || b.MinBackoff != 100*time.Millisecond || b.MaxBackoff != time.Second || b.MaxSampleAge != time.Hour {
		t.Errorf("second endpoint %+v", b)
	}
	if a.Label() == b.Label() || b.Label() != "backup" || len(a.Label()) != 6 {
		t.Errorf("endpoint labels %q, %q", a.Label(), b.Label())
	}

	// The flags are the first entry's.
	cfg = DefaultConfig()
	fs := pflag.NewFlagSet("ferry", pflag.ContinueOnError)
	flags := NewFlags(fs, &cfg, nil)
	if err := fs.Parse([]string{"--config.file=" + path, "--remote-write.url=http://flag/write", "--remote-write.header=X-A=1"}); err != nil {
		t.Fatal(err)
	}
	if err := flags.Finish(); err != nil {
		t.Fatal(err)
	}
	eps = cfg.Endpoints()
	if eps[0].URL != "http://flag/write" || eps[0].HTTP.Headers["X-A"] != "1" || eps[1].URL != "http://b/write" || eps[1].HTTP.Headers["X-A"] != "" {
		t.Errorf("with flags: %+v", eps)
	}
}

// What cannot work with several endpoints is refused, naming the line.
func TestSeveralRemoteWritesRefused(t *testing.T) {
	for content, want := range map[string][]string{
		"remote_write:\n  - url: http://a/write\n  - url: http://a/write\n":                           {"line 3: remote_write", "url http://a/write without a name twice", "line 2", "name"},
		"remote_write:\n  - url: http://a/write\n    name: x\n  - url: http://b/write\n    name: x\n": {"line 4: remote_write", `name "x" twice`},
		"remote_write:\n  - url: http://a/write\n  - name: b\n":                                       {"line 3: remote_write", "url is required"},
	} {
		_, err := CheckFile(writeConfigFile(t, content))
		if err == nil {
			t.Errorf("%q accepted", content)
			continue
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q does not say %q", content, err, w)
			}
		}
	}
	// Fresh-first and the daily budget split one endpoint's data into
	// fresh and backlog: one endpoint only.
	for _, flag := range []string{"--remote-write.fresh-first", "--remote-write.max-bytes-per-day=1MiB"} {
		cfg := DefaultConfig()
		fs := pflag.NewFlagSet("ferry", pflag.ContinueOnError)
		flags := NewFlags(fs, &cfg, nil)
		path := writeConfigFile(t, "remote_write:\n  - url: http://a/write\n  - url: http://b/write\n")
		if err := fs.Parse([]string{"--config.file=" + path, flag}); err != nil {
			t.Fatal(err)
		}
		err := flags.Finish()
		if err == nil || !strings.Contains(err.Error(), "one remote_write endpoint only") {
			t.Errorf("%s with two endpoints: %v", flag, err)
		}
	}
	// The same from the file's ferry section.
	_, err := CheckFile(writeConfigFile(t, "ferry:\n  remote_write: {fresh_first: true}\nremote_write:\n  - url: http://a/write\n  - url: http://b/write\n"))
	if err == nil || !strings.Contains(err.Error(), "ferry.remote_write.fresh_first") {
		t.Errorf("fresh_first in the file with two endpoints: %v", err)
	}
}

// TestFileErrorsNameNoFlagOrRepositoryPath: what check-config says of a
// file's mistakes is about the file.
func TestFileErrorsNameNoFlagOrRepositoryPath(t *testing.T) {
	for _, content := range []string{
		"global:\n  scrape_intervall: 10s\n",
		"global:\n  scrape_interval: 10ms\n",
		"remote_write:\n  - url: ftp://x/\n",
		"remote_write:\n  - name: x\n",
		"remote_write:\n  - url: http://x/\n    queue_config: {min_backoff: 1m}\n",
		"remote_write:\n  - url: http://x/\n    write_relabel_configs: [{action: explode}]\n",
		"scrape_configs:\n  - job_name: a\n    scrape_protocols: [Carrier-Pigeon]\n",
		"scrape_configs:\n  - job_name: a\n    file_sd_configs: [{files: [targets.txt]}]\n",
		"scrape_configs:\n  - job_name: a\n    file_sd_configs: [{files: ['*/targets.json']}]\n",
		"scrape_configs:\n  - job_name: a\n    file_sd_configs: [{files: []}]\n",
	} {
		path := writeConfigFile(t, content)
		_, err := CheckFile(path)
		if err == nil {
			t.Errorf("%q accepted", content)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, path+": line ") || strings.Contains(msg, "--") || strings.Contains(msg, "packaging/") {
			t.Errorf("%q: error %q: want the file and line first, no flag, no repository path", content, msg)
		}
	}
}

// TestFileSDTargets: groups read from files become targets as
// static_configs do: the job's settings, the group's labels, relabeling
// that may use __meta_filepath; labels starting with __ go.
func TestFileSDTargets(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ferry.yml")
	if err := os.WriteFile(path, []byte(`scrape_configs:
  - job_name: node
    scrape_interval: 30s
    metrics_path: /m
    file_sd_configs:
      - files: [sd/*.json]
      - files: [/etc/ferry/more.yml, sd/*.json]
        refresh_interval: 10s
    relabel_configs:
      - source_labels: [__meta_filepath]
        regex: '.*/(.*)\.json'
        target_label: file
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := CheckFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.FileSD) != 1 {
		t.Fatalf("file_sd %+v", cfg.FileSD)
	}
	sd := cfg.FileSD[0]
	if !slices.Equal(sd.Files, []string{filepath.Join(dir, "sd/*.json"), "/etc/ferry/more.yml"}) || sd.RefreshInterval != 10*time.Second {
		t.Errorf("files %q refresh %s", sd.Files, sd.RefreshInterval)
	}
	ts, errs := sd.Targets([]TargetGroup{
		{Targets: []string{"a:9100", "b:9100"}, Labels: map[string]string{"rack": "r1", "__meta_filepath": "/x/rack1.json"}},
		{Targets: []string{"c:9100"}, Labels: map[string]string{"__metrics_path__": "/other"}},
		{Targets: []string{"d/x"}}, // not host:port
		{Targets: []string{"a:9100", "b:9100"}, Labels: map[string]string{"rack": "r1", "__meta_filepath": "/x/rack1.json"}}, // twice
	})
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "d/x") {
		t.Errorf("errors %v, want one for d/x", errs)
	}
	var got []string
	for _, tg := range ts {
		got = append(got, tg.URL.String()+" "+tg.Labels.String()+" "+tg.Interval.String())
	}
	want := []string{
		`http://a:9100/m {file="rack1", instance="a:9100", job="node", rack="r1"} 30s`,
		`http://b:9100/m {file="rack1", instance="b:9100", job="node", rack="r1"} 30s`,
		`http://c:9100/other {instance="c:9100", job="node"} 30s`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("targets:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !labels.Equal(ts[0].Labels, labels.FromStrings("file", "rack1", "instance", "a:9100", "job", "node", "rack", "r1")) {
		t.Errorf("labels %s", ts[0].Labels)
	}
}

// TestGlobalLimitsAreEachJobsDefault: global sample_limit and the like
// apply to every job that sets none, as in Prometheus.
func TestGlobalLimitsAreEachJobsDefault(t *testing.T) {
	cfg, err := CheckFile(writeConfigFile(t, `global:
  sample_limit: 100
  body_size_limit: 1MB
scrape_configs:
  - job_name: a
    static_configs: [{targets: ['h:1']}]
  - job_name: b
    sample_limit: 5
    static_configs: [{targets: ['h:2']}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := cfg.Targets[0].Limits, cfg.Targets[1].Limits; a.Samples != 100 || a.BodyBytes != 1<<20 || b.Samples != 5 || b.BodyBytes != 1<<20 {
		t.Errorf("limits a %+v b %+v", a, b)
	}
}
