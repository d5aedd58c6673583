package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// fileConfig is the subset of prometheus.yml that ferry reads so far. An
// unknown field is an error naming it and its line, so that a setting ferry
// would ignore is never silently ignored.
type fileConfig struct {
	Global struct {
		ScrapeInterval model.Duration    `yaml:"scrape_interval"`
		ExternalLabels map[string]string `yaml:"external_labels"`
	} `yaml:"global"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		Scheme        string `yaml:"scheme"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
	RemoteWrite []struct {
		URL string `yaml:"url"`
	} `yaml:"remote_write"`
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

	if fc.Global.ScrapeInterval != 0 && !changed("scrape.interval") {
		cfg.ScrapeInterval = time.Duration(fc.Global.ScrapeInterval)
	}
	for name, value := range fc.Global.ExternalLabels {
		if err := checkLabel(name, value); err != nil {
			return fmt.Errorf("%s: global.external_labels: %w", path, err)
		}
	}
	cfg.ExternalLabels = mergeLabels(cfg.ExternalLabels, fc.Global.ExternalLabels)
	for i, sc := range fc.ScrapeConfigs {
		if sc.JobName == "" {
			return fmt.Errorf("%s: scrape_configs[%d]: job_name is required", path, i)
		}
		scheme := sc.Scheme
		if scheme == "" {
			scheme = "http"
		}
		for _, st := range sc.StaticConfigs {
			for _, addr := range st.Targets {
				u := url.URL{Scheme: scheme, Host: addr, Path: sc.MetricsPath}
				t, err := parseTarget(sc.JobName, u.String())
				if err != nil {
					return fmt.Errorf("%s: job %s: target %q: %w", path, sc.JobName, addr, err)
				}
				cfg.Targets = append(cfg.Targets, t)
			}
		}
	}
	switch {
	case len(fc.RemoteWrite) > 1:
		return fmt.Errorf("%s: remote_write: ferry sends to one receiver, found %d", path, len(fc.RemoteWrite))
	case len(fc.RemoteWrite) == 1 && !changed("remote-write.url"):
		cfg.RemoteWrite.URL = fc.RemoteWrite[0].URL
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
// result, for "ferry check-config".
func CheckFile(path string) (Config, error) {
	cfg := DefaultConfig()
	if err := applyFile(path, &cfg, func(string) bool { return false }); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}
