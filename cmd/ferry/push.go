package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/ferry-agent/ferry/agent/config"
	"github.com/ferry-agent/ferry/agent/remotewrite"
	"github.com/ferry-agent/ferry/agent/remotewrite/carry"
	"github.com/ferry-agent/ferry/agent/remotewrite/codec"
	"github.com/ferry-agent/ferry/buffer"
)

// Exit codes of "ferry push" beyond 0 (all accepted), 1 (failed) and 2 (usage).
const exitPushIncomplete = 3 // finished, but some samples did not arrive: refused, too old or damaged

const pushUsage = `Usage: ferry push FILE [flags]

Sends a carry file (from "ferry buffer export --format=remote-write") to a
remote-write receiver, oldest first, with the agent's retries and backoff.
Exit code 0: every sample accepted; 3: finished, but some were refused by the
receiver, dropped as too old, or lost to damage in the file (the summary line
says which); 1: failed or interrupted; 2: bad usage.

Flags:
`

// maxRefusalLines bounds the per-request refusal messages; the summary
// line counts the rest.
const maxRefusalLines = 10

// runPush serves "ferry push FILE".
func runPush(args []string, stdout, stderr io.Writer) int {
	cfg := config.DefaultConfig()
	cfg.Version = version
	// A carry file holds 1.0 requests, without metadata, and push sends
	// them as they were exported unless --remote-write.protocol (or the
	// file's protobuf_message) asks for 2.0.
	cfg.RemoteWrite.Protocol = remotewrite.Protocol1
	fs := pflag.NewFlagSet("ferry push", pflag.ContinueOnError)
	flags := config.NewFlags(fs, &cfg, nil)
	// The remote-write flags are the agent's own; the rest mean nothing here.
	fs.VisitAll(func(f *pflag.Flag) {
		if !pushFlag(f.Name) {
			_ = fs.MarkHidden(f.Name)
		}
	})
	skip := fs.Int64("skip-records", 0, "Skip the first N requests of the file: to go on after an interrupted push (its last line says N).")
	progressMode := fs.String("progress", "auto", "Progress line on stderr: auto (when stderr is a terminal), always or never.")
	if code, done := parseFlags(fs, args, pushUsage, 1, stdout, stderr); done {
		return code
	}
	var unused []string
	fs.Visit(func(f *pflag.Flag) {
		if f.Hidden {
			unused = append(unused, "--"+f.Name)
		}
	})
	if len(unused) > 0 {
		fmt.Fprintf(stderr, "ferry: push: %s does not apply to push; the file's requests are sent as they were exported\n", strings.Join(unused, ", "))
		return 2
	}
	if err := flags.Finish(); err != nil {
		fmt.Fprintf(stderr, "ferry: push: %v\n", err)
		return 2
	}
	if cfg.RemoteWrite.URL == "" {
		fmt.Fprintln(stderr, "ferry: push: --remote-write.url is required (or a --config.file with remote_write)")
		return 2
	}
	live, err := progressLive(*progressMode, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "ferry: push: %v\n", err)
		return 2
	}
	if *skip < 0 {
		fmt.Fprintln(stderr, "ferry: push: --skip-records must not be negative")
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return push(ctx, fs.Arg(0), cfg, *skip, live, stderr)
}

// pushFlag tells the agent's flags that apply to push.
func pushFlag(name string) bool {
	switch {
	case name == "remote-write.max-samples-per-send":
		return false // the file's requests are sent as they are
	case strings.HasPrefix(name, "remote-write."), name == "config.file", name == "log.level":
		return true
	}
	return false
}

