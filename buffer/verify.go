package buffer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// bbolt trusts its file. When a writer opens a file whose free list is not
// stored (NoFreelistSync, as here), bbolt rebuilds it by walking every page
// from the root in a goroutine of its own (DB.freepages, which runs
// Tx.recursivelyCheckBucket): a bad page there panics where no recover
// reaches, and damage it reports makes it panic in the opener's goroutine
// while its walker goes on over a rolled-back transaction, and crashes or
// hangs. So before bbolt opens a file for writing, verifyFile walks the
// same pages with checks of its own, none of them weaker than bbolt's:
// reading with ReadAt into Go memory, bounds-checked, in the caller's
// goroutine, it cannot fault, and what it accepts, bbolt's walk accepts
// too (and so do bbolt's later reads and writes of those pages):
//
//   - the meta page is chosen as bbolt chooses it, with bbolt's page size;
//     both meta pages name themselves (bbolt's Check asserts on that);
//   - every page reached lies in [2, high-water mark), with its overflow;
//     it names itself (bbolt asserts on that) and is a branch or a leaf;
//   - no page is reached twice, overflow pages included (bbolt panics on
//     reused pages when it frees them, and reports them in its walk);
//   - elements, keys and values lie inside their page; keys are not empty
//     (bbolt asserts on that when it rewrites a node), strictly increasing
//     in a page, and within the range the parent branch gives them (bbolt's
//     key order check);
//   - a branch has at least two children (bbolt asserts on fewer when it
//     rebalances), a leaf below a branch at least one key;
//   - a bucket's header is whole: a root page of its own and 16 bytes, or
//     an inline leaf page inside the value (with no buckets in it, as bbolt
//     writes them), itself checked as above;
//   - a stored free list, if the file has one, lies in range and names no
//     page in use and none twice.
//
// Trees deeper than maxTreeDepth and buckets nested deeper than
// maxBucketDepth are refused (ferry's are 4 and 3 deep), which bounds the
// recursion; a page with overflow is refused past maxPageSpan (ferry's
// values fit a page; a label set is far below it), which bounds memory.

const (
	maxTreeDepth   = 32
	maxBucketDepth = 8
	maxPageSpan    = 32 << 20
)

// bbolt's on-disk layout (internal/common), in the machine's byte order.
const (
	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	metaPageFlag     = 0x04
	freelistPageFlag = 0x10
	bucketLeafFlag   = 0x01
	elementSize      = 16 // a branch or a leaf element
	bucketHeaderSize = 16 // root page id, sequence
	noFreelist       = ^uint64(0)
	minAllocSize     = 0xFFFFFFF // bbolt's MaxAllocSize on 32-bit systems: no slice of a page may end past it
)

// errWalk ends a strict walk at the first damage.
var errWalk = errors.New("walk ended")

// walker reads a bbolt file page by page.
type walker struct {
	r        io.ReaderAt
	pageSize uint64
	hwm      uint64   // the meta page's high-water mark: pages in use are below it
	seen     []uint64 // bit set of the pages reached

	// salvage: skip what is damaged and go on, rather than stop at it.
	salvage bool
	// visit, if set, is called with every key and value that is not a
	// bucket, and the names of the buckets it is in. The slices are the
	// walker's; they stay valid.
	visit func(path [][]byte, k, v []byte)

	damage  error // the first damage found
	skipped int   // pages and entries skipped for damage
	ioErr   error // a read failed: the walk stops, the file is not blamed
}

// fail records damage. In a strict walk it ends the walk (the return is
// errWalk); in a salvage walk the caller skips what failed.
func (w *walker) fail(format string, args ...any) error {
	w.skipped++
	if w.damage == nil {
		w.damage = fmt.Errorf("%w: "+format, append([]any{errCorrupt}, args...)...)
	}
	if w.salvage {
		return nil
	}
	return errWalk
}

func (w *walker) stopped() bool { return w.ioErr != nil || (!w.salvage && w.damage != nil) }

// verifyFile checks the structure of the bbolt file at path as described
// above. It returns nil for a sound file, an error wrapping errCorrupt for
// damage, and any other error for a failure to read. A missing or empty
// file is sound: bbolt creates it.
func verifyFile(path string) error {
	f, m, err := openChecked(path)
	if err != nil || f == nil {
		return err
	}
	defer f.Close()
	w := newWalker(f, m)
	w.walk(m)
	if w.ioErr != nil {
		return w.ioErr
	}
	return w.damage
}

func newWalker(r io.ReaderAt, m boltMeta) *walker {
	return &walker{r: r, pageSize: uint64(m.pageSize), hwm: m.pgid, seen: make([]uint64, (m.pgid+63)/64)}
}

// walk visits the whole file from the meta page m.
func (w *walker) walk(m boltMeta) {
	// bbolt's Check asserts that both meta pages name themselves; their
	// checksum does not cover the page header.
	for id := range uint64(2) {
		var hdr [pageHeaderSize]byte
		if _, err := w.r.ReadAt(hdr[:], int64(id*w.pageSize)); err != nil {
			w.readFailed(err, id)
			return
		}
		if binary.NativeEndian.Uint64(hdr[0:]) != id || binary.NativeEndian.Uint16(hdr[8:]) != metaPageFlag {
			if w.fail("meta page %d has a damaged header", id) != nil {
				return
			}
		}
	}
	if m.freelist != noFreelist {
		w.freelist(m.freelist)
		if w.stopped() {
			return
		}
	}
	if m.root == 0 {
		_ = w.fail("the root bucket has no page")
		return
	}
	w.tree(nil, m.root, nil, nil, 0, true)
}

// readPage reads page id, with its overflow, after checking that it is
// in range, not reached before, of the kind wanted, and names itself.
func (w *walker) readPage(id uint64, kinds ...uint16) []byte {
	if id < 2 || id >= w.hwm {
		_ = w.fail("page %d out of range [2, %d)", id, w.hwm)
		return nil
	}
	p := make([]byte, w.pageSize)
	if _, err := w.r.ReadAt(p, int64(id*w.pageSize)); err != nil {
		w.readFailed(err, id)
		return nil
	}
	pid, flags := binary.NativeEndian.Uint64(p[0:]), binary.NativeEndian.Uint16(p[8:])
	overflow := uint64(binary.NativeEndian.Uint32(p[12:]))
	if pid != id {
		_ = w.fail("page %d names itself %d", id, pid)
		return nil
	}
	if !bytesContain(kinds, flags) {
		_ = w.fail("page %d has flags %#x", id, flags)
		return nil
	}
	if overflow >= w.hwm-id || (overflow+1)*w.pageSize > maxPageSpan {
		_ = w.fail("page %d overflows by %d pages (high-water mark %d)", id, overflow, w.hwm)
		return nil
	}
	for i := id; i <= id+overflow; i++ {
		if w.seen[i/64]&(1<<(i%64)) != 0 {
			_ = w.fail("page %d reached twice", i)
			return nil
		}
	}
	for i := id; i <= id+overflow; i++ {
		w.seen[i/64] |= 1 << (i % 64)
	}
	if overflow > 0 {
		p = make([]byte, (overflow+1)*w.pageSize)
		if _, err := w.r.ReadAt(p, int64(id*w.pageSize)); err != nil {
			w.readFailed(err, id)
			return nil
		}
	}
	return p
}

func bytesContain(kinds []uint16, flags uint16) bool {
	for _, k := range kinds {
		if k == flags {
			return true
		}
	}
	return false
}

func (w *walker) readFailed(err error, id uint64) {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		_ = w.fail("page %d past the end of the file", id)
		return
	}
	if w.salvage { // a page that cannot be read is a page lost
		_ = w.fail("page %d unreadable: %v", id, err)
		return
	}
	if w.ioErr == nil {
		w.ioErr = fmt.Errorf("reading page %d: %w", id, err)
	}
}

func (w *walker) freelist(id uint64) {
	p := w.readPage(id, freelistPageFlag)
	if p == nil {
		return
	}
	start, count := uint64(pageHeaderSize), uint64(binary.NativeEndian.Uint16(p[10:]))
	if count == 0xFFFF { // the count is the first element
		if len(p) < pageHeaderSize+8 {
			_ = w.fail("freelist page %d is short", id)
			return
		}
		count, start = binary.NativeEndian.Uint64(p[pageHeaderSize:]), pageHeaderSize+8
	}
	if count > (uint64(len(p))-start)/8 {
		_ = w.fail("freelist page %d claims %d pages", id, count)
		return
	}
	free := make(map[uint64]bool, count)
	for i := range count {
		fid := binary.NativeEndian.Uint64(p[start+8*i:])
		if fid < 2 || fid >= w.hwm || free[fid] {
			_ = w.fail("freelist page %d lists page %d out of range or twice", id, fid)
			return
		}
		free[fid] = true
	}
	// Free pages are reached by no bucket: mark them, so that a bucket that
	// reaches one is caught as reaching a page twice.
	for fid := range free {
		if w.seen[fid/64]&(1<<(fid%64)) != 0 {
			_ = w.fail("free page %d is in use", fid)
			return
		}
		w.seen[fid/64] |= 1 << (fid % 64)
	}
}

// tree walks the pages of the tree under page id, whose keys lie in
// [lo, hi) (nil: unbounded).
func (w *walker) tree(path [][]byte, id uint64, lo, hi []byte, depth int, root bool) {
	if depth > maxTreeDepth {
		_ = w.fail("tree deeper than %d pages at page %d", maxTreeDepth, id)
		return
	}
	p := w.readPage(id, branchPageFlag, leafPageFlag)
	if p == nil || w.stopped() {
		return
	}
	w.page(path, id, p, lo, hi, depth, root, false)
}

