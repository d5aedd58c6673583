// Package scrape is ferry's minimal scraper of local exporters: one HTTP GET
// per target and interval, parsed with ferry's own parser of the text
// formats (collectors/exposition), within limits that keep a hostile target
// from exhausting a small device.
package scrape

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferry-agent/ferry/collectors"
	"github.com/ferry-agent/ferry/collectors/exposition"
	"github.com/ferry-agent/ferry/internal/httpclient"
	"github.com/ferry-agent/ferry/internal/sortedmap"
)

// acceptHeader prefers OpenMetrics, then the text format, as Prometheus does.
const acceptHeader = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1"

// Limits protect a small device from a target that answers too much. A
// target over a limit fails its scrape (up 0), as in Prometheus.
type Limits struct {
	BodyBytes        int64 // of the uncompressed body
	Samples          int   // per scrape (Prometheus' sample_limit, counted before metric relabeling)
	Labels           int   // per series, __name__ included; 0: no limit (DefaultLimits has one)
	LabelNameLength  int   // bytes; 0: no limit (DefaultLimits has one)
	LabelValueLength int   // bytes; 0: no limit (DefaultLimits has one)
}

// DefaultLimits suit a device with tens of MiB of memory: a hostile target
// at the body limit costs ferry about 30 MiB at peak (hostile_test.go);
// node_exporter's page is well under 1 MiB.
//
// Prometheus has no label limits by default; ferry has, because every
// label set it buffers costs flash under the buffer's cap, and a value that
// changes every scrape (a request id, a stack trace, a JSON dump) would
// cost it again with every collection. The bounds are those of common
// receivers, so that nothing a receiver would take is refused: a value of
// at most 2 KiB (Mimir's default -validation.max-length-label-value), a
// name of at most 256 bytes (VictoriaMetrics' -maxLabelNameLen), and 64
// labels (above Mimir's 30 and VictoriaMetrics' 40 per series, which count
// the target's and external labels too). Real exporters stay far below:
// node_exporter's longest values are device paths and kernel versions. A
// label set within them is at most about 150 KiB; a typical one under 200
// bytes.
var DefaultLimits = Limits{BodyBytes: 4 << 20, Samples: 100_000, Labels: 64, LabelNameLength: 256, LabelValueLength: 2 << 10}

// Target is one endpoint to scrape and how.
type Target struct {
	URL             *url.URL
	HonorTimestamps bool // keep the timestamps a target exposes; otherwise the scrape's time
	// Labels are the target's (job, instance, ...): each sample gets them
	// as collectors.WithTarget adds them, with HonorLabels as its honor.
	Labels      labels.Labels
	HonorLabels bool
	Limits      Limits
	HTTP        httpclient.Config
}

// Scraper collects one target. Its methods may be called from any
// goroutine; Collects of one Scraper run one at a time.
type Scraper struct {
	target Target
	client *http.Client

	mu sync.Mutex // held by Collect: guards what follows
	// parser keeps the target's families' Descs, and its window of the
	// body, from one scrape to the next.
	parser exposition.Parser
	cache  seriesCache
}

// seriesCache remembers, per target, the label set that each series of the
// exposition parsed to, with the target's labels added, keyed by the
// series' text (exposition.Parser's Series: the name and the labels as the
// target wrote them), as Prometheus' scrape loop does: a series the target
// exposes again costs a lookup, neither parsing its labels nor checking
// them against the limits, and allocates nothing. A series' text alone
// gives its labels (ferry parses without type and unit labels); the cache
// is emptied when the target switches between the text format and
// OpenMetrics. Series that a parsed scrape did not have are forgotten after
// it, so the cache holds at most the series of one scrape (Limits.Samples).
//
// The key is a 128-bit digest of the text, not the text: it was the
// cache's largest part. Its half seeded at random per process keys the
// map, so that a hostile target cannot make two of its series share a
// slot; the entry keeps the other half, which tells apart texts whose
// seeded halves meet by chance: the first of them is cached, the others
// are parsed each time, without a Memo.
type seriesCache struct {
	target          labels.Labels // added to each label set
	honorLabels     bool
	honorTimestamps bool
	builder         labels.Builder
	openMetrics     bool
	scrape          uint32                      // counts parsed scrapes; wraps after a century at one a second
	entries         sortedmap.Map[cachedSeries] // by seriesKey.m
}

