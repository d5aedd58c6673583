// Package remotewrite drains the buffer to a Prometheus Remote-Write
// receiver (1.0, or 2.0 with the spec's fall back to 1.0): oldest block
// first, a block deleted only once acknowledged, retrying what may succeed
// later and dropping, with a count, what never will.
package remotewrite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/golang/snappy"

	"github.com/ferry-agent/ferry/buffer"
	"github.com/ferry-agent/ferry/internal/httpclient"
	"github.com/ferry-agent/ferry/internal/lograte"
)

// Reasons for samples the sender drops, the values of its reason label.
const (
	ReasonRejected = "rejected" // the receiver answered 4xx other than 408 and 429
	ReasonTooOld   = "too_old"  // older than MaxSampleAge when its turn came
)

var DropReasons = []string{ReasonRejected, ReasonTooOld} // every reason, for counters that start at zero

// Config is the sender's part of the agent configuration.
type Config struct {
	URL               string
	Timeout           time.Duration // for one request
	MinBackoff        time.Duration
	MaxBackoff        time.Duration
	MaxSamplesPerSend int
	MaxSampleAge      time.Duration // 0: send samples of any age
	MaxBytesPerSecond int64         // 0: no limit; paces request bodies
	UserAgent         string
	HTTP              httpclient.Config // auth, TLS, headers, proxy
	// Protocol 2 sends io.prometheus.write.v2.Request and falls back to 1.0
	// for the sender's life when the receiver does not take it (415, or a
	// 2xx without the spec's Written headers); 0 or 1 sends 1.0.
	Protocol Protocol
	// FreshFirst: after an outage, blocks committed from then on are sent
	// before the backlog, which drains behind them, oldest first; for
	// receivers that accept out-of-order samples.
	FreshFirst bool
	// MaxBytesPerDay caps request bytes per UTC day on a metered link (0:
	// no cap). Fresh data goes first; the backlog only uses what is left
	// beyond a quarter of the day's budget, kept for fresh data.
	MaxBytesPerDay int64
}

// Source is what the sender drains: the buffer.
type Source interface {
	Read(from uint64, maxSamples int) ([]buffer.Block, error)
	Ack(seq uint64) error
	Committed() <-chan struct{}
}

// Stats are the sender's counters since start.
type Stats struct {
	SamplesSent     uint64
	BytesSent       uint64 // request bodies, compressed
	RequestsFailed  uint64 // answers and errors that were retried
	Dropped         map[string]uint64
	LastSuccessUnix float64  // 0 before the first success
	LastError       string   // of the last failed or rejected request; "" before one
	LastErrorUnix   float64  // its time; 0 before one
	Protocol        Protocol // what is sent now: 2 until a receiver refused it
	BudgetUsedBytes uint64   // request bytes sent this UTC day (MaxBytesPerDay)
}

// freshSource is a Source that can delete blocks out of order and say which
// is its newest, as the buffer can: what FreshFirst and MaxBytesPerDay need.
type freshSource interface {
	Source
	Delete(seqs []uint64) error
	LastSeq() uint64
}

// backlogAge is how old the oldest unsent sample must be for FreshFirst to
// put newer data ahead of it.
const backlogAge = 2 * time.Minute

// Sender ships the buffer's blocks. Run it once.
type Sender struct {
	cfg    Config
	src    Source
	client *http.Client
	log    *slog.Logger

	pace pacer

	mu         sync.Mutex
	stats      Stats
	budgetDay  time.Time // the UTC day BudgetUsedBytes counts
	budgetLog  lograte.Limiter
	rejectLog  lograte.Limiter
	failureLog lograte.Limiter
}

// New returns a Sender for cfg, or an error naming the HTTP setting that
// cannot work (a missing CA file, say).
func New(cfg Config, src Source, log *slog.Logger) (*Sender, error) {
	if err := cfg.HTTP.Validate(); err != nil {
		return nil, err
	}
	transport, err := cfg.HTTP.NewTransport()
	if err != nil {
		return nil, err
	}
	proto := Protocol1
	switch cfg.Protocol {
	case 0, Protocol1:
	case Protocol2:
		proto = Protocol2
	default:
		return nil, fmt.Errorf("remote-write protocol %d: want 1 or 2", cfg.Protocol)
	}
	return &Sender{
		cfg: cfg,
		src: src,
		client: &http.Client{
			Transport: transport,
			Timeout:   cfg.Timeout,
			// A redirected POST becomes a GET and its answer would drop the
			// batch; a redirect is a configuration error to retry and log.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		log:   log,
		pace:  pacer{bytesPerSecond: cfg.MaxBytesPerSecond},
		stats: Stats{Dropped: map[string]uint64{}, Protocol: proto},
	}, nil
}

// Stats returns a copy of the counters.
func (s *Sender) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Dropped = maps.Clone(s.stats.Dropped)
	return st
}

