package config

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/spf13/pflag"

	"github.com/ferry-agent/ferry/collectors/host"
	"github.com/ferry-agent/ferry/collectors/scrape"
	"github.com/ferry-agent/ferry/internal/httpclient"
)

// parsed is the outcome of a command line: the config, and the error of
// fs.Parse or of Finish.
type parsed struct {
	cfg       Config
	parseErr  error
	finishErr error
}

func parseArgs(t *testing.T, args ...string) parsed {
	t.Helper()
	cfg := DefaultConfig()
	fs := pflag.NewFlagSet("ferry", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := NewFlags(fs, &cfg, host.Collectors())
	if err := fs.Parse(args); err != nil {
		return parsed{cfg: cfg, parseErr: err}
	}
	err := f.Finish()
	return parsed{cfg: cfg, finishErr: err}
}

// mustParse parses args and fails the test on any error.
func mustParse(t *testing.T, args ...string) Config {
	t.Helper()
	p := parseArgs(t, args...)
	if p.parseErr != nil || p.finishErr != nil {
		t.Fatalf("%q: parse: %v, finish: %v", args, p.parseErr, p.finishErr)
	}
	return p.cfg
}

func TestFlagDefaults(t *testing.T) {
	cfg := mustParse(t)
	want := DefaultConfig()
	if cfg.StorageMaxSize != want.StorageMaxSize || cfg.ScrapeInterval != want.ScrapeInterval ||
		!reflect.DeepEqual(cfg.RemoteWrite, want.RemoteWrite) || cfg.StoragePath != want.StoragePath || cfg.Paths != want.Paths {
		t.Errorf("without flags the config differs from DefaultConfig:\n got  %+v\n want %+v", cfg, want)
	}
	if len(cfg.Targets) != 0 || !cfg.ExternalLabels.IsEmpty() {
		t.Errorf("targets %v, external labels %s; want none", cfg.Targets, cfg.ExternalLabels)
	}
	for _, e := range host.Collectors() {
		if cfg.Collectors[e.Name] != e.DefaultEnabled {
			t.Errorf("collector %s enabled = %v, want its default %v", e.Name, cfg.Collectors[e.Name], e.DefaultEnabled)
		}
	}
}

func TestFlagValues(t *testing.T) {
	cfg := mustParse(t,
		"--remote-write.url=https://mimir.example:443/api/v1/push",
		"--remote-write.timeout=5s",
		"--remote-write.min-backoff=100ms",
		"--remote-write.max-backoff=10s",
		"--remote-write.max-samples-per-send=2000",
		"--remote-write.reconnect-jitter=1m",
		"--remote-write.backlog-bytes-per-second=16KiB",
		"--storage.path=/var/lib/ferry",
		"--storage.max-size=128MiB",
		"--storage.sync-interval=1m",
		"--scrape.interval=30s",
		"--log.level=debug",
		"--web.listen-address=",
		"--path.procfs=/host/proc",
	)
	rw := cfg.RemoteWrite
	switch {
	case rw.URL != "https://mimir.example:443/api/v1/push", rw.Timeout != 5*time.Second,
		rw.MinBackoff != 100*time.Millisecond, rw.MaxBackoff != 10*time.Second, rw.MaxSamplesPerSend != 2000,
		rw.ReconnectJitter != time.Minute, rw.BacklogBytesPerSecond != 16<<10:
		t.Errorf("remote write config %+v does not match the flags", rw)
	case cfg.StoragePath != "/var/lib/ferry", cfg.StorageMaxSize != 128<<20, cfg.SyncInterval != time.Minute:
		t.Errorf("storage config %q %d %v does not match the flags", cfg.StoragePath, cfg.StorageMaxSize, cfg.SyncInterval)
	case cfg.ScrapeInterval != 30*time.Second, cfg.LogLevel != slog.LevelDebug, cfg.ListenAddress != "":
		t.Errorf("interval %v, level %v, listen %q do not match the flags", cfg.ScrapeInterval, cfg.LogLevel, cfg.ListenAddress)
	case cfg.Paths.ProcFS != "/host/proc" || cfg.Paths.SysFS != "/sys":
		t.Errorf("paths %+v do not match the flags", cfg.Paths)
	}
}

func TestScrapeTargetFlag(t *testing.T) {
	for _, tc := range []struct {
		arg      string
		job, url string // empty url: refused
		instance string
	}{
		{"job=http://h:1/m", "job", "http://h:1/m", "h:1"},
		{"localhost:9100", "scrape", "http://localhost:9100/metrics", "localhost:9100"},
		{"app=localhost:8080", "app", "http://localhost:8080/metrics", "localhost:8080"},
		{"https://10.0.0.2:8443", "scrape", "https://10.0.0.2:8443/metrics", "10.0.0.2:8443"},
		{"http://h:1/m?x=y", "scrape", "http://h:1/m?x=y", "h:1"}, // "=" in a query names no job
		{"db=http://h:9187/metrics?a=b", "db", "http://h:9187/metrics?a=b", "h:9187"},
		{"ftp://h:1/m", "", "", ""},
		{"job=ftp://h:1/m", "", "", ""},
		{"job=", "", "", ""},
		{"http://", "", "", ""},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			p := parseArgs(t, "--scrape.target", tc.arg)
			if tc.url == "" {
				if p.parseErr == nil && p.finishErr == nil {
					t.Fatalf("accepted, targets %v", p.cfg.Targets)
				}
				return
			}
			if p.parseErr != nil || p.finishErr != nil {
				t.Fatalf("parse: %v, finish: %v", p.parseErr, p.finishErr)
			}
			if len(p.cfg.Targets) != 1 {
				t.Fatalf("%d targets, want 1", len(p.cfg.Targets))
			}
			got := p.cfg.Targets[0]
			if got.Job() != tc.job || got.URL.String() != tc.url || got.Instance() != tc.instance {
				t.Errorf("target job %q url %q instance %q, want %q %q %q", got.Job(), got.URL, got.Instance(), tc.job, tc.url, tc.instance)
			}
		})
	}
}

