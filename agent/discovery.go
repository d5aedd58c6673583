package agent

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ferry-agent/ferry/agent/config"
	"github.com/ferry-agent/ferry/agent/filesd"
)

// discovery watches the files of the jobs with file_sd_configs and hands
// the agent's loop each job whose target groups changed. Its groups are
// the agent loop's: read and written from that goroutine only.
type discovery struct {
	jobs    []config.FileSD
	groups  map[string][]config.TargetGroup // by job
	updates chan discovered
	stop    func() // ends the watchers and waits for them
}

// discovered is a job's target groups after a change of its files.
type discovered struct {
	job    string
	groups []config.TargetGroup
}

// startDiscovery reads the files of each job now, so that the first
// sources have their targets, then watches them until stop. Without jobs it
// returns nil, which has no targets and no updates.
func startDiscovery(ctx context.Context, jobs []config.FileSD, log *slog.Logger) *discovery {
	if len(jobs) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	d := &discovery{jobs: jobs, groups: map[string][]config.TargetGroup{}, updates: make(chan discovered)}
	var wg sync.WaitGroup
	now := time.Now()
	for _, j := range jobs {
		w := filesd.New(j.Files, j.RefreshInterval, log.With("job", j.Job))
		d.groups[j.Job], _ = w.Read(now)
		wg.Go(func() {
			w.Run(ctx, min(filesd.DefaultPoll, j.RefreshInterval), func(groups []config.TargetGroup) {
				select {
				case d.updates <- discovered{j.Job, groups}:
				case <-ctx.Done():
				}
			})
		})
	}
	d.stop = func() { cancel(); wg.Wait() }
	return d
}

// changes is the channel of updates; nil, which never delivers, for nil.
func (d *discovery) changes() <-chan discovered {
	if d == nil {
		return nil
	}
	return d.updates
}

func (d *discovery) close() {
	if d != nil {
		d.stop()
	}
}

// targets are the targets of every job's current groups; one that cannot
// work is logged and left out, as Prometheus does.
func (d *discovery) targets(log *slog.Logger) []config.ScrapeTarget {
	if d == nil {
		return nil
	}
	var all []config.ScrapeTarget
	for _, j := range d.jobs {
		ts, errs := j.Targets(d.groups[j.Job])
		for _, err := range errs {
			log.Error("file_sd: target left out", "job", j.Job, "err", err)
		}
		all = append(all, ts...)
	}
	return all
}

// retarget applies a job's changed target groups: the job's new targets
// start, those gone stop and end their series with staleness markers, as a
// reload does, and every other source runs on undisturbed.
func (a *Agent) retarget(ctx context.Context, u discovered) {
	a.disc.groups[u.job] = u.groups
	cfg, _, old := a.running()
	ts, err := a.targetSources(cfg, slices.Concat(cfg.Targets, a.disc.targets(a.log)), false)
	if err != nil {
		a.log.Error("file_sd: targets not applied", "job", u.job, "err", err)
		return
	}
	var next []*source
	for _, s := range old {
		if s.def == nil {
			next = append(next, s) // the host collectors and ferry's own metrics
		}
	}
	// ferry's own metrics come last.
	next = slices.Insert(next, max(len(next)-1, 0), ts...)
	added, removed := a.replaceSources(ctx, next)
	a.log.Info("file_sd: targets changed", "job", u.job, "started", added, "stopped", removed)
}
