package main

import (
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
)

const (
	sectorSize = 512
	// pageSize is the unit a cut keeps or loses as a whole: a flash page,
	// and ext4's block.
	pageSize = 4096
)

// volatileDisk is a disk with a volatile write cache, the way the guest's
// kernel believes its disk to be (it sees a write-back cache and sends
// flushes). A write lands in the cache, in this process's memory; only a
// flush, or a write with FUA, puts it into the image file, which stands for
// the medium. A power cut (cut) empties the cache, except for a random part
// that a real disk may already have written out on its own, in any order.
//
// So what the guest has not flushed is really gone after a cut: neither the
// guest's page cache (in qemu's memory) nor this cache survives, and the
// image file holds only what a flush made durable plus what the cut spared.
type volatileDisk struct {
	mu    sync.Mutex
	f     *os.File
	size  int64
	dirty map[int64][]byte // sector number -> its newest unflushed content

	stats diskStats
}

// diskStats counts what reached the medium: how often the guest flushed
// and how many bytes it made durable (flash wear), and what cuts did.
type diskStats struct {
	Flushes      int
	BytesFlushed int64
	PagesKept    int // unflushed pages a cut wrote out anyway
	PagesLost    int // unflushed pages a cut dropped
}

func openVolatileDisk(path string) (*volatileDisk, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &volatileDisk{f: f, size: fi.Size(), dirty: map[int64][]byte{}}, nil
}

func (d *volatileDisk) Close() error { return d.f.Close() }

// sectorLocked returns the current content of sector s: the cache's if it
// holds one, else the medium's.
func (d *volatileDisk) sectorLocked(s int64) ([]byte, error) {
	if b, ok := d.dirty[s]; ok {
		return b, nil
	}
	b := make([]byte, sectorSize)
	_, err := d.f.ReadAt(b, s*sectorSize)
	return b, err
}

// ReadAt reads what the guest would read: cached writes over the medium.
func (d *volatileDisk) ReadAt(p []byte, off int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.f.ReadAt(p, off); err != nil {
		return err
	}
	for s := off / sectorSize; s*sectorSize < off+int64(len(p)); s++ {
		b, ok := d.dirty[s]
		if !ok {
			continue
		}
		lo := max(s*sectorSize, off)
		hi := min((s+1)*sectorSize, off+int64(len(p)))
		copy(p[lo-off:hi-off], b[lo-s*sectorSize:hi-s*sectorSize])
	}
	return nil
}

// WriteAt puts p into the cache; with fua it also makes these sectors (and
// only these) durable.
func (d *volatileDisk) WriteAt(p []byte, off int64, fua bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var touched []int64
	for s := off / sectorSize; s*sectorSize < off+int64(len(p)); s++ {
		cur, err := d.sectorLocked(s)
		if err != nil {
			return err
		}
		b := slices.Clone(cur)
		lo := max(s*sectorSize, off)
		hi := min((s+1)*sectorSize, off+int64(len(p)))
		copy(b[lo-s*sectorSize:hi-s*sectorSize], p[lo-off:hi-off])
		d.dirty[s] = b
		touched = append(touched, s)
	}
	if fua {
		return d.writeOutLocked(touched)
	}
	return nil
}

// Flush makes every cached write durable.
func (d *volatileDisk) Flush() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stats.Flushes++
	return d.writeOutLocked(slices.Sorted(maps.Keys(d.dirty)))
}

func (d *volatileDisk) writeOutLocked(sectors []int64) error {
	for _, s := range sectors {
		if _, err := d.f.WriteAt(d.dirty[s], s*sectorSize); err != nil {
			return err
		}
		d.stats.BytesFlushed += sectorSize
		delete(d.dirty, s)
	}
	// No fsync of the image: the host keeps its power, so its page cache
	// is as durable as the medium for this rig.
	return nil
}

// Cut is the power cut: each page with unflushed writes is written out
// with probability keep (as a disk may have done before the power went),
// the others are lost. The cache is empty afterwards.
func (d *volatileDisk) Cut(rng *rand.Rand, keep float64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	pages := map[int64][]int64{}
	for s := range d.dirty {
		p := s * sectorSize / pageSize
		pages[p] = append(pages[p], s)
	}
	for _, p := range slices.Sorted(maps.Keys(pages)) {
		if rng.Float64() < keep {
			d.stats.PagesKept++
			if err := d.writeOutLocked(pages[p]); err != nil {
				return err
			}
		} else {
			d.stats.PagesLost++
		}
	}
	clear(d.dirty)
	return nil
}

// Stats returns the counts so far.
func (d *volatileDisk) Stats() diskStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}
