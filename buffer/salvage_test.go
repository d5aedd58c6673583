package buffer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	bolt "go.etcd.io/bbolt"
)

// mutate damages a copy of good in one of several ways: bit flips (as
// flipBits), bytes overwritten, the file cut short, or bytes inserted.
func mutate(rng *rand.Rand, good []byte, hwm uint64) []byte {
	switch rng.IntN(4) {
	case 0:
		return flipBits(rng, good, hwm)
	case 1:
		data := append([]byte(nil), good...)
		for range 1 + rng.IntN(20) {
			data[rng.IntN(len(data))] = byte(rng.Uint32())
		}
		return data
	case 2:
		return append([]byte(nil), good[:rng.IntN(len(good))]...)
	default:
		j := rng.IntN(len(good))
		data := append([]byte(nil), good[:j]...)
		data = append(data, make([]byte, rng.IntN(5000))...)
		return append(data, good[j:]...)
	}
}

// TestVerifyAcceptsOnlyWhatBboltsCheckAccepts: for damaged files the walk
// accepts, bbolt's own consistency check (the free-list walk and more)
// finds nothing; so at a writer's open, bbolt's walk meets no damage. The
// salvage walk reads every one of them without panicking.
func TestVerifyAcceptsOnlyWhatBboltsCheckAccepts(t *testing.T) {
	src, _ := goodFile(t, 20)
	good, err := os.ReadFile(filepath.Join(src, FileName))
	if err != nil {
		t.Fatal(err)
	}
	hwm := highWaterMark(t, filepath.Join(src, FileName))
	trials := 500
	if testing.Short() {
		trials = 60
	}
	accepted, refused := 0, 0
	for _, seed := range []uint64{31, 32, 33, 34} {
		rng := rand.New(rand.NewPCG(seed, 0))
		for trial := range trials {
			path := filepath.Join(t.TempDir(), FileName)
			if err := os.WriteFile(path, mutate(rng, good, hwm), 0o600); err != nil {
				t.Fatal(err)
			}
			b := &Buffer{path: path}
			if _, err := b.salvage(path + salvageSuffix); err != nil && strings.Contains(err.Error(), "panicked") {
				t.Fatalf("seed %d, trial %d: %v", seed, trial, err)
			}
			if checkFile(path) != nil || verifyFile(path) != nil {
				refused++
				continue
			}
			accepted++
			if errs := bboltCheck(t, path); len(errs) > 0 {
				t.Fatalf("seed %d, trial %d: the walk accepted a file bbolt finds damaged: %v", seed, trial, errs)
			}
		}
	}
	t.Logf("%d damaged files accepted (the damage is in data or free pages), %d refused", accepted, refused)
}

func bboltCheck(t *testing.T, path string) []error {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		return []error{err}
	}
	defer db.Close()
	var errs []error
	_ = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return nil
	})
	return errs
}

// TestVerifyAcceptsEveryFileTheBufferWrites: the walk's checks are stricter
// than bbolt's; they must still hold for every file the buffer writes, with
// commits, acknowledgements, eviction, thinning and series removal.
func TestVerifyAcceptsEveryFileTheBufferWrites(t *testing.T) {
	for _, thin := range []bool{false, true} {
		t.Run(fmt.Sprintf("thin=%v", thin), func(t *testing.T) {
			dir := t.TempDir()
			b, err := Open(Options{Dir: dir, MaxSize: 1 << 20, Thin: thin})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			rng := rand.New(rand.NewPCG(7, 8))
			for round := range 60 {
				n := 50 + rng.IntN(3000)
				for i := range n {
					// Churning label values: the dictionary grows and shrinks.
					b.Append(labels.FromStrings("__name__", "m", "i", fmt.Sprint(i), "r", fmt.Sprint(round/10)), int64(round+1)*15_000, rng.Float64())
				}
				if err := b.Commit(); err != nil {
					t.Fatal(err)
				}
				if rng.IntN(4) == 0 {
					if blocks, _ := b.Read(0, 1+rng.IntN(5000)); len(blocks) > 0 {
						if err := b.Ack(blocks[len(blocks)-1].Seq); err != nil {
							t.Fatal(err)
						}
					}
				}
				if err := verifyFile(filepath.Join(dir, FileName)); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
			}
			if st := b.Stats(); st.Dropped[ReasonFull]+st.Dropped[ReasonThinned] == 0 {
				t.Fatalf("the buffer never filled: %+v", st)
			}
		})
	}
}