func TestScrapeTargetRepeated(t *testing.T) {
	cfg := mustParse(t, "--scrape.target=a=h1:1", "--scrape.target", "b=h2:2")
	if len(cfg.Targets) != 2 || cfg.Targets[0].Job() != "a" || cfg.Targets[1].Job() != "b" {
		t.Errorf("targets %v, want a then b", cfg.Targets)
	}
}

func TestExternalLabelFlag(t *testing.T) {
	cfg := mustParse(t, "--external-label=site=berlin", "--external-label", "device=pi-07", "--external-label=site=hamburg")
	if want := labels.FromStrings("device", "pi-07", "site", "hamburg"); !labels.Equal(cfg.ExternalLabels, want) {
		t.Errorf("external labels %s, want %s (the last value of a name wins)", cfg.ExternalLabels, want)
	}

	for _, bad := range []string{"0site=x", "__name__=x", "__meta=x", "si-te=x", "s.ite=x", "=x", "site", "site="} {
		p := parseArgs(t, "--external-label", bad)
		if p.parseErr == nil {
			t.Errorf("--external-label %q accepted: %s (finish: %v)", bad, p.cfg.ExternalLabels, p.finishErr)
		}
	}
}

func TestCollectorFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want map[string]bool
	}{
		{nil, map[string]bool{"cpu": true, "loadavg": true, "meminfo": true}},
		{[]string{"--no-collector.cpu"}, map[string]bool{"cpu": false, "loadavg": true, "meminfo": true}},
		{[]string{"--collector.meminfo=false"}, map[string]bool{"cpu": true, "loadavg": true, "meminfo": false}},
		{[]string{"--collector.cpu", "--no-collector.cpu"}, map[string]bool{"cpu": false, "loadavg": true, "meminfo": true}},
		{[]string{"--no-collector.loadavg", "--no-collector.meminfo"}, map[string]bool{"cpu": true, "loadavg": false, "meminfo": false}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cfg := mustParse(t, tc.args...)
			for name, want := range tc.want {
				if got, ok := cfg.Collectors[name]; !ok || got != want {
					t.Errorf("collector %s enabled = %v (set %v), want %v", name, got, ok, want)
				}
			}
		})
	}
	if p := parseArgs(t, "--collector.nonexistent"); p.parseErr == nil {
		t.Error("--collector.nonexistent accepted")
	}
}

