package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/spf13/pflag"

	"github.com/ferry-agent/ferry/collectors/host"
)

// notInFile are the flags without a field in the config file, each with
// the reason.
var notInFile = map[string]string{
	"config.file": "names the file itself",
}

// fileCase is a setting given once by flags and once by the file: both
// must give the same configuration, and one that differs from the
// defaults.
type fileCase struct {
	flags []string // the flags it covers, NAME=VALUE or NAME for a boolean
	yaml  string   // the same in the file
	base  []string // flags given on both sides
	noop  bool     // the value is the default (no-collector of a collector off by default)
}

// testFiles writes the files the cases name: a CA certificate, a client
// key pair, a secret, a label file, an identity file.
type testFiles struct{ ca, cert, key, secret, labels, ident string }

func writeTestFiles(t *testing.T) testFiles {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ferry test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := testFiles{ca: filepath.Join(dir, "ca.pem"), cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem"),
		secret: filepath.Join(dir, "secret"), labels: filepath.Join(dir, "labels"), ident: filepath.Join(dir, "serial")}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for path, data := range map[string][]byte{
		f.ca: certPEM, f.cert: certPEM, f.key: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		f.secret: []byte("s3cret\n"), f.labels: []byte("# fleet\nrack=r7\n"), f.ident: []byte("SN-00042\n"),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

const rwURL = "http://rw.example:9090/api/v1/write"

// fileCases covers every flag NewFlags defines but those in notInFile.
func fileCases(f testFiles) []fileCase {
	rw := func(field string) string {
		return "remote_write:\n  - url: " + rwURL + "\n" + indent(field, "    ")
	}
	rwBase := []string{"remote-write.url=" + rwURL}
	cases := []fileCase{
		{flags: []string{"remote-write.url=" + rwURL}, yaml: rw("")},
		{flags: []string{"remote-write.timeout=11s"}, yaml: rw("remote_timeout: 11s"), base: rwBase},
		{flags: []string{"remote-write.min-backoff=300ms"}, yaml: rw("queue_config: {min_backoff: 300ms}"), base: rwBase},
		{flags: []string{"remote-write.max-backoff=9s"}, yaml: rw("queue_config: {max_backoff: 9s}"), base: rwBase},
		{flags: []string{"remote-write.max-samples-per-send=1234"}, yaml: rw("queue_config: {max_samples_per_send: 1234}"), base: rwBase},
		{flags: []string{"remote-write.max-sample-age=2h"}, yaml: rw("queue_config: {sample_age_limit: 2h}"), base: rwBase},
		{flags: []string{"remote-write.protocol=1"}, yaml: rw("protobuf_message: prometheus.WriteRequest"), base: rwBase},
		{flags: []string{"remote-write.metadata.send=false"}, yaml: rw("metadata_config: {send: false}"), base: rwBase},
		{flags: []string{"remote-write.metadata.send-interval=5m"}, yaml: rw("metadata_config: {send_interval: 5m}"), base: rwBase},
		{flags: []string{"remote-write.basic-auth.username=pi-07"}, yaml: rw("basic_auth: {username: pi-07}"), base: rwBase},
		{flags: []string{"remote-write.basic-auth.username=pi-07", "remote-write.basic-auth.password-file=" + f.secret},
			yaml: rw("basic_auth: {username: pi-07, password_file: " + f.secret + "}"), base: rwBase},
		{flags: []string{"remote-write.bearer-token-file=" + f.secret}, yaml: rw("bearer_token_file: " + f.secret), base: rwBase},
		{flags: []string{"remote-write.header=X-Scope-OrgID=fleet"}, yaml: rw("headers: {X-Scope-OrgID: fleet}"), base: rwBase},
		{flags: []string{"remote-write.tls.ca-file=" + f.ca}, yaml: rw("tls_config: {ca_file: " + f.ca + "}"), base: rwBase},
		{flags: []string{"remote-write.tls.cert-file=" + f.cert, "remote-write.tls.key-file=" + f.key},
			yaml: rw("tls_config: {cert_file: " + f.cert + ", key_file: " + f.key + "}"), base: rwBase},
		{flags: []string{"remote-write.tls.server-name=mimir.internal"}, yaml: rw("tls_config: {server_name: mimir.internal}"), base: rwBase},
		{flags: []string{"remote-write.tls.insecure-skip-verify"}, yaml: rw("tls_config: {insecure_skip_verify: true}"), base: rwBase},
		{flags: []string{"remote-write.proxy-url=http://proxy:3128"}, yaml: rw("proxy_url: http://proxy:3128"), base: rwBase},
		{flags: []string{"remote-write.fresh-first"}, yaml: "ferry:\n  remote_write: {fresh_first: true}\n"},
		{flags: []string{"remote-write.max-bytes-per-second=10KiB"}, yaml: "ferry:\n  remote_write: {max_bytes_per_second: 10KiB}\n"},
		{flags: []string{"remote-write.reconnect-jitter=1m"}, yaml: "ferry:\n  remote_write: {reconnect_jitter: 1m}\n"},
		{flags: []string{"remote-write.backlog-bytes-per-second=16KiB"}, yaml: "ferry:\n  remote_write: {backlog_bytes_per_second: 16KiB}\n"},
		{flags: []string{"remote-write.max-bytes-per-day=5MiB"}, yaml: "ferry:\n  remote_write: {max_bytes_per_day: 5MiB}\n"},
		{flags: []string{"storage.path=/var/lib/ferry-test"}, yaml: "ferry:\n  storage: {path: /var/lib/ferry-test}\n"},
		{flags: []string{"storage.max-size=3MiB"}, yaml: "ferry:\n  storage: {max_size: 3MiB}\n"},
		{flags: []string{"storage.sync-interval=7s"}, yaml: "ferry:\n  storage: {sync_interval: 7s}\n"},
		{flags: []string{"storage.thin"}, yaml: "ferry:\n  storage: {thin: true}\n"},
		{flags: []string{"scrape.interval=20s"}, yaml: "global: {scrape_interval: 20s}\n"},
		{flags: []string{"scrape.target=app=http://10.0.0.9:9101/metrics"},
			yaml: "scrape_configs:\n  - job_name: app\n    static_configs: [{targets: [\"10.0.0.9:9101\"]}]\n"},
		{flags: []string{"external-label=site=berlin"}, yaml: "global: {external_labels: {site: berlin}}\n"},
		{flags: []string{"external-label-from=serial=file:" + f.ident}, yaml: "ferry:\n  external_labels_from: {serial: \"file:" + f.ident + "\"}\n"},
		{flags: []string{"external-label-file=" + f.labels}, yaml: "ferry:\n  external_label_file: " + f.labels + "\n"},
		{flags: []string{"instance=truck-12"}, yaml: "ferry:\n  instance: truck-12\n"},
		{flags: []string{"instance-from=file:" + f.ident}, yaml: "ferry:\n  instance_from: \"file:" + f.ident + "\"\n"},
		{flags: []string{"clock.require-sync"}, yaml: "ferry:\n  clock: {require_sync: true}\n"},
		{flags: []string{"web.listen-address=:9999"}, yaml: "ferry:\n  web: {listen_address: \":9999\"}\n"},
		{flags: []string{"web.listen-address="}, yaml: "ferry:\n  web: {listen_address: \"\"}\n"},
		{flags: []string{"log.level=debug"}, yaml: "ferry:\n  log: {level: debug}\n"},
		{flags: []string{"path.procfs=/host/proc"}, yaml: "ferry:\n  paths: {procfs: /host/proc}\n"},
		{flags: []string{"path.sysfs=/host/sys"}, yaml: "ferry:\n  paths: {sysfs: /host/sys}\n"},
		{flags: []string{"path.rootfs=/host"}, yaml: "ferry:\n  paths: {rootfs: /host}\n"},
	}
	for _, e := range host.Collectors() {
		on := "true"
		if e.DefaultEnabled {
			on = "false"
		}
		cases = append(cases,
			fileCase{flags: []string{"collector." + e.Name + "=" + on}, yaml: "ferry:\n  collectors: {" + e.Name + ": " + on + "}\n"},
			fileCase{flags: []string{"no-collector." + e.Name}, yaml: "ferry:\n  collectors: {" + e.Name + ": false}\n", noop: !e.DefaultEnabled})
	}
	return cases
}

func indent(s, prefix string) string {
	if s == "" {
		return ""
	}
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix) + "\n"
}

func dashed(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = "--" + a
	}
	return out
}

