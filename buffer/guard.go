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
// that rebuilds the free list when a writer opens the file: verify.go).
// Four guards keep a bad file from crashing ferry:
//
//   - checkFile reads bbolt's two meta pages before bbolt does, and refuses a
//     file shorter than the newest valid meta says it is;
//   - validate opens the file read-only, which builds no free list, and
//     walks every page in use with verifyFile, our own reader, before bbolt
//     reads any of them; then it reads every bucket and key through bbolt,
//     in this goroutine, where a panic or a fault becomes an error;
//   - a damaged file is replaced at Open by a fresh one holding every block
//     and series that still decodes (salvage.go), so that damage costs what
//     it damaged, not the backlog;
//   - an "opening" marker exists only while the file is being opened,
//     loaded or salvaged, and counts the attempts that never finished.
//     Finding it at start means earlier attempts crashed; after
//     maxCrashedOpens of them the file is salvaged as if damaged, and a
//     salvage made so that crashes twice more, or maxCrashedSalvages
//     salvages that crashed, start an empty file. One crash is not enough:
//     a device may lose power, or run out of memory, while opening a good
//     file.

const openingMarkerSuffix = ".opening"

const (
	maxCrashedOpens    = 2
	maxCrashedSalvages = 2
)

// bbolt's meta page, after the 16-byte page header (bbolt's internal/common).
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16
	metaSize       = 56 // magic..txid, before the checksum
)

// boltMeta is what the walk needs of bbolt's meta page.
type boltMeta struct {
	pageSize                   uint32
	root, freelist, pgid, txid uint64
}

// metaAt reads a meta page at off and reports whether it is valid as
// bbolt's Meta.Validate sees it. bbolt writes it in the machine's byte order.
func metaAt(f io.ReaderAt, off int64) (boltMeta, bool) {
	buf := make([]byte, pageHeaderSize+metaSize+8)
	if n, _ := f.ReadAt(buf, off); n < len(buf) {
		return boltMeta{}, false
	}
	m := buf[pageHeaderSize:]
	if binary.NativeEndian.Uint32(m[0:]) != boltMagic || binary.NativeEndian.Uint32(m[4:]) != boltVersion {
		return boltMeta{}, false
	}
	h := fnv.New64a()
	h.Write(m[:metaSize])
	if h.Sum64() != binary.NativeEndian.Uint64(m[metaSize:]) {
		return boltMeta{}, false
	}
	return boltMeta{
		pageSize: binary.NativeEndian.Uint32(m[8:]),
		root:     binary.NativeEndian.Uint64(m[16:]),
		freelist: binary.NativeEndian.Uint64(m[32:]),
		pgid:     binary.NativeEndian.Uint64(m[40:]),
		txid:     binary.NativeEndian.Uint64(m[48:]),
	}, true
}

// readMeta returns the meta page bbolt would use, with the page size bbolt
// would read the file with (the first meta's; else the second's, searched
// for at every size from 1 KiB; else this system's), and the meta with the
// higher transaction id of the two valid ones at that page size.
func readMeta(f io.ReaderAt, size int64) (boltMeta, error) {
	pageSize := int64(os.Getpagesize())
	if m, ok := metaAt(f, 0); ok {
		pageSize = int64(m.pageSize)
	} else {
		for i := range 15 {
			pos := int64(1024) << i
			if pos >= size-1024 {
				break
			}
			if m, ok := metaAt(f, pos); ok {
				pageSize = int64(m.pageSize)
				break
			}
		}
	}
	if pageSize < 1024 || pageSize > 1<<20 || pageSize&(pageSize-1) != 0 {
		return boltMeta{}, fmt.Errorf("%w: page size %d", errCorrupt, pageSize)
	}
	m0, ok0 := metaAt(f, 0)
	m1, ok1 := metaAt(f, pageSize)
	var m boltMeta
	switch {
	case ok1 && (!ok0 || m1.txid > m0.txid):
		m = m1
	case ok0:
		m = m0
	default:
		return boltMeta{}, fmt.Errorf("%w: no valid bbolt meta page", errCorrupt)
	}
	m.pageSize = uint32(pageSize) // bbolt reads every page at this size
	if m.pgid < 2 {
		return boltMeta{}, fmt.Errorf("%w: high-water mark %d", errCorrupt, m.pgid)
	}
	return m, nil
}