// Delivered blocks are deleted from the buffer in batches: each delete is a
// bbolt commit, fsyncs and page writes included, and one per request would
// write more to flash than the data itself while the link is up (measured:
// 10.2 instead of 4.3 bytes per sample). After a crash, at most what was
// delivered since the last batch is sent again: ackEverySamples samples or
// ackInterval of sending. Caught up or stopping, the batch is deleted at once.
const (
	ackEverySamples = 50_000
	ackInterval     = 10 * time.Second
)

// Run sends until ctx ends.
func (s *Sender) Run(ctx context.Context) {
	var next, delivered uint64 // next to read; last delivered, not yet deleted
	unacked, lastAck := 0, time.Now()
	ack := func() {
		if unacked == 0 {
			return
		}
		if err := s.src.Ack(delivered); err != nil {
			s.log.Error("deleting sent blocks from the buffer", "err", err)
		}
		unacked, lastAck = 0, time.Now()
	}
	defer ack()
	fresh, splits := s.src.(freshSource)
	splits = splits && (s.cfg.FreshFirst || s.cfg.MaxBytesPerDay > 0)
	var liveFrom, liveNext uint64 // with a split: blocks from liveFrom on go first
	for ctx.Err() == nil {
		if liveFrom != 0 {
			// Fresh data first, deleted as soon as it is delivered.
			live, err := s.src.Read(max(liveFrom, liveNext), s.cfg.MaxSamplesPerSend)
			if err == nil && len(live) > 0 {
				if !s.budgetAllows(true) {
					sleep(ctx, budgetWait)
					continue
				}
				if !s.deliver(ctx, live) {
					return
				}
				liveNext = live[len(live)-1].Seq + 1
				seqs := make([]uint64, len(live))
				for i, blk := range live {
					seqs[i] = blk.Seq
				}
				if err := fresh.Delete(seqs); err != nil {
					s.log.Error("deleting sent blocks from the buffer", "err", err)
				}
				continue
			}
		}
		blocks, err := s.src.Read(next, s.cfg.MaxSamplesPerSend)
		if err != nil {
			s.log.Error("reading the buffer", "err", err)
			sleep(ctx, s.cfg.MaxBackoff)
			continue
		}
		if liveFrom != 0 {
			blocks = slices.DeleteFunc(blocks, func(b buffer.Block) bool { return b.Seq >= liveFrom })
			if len(blocks) == 0 { // the backlog is drained
				ack()
				s.log.Info("backlog drained behind the fresh data")
				next, liveFrom = max(next, liveNext), 0
				continue
			}
		} else if splits && len(blocks) > 0 && newestIn(blocks) < time.Now().Add(-backlogAge).UnixMilli() {
			liveFrom = fresh.LastSeq() + 1
			liveNext = liveFrom
			s.log.Info("sending fresh data first; the backlog drains behind it", "backlog_blocks_from", blocks[0].Seq, "fresh_from", liveFrom)
		}
		if len(blocks) == 0 {
			ack()
			select {
			case <-ctx.Done():
			case <-s.src.Committed():
			}
			continue
		}
		if !s.budgetAllows(liveFrom == 0) {
			// Held back: fresh data, if any, goes when it is committed.
			ack()
			select {
			case <-ctx.Done():
			case <-s.src.Committed():
			case <-time.After(budgetWait):
			}
			continue
		}
		if !s.deliver(ctx, blocks) {
			return // ctx ended while retrying; these blocks stay buffered
		}
		delivered = blocks[len(blocks)-1].Seq
		next = delivered + 1
		for _, blk := range blocks {
			unacked += blk.Samples()
		}
		if unacked >= ackEverySamples || time.Since(lastAck) >= ackInterval {
			ack()
		}
	}
}

// newestIn is the newest sample's timestamp in blocks.
func newestIn(blocks []buffer.Block) int64 {
	var newest int64
	for _, blk := range blocks {
		for _, s := range blk.Series {
			if n := len(s.T); n > 0 {
				newest = max(newest, s.T[n-1])
			}
		}
	}
	return newest
}

