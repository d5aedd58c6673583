// Package scrape is ferry's minimal scraper of local exporters: one HTTP GET
// per target and interval, parsed with Prometheus' own textparse, with the
// synthetic series Prometheus adds (up, scrape_duration_seconds, ...).
package scrape

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/ferry-agent/ferry/collectors"
)

// acceptHeader prefers OpenMetrics, then the text format, as Prometheus does.
const acceptHeader = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1"

// Limits protect a small device from a target that answers too much.
type Limits struct {
	BodyBytes int64 // of the uncompressed body
	Samples   int   // per scrape; beyond it the scrape fails, as with Prometheus' sample_limit
}

// DefaultLimits suit a device with tens of MiB of memory.
var DefaultLimits = Limits{BodyBytes: 16 << 20, Samples: 100_000}

// Target is one endpoint to scrape.
type Target struct {
	Job string
	URL *url.URL
}

// Instance is the target's instance label: host:port, as in Prometheus.
func (t Target) Instance() string { return t.URL.Host }

var (
	upDesc       = collectors.NewDesc("up", "1 if the target was scraped and parsed, 0 otherwise.", collectors.Gauge)
	durationDesc = collectors.NewDesc("scrape_duration_seconds", "Duration of the scrape.", collectors.Gauge)
	scrapedDesc  = collectors.NewDesc("scrape_samples_scraped", "Samples the target exposed.", collectors.Gauge)
)

// Scraper collects one target.
type Scraper struct {
	target Target
	client *http.Client
	limits Limits
}

// New returns a Scraper of t that gives up after timeout.
func New(t Target, timeout time.Duration, limits Limits) *Scraper {
	return &Scraper{target: t, client: &http.Client{Timeout: timeout}, limits: limits}
}

// Collect scrapes the target once. The synthetic series are added whether
// the scrape worked or not; a failed scrape adds no other sample.
func (s *Scraper) Collect(ctx context.Context, out *collectors.Collection) error {
	start := time.Now()
	var parsed collectors.Collection
	err := s.scrape(ctx, &parsed)
	up := 1.0
	if err != nil {
		up = 0
		parsed.Samples = nil
	}
	out.Samples = append(out.Samples, parsed.Samples...)
	out.Add(upDesc, up)
	out.Add(durationDesc, time.Since(start).Seconds())
	out.Add(scrapedDesc, float64(len(parsed.Samples)))
	if err != nil {
		return fmt.Errorf("scrape %s: %w", s.target.URL.Redacted(), err)
	}
	return nil
}

func (s *Scraper) scrape(ctx context.Context, out *collectors.Collection) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.target.URL.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", acceptHeader)
	req.Header.Set("User-Agent", "ferry")
	resp, err := s.client.Do(req) // the transport asks for gzip and inflates it
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("server returned %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.limits.BodyBytes+1))
	if err != nil {
		return err
	}
	if int64(len(body)) > s.limits.BodyBytes {
		return fmt.Errorf("body larger than the limit of %d bytes", s.limits.BodyBytes)
	}
	return Parse(body, resp.Header.Get("Content-Type"), s.limits.Samples, out)
}

// Parse adds the float samples of an exposition body to out: OpenMetrics
// when the content type says so, the Prometheus text format otherwise.
// ferry asks for neither protobuf nor native histograms, and leaves their
// parser out of the binary (textparse.New would link it).
func Parse(body []byte, contentType string, sampleLimit int, out *collectors.Collection) error {
	var p textparse.Parser
	if mediaType, _, _ := mime.ParseMediaType(contentType); mediaType == "application/openmetrics-text" {
		p = textparse.NewOpenMetricsParser(body, labels.NewSymbolTable())
	} else {
		p = textparse.NewPromParser(body, labels.NewSymbolTable(), false)
	}
	var lset labels.Labels
	for {
		entry, err := p.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("parsing: %w", err)
		}
		if entry != textparse.EntrySeries {
			continue
		}
		_, ts, v := p.Series()
		p.Labels(&lset)
		if name, dup := lset.HasDuplicateLabelNames(); dup {
			// A receiver refuses such a series; Prometheus fails the scrape.
			return fmt.Errorf("label name %q is not unique in %s", name, lset)
		}
		if len(out.Samples) >= sampleLimit {
			return fmt.Errorf("more than the limit of %d samples", sampleLimit)
		}
		s := collectors.Sample{Labels: lset.Copy(), V: v}
		if ts != nil {
			s.T = *ts
		}
		out.AddSample(nil, s)
	}
}