func push(ctx context.Context, path string, cfg config.Config, skip int64, live bool, stderr io.Writer) int {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(stderr, "ferry: push: %v\n", err)
		return 1
	}
	defer f.Close()
	// Learn the total for the progress line; the reader, which checks
	// every byte, has the last word on damage.
	sum, err := carry.Scan(f)
	if err != nil {
		fmt.Fprintf(stderr, "ferry: push: %s: %v\n", path, err)
		return 1
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		fmt.Fprintf(stderr, "ferry: push: %v\n", err)
		return 1
	}
	r, err := carry.NewReader(f)
	if err != nil {
		fmt.Fprintf(stderr, "ferry: push: %s: %v\n", path, err)
		return 1
	}

	prog := newProgress(stderr, live, "pushed", sum.Samples)
	// The sender's warnings (retries) go through the progress line; its
	// errors are about rejected requests, which push reports itself, per
	// request, and about the agent's buffer, which push does not have.
	log := slog.New(levelRange{slog.NewTextHandler(prog, &slog.HandlerOptions{Level: cfg.LogLevel}), slog.LevelError})
	rw := cfg.RemoteWrite
	rw.UserAgent = "ferry/" + cfg.Version
	// A carry file is all backlog, sent in its order: nothing fresh to put
	// ahead of it, and the whole daily budget is its. Nothing of it was
	// sent before by this sender (SentBefore zero): a receiver that refuses
	// it as out of order holds newer samples of its series, maybe sent by
	// the agent since; that is a refusal, reported as such.
	rw.FreshFirst = false
	rw.AllBacklog = true
	src := &carrySource{r: r, skip: skip, prog: prog, finished: make(chan struct{})}
	s, err := remotewrite.New(rw, src, log)
	if err != nil {
		fmt.Fprintf(stderr, "ferry: push: remote write: %v\n", err)
		return 1
	}
	src.sender = s

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan struct{})
	go func() {
		s.Run(runCtx)
		close(ran)
	}()
	select {
	case <-src.finished:
		cancel()
		<-ran
	case <-ran: // interrupted
	}
	interrupted := ctx.Err() != nil && !src.isFinished()
	if interrupted {
		src.settleIfDone()
	}
	return src.report(interrupted, withoutUserinfo(rw.URL), stderr)
}

// withoutUserinfo keeps a password in the URL out of the summary line.
func withoutUserinfo(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	u.User = nil
	return u.String()
}

// levelRange passes the records below max to its handler.
type levelRange struct {
	slog.Handler
	max slog.Level
}

func (l levelRange) Enabled(ctx context.Context, lvl slog.Level) bool {
	return lvl < l.max && l.Handler.Enabled(ctx, lvl)
}

func (l levelRange) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelRange{l.Handler.WithAttrs(attrs), l.max}
}

func (l levelRange) WithGroup(name string) slog.Handler {
	return levelRange{l.Handler.WithGroup(name), l.max}
}

// carrySource hands the sender a carry file's requests, one per read, as
// blocks the sender encodes again into the same bytes. The sender calls Read
// only once it is done with the previous request, so each Read is also when
// that request's outcome is known: its samples accepted or refused.
type carrySource struct {
	r      *carry.Reader
	sender *remotewrite.Sender
	skip   int64
	prog   *progress

	seq      uint64       // requests read from the file, skipped ones included
	inFlight carry.Record // the request the sender has (Body not kept)
	last     remotewrite.Stats

	accepted, refused, tooOld int64
	duplicates                int64 // refused as already there, after a try whose answer was lost
	undecodable               int64 // samples in requests that passed the checksum but did not decode
	skipped                   int64 // samples in requests skipped with --skip-records
	delivered                 uint64
	refusals                  []string
	refusedRequests           int

	finished chan struct{}
	endErr   error // nil: the end mark was read
}

func (c *carrySource) Read(uint64, int) ([]buffer.Block, error) {
	c.settle()
	for !c.isFinished() {
		rec, err := c.r.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				c.endErr = err
			}
			close(c.finished)
			break
		}
		c.seq++
		if int64(c.seq) <= c.skip {
			c.skipped += rec.Samples
			continue
		}
		// The header's count bounds the decoding: a hostile body cannot
		// make it allocate more than the count's worth (and the reader
		// keeps the count under carry.MaxSamples).
		blk, err := codec.DecodeRequest(rec.Body, carry.MaxDecodedBody, int(rec.Samples))
		if err == nil && int64(blk.Samples()) != rec.Samples {
			err = fmt.Errorf("it holds %d samples, its header says %d", blk.Samples(), rec.Samples)
		}
		if err != nil {
			c.undecodable += rec.Samples
			c.prog.printf("ferry: push: request %d: %v; skipped\n", c.seq, err)
			continue
		}
		blk.Seq = c.seq
		rec.Body = nil
		c.inFlight = rec
		return []buffer.Block{blk}, nil
	}
	return nil, nil
}

// settle accounts for the request the sender just finished.
func (c *carrySource) settle() {
	if c.inFlight.Samples == 0 {
		return
	}
	st := c.sender.Stats()
	accepted := int64(st.SamplesSent - c.last.SamplesSent)
	refused := int64(st.Dropped[remotewrite.ReasonRejected] - c.last.Dropped[remotewrite.ReasonRejected])
	c.accepted += accepted
	c.refused += refused
	c.tooOld += int64(st.Dropped[remotewrite.ReasonTooOld] - c.last.Dropped[remotewrite.ReasonTooOld])
	c.duplicates += int64(st.Dropped[remotewrite.ReasonDuplicate] - c.last.Dropped[remotewrite.ReasonDuplicate])
	if refused > 0 {
		c.refusedRequests++
		msg := fmt.Sprintf("ferry: push: request %d (%s samples, %s to %s) refused: %s\n",
			c.seq, group(refused), formatMillis(c.inFlight.MinT), formatMillis(c.inFlight.MaxT), st.LastError)
		if c.refusedRequests <= maxRefusalLines {
			c.prog.printf("%s", msg)
		}
	}
	c.last = st
	c.delivered = c.seq
	c.inFlight = carry.Record{}
	c.prog.update(c.done())
}

