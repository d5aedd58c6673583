// Package buffer is ferry's on-disk ring buffer: samples appended by the
// agent are committed as compressed blocks into a bbolt file that is bounded
// in size, drained oldest-first by the sender, and kept across restarts.
// FORMAT.md beside this file documents what is on disk.
package buffer

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-agent/ferry/internal/lograte"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// FileName is the buffer's file inside its directory.
const FileName = "ferry.db"

// Reasons for dropped samples, the values of the self-metric's reason label.
const (
	ReasonFull        = "full"          // evicted to make room for newer data
	ReasonCorrupt     = "corrupt"       // a stored block failed to decode, or names an unknown series
	ReasonOutOfOrder  = "out_of_order"  // not newer than the series' last sample in the head
	ReasonWriteError  = "write_error"   // the disk refused a block for too long
	ReasonOutOfBounds = "out_of_bounds" // a timestamp at or before 1970, or absurdly far ahead
	ReasonInvalid     = "invalid"       // a sample without labels
	ReasonThinned     = "thinned"       // left out of old data thinned to make room (Options.Thin)
	// ReasonCapTooSmall: one commit alone, its label sets and samples, is
	// more than the cap holds: the newest samples of the series that fit
	// are kept (Stats.NeededBytes).
	ReasonCapTooSmall = "cap_too_small"
)

// DropReasons lists every reason, for counters that start at zero.
var DropReasons = []string{ReasonFull, ReasonCorrupt, ReasonOutOfOrder, ReasonOutOfBounds, ReasonInvalid, ReasonWriteError, ReasonThinned, ReasonCapTooSmall}

var (
	bucketSeries = []byte("series")
	bucketBlocks = []byte("blocks")
	bucketMeta   = []byte("meta")
	keyVersion   = []byte("format")
)

// formatVersion is the version of the whole file's layout (FORMAT.md).
const formatVersion = "1"

// Options configure a Buffer.
type Options struct {
	Dir     string // made (0750) if missing, unless ReadOnly
	MaxSize int64  // bytes the buffer may take on disk: the file (series dictionary included) and its journal
	// ReadOnly is for inspection while no agent has the buffer open: Open
	// fails with ErrInUse while one has. The journal a process that died
	// left is replayed into the head, in memory only (ForEach ends with
	// it). Commit fails, Close drops the head, Ack and Delete do nothing
	// and return nil, damaged blocks are skipped but not deleted, a
	// corrupt file is reported, not moved aside.
	ReadOnly bool
	Thin     bool // when full, thin old data instead of evicting it whole (thin.go)
	// MaxHeadBytes bounds the memory of samples appended and not yet
	// committed; HeadFull signals when it is reached. 0: DefaultMaxHeadBytes.
	MaxHeadBytes int64
	Logger       *slog.Logger // nil: discard
	// Evicted, if set, is called for each block deleted whole to make room
	// (delivered or not: see Delivered), once the deletion is durable, for
	// a caller that counts losses per receiver. It runs with the buffer's
	// lock held, from whichever goroutine commits: it must return quickly
	// and must not call the Buffer.
	Evicted func(seq uint64, samples int)
}

// Series is the samples of one series in a block, oldest first.
type Series struct {
	// Ref names one label set while the buffer is open and is never given
	// to another. A series with no sample left in the buffer may be
	// forgotten and get a new Ref when it comes back.
	Ref uint32
	// Labels is the dictionary's own label set, shared with every Block
	// of the series.
	Labels labels.Labels
	// Meta is the series' metadata, as appended (AppendMeta); nil when
	// none. The dictionary's own, shared by the series of the Meta: do not
	// write into it. A series whose Meta changed is another Series, of
	// another Ref, with the same Labels.
	Meta *Meta
	// T may be shared with other Series of the same Block (series scraped
	// together share one timestamp column): do not write into it.
	// Appending copies (its capacity ends at its length).
	T []int64
	V []float64 // this Series' own
}

// Block is one committed block, as Read and ForEach return it. Its slices
// are decoded into fresh memory, not bbolt's: the caller may keep a Block
// after later calls, after Ack or Delete of its Seq, and after Close.
type Block struct {
	// Seq orders blocks, oldest first. With Options.Thin, two blocks
	// merged to make room continue under the newer one's Seq, so a later
	// Read can return a Seq seen before holding other (thinned) samples.
	Seq    uint64
	Series []Series
}

// Samples returns the number of samples in the block.
func (b Block) Samples() int {
	n := 0
	for _, s := range b.Series {
		n += len(s.T)
	}
	return n
}

// Stats describe the buffer at one moment; the caller owns it, Dropped
// included. Blocks a failed Commit holds in memory (see Commit) are in
// neither Samples nor HeadSamples.
type Stats struct {
	Blocks       int
	Samples      int   // committed, waiting to be sent
	HeadSamples  int   // appended, not yet committed nor taken by the sender
	LiveSamples  int   // taken by the sender from the head (TakeLive), in flight
	HeadOldestT  int64 // ms: the oldest sample in the head or in flight; 0 when none
	Series       int   // known label sets
	FileBytes    int64 // size of the file on disk
	UsedBytes    int64 // of it, the pages in use (not free for reuse)
	SeriesBytes  int64 // of it, the series dictionary (estimated)
	JournalBytes int64 // size of the journal; FileBytes + JournalBytes <= MaxBytes
	// JournalSynced is how many samples the journal held at its last Sync,
	// the newest at JournalSyncedNewestT (ms): with the committed ones,
	// what a power cut leaves.
	JournalSynced        int
	JournalSyncedNewestT int64
	MaxBytes             int64 // the configured cap
	// NeededBytes, when not 0, is the cap a commit needed whole but did
	// not have (its label sets and samples; counted as cap_too_small):
	// the largest since Open.
	NeededBytes int64
	OldestT     int64             // ms; 0 when empty
	NewestT     int64             // ms; 0 when empty
	FirstSeq    uint64            // the oldest block waiting; 0 when empty
	Dropped     map[string]uint64 // samples, by reason

	// FilesMovedAside counts damaged files that Open replaced with a fresh
	// one, holding what could be salvaged from them (FORMAT.md).
	FilesMovedAside int
	// FilesDeleted counts moved-aside files deleted since Open: at most
	// one is kept, and only while it fits in the cap beside the buffer.
	FilesDeleted int
	// AsideBytes is the size of the moved-aside file kept, 0 if none. It is
	// part of the cap: the buffer's file may use that much less until the
	// room is needed and the file is deleted.
	AsideBytes int64
}

type blockInfo struct {
	seq   uint64
	size  int64
	level uint8    // of thinning, 0 for a block as committed
	refs  refRange // of the series it holds; known with Options.Thin only
	blockHeader
}

// Buffer is the open buffer; Open makes one, Close ends it.
//
// Concurrency: every method may be called from any goroutine; the agent
// appends and commits while the sender reads and deletes. Append and
// LastSeq take only a short in-memory lock and never wait for the disk.
// Commit, Ack and Delete (and Read when it deletes a damaged block) change
// the file one at a time; Append runs beside Commit (what is appended after
// Commit took the head goes to the next one). Read and ForEach read in bbolt
// read transactions beside that writer: a block evicted, thinned or deleted
// after Read chose it is either skipped or still returned as it was. Close
// must be the last call: it does not stop other goroutines, later calls
// that need the file fail with bbolt's ErrDatabaseNotOpen, and Append
// after Close accepts samples that are never written nor counted.
type Buffer struct {
	log     *slog.Logger
	badLog  lograte.Limiter // unreadable blocks: a damaged file has many
	db      *bolt.DB
	path    string
	maxSize int64
	fileMax int64    // the buffer file's part of the cap; the journal has the rest
	jf      *journal // nil when read-only
	thin    bool     // Options.Thin
	cuts    []uint32 // where the last commit's blocks started, with thin
	notify  chan struct{}

	writeMu sync.Mutex // serialises the transactions that change the file, and Read's choice of blocks
	pending [][]byte   // encoded blocks the disk refused, retried first
	limit   int64      // the cap in force: fileMax, less while the disk is full

	maxHeadBytes int64
	onEvict      func(seq uint64, samples int) // Options.Evicted
	headFull     chan struct{}
	liveReady    chan struct{}
	journalDue   chan struct{}
	// liveFailing: the live path's last block came back undelivered
	// (LiveFailed, not LiveDone since): the link is down or behind, and
	// what is collected is journaled at once (JournalDue).
	liveFailing atomic.Bool

	mu          sync.Mutex // guards what follows
	series      *seriesIndex
	head        []*indexed // the series in the head (state's head set), in the order they came into it
	slab        headSlab   // where Append takes the room of a series' first sample in the head from
	headSamples int
	headBytes   int64                // estimated memory of the head
	live        []Series             // the live block's, taken by TakeLive, not yet handed back
	liveMem     []Series             // the memory of live, kept for the next one
	liveEnded   *sync.Cond           // on mu: broadcast when live is handed back
	forgotten   map[uint64]int64     // lastT of series forgotten while open, by label hash
	readAs      map[uint64]readBlock // blocks as Read last returned them, for Delete
	delivered   uint64               // the receiver has every block up to it (Delivered)
	split       uint64               // SplitAt's seq: blocks from it on go ahead of older ones
	// readGen counts Reads: the sender has given up what earlier Reads
	// returned and it did not deliver (resolveEvictedLocked).
	readGen uint64
	// evictedRead: blocks evicted while the sender had them read, by seq:
	// counted full unless it delivers them.
	evictedRead map[uint64]readBlock
	// deletedOOO: blocks Delete was told are delivered, for a commit that
	// evicts them meanwhile; forgotten once older than every block.
	deletedOOO  map[uint64]bool
	blocks      []blockInfo // committed, ascending seq
	nextSeq     uint64
	dropped     map[string]uint64
	liveSeries  int   // series in use when unused ones were last removed
	neededBytes int64 // Stats.NeededBytes
	// journaled has the newest sample the journal has of each series it
	// has since it was last emptied (journal.go); nil while it has none.
	journaled map[uint32]journaledSample
	// neverSent is NeverSent's, set at Open and read-only after.
	neverSent map[uint32]int64
	// putBack has, per series that LiveFailed put back into the head, the
	// newest sample sent (it may be at the receiver), for the journal to
	// mark sent when it writes them; emptied with the head by a commit.
	putBack map[uint32]int64

	capLog capLog // cap.go

	filesMovedAside int
	filesDeleted    int    // moved-aside files deleted
	aside           string // the moved-aside file kept, whose bytes are the cap's
	asideBytes      int64
}

// ErrInUse is returned by Open, after waiting a second, when another Buffer
// (another process, or this one) holds the file's lock: a writable Buffer
// excludes every other, a read-only one excludes writable ones.
var ErrInUse = errors.New("the buffer is in use by another ferry process")

// ErrTooLarge is returned by Open for a cap this system cannot map.
var ErrTooLarge = errors.New("buffer cap too large")

// MaxSize32 is the largest cap on 32-bit systems. bbolt maps the whole file
// into memory, in steps that double up to 1 GiB; a 32-bit process has 2-3 GiB
// of address space, shared with everything else it maps.
const MaxSize32 = 512 << 20

// Open opens or creates the buffer in opts.Dir and holds the file's lock
// until Close. A file whose bbolt structure, layout or series dictionary is
// damaged (or whose opening crashed the process twice in a row) is never
// handed to bbolt for writing: the blocks and series that still decode are
// copied into a fresh file, which takes its place, and the damaged file is
// moved aside with a timestamp (counted in Stats.FilesMovedAside; blocks
// that no longer decode are counted as dropped, corrupt, where their
// header tells their samples); a corrupt file must never keep ferry from
// running, nor cost more than what the damage reached. At most one
// moved-aside file is kept, and only while it fits in the cap beside the
// buffer (Stats.AsideBytes); others are deleted (Stats.FilesDeleted).
// Every other failure keeps the file and is returned: ErrInUse,
// ErrTooLarge, I/O or no space, a format version this ferry does not read,
// or a corrupt file that cannot be moved aside. A damaged block is not a
// failure: it is logged, and dropped when read. A read-only Open returns
// the damage as an error and changes nothing.
func Open(opts Options) (*Buffer, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if strconv.IntSize == 32 && opts.MaxSize > MaxSize32 {
		return nil, fmt.Errorf("%w: %d bytes; a 32-bit system maps at most %d MiB", ErrTooLarge, opts.MaxSize, MaxSize32>>20)
	}
	b := &Buffer{
		log:     opts.Logger,
		onEvict: opts.Evicted,
		path:    filepath.Join(opts.Dir, FileName),
		maxSize: opts.MaxSize,
		fileMax: opts.MaxSize - journalShare(opts.MaxSize),
		thin:    opts.Thin,
		limit:   opts.MaxSize - journalShare(opts.MaxSize),
		notify:  make(chan struct{}, 1),
		dropped: map[string]uint64{},

		maxHeadBytes: cmp.Or(opts.MaxHeadBytes, DefaultMaxHeadBytes),
		headFull:     make(chan struct{}, 1),
		liveReady:    make(chan struct{}, 1),
		journalDue:   make(chan struct{}, 1),
	}
	if opts.ReadOnly {
		if err := b.openAndLoad(true); err != nil {
			return nil, err
		}
		if err := b.readJournal(); err != nil {
			return nil, errors.Join(err, b.db.Close())
		}
		return b, nil
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("buffer directory: %w", err)
	}
	b.finishSalvage()
	err := b.guardedOpen()
	// A damaged file is replaced by what can be salvaged from it; should
	// that fail to open too, by an empty one.
	for _, salvage := range []bool{true, false} {
		if err == nil || !isCorruption(err) {
			break
		}
		if rerr := b.replaceDamaged(err, salvage); rerr != nil {
			return nil, rerr
		}
		err = b.guardedOpen()
	}
	if err != nil {
		_ = os.Remove(b.path + openingMarkerSuffix) // the file is not the problem
		if b.db != nil {
			_ = b.db.Close()
		}
		return nil, err
	}
	b.settleAside()
	b.seedNewest()
	return b, b.startJournal()
}

// seedNewest learns, for the series of the newest blocks, their newest
// sample in the file, so that Append refuses older ones after a restart as
// it does while open (a clock that stepped back across a restart). The
// newest blocks hold every series still collected; reading them is bounded
// to about two samples per known series, so a series only older blocks
// hold is not guarded.
func (b *Buffer) seedNewest() {
	b.mu.Lock()
	budget := 2*b.series.byRef.Len() + 1
	var seqs []uint64
	for i := len(b.blocks) - 1; i >= 0 && budget > 0; i-- {
		seqs = append(seqs, b.blocks[i].seq)
		budget -= b.blocks[i].samples
	}
	b.mu.Unlock()
	newest := map[uint32]int64{}
	_ = b.db.View(func(tx *bolt.Tx) error {
		bb := tx.Bucket(bucketBlocks)
		for _, seq := range seqs {
			_, data, err := decodeBlock(getBlock(bb, seq))
			if err != nil {
				continue // Read drops and counts it
			}
			for _, d := range data {
				if n := len(d.ts); n > 0 {
					newest[d.ref] = max(newest[d.ref], d.ts[n-1])
				}
			}
		}
		return nil
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	for ref, t := range newest {
		if e := b.series.entryOf(ref); e != nil && !e.tracked {
			b.setStateLocked(e, seriesState{lastT: t}, true)
		}
	}
}

// startJournal opens the journal, and commits what a process that died
// left in it, so that the journal starts empty.
func (b *Buffer) startJournal() error {
	replayed, delivered, err := b.openJournal()
	if err != nil {
		_ = b.db.Close()
		return err
	}
	if replayed > 0 || delivered > 0 {
		b.log.Info("buffer: samples from the journal of the last run recovered", "samples", replayed,
			"delivered_before", delivered) // acknowledged by the receiver: not sent again
	}
	if err := b.Commit(); err != nil {
		// The journal stays as it is: the next Open replays it again.
		return errors.Join(err, b.jf.f.Close(), b.db.Close())
	}
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	return b.emptyJournalLocked()
}

// isCorruption tells a damaged file, which is moved aside, from every other
// failure (no space, I/O errors, a lock, a newer format), which is reported
// and keeps the file as it is.
func isCorruption(err error) bool {
	return errors.Is(err, errCorrupt) || errors.Is(err, bolterrors.ErrInvalid) ||
		errors.Is(err, bolterrors.ErrChecksum) || errors.Is(err, bolterrors.ErrVersionMismatch)
}

func (b *Buffer) openAndLoad(readOnly bool) (err error) {
	// bbolt panics on some damaged pages instead of returning an error, and
	// a page beyond the end of the file faults; make both errors here.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: bbolt panicked reading %s: %v", errCorrupt, b.path, r)
			if b.db != nil {
				_ = b.db.Close()
				b.db = nil
			}
		}
	}()
	b.series = newSeriesIndex()
	b.forgotten = map[uint64]int64{}
	b.readAs = map[uint64]readBlock{}
	b.evictedRead = map[uint64]readBlock{}
	b.deletedOOO = map[uint64]bool{}
	b.liveEnded = sync.NewCond(&b.mu)
	b.blocks, b.nextSeq = nil, 1

	db, err := bolt.Open(b.path, 0o600, &bolt.Options{
		Timeout:        time.Second,
		ReadOnly:       readOnly,
		NoFreelistSync: true, // fewer pages written per commit; rebuilt at open
		FreelistType:   bolt.FreelistMapType,
	})
	if errors.Is(err, bolt.ErrTimeout) {
		return fmt.Errorf("%s: %w", b.path, ErrInUse)
	}
	if err != nil {
		return err
	}
	b.db = db
	if readOnly {
		// Before bbolt reads a page: see verify.go.
		if err := verifyGuarded(b.path); err != nil {
			_ = db.Close()
			b.db = nil
			return err
		}
	} else {
		// bbolt's default growth step of 16 MiB would break a small cap at once.
		b.limitGrowth(int64(commitOverheadPages) * pageSize)
		if err := db.Update(initBuckets); err != nil {
			_ = db.Close()
			b.db = nil
			return err
		}
	}
	if err := db.View(b.load); err != nil {
		_ = db.Close()
		b.db = nil
		return err
	}
	return nil
}

func initBuckets(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketSeries, bucketBlocks, bucketMeta} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get(keyVersion); v == nil {
		return meta.Put(keyVersion, []byte(formatVersion))
	} else if string(v) != formatVersion {
		return fmt.Errorf("buffer format version %q, this ferry reads %q", v, formatVersion)
	}
	return nil
}

// load reads the series dictionary and every block's header into memory.
// Every bucket and key is visited, so that a damaged page shows here, in
// the goroutine that recovers, rather than in one of bbolt's.
func (b *Buffer) load(tx *bolt.Tx) error {
	err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		if !slices.ContainsFunc([][]byte{bucketSeries, bucketBlocks, bucketMeta}, func(known []byte) bool { return bytes.Equal(name, known) }) {
			return fmt.Errorf("%w: unknown bucket %q", errCorrupt, name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	series, blocks := tx.Bucket(bucketSeries), tx.Bucket(bucketBlocks)
	if series == nil || blocks == nil {
		return nil // a read-only open of a file the agent never initialised
	}
	err = blocks.ForEach(func(k, v []byte) error {
		if len(k) != 8 || v != nil {
			return fmt.Errorf("%w: block entry %x is not a block's bucket", errCorrupt, k)
		}
		seq := binary.BigEndian.Uint64(k)
		v = getBlock(blocks, seq)
		b.nextSeq = seq + 1
		h, _, err := decodeHeader(v)
		if err != nil {
			// One bad block costs its samples, not the buffer; the sender
			// deletes it when it reaches it.
			b.badLog.Log(b.log, slog.LevelWarn, "buffer block unreadable", "seq", seq, "err", err)
		}
		var level uint8
		if l := blocks.Bucket(k).Get(keyThinLevel); len(l) == 1 {
			level = l[0]
		}
		bi := blockInfo{seq: seq, size: footprint(len(v)), blockHeader: h, level: level}
		if b.thin {
			bi.refs = blockRefs(v)
		}
		b.blocks = append(b.blocks, bi)
		return nil
	})
	if err != nil {
		return err
	}
	return b.series.loadSeries(series, b.nextSeq-1)
}

// Timestamps the buffer takes: after the epoch, and far enough from the
// int64 limits that a block's time span cannot overflow (year 37000).
const maxTimestamp = 1 << 50

// Append adds one sample to the head, the part of the buffer that lives in
// memory until the sender takes it (TakeLive) or the next Commit writes it.
// It never waits for the disk and never fails: a sample it refuses is
// counted in Stats.Dropped (out_of_bounds, invalid for empty labels,
// out_of_order when not newer than the last sample appended to its series
// since Open, committed or not). A new series keeps lset as given
// (labels.Labels is immutable). When the head reaches its memory bound,
// HeadFull is signalled.
func (b *Buffer) Append(lset labels.Labels, t int64, v float64) { b.AppendRef(Ref{}, lset, t, v) }

// A Ref stands for a series in the buffer: what AppendRef or AppendMeta
// returned for it, handed back with its next sample, saves finding the
// series (as the ref that Prometheus' storage.Appender takes). The zero
// Ref stands for none; a Ref is for the Buffer that returned it only. It
// keeps the series' entry in memory: a caller keeps Refs of the series it
// still collects, not of every one it ever had.
type Ref struct{ e *indexed }

// AppendMeta is Append of a sample whose series has metadata (Meta): the
// buffer keeps it once per series and Meta, in its series dictionary, and
// Read, ForEach and TakeLive return it with the series' samples. Strings
// longer than 1 KiB are cut. Safe for concurrent use, as Append.
func (b *Buffer) AppendMeta(ref Ref, lset labels.Labels, m Meta, t int64, v float64) Ref {
	return b.appendLocking(ref, lset, m, t, v)
}

// AppendRef is Append with a hint: ref, when not the zero Ref, is what an
// earlier AppendRef of lset returned. It returns the series' Ref, for the
// next call with lset; the zero Ref when the sample is refused before its
// series is known. A Ref that no longer stands for lset (the buffer
// forgets a series with nothing left in it, and a series that comes back
// gets a new entry) is checked and ignored, so a stale hint costs a
// lookup, never a wrong series. Safe for concurrent use, as Append.
func (b *Buffer) AppendRef(ref Ref, lset labels.Labels, t int64, v float64) Ref {
	return b.appendLocking(ref, lset, Meta{}, t, v)
}

func (b *Buffer) appendLocking(hint Ref, lset labels.Labels, m Meta, t int64, v float64) Ref {
	if len(m.Help) > maxMetaString || len(m.Type) > maxMetaString || len(m.Unit) > maxMetaString || len(m.Family) > maxMetaString {
		m = clampMeta(m)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if t <= 0 || t >= maxTimestamp {
		b.dropped[ReasonOutOfBounds]++
		return hint
	}
	if lset.IsEmpty() {
		b.dropped[ReasonInvalid]++
		return Ref{}
	}
	e := hint.e
	if e != nil && e.removed {
		e = nil
	}
	if !e.has(lset, m) {
		if m.IsZero() && value.IsStaleNaN(v) {
			// A staleness marker ends the series whatever its metadata:
			// it goes with the newest, not as a series of its own.
			m = b.series.newestMeta(lset)
		}
		e = b.series.entry(lset, m)
		if e.tracked {
			b.siblingsLastTLocked(e.ref, lset, &e.state) // its Meta may have changed back
		}
	}
	ref := e.ref
	st := &e.state
	if !e.tracked {
		st = b.newStateLocked(ref, e)
	}
	if t <= st.lastT {
		b.dropped[ReasonOutOfOrder]++
		return Ref{e}
	}
	st.lastT = t
	s := &st.head
	if !st.inHead() {
		s.ts, s.vs = b.slab.ts(), b.slab.vs()
		b.head = append(b.head, e)
		b.headBytes += headSeriesBytes
	}
	s.ts = append(s.ts, t)
	s.vs = append(s.vs, v)
	b.headSamples++
	b.headBytes += headSampleBytes
	if b.headBytes >= b.maxHeadBytes {
		signal(b.headFull)
	}
	return Ref{e}
}

// Committed is signalled, without blocking, after each commit that stored
// a block. It holds one signal, which may stand for several commits and
// wakes one receiver; it is never closed.
func (b *Buffer) Committed() <-chan struct{} { return b.notify }

// maxPendingBytes bounds the blocks kept in memory while the disk refuses
// writes (full, read-only, failing); beyond it the oldest are dropped with a
// count. 4 MiB is about a quarter of an hour of 10k series.
const maxPendingBytes = 4 << 20

// Commit writes the head as blocks and makes them durable (bbolt fsyncs
// the file before Commit returns): when it returns nil, every sample
// appended before the call is on disk or counted as dropped. While a live
// block is in flight (TakeLive), it first waits until the sender hands it
// back. When the cap is near, the oldest blocks are evicted, counted as
// full, or with Options.Thin thinned, counted as thinned (FORMAT.md says
// how); a commit larger than the whole cap is dropped, counted as full, and
// nil returned. A disk full below the cap makes the file's current size the
// cap for this commit. If the write still fails, the error is returned and
// the blocks stay in memory, retried first at the next Commit; past
// maxPendingBytes the oldest of them are counted as write_error. Blocks
// held so are lost, uncounted, if the process ends. Commits run one at a
// time, and one at a time with Ack and Delete.
func (b *Buffer) Commit() error {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	return b.commitLocked()
}

// commitLocked is Commit for a caller that holds writeMu.
func (b *Buffer) commitLocked() error {
	pendingRefs := refsIn(b.pending)
	b.mu.Lock()
	// A live block in flight may fail and come back to the head: committing
	// newer samples of its series first would put them out of order.
	for b.live != nil {
		b.liveEnded.Wait()
	}
	// Only the label sets of what is written now: a series the sender
	// delivered from memory never costs flash.
	keep := pendingRefs
	entries := sortedByRef(b.head)
	head := make([]seriesData, len(entries))
	for i, e := range entries {
		head[i] = seriesData{ref: e.ref, ts: e.state.head.ts, vs: e.state.head.vs}
		e.state.head = headSamples{}
		keep[e.ref] = true
	}
	clear(entries)
	b.head, b.headSamples, b.headBytes = entries[:0], 0, 0
	b.putBack = nil
	newSeries := b.newSeriesLocked(keep)
	b.mu.Unlock()

	if len(head) > 0 {
		if b.thin {
			var blocks [][]byte
			blocks, b.cuts = packBlocksAt(head, maxBlockBytes, b.cuts)
			b.pending = append(b.pending, blocks...)
		} else {
			b.pending = append(b.pending, packBlocks(head, maxBlockBytes)...)
		}
	}
	if len(b.pending) == 0 && len(newSeries) == 0 {
		b.collectSeries() // the sender took everything: nothing to write
		return b.emptyJournalLocked()
	}
	err := b.writePending(newSeries, keep)
	if isNoSpace(err) {
		// The disk is full below the cap. The pages the file already has
		// are on disk, so for this commit they are the cap: the oldest
		// blocks make room, counted as full, instead of nothing being kept.
		b.limit = b.highWaterMark()
		err = b.writePending(newSeries, keep)
		b.limit = b.fileMax
	}
	if err == nil {
		b.collectSeries()
		return b.emptyJournalLocked()
	}
	pendingBytes := 0
	for _, v := range b.pending {
		pendingBytes += len(v)
	}
	for pendingBytes > maxPendingBytes {
		h, _, _ := decodeHeader(b.pending[0])
		pendingBytes -= len(b.pending[0])
		b.pending = b.pending[1:]
		b.countDrop(ReasonWriteError, h.samples)
	}
	return fmt.Errorf("buffer commit: %w", err)
}

// forgetBlocksLocked removes deleted blocks from memory; reason, if set,
// counts their samples as dropped.
func (b *Buffer) forgetBlocksLocked(gone []blockInfo, reason string) {
	if len(gone) == 0 {
		return
	}
	seqs := make(map[uint64]bool, len(gone))
	for _, bi := range gone {
		seqs[bi.seq] = true
	}
	b.blocks = slices.DeleteFunc(b.blocks, func(bi blockInfo) bool {
		if !seqs[bi.seq] {
			return false
		}
		delete(b.readAs, bi.seq)
		if reason != "" {
			b.dropped[reason] += uint64(bi.samples)
		}
		return true
	})
}

func (b *Buffer) countDrop(reason string, n int) {
	b.mu.Lock()
	b.dropped[reason] += uint64(n)
	b.mu.Unlock()
}

// Read returns committed blocks with seq >= from, oldest first: at least one
// block if there is any, and more while the total stays within maxSamples
// (nil, nil if there is none). The caller owns the Blocks (see Block).
// Blocks that fail to decode are deleted and counted as corrupt, not
// returned; a series the dictionary does not know is left out and counted
// as corrupt. The error is bbolt's, or that of deleting a damaged block, in
// which case blocks may come with it. A block Read returned and the cap
// evicts before the sender says it delivered it (Delivered, Delete) is
// counted full only when the sender gives it up: at its next Read, or at
// Close.
func (b *Buffer) Read(from uint64, maxSamples int) ([]Block, error) {
	b.mu.Lock()
	b.readGen++
	// What earlier Reads returned and the sender neither delivered nor
	// deleted, it has given up (it reads anew): if evicted meanwhile, lost.
	b.resolveEvictedLocked(func(seq uint64, rb readBlock) bool { return rb.gen < b.readGen }, true)
	b.mu.Unlock()
	for {
		out, last, err := b.read(from, maxSamples)
		if len(out) > 0 || last == 0 || err != nil {
			return out, err
		}
		from = last + 1 // all of them were damaged or gone: look further
	}
}

// read returns what Read does, and the last seq it looked at (0 if none).
func (b *Buffer) read(from uint64, maxSamples int) ([]Block, uint64, error) {
	// Chosen between commits (writeMu): a commit in progress has taken its
	// fence (makeRoom), and must not merge what this Read returns.
	b.writeMu.Lock()
	b.mu.Lock()
	var want []uint64
	total := 0
	for _, bi := range b.blocks {
		if bi.seq < from {
			continue
		}
		if len(want) > 0 && total+bi.samples > maxSamples {
			break
		}
		want = append(want, bi.seq)
		total += bi.samples
		// Read from now on: an eviction meanwhile waits for the sender's word.
		b.readAs[bi.seq] = readBlock{bi.blockHeader, b.readGen}
	}
	b.mu.Unlock()
	b.writeMu.Unlock()

	var out []Block
	var corrupt []uint64
	err := b.db.View(func(tx *bolt.Tx) error {
		bb := tx.Bucket(bucketBlocks)
		for _, seq := range want {
			v := getBlock(bb, seq)
			if v == nil {
				continue // evicted or acknowledged meanwhile
			}
			_, data, err := decodeBlock(v)
			if err != nil {
				b.badLog.Log(b.log, slog.LevelWarn, "dropping unreadable buffer block", "seq", seq, "err", err)
				corrupt = append(corrupt, seq)
				continue
			}
			out = append(out, b.resolve(seq, data))
		}
		return nil
	})
	b.mu.Lock()
	returned := make(map[uint64]bool, len(out))
	for _, blk := range out {
		returned[blk.Seq] = true
	}
	for _, seq := range want {
		if !returned[seq] { // evicted, acknowledged or damaged meanwhile: not the sender's
			delete(b.readAs, seq)
			b.resolveEvictedLocked(func(s uint64, _ readBlock) bool { return s == seq }, true)
		}
	}
	b.mu.Unlock()
	if err == nil && len(corrupt) > 0 {
		err = b.deleteBlocks(corrupt, ReasonCorrupt)
	}
	if len(want) == 0 {
		return out, 0, err
	}
	return out, want[len(want)-1], err
}

// ForEach calls fn with every committed block, oldest first, in one read
// transaction: a consistent view for tools that read the whole backlog.
// Opened ReadOnly, it ends with the samples of the journal that no commit
// holds (a process that died left them), as a block with the next Seq.
// The caller owns the Blocks (see Block). fn's error ends the walk and is
// returned. fn may call Append, Committed and LastSeq only: the other
// methods open transactions of their own, which from the goroutine holding
// a read transaction can deadlock bbolt (Close waits for it). While
// ForEach runs, pages that commits free cannot be reused. Blocks that fail
// to decode are skipped, not deleted, and counted as corrupt each time a
// ForEach passes them.
func (b *Buffer) ForEach(fn func(Block) error) error {
	err := b.db.View(func(tx *bolt.Tx) error {
		bb := tx.Bucket(bucketBlocks)
		if bb == nil {
			return nil
		}
		return bb.ForEachBucket(func(k []byte) error {
			seq := binary.BigEndian.Uint64(k)
			h, data, err := decodeBlock(getBlock(bb, seq))
			if err != nil {
				b.countDrop(ReasonCorrupt, h.samples)
				return nil
			}
			return fn(b.resolve(seq, data))
		})
	})
	if err != nil || !b.db.IsReadOnly() {
		return err
	}
	b.mu.Lock()
	entries := sortedByRef(slices.Clone(b.head))
	journaled := Block{Seq: b.nextSeq, Series: make([]Series, 0, len(entries))}
	for _, e := range entries {
		s := e.state.head
		journaled.Series = append(journaled.Series, Series{Ref: e.ref, Labels: e.lset, T: s.ts, V: s.vs})
	}
	b.mu.Unlock()
	if len(entries) == 0 {
		return nil
	}
	return fn(journaled)
}

// resolve turns series refs into label sets.
func (b *Buffer) resolve(seq uint64, data []seriesData) Block {
	b.mu.Lock()
	defer b.mu.Unlock()
	blk := Block{Seq: seq, Series: make([]Series, 0, len(data))}
	for _, d := range data {
		e := b.series.entryOf(d.ref)
		if e == nil {
			b.dropped[ReasonCorrupt] += uint64(len(d.ts))
			continue
		}
		blk.Series = append(blk.Series, Series{Ref: d.ref, Labels: e.lset, Meta: e.metaRef(), T: d.ts, V: d.vs})
	}
	return blk
}

// Ack deletes every block up to and including seq, in one transaction: the
// receiver has them. Blocks committed meanwhile have larger seqs and stay.
// Deleted blocks are not counted as dropped. On error nothing is deleted.
func (b *Buffer) Ack(seq uint64) error {
	b.mu.Lock()
	var seqs []uint64
	for _, bi := range b.blocks {
		if bi.seq > seq {
			break
		}
		seqs = append(seqs, bi.seq)
	}
	b.mu.Unlock()
	return b.deleteBlocks(seqs, "")
}

// Delivered tells the buffer that the receiver has every block up to and
// including seq, ahead of the Ack that deletes them (the sender acks in
// batches, to write less): a commit that evicts such a block to make room
// loses nothing, and does not count it as dropped; nor does one that
// evicted a block of the last Read while its request was on the way. Safe
// for concurrent use; it never waits for the disk.
func (b *Buffer) Delivered(seq uint64) {
	b.mu.Lock()
	b.delivered = max(b.delivered, seq)
	b.resolveEvictedLocked(func(s uint64, rb readBlock) bool { return s <= seq && rb.gen == b.readGen }, false)
	b.mu.Unlock()
}

// readBlock is a block as a Read returned it, and which Read (readGen).
type readBlock struct {
	blockHeader
	gen uint64
}

// resolveEvictedLocked settles the blocks evicted while the sender had them
// read that match: delivered, or (lost) counted full. The caller holds mu.
func (b *Buffer) resolveEvictedLocked(match func(seq uint64, rb readBlock) bool, lost bool) {
	for seq, rb := range b.evictedRead {
		if match(seq, rb) {
			if lost {
				b.dropped[ReasonFull] += uint64(rb.samples)
			}
			delete(b.evictedRead, seq)
		}
	}
}

// Delete deletes the given blocks, delivered out of order (the sender's
// fresh-first mode), in one transaction; blocks already gone are skipped.
// As Ack: not counted (blocks evicted since Read returned them included),
// nothing deleted on error. A block that changed since Read returned it is
// kept, not deleted (thinning merges no block Read returned, so only a
// merge racing the Read itself can do that): its samples the receiver has
// are sent again, the others are not lost.
func (b *Buffer) Delete(seqs []uint64) error {
	b.mu.Lock()
	keep := make([]uint64, 0, len(seqs))
	for _, seq := range seqs {
		delete(b.evictedRead, seq) // evicted while in flight: delivered
		b.deletedOOO[seq] = true   // and if a commit in progress evicts it
		i, found := slices.BinarySearchFunc(b.blocks, seq, func(bi blockInfo, s uint64) int { return cmp.Compare(bi.seq, s) })
		if read, ok := b.readAs[seq]; ok && found && b.blocks[i].blockHeader != read.blockHeader {
			continue // merged since it was read
		}
		keep = append(keep, seq)
	}
	b.mu.Unlock()
	return b.deleteBlocks(keep, "")
}

// SplitAt tells the buffer that the sender sends the blocks from seq on
// ahead of the older ones (fresh data first; 0: oldest first again).
// Thinning then never merges a block below seq with one at or above it:
// the merged block would carry backlog samples into the part sent first,
// after newer ones. The split lasts until the next SplitAt or Close. Safe
// for concurrent use; it never waits for the disk.
func (b *Buffer) SplitAt(seq uint64) {
	b.mu.Lock()
	b.split = seq
	b.mu.Unlock()
}

// LastSeq is the seq of the newest committed block, 0 if there is none
// yet; blocks committed later, while the buffer is open, have larger seqs.
// Open continues after the newest block on disk: after a restart with no
// block left, seqs start again at 1.
func (b *Buffer) LastSeq() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.nextSeq - 1
}

func (b *Buffer) deleteBlocks(seqs []uint64, reason string) error {
	if len(seqs) == 0 || b.db.IsReadOnly() {
		return nil
	}
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	b.limitGrowth(int64(commitOverheadPages) * pageSize)
	err := b.db.Update(func(tx *bolt.Tx) error {
		bb := tx.Bucket(bucketBlocks)
		for _, seq := range seqs {
			if err := deleteBlock(bb, seq); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("buffer delete: %w", err)
	}
	gone := make([]blockInfo, len(seqs))
	for i, seq := range seqs {
		gone[i].seq = seq
	}
	b.mu.Lock()
	b.forgetBlocksLocked(gone, reason)
	b.mu.Unlock()
	return nil
}

// Stats returns the buffer's current figures. After Close it still answers,
// from what was in memory at Close.
func (b *Buffer) Stats() Stats {
	var fileBytes, usedBytes, journalBytes int64
	if fi, err := os.Stat(b.path); err == nil {
		fileBytes = fi.Size()
	}
	if fi, err := os.Stat(b.path + JournalSuffix); err == nil {
		journalBytes = fi.Size()
	}
	_ = b.db.View(func(tx *bolt.Tx) error {
		usedBytes = tx.Size() - int64(b.db.Stats().FreeAlloc)
		return nil
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	st := Stats{
		Blocks:       len(b.blocks),
		HeadSamples:  b.headSamples,
		LiveSamples:  Block{Series: b.live}.Samples(),
		HeadOldestT:  b.headOldestLocked(),
		Series:       b.series.byRef.Len(),
		FileBytes:    fileBytes,
		UsedBytes:    usedBytes,
		SeriesBytes:  b.series.diskBytes,
		JournalBytes: journalBytes,
		MaxBytes:     b.maxSize,
		NeededBytes:  b.neededBytes,
		Dropped:      maps.Clone(b.dropped),

		FilesMovedAside: b.filesMovedAside,
		FilesDeleted:    b.filesDeleted,
		AsideBytes:      b.asideBytes,
	}
	if b.jf != nil {
		st.JournalSynced, st.JournalSyncedNewestT = b.jf.synced.n, b.jf.synced.newest
	}
	for i, bi := range b.blocks {
		st.Samples += bi.samples
		if i == 0 || bi.minT < st.OldestT {
			st.OldestT = bi.minT
		}
		st.NewestT = max(st.NewestT, bi.maxT)
	}
	if len(b.blocks) > 0 {
		st.FirstSeq = b.blocks[0].seq
	}
	return st
}

// Close commits the head (a read-only buffer drops it, uncounted), closes
// the file once open read transactions end, and releases its lock. The
// file is closed even if the commit fails; the error joins both.
func (b *Buffer) Close() error {
	var err error
	if !b.db.IsReadOnly() {
		err = b.Commit()
	}
	b.mu.Lock()
	b.resolveEvictedLocked(func(uint64, readBlock) bool { return true }, true) // never delivered
	b.mu.Unlock()
	if b.jf != nil {
		err = errors.Join(err, b.jf.f.Close())
	}
	return errors.Join(err, b.db.Close())
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// Each block is a sub-bucket of "blocks" holding the block under one key.
// When bbolt adds a key to a leaf node it rewrites the whole node, values
// included: block values side by side in one leaf would be written again
// with every commit. A sub-bucket's pages are its own, so a commit writes
// the new block, one small leaf of bucket headers, and the meta page.
var keyBlockData = []byte("d")

func putBlock(bb *bolt.Bucket, seq uint64, v []byte) error {
	sub, err := bb.CreateBucket(seqKey(seq))
	if err != nil {
		return err
	}
	return sub.Put(keyBlockData, v)
}

// getBlock returns a block's bytes, nil if there is no such block.
func getBlock(bb *bolt.Bucket, seq uint64) []byte {
	if sub := bb.Bucket(seqKey(seq)); sub != nil {
		return sub.Get(keyBlockData)
	}
	return nil
}

// footprint estimates the bytes a block of n bytes takes in the file: a
// sub-bucket under a quarter page is stored inline in its parent's leaf;
// a larger one takes whole pages of its own.
func footprint(n int) int64 {
	const bucketHeader, pageHeader = 16, 16
	inline := int64(bucketHeader + pageHeader + leafElementSize + len(keyBlockData) + n)
	if inline < pageSize/4 {
		return inline + 8 + leafElementSize // plus its key and element in "blocks"
	}
	return (inline+pageSize-1)/pageSize*pageSize + 8 + leafElementSize
}

// leafElementSize is bbolt's per-key overhead in a leaf page.
const leafElementSize = 16

// maxBlockBytes is the largest block that fits in one page as the only
// value of its sub-bucket: page header, leaf element and key take the rest.
var maxBlockBytes = int(pageSize) - 16 - leafElementSize - len(keyBlockData)

// pageSize is bbolt's page size for new files: the OS page size, 4 KiB on
// every target ferry has.
var pageSize = int64(os.Getpagesize())

func deleteBlock(bb *bolt.Bucket, seq uint64) error {
	err := bb.DeleteBucket(seqKey(seq))
	if errors.Is(err, bolterrors.ErrBucketNotFound) {
		return nil // evicted or acknowledged meanwhile
	}
	return err
}
