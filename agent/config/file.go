package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/relabel"
	"gopkg.in/yaml.v3"

	"github.com/ferry-agent/ferry/agent/remotewrite"
	"github.com/ferry-agent/ferry/collectors"
	"github.com/ferry-agent/ferry/internal/httpclient"
)

// fileConfig is the part of prometheus.yml that ferry reads, with
// Prometheus' meaning for each field. It takes what Prometheus in agent
// mode takes: a field that has no effect in ferry is listed in README.md
// with the reason; a section only a Prometheus server uses is accepted with
// a warning. An unknown field, or a service discovery ferry does not have,
// is an error naming its line, so that a setting ferry would ignore is
// never silently ignored.
type fileConfig struct {
	Global        globalConfig        `yaml:"global"`
	ScrapeConfigs []scrapeConfig      `yaml:"scrape_configs"`
	RemoteWrite   []remoteWriteConfig `yaml:"remote_write"`
	Ferry         ferrySection        `yaml:"ferry"` // ferry's own settings: ferryfile.go

	// Sections of a Prometheus server: accepted, each with a warning
	// (serverOnly says why).
	RuleFiles  yaml.Node `yaml:"rule_files"`
	Alerting   yaml.Node `yaml:"alerting"`
	RemoteRead yaml.Node `yaml:"remote_read"`
	Storage    yaml.Node `yaml:"storage"`
	Tracing    yaml.Node `yaml:"tracing"`
	OTLP       yaml.Node `yaml:"otlp"`
	Runtime    yaml.Node `yaml:"runtime"`
}

// serverOnly names the sections only a Prometheus server uses and why
// ferry ignores each.
var serverOnly = []struct{ name, why string }{
	{"rule_files", "ferry evaluates no rules; recording and alerting rules belong on the central Prometheus"},
	{"alerting", "ferry sends no alerts; alert from the central Prometheus"},
	{"remote_read", "ferry answers no queries"},
	{"storage", "ferry keeps no TSDB; its on-disk buffer has settings of its own (ferry --help)"},
	{"tracing", "ferry exports no traces"},
	{"otlp", "ferry receives no OTLP"},
	{"runtime", "ferry sizes its own Go runtime"},
}

func (fc *fileConfig) section(name string) *yaml.Node {
	return map[string]*yaml.Node{"rule_files": &fc.RuleFiles, "alerting": &fc.Alerting, "remote_read": &fc.RemoteRead,
		"storage": &fc.Storage, "tracing": &fc.Tracing, "otlp": &fc.OTLP, "runtime": &fc.Runtime}[name]
}

type globalConfig struct {
	ScrapeInterval  model.Duration    `yaml:"scrape_interval"`
	ScrapeTimeout   model.Duration    `yaml:"scrape_timeout"`
	ScrapeProtocols []string          `yaml:"scrape_protocols"`
	ExternalLabels  map[string]string `yaml:"external_labels"`
	Limits          scrapeLimits      `yaml:",inline"` // each job's unless it sets its own

	// Accepted with Prometheus' meaning, which has no effect in ferry.
	EvaluationInterval  model.Duration `yaml:"evaluation_interval"` // no rules
	RuleQueryOffset     model.Duration `yaml:"rule_query_offset"`   // no rules
	QueryLogFile        string         `yaml:"query_log_file"`      // no queries
	QueryMaxSeries      uint64         `yaml:"query_max_series"`
	QueryMaxSamplesRead uint64         `yaml:"query_max_samples_read"`
	QueryMaxDuration    model.Duration `yaml:"query_max_duration"`
	Ignored             ignoredScrape  `yaml:",inline"`
}

// scrapeLimits are Prometheus' per-scrape limits, in the global section
// and in each job.
type scrapeLimits struct {
	SampleLimit           int    `yaml:"sample_limit"`
	LabelLimit            int    `yaml:"label_limit"`
	LabelNameLengthLimit  int    `yaml:"label_name_length_limit"`
	LabelValueLengthLimit int    `yaml:"label_value_length_limit"`
	BodySizeLimit         string `yaml:"body_size_limit"`
}

