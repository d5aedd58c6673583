// Package remotewrite drains the buffer to a Prometheus Remote-Write
// receiver (1.0, or 2.0 with the spec's fall back to 1.0): oldest block
// first, a block deleted only once acknowledged, retrying what may succeed
// later and dropping, with a count, what never will.
//
// The sender loop and its acknowledgements live here; the parts it drives
// live below it: codec (the request bodies), client (one POST and the
// retry decision), throttle (pace and daily budget), and carry (the file
// format of "ferry push", which frames codec's bodies).
package remotewrite

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferry-agent/ferry/agent/remotewrite/client"
	"github.com/ferry-agent/ferry/agent/remotewrite/codec"
	"github.com/ferry-agent/ferry/agent/remotewrite/throttle"
	"github.com/ferry-agent/ferry/buffer"
	"github.com/ferry-agent/ferry/internal/httpclient"
	"github.com/ferry-agent/ferry/internal/lograte"
)

// Reasons for samples the sender drops, the values of its reason label.
const (
	// The receiver refused the payload (400, 409, 422, 415; a single
	// sample over its size limit: 413), or took a 2.0 request and wrote
	// fewer samples than sent.
	ReasonRejected = "rejected"
	// The receiver refused samples as out of order or duplicate that ferry
	// may have delivered before: sent again after a restart (delivered,
	// not yet deleted from the buffer when the process died), after an
	// attempt whose answer was lost, or after a refusal by a receiver that
	// writes what it can. The receiver most likely holds them.
	ReasonDuplicate = "duplicate"
	ReasonTooOld    = "too_old" // older than MaxSampleAge when its turn came
)

// DropReasons is every reason, for counters that start at zero. Shared:
// read it, do not modify it.
var DropReasons = []string{ReasonRejected, ReasonDuplicate, ReasonTooOld}

// Protocol is codec.Protocol, named here too so that a configuration can
// fill in Config without importing the codec.
type Protocol = codec.Protocol

const (
	Protocol1 = codec.Protocol1
	Protocol2 = codec.Protocol2
)

// Config is the sender's part of the agent configuration.
type Config struct {
	URL               string
	Timeout           time.Duration // for one request
	MinBackoff        time.Duration
	MaxBackoff        time.Duration
	MaxSamplesPerSend int
	MaxSampleAge      time.Duration // 0: send samples of any age
	MaxBytesPerSecond int64         // 0: no limit; paces request bodies
	// BacklogBytesPerSecond paces, on top of MaxBytesPerSecond, the
	// backlog (samples older than backlogAge when their turn comes,
	// committed or still in memory): each request by the share of its
	// bytes that its old samples are. A fleet back from an outage drains
	// at a rate its receiver can take, each device at its own pace. Fresh
	// data is not held back by it. 0: no limit.
	BacklogBytesPerSecond int64
	// ReconnectJitter: when the receiver answers again after failed
	// attempts, the sender waits a random time below ReconnectJitter, and
	// below the outage's length, before it sends on (the backlog at full
	// volume): devices cut off and restored together then do not all send
	// their backlogs in the same second. 0: no wait.
	ReconnectJitter time.Duration
	UserAgent       string
	HTTP            httpclient.Config // auth, TLS, headers, proxy
	// Protocol 2 sends io.prometheus.write.v2.Request and falls back to 1.0
	// for the sender's life when the receiver does not take it (415, or a
	// 2xx without the spec's Written headers); 0 or 1 sends 1.0.
	Protocol Protocol
	// FreshFirst: after an outage, blocks committed from then on are sent
	// before the backlog, which drains behind them, oldest first; for
	// receivers that accept out-of-order samples. Only with it, or with a
	// daily budget that holds the backlog back, does the sender call the
	// Source's Delete and LastSeq.
	FreshFirst bool
	// MaxBytesPerDay caps request bytes per UTC day on a metered link (0:
	// no cap). The backlog (samples older than backlogAge when their turn
	// comes, committed or still in memory: a request with any of them)
	// only uses what is left beyond a quarter of the day's budget, kept
	// for fresh data; one in memory that the budget holds back is
	// committed, to wait as a committed one does. Without FreshFirst the
	// sender keeps to oldest first until the budget holds the backlog
	// back; then it sends fresh data ahead of it (as FreshFirst does, and
	// says so in the log) until the backlog is drained, since fresh data
	// would otherwise wait for it.
	MaxBytesPerDay int64
	// SentBefore: samples up to this time may have reached the receiver
	// in an earlier run, which did not live to delete them from the
	// buffer (the agent: the time it starts the sender). A refusal of such
	// samples as out of order or duplicate is counted as ReasonDuplicate,
	// not ReasonRejected. Zero: nothing was sent before ("ferry push").
	SentBefore time.Time
	// NeverSent narrows SentBefore per series (by the source's Ref): from
	// this time on, the series' samples did not reach the receiver in an
	// earlier run (buffer.Buffer.NeverSent: the journal of a process that
	// died knew what it had not sent). Read only; may be nil.
	NeverSent map[uint32]int64
	// AllBacklog: the source holds a backlog only, to be sent in its
	// order (a carry file): the whole daily budget is its, and nothing is
	// put ahead of it.
	AllBacklog bool
	// Metadata is Prometheus' metadata_config: how the receiver is told
	// each metric family's type, help and unit.
	Metadata MetadataConfig
}

// MetadataConfig says how metadata is sent (Prometheus' metadata_config).
// With 2.0, a series carries its type, help and unit in the request that
// sends its samples when it has not within SendInterval (a new series, or
// one whose metadata changed, at once); start times go with every sample
// whatever Send says. With 1.0, every SendInterval the families of the
// samples sent since go in metadata requests of their own, at most
// MaxSamplesPerSend families each, as Prometheus sends them.
type MetadataConfig struct {
	Send              bool          // false: no type, help or unit is sent
	SendInterval      time.Duration // 0: DefaultMetadataInterval
	MaxSamplesPerSend int           // families per 1.0 metadata request; 0: DefaultMetadataPerSend
}

// Prometheus' defaults of metadata_config.
const (
	DefaultMetadataInterval = time.Minute
	DefaultMetadataPerSend  = 2000
)