// settleIfDone settles the request in flight if the sender got an answer
// for it before it was interrupted, so that --skip-records does not send
// it again.
func (c *carrySource) settleIfDone() {
	st := c.sender.Stats()
	if st.SamplesSent != c.last.SamplesSent || !maps.Equal(st.Dropped, c.last.Dropped) {
		c.settle()
	}
}

// done counts the samples dealt with, whatever became of them.
func (c *carrySource) done() int64 {
	fs := c.r.Stats()
	return c.accepted + c.refused + c.duplicates + c.tooOld + c.undecodable + c.skipped + fs.DamagedSamples
}

func (c *carrySource) Ack(uint64) error           { return nil }
func (c *carrySource) Committed() <-chan struct{} { return nil } // never: the file is all there is

// A carry file's requests are done with when they are read again.
func (c *carrySource) Delivered(uint64) {}

// A carry file has nothing in memory to send.
func (c *carrySource) TakeLive(int, bool) (buffer.Block, bool) { return buffer.Block{}, false }
func (c *carrySource) LiveDone()                               {}
func (c *carrySource) LiveFailed(buffer.Block)                 {}
func (c *carrySource) LiveReady() <-chan struct{}              { return nil }
func (c *carrySource) Commit() error                           { return nil }

// Delete, LastSeq and SplitAt serve FreshFirst, which push turns off.
func (c *carrySource) Delete([]uint64) error { return nil }
func (c *carrySource) LastSeq() uint64       { return c.seq }
func (c *carrySource) SplitAt(uint64)        {}

func (c *carrySource) isFinished() bool {
	select {
	case <-c.finished:
		return true
	default:
		return false
	}
}

// report writes the summary line and returns the exit code.
func (c *carrySource) report(interrupted bool, url string, stderr io.Writer) int {
	fs := c.r.Stats()
	lost := fs.DamagedSamples + fs.LostSamples + c.undecodable
	var parts []string
	parts = append(parts, fmt.Sprintf("%s samples accepted by %s", group(c.accepted), url))
	if c.refused > 0 {
		parts = append(parts, fmt.Sprintf("%s refused by the receiver (%s)", group(c.refused), plural(c.refusedRequests, "request")))
	}
	if c.duplicates > 0 {
		parts = append(parts, fmt.Sprintf("%s already there (sent again after an answer was lost, refused as duplicates)", group(c.duplicates)))
	}
	if c.tooOld > 0 {
		parts = append(parts, fmt.Sprintf("%s dropped as older than --remote-write.max-sample-age", group(c.tooOld)))
	}
	if lost > 0 || fs.DamagedRecords > 0 {
		parts = append(parts, fmt.Sprintf("%s lost to damage in the file (%s, %s skipped)", group(lost), plural(int(fs.DamagedRecords), "damaged stretch"), plural(int(fs.SkippedBytes), "byte")))
	}
	if c.skipped > 0 {
		parts = append(parts, fmt.Sprintf("%s skipped (--skip-records=%d)", group(c.skipped), c.skip))
	}
	if c.refusedRequests > maxRefusalLines {
		parts = append(parts, fmt.Sprintf("%s not shown", plural(c.refusedRequests-maxRefusalLines, "more refused request")))
	}
	c.prog.finish("ferry: push: %s; %s", strings.Join(parts, ", "), c.prog.elapsed())
	switch {
	case interrupted:
		fmt.Fprintf(stderr, "ferry: push: interrupted after request %d; to go on, run it again with --skip-records=%d\n", c.delivered, c.delivered)
		return 1
	case c.endErr != nil:
		fmt.Fprintf(stderr, "ferry: push: %v\n", c.endErr)
		return exitPushIncomplete
	case c.refused > 0 || c.tooOld > 0 || lost > 0:
		return exitPushIncomplete
	}
	return 0
}

// plural writes "1 request", "2 requests", "2 damaged stretches".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "ch") {
		return fmt.Sprintf("%d %ses", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
