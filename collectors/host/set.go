package host

import (
	"context"
	"errors"
	"fmt"
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
	members []member

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
	var s Set
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
	for i, m := range s.members {
		start := time.Now()
		err := m.Collect(ctx, c)
		outcomes[i] = Outcome{Name: m.name, Duration: time.Since(start), Err: err}
		success := 1.0
		if err != nil {
			errs = append(errs, fmt.Errorf("collector %s: %w", m.name, err))
			success = 0
		}
		c.Add(collectorDuration, outcomes[i].Duration.Seconds(), m.name)
		c.Add(collectorSuccess, success, m.name)
	}
	s.mu.Lock()
	s.last = outcomes
	s.mu.Unlock()
	return errors.Join(errs...)
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