// element returns the key and value of element i of page p (the value
// is nil for a branch, whose child page is returned instead), or ok false
// if they do not lie inside the page.
func element(p []byte, i int, branch bool) (k, v []byte, flags uint32, child uint64, ok bool) {
	off := pageHeaderSize + i*elementSize
	e := p[off : off+elementSize]
	var pos, ksize, vsize uint64
	if branch {
		pos, ksize = uint64(binary.NativeEndian.Uint32(e[0:])), uint64(binary.NativeEndian.Uint32(e[4:]))
		child = binary.NativeEndian.Uint64(e[8:])
	} else {
		flags = binary.NativeEndian.Uint32(e[0:])
		pos, ksize = uint64(binary.NativeEndian.Uint32(e[4:])), uint64(binary.NativeEndian.Uint32(e[8:]))
		vsize = uint64(binary.NativeEndian.Uint32(e[12:]))
	}
	start, end := uint64(off)+pos, uint64(off)+pos+ksize+vsize
	if pos < elementSize || end > uint64(len(p)) || pos+ksize+vsize > minAllocSize {
		return nil, nil, 0, 0, false
	}
	k = p[start : start+ksize : start+ksize]
	if !branch {
		v = p[start+ksize : end : end]
	}
	return k, v, flags, child, true
}

// page checks the elements of page p (id 0 for an inline page) and walks
// on from them.
func (w *walker) page(path [][]byte, id uint64, p, lo, hi []byte, depth int, root, inline bool) {
	flags, count := binary.NativeEndian.Uint16(p[8:]), int(binary.NativeEndian.Uint16(p[10:]))
	branch := flags == branchPageFlag
	if inline && flags != leafPageFlag {
		_ = w.fail("inline page of bucket %q has flags %#x", path, flags)
		return
	}
	if pageHeaderSize+count*elementSize > len(p) {
		if w.fail("page %d claims %d elements", id, count) != nil {
			return
		}
		count = (len(p) - pageHeaderSize) / elementSize // salvage what fits
	}
	switch {
	case branch && count < 2:
		if w.fail("branch page %d has %d children", id, count) != nil {
			return
		}
	case !branch && !root && count == 0:
		if w.fail("leaf page %d below a branch is empty", id) != nil {
			return
		}
	}
	prev := lo
	type child struct {
		id     uint64
		lo, hi []byte
	}
	var children []child
	for i := range count {
		k, v, eflags, cid, ok := element(p, i, branch)
		switch {
		case !ok:
			if w.fail("page %d, element %d lies outside the page", id, i) != nil {
				return
			}
			continue
		case len(k) == 0:
			if w.fail("page %d, element %d has an empty key", id, i) != nil {
				return
			}
			continue
		case prev != nil && (bytes.Compare(k, prev) < 0 || i > 0 && bytes.Equal(k, prev)) || hi != nil && bytes.Compare(k, hi) >= 0:
			if w.fail("page %d, element %d: key %x out of order", id, i, k) != nil {
				return
			}
			if branch {
				// Salvage: what is under a damaged branch key may be
				// whole; take it without bounds.
				children = append(children, child{id: cid})
			}
			continue
		case !branch && eflags&^bucketLeafFlag != 0:
			if w.fail("page %d, element %d has flags %#x", id, i, eflags) != nil {
				return
			}
			continue
		}
		prev = k
		if branch {
			if n := len(children); n > 0 {
				children[n-1].hi = k
			}
			children = append(children, child{id: cid, lo: k, hi: hi})
			continue
		}
		if eflags&bucketLeafFlag == 0 {
			if w.visit != nil {
				w.visit(path, k, v)
			}
			continue
		}
		if inline {
			if w.fail("inline bucket %q holds bucket %q", path, k) != nil {
				return
			}
			continue
		}
		w.bucket(append(path[:len(path):len(path)], k), v)
		if w.stopped() {
			return
		}
	}
	for _, c := range children {
		w.tree(path, c.id, c.lo, c.hi, depth+1, false)
		if w.stopped() {
			return
		}
	}
}

// bucket walks the bucket whose header is v.
func (w *walker) bucket(path [][]byte, v []byte) {
	if len(path) > maxBucketDepth {
		_ = w.fail("buckets nested deeper than %d at %q", maxBucketDepth, path)
		return
	}
	if len(v) < bucketHeaderSize {
		_ = w.fail("bucket %q has a header of %d bytes", path, len(v))
		return
	}
	root := binary.NativeEndian.Uint64(v)
	if root != 0 {
		if len(v) != bucketHeaderSize {
			_ = w.fail("bucket %q has a root page and %d bytes more", path, len(v)-bucketHeaderSize)
			return
		}
		w.tree(path, root, nil, nil, 0, true)
		return
	}
	if len(v) < bucketHeaderSize+pageHeaderSize {
		_ = w.fail("inline bucket %q is %d bytes", path, len(v))
		return
	}
	w.page(path, 0, v[bucketHeaderSize:], nil, nil, 0, true, true)
}
