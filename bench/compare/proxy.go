package main

import (
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// wireCounts are what a proxy saw, cumulative.
type wireCounts struct {
	Requests       int   // requests forwarded and answered 2xx by the receiver
	Bytes          int64 // their bodies (snappy-compressed, as on the wire)
	RawBytes       int64 // their bodies after snappy decoding
	Samples        int64 // samples in them
	Failed         int   // requests refused (down: 503) or answered non-2xx
	FailedBytes    int64 // their bodies: bytes a metered link would pay for anyway
	DecodeErrors   int
	FirstOKAfterUp time.Time // first 2xx after the last switch to up
}

// arrival is what one accepted request brought of one scrape of the
// synthetic target: its samples with timestamp ts (ms), accepted at at.
type arrival struct {
	at time.Time
	ts int64
	n  int
}

// rwProxy is a reverse proxy in front of a receiver that counts
// remote-write bytes and samples, and can be switched down (503). Of the
// samples of job="synth" it also keeps when they were accepted, by sample
// timestamp, so that the harness can tell after the fact how much of each
// scrape was at the receiver at any moment (see deliveries).
type rwProxy struct {
	proxy    *httputil.ReverseProxy
	mu       sync.Mutex
	down     bool
	c        wireCounts
	arrivals []arrival
}

func newRWProxy(target string) *rwProxy {
	u, _ := url.Parse(target)
	p := httputil.NewSingleHostReverseProxy(u)
	p.ErrorLog = log.New(io.Discard, "", 0) // receivers stopping at the end
	return &rwProxy{proxy: p}
}

func (p *rwProxy) setDown(down bool) {
	p.mu.Lock()
	p.down = down
	if !down {
		p.c.FirstOKAfterUp = time.Time{}
	}
	p.mu.Unlock()
}

func (p *rwProxy) counts() wireCounts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.c
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (p *rwProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	down := p.down
	if down {
		p.c.Failed++
		p.c.FailedBytes += int64(len(body))
	}
	p.mu.Unlock()
	if down {
		http.Error(w, "receiver down (bench outage)", http.StatusServiceUnavailable)
		return
	}
	var samples, raw int64
	synth := map[int64]int{}
	decodeErr := false
	if dec, err := snappy.Decode(nil, body); err != nil {
		decodeErr = true
	} else {
		raw = int64(len(dec))
		var wr prompb.WriteRequest
		if err := wr.Unmarshal(dec); err != nil {
			decodeErr = true
		} else {
			for _, ts := range wr.Timeseries {
				samples += int64(len(ts.Samples))
				if isJob(ts.Labels, synthJob) {
					for _, s := range ts.Samples {
						synth[s.Timestamp]++
					}
				}
			}
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	rec := &statusRecorder{ResponseWriter: w, status: 200}
	p.proxy.ServeHTTP(rec, r)
	p.mu.Lock()
	defer p.mu.Unlock()
	if decodeErr {
		p.c.DecodeErrors++
	}
	if rec.status/100 == 2 {
		p.c.Requests++
		p.c.Bytes += int64(len(body))
		p.c.RawBytes += raw
		p.c.Samples += samples
		now := time.Now()
		if p.c.FirstOKAfterUp.IsZero() {
			p.c.FirstOKAfterUp = now
		}
		for ts, n := range synth {
			p.arrivals = append(p.arrivals, arrival{now, ts, n})
		}
	} else {
		p.c.Failed++
		p.c.FailedBytes += int64(len(body))
	}
}

// takeArrivals returns the synthetic target's samples accepted so far.
func (p *rwProxy) takeArrivals() []arrival {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.arrivals)
}

func isJob(ls []prompb.Label, job string) bool {
	for _, l := range ls {
		if l.Name == "job" {
			return l.Value == job
		}
	}
	return false
}