func TestFinishValidates(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		wantFlag string // the flag the error must name
	}{
		{[]string{"--remote-write.url=ftp://x"}, "--remote-write.url"},
		{[]string{"--remote-write.url=http://"}, "--remote-write.url"},
		{[]string{"--remote-write.url=localhost:9090/api/v1/write"}, "--remote-write.url"},
		{[]string{"--storage.path="}, "--storage.path"},
		{[]string{"--storage.max-size=512KiB"}, "--storage.max-size"},
		{[]string{"--scrape.interval=10ms"}, "--scrape.interval"},
		{[]string{"--storage.sync-interval=0s"}, "--storage.sync-interval"},
		{[]string{"--remote-write.min-backoff=2m", "--remote-write.max-backoff=1m"}, "--remote-write.min-backoff"},
		{[]string{"--remote-write.min-backoff=0s"}, "--remote-write.min-backoff"},
		{[]string{"--remote-write.timeout=0s"}, "--remote-write.timeout"},
		{[]string{"--remote-write.max-samples-per-send=0"}, "--remote-write.max-samples-per-send"},
		{[]string{"--remote-write.reconnect-jitter=-1s"}, "--remote-write.reconnect-jitter"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			p := parseArgs(t, tc.args...)
			if p.parseErr != nil {
				t.Fatalf("refused by Parse (%v); want Finish to refuse it", p.parseErr)
			}
			if p.finishErr == nil {
				t.Fatal("Finish accepted it")
			}
			if !strings.Contains(p.finishErr.Error(), tc.wantFlag) {
				t.Errorf("Finish: %v; want an error naming %s", p.finishErr, tc.wantFlag)
			}
		})
	}
}

func TestRemoteWriteHTTPFlags(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "password")
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	cfg := mustParse(t,
		"--remote-write.url=https://mimir.example/api/v1/push",
		"--remote-write.basic-auth.username=pi-07",
		"--remote-write.basic-auth.password-file="+pw,
		"--remote-write.header=X-Scope-OrgID=fleet-a",
		"--remote-write.header=X-Device=pi-07",
		"--remote-write.tls.server-name=mimir.internal",
		"--remote-write.proxy-url=http://proxy:3128",
	)
	h := cfg.RemoteWrite.HTTP
	want := httpclient.Config{
		BasicAuth: &httpclient.BasicAuth{Username: "pi-07", PasswordFile: pw},
		Headers:   map[string]string{"X-Scope-OrgID": "fleet-a", "X-Device": "pi-07"},
		TLS:       httpclient.TLSConfig{ServerName: "mimir.internal"},
		ProxyURL:  "http://proxy:3128",
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("HTTP settings\n %+v\nwant\n %+v", h, want)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--remote-write.basic-auth.username=u", "--remote-write.basic-auth.password-file=/nonexistent/pw"}, "basic_auth"},
		{[]string{"--remote-write.header=Authorization=Bearer x"}, "set by ferry"},
		{[]string{"--remote-write.tls.cert-file=" + pw}, "cert_file and key_file"},
		{[]string{"--remote-write.tls.ca-file=" + pw}, "no PEM certificate"},
	} {
		p := parseArgs(t, append(tc.args, "--remote-write.url=https://mimir.example/api/v1/push")...)
		if p.parseErr != nil || p.finishErr == nil || !strings.Contains(p.finishErr.Error(), tc.want) {
			t.Errorf("%q: parse %v, finish %v; want a finish error with %q", tc.args, p.parseErr, p.finishErr, tc.want)
		}
	}
	if p := parseArgs(t, "--remote-write.header=Bad Name=x"); p.parseErr == nil {
		t.Error("a header name with a space was accepted")
	}
}

func TestBadFlagValues(t *testing.T) {
	for _, arg := range []string{"--storage.max-size=12XB", "--log.level=loud", "--scrape.interval=often", "--no-such-flag"} {
		if p := parseArgs(t, arg); p.parseErr == nil {
			t.Errorf("%s accepted by Parse", arg)
		}
	}
}

func writeConfigFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ferry.yml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const fullConfigFile = `global:
  scrape_interval: 30s
  external_labels:
    site: berlin
    device: pi-07
scrape_configs:
  - job_name: mosquitto
    static_configs:
      - targets: ["localhost:9234", "10.0.0.5:9234"]
  - job_name: app
    scheme: https
    metrics_path: /internal/metrics
    static_configs:
      - targets: ["app.local:8443"]
remote_write:
  - url: http://prometheus:9090/api/v1/write
`

