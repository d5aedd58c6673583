package config

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"

	"github.com/ferry-agent/ferry/collectors/scrape"
	"github.com/ferry-agent/ferry/internal/httpclient"
	"github.com/ferry-agent/ferry/internal/units"
)

// TargetGroup is a list of targets with labels for all of them: an entry
// of static_configs, or of a file named by file_sd_configs.
type TargetGroup struct {
	Targets []string          `yaml:"targets" json:"targets"`
	Labels  map[string]string `yaml:"labels" json:"labels"`
}

// FileSD is a scrape job whose targets are read from files, as Prometheus'
// file_sd_configs: JSON or YAML lists of target groups. The files are
// re-read when they change and every RefreshInterval; each group gets the
// label __meta_filepath, for relabel_configs. The job's static targets, if
// it has any, are in Config.Targets.
type FileSD struct {
	Job             string
	Files           []string      // glob patterns, * only in the file name; relative ones resolved against the config file's directory
	RefreshInterval time.Duration // the shortest of the job's file_sd_configs
	job             *scrapeJob
}

// DefaultFileSDRefresh is file_sd_configs' refresh_interval unless set, as
// in Prometheus.
const DefaultFileSDRefresh = 5 * time.Minute

// Targets turns target groups read from the job's files into its targets,
// as static_configs are: with the job's settings, through relabel_configs.
// A target that cannot work is left out, and said why in errs; the others
// are returned.
func (f FileSD) Targets(groups []TargetGroup) (targets []ScrapeTarget, errs []error) {
	if f.job == nil {
		return nil, []error{errors.New("file_sd_configs of an unknown job")}
	}
	return f.job.targets(groups)
}

// scrapeJob is a scrape config resolved against the global section: what
// each of its targets gets.
type scrapeJob struct {
	name              string
	interval, timeout time.Duration
	scheme, path      string
	params            map[string][]string
	honorLabels       bool
	honorTimestamps   bool
	limits            scrape.Limits
	http              httpclient.Config
	relabel           []*relabel.Config
	metricRelabel     []*relabel.Config
}

// resolve checks a scrape config and applies the defaults, as Prometheus
// does: the global settings where the job has none.
func (sc *scrapeConfig) resolve(g *globalConfig, defaultInterval time.Duration) (*scrapeJob, error) {
	interval := cmp.Or(time.Duration(sc.ScrapeInterval), defaultInterval)
	if interval < minScrapeInterval {
		return nil, fmt.Errorf("scrape_interval %s is below ferry's minimum of %s", interval, minScrapeInterval)
	}
	// As Prometheus: the global timeout (10s by default), at most the
	// job's interval, unless the job sets its own.
	timeout := cmp.Or(time.Duration(sc.ScrapeTimeout), min(cmp.Or(time.Duration(g.ScrapeTimeout), MaxScrapeTimeout), interval))
	if timeout > interval {
		return nil, fmt.Errorf("scrape_timeout %s is greater than scrape_interval %s", timeout, interval)
	}
	if err := checkProtocols(sc.ScrapeProtocols); err != nil {
		return nil, fmt.Errorf("scrape_protocols: %w", err)
	}
	if sc.FallbackScrapeProtocol != "" {
		if err := checkProtocols([]string{sc.FallbackScrapeProtocol}); err != nil {
			return nil, fmt.Errorf("fallback_scrape_protocol: %w", err)
		}
	}
	if err := sc.HTTP.Validate(); err != nil {
		return nil, err
	}
	l, gl := sc.Limits, g.Limits
	if l.SampleLimit < 0 || l.LabelLimit < 0 || l.LabelNameLengthLimit < 0 || l.LabelValueLengthLimit < 0 ||
		gl.SampleLimit < 0 || gl.LabelLimit < 0 || gl.LabelNameLengthLimit < 0 || gl.LabelValueLengthLimit < 0 {
		return nil, errors.New("limits must not be negative")
	}
	limits := scrape.DefaultLimits
	limits.Samples = cmp.Or(l.SampleLimit, gl.SampleLimit, limits.Samples)
	// 0 (or absent) is ferry's default, not Prometheus' "no limit": the
	// label sets a target exposes cost flash under the buffer's cap.
	limits.Labels = cmp.Or(l.LabelLimit, gl.LabelLimit, limits.Labels)
	limits.LabelNameLength = cmp.Or(l.LabelNameLengthLimit, gl.LabelNameLengthLimit, limits.LabelNameLength)
	limits.LabelValueLength = cmp.Or(l.LabelValueLengthLimit, gl.LabelValueLengthLimit, limits.LabelValueLength)
	if bs := cmp.Or(l.BodySizeLimit, gl.BodySizeLimit); bs != "" {
		n, err := parseBodySize(bs)
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
	return &scrapeJob{
		name: sc.JobName, interval: interval, timeout: timeout,
		scheme: scheme, path: cmp.Or(sc.MetricsPath, "/metrics"), params: sc.Params,
		honorLabels: sc.HonorLabels, honorTimestamps: sc.HonorTimestamps == nil || *sc.HonorTimestamps,
		limits: limits, http: sc.HTTP, relabel: sc.RelabelConfigs, metricRelabel: sc.MetricRelabelConfigs,
	}, nil
}

// targets resolves target groups into the job's targets, as Prometheus
// does: the group's labels, the job's defaults for the labels the group
// does not set, then relabel_configs for each address. A target that
// cannot work is left out and said why in errs; one that relabeling drops
// is left out silently; one that is there twice is there once.
func (j *scrapeJob) targets(groups []TargetGroup) (targets []ScrapeTarget, errs []error) {
	seen := map[string]bool{}
groups:
	for _, g := range groups {
		for name, value := range g.Labels {
			if !model.UTF8Validation.IsValidLabelName(name) || value == "" {
				errs = append(errs, fmt.Errorf("label %q=%q: invalid name or empty value", name, value))
				continue groups
			}
		}
		for _, addr := range g.Targets {
			b := labels.NewBuilder(labels.FromMap(g.Labels))
			b.Set(model.AddressLabel, addr)
			for _, l := range []labels.Label{
				{Name: model.JobLabel, Value: j.name},
				{Name: model.ScrapeIntervalLabel, Value: j.interval.String()},
				{Name: model.ScrapeTimeoutLabel, Value: j.timeout.String()},
				{Name: model.MetricsPathLabel, Value: j.path},
				{Name: model.SchemeLabel, Value: j.scheme},
			} {
				if b.Get(l.Name) == "" {
					b.Set(l.Name, l.Value)
				}
			}
			for k, v := range j.params {
				if name := model.ParamLabelPrefix + k; len(v) > 0 && b.Get(name) == "" {
					b.Set(name, v[0])
				}
			}
			u, lset, ok, err := targetFromLabels(b.Labels(), j.params, j.relabel)
			if err != nil {
				errs = append(errs, fmt.Errorf("target %q: %w", addr, err))
				continue
			}
			if !ok {
				continue // dropped by relabel_configs
			}
			key := u.String() + lset.String()
			if seen[key] {
				continue
			}
			seen[key] = true
			t := newScrapeTarget(j.name, u)
			t.Labels = lset
			t.Interval, t.Timeout = j.interval, j.timeout
			t.HonorLabels = j.honorLabels
			t.HonorTimestamps = j.honorTimestamps
			t.Limits = j.limits
			t.HTTP = j.http
			t.MetricRelabel = j.metricRelabel
			targets = append(targets, t)
		}
	}
	return targets, errs
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