// budgetAllows reports whether, with MaxBytesPerDay, a request may go now:
// fresh data while the day's budget lasts, the backlog while more than a
// quarter of it is left. A request may overshoot the budget by its own size.
func (s *Sender) budgetAllows(isFresh bool) bool {
	if s.cfg.MaxBytesPerDay <= 0 {
		return true
	}
	reserve := int64(0)
	if !isFresh {
		reserve = s.cfg.MaxBytesPerDay / 4
	}
	now := time.Now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	if y, d := now.Year(), now.YearDay(); y != s.budgetDay.Year() || d != s.budgetDay.YearDay() {
		s.budgetDay, s.stats.BudgetUsedBytes = now, 0
	}
	used := int64(s.stats.BudgetUsedBytes)
	if used+reserve < s.cfg.MaxBytesPerDay {
		return true
	}
	s.budgetLog.Log(s.log, slog.LevelWarn, "daily byte budget used up; the rest waits for tomorrow (UTC)", "used_bytes", used, "budget_bytes", s.cfg.MaxBytesPerDay, "fresh_data", isFresh)
	return false
}

// budgetWait is how often a sender held back by its budget looks again.
const budgetWait = time.Minute

// deliver sends blocks as one request, retrying until the receiver takes
// them, refuses them for good, or ctx ends (false).
func (s *Sender) deliver(ctx context.Context, blocks []buffer.Block) bool {
	var minT int64
	if s.cfg.MaxSampleAge > 0 {
		minT = time.Now().Add(-s.cfg.MaxSampleAge).UnixMilli()
	}
	series, samples, tooOld := groupBySeries(blocks, minT)
	if tooOld > 0 {
		s.mu.Lock()
		s.stats.Dropped[ReasonTooOld] += uint64(tooOld)
		s.mu.Unlock()
	}
	if samples == 0 {
		return true
	}
	proto := s.Stats().Protocol
	body := encode(series, proto)
	backoff := s.cfg.MinBackoff
	for attempt := 1; ; attempt++ {
		if !sleep(ctx, s.pace.delay(time.Now(), len(body))) {
			return false
		}
		written, err := s.post(ctx, body, proto)
		var rej *rejectedError
		if proto == Protocol2 && (written < 0 && err == nil || errors.As(err, &rej) && rej.code == http.StatusUnsupportedMediaType) {
			// The spec's fall back: a 415, or a 2xx without any Written
			// header (a 1.0 receiver that read the body as an empty
			// 1.0 request), means the receiver does not take 2.0.
			why := "answered 2xx without X-Prometheus-Remote-Write-*-Written headers"
			if err != nil {
				why = err.Error()
			}
			s.log.Warn("receiver does not take Remote-Write 2.0; sending 1.0 from now on", "answer", why)
			proto = Protocol1
			s.mu.Lock()
			s.stats.Protocol = proto
			s.mu.Unlock()
			body = encode(series, proto)
			attempt--
			continue
		}
		switch {
		case err == nil:
			if attempt > 1 {
				s.log.Info("remote write recovered", "failed_attempts", attempt-1)
			}
			// 2.0 receivers say how many samples they wrote; fewer than
			// sent with a 2xx breaks the spec, and the rest is lost.
			lost := 0
			if proto == Protocol2 && written < samples {
				lost = samples - written
			}
			s.mu.Lock()
			s.stats.SamplesSent += uint64(samples - lost)
			s.stats.BytesSent += uint64(len(body))
			s.stats.BudgetUsedBytes += uint64(len(body))
			s.stats.LastSuccessUnix = float64(time.Now().UnixMilli()) / 1000
			s.mu.Unlock()
			if lost > 0 {
				s.rejected(lost, fmt.Errorf("2xx, but the receiver wrote %d of %d samples", written, samples))
			}
			return true
		case errors.As(err, &rej):
			// A 2.0 receiver's Written header tells what a partial
			// write kept; a missing one means none (the spec).
			kept := 0
			if proto == Protocol2 {
				kept = min(max(written, 0), samples)
			}
			s.mu.Lock()
			s.stats.SamplesSent += uint64(kept)
			s.mu.Unlock()
			s.rejected(samples-kept, err)
			return true
		case ctx.Err() != nil:
			return false
		}
		s.mu.Lock()
		s.stats.RequestsFailed++
		s.stats.LastError, s.stats.LastErrorUnix = err.Error(), float64(time.Now().UnixMilli())/1000
		s.mu.Unlock()
		wait := jitter(backoff)
		var ra *retryAfterError
		if errors.As(err, &ra) && ra.after > wait {
			wait = ra.after
		}
		s.failureLog.Log(s.log, slog.LevelWarn, "remote write failed; retrying until it works", "err", err, "attempt", attempt, "next_in", wait.Round(time.Millisecond))
		if !sleep(ctx, wait) {
			return false
		}
		backoff = min(backoff*2, s.cfg.MaxBackoff)
	}
}

