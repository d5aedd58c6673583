package agent

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferry-agent/ferry/collectors"
)

// source is one collector on the agent's schedule, with the target labels
// its samples get.
type source struct {
	name          string // in ferry's own metrics and logs
	job, instance string
	collector     collectors.Collector

	appended atomic.Uint64
	errors   atomic.Uint64
	lastLog  time.Time // of an error, for rate limiting
}

func newSource(name, job, instance string, c collectors.Collector) *source {
	return &source{name: name, job: job, instance: instance, collector: c}
}

// errorLogInterval keeps a failing source from flooding the log.
const errorLogInterval = time.Minute

// runSource collects at once, then every scrape interval until ctx ends.
func (a *Agent) runSource(ctx context.Context, s *source) {
	t := time.NewTicker(a.cfg.ScrapeInterval)
	defer t.Stop()
	for {
		a.collectOnce(ctx, s)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *Agent) collectOnce(ctx context.Context, s *source) {
	now := time.Now()
	cctx, cancel := context.WithTimeout(ctx, min(a.cfg.ScrapeInterval, 10*time.Second))
	defer cancel()
	var c collectors.Collection
	err := s.collector.Collect(cctx, &c)
	if ctx.Err() != nil {
		return // stopping: a collection cut short would report up=0 falsely
	}
	if err != nil {
		s.errors.Add(1)
		if now.Sub(s.lastLog) >= errorLogInterval {
			s.lastLog = now
			a.log.Warn("collection failed", "source", s.name, "err", err)
		}
	}
	ts := now.UnixMilli()
	b := labels.NewBuilder(labels.EmptyLabels())
	for _, smp := range c.Samples {
		t := smp.T
		if t == 0 {
			t = ts
		}
		a.buf.Append(targetLabels(b, smp.Labels, s.job, s.instance, a.cfg.ExternalLabels), t, smp.V)
	}
	s.appended.Add(uint64(len(c.Samples)))
}

// targetLabels adds job and instance to a sample's labels, as Prometheus
// does with honor_labels: false (a sample's own job becomes exported_job),
// then the external labels the sample does not have.
func targetLabels(b *labels.Builder, lset labels.Labels, job, instance string, external labels.Labels) labels.Labels {
	b.Reset(lset)
	for _, l := range [2]labels.Label{{Name: "job", Value: job}, {Name: "instance", Value: instance}} {
		if old := lset.Get(l.Name); old != "" {
			// As Prometheus does: prefix until the name is free.
			exported := "exported_" + l.Name
			for lset.Get(exported) != "" {
				exported = "exported_" + exported
			}
			b.Set(exported, old)
		}
		b.Set(l.Name, l.Value)
	}
	external.Range(func(l labels.Label) {
		if b.Get(l.Name) == "" {
			b.Set(l.Name, l.Value)
		}
	})
	return b.Labels()
}