// maxFamilies bounds the families the sender gathers between two 1.0
// metadata sends: past it, more wait for the next interval.
const maxFamilies = 100_000

// Source is what the sender drains: the buffer (*buffer.Buffer), or a
// carry file for "ferry push". Blocks are named by Seq, which ascends in
// the order blocks were committed.
//
// The sender calls these methods from the goroutine that runs Run, one at
// a time, never two at once. A source that others write to meanwhile (the
// buffer: the agent appends and commits while the sender reads) must be
// safe for that itself.
type Source interface {
	// Read returns blocks with Seq >= from, lowest Seq first: at least one
	// if there is any, then more while their samples stay within
	// maxSamples. None means there is nothing to send yet; the sender then
	// waits on Committed.
	//
	// The sender owns the returned slice and blocks until its next Read;
	// it does not modify them, and the source must not either. Calling
	// Read again gives up what the last Read returned and was not
	// delivered (Delivered, Delete) meanwhile: the source may count it
	// lost if it evicted it. Label sets
	// may be shared (they are immutable). An error is logged and the read
	// tried again after MaxBackoff; blocks returned with it are not sent.
	Read(from uint64, maxSamples int) ([]buffer.Block, error)

	// Ack tells the source that every block with Seq <= seq is done with:
	// the receiver took it, or refused it for good. The buffer deletes
	// them. Acks come in batches (see ackEverySamples), with ascending seq,
	// and at once when the sender is caught up or stopping. An error is
	// logged and not retried: the blocks stay, and a restarted sender sends
	// them again (a duplicate, never a loss).
	Ack(seq uint64) error

	// Committed returns the channel that receives a value when new blocks
	// may be there: the sender waits on it after a Read that returned none,
	// and is its only receiver. The same channel on every call; a commit
	// made while the sender is busy must not be lost (the buffer's has room
	// for one value and never blocks the committer). A nil channel means
	// nothing will ever be committed (a carry file).
	Committed() <-chan struct{}

	// Delivered tells the source, at once, that the receiver has every
	// block with Seq <= seq, ahead of the batched Ack: a block the source
	// must drop meanwhile (a full buffer) is then no loss. It cannot fail.
	Delivered(seq uint64)

	// Delete is Ack for blocks delivered out of order: those with the given
	// seqs, in ascending order; seqs already gone are skipped. Called only
	// when fresh blocks are sent ahead of the backlog (Config.FreshFirst,
	// or a daily budget that holds the backlog back).
	// An error is handled as Ack's.
	Delete(seqs []uint64) error

	// TakeLive returns samples collected and not committed, for delivery
	// straight from memory: at most maxSamples (at least one series, or
	// its first maxSamples samples), as a block with Seq 0. ok is false
	// when there are none, and while committed blocks wait, unless
	// aheadOfBacklog (FreshFirst): each series then stays in order. The
	// sender owns the block until it hands it back, before it calls
	// TakeLive again, with LiveDone (delivered, or dropped and counted by
	// the sender) or LiveFailed (not all delivered: the source keeps all
	// but settled, each series' first samples that the sender delivered
	// or dropped with a count, to commit them or offer them again). The
	// source may wait for that hand-back in a commit, so the sender holds
	// a live block no longer than one request.
	TakeLive(maxSamples int, aheadOfBacklog bool) (blk buffer.Block, ok bool)
	LiveDone()
	LiveFailed(settled buffer.Block)

	// Commit writes what the source holds in memory as committed blocks.
	// The sender calls it when the daily budget holds back a backlog
	// still in memory (an outage shorter than a commit), with no live
	// block taken: the backlog then waits as a committed one does, and
	// what is collected next goes ahead of it. Only with MaxBytesPerDay.
	// An error is logged; the samples stay in memory.
	Commit() error

	// LiveReady returns the channel that receives a value when a
	// collection was appended: the sender waits on it, with Committed. The
	// same channel on every call; nil means there will be none.
	LiveReady() <-chan struct{}

	// LastSeq returns the Seq of the newest committed block, 0 if there is
	// none; blocks committed later have larger seqs. Called only when the
	// sender splits fresh data from the backlog (Config.FreshFirst, or a
	// daily budget holding the backlog back). It cannot fail.
	LastSeq() uint64

	// SplitAt tells the source that blocks from seq on are sent ahead of
	// the older ones, until SplitAt(0): it must keep each side's samples
	// on their side (no merging across). Called with LastSeq's successor
	// when the split starts, 0 when the backlog is drained. It cannot fail.
	SplitAt(seq uint64)
}

// Stats are the sender's counters since start.
type Stats struct {
	SamplesSent     uint64
	BytesSent       uint64 // request bodies, compressed
	RequestsFailed  uint64 // answers and errors that were retried
	Dropped         map[string]uint64
	LastSuccessUnix float64 // 0 before the first success
	LastError       string  // of the last failed or rejected request; "" before one
	LastErrorUnix   float64 // its time; 0 before one
	// FailingSinceUnix is when the first of the attempts that failed since
	// the receiver last answered was made; 0 while it answers.
	FailingSinceUnix float64
	Protocol         Protocol // what is sent now: 2 until a receiver refused it
	BudgetUsedBytes  uint64   // request bytes sent this UTC day (MaxBytesPerDay)
}

// backlogAge is how old the oldest unsent sample must be for FreshFirst to
// put newer data ahead of it.
const backlogAge = 2 * time.Minute

// backlogCutoff is the timestamp below which a sample is backlog at now.
func backlogCutoff(now time.Time) int64 { return now.Add(-backlogAge).UnixMilli() }

// budgetWait is how often a sender held back by its budget looks again.
const budgetWait = time.Minute