// ignoredScrape are the scrape settings, global or of a job, that ferry
// accepts and ignores (README.md, "The configuration file", says why for
// each). They are typed, so that a value Prometheus would refuse is still
// refused.
type ignoredScrape struct {
	TargetLimit                    uint   `yaml:"target_limit"`
	KeepDroppedTargets             uint   `yaml:"keep_dropped_targets"`
	ScrapeFailureLogFile           string `yaml:"scrape_failure_log_file"`
	MetricNameValidationScheme     string `yaml:"metric_name_validation_scheme"`
	MetricNameEscapingScheme       string `yaml:"metric_name_escaping_scheme"`
	ScrapeNativeHistograms         *bool  `yaml:"scrape_native_histograms"`
	AlwaysScrapeClassicHistograms  *bool  `yaml:"always_scrape_classic_histograms"`
	ConvertClassicHistogramsToNHCB *bool  `yaml:"convert_classic_histograms_to_nhcb"`
	ExtraScrapeMetrics             *bool  `yaml:"extra_scrape_metrics"`
}

// ignoredHTTP are HTTP client settings of Prometheus that ferry's client
// does not offer: it follows redirects and negotiates HTTP/2 as Go does.
type ignoredHTTP struct {
	FollowRedirects *bool `yaml:"follow_redirects"`
	EnableHTTP2     *bool `yaml:"enable_http2"`
}

type scrapeConfig struct {
	JobName                string              `yaml:"job_name"`
	ScrapeInterval         model.Duration      `yaml:"scrape_interval"`
	ScrapeTimeout          model.Duration      `yaml:"scrape_timeout"`
	ScrapeProtocols        []string            `yaml:"scrape_protocols"`
	FallbackScrapeProtocol string              `yaml:"fallback_scrape_protocol"`
	MetricsPath            string              `yaml:"metrics_path"`
	Scheme                 string              `yaml:"scheme"`
	Params                 map[string][]string `yaml:"params"`
	HonorLabels            bool                `yaml:"honor_labels"`
	HonorTimestamps        *bool               `yaml:"honor_timestamps"`
	Limits                 scrapeLimits        `yaml:",inline"`
	StaticConfigs          []TargetGroup       `yaml:"static_configs"`
	FileSDConfigs          []struct {
		Files           []string       `yaml:"files"`
		RefreshInterval model.Duration `yaml:"refresh_interval"`
	} `yaml:"file_sd_configs"`
	RelabelConfigs       []*relabel.Config `yaml:"relabel_configs"`
	MetricRelabelConfigs []*relabel.Config `yaml:"metric_relabel_configs"`
	HTTP                 httpclient.Config `yaml:",inline"`

	// Accepted with Prometheus' meaning, which has no effect in ferry.
	TrackTimestampsStaleness       bool          `yaml:"track_timestamps_staleness"` // ferry: false, as Prometheus' default
	EnableCompression              *bool         `yaml:"enable_compression"`         // ferry always asks for gzip
	ScrapeClassicHistograms        *bool         `yaml:"scrape_classic_histograms"`  // older name of always_scrape_classic_histograms
	NativeHistogramBucketLimit     uint          `yaml:"native_histogram_bucket_limit"`
	NativeHistogramMinBucketFactor float64       `yaml:"native_histogram_min_bucket_factor"`
	Ignored                        ignoredScrape `yaml:",inline"`
	IgnoredHTTP                    ignoredHTTP   `yaml:",inline"`
}

type remoteWriteConfig struct {
	URL                 string            `yaml:"url"`
	Name                string            `yaml:"name"` // the endpoint label of ferry's sender metrics
	RemoteTimeout       model.Duration    `yaml:"remote_timeout"`
	WriteRelabelConfigs []*relabel.Config `yaml:"write_relabel_configs"`
	QueueConfig         struct {
		MaxSamplesPerSend int            `yaml:"max_samples_per_send"`
		MinBackoff        model.Duration `yaml:"min_backoff"`
		MaxBackoff        model.Duration `yaml:"max_backoff"`
		SampleAgeLimit    model.Duration `yaml:"sample_age_limit"`
		// Accepted and ignored: ferry's sender is one loop over the
		// buffer, not shards over an in-memory queue, and always retries
		// a 429.
		Capacity          int            `yaml:"capacity"`
		MaxShards         int            `yaml:"max_shards"`
		MinShards         int            `yaml:"min_shards"`
		BatchSendDeadline model.Duration `yaml:"batch_send_deadline"`
		RetryOnHTTP429    *bool          `yaml:"retry_on_http_429"`
	} `yaml:"queue_config"`
	MetadataConfig struct {
		Send              *bool          `yaml:"send"`
		SendInterval      model.Duration `yaml:"send_interval"`
		MaxSamplesPerSend int            `yaml:"max_samples_per_send"`
	} `yaml:"metadata_config"`
	ProtobufMessage string            `yaml:"protobuf_message"` // prometheus.WriteRequest or io.prometheus.write.v2.Request
	HTTP            httpclient.Config `yaml:",inline"`

	// Accepted and ignored: ferry collects no exemplars or native
	// histograms, and resolves the receiver's name as Go does.
	SendExemplars        bool        `yaml:"send_exemplars"`
	SendNativeHistograms bool        `yaml:"send_native_histograms"`
	RoundRobinDNS        bool        `yaml:"round_robin_dns"`
	IgnoredHTTP          ignoredHTTP `yaml:",inline"`
}

