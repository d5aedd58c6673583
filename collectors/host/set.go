package host

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/ferry-agent/ferry/collectors"
)

// Outcome is how one host collector's last collection went.
type Outcome struct {
	Name     string
	Duration time.Duration
	Err      error // nil: it worked
}

// OK reports whether the collection worked.
func (o Outcome) OK() bool { return o.Err == nil }

// Set runs the enabled host collectors as one collector, one after the
// other: a small device gains nothing from running them at once. One
// failing collector does not stop the others. As node_exporter's
// collector.go execute does, it notes each collector's success and
// duration in one place: the outcome of the last collection. Collect is
// called from one goroutine at a time; Names and Outcomes may be called
// concurrently with it.
type Set struct {
	members  []member
	statPath string // /proc/stat, for the boot time

	mu   sync.Mutex
	last []Outcome // of the last Collect; nil before it
}

type member struct {
	name string
	collectors.Collector
}

// NewSet returns the host collectors enabled names, in the order of
// Collectors, reading under paths; nil if it enables none. A name that is
// not a host collector is ignored: the flags only make known ones.
func NewSet(enabled map[string]bool, paths collectors.Paths) *Set {
	s := Set{statPath: filepath.Join(paths.ProcFS, "stat")}
	for _, e := range Collectors() {
		if enabled[e.Name] {
			s.members = append(s.members, member{e.Name, e.New(paths)})
		}
	}
	if len(s.members) == 0 {
		return nil
	}
	return &s
}

// node_exporter's own families of each collector's run, so that
// dashboards that watch them work.
var (
	collectorDuration = collectors.NewDesc("node_scrape_collector_duration_seconds", "node_exporter: Duration of a collector scrape.", collectors.Gauge, "collector")
	collectorSuccess  = collectors.NewDesc("node_scrape_collector_success", "node_exporter: Whether a collector succeeded.", collectors.Gauge, "collector")
)

// Collect runs every collector of the set into c, and adds each one's
// duration and success under node_exporter's names. The error joins those
// of the collectors that failed, each on a line "collector NAME: ...";
// their samples, and all of the others', are in c all the same.
func (s *Set) Collect(ctx context.Context, c *collectors.Collection) error {
	outcomes := make([]Outcome, len(s.members))
	var errs []error
	var sinceBoot [][2]int // the samples, by index range, of countsSinceBoot members
	for i, m := range s.members {
		start := time.Now()
		first := len(c.Samples)
		err := m.Collect(ctx, c)
		if countsSinceBoot[m.name] {
			sinceBoot = append(sinceBoot, [2]int{first, len(c.Samples)})
		}
		outcomes[i] = Outcome{Name: m.name, Duration: time.Since(start), Err: err}
		success := 1.0
		if err != nil {
			errs = append(errs, fmt.Errorf("collector %s: %w", m.name, err))
			success = 0
		}
		c.Add(collectorDuration, outcomes[i].Duration.Seconds(), m.name)
		c.Add(collectorSuccess, success, m.name)
	}
	s.startAtBoot(c, sinceBoot)
	s.mu.Lock()
	s.last = outcomes
	s.mu.Unlock()
	return errors.Join(errs...)
}

// countsSinceBoot names the collectors whose counters the kernel starts at
// zero at boot: CPU time, /proc/stat's totals, pressure stall time. Not
// netdev, diskstats or wifi: an interface (ppp, a USB modem), a disk or a
// station that appears after boot starts its counters then, and the kernel
// does not say when.
var countsSinceBoot = map[string]bool{"cpu": true, "stat": true, "pressure": true}

// startAtBoot gives the counters of the samples in ranges, those without a
// start time, the boot time as their start (remote write 2.0's start
// timestamp). The boot time is the stat collector's node_boot_time_seconds
// of this collection, or /proc/stat's btime read here; recomputed at each
// collection, since the kernel derives btime from the wall clock, which a
// device without a real-time clock sets after boot. Without it, nothing
// changes.
func (s *Set) startAtBoot(c *collectors.Collection, ranges [][2]int) {
	if len(ranges) == 0 {
		return
	}
	var boot float64
	for i := len(c.Samples) - 1; i >= 0; i-- {
		if c.Samples[i].Desc == bootTimeDesc {
			boot = c.Samples[i].V
			break
		}
	}
	if boot == 0 {
		values, err := parseFile("stat", s.statPath, parseStat)
		if err != nil {
			return
		}
		boot = values["btime"]
	}
	if boot <= 0 {
		return
	}
	ms := int64(boot * 1000)
	for _, r := range ranges {
		for i := r[0]; i < r[1]; i++ {
			if smp := &c.Samples[i]; smp.Start == 0 && smp.Desc != nil && smp.Desc.Type == collectors.Counter {
				smp.Start = ms
			}
		}
	}
}

// Names are the set's collectors, in the order they run.
func (s *Set) Names() []string {
	names := make([]string, len(s.members))
	for i, m := range s.members {
		names[i] = m.name
	}
	return names
}

// Outcomes returns each collector's outcome of the last Collect, in the
// order they run; nil before the first. The slice is the caller's.
func (s *Set) Outcomes() []Outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Outcome(nil), s.last...)
}
