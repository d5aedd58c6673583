package agent

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/model/value"

	"github.com/ferry-agent/ferry/agent/config"
	"github.com/ferry-agent/ferry/buffer"
	"github.com/ferry-agent/ferry/collectors"
	"github.com/ferry-agent/ferry/collectors/host"
	"github.com/ferry-agent/ferry/collectors/scrape"
	"github.com/ferry-agent/ferry/internal/lograte"
	"github.com/ferry-agent/ferry/internal/sortedmap"
)

// source is one collector on the agent's schedule, with the target labels
// its samples get.
type source struct {
	name              string               // in ferry's own metrics and logs; the same across reloads
	def               *config.ScrapeTarget // a scrape target's definition; nil for the host collectors and ferry's own metrics
	stop              func()               // ends the running source and waits for it; set by runSources
	collector         collectors.Collector
	target            labels.Labels // job, instance and any other target labels
	honorLabels       bool
	targetLabelled    bool // the collector gives its samples the target labels (a scraper)
	metricRelabel     []*relabel.Config
	report            bool // a scrape target: add up, scrape_duration_seconds, ...
	interval, timeout time.Duration

	appended   atomic.Uint64
	errors     atomic.Uint64
	failures   map[string]*atomic.Uint64 // a scrape target's, by scrape.Reasons
	duplicates atomic.Uint64             // samples dropped: their series came earlier in the collection
	host       *host.Set                 // the host collectors' outcomes, or nil
	errorLog   lograte.Limiter
	lastStamp  int64 // ms: the wall time the last collection stamped its samples with
	series     *seriesSet
	labels     labelCache          // collectOnce's alone
	samples    []collectors.Sample // collectOnce's, kept for the next collection's capacity

	mu      sync.Mutex // guards the last run, which the status page reads
	lastRun time.Time
	lastErr string // of the last run; "" when it worked
}

// newSource returns a source of c labelled with job and instance, on the
// default schedule.
func newSource(name, job, instance string, c collectors.Collector) *source {
	return &source{name: name, collector: c, series: newSeriesSet(),
		target:   labels.FromStrings(model.JobLabel, job, model.InstanceLabel, instance),
		interval: config.DefaultScrapeInterval, timeout: config.MaxScrapeTimeout}
}

