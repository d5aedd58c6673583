package buffer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A damaged file costs what the damage reached, not the backlog: Open
// copies every block and series entry that still decodes into a fresh file
// (salvageSuffix beside the buffer's), reading the damaged one with the
// walker of verify.go, never with bbolt; then it moves the damaged file
// aside (corruptSuffix and the UTC time) and the fresh one in its place.
// Blocks that fail to decode are counted as dropped, corrupt, where their
// header still tells how many samples they held; blocks on pages that can
// no longer be read are lost uncounted (their number of samples is on
// those pages), and logged.
//
// At most one moved-aside file is kept, the newest, and only while it fits
// in the cap beside the buffer: its bytes come off the file's share of the
// cap while it is there, and it is deleted when a commit would need that
// room (or at Open, when it does not fit). It is there to be looked at.

const (
	salvageSuffix = ".salvage"
	corruptSuffix = ".corrupt-"
)

// salvageBatch bounds the bytes one transaction of the salvage writes.
const salvageBatch = 1 << 20

// salvageResult counts what a salvage kept and lost.
type salvageResult struct {
	blocks, samples, series int
	corrupt                 uint64 // samples of blocks that no longer decode
	lostBlocks              int    // blocks that no longer decode, counted or not
	skipped                 int    // damaged pages and entries left out
	damage                  error  // the first damage found
}

// replaceDamaged puts a fresh file in place of the damaged one, holding
// what salvage finds in it unless salvaging is out (a salvage made after
// crashed opens crashed again, or salvages themselves crashed), and moves
// the damaged file aside. cause is why the file is replaced.
func (b *Buffer) replaceDamaged(cause error, salvage bool) error {
	markerPath := b.path + openingMarkerSuffix
	m := readMarker(markerPath)
	var crashed *errCrashedOpens
	afterCrashes := errors.As(cause, &crashed)
	switch {
	case afterCrashes && m.salvaged:
		salvage = false // the salvage made after crashes crashes too
	case m.salvages >= maxCrashedSalvages:
		salvage = false
	}
	tmp := b.path + salvageSuffix
	_ = os.Remove(tmp)
	var res salvageResult
	var serr error
	if salvage {
		m.salvages++
		if err := m.write(markerPath); err != nil {
			return err
		}
		res, serr = b.salvage(tmp)
		if serr != nil {
			_ = os.Remove(tmp)
			b.log.Error("buffer file damaged and nothing could be salvaged from it", "file", b.path, "err", serr)
			salvage = false
		}
	}

	aside := b.path + corruptSuffix + time.Now().UTC().Format("20060102T150405Z")
	if _, err := os.Stat(aside); err == nil && os.Remove(aside) == nil {
		b.mu.Lock()
		b.filesDeleted++ // one from this same second: at most one is kept
		b.mu.Unlock()
	}
	if err := os.Rename(b.path, aside); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("buffer file %s is corrupt (%v) and cannot be moved aside: %w", b.path, cause, err)
	}
	if salvage {
		if err := os.Rename(tmp, b.path); err != nil {
			_ = os.Remove(tmp)
			salvage = false
		}
	}
	syncDir(filepath.Dir(b.path))
	b.filesMovedAside++
	if res.corrupt > 0 {
		b.countDrop(ReasonCorrupt, int(res.corrupt))
	}
	if salvage && afterCrashes {
		if err := (marker{salvaged: true}).write(markerPath); err != nil {
			return err
		}
	} else {
		_ = os.Remove(markerPath)
	}
	if salvage {
		b.log.Error("buffer file damaged; moved it aside and kept what still decodes",
			"file", b.path, "moved_to", aside, "err", cause,
			"blocks_kept", res.blocks, "samples_kept", res.samples, "series_kept", res.series,
			"blocks_lost", res.lostBlocks, "samples_counted_corrupt", res.corrupt,
			"damaged_pages_and_entries", res.skipped, "first_damage", res.damage)
	} else {
		b.log.Error("buffer file unreadable; moving it aside and starting empty", "file", b.path, "moved_to", aside, "err", cause)
	}
	return nil
}

