// Package buffer is ferry's on-disk ring buffer: samples appended by the
// agent are committed as compressed blocks into a bbolt file that is bounded
// in size, drained oldest-first by the sender, and kept across restarts.
// FORMAT.md beside this file documents what is on disk.
package buffer

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	bolt "go.etcd.io/bbolt"
)

// FileName is the buffer's file inside its directory.
const FileName = "ferry.db"

// Reasons for dropped samples, the values of the self-metric's reason label.
const (
	ReasonFull       = "full"         // evicted to make room for newer data
	ReasonCorrupt    = "corrupt"      // a stored block failed its checksum
	ReasonOutOfOrder = "out_of_order" // not newer than the series' last sample
	ReasonWriteError = "write_error"  // the disk refused a block for too long
)

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
	Dir      string
	MaxSize  int64 // bytes the file may take
	ReadOnly bool  // for inspection while the agent runs elsewhere
	Logger   *slog.Logger
}

// Series is the samples of one series in a block, oldest first.
type Series struct {
	Ref    uint32 // the same label set has the same Ref while the buffer is open
	Labels labels.Labels
	T      []int64
	V      []float64
}

// Block is one committed block, as the sender reads it.
type Block struct {
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

// Stats describe the buffer at one moment.
type Stats struct {
	Blocks      int
	Samples     int               // committed, waiting to be sent
	HeadSamples int               // appended, not yet committed
	Series      int               // known label sets
	FileBytes   int64             // size of the file on disk
	MaxBytes    int64             // the configured cap
	OldestT     int64             // ms; 0 when empty
	NewestT     int64             // ms; 0 when empty
	FirstSeq    uint64            // the oldest block waiting; 0 when empty
	Dropped     map[string]uint64 // samples, by reason

	// FilesMovedAside counts unreadable files replaced by a fresh buffer.
	FilesMovedAside int
}

type blockInfo struct {
	seq  uint64
	size int64
	blockHeader
}

// Buffer is safe for concurrent use: the agent appends and commits while the
// sender reads and acknowledges.
type Buffer struct {
	log     *slog.Logger
	db      *bolt.DB
	path    string
	maxSize int64
	budget  int64 // bytes of stored values the cap leaves room for
	notify  chan struct{}

	writeMu sync.Mutex // serialises the transactions that change the file
	pending [][]byte   // encoded blocks the disk refused, retried first

	mu          sync.Mutex // guards what follows
	series      *seriesIndex
	head        map[uint32]*seriesData
	headSamples int
	blocks      []blockInfo // committed, ascending seq
	stored      int64       // bytes of block and series values
	nextSeq     uint64
	dropped     map[string]uint64

	filesMovedAside int
}

// Open opens or creates the buffer in opts.Dir. A file that bbolt or the
// block decoder cannot read is moved aside with a timestamp, and a fresh
// buffer starts: a corrupt file must never keep ferry from running.
func Open(opts Options) (*Buffer, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Buffer{
		log:     opts.Logger,
		path:    filepath.Join(opts.Dir, FileName),
		maxSize: opts.MaxSize,
		budget:  storageBudget(opts.MaxSize),
		notify:  make(chan struct{}, 1),
		dropped: map[string]uint64{},
	}
	if !opts.ReadOnly {
		if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
			return nil, fmt.Errorf("buffer directory: %w", err)
		}
	}
	if opts.ReadOnly {
		return b, b.openAndLoad(true)
	}
	err := b.guardedOpen()
	if err == nil || !isCorruption(err) {
		_ = os.Remove(b.path + openingMarkerSuffix)
		return b, err
	}
	aside := fmt.Sprintf("%s.corrupt-%s", b.path, time.Now().UTC().Format("20060102T150405Z"))
	b.log.Error("buffer file unreadable; moving it aside and starting empty", "file", b.path, "moved_to", aside, "err", err)
	if rerr := os.Rename(b.path, aside); rerr != nil {
		return nil, fmt.Errorf("buffer file %s is corrupt (%v) and cannot be moved aside: %w", b.path, err, rerr)
	}
	b.filesMovedAside++
	_ = os.Remove(b.path + openingMarkerSuffix)
	return b, b.guardedOpen()
}

// storageBudget is how many bytes of values may be stored under a file cap.
// bbolt needs the rest: two meta pages, branch pages, half-filled leaves and
// free pages that a later transaction reuses.
func storageBudget(maxSize int64) int64 {
	return maxSize * 5 / 8
}

func isCorruption(err error) bool {
	var pathErr *fs.PathError
	return !errors.Is(err, bolt.ErrTimeout) && !errors.As(err, &pathErr)
}