// runSource collects at once, then every interval until ctx ends.
func (a *Agent) runSource(ctx context.Context, s *source) {
	t := time.NewTicker(s.interval)
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

var (
	upDesc           = collectors.NewDesc("up", "1 if the target was scraped and parsed, 0 otherwise.", collectors.Gauge)
	durationDesc     = collectors.NewDesc("scrape_duration_seconds", "Duration of the scrape.", collectors.Gauge)
	scrapedDesc      = collectors.NewDesc("scrape_samples_scraped", "Samples the target exposed.", collectors.Gauge)
	postRelabelDesc  = collectors.NewDesc("scrape_samples_post_metric_relabeling", "Samples left after metric relabeling.", collectors.Gauge)
	seriesAddedDesc  = collectors.NewDesc("scrape_series_added", "Series in this scrape that were not in the one before.", collectors.Gauge)
	staleMarkerValue = math.Float64frombits(value.StaleNaN)
)

func (a *Agent) collectOnce(ctx context.Context, s *source) {
	now := time.Now()
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	c := collectors.Collection{Samples: s.samples[:0]}
	defer func() {
		clear(c.Samples) // the collection's labels are not kept from the garbage collector
		s.samples = c.Samples[:0]
	}()
	err := s.collector.Collect(cctx, &c)
	took := time.Since(now)
	if ctx.Err() != nil {
		return // stopping: a collection cut short would report up=0 falsely
	}
	if err != nil {
		s.errors.Add(1)
		if f := s.failures[scrape.Reason(err)]; f != nil {
			f.Add(1)
		}
		s.errorLog.LogAt(now, a.log, slog.LevelWarn, "collection failed", "source", s.name, "err", err)
	}
	s.recordRun(now, err)

	// Samples without a timestamp of their own get the collection's; while
	// the wall clock is not plausible, the clock guard holds them instead.
	reading, clockOK := a.clock.Now(a.buf.Append)
	external, writeRelabel := a.sendLabels()
	b := labels.NewBuilder(labels.EmptyLabels())
	wall := reading.Wall.UnixMilli()
	if clockOK {
		s.lastStamp = wall
	}
	// A sample's metadata goes with it into the buffer; samples the clock
	// guard holds go without (their time is not known yet, rarely so).
	appendFinal := func(lset labels.Labels, m buffer.Meta, t int64, v float64) {
		switch {
		case t != 0:
			a.buf.AppendMeta(buffer.Ref{}, lset, m, t, v)
		case clockOK:
			a.buf.AppendMeta(buffer.Ref{}, lset, m, wall, v)
		default:
			a.clock.Hold(lset, reading.Mono, v)
		}
	}
	add := func(lset labels.Labels, m buffer.Meta, t int64, v float64) {
		if lset, ok := outgoing(b, lset, external, writeRelabel); ok { // else write_relabel_configs dropped it
			appendFinal(lset, m, t, v)
		}
	}
	// appendCached is appendFinal of a cached series, with its ref in the
	// buffer kept for the next collection.
	appendCached := func(e *cachedLabels, smp *collectors.Sample) {
		m := sampleMeta(smp)
		switch {
		case smp.T != 0:
			e.ref = a.buf.AppendMeta(e.ref, e.final(), m, smp.T, smp.V)
		case clockOK:
			e.ref = a.buf.AppendMeta(e.ref, e.final(), m, wall, smp.V)
		default:
			a.clock.Hold(e.final(), reading.Mono, smp.V)
		}
	}
	kept := 0
	s.labels.start(external, writeRelabel)
	for i := range c.Samples {
		smp := &c.Samples[i]
		e, h := s.labels.get(smp)
		if e == nil {
			lset, keep := s.sampleLabels(b, smp.Labels)
			final, send := lset, false
			if keep {
				final, send = outgoing(b, lset, external, writeRelabel)
			}
			e = s.labels.put(smp, h, lset, keep, final, send)
		}
		if !e.keep {
			continue
		}
		// Staleness is for series stamped by the scrape, as in Prometheus:
		// a target's own timestamps say when data ends. Two samples of one
		// series so stamped would have one time, and a receiver refuses a
		// whole request with two values for a series and time: the second
		// is dropped, as Prometheus drops it ("duplicate sample for
		// timestamp"), after metric relabeling.
		if smp.T == 0 && s.series.addCached(e) {
			s.duplicates.Add(1)
			continue
		}
		kept++
		if e.send { // else write_relabel_configs dropped it: not for the receiver
			appendCached(e, smp)
		}
	}
	if err == nil || len(c.Samples) > 0 {
		s.labels.finish()
	}
	if s.report {
		up := 1.0
		if err != nil {
			up = 0
		}
		var r collectors.Collection
		r.Add(upDesc, up)
		r.Add(durationDesc, took.Seconds())
		r.Add(scrapedDesc, float64(len(c.Samples)))
		r.Add(postRelabelDesc, float64(kept))
		r.Add(seriesAddedDesc, float64(s.series.added))
		for i := range r.Samples {
			smp := &r.Samples[i]
			lset := s.withTarget(b, smp.Labels)
			if s.series.add(lset) { // the target's own series of the name came first, and is kept
				s.duplicates.Add(1)
				continue
			}
			add(lset, sampleMeta(smp), 0, smp.V)
			kept++
		}
	}
	// A series gone from the target, or a failed scrape, ends its series at
	// the receiver with a staleness marker, as Prometheus writes.
	gone := s.series.finish()
	for _, lset := range gone {
		add(lset, buffer.Meta{}, 0, staleMarkerValue)
	}
	s.appended.Add(uint64(kept + len(gone)))
	a.buf.Collected() // the sender may take it now
}

// sampleMeta is the buffer's metadata of a sample: its family's and its
// start time; the zero Meta when its family is not known.
func sampleMeta(smp *collectors.Sample) buffer.Meta {
	d := smp.Desc
	if d == nil {
		return buffer.Meta{Start: smp.Start}
	}
	return buffer.Meta{Family: d.Name, Type: string(d.Type), Help: d.Help, Unit: d.Unit, Start: smp.Start}
}

// recordRun notes a source's last collection for the status page.
func (s *source) recordRun(at time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastRun, s.lastErr = at, ""
	if err != nil {
		s.lastErr = err.Error()
	}
}

// markAllStale ends every series of a source that a reload removed.
func (a *Agent) markAllStale(s *source) {
	gone := s.series.finish() // the last collection's series, all of them
	if len(gone) == 0 {
		return
	}
	reading, clockOK := a.clock.Now(a.buf.Append)
	external, writeRelabel := a.sendLabels()
	b := labels.NewBuilder(labels.EmptyLabels())
	for _, lset := range gone {
		lset, ok := outgoing(b, lset, external, writeRelabel)
		if !ok {
			continue
		}
		if clockOK {
			// After the last collection's samples, even in its millisecond
			// (a stop waits for that collection, then comes at once).
			a.buf.Append(lset, max(reading.Wall.UnixMilli(), s.lastStamp+1), staleMarkerValue)
		} else {
			a.clock.Hold(lset, reading.Mono, staleMarkerValue)
		}
	}
	s.appended.Add(uint64(len(gone)))
}

// sampleLabels gives a sample its target labels, unless its collector
// did, and applies metric relabeling; ok is false if relabeling drops it.
func (s *source) sampleLabels(b *labels.Builder, lset labels.Labels) (labels.Labels, bool) {
	if !s.targetLabelled {
		lset = s.withTarget(b, lset)
	}
	if len(s.metricRelabel) == 0 {
		return lset, true
	}
	b.Reset(lset)
	if !relabel.ProcessBuilder(b, s.metricRelabel...) || b.Get(model.MetricNameLabel) == "" {
		return labels.EmptyLabels(), false
	}
	return b.Labels(), true
}

// withTarget adds the target labels to a sample's labels
// (collectors.WithTarget).
func (s *source) withTarget(b *labels.Builder, lset labels.Labels) labels.Labels {
	return collectors.WithTarget(b, lset, s.target, s.honorLabels)
}

// outgoing is what the receiver gets for a series: its labels with the
// external labels, through remote_write's write_relabel_configs, as
// Prometheus sends them. ok is false when write relabeling drops it, or
// leaves it without a name.
func outgoing(b *labels.Builder, lset, external labels.Labels, writeRelabel []*relabel.Config) (labels.Labels, bool) {
	lset = withExternal(b, lset, external)
	if len(writeRelabel) == 0 {
		return lset, true
	}
	b.Reset(lset)
	if !relabel.ProcessBuilder(b, writeRelabel...) || b.Get(model.MetricNameLabel) == "" {
		return labels.EmptyLabels(), false
	}
	return b.Labels(), true
}

// withExternal adds the external labels a sample does not have: last, as
// Prometheus applies them when sending.
func withExternal(b *labels.Builder, lset, external labels.Labels) labels.Labels {
	if external.IsEmpty() {
		return lset
	}
	b.Reset(lset)
	external.Range(func(l labels.Label) {
		if b.Get(l.Name) == "" {
			b.Set(l.Name, l.Value)
		}
	})
	return b.Labels()
}

// seriesSet remembers the series of a source's last collection, to find
// those that are gone from the next one, and those that come twice in one.
// Each series is stamped with the last collection that had it: one seen
// again costs one lookup, or none when a label cache's entry is the
// set's entry of its series (addCached).
type seriesSet struct {
	seen sortedmap.Map[seenSeries] // by label hash
	// collided has the series whose hash a series in seen has, by their
	// labels' bytes: a series is in one of the two maps. Rarely any.
	collided map[string]*seenSeries
	hash     func(labels.Labels) uint64 // labels.Labels.Hash; tests make it collide
	run      uint32                     // the collection being made; wraps after a century at one a second
	added    int                        // in it and not in the one before
	stamped  int                        // entries in it: all of them, and finish has nothing to look for
}

// seenSeries is the set's entry of a series: one of its own for a series
// added by label set, else the one inside a label cache's entry.
type seenSeries struct {
	lset labels.Labels
	run  uint32 // the last collection that had it
	in   bool   // in one of the set's maps: finish has not forgotten it
}

func newSeriesSet() *seriesSet {
	return &seriesSet{hash: labels.Labels.Hash, run: 1}
}

// add adds lset to the collection being made; again reports that the
// collection had it already.
func (ss *seriesSet) add(lset labels.Labels) (again bool) {
	h := ss.hash(lset)
	e, key := ss.find(h, lset)
	if e == nil {
		e = &seenSeries{lset: lset}
		ss.insert(e, h, key)
	}
	return ss.stamp(e)
}

// addCached is add of a label cache's entry, whose own seenSeries becomes
// the set's entry of its series: the next collection stamps it without a
// lookup.
func (ss *seriesSet) addCached(c *cachedLabels) (again bool) {
	own := &c.seenSeries
	if own.in {
		return ss.stamp(own)
	}
	h := ss.hash(own.lset)
	e, key := ss.find(h, own.lset)
	if e == nil {
		ss.insert(own, h, key)
		return ss.stamp(own)
	}
	// Another entry has the series: the set's own, another text of the
	// series in the collection, or a label cache's entry that a reload
	// made stale. own takes its place.
	again = ss.stamp(e)
	own.run, own.in, e.in = e.run, true, false
	if ss.seen.Get(h) == e {
		ss.seen.Put(h, own)
	} else {
		ss.collided[key] = own
	}
	return again
}

// find returns the set's entry of lset, whose hash is h, or nil; key is
// lset's key in collided when it has one: when another series has h.
func (ss *seriesSet) find(h uint64, lset labels.Labels) (e *seenSeries, key string) {
	e = ss.seen.Get(h)
	if e != nil && labels.Equal(e.lset, lset) {
		return e, ""
	}
	if e == nil && len(ss.collided) == 0 {
		return nil, ""
	}
	key = string(lset.Bytes(nil))
	return ss.collided[key], key
}

// insert puts e, a series new to the set, in seen if its hash h is free,
// else in collided under key (find's).
func (ss *seriesSet) insert(e *seenSeries, h uint64, key string) {
	e.in = true
	ss.added++
	if ss.seen.Get(h) == nil {
		ss.seen.Put(h, e)
		return
	}
	if ss.collided == nil {
		ss.collided = map[string]*seenSeries{}
	}
	ss.collided[key] = e
}

// stamp notes that e, in the collection before if not new, is in this
// one: finish forgets the others. again reports that it was already.
func (ss *seriesSet) stamp(e *seenSeries) (again bool) {
	if e.run == ss.run {
		return true
	}
	e.run = ss.run
	ss.stamped++
	return false
}

// finish ends a collection: it returns the series of the one before that
// this one did not have, forgets them, and begins the next one.
func (ss *seriesSet) finish() []labels.Labels {
	var gone []labels.Labels
	if ss.stamped != ss.seen.Len()+len(ss.collided) { // else the collection had every one
		ss.seen.DeleteFunc(func(_ uint64, e *seenSeries) bool {
			if e.run == ss.run {
				return false
			}
			gone = append(gone, e.lset)
			e.in = false
			return true
		})
		for k, e := range ss.collided {
			if e.run != ss.run {
				gone = append(gone, e.lset)
				e.in = false
				delete(ss.collided, k)
			}
		}
	}
	ss.run++
	ss.added, ss.stamped = 0, 0
	return gone
}

// labelCache remembers, for a source, the labels each series of its
// collections is buffered with: a label set collected again costs a lookup
// instead of adding the target labels, metric relabeling and the external
// labels again, and allocates nothing. A sample with a Memo (a scraper's
// cached series) finds its entry there, without a lookup: an unchanged
// series of a scrape target goes from the exposition's text to the buffer
// without a new label set and with one lookup, the scraper's. The
// others' entries are in a map, by their collected labels' hash; those a
// collection did not have are forgotten after it (not after a failed one
// that had none), so the map holds the series of one collection. The
// entries are made with one set of external labels and write relabeling;
// a change of either (a reload) makes them all stale. It is not safe for
// concurrent use: the source's collections run one at a time.
type labelCache struct {
	external     labels.Labels     // the entries were made with
	writeRelabel []*relabel.Config // and with
	gen          uint32            // counts changes of the two: an entry of another is stale
	run          uint32            // counts collections; wraps after a century at one a second
	seen         int               // entries of the map used by this collection
	entries      map[uint64]*mappedLabels
}

// cachedLabels is the entry of one collected label set. A Memo holds it
// alone, in 48 bytes (one per series of a large target); the map's entries
// have what the map needs besides (mappedLabels).
type cachedLabels struct {
	// seenSeries has the label set with the target labels, metric
	// relabeling applied (lset), and is the source's seriesSet's entry
	// of it once addCached made it so.
	seenSeries
	// other is the label set as buffered when the external labels or
	// write relabeling make it differ from lset; nil when they do not
	// (final).
	other *labels.Labels
	ref   buffer.Ref // final's in the buffer (Buffer.AppendMeta), or none
	gen   uint32     // the labelCache's gen it was made with
	keep  bool       // false: metric relabeling drops the sample
	send  bool       // false: write relabeling drops it
}

// final is the label set e's samples are buffered with: lset with the
// external labels and write relabeling.
func (e *cachedLabels) final() labels.Labels {
	if e.other != nil {
		return *e.other
	}
	return e.lset
}

// mappedLabels is an entry of the labelCache's map.
type mappedLabels struct {
	cachedLabels
	collected labels.Labels // as the collector gave them: the map's key, its hash, may collide
	run       uint32        // the last collection that had it
}

// start begins a collection whose samples get external and
// writeRelabel; a change of either (a reload) makes every entry stale.
func (c *labelCache) start(external labels.Labels, writeRelabel []*relabel.Config) {
	if c.entries == nil || !labels.Equal(c.external, external) || !slices.Equal(c.writeRelabel, writeRelabel) {
		c.entries = map[uint64]*mappedLabels{}
		c.external, c.writeRelabel = external, writeRelabel
		c.gen++
	}
	c.run++
	c.seen = 0
}

// get returns the entry of a sample's collected label set, or nil, and
// for put the set's Hash: 0 for a sample with a Memo, which needs none.
func (c *labelCache) get(smp *collectors.Sample) (e *cachedLabels, hash uint64) {
	if smp.Memo != nil {
		if e, _ := smp.Memo.Note.(*cachedLabels); e != nil && e.gen == c.gen {
			return e, 0
		}
		return nil, 0
	}
	hash = smp.Labels.Hash()
	m := c.entries[hash]
	if m == nil || !labels.Equal(m.collected, smp.Labels) {
		return nil, hash
	}
	if m.run != c.run {
		m.run = c.run
		c.seen++
	}
	return &m.cachedLabels, hash
}

// put makes the entry of a sample's collected label set, whose Hash is
// hash (get's), and returns it: lset as metric relabeling left it, final
// as it is buffered. In the map, a label set whose hash another one has
// already is not kept.
func (c *labelCache) put(smp *collectors.Sample, hash uint64, lset labels.Labels, keep bool, final labels.Labels, send bool) *cachedLabels {
	e := cachedLabels{seenSeries: seenSeries{lset: lset}, keep: keep, send: send, gen: c.gen}
	if !labels.Equal(final, lset) {
		other := final
		e.other = &other
	}
	if smp.Memo != nil {
		memo := new(cachedLabels) // e itself stays on the stack for the map's entries
		*memo = e
		smp.Memo.Note = memo
		return memo
	}
	m := &mappedLabels{cachedLabels: e, collected: smp.Labels, run: c.run}
	if _, taken := c.entries[hash]; !taken {
		c.entries[hash] = m
		c.seen++
	}
	return &m.cachedLabels
}

// finish forgets the map's entries the collection begun by start did not
// use.
func (c *labelCache) finish() {
	if len(c.entries) == c.seen {
		return
	}
	for h, m := range c.entries {
		if m.run != c.run {
			delete(c.entries, h)
		}
	}
}