// TestEveryFlagHasAFileField: each of ferry's flags (from the flag set, so
// a new flag without a field fails here) has a field in the config file
// that gives the same configuration as the flag.
func TestEveryFlagHasAFileField(t *testing.T) {
	files := writeTestFiles(t)
	cases := fileCases(files)
	covered := map[string]bool{}
	for _, c := range cases {
		for _, fl := range c.flags {
			name, _, _ := strings.Cut(fl, "=")
			covered[name] = true
		}
	}
	cfg := DefaultConfig()
	fs := pflag.NewFlagSet("ferry", pflag.ContinueOnError)
	NewFlags(fs, &cfg, host.Collectors())
	n := 0
	fs.VisitAll(func(fl *pflag.Flag) {
		n++
		if _, ok := notInFile[fl.Name]; ok {
			if covered[fl.Name] {
				t.Errorf("--%s is allowed to have no file field, yet a case covers it", fl.Name)
			}
			return
		}
		if !covered[fl.Name] {
			t.Errorf("--%s has no field in the config file (or no case here)", fl.Name)
		}
	})
	if n < 40 {
		t.Fatalf("only %d flags: the flag set is not ferry's", n)
	}
	for reason := range notInFile {
		if fs.Lookup(reason) == nil {
			t.Errorf("notInFile names --%s, which is no flag", reason)
		}
	}

	defaults := mustParse(t)
	for _, c := range cases {
		t.Run(strings.Join(c.flags, " "), func(t *testing.T) {
			byFlag := mustParse(t, dashed(append(slices.Clone(c.base), c.flags...))...)
			path := writeConfigFile(t, c.yaml)
			byFile := mustParse(t, append(dashed(c.base), "--config.file="+path)...)
			resolveSchedule(&byFlag)
			resolveSchedule(&byFile)
			if !reflect.DeepEqual(byFlag, byFile) {
				t.Errorf("flag and file differ:\nflag %+v\nfile %+v\nfile:\n%s", byFlag, byFile, c.yaml)
			}
			withBase := defaults
			if len(c.base) > 0 {
				withBase = mustParse(t, dashed(c.base)...)
			}
			if !c.noop && reflect.DeepEqual(byFlag, withBase) {
				t.Errorf("the value changes nothing: pick one that is not the default")
			}

			// Precedence: the flags given at their defaults win over the
			// file's values.
			var atDefault []string
			for _, fl := range c.flags {
				name, _, _ := strings.Cut(fl, "=")
				if why, ok := noDefaultOverride[name]; ok {
					t.Logf("--%s: not given at its default: %s", name, why)
					return
				}
				atDefault = append(atDefault, "--"+name+"="+fs.Lookup(name).DefValue)
			}
			want := mustParse(t, append(dashed(c.base), atDefault...)...)
			got := mustParse(t, append(append(dashed(c.base), "--config.file="+path), atDefault...)...)
			resolveSchedule(&want)
			resolveSchedule(&got)
			if !reflect.DeepEqual(want, got) {
				t.Errorf("%q given: the file's value wins over the flag's:\nflags only %+v\nwith file  %+v", atDefault, want, got)
			}
		})
	}
}

// noDefaultOverride are the flags the precedence check cannot give at
// their default, each with the reason.
var noDefaultOverride = map[string]string{
	"scrape.target":                         "repeatable, without a default: the file's targets and the flag's are both used",
	"external-label":                        "repeatable, without a default: merged with the file's per name",
	"external-label-from":                   "repeatable, without a default: merged with the file's per name",
	"remote-write.header":                   "repeatable, without a default: merged with the file's per name",
	"remote-write.basic-auth.username":      "empty means not given: the file's basic_auth stays",
	"remote-write.basic-auth.password-file": "empty means not given: the file's basic_auth stays",
	"remote-write.bearer-token-file":        "empty means not given: the file's authorization stays",
}

// A flag given on the command line wins over its field in the file; a
// field whose flag is not given applies, also when the flag's default
// differs from it.
func TestFerrySectionPrecedence(t *testing.T) {
	files := writeTestFiles(t)
	path := writeConfigFile(t, `ferry:
  storage:
    path: /srv/ferry
    max_size: 512MB
    sync_interval: 5m
    thin: true
  remote_write:
    fresh_first: true
    max_bytes_per_day: 20MiB
  clock: {require_sync: true}
  instance: from-file
  external_labels_from:
    serial: "file:`+files.ident+`"
    unit: "file:`+files.ident+`"
  external_label_file: `+files.labels+`
  collectors: {cpu: false, loadavg: false}
  web: {listen_address: "0.0.0.0:9391"}
  log: {level: warn}
`)
	cfg := mustParse(t, "--config.file", path,
		"--storage.path=/mnt/usb/ferry", "--remote-write.fresh-first=false", "--instance-from=file:"+files.secret,
		"--external-label-from=unit=hostname", "--path.procfs=/proc", "--collector.cpu", "--log.level=error")
	if cfg.StoragePath != "/mnt/usb/ferry" || cfg.StorageMaxSize != 512<<20 || cfg.SyncInterval != 5*time.Minute || !cfg.StorageThin {
		t.Errorf("storage %q %d %v %v: want the flag's path, the file's 512MB (MiB, as Prometheus), 5m, thin",
			cfg.StoragePath, cfg.StorageMaxSize, cfg.SyncInterval, cfg.StorageThin)
	}
	if cfg.RemoteWrite.FreshFirst || cfg.RemoteWrite.MaxBytesPerDay != 20<<20 || !cfg.ClockRequireSync {
		t.Errorf("fresh first %v (flag says false), budget %d, clock %v", cfg.RemoteWrite.FreshFirst, cfg.RemoteWrite.MaxBytesPerDay, cfg.ClockRequireSync)
	}
	// --instance-from given: the file's instance yields, and the source is read.
	if cfg.Instance != "s3cret" {
		t.Errorf("instance %q, want the flag's source's value", cfg.Instance)
	}
	host, _ := os.ReadFile("/proc/sys/kernel/hostname")
	want := labels.FromStrings("serial", "SN-00042", "unit", strings.TrimSpace(string(host)), "rack", "r7")
	if !labels.Equal(cfg.ExternalLabels, want) {
		t.Errorf("external labels %s, want %s (the flag's source for unit, the file's for serial, the label file's)", cfg.ExternalLabels, want)
	}
	if !cfg.Collectors["cpu"] || cfg.Collectors["loadavg"] {
		t.Errorf("cpu %v (flag on), loadavg %v (file off)", cfg.Collectors["cpu"], cfg.Collectors["loadavg"])
	}
	if cfg.ListenAddress != "0.0.0.0:9391" || cfg.LogLevel != slog.LevelError {
		t.Errorf("listen %q, level %v", cfg.ListenAddress, cfg.LogLevel)
	}

	// Without flags the file's instance applies.
	if cfg := mustParse(t, "--config.file", path); cfg.Instance != "from-file" {
		t.Errorf("instance %q, want the file's", cfg.Instance)
	}
}

func TestFerrySectionErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown field", "ferry:\n  storage:\n    max_sise: 1MiB\n", []string{"line 3", "max_sise"}},
		{"bad size", "ferry:\n  storage:\n    max_size: lots\n", []string{"line 3", "lots"}},
		{"bad level", "ferry:\n  log: {level: loud}\n", []string{"line 2", "loud"}},
		{"bad source", "ferry:\n  instance_from: serial-number\n", []string{"line 2", "ferry.instance_from", "serial-number"}},
		{"bad label source", "ferry:\n  external_labels_from:\n    dev: mac\n", []string{"line 3", "mac:IFACE"}},
		{"unknown collector", "ferry:\n  collectors: {cpus: true}\n", []string{"ferry.collectors", "\"cpus\"", "loadavg"}},
		{"bad listen address", "ferry:\n  web: {listen_address: nonsense}\n", []string{"line 2", "ferry.web.listen_address", "nonsense"}},
		{"size below the minimum", "ferry:\n  storage:\n    max_size: 512KiB\n", []string{"line 3", "ferry.storage.max_size", "1MiB"}},
		{"zero sync interval", "ferry:\n  storage:\n    sync_interval: 0s\n", []string{"line 3", "ferry.storage.sync_interval"}},
		{"instance source missing", "ferry:\n  instance_from: \"file:/nonexistent/serial\"\n", []string{"ferry.instance_from", "/nonexistent/serial"}},
		{"label source missing", "ferry:\n  external_labels_from: {sn: \"file:/nonexistent/serial\"}\n", []string{"ferry.external_labels_from", "/nonexistent/serial"}},
		{"label file missing", "ferry:\n  external_label_file: /nonexistent/labels\n", []string{"ferry.external_label_file", "/nonexistent/labels"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfigFile(t, tc.yaml)
			p := parseArgs(t, "--config.file", path)
			if p.finishErr == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(p.finishErr.Error(), w) {
					t.Errorf("error %q lacks %q", p.finishErr, w)
				}
			}
			// The error names the file's field, never a flag not given.
			if rest := strings.TrimPrefix(p.finishErr.Error(), "--config.file: "); strings.Contains(rest, "--") {
				t.Errorf("error %q names a flag that was not given", p.finishErr)
			}
			// check-config refuses it too, but for what only the device
			// can tell.
			if _, err := CheckFile(path, host.Collectors()...); err == nil && !strings.Contains(tc.name, "missing") {
				t.Error("check-config accepted it")
			}
		})
	}
}

// resolveSchedule fills in a target's interval and timeout where it
// follows the agent's (0: a --scrape.target), as the agent does; a job of
// the file has them resolved already.
func resolveSchedule(cfg *Config) {
	for i := range cfg.Targets {
		t := &cfg.Targets[i]
		if t.Interval == 0 {
			t.Interval = cfg.ScrapeInterval
		}
		if t.Timeout == 0 {
			t.Timeout = min(t.Interval, MaxScrapeTimeout)
		}
	}
}
