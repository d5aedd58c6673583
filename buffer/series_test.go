package buffer

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	bolt "go.etcd.io/bbolt"
)

// TestRefsWrapWithoutSharing: once 2^32 refs are handed out, new series
// get refs that no series has, never ref 0, which stands for none.
func TestRefsWrapWithoutSharing(t *testing.T) {
	b := openTest(t, t.TempDir(), 4<<20)
	defer b.Close()
	appendRound(b, 3, 1000) // refs 1, 2, 3
	b.mu.Lock()
	b.series.nextRef = math.MaxUint32 - 1
	b.mu.Unlock()
	appendRound(b, 8, 2000) // 3 known, 5 new ones across the wrap
	b.mu.Lock()
	defer b.mu.Unlock()
	refs := map[uint32]bool{}
	for k, e := range b.series.byRef.All() {
		r := e.ref
		if r == 0 || uint64(r) != k || refs[r] {
			t.Fatalf("ref %d for entry of ref %d, or twice", k, r)
		}
		if got := b.series.entry(e.lset, e.Meta()); got != e {
			t.Fatalf("%s: entry of ref %d, want %d", e.lset, got.ref, r)
		}
		refs[r] = true
	}
	if len(refs) != 8 || !refs[math.MaxUint32] || !refs[4] {
		t.Fatalf("refs %v: want 1-3, MaxUint32-1, MaxUint32 and 4-6", refs)
	}
}

// TestSeriesOfRefZeroIsCorrupt: a file whose series bucket names ref 0,
// which the buffer never writes, is salvaged: the other series and their
// samples are kept.
func TestSeriesOfRefZeroIsCorrupt(t *testing.T) {
	dir := t.TempDir()
	b := openTest(t, dir, 4<<20)
	appendRound(b, 10, 1000)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		k := binary.BigEndian.AppendUint32(nil, 0)
		return tx.Bucket(bucketSeries).Put(k, encodeSeries(labels.FromStrings("__name__", "zero"), Meta{}))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	b = openTest(t, dir, 4<<20)
	defer b.Close()
	if st := b.Stats(); st.FilesMovedAside != 1 || st.Samples != 10 {
		t.Fatalf("want the file salvaged with its 10 samples: %+v", st)
	}
	if got := drain(t, b); len(got) != 10 {
		t.Fatalf("read %d series, want 10", len(got))
	}
}