type seriesKey struct{ x, m uint64 }

var keySeed = maphash.MakeSeed()

func keyOf(text []byte) seriesKey {
	return seriesKey{xxhash.Sum64(text), maphash.Bytes(keySeed, text)}
}

// lookup returns the entry of the text whose key is k, or nil.
func (c *seriesCache) lookup(k seriesKey) *cachedSeries {
	if e := c.entries.Get(k.m); e != nil && e.x == k.x {
		return e
	}
	return nil
}

type cachedSeries struct {
	lset   labels.Labels // within the limits, without empty values, with the target's labels
	x      uint64        // the unseeded half of the text's key
	scrape uint32        // the last parsed scrape that had it
	memo   collectors.Memo
}

// start begins a parse of an exposition in OpenMetrics or not.
func (c *seriesCache) start(openMetrics bool) {
	if c.openMetrics != openMetrics {
		c.entries = sortedmap.Map[cachedSeries]{}
		c.openMetrics = openMetrics
	}
	c.scrape++
}

// finish forgets the series that the parse begun by start did not have.
func (c *seriesCache) finish(seen int) {
	if c.entries.Len() == seen {
		return
	}
	c.entries.DeleteFunc(func(_ uint64, e *cachedSeries) bool { return e.scrape != c.scrape })
}

// New returns a Scraper of t that gives up after timeout, or an error
// naming the HTTP setting that cannot work.
func New(t Target, timeout time.Duration) (*Scraper, error) {
	if err := t.HTTP.Validate(); err != nil {
		return nil, err
	}
	transport, err := t.HTTP.NewTransport()
	if err != nil {
		return nil, err
	}
	s := &Scraper{target: t, client: &http.Client{Transport: transport, Timeout: timeout}}
	s.cache.target, s.cache.honorLabels, s.cache.honorTimestamps = t.Labels, t.HonorLabels, t.HonorTimestamps
	return s, nil
}

// Collect scrapes the target once. A failed scrape adds no sample: the
// agent reports it with up 0, and Reason says why it failed.
func (s *Scraper) Collect(ctx context.Context, out *collectors.Collection) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	base := len(out.Samples)
	if err := s.scrape(ctx, out); err != nil {
		clear(out.Samples[base:])
		out.Samples = out.Samples[:base]
		return fmt.Errorf("scrape %s: %w", s.target.URL.Redacted(), err)
	}
	return nil
}

func (s *Scraper) scrape(ctx context.Context, out *collectors.Collection) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.target.URL.String(), nil)
	if err != nil {
		return &Error{ReasonNetwork, err}
	}
	req.Header.Set("Accept", acceptHeader)
	req.Header.Set("User-Agent", "ferry")
	resp, err := s.client.Do(req) // the transport asks for gzip and inflates it
	if err != nil {
		return transportError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &Error{ReasonHTTPStatus, fmt.Errorf("server returned %s", resp.Status)}
	}
	limit := s.target.Limits.BodyBytes
	if resp.ContentLength > limit {
		return bodyTooLarge(limit)
	}
	return parse(&s.parser, resp.Body, limit, resp.Header.Get("Content-Type"), s.target.Limits, out, &s.cache)
}

func bodyTooLarge(limit int64) error {
	return &Error{ReasonBodyTooLarge, fmt.Errorf("body larger than the limit of %d bytes", limit)}
}

// transportError classifies an error of the request or of reading the body.
// A gzip body that is damaged (not gzip, bad data, a wrong checksum) is the
// target's, not the network's: it cannot be read as metrics. One cut short
// may be either, and counts as the network's.
func transportError(err error) error {
	var ne net.Error
	var corrupt flate.CorruptInputError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return &Error{ReasonTimeout, err}
	case errors.Is(err, gzip.ErrHeader) || errors.Is(err, gzip.ErrChecksum) || errors.As(err, &corrupt):
		return &Error{ReasonParse, fmt.Errorf("the body's gzip is damaged: %w", err)}
	}
	return &Error{ReasonNetwork, err}
}

