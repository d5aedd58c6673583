package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"gopkg.in/yaml.v3"

	"github.com/ferry-agent/ferry/agent/remotewrite"
	"github.com/ferry-agent/ferry/collectors/scrape"
	"github.com/ferry-agent/ferry/internal/httpclient"
	"github.com/ferry-agent/ferry/internal/units"
)

// fileConfig is the subset of prometheus.yml that ferry reads, with
// Prometheus' meaning for each field. An unknown or unsupported field is an
// error naming it and its line, so that a setting ferry would ignore is
// never silently ignored.
type fileConfig struct {
	Global struct {
		ScrapeInterval model.Duration    `yaml:"scrape_interval"`
		ScrapeTimeout  model.Duration    `yaml:"scrape_timeout"`
		ExternalLabels map[string]string `yaml:"external_labels"`
	} `yaml:"global"`
	ScrapeConfigs []scrapeConfig      `yaml:"scrape_configs"`
	RemoteWrite   []remoteWriteConfig `yaml:"remote_write"`
}

type scrapeConfig struct {
	JobName               string              `yaml:"job_name"`
	ScrapeInterval        model.Duration      `yaml:"scrape_interval"`
	ScrapeTimeout         model.Duration      `yaml:"scrape_timeout"`
	MetricsPath           string              `yaml:"metrics_path"`
	Scheme                string              `yaml:"scheme"`
	Params                map[string][]string `yaml:"params"`
	HonorLabels           bool                `yaml:"honor_labels"`
	HonorTimestamps       *bool               `yaml:"honor_timestamps"`
	SampleLimit           int                 `yaml:"sample_limit"`
	LabelLimit            int                 `yaml:"label_limit"`
	LabelNameLengthLimit  int                 `yaml:"label_name_length_limit"`
	LabelValueLengthLimit int                 `yaml:"label_value_length_limit"`
	BodySizeLimit         string              `yaml:"body_size_limit"`
	StaticConfigs         []struct {
		Targets []string          `yaml:"targets"`
		Labels  map[string]string `yaml:"labels"`
	} `yaml:"static_configs"`
	RelabelConfigs       []*relabel.Config `yaml:"relabel_configs"`
	MetricRelabelConfigs []*relabel.Config `yaml:"metric_relabel_configs"`
	HTTP                 httpclient.Config `yaml:",inline"`
}

type remoteWriteConfig struct {
	URL           string         `yaml:"url"`
	Name          string         `yaml:"name"` // accepted for Prometheus' sake; ferry has one receiver
	RemoteTimeout model.Duration `yaml:"remote_timeout"`
	QueueConfig   struct {
		MaxSamplesPerSend int            `yaml:"max_samples_per_send"`
		MinBackoff        model.Duration `yaml:"min_backoff"`
		MaxBackoff        model.Duration `yaml:"max_backoff"`
	} `yaml:"queue_config"`
	ProtobufMessage string            `yaml:"protobuf_message"` // prometheus.WriteRequest or io.prometheus.write.v2.Request
	HTTP            httpclient.Config `yaml:",inline"`
}

// maxFileSize bounds what ferry reads as a config file.
const maxFileSize = 1 << 20

// applyFile reads the YAML file at path into cfg, leaving alone every
// setting whose flag was given (changed reports that by flag name).
func applyFile(path string, cfg *Config, changed func(flag string) bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return err
	}
	if len(data) > maxFileSize {
		return fmt.Errorf("%s: larger than %d bytes", path, maxFileSize)
	}
	var fc fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %w", path, readableYAMLError(err))
	}
	if err := fc.apply(cfg, changed); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func (fc *fileConfig) apply(cfg *Config, changed func(flag string) bool) error {
	if fc.Global.ScrapeInterval != 0 && !changed("scrape.interval") {
		cfg.ScrapeInterval = time.Duration(fc.Global.ScrapeInterval)
	}
	for name, value := range fc.Global.ExternalLabels {
		if err := checkLabel(name, value); err != nil {
			return fmt.Errorf("global.external_labels: %w", err)
		}
	}
	cfg.ExternalLabels = mergeLabels(cfg.ExternalLabels, fc.Global.ExternalLabels)
	jobs := map[string]bool{}
	for i, sc := range fc.ScrapeConfigs {
		if sc.JobName == "" {
			return fmt.Errorf("scrape_configs[%d]: job_name is required", i)
		}
		if jobs[sc.JobName] {
			return fmt.Errorf("scrape_configs: job_name %q appears twice", sc.JobName)
		}
		jobs[sc.JobName] = true
		targets, err := sc.targets(cfg.ScrapeInterval, time.Duration(fc.Global.ScrapeTimeout))
		if err != nil {
			return fmt.Errorf("job %s: %w", sc.JobName, err)
		}
		cfg.Targets = append(cfg.Targets, targets...)
	}
	switch len(fc.RemoteWrite) {
	case 0:
		return nil
	case 1:
	default:
		return fmt.Errorf("remote_write: ferry sends to one receiver, found %d", len(fc.RemoteWrite))
	}
	return fc.RemoteWrite[0].apply(cfg, changed)
}