// rejected counts and logs, at a rate that cannot flood, n samples that
// the receiver refused for good.
func (s *Sender) rejected(n int, err error) {
	s.mu.Lock()
	s.stats.Dropped[ReasonRejected] += uint64(n)
	s.stats.LastError, s.stats.LastErrorUnix = err.Error(), float64(time.Now().UnixMilli())/1000
	s.mu.Unlock()
	if n > 0 {
		s.rejectLog.Log(s.log, slog.LevelError, "receiver rejected samples; dropped (counted in ferry_remote_write_dropped_samples_total)", "samples", n, "err", err)
	}
}

// encode returns the compressed request body of series in proto.
func encode(series []*seriesSamples, proto Protocol) []byte {
	if proto == Protocol2 {
		return snappy.Encode(nil, marshalRequestV2(series))
	}
	return snappy.Encode(nil, marshalWriteRequest(series))
}

// rejectedError is an answer that retrying cannot change.
type rejectedError struct {
	code        int
	status, msg string
}

func (e *rejectedError) Error() string { return fmt.Sprintf("%s: %s", e.status, e.msg) }

// retryAfterError is a retryable answer with a Retry-After header.
type retryAfterError struct {
	error
	after time.Duration
}

// maxErrorBody bounds how much of a receiver's error message is read and logged.
const maxErrorBody = 512

// Response headers of a 2.0 receiver: how many of each kind it wrote.
var writtenHeaders = []string{
	"X-Prometheus-Remote-Write-Samples-Written",
	"X-Prometheus-Remote-Write-Histograms-Written",
	"X-Prometheus-Remote-Write-Exemplars-Written",
}

// post sends body in proto. written is the answer's
// X-Prometheus-Remote-Write-Samples-Written: 0 if it is missing or invalid
// while another Written header is there, -1 if there is none of them.
func (s *Sender) post(ctx context.Context, body []byte, proto Protocol) (written int, _ error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return -1, err
	}
	req.Header.Set("Content-Encoding", "snappy")
	if proto == Protocol2 {
		req.Header.Set("Content-Type", "application/x-protobuf;proto="+MessageV2)
		req.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
	} else {
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	}
	req.Header.Set("User-Agent", s.cfg.UserAgent)
	resp, err := s.client.Do(req)
	if err != nil {
		return -1, err
	}
	defer resp.Body.Close()
	written = -1
	for i, h := range writtenHeaders {
		if v := resp.Header.Get(h); v != "" {
			written = max(written, 0)
			if n, err := strconv.ParseInt(v, 10, 64); i == 0 && err == nil && n >= 0 {
				written = int(min(n, math.MaxInt32))
			}
		}
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	switch code := resp.StatusCode; {
	case code/100 == 2:
		return written, nil
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code/100 == 5:
		err := fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
		if after, ok := parseRetryAfter(resp.Header.Get("Retry-After")); ok {
			return written, &retryAfterError{error: err, after: after}
		}
		return written, err
	case code/100 == 4:
		return written, &rejectedError{code: code, status: resp.Status, msg: string(bytes.TrimSpace(msg))}
	case code/100 == 3:
		return written, fmt.Errorf("%s to %q: ferry does not follow redirects; set --remote-write.url to the final address", resp.Status, resp.Header.Get("Location"))
	default:
		return written, fmt.Errorf("unexpected answer %s", resp.Status)
	}
}

// parseRetryAfter reads seconds or an HTTP date; far futures are capped.
func parseRetryAfter(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	const limit = 10 * time.Minute
	var d time.Duration
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		// ParseUint saturates on overflow; cap before multiplying.
		d = time.Duration(min(secs, uint64(limit/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	} else {
		return 0, false
	}
	return min(max(d, 0), limit), true
}

// jitter spreads retries of a fleet over [d/2, d).
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// pacer spreads request bodies over time so that on average they use at
// most bytesPerSecond of a metered link: each request starts when the bytes
// before it have had their time.
type pacer struct {
	bytesPerSecond int64
	next           time.Time // when the next request may start
}

// delay returns how long a request of n bytes must wait at now, and books
// its time.
func (p *pacer) delay(now time.Time, n int) time.Duration {
	if p.bytesPerSecond <= 0 {
		return 0
	}
	if p.next.Before(now) {
		p.next = now
	}
	wait := p.next.Sub(now)
	p.next = p.next.Add(time.Duration(float64(n) / float64(p.bytesPerSecond) * float64(time.Second)))
	return wait
}
