package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/spf13/pflag"

	"github.com/ferry-agent/ferry/agent/config"
	"github.com/ferry-agent/ferry/agent/remotewrite/carry"
	"github.com/ferry-agent/ferry/agent/remotewrite/codec"
	"github.com/ferry-agent/ferry/buffer"
	"github.com/ferry-agent/ferry/collectors"
)

const exportUsage = `Usage: ferry buffer export [flags]

Writes the buffer's backlog, or the samples of a time range, oldest first:
as OpenMetrics text (the default), or as a carry file of the remote-write
requests the agent would send, for "ferry push" on another machine.
The buffer stays as it is unless --mark-sent is given.

A file given with --output is written readable by its owner only (0600, as
the buffer), first to a temporary file beside it and renamed into place
once complete and synced: a file of that name is never left half written.
An existing file is not replaced unless --overwrite is given.

Flags:
`

// exportMemorySamples bounds the samples "ferry buffer export" holds at
// once (16 bytes each).
const exportMemorySamples = 1 << 20

// runExport serves "ferry buffer export". It refuses while an agent has
// the buffer open.
func runExport(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("ferry buffer export", pflag.ContinueOnError)
	path := fs.String("storage.path", "./data", "Directory of the on-disk buffer.")
	format := fs.String("format", "openmetrics", "openmetrics (text), or remote-write: a carry file for \"ferry push\".")
	output := fs.String("output", "-", "File to write; - for stdout.")
	fromFlag := fs.String("from", "", "Export samples at or after this time: RFC 3339 (2024-05-01T12:00:00Z) or Unix seconds.")
	toFlag := fs.String("to", "", "Export samples at or before this time: RFC 3339 or Unix seconds.")
	markSent := fs.Bool("mark-sent", false, "Delete the exported blocks from the buffer once the file is written, as the sender does once a receiver has them: the agent will not send them. Needs --format=remote-write and --output, and the agent stopped.")
	maxSamples := fs.Int("remote-write.max-samples-per-send", config.DefaultConfig().RemoteWrite.MaxSamplesPerSend, "Samples per request in a carry file, at least one buffer block: as the agent's flag of that name.")
	progressMode := fs.String("progress", "auto", "Progress line on stderr: auto (when stderr is a terminal), always or never.")
	overwrite := fs.Bool("overwrite", false, "Replace --output if it exists; without it export refuses an existing file.")
	if code, done := parseFlags(fs, args, exportUsage, 0, stdout, stderr); done {
		return code
	}
	usage := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "ferry: export: "+format+"\n", args...)
		return 2
	}
	var r timeRange
	var err error
	if r, err = parseRange(*fromFlag, *toFlag); err != nil {
		return usage("%v", err)
	}
	live, err := progressLive(*progressMode, stderr)
	if err != nil {
		return usage("%v", err)
	}
	switch {
	case *format != "openmetrics" && *format != "remote-write":
		return usage("--format: %q is not openmetrics or remote-write", *format)
	case *maxSamples <= 0 || *maxSamples > carry.MaxSamples:
		return usage("--remote-write.max-samples-per-send: must be 1 to %d", carry.MaxSamples)
	case *markSent && *format != "remote-write":
		return usage("--mark-sent needs --format=remote-write: the carry file is what \"ferry push\" sends in the agent's place")
	case *markSent && *output == "-":
		return usage("--mark-sent needs --output FILE, so that the file is on disk (fsynced) before the blocks are deleted")
	case *format == "remote-write" && *output == "-" && isTerminal(stdout):
		return usage("a carry file is binary; give --output FILE or redirect stdout")
	}

	b, err := openForExport(*path, *markSent)
	if err != nil {
		fmt.Fprintf(stderr, "ferry: export: %v\n", err)
		return 1
	}
	defer b.Close()
	st := b.Stats()
	if *markSent && r.from > math.MinInt64 && st.Blocks > 0 && st.OldestT < r.from {
		// Ack deletes every block up to a sequence: the older samples would go too.
		return usage("--mark-sent with --from: the buffer holds samples from %s, before --from; it deletes only from its oldest block onwards, so they would be lost. Export from the start (no --from) to mark as sent", formatMillis(st.OldestT))
	}

	w, finish, err := openOutput(*output, *overwrite, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "ferry: export: %v\n", err)
		return 1
	}
	prog := newProgress(stderr, live, "exported", int64(st.Samples))
	var res exportResult
	if *format == "remote-write" {
		res, err = exportRemoteWrite(b, w, r, *maxSamples, prog)
	} else {
		var n int
		n, err = exportOpenMetrics(b, w, r, exportMemorySamples, prog)
		res.samples = int64(n)
	}
	if ferr := finish(err == nil); err == nil {
		err = ferr
	}
	if err != nil {
		prog.finish("ferry: export: %v", err)
		return 1
	}
	summary := fmt.Sprintf("ferry: export: %s samples", group(res.samples))
	if *format == "remote-write" {
		summary += fmt.Sprintf(" in %d requests", res.requests)
	}
	if *output != "-" {
		summary += " to " + *output
	}
	if dropped := b.Stats().Dropped[buffer.ReasonCorrupt]; dropped > 0 {
		summary += fmt.Sprintf("; %s samples in damaged blocks skipped", group(int64(dropped)))
	}
	if *markSent {
		if res.prefixSeq > 0 {
			if err := b.Ack(res.prefixSeq); err != nil {
				prog.finish("%s; marking them as sent failed, the buffer is unchanged: %v", summary, err)
				return 1
			}
		}
		summary += fmt.Sprintf("; %s marked as sent", group(res.prefixSamples))
		if kept := res.samples - res.prefixSamples; kept > 0 {
			summary += fmt.Sprintf(" (%s stay in the buffer, in blocks that also hold samples after --to, or after such a block: the agent sends them again, and receivers keep one copy)", group(kept))
		}
	}
	prog.finish("%s; %s", summary, prog.elapsed())
	return 0
}

