package buffer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// bbolt trusts its file: a truncated file makes it fault on the mmap, and a
// damaged page can panic in a goroutine that no recover reaches (the one
// that rebuilds the free list when a writer opens the file). Three guards
// keep a bad file from crash-looping ferry:
//
//   - checkFile reads bbolt's two meta pages before bbolt does, and refuses a
//     file shorter than the newest valid meta says it is;
//   - validate opens the file read-only, which builds no free list, and
//     reads every page in use in this goroutine, where a panic or a fault
//     becomes an error;
//   - an "opening" marker exists only while the file is being opened and
//     loaded, and counts the attempts. Finding it at start means earlier
//     opens crashed; after maxCrashedOpens of them the file is treated as
//     corrupt. One crash is not enough: a device may lose power, or run out
//     of memory, while opening a good file.

const openingMarkerSuffix = ".opening"

const maxCrashedOpens = 2

// bbolt's meta page, after the 16-byte page header (bbolt's internal/common).
const (
	boltMagic      = 0xED0CDAED
	pageHeaderSize = 16
	metaSize       = 56 // magic..txid, before the checksum
)

// checkFile returns an error if the file at path is not a plausible,
// complete bbolt file. A missing or empty file is fine: bbolt creates it.
func checkFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return err
	}

	var best struct {
		txid, pgid uint64
		pageSize   uint32
		ok         bool
	}
	buf := make([]byte, pageHeaderSize+metaSize+8)
	pageSize := int64(os.Getpagesize())
	for i := range int64(2) {
		// Meta 0 is at offset 0; meta 1 one page later. The first meta
		// tells the page size, which may differ from this machine's.
		if _, err := f.ReadAt(buf, i*pageSize); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		m := buf[pageHeaderSize:]
		if binary.LittleEndian.Uint32(m[0:]) != boltMagic {
			continue
		}
		h := fnv.New64a()
		h.Write(m[:metaSize])
		if h.Sum64() != binary.LittleEndian.Uint64(m[metaSize:]) {
			continue
		}
		ps := binary.LittleEndian.Uint32(m[8:])
		if i == 0 && ps >= 1024 {
			pageSize = int64(ps)
		}
		pgid, txid := binary.LittleEndian.Uint64(m[40:]), binary.LittleEndian.Uint64(m[48:])
		if !best.ok || txid > best.txid {
			best.txid, best.pgid, best.pageSize, best.ok = txid, pgid, ps, true
		}
	}
	if !best.ok {
		return fmt.Errorf("%w: no valid bbolt meta page", errCorrupt)
	}
	if want := int64(best.pgid) * int64(best.pageSize); fi.Size() < want {
		return fmt.Errorf("%w: file truncated to %d bytes, its meta page says %d", errCorrupt, fi.Size(), want)
	}
	return nil
}

// guardedOpen opens and loads the file between the marker's creation and
// removal, after checkFile has passed.
func (b *Buffer) guardedOpen() error {
	marker := b.path + openingMarkerSuffix
	crashed := 0
	if data, err := os.ReadFile(marker); err == nil {
		crashed = 1 + bytes.Count(data, []byte("x"))
	}
	if crashed >= maxCrashedOpens {
		return fmt.Errorf("%w: the last %d starts crashed while opening it", errCorrupt, crashed)
	}
	if err := checkFile(b.path); err != nil {
		return err
	}
	// One "x" per crashed attempt before this one.
	if err := os.WriteFile(marker, bytes.Repeat([]byte("x"), crashed), 0o600); err != nil {
		return err
	}
	if err := b.validate(); err != nil {
		return err
	}
	if err := b.openAndLoad(false); err != nil {
		return err // the marker stays only if the file is the problem; see Open
	}
	return os.Remove(marker)
}

// validate reads the whole file read-only, recovering from bbolt's panics.
func (b *Buffer) validate() error {
	if fi, err := os.Stat(b.path); err != nil || fi.Size() == 0 {
		return nil // bbolt creates it
	}
	if err := b.openAndLoad(true); err != nil {
		return err
	}
	err := b.db.Close()
	b.db = nil
	return err
}