func TestConfigFile(t *testing.T) {
	path := writeConfigFile(t, fullConfigFile)
	cfg := mustParse(t, "--config.file", path)

	if cfg.ScrapeInterval != 30*time.Second {
		t.Errorf("scrape interval %v, want 30s from the file", cfg.ScrapeInterval)
	}
	if want := labels.FromStrings("site", "berlin", "device", "pi-07"); !labels.Equal(cfg.ExternalLabels, want) {
		t.Errorf("external labels %s, want %s", cfg.ExternalLabels, want)
	}
	if cfg.RemoteWrite.URL != "http://prometheus:9090/api/v1/write" {
		t.Errorf("remote write URL %q, want the file's", cfg.RemoteWrite.URL)
	}
	var got []string
	for _, tg := range cfg.Targets {
		got = append(got, tg.Job()+" "+tg.URL.String()+" "+tg.Instance())
	}
	want := []string{
		"mosquitto http://localhost:9234/metrics localhost:9234",
		"mosquitto http://10.0.0.5:9234/metrics 10.0.0.5:9234",
		"app https://app.local:8443/internal/metrics app.local:8443",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("targets:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Settings the file does not have keep their defaults.
	if d := DefaultConfig(); cfg.StorageMaxSize != d.StorageMaxSize || cfg.RemoteWrite.Timeout != d.RemoteWrite.Timeout {
		t.Errorf("max size %d, timeout %v; want the defaults", cfg.StorageMaxSize, cfg.RemoteWrite.Timeout)
	}
}

// A scrape config without label limits gets ferry's, not Prometheus' "no
// limit"; one that sets them gets its own.
func TestConfigFileLabelLimitsDefault(t *testing.T) {
	cfg := mustParse(t, "--config.file", writeConfigFile(t, `scrape_configs:
  - job_name: a
    static_configs: [{targets: ["a:1"]}]
  - job_name: b
    label_value_length_limit: 65536
    label_limit: 200
    static_configs: [{targets: ["b:1"]}]
`))
	if len(cfg.Targets) != 2 {
		t.Fatalf("%d targets, want 2", len(cfg.Targets))
	}
	if got := cfg.Targets[0].Limits; got != scrape.DefaultLimits || got.LabelValueLength == 0 || got.LabelNameLength == 0 || got.Labels == 0 {
		t.Errorf("limits %+v, want ferry's defaults %+v, each set", got, scrape.DefaultLimits)
	}
	want := scrape.DefaultLimits
	want.LabelValueLength, want.Labels = 65536, 200
	if got := cfg.Targets[1].Limits; got != want {
		t.Errorf("limits %+v, want %+v", got, want)
	}
}

func TestFlagsWinOverConfigFile(t *testing.T) {
	path := writeConfigFile(t, fullConfigFile)
	cfg := mustParse(t,
		"--config.file", path,
		"--scrape.interval=5s",
		"--remote-write.url=https://mimir:443/api/v1/push",
		"--external-label=site=hamburg",
		"--scrape.target=extra=localhost:9999",
	)
	if cfg.ScrapeInterval != 5*time.Second {
		t.Errorf("scrape interval %v, want the flag's 5s", cfg.ScrapeInterval)
	}
	if cfg.RemoteWrite.URL != "https://mimir:443/api/v1/push" {
		t.Errorf("remote write URL %q, want the flag's", cfg.RemoteWrite.URL)
	}
	if want := labels.FromStrings("site", "hamburg", "device", "pi-07"); !labels.Equal(cfg.ExternalLabels, want) {
		t.Errorf("external labels %s, want %s (flag over file, file's others kept)", cfg.ExternalLabels, want)
	}
	jobs := map[string]int{}
	for _, tg := range cfg.Targets {
		jobs[tg.Job()]++
	}
	if jobs["mosquitto"] != 2 || jobs["app"] != 1 || jobs["extra"] != 1 {
		t.Errorf("targets by job %v, want the file's and the flag's", jobs)
	}
}

func TestConfigFileFlagDefaultDoesNotWin(t *testing.T) {
	// A flag left at its default is not "given": the file's value applies
	// even when it equals no default.
	path := writeConfigFile(t, "global:\n  scrape_interval: 15s\n")
	cfg := mustParse(t, "--config.file", path, "--storage.max-size=2MiB")
	if cfg.ScrapeInterval != 15*time.Second || cfg.StorageMaxSize != 2<<20 {
		t.Errorf("interval %v, max size %d", cfg.ScrapeInterval, cfg.StorageMaxSize)
	}
}

func TestConfigFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string
		want    []string // all must appear in the error
	}{
		{"unknown field", "global:\n  scrape_interval: 30s\n  scrape_intervall: 10s\n", []string{"--config.file", "scrape_intervall", "line 3"}},
		{"unknown top-level field", "rule_file:\n  - a.yml\n", []string{"rule_file", "line 1"}},
		{"unsupported field in a scrape config", "scrape_configs:\n  - job_name: a\n    oauth2: {client_id: x}\n", []string{"oauth2", "line 3"}},
		{"a discovery ferry lacks", "scrape_configs:\n  - job_name: a\n    docker_sd_configs: [{host: unix:///var/run/docker.sock}]\n", []string{"line 3", "docker", "file_sd_configs"}},
		{"timeout over interval", "scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 6s\n", []string{"job a", "scrape_timeout 6s"}},
		{"job twice", "scrape_configs:\n  - job_name: a\n  - job_name: a\n", []string{"\"a\" appears twice"}},
		{"bad relabel action", "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: explode\n", []string{"explode"}},
		{"bad relabel regex", "scrape_configs:\n  - job_name: a\n    metric_relabel_configs:\n      - source_labels: [x]\n        regex: \"(\"\n", []string{"ferry.yml", "error parsing regexp"}},
		{"relabel without target", "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: replace\n        target_label: \"\"\n", []string{"job a", "target_label"}},
		{"negative limit", "scrape_configs:\n  - job_name: a\n    sample_limit: -1\n", []string{"job a", "negative"}},
		{"bad body size", "scrape_configs:\n  - job_name: a\n    body_size_limit: lots\n", []string{"body_size_limit"}},
		{"two auths", "scrape_configs:\n  - job_name: a\n    basic_auth: {username: u, password: p}\n    authorization: {credentials: c}\n", []string{"job a", "mutually exclusive"}},
		{"reserved header", "remote_write:\n  - url: http://a/\n    headers: {Content-Type: text/plain}\n", []string{"remote_write", "Content-Type"}},
		{"missing password file", "remote_write:\n  - url: http://a/\n    basic_auth: {username: u, password_file: /nonexistent/pw}\n", []string{"remote_write", "/nonexistent/pw"}},
		{"bad duration", "global:\n  scrape_interval: often\n", []string{"often"}},
		{"bad external label", "global:\n  external_labels:\n    0bad: x\n", []string{"external_labels", "0bad"}},
		{"empty external label", "global:\n  external_labels:\n    site: \"\"\n", []string{"external_labels", "site"}},
		{"no job name", "scrape_configs:\n  - static_configs:\n      - targets: [\"h:1\"]\n", []string{"job_name"}},
		{"bad scheme", "scrape_configs:\n  - job_name: a\n    scheme: ftp\n    static_configs:\n      - targets: [\"h:1\"]\n", []string{"job a", "ftp"}},
		{"two receivers with one url", "remote_write:\n  - url: http://a/\n  - url: http://a/\n", []string{"remote_write", "twice", "name"}},
		{"not yaml", "global: [unclosed\n", []string{"--config.file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := parseArgs(t, "--config.file", writeConfigFile(t, tc.content))
			if p.parseErr != nil {
				t.Fatalf("Parse: %v", p.parseErr)
			}
			if p.finishErr == nil {
				t.Fatal("Finish accepted the file")
			}
			for _, w := range tc.want {
				if !strings.Contains(p.finishErr.Error(), w) {
					t.Errorf("error %q does not mention %q", p.finishErr, w)
				}
			}
		})
	}

	p := parseArgs(t, "--config.file", filepath.Join(t.TempDir(), "missing.yml"))
	if p.finishErr == nil || !strings.Contains(p.finishErr.Error(), "--config.file") {
		t.Errorf("missing file: %v, want an error naming --config.file", p.finishErr)
	}

	// A bad remote-write URL from the file is the file's error, at its
	// line, naming no flag that was not given.
	p = parseArgs(t, "--config.file", writeConfigFile(t, "remote_write:\n  - url: ftp://x/\n"))
	if p.finishErr == nil || !strings.Contains(p.finishErr.Error(), "line 2: remote_write: url") || strings.Contains(p.finishErr.Error(), "--remote-write") {
		t.Errorf("ftp URL in the file: %v, want an error at line 2 naming remote_write's url", p.finishErr)
	}
}