func (b *Buffer) openAndLoad(readOnly bool) (err error) {
	// bbolt panics on some damaged pages instead of returning an error, and
	// a page beyond the end of the file faults; make both errors here.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("bbolt panicked reading %s: %v", b.path, r)
			if b.db != nil {
				_ = b.db.Close()
				b.db = nil
			}
		}
	}()
	b.series = newSeriesIndex()
	b.head = map[uint32]*seriesData{}
	b.blocks, b.stored, b.nextSeq = nil, 0, 1

	db, err := bolt.Open(b.path, 0o600, &bolt.Options{
		Timeout:        time.Second,
		ReadOnly:       readOnly,
		NoFreelistSync: true, // fewer pages written per commit; rebuilt at open
		FreelistType:   bolt.FreelistMapType,
	})
	if errors.Is(err, bolt.ErrTimeout) {
		return fmt.Errorf("buffer %s is in use by another ferry process: %w", b.path, err)
	}
	if err != nil {
		return err
	}
	b.db = db
	// Grow the file in small steps: bbolt's default of 16 MiB would break a
	// small cap at once.
	db.AllocSize = int(min(max(b.maxSize/32, 32<<10), 4<<20))
	if !readOnly {
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
func (b *Buffer) load(tx *bolt.Tx) error {
	series, blocks := tx.Bucket(bucketSeries), tx.Bucket(bucketBlocks)
	if series == nil || blocks == nil {
		return nil // a read-only open of a file the agent never initialised
	}
	err := series.ForEach(func(k, v []byte) error {
		if len(k) != 4 {
			return fmt.Errorf("%w: series key of %d bytes", errCorrupt, len(k))
		}
		lset, err := decodeLabels(v)
		if err != nil {
			return err
		}
		b.series.add(binary.BigEndian.Uint32(k), lset)
		b.stored += int64(len(v))
		return nil
	})
	if err != nil {
		return err
	}
	return blocks.ForEach(func(k, v []byte) error {
		if len(k) != 8 {
			return fmt.Errorf("%w: block key of %d bytes", errCorrupt, len(k))
		}
		seq := binary.BigEndian.Uint64(k)
		b.nextSeq = seq + 1
		h, _, err := decodeHeader(v)
		if err != nil {
			// One bad block costs its samples, not the buffer; the sender
			// deletes it when it reaches it.
			b.log.Warn("buffer block unreadable", "seq", seq, "err", err)
		}
		b.blocks = append(b.blocks, blockInfo{seq: seq, size: int64(len(v)), blockHeader: h})
		b.stored += int64(len(v))
		return nil
	})
}

// Append adds one sample to the head, the part of the buffer that lives in
// memory until the next Commit. It never waits for the disk.
func (b *Buffer) Append(lset labels.Labels, t int64, v float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ref := b.series.ref(lset)
	s := b.head[ref]
	if s == nil {
		s = &seriesData{ref: ref}
		b.head[ref] = s
	} else if t <= s.ts[len(s.ts)-1] {
		b.dropped[ReasonOutOfOrder]++
		return
	}
	s.ts = append(s.ts, t)
	s.vs = append(s.vs, v)
	b.headSamples++
}

// Committed is signalled after each commit that stored a block.
func (b *Buffer) Committed() <-chan struct{} { return b.notify }

// maxPending bounds the blocks kept in memory while the disk refuses writes
// (full or read-only); beyond it the oldest are dropped with a count.
const maxPending = 64

// Commit writes the head as one block and makes it durable (bbolt fsyncs the
// file before Commit returns). When the cap is reached, the oldest blocks are
// evicted in the same transaction. If the disk fails, the block is kept in
// memory and retried at the next Commit.
func (b *Buffer) Commit() error {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()

	b.mu.Lock()
	head := slices.SortedFunc(maps.Values(b.head), func(x, y *seriesData) int { return cmp.Compare(x.ref, y.ref) })
	b.head, b.headSamples = map[uint32]*seriesData{}, 0
	newSeries := make(map[uint32][]byte, len(b.series.unsaved))
	for _, r := range b.series.unsaved {
		newSeries[r] = encodeLabels(b.series.byRef[r])
	}
	b.mu.Unlock()

	if len(head) > 0 {
		blk := make([]seriesData, len(head))
		for i, s := range head {
			blk[i] = *s
		}
		b.pending = append(b.pending, encodeBlock(blk))
	}
	if len(b.pending) == 0 && len(newSeries) == 0 {
		return nil
	}
	if err := b.writePending(newSeries); err != nil {
		for len(b.pending) > maxPending {
			h, _, _ := decodeHeader(b.pending[0])
			b.pending = b.pending[1:]
			b.countDrop(ReasonWriteError, h.samples)
		}
		return fmt.Errorf("buffer commit: %w", err)
	}
	return nil
}

func (b *Buffer) writePending(newSeries map[uint32][]byte) error {
	var seriesBytes int64
	for _, v := range newSeries {
		seriesBytes += int64(len(v))
	}
	var blockBytes int64
	for _, v := range b.pending {
		blockBytes += int64(len(v))
	}

	// Choose what to evict so the stored values fit the budget.
	b.mu.Lock()
	need := b.stored + seriesBytes + blockBytes - b.budget
	var evict []blockInfo
	for _, bi := range b.blocks {
		if need <= 0 {
			break
		}
		evict = append(evict, bi)
		need -= bi.size
	}
	seq := b.nextSeq
	b.mu.Unlock()

	var infos []blockInfo
	err := b.db.Update(func(tx *bolt.Tx) error {
		sb, bb := tx.Bucket(bucketSeries), tx.Bucket(bucketBlocks)
		for r, v := range newSeries {
			if err := sb.Put(refKey(r), v); err != nil {
				return err
			}
		}
		for _, bi := range evict {
			if err := bb.Delete(seqKey(bi.seq)); err != nil {
				return err
			}
		}
		infos = infos[:0]
		for i, v := range b.pending {
			s := seq + uint64(i)
			if err := bb.Put(seqKey(s), v); err != nil {
				return err
			}
			h, _, _ := decodeHeader(v)
			infos = append(infos, blockInfo{seq: s, size: int64(len(v)), blockHeader: h})
		}
		return nil
	})
	if err != nil {
		return err
	}
	b.pending = nil

	b.mu.Lock()
	b.series.unsaved = slices.DeleteFunc(b.series.unsaved, func(r uint32) bool { return newSeries[r] != nil })
	b.stored += seriesBytes + blockBytes
	b.removeBlocksLocked(len(evict), ReasonFull)
	b.blocks = append(b.blocks, infos...)
	b.nextSeq = seq + uint64(len(infos))
	b.mu.Unlock()

	if len(evict) > 0 {
		b.log.Warn("buffer full: evicted oldest blocks", "blocks", len(evict), "cap_bytes", b.maxSize)
	}
	if len(infos) > 0 {
		select {
		case b.notify <- struct{}{}:
		default:
		}
	}
	return nil
}

// removeBlocksLocked forgets the n oldest blocks; reason, if set, counts their
// samples as dropped.
func (b *Buffer) removeBlocksLocked(n int, reason string) {
	for _, bi := range b.blocks[:n] {
		b.stored -= bi.size
		if reason != "" {
			b.dropped[reason] += uint64(bi.samples)
		}
	}
	b.blocks = slices.Delete(b.blocks, 0, n)
}

func (b *Buffer) countDrop(reason string, n int) {
	b.mu.Lock()
	b.dropped[reason] += uint64(n)
	b.mu.Unlock()
}

// Read returns committed blocks with seq >= from, oldest first: at least one
// block if there is any, and more while the total stays within maxSamples.
// Blocks that fail to decode are deleted and counted, not returned.
func (b *Buffer) Read(from uint64, maxSamples int) ([]Block, error) {
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
	}
	b.mu.Unlock()

	var out []Block
	var corrupt []uint64
	err := b.db.View(func(tx *bolt.Tx) error {
		bb := tx.Bucket(bucketBlocks)
		for _, seq := range want {
			v := bb.Get(seqKey(seq))
			if v == nil {
				continue // evicted or acknowledged meanwhile
			}
			_, data, err := decodeBlock(v)
			if err != nil {
				b.log.Warn("dropping unreadable buffer block", "seq", seq, "err", err)
				corrupt = append(corrupt, seq)
				continue
			}
			out = append(out, b.resolve(seq, data))
		}
		return nil
	})
	if err == nil && len(corrupt) > 0 {
		err = b.deleteBlocks(corrupt, ReasonCorrupt)
	}
	return out, err
}

