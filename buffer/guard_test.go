package buffer

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	bolt "go.etcd.io/bbolt"
)

// bboltChecker lists the goroutines of bbolt's free-list rebuild still
// alive: one that found damage is left blocked (or crashes the process).
func bboltChecker() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "recursivelyCheck") || strings.Contains(g, "(*DB).freepages") {
			found = append(found, g)
		}
	}
	return found
}

// goodFile makes a buffer file of rounds commits of 500 series each, closed.
func goodFile(t testing.TB, rounds int) (dir string, samples int) {
	t.Helper()
	dir = t.TempDir()
	b, err := Open(Options{Dir: dir, MaxSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for r := range rounds {
		appendRound(b, 500, int64(r+1)*1000)
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	samples = b.Stats().Samples
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, samples
}

// junkSequence marks the header of the bucket addJunkBucket adds, so that
// a test can find it in the file.
const junkSequence = 0x5eb0_7c1e_9a3d_f00d

// addJunkBucket adds, with bbolt, a bucket "x" inside the last block's
// bucket, with values large enough to give it a page of its own. Opening
// reads only a block's "d" and "t": what is in "x" is seen by bbolt's own
// walk of every page when it rebuilds the free list, and by nothing before.
// It returns the file's high-water mark and the root page of the first
// block's bucket.
func addJunkBucket(t *testing.T, path string) (hwm, firstRoot uint64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoFreelistSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		bb := tx.Bucket(bucketBlocks)
		first, _ := bb.Cursor().First()
		last, _ := bb.Cursor().Last()
		firstRoot = uint64(bb.Bucket(first).Root())
		x, err := bb.Bucket(last).CreateBucket([]byte("x"))
		if err != nil {
			return err
		}
		if err := x.SetSequence(junkSequence); err != nil {
			return err
		}
		for _, k := range []string{"kkkk1", "kkkk2"} {
			if err := x.Put([]byte(k), bytes.Repeat([]byte{'v'}, 1500)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		hwm = uint64(tx.Size() / int64(db.Info().PageSize))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hwm, firstRoot
}

// patchAll replaces every copy of old in the file (bbolt copies pages on
// write: the live one is among them) and returns how many it found.
func patchAll(t *testing.T, path string, old, new []byte) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := bytes.Count(data, old)
	data = bytes.ReplaceAll(data, old, new)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDamageOnlyBboltsFreeListWalkSeesIsSalvaged: damage that reading the
// buffer's buckets does not meet, but bbolt's walk of every page (run in a
// goroutine of its own when a writer opens a file without a stored free
// list) does. That walk must never be the one to find it: in its goroutine
// a bad page crashes the process, and damage it reports leaves it running
// on a closed transaction, which crashes it or leaks it. Opening must find
// the damage first, and keep every block the damage spares.
func TestDamageOnlyBboltsFreeListWalkSeesIsSalvaged(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string, hwm, firstRoot uint64) int
	}{
		{"bucket root past the high-water mark", func(t *testing.T, path string, hwm, _ uint64) int {
			// The page exists in the file, past the pages in use: bbolt's
			// walk asserts on its id, in its own goroutine.
			if fi, err := os.Stat(path); err == nil && fi.Size() < int64(hwm+2)*pageSize {
				if err := os.Truncate(path, int64(hwm+2)*pageSize); err != nil {
					t.Fatal(err)
				}
			}
			return replaceRoot(t, path, hwm)
		}},
		{"page referenced twice", func(t *testing.T, path string, _, firstRoot uint64) int {
			return replaceRoot(t, path, firstRoot)
		}},
		{"meta page as a bucket root", func(t *testing.T, path string, _, _ uint64) int {
			return replaceRoot(t, path, 1)
		}},
		{"keys out of order", func(t *testing.T, path string, _, _ uint64) int {
			return patchAll(t, path, []byte("kkkk2"), []byte("kkkk0"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, samples := goodFile(t, 8)
			path := filepath.Join(dir, FileName)
			hwm, firstRoot := addJunkBucket(t, path)
			if n := tc.damage(t, path, hwm, firstRoot); n == 0 {
				t.Fatal("the damage found nothing to change")
			}

			b, err := Open(Options{Dir: dir, MaxSize: 8 << 20})
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			st := b.Stats()
			if g := bboltChecker(); len(g) > 0 {
				t.Fatalf("bbolt's free-list walk found the damage, left running:\n%s", g[0])
			}
			if st.FilesMovedAside != 1 {
				t.Errorf("files moved aside %d, want 1: %+v", st.FilesMovedAside, st)
			}
			// Only the junk bucket is damaged: every block is salvaged.
			if st.Samples != samples {
				t.Errorf("samples kept %d, want %d: %+v", st.Samples, samples, st)
			}
			got := drain(t, b)
			n := 0
			for _, ts := range got {
				n += len(ts)
			}
			if n != samples {
				t.Errorf("read %d samples, want %d", n, samples)
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// replaceRoot points bucket "x" at page root.
func replaceRoot(t *testing.T, path string, root uint64) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	seq := binary.NativeEndian.AppendUint64(nil, junkSequence)
	for i := bytes.Index(data, seq); i >= 0; i = nextIndex(data, seq, i) {
		if i >= 9 && data[i-9] == 'x' {
			binary.NativeEndian.PutUint64(data[i-8:], root)
			n++
		}
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestJunkBucketAloneIsNoDamage: the control for the test above: a bucket
// the buffer does not know, inside a block's, is not damage.
func TestJunkBucketAloneIsNoDamage(t *testing.T) {
	dir, samples := goodFile(t, 8)
	addJunkBucket(t, filepath.Join(dir, FileName))
	b := openTest(t, dir, 8<<20)
	defer b.Close()
	if st := b.Stats(); st.FilesMovedAside != 0 || st.Samples != samples {
		t.Fatalf("stats: %+v, want %d samples", st, samples)
	}
}

// flipBits damages a copy of good: n bit flips, half of them anywhere, half
// in the headers and element arrays of pages in use (below hwm), where
// bbolt's structure is.
func flipBits(rng *rand.Rand, good []byte, hwm uint64) []byte {
	damaged := append([]byte(nil), good...)
	for range 1 + rng.IntN(3) {
		i := rng.IntN(len(damaged))
		if rng.IntN(2) == 0 && hwm > 2 {
			page := 2 + rng.Int64N(int64(hwm-2))
			i = int(page*pageSize) + rng.IntN(16+16*8)
		}
		damaged[i] ^= 1 << rng.IntN(8)
	}
	return damaged
}

// highWaterMark returns the pages in use of the bbolt file at path.
func highWaterMark(t testing.TB, path string) uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var hwm uint64
	_ = db.View(func(tx *bolt.Tx) error {
		hwm = uint64(tx.Size() / int64(db.Info().PageSize))
		return nil
	})
	return hwm
}

// TestBitFlippedFileNeverStopsFerry flips random bits of a buffer file
// and opens it, many times, for a fixed set of seeds: bbolt panics on some
// damaged pages, some in goroutines of its own. Whatever the damage, Open
// must succeed (keeping the file, or what can be salvaged from it), bbolt's
// own free-list walk must never be the one to meet the damage, no sample
// may appear that was not there, and the buffer must take and return new
// data.
func TestBitFlippedFileNeverStopsFerry(t *testing.T) {
	src, samples := goodFile(t, 20)
	good, err := os.ReadFile(filepath.Join(src, FileName))
	if err != nil {
		t.Fatal(err)
	}
	hwm := highWaterMark(t, filepath.Join(src, FileName))
	seeds := []uint64{13, 14, 15, 16, 17, 18}
	trials := 80
	if testing.Short() {
		trials = 20
	}
	replaced := 0
	for _, seed := range seeds {
		rng := rand.New(rand.NewPCG(seed, seed+1))
		for trial := range trials {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, FileName), flipBits(rng, good, hwm), 0o600); err != nil {
				t.Fatal(err)
			}
			b, err := Open(Options{Dir: dir, MaxSize: 8 << 20})
			if err != nil {
				t.Fatalf("seed %d, trial %d: open: %v", seed, trial, err)
			}
			if g := bboltChecker(); len(g) > 0 {
				t.Fatalf("seed %d, trial %d: bbolt's free-list walk met the damage:\n%s", seed, trial, g[0])
			}
			st := b.Stats()
			replaced += st.FilesMovedAside
			if st.Samples > samples {
				t.Fatalf("seed %d, trial %d: %d samples from a file of %d", seed, trial, st.Samples, samples)
			}
			if _, err := b.Read(0, 1<<30); err != nil {
				t.Fatalf("seed %d, trial %d: read: %v", seed, trial, err)
			}
			b.Append(labels.FromStrings("__name__", "after"), 1<<40, 1)
			if err := b.Commit(); err != nil {
				t.Fatalf("seed %d, trial %d: commit: %v", seed, trial, err)
			}
			if st := b.Stats(); st.NewestT != 1<<40 {
				t.Fatalf("seed %d, trial %d: new data not kept: %+v", seed, trial, st)
			}
			b.Close()
		}
	}
	t.Logf("%d of %d damaged files replaced", replaced, trials*len(seeds))
}