func TestEmptyConfigFile(t *testing.T) {
	cfg := mustParse(t, "--config.file", writeConfigFile(t, ""))
	if cfg.ScrapeInterval != DefaultConfig().ScrapeInterval || len(cfg.Targets) != 0 {
		t.Errorf("an empty file changed the config: interval %v, targets %v", cfg.ScrapeInterval, cfg.Targets)
	}
}

// FuzzConfigFile: the config file is outside input; reading it must give a
// config or an error, never panic.
func FuzzConfigFile(f *testing.F) {
	f.Add([]byte("global:\n  scrape_interval: 15s\n  external_labels: {a: b}\nscrape_configs:\n  - job_name: x\n    static_configs:\n      - targets: ['h:1']\nremote_write:\n  - url: http://r/w\n"))
	f.Add([]byte("global: [1, 2"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "ferry.yml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _ = CheckFile(path)
	})
}

// A job as it stands in a user's prometheus.yml works unchanged.
func TestConfigFilePrometheusJob(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	cfg := mustParse(t, "--config.file", writeConfigFile(t, `global:
  scrape_interval: 30s
  scrape_timeout: 20s
  external_labels: {site: berlin}
scrape_configs:
  - job_name: mqtt
    scrape_interval: 10s
    metrics_path: /probe
    params:
      module: [mqtt_connect]
    honor_labels: true
    honor_timestamps: false
    sample_limit: 5000
    label_limit: 30
    label_name_length_limit: 100
    label_value_length_limit: 1000
    body_size_limit: 10MB
    basic_auth:
      username: scraper
      password_file: `+pw+`
    tls_config:
      insecure_skip_verify: true
    static_configs:
      - targets: ["broker-1:9234", "broker-2:9234", "test-broker:9234"]
        labels: {room: cellar}
    relabel_configs:
      - source_labels: [__address__]
        regex: "test-.*"
        action: drop
      - source_labels: [__address__]
        regex: "([^:]+):.*"
        target_label: instance
      - source_labels: [__address__]
        target_label: __param_target
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: "go_.*"
        action: drop
remote_write:
  - url: https://mimir.example/api/v1/push
    remote_timeout: 15s
    headers: {X-Scope-OrgID: fleet}
    bearer_token_file: `+pw+`
    queue_config: {max_samples_per_send: 2000, min_backoff: 500ms, max_backoff: 1m}
`))
	if len(cfg.Targets) != 2 {
		t.Fatalf("%d targets, want 2 (test-broker dropped by relabeling)", len(cfg.Targets))
	}
	tg := cfg.Targets[0]
	if want := labels.FromStrings("instance", "broker-1", "job", "mqtt", "room", "cellar"); !labels.Equal(tg.Labels, want) {
		t.Errorf("target labels %s, want %s", tg.Labels, want)
	}
	if got, want := tg.URL.String(), "http://broker-1:9234/probe?module=mqtt_connect&target=broker-1%3A9234"; got != want {
		t.Errorf("URL %s, want %s", got, want)
	}
	if tg.Interval != 10*time.Second || tg.Timeout != 10*time.Second {
		t.Errorf("interval %v timeout %v, want 10s and 10s (the global 20s capped by the interval)", tg.Interval, tg.Timeout)
	}
	if !tg.HonorLabels || tg.HonorTimestamps {
		t.Errorf("honor_labels %v honor_timestamps %v, want true and false", tg.HonorLabels, tg.HonorTimestamps)
	}
	if want := (scrape.Limits{BodyBytes: 10 << 20, Samples: 5000, Labels: 30, LabelNameLength: 100, LabelValueLength: 1000}); tg.Limits != want {
		t.Errorf("limits %+v, want %+v", tg.Limits, want)
	}
	if tg.HTTP.BasicAuth == nil || tg.HTTP.BasicAuth.PasswordFile != pw || !tg.HTTP.TLS.InsecureSkipVerify {
		t.Errorf("HTTP settings %+v", tg.HTTP)
	}
	if len(tg.MetricRelabel) != 1 {
		t.Errorf("%d metric relabel rules, want 1", len(tg.MetricRelabel))
	}
	rw := cfg.RemoteWrite
	if rw.URL != "https://mimir.example/api/v1/push" || rw.Timeout != 15*time.Second || rw.MaxSamplesPerSend != 2000 ||
		rw.MinBackoff != 500*time.Millisecond || rw.MaxBackoff != time.Minute ||
		rw.HTTP.BearerTokenFile != pw || rw.HTTP.Headers["X-Scope-OrgID"] != "fleet" {
		t.Errorf("remote write %+v", rw)
	}
}