// targets resolves a scrape config into its targets, as Prometheus does
// for static configs: defaults, then relabel_configs for each address.
func (sc *scrapeConfig) targets(defaultInterval, defaultTimeout time.Duration) ([]ScrapeTarget, error) {
	interval := cmp.Or(time.Duration(sc.ScrapeInterval), defaultInterval)
	// As Prometheus: the global timeout (10s by default), at most the
	// job's interval, unless the job sets its own.
	timeout := cmp.Or(time.Duration(sc.ScrapeTimeout), min(cmp.Or(defaultTimeout, MaxScrapeTimeout), interval))
	if timeout > interval {
		return nil, fmt.Errorf("scrape_timeout %s is greater than scrape_interval %s", timeout, interval)
	}
	if err := sc.HTTP.Validate(); err != nil {
		return nil, err
	}
	limits := scrape.DefaultLimits
	if sc.SampleLimit < 0 || sc.LabelLimit < 0 || sc.LabelNameLengthLimit < 0 || sc.LabelValueLengthLimit < 0 {
		return nil, errors.New("limits must not be negative")
	}
	limits.Samples = cmp.Or(sc.SampleLimit, limits.Samples)
	// 0 (or absent) is ferry's default, not Prometheus' "no limit": the
	// label sets a target exposes cost flash under the buffer's cap.
	limits.Labels = cmp.Or(sc.LabelLimit, limits.Labels)
	limits.LabelNameLength = cmp.Or(sc.LabelNameLengthLimit, limits.LabelNameLength)
	limits.LabelValueLength = cmp.Or(sc.LabelValueLengthLimit, limits.LabelValueLength)
	if sc.BodySizeLimit != "" {
		n, err := parseBodySize(sc.BodySizeLimit)
		if err != nil {
			return nil, fmt.Errorf("body_size_limit: %w", err)
		}
		limits.BodyBytes = n
	}
	for _, rcs := range [][]*relabel.Config{sc.RelabelConfigs, sc.MetricRelabelConfigs} {
		for _, rc := range rcs {
			if err := rc.Validate(model.UTF8Validation); err != nil {
				return nil, fmt.Errorf("relabeling: %w", err)
			}
		}
	}
	scheme := cmp.Or(sc.Scheme, "http")
	if scheme != "http" && scheme != "https" {
		return nil, fmt.Errorf("scheme %q: want http or https", scheme)
	}
	var targets []ScrapeTarget
	for _, st := range sc.StaticConfigs {
		for name, value := range st.Labels {
			if !model.UTF8Validation.IsValidLabelName(name) || value == "" {
				return nil, fmt.Errorf("static_configs: label %q=%q: invalid name or empty value", name, value)
			}
		}
		for _, addr := range st.Targets {
			b := labels.NewBuilder(labels.FromMap(st.Labels))
			b.Set(model.AddressLabel, addr)
			b.Set(model.SchemeLabel, scheme)
			b.Set(model.MetricsPathLabel, cmp.Or(sc.MetricsPath, "/metrics"))
			b.Set(model.JobLabel, sc.JobName)
			b.Set(model.ScrapeIntervalLabel, interval.String())
			b.Set(model.ScrapeTimeoutLabel, timeout.String())
			for k, v := range sc.Params {
				if len(v) > 0 {
					b.Set(model.ParamLabelPrefix+k, v[0])
				}
			}
			u, lset, ok, err := targetFromLabels(b.Labels(), sc.Params, sc.RelabelConfigs)
			if err != nil {
				return nil, fmt.Errorf("target %q: %w", addr, err)
			}
			if !ok {
				continue // dropped by relabel_configs
			}
			t := newScrapeTarget(sc.JobName, u)
			t.Labels = lset
			t.Interval, t.Timeout = interval, timeout
			t.HonorLabels = sc.HonorLabels
			t.HonorTimestamps = sc.HonorTimestamps == nil || *sc.HonorTimestamps
			t.Limits = limits
			t.HTTP = sc.HTTP
			t.MetricRelabel = sc.MetricRelabelConfigs
			targets = append(targets, t)
		}
	}
	return targets, nil
}