// TestSalvageKeepsWhatDecodesAndCountsTheRest: a file with damage to its
// structure (which stops it being opened for writing) and a block whose
// payload is damaged: every other block is kept, the damaged block's
// samples are counted as corrupt, and nothing else is lost.
func TestSalvageKeepsWhatDecodesAndCountsTheRest(t *testing.T) {
	dir := t.TempDir()
	b := openTest(t, dir, 8<<20)
	appendRound(b, 100, 1000) // the first block: 100 samples
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	for r := range 6 {
		appendRound(b, 500, int64(r+2)*1000)
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	samples := b.Stats().Samples
	b.Close()
	path := filepath.Join(dir, FileName)
	_, firstRoot := addJunkBucket(t, path)
	if replaceRoot(t, path, firstRoot) == 0 {
		t.Fatal("junk bucket not found")
	}
	damageFirstBlock(t, path)

	b = openTest(t, dir, 8<<20)
	defer b.Close()
	st := b.Stats()
	if st.FilesMovedAside != 1 || st.Samples != samples-100 || st.Dropped[ReasonCorrupt] != 100 {
		t.Fatalf("want %d samples kept and 100 corrupt: %+v", samples-100, st)
	}
	got := drain(t, b)
	n := 0
	for _, ts := range got {
		n += len(ts)
	}
	if n != samples-100 {
		t.Fatalf("read %d samples, want %d", n, samples-100)
	}
}

// TestSalvageLosesOnlyTheBlockOnABrokenPage: a block whose page header is
// damaged cannot be read (nor its samples counted: they are on that page);
// every other block is kept.
func TestSalvageLosesOnlyTheBlockOnABrokenPage(t *testing.T) {
	dir, samples := goodFile(t, 20)
	path := filepath.Join(dir, FileName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Round 5's block: version, 500 samples, minT 5000, span 0.
	header := append(binary.AppendVarint(binary.AppendUvarint([]byte{blockVersion}, 500), 5000), 0)
	found := 0
	for i := bytes.Index(data, header); i >= 0; i = nextIndex(data, header, i) {
		data[i/int(pageSize)*int(pageSize)] ^= 0x40 // the page's id
		found++
	}
	if found == 0 {
		t.Fatal("block not found")
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	b := openTest(t, dir, 8<<20)
	defer b.Close()
	if st := b.Stats(); st.FilesMovedAside != 1 || st.Samples != samples-500 || st.Blocks != 19 {
		t.Fatalf("want all but one block of 500 samples kept, of %d: %+v", samples, st)
	}
	drain(t, b)
}

// TestSalvageInterruptedBetweenRenamesIsFinished: a crash after the damaged
// file went aside and before the salvaged one came in: the next Open takes
// the salvaged one. A salvage that never finished is removed.
func TestSalvageInterruptedBetweenRenamesIsFinished(t *testing.T) {
	dir, samples := goodFile(t, 3)
	path := filepath.Join(dir, FileName)
	if err := os.Rename(path, path+salvageSuffix); err != nil {
		t.Fatal(err)
	}
	b := openTest(t, dir, 8<<20)
	if st := b.Stats(); st.Samples != samples {
		t.Fatalf("the salvaged file was not taken: %+v", st)
	}
	b.Close()

	if err := os.WriteFile(path+salvageSuffix, []byte("half a salvage"), 0o600); err != nil {
		t.Fatal(err)
	}
	b = openTest(t, dir, 8<<20)
	defer b.Close()
	if st := b.Stats(); st.Samples != samples || st.FilesMovedAside != 0 {
		t.Fatalf("stats: %+v", st)
	}
	if _, err := os.Stat(path + salvageSuffix); !os.IsNotExist(err) {
		t.Fatalf("unfinished salvage left: %v", err)
	}
}

func asideFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, FileName+corruptSuffix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestBootLoopKeepsOneMovedAsideFile: a device that damages its file at
// every start (a brown-out loop) keeps one moved-aside file, not one per
// start.
func TestBootLoopKeepsOneMovedAsideFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	deleted := 0
	for boot := range 4 {
		b := openTest(t, dir, 8<<20)
		st := b.Stats()
		deleted += st.FilesDeleted
		appendRound(b, 100, int64(boot+1)*1000)
		b.Close()
		if n := len(asideFiles(t, dir)); n > 1 {
			t.Fatalf("boot %d: %d moved-aside files", boot, n)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data[:len(data)/3], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b := openTest(t, dir, 8<<20)
	defer b.Close()
	st := b.Stats()
	deleted += st.FilesDeleted
	if n := len(asideFiles(t, dir)); n != 1 || st.FilesMovedAside != 1 || st.AsideBytes == 0 {
		t.Fatalf("%d moved-aside files: %+v", n, st)
	}
	if deleted != 3 {
		t.Fatalf("%d moved-aside files deleted over 4 damaged starts, want 3", deleted)
	}
}

// TestMovedAsideFileGivesWayToData: the moved-aside file's bytes are part
// of the cap; it is deleted when the buffer needs the room, before any
// data is evicted, and at Open when it does not fit at all.
func TestMovedAsideFileGivesWayToData(t *testing.T) {
	const maxSize = 1 << 20
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	aside := path + corruptSuffix + "20250101T000000Z"
	if err := os.WriteFile(aside, make([]byte, 300<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	b := openTest(t, dir, maxSize)
	if st := b.Stats(); st.AsideBytes != 300<<10 || st.FilesDeleted != 0 {
		t.Fatalf("the moved-aside file fits: it stays: %+v", st)
	}
	for round := range 200 {
		appendRound(b, 1000, int64(round+1)*15_000)
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		st := b.Stats()
		var total int64
		for _, p := range append([]string{path, path + JournalSuffix}, asideFiles(t, dir)...) {
			if fi, err := os.Stat(p); err == nil {
				total += fi.Size()
			}
		}
		if total > maxSize {
			t.Fatalf("round %d: %d bytes kept under a cap of %d: %+v", round, total, maxSize, st)
		}
		if st.AsideBytes > 0 && st.Dropped[ReasonFull] > 0 {
			t.Fatalf("round %d: data evicted while the moved-aside file stays: %+v", round, st)
		}
	}
	st := b.Stats()
	b.Close()
	if st.AsideBytes != 0 || st.FilesDeleted != 1 || st.Dropped[ReasonFull] == 0 || len(asideFiles(t, dir)) != 0 {
		t.Fatalf("the buffer filled: the moved-aside file must be gone: %+v", st)
	}

	// A moved-aside file that does not fit beside a full buffer goes at Open.
	if err := os.WriteFile(aside, make([]byte, 300<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	b = openTest(t, dir, maxSize)
	defer b.Close()
	if st := b.Stats(); st.AsideBytes != 0 || st.FilesDeleted != 1 || len(asideFiles(t, dir)) != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

// FuzzVerifyFile: the walk reads whatever file it finds, strictly and to
// salvage, and must answer, never panic; what it accepts, bbolt's own
// check must accept.
func FuzzVerifyFile(f *testing.F) {
	src, _ := goodFile(f, 3)
	good, err := os.ReadFile(filepath.Join(src, FileName))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), FileName)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		b := &Buffer{path: path}
		if _, err := b.salvage(path + salvageSuffix); err != nil && strings.Contains(err.Error(), "panicked") {
			t.Fatal(err)
		}
		if len(data) == 0 || checkFile(path) != nil {
			return
		}
		if err := verifyFile(path); err != nil {
			return
		}
		if errs := bboltCheck(t, path); len(errs) > 0 {
			t.Fatalf("the walk accepted a file bbolt finds damaged: %v", errs)
		}
	})
}
