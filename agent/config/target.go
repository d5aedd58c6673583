package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"

	"github.com/ferry-agent/ferry/collectors/scrape"
)

// ScrapeTarget is one scrape target with what the agent does around the
// scrape: the labels its samples get and how often it runs.
type ScrapeTarget struct {
	scrape.Target
	Labels        labels.Labels // target labels: job, instance and any others
	Interval      time.Duration // 0: --scrape.interval
	Timeout       time.Duration // 0: the interval, at most 10s
	HonorLabels   bool          // a sample's own job, instance, ... win over the target's
	MetricRelabel []*relabel.Config
}

// newScrapeTarget is a target of job at u with Prometheus' defaults.
func newScrapeTarget(job string, u *url.URL) ScrapeTarget {
	return ScrapeTarget{
		Target: scrape.Target{URL: u, HonorTimestamps: true, Limits: scrape.DefaultLimits},
		Labels: labels.FromStrings(model.JobLabel, job, model.InstanceLabel, u.Host),
	}
}

// Job and Instance are the target's job and instance labels.
func (t ScrapeTarget) Job() string      { return t.Labels.Get(model.JobLabel) }
func (t ScrapeTarget) Instance() string { return t.Labels.Get(model.InstanceLabel) }

// Name identifies the target in logs and ferry's metrics, and across a
// reload: job/instance.
func (t ScrapeTarget) Name() string { return t.Job() + "/" + t.Instance() }

// targetFromLabels is Prometheus' target relabeling for one address of a
// target group (static_configs, or a file of file_sd_configs): the target's labels with __address__, __scheme__,
// __metrics_path__ and __param_NAME, through relabel_configs; then the URL
// comes from those, instance defaults to the address, and the labels
// starting with __ go. ok is false when relabeling dropped the target.
func targetFromLabels(lset labels.Labels, params url.Values, rcs []*relabel.Config) (u *url.URL, target labels.Labels, ok bool, err error) {
	b := labels.NewBuilder(lset)
	if !relabel.ProcessBuilder(b, rcs...) {
		return nil, labels.EmptyLabels(), false, nil
	}
	addr := b.Get(model.AddressLabel)
	if addr == "" {
		return nil, labels.EmptyLabels(), false, fmt.Errorf("no %s label after relabeling", model.AddressLabel)
	}
	q := url.Values{}
	for k, v := range params {
		q[k] = append([]string(nil), v...)
	}
	var drop []string
	b.Range(func(l labels.Label) {
		if name, ok := strings.CutPrefix(l.Name, model.ParamLabelPrefix); ok {
			q.Set(name, l.Value)
		}
		if strings.HasPrefix(l.Name, model.ReservedLabelPrefix) {
			drop = append(drop, l.Name)
		}
	})
	u = &url.URL{Scheme: b.Get(model.SchemeLabel), Host: addr, Path: b.Get(model.MetricsPathLabel), RawQuery: q.Encode()}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, labels.EmptyLabels(), false, fmt.Errorf("scheme %q: want http or https", u.Scheme)
	}
	if strings.ContainsAny(addr, "/?#@") {
		return nil, labels.EmptyLabels(), false, fmt.Errorf("%q is not a host:port address", addr)
	}
	if b.Get(model.InstanceLabel) == "" {
		b.Set(model.InstanceLabel, addr)
	}
	b.Del(drop...)
	return u, b.Labels(), true, nil
}