// Parse adds the samples of an exposition body to out: OpenMetrics when
// the content type says so, the Prometheus text format otherwise. Each
// sample points to its family's Desc (nil when the body has no HELP, TYPE
// or UNIT line for it) and, in OpenMetrics, carries the start time of its
// series from the family's "_created" lines; the "_created" samples are
// added too (exposition.IsCreated tells them apart). ferry asks for
// neither protobuf nor native histograms: a target that has native
// histograms sends their classic buckets in the text formats.
func Parse(body []byte, contentType string, lim Limits, out *collectors.Collection) error {
	var p exposition.Parser
	return parse(&p, bytes.NewReader(body), int64(len(body)), contentType, lim, out, nil)
}

// parse is Parse of a body read from r, up to limit bytes, as it arrives
// (exposition.Parser.ParseFrom: the scraper never holds the whole body),
// with p's Descs of the target's families and a target's cache of series
// (nil for none). The cache gives each sample its Memo and keeps a
// target's timestamps only with its HonorTimestamps. A series the body
// has twice is kept twice: the agent drops the second after metric
// relabeling, where Prometheus finds duplicates. The sample limit counts
// the body's samples. On an error, out may have some of the body's
// samples: the caller drops them.
func parse(p *exposition.Parser, r io.Reader, limit int64, contentType string, lim Limits, out *collectors.Collection, cache *seriesCache) error {
	format := exposition.Text
	if mediaType, _, _ := mime.ParseMediaType(contentType); mediaType == "application/openmetrics-text" {
		format = exposition.OpenMetrics
	}
	pr := &parseRun{p: p, lim: lim, out: out, cache: cache, first: len(out.Samples)}
	p.LimitLabels(lim.Labels) // a hostile line's labels beyond it are only counted
	if cache != nil {
		cache.start(format == exposition.OpenMetrics)
		// A series the cache has needs its labels neither read nor checked.
		p.Known = func(series []byte) bool {
			pr.key, pr.looked = keyOf(series), true
			pr.cached = cache.lookup(pr.key)
			return pr.cached != nil
		}
		defer func() {
			p.Known = nil
			cache.finish(pr.seen)
		}()
	}
	switch err := p.ParseFrom(r, format, limit, pr.sample); {
	case err == nil:
	case errors.Is(err, exposition.ErrTooLarge):
		return bodyTooLarge(limit)
	case errors.As(err, new(*exposition.ReadError)):
		return transportError(err)
	case errors.As(err, new(*Error)):
		return err // sample's
	default:
		return &Error{ReasonParse, fmt.Errorf("parsing: %w", err)}
	}
	for _, st := range p.Starts() {
		out.Samples[pr.first+st.Index].Start = st.T
	}
	return nil
}

// parseRun is what parse keeps while the parser reads one body.
type parseRun struct {
	p     *exposition.Parser
	lim   Limits
	out   *collectors.Collection
	cache *seriesCache
	first int // where this body's samples start in out
	seen  int // cached series in this parse

	builder  labels.ScratchBuilder
	lastDesc *collectors.Desc
	cached   *cachedSeries
	key      seriesKey
	looked   bool // the parser asked for the sample's series: key and cached are its
}

// sample adds the parser's current sample to out, or refuses it with an
// *Error.
func (pr *parseRun) sample() error {
	p, cache, out := pr.p, pr.cache, pr.out
	if n := p.LabelCount(); pr.lim.Labels > 0 && n > pr.lim.Labels {
		return &Error{ReasonLabelLimit, fmt.Errorf("%d labels, more than the limit of %d, in %.200s", n, pr.lim.Labels, p.Series())}
	}
	if cache != nil && !pr.looked {
		pr.key = keyOf(p.Series())
		pr.cached = cache.lookup(pr.key)
	}
	pr.looked = false
	cached := pr.cached
	var lset labels.Labels
	if cached == nil {
		lset = p.Labels(&pr.builder) // a new label set each time: lset is not reused
		if err := checkLabels(lset, pr.lim); err != nil {
			return err
		}
	}
	if len(pr.out.Samples)-pr.first >= pr.lim.Samples {
		return &Error{ReasonSampleLimit, fmt.Errorf("more than the limit of %d samples", pr.lim.Samples)}
	}
	s := collectors.Sample{V: p.Value()}
	if cache == nil || cache.honorTimestamps {
		s.T, _ = p.Timestamp()
	}
	d := p.Desc()
	if cached != nil && cached.scrape != cache.scrape {
		cached.scrape = cache.scrape
		pr.seen++
	}
	switch {
	case cached == nil:
		s.Labels = lset
		out.AddSample(d, s)
		pr.lastDesc = d
		if cache == nil {
			return nil
		}
		smp := &out.Samples[len(out.Samples)-1]
		lset = smp.Labels // without empty values
		if !cache.target.IsEmpty() {
			lset = collectors.WithTarget(&cache.builder, lset, cache.target, cache.honorLabels)
			smp.Labels = lset
		}
		if cache.entries.Get(pr.key.m) != nil {
			return nil // by another text (seriesCache)
		}
		cached = &cachedSeries{lset: lset, x: pr.key.x, scrape: cache.scrape}
		cache.entries.Put(pr.key.m, cached)
		pr.seen++
	case d != pr.lastDesc:
		s.Labels = cached.lset
		out.AddSample(d, s) // notes the family in out.Families
		pr.lastDesc = d
	default:
		s.Labels, s.Desc = cached.lset, d
		out.Samples = append(out.Samples, s)
	}
	smp := &out.Samples[len(out.Samples)-1]
	smp.Memo = &cached.memo
	return nil
}

// checkLabels refuses what a receiver would refuse for the whole request
// (duplicate names, invalid UTF-8) and a name or value over its length
// limit: Prometheus fails the scrape for each. (The number of labels is
// checked before lset is built: parseRun.sample.)
func checkLabels(lset labels.Labels, lim Limits) error {
	if name, dup := lset.HasDuplicateLabelNames(); dup {
		return &Error{ReasonParse, fmt.Errorf("label name %q is not unique in %.200s", name, lset)}
	}
	return lset.Validate(func(l labels.Label) error {
		switch {
		case !utf8.ValidString(l.Name) || !utf8.ValidString(l.Value):
			return &Error{ReasonParse, fmt.Errorf("label %.100q: invalid UTF-8", l.Name)}
		case lim.LabelNameLength > 0 && len(l.Name) > lim.LabelNameLength:
			return &Error{ReasonLabelLimit, fmt.Errorf("label name %.100q... is longer than the limit of %d", l.Name, lim.LabelNameLength)}
		case lim.LabelValueLength > 0 && len(l.Value) > lim.LabelValueLength:
			return &Error{ReasonLabelLimit, fmt.Errorf("label %s: value of %d bytes, longer than the limit of %d", l.Name, len(l.Value), lim.LabelValueLength)}
		}
		return nil
	})
}

// Reasons a scrape fails, for a counter with a reason label.
const (
	ReasonBodyTooLarge = "body_too_large" // over Limits.BodyBytes once inflated
	ReasonSampleLimit  = "sample_limit"
	ReasonLabelLimit   = "label_limit" // labels per series, name or value length
	ReasonParse        = "parse"       // not the exposition format, invalid UTF-8, a label name twice, damaged gzip
	ReasonTimeout      = "timeout"     // no whole answer within the scrape timeout
	ReasonHTTPStatus   = "http_status" // an answer other than 200
	ReasonNetwork      = "network"     // no connection, reset, TLS, ...
)

// Reasons lists every reason, for counters that start at zero.
var Reasons = []string{ReasonBodyTooLarge, ReasonSampleLimit, ReasonLabelLimit, ReasonParse, ReasonTimeout, ReasonHTTPStatus, ReasonNetwork}

// Error is a failed scrape and the reason it failed.
type Error struct {
	Reason string // one of Reasons
	Err    error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Reason is why err, from Collect or Parse, failed the scrape: one of
// Reasons, or "" for nil. Collect classifies every error it returns; an
// error from elsewhere counts as network.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Reason
	}
	return ReasonNetwork
}