// parseBodySize reads Prometheus' body_size_limit: 10MB, 512KiB, ...;
// 0 means ferry's default.
func parseBodySize(v string) (int64, error) {
	n, err := units.ParseBytes(v)
	if err == nil && n == 0 {
		n = scrape.DefaultLimits.BodyBytes
	}
	return n, err
}

func (rw *remoteWriteConfig) apply(cfg *Config, changed func(flag string) bool) error {
	if err := rw.HTTP.Validate(); err != nil {
		return fmt.Errorf("remote_write: %w", err)
	}
	c := &cfg.RemoteWrite
	set := func(flag string, apply func()) {
		if !changed(flag) {
			apply()
		}
	}
	set("remote-write.url", func() { c.URL = rw.URL })
	if rw.RemoteTimeout != 0 {
		set("remote-write.timeout", func() { c.Timeout = time.Duration(rw.RemoteTimeout) })
	}
	if rw.ProtobufMessage != "" {
		var p remotewrite.Protocol
		if err := p.Set(rw.ProtobufMessage); err != nil {
			return fmt.Errorf("remote_write: protobuf_message: %w", err)
		}
		set("remote-write.protocol", func() { c.Protocol = p })
	}
	q := rw.QueueConfig
	if q.MaxSamplesPerSend != 0 {
		set("remote-write.max-samples-per-send", func() { c.MaxSamplesPerSend = q.MaxSamplesPerSend })
	}
	if q.MinBackoff != 0 {
		set("remote-write.min-backoff", func() { c.MinBackoff = time.Duration(q.MinBackoff) })
	}
	if q.MaxBackoff != 0 {
		set("remote-write.max-backoff", func() { c.MaxBackoff = time.Duration(q.MaxBackoff) })
	}
	// The file's HTTP settings, under the flags that were given: Finish
	// applies the auth and header flags afterwards.
	flags := c.HTTP
	c.HTTP = rw.HTTP
	for _, f := range []struct {
		flag     string
		dst, val *string
	}{
		{"remote-write.tls.ca-file", &c.HTTP.TLS.CAFile, &flags.TLS.CAFile},
		{"remote-write.tls.cert-file", &c.HTTP.TLS.CertFile, &flags.TLS.CertFile},
		{"remote-write.tls.key-file", &c.HTTP.TLS.KeyFile, &flags.TLS.KeyFile},
		{"remote-write.tls.server-name", &c.HTTP.TLS.ServerName, &flags.TLS.ServerName},
		{"remote-write.proxy-url", &c.HTTP.ProxyURL, &flags.ProxyURL},
	} {
		if changed(f.flag) {
			*f.dst = *f.val
		}
	}
	if changed("remote-write.tls.insecure-skip-verify") {
		c.HTTP.TLS.InsecureSkipVerify = flags.TLS.InsecureSkipVerify
	}
	return nil
}

// readableYAMLError turns yaml.v3's "line 3: field foo not found in type
// struct {...}" into "line 3: unknown field foo".
func readableYAMLError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msgs := make([]string, len(te.Errors))
	for i, e := range te.Errors {
		if before, _, ok := strings.Cut(e, " not found in type"); ok {
			e = strings.Replace(before, "field ", "unknown field ", 1)
		}
		msgs[i] = e
	}
	return errors.New(strings.Join(msgs, "; ") + " (ferry reads the subset of prometheus.yml shown in packaging/ferry.example.yml)")
}

// CheckFile reads a config file on top of the defaults and validates the
// result, for "ferry check-config". It reads only the file: flags, label
// files and device identities are not involved. The error names the file,
// and the line for YAML errors.
func CheckFile(path string) (Config, error) {
	cfg := DefaultConfig()
	if err := applyFile(path, &cfg, func(string) bool { return false }); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}