// openForExport opens the buffer read-only, or, to mark exported blocks as
// sent, for writing; both refuse while an agent has it open.
func openForExport(dir string, write bool) (*buffer.Buffer, error) {
	if !write {
		return buffer.Open(buffer.Options{Dir: dir, ReadOnly: true})
	}
	fi, err := os.Stat(filepath.Join(dir, buffer.FileName))
	if err != nil {
		return nil, fmt.Errorf("no buffer to export: %w", err)
	}
	// Deleting blocks needs a few pages of its own; the cap is not in play
	// (nothing is added), but it must not be below the file's size.
	return buffer.Open(buffer.Options{Dir: dir, MaxSize: fi.Size() + 1<<20})
}

// openOutput opens the export's destination: stdout for "-"; otherwise a
// temporary file (0600) in path's directory. finish flushes it and, if ok,
// syncs it and moves it to path, without replacing a file there unless
// overwrite; failing or not ok, it removes the temporary file and leaves
// path as it was. A file already at path is refused at once.
func openOutput(path string, overwrite bool, stdout io.Writer) (io.Writer, func(ok bool) error, error) {
	if path == "-" {
		bw := bufio.NewWriterSize(stdout, 64<<10)
		return bw, func(bool) error { return bw.Flush() }, nil
	}
	if _, err := os.Lstat(path); err == nil && !overwrite {
		return nil, nil, fmt.Errorf("%s exists; give --overwrite to replace it", path)
	}
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, "."+base+".*.tmp") // 0600
	if err != nil {
		return nil, nil, err
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	return bw, func(ok bool) error {
		err := bw.Flush()
		if err == nil && ok {
			err = f.Sync() // a USB stick may be pulled right after
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil && ok {
			err = publish(f.Name(), path, overwrite)
		}
		if !ok || err != nil {
			_ = os.Remove(f.Name())
		}
		return err
	}, nil
}

// publish moves the complete file tmp to path, and syncs the directory so
// that the name survives a power cut (or a pulled stick). Without
// overwrite it fails if path exists: a hard link (atomic) where the file
// system has them, else a check and a rename (FAT on USB sticks has no
// links; a file created in between would be replaced).
func publish(tmp, path string, overwrite bool) error {
	if overwrite {
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	} else if err := os.Link(tmp, path); err == nil {
		_ = os.Remove(tmp)
	} else if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists; give --overwrite to replace it", path)
	} else if _, serr := os.Lstat(path); serr == nil {
		return fmt.Errorf("%s exists; give --overwrite to replace it", path)
	} else if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) { // some file systems cannot sync a directory
		return err
	}
	return nil
}