// finishSalvage completes a replacement that a crash interrupted between
// moving the damaged file aside and moving the salvaged one in, and removes
// a salvage that never finished.
func (b *Buffer) finishSalvage() {
	tmp := b.path + salvageSuffix
	if _, err := os.Stat(tmp); err != nil {
		return
	}
	if _, err := os.Stat(b.path); errors.Is(err, os.ErrNotExist) {
		markerPath := b.path + openingMarkerSuffix
		m := readMarker(markerPath)
		if os.Rename(tmp, b.path) == nil {
			syncDir(filepath.Dir(b.path))
			_ = (marker{salvaged: m.salvaged || m.opens >= maxCrashedOpens}).write(markerPath)
			return
		}
	}
	_ = os.Remove(tmp)
}

// salvage copies from the damaged file every block and series that still
// decodes into a new bbolt file at dst. It never opens the damaged file
// with bbolt. An error means nothing was salvaged.
func (b *Buffer) salvage(dst string) (res salvageResult, err error) {
	defer func() {
		if r := recover(); r != nil { // a bug of ours: start empty rather than crash at every start
			err = fmt.Errorf("salvage panicked: %v", r)
		}
	}()
	f, err := os.Open(b.path)
	if err != nil {
		return res, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return res, err
	}
	meta, err := readMeta(f, fi.Size())
	if err != nil {
		return res, err
	}
	// A truncated file: what is left of it.
	meta.pgid = min(meta.pgid, uint64(fi.Size())/uint64(meta.pageSize))

	out, err := bolt.Open(dst, 0o600, &bolt.Options{NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return res, err
	}
	out.AllocSize = 0 // grow by what is written: the cap is near
	s := &salvager{out: out, res: &res}
	if err := out.Update(initBuckets); err != nil {
		_ = out.Close()
		return res, err
	}

	w := newWalker(f, meta)
	w.salvage = true
	w.visit = s.visit
	w.walk(meta)
	s.endBlock()
	s.flush()
	res.skipped, res.damage = w.skipped, w.damage
	if s.err == nil && s.format != nil && !bytes.Equal(s.format, []byte(formatVersion)) {
		s.err = fmt.Errorf("buffer format version %q, this ferry reads %q", s.format, formatVersion)
	}
	if err := errors.Join(s.err, out.Close()); err != nil {
		return res, err
	}
	return res, nil
}

// salvager writes what the walk finds, in transactions of salvageBatch.
type salvager struct {
	out    *bolt.DB
	res    *salvageResult
	batch  []func(tx *bolt.Tx) error
	bytes  int
	err    error
	format []byte

	seq     uint64 // the block being read, while inBlock
	inBlock bool
	data    []byte
	level   []byte
}

func (s *salvager) visit(path [][]byte, k, v []byte) {
	switch {
	case len(path) == 2 && bytes.Equal(path[0], bucketBlocks) && len(path[1]) == 8:
		seq := binary.BigEndian.Uint64(path[1])
		if !s.inBlock || seq != s.seq {
			s.endBlock()
			s.seq, s.inBlock = seq, true
		}
		switch {
		case bytes.Equal(k, keyBlockData):
			s.data = v
		case bytes.Equal(k, keyThinLevel) && len(v) == 1:
			s.level = v
		}
	case len(path) == 1 && bytes.Equal(path[0], bucketSeries):
		if len(k) != 4 || binary.BigEndian.Uint32(k) == 0 { // ref 0 is none
			s.res.skipped++
			return
		}
		if _, _, err := decodeSeries(v); err != nil {
			s.res.skipped++
			return
		}
		s.res.series++
		s.add(len(v), func(tx *bolt.Tx) error {
			sb := tx.Bucket(bucketSeries)
			sb.FillPercent = 1
			return sb.Put(k, v)
		})
	case len(path) == 1 && bytes.Equal(path[0], bucketMeta) && bytes.Equal(k, keyVersion):
		s.format = v
	}
}

// endBlock writes the block read last, if it decodes.
func (s *salvager) endBlock() {
	if !s.inBlock {
		return
	}
	seq, data, level := s.seq, s.data, s.level
	s.inBlock, s.data, s.level = false, nil, nil
	h, _, err := decodeBlock(data)
	if err != nil {
		s.res.lostBlocks++
		if data != nil {
			s.res.corrupt += uint64(h.samples)
		}
		return
	}
	s.res.blocks++
	s.res.samples += h.samples
	s.add(len(data), func(tx *bolt.Tx) error {
		bb := tx.Bucket(bucketBlocks)
		bb.FillPercent = 1
		if err := putBlock(bb, seq, data); err != nil {
			if errors.Is(err, bolt.ErrBucketExists) {
				return nil // a block reached twice through damage: keep the first
			}
			return err
		}
		if level != nil {
			return bb.Bucket(seqKey(seq)).Put(keyThinLevel, level)
		}
		return nil
	})
}

func (s *salvager) add(n int, op func(tx *bolt.Tx) error) {
	s.batch = append(s.batch, op)
	if s.bytes += n; s.bytes >= salvageBatch {
		s.flush()
	}
}

func (s *salvager) flush() {
	batch := s.batch
	s.batch, s.bytes = nil, 0
	if len(batch) == 0 || s.err != nil {
		return
	}
	s.err = s.out.Update(func(tx *bolt.Tx) error {
		for _, op := range batch {
			if err := op(tx); err != nil {
				return err
			}
		}
		return nil
	})
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// settleAside keeps at most one moved-aside file, the newest, and that one
// only if it fits in the file's share of the cap beside the file as it is
// now; its bytes then come off that share (fileMax and limit). The others
// are deleted and counted. It runs at Open, before the journal is replayed.
func (b *Buffer) settleAside() {
	dir, base := filepath.Split(b.path)
	entries, _ := os.ReadDir(filepath.Clean(dir))
	var aside []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), base+corruptSuffix) && e.Type().IsRegular() {
			aside = append(aside, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(aside) // by the UTC time in the name: the newest last
	var fileSize int64
	if fi, err := os.Stat(b.path); err == nil {
		fileSize = fi.Size()
	}
	share := b.maxSize - journalShare(b.maxSize)
	var kept string
	var keptBytes int64
	deleted := 0
	for i, p := range slices.Backward(aside) {
		if i == len(aside)-1 {
			if fi, err := os.Stat(p); err == nil && fileSize+fi.Size() <= share {
				kept, keptBytes = p, fi.Size()
				continue
			}
		}
		if err := os.Remove(p); err == nil || errors.Is(err, os.ErrNotExist) {
			deleted++
		} else {
			// It stays, and its bytes are the cap's: keep the newest
			// that cannot be deleted in the account.
			b.log.Warn("buffer: cannot delete a moved-aside damaged file", "file", p, "err", err)
			if fi, err := os.Stat(p); err == nil && kept == "" {
				kept, keptBytes = p, fi.Size()
			}
		}
	}
	b.fileMax, b.limit = share-keptBytes, share-keptBytes
	b.mu.Lock()
	b.aside, b.asideBytes = kept, keptBytes
	b.filesDeleted += deleted
	b.mu.Unlock()
	if deleted > 0 || kept != "" {
		b.log.Info("buffer: moved-aside damaged files", "kept", kept, "kept_bytes", keptBytes, "deleted", deleted)
	}
}

// releaseAside deletes the moved-aside file, and gives its bytes back to
// the buffer, when the room left is less than want. Called with writeMu
// held, before a commit evicts anything.
func (b *Buffer) releaseAside(want int64) {
	b.mu.Lock()
	aside, n := b.aside, b.asideBytes
	b.mu.Unlock()
	if aside == "" || b.room() >= want {
		return
	}
	if err := os.Remove(aside); err != nil && !errors.Is(err, os.ErrNotExist) {
		return // it keeps its share of the cap; settleAside logged why
	}
	if b.limit == b.fileMax {
		b.limit += n
	}
	b.fileMax += n
	b.mu.Lock()
	b.aside, b.asideBytes = "", 0
	b.filesDeleted++
	b.mu.Unlock()
	b.log.Info("buffer: deleted the moved-aside damaged file to make room", "file", aside, "bytes", n)
}