// resolve turns series refs into label sets.
func (b *Buffer) resolve(seq uint64, data []seriesData) Block {
	b.mu.Lock()
	defer b.mu.Unlock()
	blk := Block{Seq: seq, Series: make([]Series, 0, len(data))}
	for _, d := range data {
		lset, ok := b.series.byRef[d.ref]
		if !ok {
			b.dropped[ReasonCorrupt] += uint64(len(d.ts))
			continue
		}
		blk.Series = append(blk.Series, Series{Ref: d.ref, Labels: lset, T: d.ts, V: d.vs})
	}
	return blk
}

// Ack deletes every block up to and including seq: the receiver has them.
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

func (b *Buffer) deleteBlocks(seqs []uint64, reason string) error {
	if len(seqs) == 0 {
		return nil
	}
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	err := b.db.Update(func(tx *bolt.Tx) error {
		bb := tx.Bucket(bucketBlocks)
		for _, seq := range seqs {
			if err := bb.Delete(seqKey(seq)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("buffer delete: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	gone := map[uint64]bool{}
	for _, s := range seqs {
		gone[s] = true
	}
	b.blocks = slices.DeleteFunc(b.blocks, func(bi blockInfo) bool {
		if !gone[bi.seq] {
			return false
		}
		b.stored -= bi.size
		if reason != "" {
			b.dropped[reason] += uint64(bi.samples)
		}
		return true
	})
	return nil
}

// Stats returns the buffer's current figures.
func (b *Buffer) Stats() Stats {
	var fileBytes int64
	if fi, err := os.Stat(b.path); err == nil {
		fileBytes = fi.Size()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	st := Stats{
		Blocks:      len(b.blocks),
		HeadSamples: b.headSamples,
		Series:      len(b.series.byRef),
		FileBytes:   fileBytes,
		MaxBytes:    b.maxSize,
		Dropped:     maps.Clone(b.dropped),

		FilesMovedAside: b.filesMovedAside,
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

// Close commits the head and closes the file.
func (b *Buffer) Close() error {
	var err error
	if !b.db.IsReadOnly() {
		err = b.Commit()
	}
	return errors.Join(err, b.db.Close())
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }
