// Package scrape is ferry's minimal scraper of local exporters: one HTTP GET
// per target and interval, parsed with Prometheus' own textparse, within
// limits that keep a hostile target from exhausting a small device.
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
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/ferry-agent/ferry/collectors"
	"github.com/ferry-agent/ferry/httpclient"
)

// acceptHeader prefers OpenMetrics, then the text format, as Prometheus does.
const acceptHeader = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1"

// Limits protect a small device from a target that answers too much. A
// target over a limit fails its scrape (up 0), as in Prometheus.
type Limits struct {
	BodyBytes        int64 // of the uncompressed body
	Samples          int   // per scrape (Prometheus' sample_limit, counted before metric relabeling)
	Labels           int   // per series, __name__ included; 0: no limit
	LabelNameLength  int   // 0: no limit
	LabelValueLength int   // 0: no limit
}

// DefaultLimits suit a device with tens of MiB of memory.
var DefaultLimits = Limits{BodyBytes: 16 << 20, Samples: 100_000}

// Target is one endpoint to scrape and how.
type Target struct {
	URL             *url.URL
	HonorTimestamps bool // keep the timestamps a target exposes; otherwise the scrape's time
	Limits          Limits
	HTTP            httpclient.Config
}

// Scraper collects one target.
type Scraper struct {
	target Target
	client *http.Client
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
	return &Scraper{target: t, client: &http.Client{Transport: transport, Timeout: timeout}}, nil
}

// Collect scrapes the target once. A failed scrape adds no sample: the
// agent reports it with up 0.
func (s *Scraper) Collect(ctx context.Context, out *collectors.Collection) error {
	var parsed collectors.Collection
	if err := s.scrape(ctx, &parsed); err != nil {
		return fmt.Errorf("scrape %s: %w", s.target.URL.Redacted(), err)
	}
	if !s.target.HonorTimestamps {
		for i := range parsed.Samples {
			parsed.Samples[i].T = 0
		}
	}
	out.Samples = append(out.Samples, parsed.Samples...)
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
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.target.Limits.BodyBytes+1))
	if err != nil {
		return err
	}
	if int64(len(body)) > s.target.Limits.BodyBytes {
		return fmt.Errorf("body larger than the limit of %d bytes", s.target.Limits.BodyBytes)
	}
	return Parse(body, resp.Header.Get("Content-Type"), s.target.Limits, out)
}

// Parse adds the float samples of an exposition body to out: OpenMetrics
// when the content type says so, the Prometheus text format otherwise.
// ferry asks for neither protobuf nor native histograms, and leaves their
// parser out of the binary (textparse.New would link it).
func Parse(body []byte, contentType string, lim Limits, out *collectors.Collection) error {
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
		if err := checkLabels(lset, lim); err != nil {
			return err
		}
		if len(out.Samples) >= lim.Samples {
			return fmt.Errorf("more than the limit of %d samples", lim.Samples)
		}
		s := collectors.Sample{Labels: lset.Copy(), V: v}
		if ts != nil {
			s.T = *ts
		}
		out.AddSample(nil, s)
	}
}

// checkLabels refuses what a receiver would refuse for the whole request
// (duplicate names, invalid UTF-8) and what is over a label limit:
// Prometheus fails the scrape for each.
func checkLabels(lset labels.Labels, lim Limits) error {
	if name, dup := lset.HasDuplicateLabelNames(); dup {
		return fmt.Errorf("label name %q is not unique in %.200s", name, lset)
	}
	if lim.Labels > 0 && lset.Len() > lim.Labels {
		return fmt.Errorf("%d labels, more than the limit of %d, in %.200s", lset.Len(), lim.Labels, lset)
	}
	return lset.Validate(func(l labels.Label) error {
		switch {
		case !utf8.ValidString(l.Name) || !utf8.ValidString(l.Value):
			return fmt.Errorf("label %.100q: invalid UTF-8", l.Name)
		case lim.LabelNameLength > 0 && len(l.Name) > lim.LabelNameLength:
			return fmt.Errorf("label name %.100q... is longer than the limit of %d", l.Name, lim.LabelNameLength)
		case lim.LabelValueLength > 0 && len(l.Value) > lim.LabelValueLength:
			return fmt.Errorf("label %s: value of %d bytes, longer than the limit of %d", l.Name, len(l.Value), lim.LabelValueLength)
		}
		return nil
	})
}