// timeRange is a closed interval of sample times, in ms.
type timeRange struct{ from, to int64 }

var allTime = timeRange{math.MinInt64, math.MaxInt64}

func parseRange(from, to string) (timeRange, error) {
	r := allTime
	var err error
	if from != "" {
		if r.from, err = parseTime(from); err != nil {
			return r, fmt.Errorf("--from: %w", err)
		}
	}
	if to != "" {
		if r.to, err = parseTime(to); err != nil {
			return r, fmt.Errorf("--to: %w", err)
		}
	}
	if r.from > r.to {
		return r, fmt.Errorf("--from %s is after --to %s", from, to)
	}
	return r, nil
}

// parseTime reads RFC 3339 or Unix seconds (with a fraction, if wanted).
func parseTime(s string) (int64, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UnixMilli(), nil
	}
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(secs) || math.Abs(secs) > 1e15 {
		return 0, fmt.Errorf("%q is neither RFC 3339 (2024-05-01T12:00:00Z) nor Unix seconds", s)
	}
	return int64(math.Round(secs * 1000)), nil
}

// clip returns the block's samples within r, and whether that is all of them.
func (r timeRange) clip(blk buffer.Block) (buffer.Block, bool) {
	if r == allTime {
		return blk, true
	}
	out := buffer.Block{Seq: blk.Seq, Series: make([]buffer.Series, 0, len(blk.Series))}
	whole := true
	for _, s := range blk.Series {
		lo, _ := slices.BinarySearch(s.T, r.from)
		hi, found := slices.BinarySearch(s.T, r.to)
		if found {
			hi++
		}
		if lo > 0 || hi < len(s.T) {
			whole = false
		}
		if lo < hi {
			out.Series = append(out.Series, buffer.Series{Ref: s.Ref, Labels: s.Labels, T: s.T[lo:hi], V: s.V[lo:hi]})
		}
	}
	return out, whole
}

type exportResult struct {
	samples, requests int64
	// The exported blocks from the oldest on, up to the first that was not
	// exported whole: what --mark-sent can delete.
	prefixSeq     uint64
	prefixSamples int64
}

// exportRemoteWrite writes the samples in r as a carry file: the requests
// the agent's sender would post, oldest first, batched as it batches (whole
// blocks, as many as fit in maxSamples, at least one).
func exportRemoteWrite(b *buffer.Buffer, w io.Writer, r timeRange, maxSamples int, prog *progress) (exportResult, error) {
	var res exportResult
	cw, err := carry.NewWriter(w)
	if err != nil {
		return res, err
	}
	var batch []buffer.Block
	batchSamples := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		body, n := codec.EncodeRequest(batch)
		rec := carry.Record{Samples: int64(n), MinT: math.MaxInt64, MaxT: math.MinInt64, Body: body}
		for _, blk := range batch {
			for _, s := range blk.Series {
				rec.MinT, rec.MaxT = min(rec.MinT, s.T[0]), max(rec.MaxT, s.T[len(s.T)-1])
			}
		}
		batch, batchSamples = batch[:0], 0
		res.requests++
		return cw.Write(rec)
	}
	walked, prefixOpen := int64(0), true
	err = b.ForEach(func(blk buffer.Block) error {
		walked += int64(blk.Samples())
		prog.update(walked)
		clipped, whole := r.clip(blk)
		n := clipped.Samples()
		if prefixOpen && whole {
			res.prefixSeq, res.prefixSamples = blk.Seq, res.prefixSamples+int64(n)
		} else {
			prefixOpen = false
		}
		if n == 0 {
			return nil
		}
		if batchSamples > 0 && batchSamples+n > maxSamples {
			if err := flush(); err != nil {
				return err
			}
		}
		batch = append(batch, clipped)
		batchSamples += n
		res.samples += int64(n)
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return res, err
	}
	return res, cw.Close()
}