// maxFileSize bounds what ferry reads as a config file.
const maxFileSize = 1 << 20

// applyFile reads the YAML file at path into cfg, leaving alone every
// setting whose flag was given (changed reports that by flag name), and
// returns what Finish resolves of its ferry section. Errors name the file
// and, where there is one, the line.
func applyFile(path string, cfg *Config, changed func(flag string) bool) (fileIdentity, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileIdentity{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return fileIdentity{}, err
	}
	if len(data) > maxFileSize {
		return fileIdentity{}, fmt.Errorf("%s: larger than %d bytes", path, maxFileSize)
	}
	// The document as nodes first, for the lines of what it holds; then
	// strictly into fileConfig.
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fileIdentity{}, fmt.Errorf("%s: %w", path, readableYAMLError(err))
	}
	if err := checkDiscovery(&doc); err != nil {
		return fileIdentity{}, fmt.Errorf("%s: %w", path, err)
	}
	var fc fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if line := locate(&doc, err); line > 0 && !errors.As(err, &te) {
			err = &lineError{line: line, err: err}
		}
		return fileIdentity{}, fmt.Errorf("%s: %w", path, readableYAMLError(err))
	}
	id, err := fc.Ferry.apply(cfg, changed, &doc)
	if err != nil {
		return id, fmt.Errorf("%s: %w", path, err)
	}
	warnings, err := fc.apply(cfg, changed, &doc, filepath.Dir(path))
	if err != nil {
		return id, fmt.Errorf("%s: %w", path, err)
	}
	for _, w := range warnings {
		cfg.Warnings = append(cfg.Warnings, path+": "+w)
	}
	return id, nil
}

// checkDiscovery refuses a service discovery ferry does not have, naming
// it and its line. Prometheus' are all called NAME_sd_configs; ferry has
// file_sd_configs.
func checkDiscovery(doc *yaml.Node) error {
	jobs := lookup(doc, "scrape_configs")
	if jobs == nil || jobs.Kind != yaml.SequenceNode {
		return nil
	}
	for _, job := range jobs.Content {
		if job.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(job.Content); i += 2 {
			key := job.Content[i].Value
			mechanism, ok := strings.CutSuffix(key, "_sd_configs")
			if !ok || mechanism == "file" {
				continue
			}
			return lineErrorf(job.Content[i].Line, "%s: ferry has no %s service discovery; list the targets in static_configs, "+
				"or have a script write them to a file for file_sd_configs, which ferry re-reads when it changes", key, mechanism)
		}
	}
	return nil
}

func (fc *fileConfig) apply(cfg *Config, changed func(flag string) bool, doc *yaml.Node, dir string) (warnings []string, err error) {
	type warning struct {
		line int
		text string
	}
	var ws []warning
	for _, s := range serverOnly {
		if n := fc.section(s.name); n.Kind != 0 && n.Tag != "!!null" {
			line := keyLine(doc, s.name)
			ws = append(ws, warning{line, fmt.Sprintf("line %d: %s ignored: %s", line, s.name, s.why)})
		}
	}
	slices.SortFunc(ws, func(a, b warning) int { return a.line - b.line })
	for _, w := range ws {
		warnings = append(warnings, w.text)
	}
	g := &fc.Global
	if g.ScrapeInterval != 0 && !changed("scrape.interval") {
		if time.Duration(g.ScrapeInterval) < minScrapeInterval {
			return nil, lineErrorf(keyLine(doc, "global", "scrape_interval"), "global.scrape_interval: %s is below ferry's minimum of %s", g.ScrapeInterval, minScrapeInterval)
		}
		cfg.ScrapeInterval = time.Duration(g.ScrapeInterval)
	}
	if err := checkProtocols(g.ScrapeProtocols); err != nil {
		return nil, lineErrorf(keyLine(doc, "global", "scrape_protocols"), "global.scrape_protocols: %w", err)
	}
	for name, value := range g.ExternalLabels {
		if err := checkLabel(name, value); err != nil {
			return nil, lineErrorf(keyLine(doc, "global", "external_labels"), "global.external_labels: %w", err)
		}
	}
	cfg.ExternalLabels = mergeLabels(cfg.ExternalLabels, g.ExternalLabels)
	jobs := map[string]int{}
	for i, sc := range fc.ScrapeConfigs {
		line := keyLine(doc, "scrape_configs", i)
		if sc.JobName == "" {
			return nil, lineErrorf(line, "scrape_configs[%d]: job_name is required", i)
		}
		if first, ok := jobs[sc.JobName]; ok {
			return nil, lineErrorf(line, "scrape_configs: job_name %q appears twice (first at line %d)", sc.JobName, first)
		}
		jobs[sc.JobName] = line
		job, err := sc.resolve(g, cfg.ScrapeInterval)
		if err != nil {
			return nil, lineErrorf(line, "job %s: %w", sc.JobName, err)
		}
		static, errs := job.targets(sc.StaticConfigs)
		if len(errs) > 0 {
			return nil, lineErrorf(line, "job %s: %w", sc.JobName, errs[0])
		}
		cfg.Targets = append(cfg.Targets, static...)
		if len(sc.FileSDConfigs) > 0 {
			sd, err := sc.fileSD(job, dir)
			if err != nil {
				return nil, lineErrorf(keyLine(doc, "scrape_configs", i, "file_sd_configs"), "job %s: file_sd_configs: %w", sc.JobName, err)
			}
			cfg.FileSD = append(cfg.FileSD, sd)
		}
	}
	if len(fc.RemoteWrite) == 0 {
		return warnings, nil
	}
	// The entries after the first start from the defaults and the flags
	// (the flags speak of the first entry only: its URL, auth, headers).
	base := cfg.RemoteWrite
	base.URL, base.HTTP = "", httpclient.Config{}
	if err := fc.RemoteWrite[0].apply(cfg, changed); err != nil {
		return nil, lineErrorf(keyLine(doc, "remote_write", 0), "remote_write: %w", err)
	}
	cfg.RemoteWriteName = fc.RemoteWrite[0].Name
	for i, rw := range fc.RemoteWrite[1:] {
		c := Config{RemoteWrite: base}
		if err := rw.apply(&c, func(string) bool { return false }); err != nil {
			return nil, lineErrorf(keyLine(doc, "remote_write", i+1), "remote_write: %w", err)
		}
		cfg.MoreRemoteWrite = append(cfg.MoreRemoteWrite, RemoteWrite{Name: rw.Name, Config: c.RemoteWrite, WriteRelabel: c.WriteRelabel})
	}
	// Each endpoint's label in ferry's metrics must tell it apart.
	seen := map[string]int{}
	for i, ep := range cfg.Endpoints() {
		if first, ok := seen[ep.Label()]; ok {
			what := fmt.Sprintf("name %q", ep.Name)
			if ep.Name == "" {
				what = "url " + httpclient.RedactURL(ep.URL) + " without a name"
			}
			return nil, lineErrorf(keyLine(doc, "remote_write", i), "remote_write: %s twice (first at line %d): give each entry its own name", what, keyLine(doc, "remote_write", first))
		}
		seen[ep.Label()] = i
	}
	return warnings, nil
}

// minScrapeInterval is the shortest interval ferry runs a source at.
const minScrapeInterval = 100 * time.Millisecond

// scrapeProtocols are the values of Prometheus' scrape_protocols. ferry
// always asks for OpenMetrics, then the text format, and parses either: it
// checks the names and otherwise ignores the setting.
var scrapeProtocols = []string{"PrometheusProto", "PrometheusText0.0.4", "PrometheusText1.0.0",
	"OpenMetricsText0.0.1", "OpenMetricsText1.0.0", "OpenMetricsText2.0.0"}

func checkProtocols(ps []string) error {
	for _, p := range ps {
		if !slices.Contains(scrapeProtocols, p) {
			return fmt.Errorf("unknown scrape protocol %q, want one of %s", p, strings.Join(scrapeProtocols, ", "))
		}
	}
	return nil
}

// fileSD is the job's file_sd_configs: patterns relative to dir, the
// directory of the config file, as Prometheus resolves them.
func (sc *scrapeConfig) fileSD(job *scrapeJob, dir string) (FileSD, error) {
	sd := FileSD{Job: sc.JobName, job: job}
	for _, c := range sc.FileSDConfigs {
		if len(c.Files) == 0 {
			return sd, errors.New("files: at least one is required")
		}
		for _, f := range c.Files {
			if err := checkFileSDPattern(f); err != nil {
				return sd, err
			}
			if !filepath.IsAbs(f) {
				f = filepath.Join(dir, f)
			}
			if !slices.Contains(sd.Files, f) {
				sd.Files = append(sd.Files, f)
			}
		}
		refresh := cmp.Or(time.Duration(c.RefreshInterval), DefaultFileSDRefresh)
		if sd.RefreshInterval == 0 || refresh < sd.RefreshInterval {
			sd.RefreshInterval = refresh
		}
	}
	return sd, nil
}

// checkFileSDPattern is Prometheus' rule for file_sd_configs' files: a
// .json, .yml or .yaml name, with a * only in the last path element.
func checkFileSDPattern(f string) error {
	ext := strings.ToLower(filepath.Ext(f))
	if ext != ".json" && ext != ".yml" && ext != ".yaml" {
		return fmt.Errorf("%q: want a .json, .yml or .yaml file", f)
	}
	if strings.Contains(filepath.Dir(f), "*") {
		return fmt.Errorf("%q: a * is allowed in the file name only, not in its directory", f)
	}
	if _, err := filepath.Match(filepath.Base(f), ""); err != nil {
		return fmt.Errorf("%q: %w", f, err)
	}
	return nil
}

func (rw *remoteWriteConfig) apply(cfg *Config, changed func(flag string) bool) error {
	if rw.URL == "" {
		return errors.New("url is required")
	}
	if err := checkURL(rw.URL); err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if err := rw.HTTP.Validate(); err != nil {
		return err
	}
	for _, rc := range rw.WriteRelabelConfigs {
		if err := rc.Validate(model.UTF8Validation); err != nil {
			return fmt.Errorf("write_relabel_configs: %w", err)
		}
	}
	cfg.WriteRelabel = rw.WriteRelabelConfigs
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
			return fmt.Errorf("protobuf_message: %w", err)
		}
		set("remote-write.protocol", func() { c.Protocol = p })
	}
	md := rw.MetadataConfig
	if md.MaxSamplesPerSend < 0 {
		return errors.New("metadata_config.max_samples_per_send: must not be negative")
	}
	if md.Send != nil {
		set("remote-write.metadata.send", func() { c.Metadata.Send = *md.Send })
	}
	if md.SendInterval != 0 {
		set("remote-write.metadata.send-interval", func() { c.Metadata.SendInterval = time.Duration(md.SendInterval) })
	}
	if md.MaxSamplesPerSend != 0 {
		c.Metadata.MaxSamplesPerSend = md.MaxSamplesPerSend
	}
	q := rw.QueueConfig
	switch {
	case q.MaxSamplesPerSend < 0:
		return errors.New("queue_config.max_samples_per_send: must not be negative")
	case q.MinBackoff < 0 || q.MaxBackoff < 0 || q.SampleAgeLimit < 0:
		return errors.New("queue_config: durations must not be negative")
	}
	if q.MaxSamplesPerSend != 0 {
		set("remote-write.max-samples-per-send", func() { c.MaxSamplesPerSend = q.MaxSamplesPerSend })
	}
	if q.MinBackoff != 0 {
		set("remote-write.min-backoff", func() { c.MinBackoff = time.Duration(q.MinBackoff) })
	}
	if q.MaxBackoff != 0 {
		set("remote-write.max-backoff", func() { c.MaxBackoff = time.Duration(q.MaxBackoff) })
	}
	if c.MinBackoff > c.MaxBackoff && !changed("remote-write.min-backoff") && !changed("remote-write.max-backoff") {
		return fmt.Errorf("queue_config: min_backoff %s is above max_backoff %s", c.MinBackoff, c.MaxBackoff)
	}
	if q.SampleAgeLimit != 0 {
		set("remote-write.max-sample-age", func() { c.MaxSampleAge = time.Duration(q.SampleAgeLimit) })
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

// lineError is an error at a line of the config file; 0: no line known.
type lineError struct {
	line int
	err  error
}

func (e *lineError) Error() string {
	if e.line == 0 {
		return e.err.Error()
	}
	return fmt.Sprintf("line %d: %v", e.line, e.err)
}
func (e *lineError) Unwrap() error { return e.err }

func lineErrorf(line int, format string, args ...any) error {
	return &lineError{line: line, err: fmt.Errorf(format, args...)}
}

// lookup returns the node at path in a YAML document: a string steps into
// a mapping by key, an int into a sequence by index; nil if absent.
func lookup(doc *yaml.Node, path ...any) *yaml.Node {
	_, val := find(doc, path...)
	return val
}

// keyLine is the line of what path names in a document: of its key in a
// mapping, of the item in a sequence; 0 if absent.
func keyLine(doc *yaml.Node, path ...any) int {
	key, val := find(doc, path...)
	switch {
	case key != nil:
		return key.Line
	case val != nil:
		return val.Line
	}
	return 0
}

func find(doc *yaml.Node, path ...any) (key, val *yaml.Node) {
	n := doc
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, step := range path {
		if n == nil {
			return nil, nil
		}
		key = nil
		switch s := step.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return nil, nil
			}
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == s {
					key, next = n.Content[i], n.Content[i+1]
					break
				}
			}
			n = next
		case int:
			if n.Kind != yaml.SequenceNode || s >= len(n.Content) {
				return nil, nil
			}
			n = n.Content[s]
		}
	}
	return key, n
}

// locate finds the line of an error that a field's own decoding gave
// without one (a relabel rule, a duration): the relabel rule that gives the
// same error when decoded alone, else the first value the error quotes.
// 0 if neither is found.
func locate(doc *yaml.Node, err error) int {
	msg := err.Error()
	line := 0
	var walk func(n *yaml.Node, relabeling bool)
	walk = func(n *yaml.Node, relabeling bool) {
		if line > 0 || n == nil {
			return
		}
		if relabeling && n.Kind == yaml.SequenceNode {
			for _, item := range n.Content {
				var rc relabel.Config
				if e := item.Decode(&rc); e != nil && e.Error() == msg {
					line = item.Line
					return
				}
			}
		}
		for i, c := range n.Content {
			walk(c, n.Kind == yaml.MappingNode && i%2 == 1 && strings.HasSuffix(n.Content[i-1].Value, "relabel_configs"))
		}
	}
	walk(doc, false)
	if line > 0 {
		return line
	}
	var quoted func(n *yaml.Node)
	quoted = func(n *yaml.Node) {
		if line > 0 || n == nil {
			return
		}
		if n.Kind == yaml.ScalarNode && n.Value != "" && strings.Contains(msg, fmt.Sprintf("%q", n.Value)) {
			line = n.Line
			return
		}
		for _, c := range n.Content {
			quoted(c)
		}
	}
	quoted(doc)
	return line
}

// readableYAMLError turns yaml.v3's "yaml: line 3: field foo not found in
// type struct {...}" into "line 3: unknown field foo".
func readableYAMLError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	msgs := make([]string, len(te.Errors))
	unknown := false
	for i, e := range te.Errors {
		if before, _, ok := strings.Cut(e, " not found in type"); ok {
			e = strings.Replace(before, "field ", "unknown field ", 1)
			unknown = true
		}
		msgs[i] = e
	}
	msg := strings.Join(msgs, "; ")
	if unknown {
		msg += " (not a field of prometheus.yml, or one ferry cannot honour; ferry's README lists what it reads)"
	}
	return errors.New(msg)
}

// CheckFile reads a config file on top of the defaults and validates the
// result, for "ferry check-config". It reads only the file: flags, label
// files and device identities are not involved. The error names the file,
// and the line where there is one; what the file has that ferry ignores is
// in the Config's Warnings. With hostCollectors, the names the file's
// ferry.collectors gives are checked against theirs.
func CheckFile(path string, hostCollectors ...collectors.Entry) (Config, error) {
	cfg := DefaultConfig()
	id, err := applyFile(path, &cfg, func(string) bool { return false })
	if err != nil {
		return cfg, err
	}
	if hostCollectors != nil {
		if err := checkCollectorNames(id.collectors, hostCollectors); err != nil {
			return cfg, fmt.Errorf("%s: ferry.collectors: %w", path, err)
		}
	}
	cfg.Instance = id.instance
	return cfg, cfg.Validate()
}