// checkFile returns an error if the file at path is not a plausible,
// complete bbolt file. A missing or empty file is fine: bbolt creates it.
func checkFile(path string) error {
	f, _, err := openChecked(path)
	if f != nil {
		f.Close()
	}
	return err
}

// openChecked opens the bbolt file at path and reads its meta page,
// refusing (errCorrupt) a file shorter than that page says it is. f is nil
// for a missing or empty file, which bbolt creates; otherwise the caller
// closes it.
func openChecked(path string) (f *os.File, m boltMeta, err error) {
	f, err = os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, m, nil
	}
	if err != nil {
		return nil, m, err
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() > 0 {
		m, err = readMeta(f, fi.Size())
		if want := int64(m.pgid) * int64(m.pageSize); err == nil && fi.Size() < want {
			err = fmt.Errorf("%w: file truncated to %d bytes, its meta page says %d", errCorrupt, fi.Size(), want)
		}
	}
	if err != nil || fi.Size() == 0 {
		f.Close()
		return nil, m, err
	}
	return f, m, nil
}

// marker is the opening marker's content: one 'o' per open of the file
// begun and not finished, one 'v' per salvage begun and not finished, and
// 's' if the file is a salvage made because opens crashed. A marker of
// only 'x's is from an older ferry: its opens are one more than its 'x's.
type marker struct {
	opens, salvages int
	salvaged        bool
}

func readMarker(path string) marker {
	data, err := os.ReadFile(path)
	if err != nil {
		return marker{}
	}
	if len(bytes.Trim(data, "x")) == 0 {
		return marker{opens: 1 + len(data)}
	}
	return marker{
		opens:    bytes.Count(data, []byte("o")),
		salvages: bytes.Count(data, []byte("v")),
		salvaged: bytes.Contains(data, []byte("s")),
	}
}

// write makes the marker durable enough to be found after a crash of the
// process; a power cut may lose it, and with it one count.
func (m marker) write(path string) error {
	data := bytes.Repeat([]byte("o"), m.opens)
	data = append(data, bytes.Repeat([]byte("v"), m.salvages)...)
	if m.salvaged {
		data = append(data, 's')
	}
	return os.WriteFile(path, data, 0o600)
}

// errCrashedOpens is returned by guardedOpen for a file whose last opens
// crashed: it counts as corrupt.
type errCrashedOpens struct{ m marker }

func (e *errCrashedOpens) Error() string {
	return fmt.Sprintf("%v: the last %d starts crashed while opening it", errCorrupt, e.m.opens)
}

func (e *errCrashedOpens) Unwrap() error { return errCorrupt }

// guardedOpen opens and loads the file between the marker's creation and
// removal, after checkFile has passed.
func (b *Buffer) guardedOpen() error {
	markerPath := b.path + openingMarkerSuffix
	m := readMarker(markerPath)
	if m.opens >= maxCrashedOpens {
		return &errCrashedOpens{m}
	}
	if err := checkFile(b.path); err != nil {
		return err
	}
	m.opens++
	if err := m.write(markerPath); err != nil {
		return err
	}
	if err := b.validate(); err != nil {
		return err
	}
	if err := b.openAndLoad(false); err != nil {
		return err // the marker stays only if the file is the problem; see Open
	}
	return os.Remove(markerPath)
}

// validate walks and reads the whole file read-only (openAndLoad verifies a
// read-only open with verifyFile before reading through bbolt), recovering
// from bbolt's panics.
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

// verifyGuarded is verifyFile, with a panic (a bug of ours, since it reads
// into Go memory with bounds checked) made an error that moves the file
// aside rather than a crash at every start.
func verifyGuarded(path string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: verifying %s panicked: %v", errCorrupt, path, r)
		}
	}()
	return verifyFile(path)
}