// Sender ships a Source's blocks. Run it once; Stats may be called from
// any goroutine at any time.
type Sender struct {
	cfg    Config
	src    Source
	client *client.Client
	log    *slog.Logger

	// Run's alone:
	pace  *throttle.Pacer
	drain *throttle.Pacer // the backlog's
	// hold is reconnectHold; tests replace it to see the wait.
	hold    func(jitter, outage time.Duration) time.Duration
	backoff client.Backoff
	link    link
	group   codec.Grouper   // deliver's, one call at a time
	send    []*codec.Series // deliver's, for each request's series
	enc     codec.Encoder   // the bodies of attempt, one at a time
	noMeta  []bool          // markMetadata's answer, kept from one request to the next
	// fit is the most samples a request may carry since the receiver
	// answered 413 (0: no limit learned); kept for the sender's life.
	fit int
	// sentBefore (ms): samples up to this time may be at the receiver
	// already (Config.SentBefore: an earlier run may have sent them).
	sentBefore int64
	// mayHave (by label hash): per series, the attempts that failed
	// without a clear answer about the payload (it may have been written:
	// a lost answer; or not: a proxy's 502 before the receiver), each with
	// the newest sample of the series it carried (mayHaveMarks). Cleared
	// past maxMayHave series: the samples then count as rejected, not as
	// duplicates: counted either way.
	mayHave  map[uint64][]mayHaveMark
	attempts uint32 // numbers the attempts in mayHave, from 1 (0 is an earlier run)
	// probeHeld: Run's blocks may be held by the receiver in part (an
	// earlier run sent them), and a refusal of samples of several times
	// as held is not to be counted (outcome held): deliver sends them
	// again one time per request.
	probeHeld bool

	mu         sync.Mutex
	stats      Stats
	budget     *throttle.Budget // under mu: Stats reads it
	budgetLog  lograte.Limiter
	rejectLog  lograte.Limiter
	failureLog lograte.Limiter
	dupLog     lograte.Limiter
	fitLog     lograte.Limiter
	orderLog   lograte.Limiter // fresh data first
	drainLog   lograte.Limiter // and back
	recoverLog lograte.Limiter
	bufferLog  lograte.Limiter // a failing disk

	// Run's alone: metadata (MetadataConfig).
	metaSent     map[uint32]uint32 // 2.0: when each series ref last carried its metadata (metaClock)
	metaEpoch    time.Time         // metaClock's zero
	metaPruned   int               // len(metaSent) after it was last pruned
	families     map[string]codec.Family
	lastFamilies time.Time // 1.0: when metadata requests were last sent
	metaLog      lograte.Limiter
}

// New returns a Sender of src's blocks to cfg.URL, or an error naming the
// setting that cannot work (a missing CA file, a protocol other than 1 or
// 2). It starts nothing: Run does. log receives the sender's lines, the
// repeating ones rate-limited.
func New(cfg Config, src Source, log *slog.Logger) (*Sender, error) {
	proto := Protocol1
	switch cfg.Protocol {
	case 0, Protocol1:
	case Protocol2:
		proto = Protocol2
	default:
		return nil, fmt.Errorf("remote-write protocol %d: want 1 or 2", cfg.Protocol)
	}
	c, err := client.New(client.Config{URL: cfg.URL, Timeout: cfg.Timeout, UserAgent: cfg.UserAgent, HTTP: cfg.HTTP})
	if err != nil {
		return nil, err
	}
	var sentBefore int64
	if !cfg.SentBefore.IsZero() {
		sentBefore = cfg.SentBefore.UnixMilli()
	}
	return &Sender{
		cfg:        cfg,
		sentBefore: sentBefore,
		mayHave:    map[uint64][]mayHaveMark{},
		src:        src,
		client:     c,
		backoff:    client.Backoff{Min: cfg.MinBackoff, Max: cfg.MaxBackoff},
		log:        log,
		pace:       throttle.NewPacer(cfg.MaxBytesPerSecond),
		drain:      throttle.NewPacer(cfg.BacklogBytesPerSecond),
		hold:       reconnectHold,
		stats:      Stats{Dropped: map[string]uint64{}, Protocol: proto},
		budget:     throttle.NewBudget(cfg.MaxBytesPerDay),
		metaSent:   map[uint32]uint32{},
		metaEpoch:  time.Now(),
		families:   map[string]codec.Family{},
	}, nil
}

// Stats returns a copy of the counters; the caller owns it.
func (s *Sender) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Dropped = maps.Clone(s.stats.Dropped)
	st.BudgetUsedBytes = uint64(s.budget.Used())
	return st
}

// samplesSent is Stats().SamplesSent, without the copy of the maps.
func (s *Sender) samplesSent() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.SamplesSent
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

// Run sends until ctx ends, and acknowledges what was delivered before it
// returns. Blocks not delivered by then stay in the source, and a live
// block goes back to it. Call it once.
//
// What it sends, in order: committed blocks, oldest first; then, caught
// up, the samples collected since, straight from memory (TakeLive), so
// that they reach the receiver within moments of their collection and
// never cost flash. With FreshFirst and an old backlog, fresh data (fresh
// blocks, then memory) goes ahead of the backlog.
func (s *Sender) Run(ctx context.Context) {
	var next, delivered uint64 // next to read; last delivered, not yet deleted
	unacked, lastAck := 0, time.Now()
	ack := func() {
		if unacked == 0 {
			return
		}
		if err := s.src.Ack(delivered); err != nil {
			s.bufferLog.Log(s.log, slog.LevelError, "deleting sent blocks from the buffer", "err", err)
		}
		unacked, lastAck = 0, time.Now()
	}
	defer ack()
	var liveFrom, liveNext uint64 // with FreshFirst split: blocks from liveFrom on go first
	// Blocks an earlier run sent may be at the receiver, first (oldest
	// first): a receiver that refuses a request whole for one sample it
	// holds would take the unsent samples sent with them down too. Until
	// the receiver takes a request, such a refusal is not counted, and
	// the samples go again one time per request (deliver, probeHeld).
	unsure := s.sentBefore != 0
	for ctx.Err() == nil {
		if liveFrom != 0 {
			// Fresh data first, deleted as soon as it is delivered.
			live, err := s.src.Read(max(liveFrom, liveNext), s.cfg.MaxSamplesPerSend)
			if err == nil && len(live) > 0 {
				if !s.budgetAllows(oldestIn(live) >= backlogCutoff(time.Now())) {
					// Held back (blocks that waited past backlogAge are
					// backlog too): what is in memory may still go.
					if !s.sendLive(ctx, true) {
						s.wait(ctx)
					}
					continue
				}
				if done, _ := s.deliver(ctx, live, true, true); !done {
					return
				}
				liveNext = live[len(live)-1].Seq + 1
				seqs := make([]uint64, len(live))
				for i, blk := range live {
					seqs[i] = blk.Seq
				}
				if err := s.src.Delete(seqs); err != nil {
					s.bufferLog.Log(s.log, slog.LevelError, "deleting sent blocks from the buffer", "err", err)
				}
				continue
			}
			if s.sendLive(ctx, true) {
				continue
			}
		}
		blocks, err := s.src.Read(next, s.cfg.MaxSamplesPerSend)
		if err != nil {
			s.bufferLog.Log(s.log, slog.LevelError, "reading the buffer", "err", err)
			client.Sleep(ctx, s.cfg.MaxBackoff)
			continue
		}
		if liveFrom != 0 {
			blocks = slices.DeleteFunc(blocks, func(b buffer.Block) bool { return b.Seq >= liveFrom })
			if len(blocks) == 0 { // the backlog is drained
				ack()
				s.drainLog.Log(s.log, slog.LevelInfo, "backlog drained behind the fresh data; oldest first again")
				next, liveFrom = max(next, liveNext), 0
				s.src.SplitAt(0)
				continue
			}
		} else if len(blocks) > 0 && !s.cfg.AllBacklog && newestIn(blocks) < backlogCutoff(time.Now()) {
			// An old backlog: oldest first, unless asked otherwise or the
			// budget holds it back (fresh data would wait for it).
			why := ""
			switch {
			case s.cfg.FreshFirst:
				why = "--remote-write.fresh-first"
			case !s.budgetWould(false):
				why = "the daily byte budget holds the backlog back; receivers without an out-of-order window refuse what then comes out of order"
			}
			if why != "" {
				liveFrom = s.src.LastSeq() + 1
				liveNext = liveFrom
				s.src.SplitAt(liveFrom)
				s.orderLog.Log(s.log, slog.LevelInfo, "sending fresh data first; the backlog drains behind it", "why", why, "backlog_blocks_from", blocks[0].Seq, "fresh_from", liveFrom)
			}
		}
		if len(blocks) == 0 {
			ack()
			if s.sendLive(ctx, false) {
				continue
			}
			s.wait(ctx)
			continue
		}
		// The budget's backlog is every sample older than backlogAge.
		fresh := s.cfg.AllBacklog || liveFrom == 0 && oldestIn(blocks) >= backlogCutoff(time.Now())
		if !s.budgetAllows(fresh) {
			// Held back: fresh data, if any, goes when it is collected.
			ack()
			if !s.sendLive(ctx, true) {
				s.wait(ctx)
			}
			continue
		}
		sentSoFar := s.samplesSent()
		s.probeHeld = unsure
		done, _ := s.deliver(ctx, blocks, true, liveFrom == 0)
		s.probeHeld = false
		if !done {
			return // ctx ended while retrying; these blocks stay buffered
		}
		if unsure && s.samplesSent() > sentSoFar {
			unsure = false // taken: what follows was never sent
		}
		delivered = blocks[len(blocks)-1].Seq
		s.src.Delivered(delivered)
		next = delivered + 1
		for _, blk := range blocks {
			unacked += blk.Samples()
		}
		if unacked >= ackEverySamples || time.Since(lastAck) >= ackInterval {
			ack()
		}
	}
}

// wait returns when there may be something to send: a commit, a
// collection, the next try after a failure or the budget's next look, or
// the end of ctx.
func (s *Sender) wait(ctx context.Context) {
	retry := budgetWait
	if !s.link.nextTry.IsZero() {
		retry = min(retry, max(time.Until(s.link.nextTry), 0))
	}
	t := time.NewTimer(retry)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-s.src.Committed():
	case <-s.src.LiveReady():
	case <-t.C:
	}
}

// sendLive sends what the source holds in memory, if it has any, the
// budget allows, and no failure asks to wait: one attempt, its samples
// handed back to the source unless delivered. aheadOfBacklog is for
// FreshFirst. It reports whether it delivered something.
func (s *Sender) sendLive(ctx context.Context, aheadOfBacklog bool) bool {
	if time.Now().Before(s.link.nextTry) {
		return false
	}
	blk, ok := s.src.TakeLive(s.cfg.MaxSamplesPerSend, aheadOfBacklog)
	if !ok {
		return false
	}
	backlog := oldestIn([]buffer.Block{blk}) < backlogCutoff(time.Now())
	if !s.budgetAllows(!backlog) {
		s.src.LiveFailed(buffer.Block{})
		if backlog && s.budgetWould(true) {
			// The backlog's part of the day is spent: committed, this
			// backlog waits for tomorrow as Run holds committed ones back.
			if err := s.src.Commit(); err != nil {
				s.bufferLog.Log(s.log, slog.LevelError, "committing a backlog the daily budget holds back", "err", err)
			}
		}
		return false
	}
	if done, left := s.deliver(ctx, []buffer.Block{blk}, false, true); !done {
		// What went before the failure (a probe, the requests before
		// it) is not to go, or be counted, again.
		s.src.LiveFailed(settledOf(blk, left))
		return false
	}
	s.src.LiveDone()
	return true
}

// settledOf returns the first samples of each of blk's series that are not
// among the left newest ones (by Ref): what deliver settled of blk.
func settledOf(blk buffer.Block, left map[uint32]int) buffer.Block {
	var out buffer.Block
	for _, s := range blk.Series {
		if k := len(s.T) - left[s.Ref]; k > 0 {
			s.T, s.V = s.T[:k:k], s.V[:k:k]
			out.Series = append(out.Series, s)
		}
	}
	return out
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

// oldestIn is the oldest sample's timestamp in blocks; MaxInt64 for none.
func oldestIn(blocks []buffer.Block) int64 {
	oldest := int64(math.MaxInt64)
	for _, blk := range blocks {
		for _, s := range blk.Series {
			if len(s.T) > 0 {
				oldest = min(oldest, s.T[0])
			}
		}
	}
	return oldest
}

// budgetWould reports whether the daily budget lets a request go now,
// without a log line.
func (s *Sender) budgetWould(isFresh bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.budget.Allows(time.Now(), isFresh)
}

// budgetAllows reports whether the daily budget lets a request go now, and
// logs, at a rate that cannot flood, when it does not.
func (s *Sender) budgetAllows(isFresh bool) bool {
	s.mu.Lock()
	ok, used := s.budget.Allows(time.Now(), isFresh), s.budget.Used()
	s.mu.Unlock()
	if !ok {
		s.budgetLog.Log(s.log, slog.LevelWarn, "daily byte budget used up; the rest waits for tomorrow (UTC)", "used_bytes", used, "budget_bytes", s.budget.Limit(), "fresh_data", isFresh)
	}
	return ok
}

// link is what Run knows of the receiver: failing since the last attempt
// that got an answer other than "try again", and when to try next.
type link struct {
	failing  bool
	failures int       // attempts since the last success
	since    time.Time // of the first of them
	nextTry  time.Time // a failure's backoff, or the wait after the receiver is back (ReconnectJitter)
}

// outcome is what became of one attempt.
type outcome int

const (
	answered outcome = iota // the receiver took the samples, or refused them for good (counted)
	failed                  // worth another try, after s.link.nextTry
	stopped                 // ctx ended
	tooLarge                // 413 for more than one sample: s.fit is lowered; send less
	held                    // with probeHeld: samples of several times refused whole as held before; not counted
	mixed                   // refused as duplicates, but not all of one fate (splitByFate): send each fate apart
)

// deliver sends blocks, counting too_old the samples older than
// MaxSampleAge. With retry, it tries again after each failure until the
// receiver answers, or ctx ends; without, it gives up at the first failure,
// and at the wait after an outage (ReconnectJitter). It reports whether it
// settled every sample (delivered, or dropped with a count); if not, left
// is, per series (by Ref), how many of its newest samples it did not: each
// series' samples settle oldest first. While the receiver fails, each try
// carries one sample (the oldest of the first series): a week-long outage
// costs little on a metered link, and the first answer sends the rest. A
// request the receiver finds too large (413) goes again in halves, down to
// one sample.
// inOrder: each series' samples go out oldest first (not the backlog sent
// behind fresh data), so that a refusal as out of order can only mean that
// the receiver holds them or newer ones already.
func (s *Sender) deliver(ctx context.Context, blocks []buffer.Block, retry, inOrder bool) (done bool, left map[uint32]int) {
	var minT int64
	if s.cfg.MaxSampleAge > 0 {
		minT = time.Now().Add(-s.cfg.MaxSampleAge).UnixMilli()
	}
	series, samples, tooOld := s.group.Group(blocks, minT)
	if tooOld > 0 {
		s.mu.Lock()
		s.stats.Dropped[ReasonTooOld] += uint64(tooOld)
		s.mu.Unlock()
	}
	// What is left to send, in this order, each part in one or more requests.
	parts := [][]*codec.Series{series}
	// byTime: a request was refused whole as held (probeHeld); what is
	// left goes one time per request, oldest first, until the receiver
	// takes one: an earlier run sent each time's samples together.
	byTime := false
	for samples > 0 && len(parts) > 0 {
		if byTime {
			if first, later := splitOldestTime(parts[0]); len(later) > 0 {
				parts = append([][]*codec.Series{first, later}, parts[1:]...)
			}
		}
		n := min(sampleCount(parts[0]), samples)
		if n == 0 {
			parts = parts[1:]
			continue
		}
		switch {
		case s.link.failing:
			n = 1 // a probe
		case s.fit > 0:
			n = min(n, s.fit)
		}
		if wait := time.Until(s.link.nextTry); wait > 0 && !s.link.failing {
			// Back after an outage: this device's turn comes later.
			if !retry || !client.Sleep(ctx, wait) {
				return false, unsettled(parts)
			}
		}
		send, rest := firstSamples(s.send[:0], parts[0], n)
		s.send = send[:0]
		sentSoFar := s.samplesSent()
		switch s.attempt(ctx, send, n, inOrder) {
		case answered:
			parts[0], samples = rest, samples-n
			if byTime && s.samplesSent() > sentSoFar {
				byTime = false // taken: what follows was never sent
			}
		case tooLarge:
			s.fit = max(n/2, 1)
			s.fitLog.Log(s.log, slog.LevelWarn, "the receiver refused a request as too large (413); sending fewer samples per request from now on", "samples", n, "now", s.fit)
		case mixed:
			parts = append(append(s.splitByFate(send), rest), parts[1:]...)
		case failed:
			if !retry || !client.Sleep(ctx, time.Until(s.link.nextTry)) {
				return false, unsettled(parts)
			}
		case stopped:
			return false, unsettled(parts)
		case held:
			byTime = true
		}
	}
	return true, nil
}

// splitOldestTime splits series into the samples of the oldest time among
// them and the others, each series' order kept. The parts share the
// series' slices.
func splitOldestTime(series []*codec.Series) (first, later []*codec.Series) {
	oldest := int64(math.MaxInt64)
	for _, cs := range series {
		if len(cs.T) > 0 {
			oldest = min(oldest, cs.T[0])
		}
	}
	for _, cs := range series {
		if len(cs.T) == 0 || cs.T[0] != oldest {
			later = append(later, cs)
			continue
		}
		first = append(first, &codec.Series{Ref: cs.Ref, Labels: cs.Labels, Meta: cs.Meta, T: cs.T[:1:1], V: cs.V[:1:1]})
		if len(cs.T) > 1 {
			later = append(later, &codec.Series{Ref: cs.Ref, Labels: cs.Labels, Meta: cs.Meta, T: cs.T[1:], V: cs.V[1:]})
		}
	}
	return first, later
}

// severalTimes reports whether series' samples are of more than one time.
func severalTimes(series []*codec.Series) bool {
	var t0 int64
	seen := false
	for _, cs := range series {
		for _, t := range cs.T {
			if seen && t != t0 {
				return true
			}
			t0, seen = t, true
		}
	}
	return false
}

// unsettled counts, per series, the samples in parts.
func unsettled(parts [][]*codec.Series) map[uint32]int {
	left := map[uint32]int{}
	for _, p := range parts {
		for _, cs := range p {
			left[cs.Ref] += len(cs.T)
		}
	}
	return left
}

// sampleCount is the samples in series.
func sampleCount(series []*codec.Series) int {
	n := 0
	for _, s := range series {
		n += len(s.T)
	}
	return n
}

// firstSamples splits series after its first n samples, a series across
// the cut if need be; head is appended to dst. Both parts share the slices
// of series.
func firstSamples(dst, series []*codec.Series, n int) (head, rest []*codec.Series) {
	head = dst
	for i, s := range series {
		if n == 0 {
			return head, series[i:]
		}
		if len(s.T) <= n {
			head = append(head, s)
			n -= len(s.T)
			continue
		}
		head = append(head, &codec.Series{Ref: s.Ref, Labels: s.Labels, Meta: s.Meta, T: s.T[:n:n], V: s.V[:n:n]})
		rest = append(rest, &codec.Series{Ref: s.Ref, Labels: s.Labels, Meta: s.Meta, T: s.T[n:], V: s.V[n:]})
		return head, append(rest, series[i+1:]...)
	}
	return head, nil
}

// maxMayHave bounds the series mayHave remembers.
const maxMayHave = 100_000

// maxMarks bounds the attempts mayHave remembers for one series (a probe
// that fails alike again and again adds one each time). Past it, they
// become one, the newest: the series' samples then share one fate, and a
// refusal of them counts them all as duplicates.
const maxMarks = 8

// mayHaveMark: attempt, which failed without a clear answer, carried the
// samples of a series up to t (ms). A request carries each of its series'
// samples from the oldest not yet settled on, so it carried all those up
// to t that are still unsettled.
type mayHaveMark struct {
	t       int64
	attempt uint32
}

// noteMayHave records that the receiver may have written series, sent
// by one attempt.
func (s *Sender) noteMayHave(series []*codec.Series) {
	if len(s.mayHave)+len(series) > maxMayHave {
		clear(s.mayHave)
	}
	s.attempts++
	for _, cs := range series {
		n := len(cs.T)
		if n == 0 {
			continue
		}
		h := cs.Labels.Hash()
		// Marks below the attempt's oldest sample cover nothing unsettled.
		marks := slices.DeleteFunc(s.mayHave[h], func(m mayHaveMark) bool { return m.t < cs.T[0] })
		mark := mayHaveMark{t: cs.T[n-1], attempt: s.attempts}
		if len(marks) == maxMarks {
			for _, m := range marks {
				mark.t = max(mark.t, m.t)
			}
			marks = marks[:0]
		}
		s.mayHave[h] = append(marks, mark)
	}
}

// mayHaveOf is what may be at the receiver of one series: its samples up
// to before (ms) an earlier run may have sent (Config.SentBefore,
// NeverSent), and the failed attempts that carried its samples.
type mayHaveOf struct {
	before int64
	marks  []mayHaveMark
}

func (s *Sender) mayHaveOf(cs *codec.Series) mayHaveOf {
	m := mayHaveOf{before: s.sentBefore}
	if from, ok := s.cfg.NeverSent[cs.Ref]; ok {
		m.before = min(m.before, from-1)
	}
	if len(s.mayHave) > 0 {
		m.marks = s.mayHave[cs.Labels.Hash()]
	}
	return m
}

// fate names, for the series' sample at t, the attempts that may have
// written it, into dst: an earlier run (0) and each failed attempt that
// carried it, each number followed by a comma; empty if none. At a
// receiver that writes a request whole or not at all, and holds each
// series' samples up to its newest (ferry sends them in order), a sample
// is held if and only if one of its attempts was written: the samples of
// one fate are all held or none is. (An earlier run is many attempts:
// deliver sends its samples one time per request instead, probeHeld.)
// Along a series' samples, oldest first, the fates only lose attempts, so
// each is one run of them.
func (m mayHaveOf) fate(dst []byte, t int64) []byte {
	dst = dst[:0]
	if t <= m.before {
		dst = append(dst, "0,"...)
	}
	for _, mark := range m.marks {
		if t <= mark.t {
			dst = append(strconv.AppendUint(dst, uint64(mark.attempt), 10), ',')
		}
	}
	return dst
}

// fates counts the samples of series that may be at the receiver, and
// their fates.
func (s *Sender) fates(series []*codec.Series) (mayHave, fates int) {
	seen := map[string]bool{}
	var key []byte
	for _, cs := range series {
		m := s.mayHaveOf(cs)
		for _, t := range cs.T {
			if key = m.fate(key, t); len(key) > 0 {
				mayHave++
				seen[string(key)] = true
			}
		}
	}
	return mayHave, len(seen)
}

// splitByFate splits series into one part for each fate of their samples
// that may be at the receiver, those of more attempts first, and last the
// samples never sent. Each series' order is kept: its older samples have
// more attempts. The parts share the series' slices.
func (s *Sender) splitByFate(series []*codec.Series) [][]*codec.Series {
	type part struct {
		fate   string
		series []*codec.Series
	}
	byFate := map[string]*part{}
	var young []*codec.Series
	var key, next []byte
	for _, cs := range series {
		m := s.mayHaveOf(cs)
		for i := 0; i < len(cs.T); {
			key = m.fate(key, cs.T[i])
			j := i + 1
			for ; j < len(cs.T); j++ {
				if next = m.fate(next, cs.T[j]); !bytes.Equal(next, key) {
					break
				}
			}
			run := &codec.Series{Ref: cs.Ref, Labels: cs.Labels, Meta: cs.Meta, T: cs.T[i:j:j], V: cs.V[i:j:j]}
			if len(key) == 0 {
				young = append(young, run)
			} else if p := byFate[string(key)]; p != nil {
				p.series = append(p.series, run)
			} else {
				byFate[string(key)] = &part{fate: string(key), series: []*codec.Series{run}}
			}
			i = j
		}
	}
	parts := make([]*part, 0, len(byFate))
	for _, p := range byFate {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool {
		a, b := strings.Count(parts[i].fate, ","), strings.Count(parts[j].fate, ",")
		return a > b || a == b && parts[i].fate < parts[j].fate
	})
	out := make([][]*codec.Series, 0, len(parts)+1)
	for _, p := range parts {
		out = append(out, p.series)
	}
	return append(out, young)
}

// backlogBytes is the share of a request of n bytes that BacklogBytesPerSecond
// paces: in proportion to its samples older than backlogAge, whether they
// come from committed blocks or from memory after an outage shorter than a
// commit, so that fresh data in the same request is not held to it. A
// carry file's (AllBacklog) are not paced: its upload is the user's own.
func (s *Sender) backlogBytes(series []*codec.Series, samples, n int, now time.Time) int {
	if s.cfg.BacklogBytesPerSecond <= 0 || s.cfg.AllBacklog || samples <= 0 {
		return 0
	}
	cutoff := backlogCutoff(now)
	old := 0
	for _, cs := range series {
		k, _ := slices.BinarySearch(cs.T, cutoff) // each series' samples are in time order
		old += k
	}
	return int(int64(n) * int64(old) / int64(samples))
}

// attempt posts series (samples of them) once, in the protocol in force,
// falling back to 1.0 at once where the spec says so, and keeps the
// counters, s.link and s.mayHave.
func (s *Sender) attempt(ctx context.Context, series []*codec.Series, samples int, inOrder bool) outcome {
	proto := s.Stats().Protocol
	now := time.Now()
	var noMeta []bool
	if proto == Protocol2 {
		noMeta = s.markMetadata(series, now)
	}
	body := s.enc.Encode(series, proto, noMeta)
	var written int
	var err error
	for {
		now := time.Now()
		delay := s.pace.Delay(now, len(body))
		if n := s.backlogBytes(series, samples, len(body), now); n > 0 {
			delay = max(delay, s.drain.Delay(now, n))
		}
		if !client.Sleep(ctx, delay) {
			return stopped
		}
		written, err = s.client.Post(ctx, body, proto.ContentType(), proto.Version())
		if proto != Protocol2 || !refusesV2(written, err) {
			break
		}
		why := "answered 2xx without X-Prometheus-Remote-Write-*-Written headers"
		if err != nil {
			why = err.Error()
		}
		s.log.Warn("receiver does not take Remote-Write 2.0; sending 1.0 from now on", "answer", why)
		proto = Protocol1
		s.mu.Lock()
		s.stats.Protocol = proto
		s.mu.Unlock()
		body = s.enc.Encode(series, proto, nil) // and again at once: not a failure
	}
	var e *client.Error
	if err != nil && ctx.Err() != nil && !(errors.As(err, &e) && !e.Retry) {
		return stopped
	}
	if errors.As(err, &e) && e.Retry {
		if e.MayHaveWritten() {
			// A lost answer, a proxy's 502: sent again, they may be
			// refused as duplicates.
			s.noteMayHave(series)
		}
		wait := s.backoff.Failed(e.RetryAfter)
		if !s.link.failing {
			s.link.since = time.Now()
			s.mu.Lock()
			s.stats.FailingSinceUnix = float64(s.link.since.UnixMilli()) / 1000
			s.mu.Unlock()
		}
		s.link.failing, s.link.nextTry = true, time.Now().Add(wait)
		s.link.failures++
		s.retrying(e, s.link.failures, wait)
		return failed
	}
	var hold time.Duration
	if s.link.failures > 0 {
		outage := time.Since(s.link.since)
		hold = s.hold(s.cfg.ReconnectJitter, outage)
		s.recoverLog.Log(s.log, slog.LevelInfo, "remote write recovered", "failed_attempts", s.link.failures,
			"outage", outage.Round(time.Millisecond), "sending_on_in", hold.Round(time.Millisecond))
	}
	s.link = link{}
	if hold > 0 {
		s.link.nextTry = time.Now().Add(hold)
	}
	s.backoff.Reset()
	s.mu.Lock()
	s.stats.FailingSinceUnix = 0
	s.mu.Unlock()
	if err == nil {
		// 2.0 receivers say how many samples they wrote; fewer than
		// sent with a 2xx breaks the spec, and the rest is lost. _created
		// series went as their families' start times, not as samples.
		lost := 0
		if sent := samples - codec.CreatedSamples(series); proto == Protocol2 && written < sent {
			lost = sent - written
		}
		s.mu.Lock()
		s.stats.SamplesSent += uint64(samples - lost)
		s.stats.BytesSent += uint64(len(body))
		s.budget.Spend(len(body))
		s.stats.LastSuccessUnix = float64(time.Now().UnixMilli()) / 1000
		s.mu.Unlock()
		if lost > 0 {
			s.dropped(ReasonRejected, lost, fmt.Errorf("2xx, but the receiver wrote %d of %d samples", written, samples))
		}
		s.sentMetadata(ctx, series, noMeta, proto, now)
		return answered
	}
	if e != nil && e.TooLarge && samples > 1 {
		return tooLarge
	}
	// Refused for good. A 2.0 receiver's Written header tells what a
	// partial write kept; a missing one means none (the spec).
	kept := 0
	if proto == Protocol2 {
		kept = min(max(written, 0), samples)
	}
	duplicates := 0
	if e != nil && e.Duplicate() && inOrder {
		// Sent oldest first, these samples are refused because the
		// receiver holds them, or newer ones of their series: ferry's own,
		// if it may have sent them before; if not, someone else's (two
		// devices with one identity?) or a clock that went back.
		switch old, fates := s.fates(series); {
		case old == samples && s.probeHeld && kept == 0 && severalTimes(series):
			return held
		case kept > 0:
			// Written in part, as the Written header says: what the
			// receiver refused is first what it holds.
			duplicates = min(old, samples-kept)
		case old == samples && fates == 1:
			duplicates = samples
		case old > 0:
			// Refused whole for some of its samples, or in part by a
			// receiver that writes what it can and says not what (1.0:
			// Thanos Receive, Mimir): what the request carried may be
			// there now, as after a lost answer. Each fate goes on its
			// own, so the held ones do not take the others down.
			s.noteMayHave(series)
			return mixed
		}
	}
	s.mu.Lock()
	s.stats.SamplesSent += uint64(kept)
	s.mu.Unlock()
	if duplicates > 0 {
		s.dropped(ReasonDuplicate, duplicates, err)
	}
	s.dropped(ReasonRejected, samples-kept-duplicates, err) // 0: only the error is kept
	return answered
}

// markMetadata decides which series of a 2.0 request carry their type, help
// and unit: those that have not within the interval. It returns, for each
// series, whether it goes without (Encoder.Encode's noMeta); the slice is
// the Sender's, valid until the next call.
func (s *Sender) markMetadata(series []*codec.Series, now time.Time) (noMeta []bool) {
	at, every := s.metaClock(now), s.metaInterval()
	noMeta = s.noMeta[:0]
	for _, ser := range series {
		last, ok := s.metaSent[ser.Ref]
		noMeta = append(noMeta, !s.cfg.Metadata.Send || ok && at-last < every)
	}
	s.noMeta = noMeta
	return noMeta
}

// metaClock is t in whole seconds since the sender began, as metaSent
// keeps it: a second's precision is plenty for an interval of minutes, and
// a series' entry is a quarter of the size of one with a time.Time.
func (s *Sender) metaClock(t time.Time) uint32 {
	return uint32(max(t.Sub(s.metaEpoch), 0) / time.Second)
}

// metadataInterval is how often metadata goes again: with 2.0, each
// series'; with 1.0, the families' requests.
func (s *Sender) metadataInterval() time.Duration {
	return cmp.Or(s.cfg.Metadata.SendInterval, DefaultMetadataInterval)
}

// metaInterval is metadataInterval in metaClock's seconds.
func (s *Sender) metaInterval() uint32 {
	return uint32(s.metadataInterval() / time.Second)
}

// sentMetadata notes what a request the receiver took carried: with 2.0,
// which series had their metadata (those whose noMeta, markMetadata's, is
// false); with 1.0, their families, and sends the families' metadata
// requests when they are due.
func (s *Sender) sentMetadata(ctx context.Context, series []*codec.Series, noMeta []bool, proto Protocol, at time.Time) {
	if !s.cfg.Metadata.Send {
		return
	}
	if proto == Protocol2 {
		now, every := s.metaClock(at), s.metaInterval()
		for i, ser := range series {
			if !noMeta[i] {
				s.metaSent[ser.Ref] = now
			}
		}
		if n := len(s.metaSent); n > 4096 && n > 2*s.metaPruned {
			for ref, t := range s.metaSent {
				if now-t >= every {
					delete(s.metaSent, ref)
				}
			}
			s.metaPruned = len(s.metaSent)
		}
		return
	}
	for _, ser := range series {
		m := ser.Meta.Value()
		if m.Family == "" || len(s.families) >= maxFamilies {
			continue
		}
		s.families[m.Family] = codec.Family{Name: m.Family, Type: m.Type, Help: m.Help, Unit: m.Unit}
	}
	if len(s.families) == 0 || at.Sub(s.lastFamilies) < s.metadataInterval() {
		return
	}
	s.lastFamilies = at
	s.sendFamilies(ctx)
}

// sendFamilies posts the families gathered since the last time as 1.0
// metadata requests, and forgets them: only families whose samples were
// sent within the interval go. A request that fails is not retried (the
// next interval sends its families again, if their samples still come);
// it is logged, rate-limited, and its bytes counted.
func (s *Sender) sendFamilies(ctx context.Context) {
	fams := make([]codec.Family, 0, len(s.families))
	for _, f := range s.families {
		fams = append(fams, f)
	}
	clear(s.families)
	slices.SortFunc(fams, func(a, b codec.Family) int { return strings.Compare(a.Name, b.Name) })
	per := cmp.Or(s.cfg.Metadata.MaxSamplesPerSend, DefaultMetadataPerSend)
	for len(fams) > 0 {
		chunk := fams[:min(per, len(fams))]
		fams = fams[len(chunk):]
		body := codec.EncodeMetadata(chunk)
		if !client.Sleep(ctx, s.pace.Delay(time.Now(), len(body))) {
			return
		}
		_, err := s.client.Post(ctx, body, Protocol1.ContentType(), Protocol1.Version())
		s.mu.Lock()
		s.stats.BytesSent += uint64(len(body))
		s.budget.Spend(len(body))
		s.mu.Unlock()
		if err != nil {
			s.metaLog.Log(s.log, slog.LevelWarn, "remote write: metadata request failed; its families go again with the next", "families", len(chunk), "err", err)
			return
		}
	}
}

// reconnectHold is how long a sender waits after the receiver answers
// again following an outage: uniform over [0, min(jitter, outage)), so
// that a fleet cut off and restored together comes back spread over
// jitter, while a device whose request failed once waits no longer than
// that glitch lasted.
func reconnectHold(jitter, outage time.Duration) time.Duration {
	if d := min(jitter, outage); d > 0 {
		return rand.N(d)
	}
	return 0
}

// refusesV2 reports whether the answer to a 2.0 request is the spec's
// signal to fall back: a 415, or a 2xx without any Written header (a 1.0
// receiver that read the body as an empty 1.0 request).
func refusesV2(written int, err error) bool {
	var e *client.Error
	return err == nil && written < 0 || errors.As(err, &e) && e.StatusCode == 415
}

// retrying counts and logs, at a rate that cannot flood, a failed attempt
// that is tried again after wait.
func (s *Sender) retrying(err *client.Error, try int, wait time.Duration) {
	s.mu.Lock()
	s.stats.RequestsFailed++
	s.stats.LastError, s.stats.LastErrorUnix = err.Error(), float64(time.Now().UnixMilli())/1000
	s.mu.Unlock()
	s.failureLog.Log(s.log, slog.LevelWarn, "remote write failed; retrying until it works", "err", err, "attempt", try, "next_in", wait.Round(time.Millisecond))
}

// dropped counts n samples dropped for reason after the receiver's answer
// err, and logs it at a rate that cannot flood.
func (s *Sender) dropped(reason string, n int, err error) {
	s.mu.Lock()
	s.stats.Dropped[reason] += uint64(n)
	s.stats.LastError, s.stats.LastErrorUnix = err.Error(), float64(time.Now().UnixMilli())/1000
	s.mu.Unlock()
	if n == 0 {
		return
	}
	if reason == ReasonDuplicate {
		s.dupLog.Log(s.log, slog.LevelInfo, "receiver refused samples it most likely holds already, sent again after a restart or a lost answer; not sent again (counted as duplicate in ferry_remote_write_dropped_samples_total)", "samples", n, "err", err)
		return
	}
	s.rejectLog.Log(s.log, slog.LevelError, "receiver rejected samples; dropped (counted in ferry_remote_write_dropped_samples_total)", "samples", n, "err", err)
}