// exportOpenMetrics writes the buffer's backlog as OpenMetrics text.
//
// OpenMetrics wants each metric family's samples together, but the buffer
// stores them by time. So the export first counts the samples of each
// family, then reads the buffer once per group of families whose samples
// fit in maxSamples, and writes each group sorted by family and series,
// each series' samples in time order. Memory stays bounded whatever the
// size of the backlog; a small buffer is read twice.
func exportOpenMetrics(b *buffer.Buffer, w io.Writer, r timeRange, maxSamples int, prog *progress) (int, error) {
	perFamily := map[string]int{}
	err := b.ForEach(func(blk buffer.Block) error {
		blk, _ = r.clip(blk)
		for _, s := range blk.Series {
			perFamily[s.Labels.Get(labels.MetricName)] += len(s.T)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	prog.total = 0
	for _, n := range perFamily {
		prog.total += int64(n)
	}
	prog.update(0)
	families := slices.Sorted(func(yield func(string) bool) {
		for f := range perFamily {
			if !yield(f) {
				return
			}
		}
	})

	bw := bufio.NewWriter(w)
	written := 0
	for len(families) > 0 {
		group := map[string]bool{}
		n := 0
		for len(families) > 0 && (len(group) == 0 || n+perFamily[families[0]] <= maxSamples) {
			group[families[0]] = true
			n += perFamily[families[0]]
			families = families[1:]
		}
		count, err := exportGroup(b, bw, r, group, written, prog)
		if err != nil {
			return written, err
		}
		written += count
		prog.update(int64(written))
	}
	bw.WriteString("# EOF\n")
	return written, bw.Flush()
}

type exportSeries struct {
	lset labels.Labels
	t    []int64
	v    []float64
}

func exportGroup(b *buffer.Buffer, w *bufio.Writer, r timeRange, group map[string]bool, before int, prog *progress) (int, error) {
	byRef := map[uint32]*exportSeries{}
	err := b.ForEach(func(blk buffer.Block) error {
		blk, _ = r.clip(blk)
		for _, s := range blk.Series {
			if !group[s.Labels.Get(labels.MetricName)] {
				continue
			}
			es := byRef[s.Ref]
			if es == nil {
				es = &exportSeries{lset: s.Labels}
				byRef[s.Ref] = es
			}
			es.t = append(es.t, s.T...)
			es.v = append(es.v, s.V...)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	series := make([]*exportSeries, 0, len(byRef))
	for _, es := range byRef {
		series = append(series, es)
	}
	// Sorting by labels puts each family's series together: __name__
	// sorts first among label names.
	slices.SortFunc(series, func(x, y *exportSeries) int { return labels.Compare(x.lset, y.lset) })

	n := 0
	var line []byte
	lastFamily := ""
	for _, es := range series {
		if f := es.lset.Get(labels.MetricName); f != lastFamily {
			fmt.Fprintf(w, "# TYPE %s unknown\n", f)
			lastFamily = f
		}
		for i := range es.t {
			line = collectors.AppendSeries(line[:0], es.lset)
			line = append(line, ' ')
			line = append(line, collectors.FormatValue(es.v[i])...)
			line = append(line, ' ')
			line = strconv.AppendFloat(line, float64(es.t[i])/1000, 'f', -1, 64) // seconds
			line = append(line, '\n')
			if _, err := w.Write(line); err != nil {
				return n, err
			}
			n++
			if n%1024 == 0 {
				prog.update(int64(before + n))
			}
		}
	}
	return n, nil
}
