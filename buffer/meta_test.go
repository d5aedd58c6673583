package buffer

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
)

func metaOf(i int) Meta {
	return Meta{Family: fmt.Sprintf("m%d_seconds", i%3), Type: "counter", Help: fmt.Sprintf("Help of m%d, ä.", i%3), Unit: "seconds", Start: 900_000 + int64(i)}
}

func metaSeries(i int) labels.Labels {
	return labels.FromStrings("__name__", fmt.Sprintf("m%d_seconds_total", i%3), "i", fmt.Sprint(i))
}

// metaByLabels reads every block and returns each series' Meta and sample
// count, failing if one label set comes with two Metas.
func metaByLabels(t *testing.T, b *Buffer) (map[string]Meta, int) {
	t.Helper()
	got := map[string]Meta{}
	n := 0
	err := b.ForEach(func(blk Block) error {
		for _, s := range blk.Series {
			k := s.Labels.String()
			if m, ok := got[k]; ok && m != s.Meta.Value() {
				t.Fatalf("%s: Meta %+v and %+v", k, m, s.Meta.Value())
			}
			got[k] = s.Meta.Value()
			n += len(s.T)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, n
}

func checkMetas(t *testing.T, what string, got map[string]Meta, series int) {
	t.Helper()
	if len(got) != series {
		t.Fatalf("%s: %d series, want %d", what, len(got), series)
	}
	for i := range series {
		if m := got[metaSeries(i).String()]; m != metaOf(i) {
			t.Fatalf("%s: series %d has Meta %+v, want %+v", what, i, m, metaOf(i))
		}
	}
}

// Metadata goes with its series through commit, reopen, a crash replayed
// from the journal, and the live path; a series without any keeps the zero
// Meta.
func TestMetaSurvivesCommitReopenJournalAndLive(t *testing.T) {
	const series = 50
	dir := t.TempDir()
	b := openTest(t, dir, 4<<20)
	for round := range 3 {
		for i := range series {
			b.AppendMeta(Ref{}, metaSeries(i), metaOf(i), int64(1_000_000+round*15_000), float64(round))
		}
	}
	b.Append(labels.FromStrings("__name__", "plain"), 1_000_000, 1)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	got, n := metaByLabels(t, b)
	if m, ok := got[`{__name__="plain"}`]; !ok || !m.IsZero() {
		t.Fatalf("the series without metadata: %+v, %v", m, ok)
	}
	delete(got, `{__name__="plain"}`)
	checkMetas(t, "committed", got, series)
	if n != 3*series+1 {
		t.Fatalf("%d samples, want %d", n, 3*series+1)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = openTest(t, dir, 4<<20)
	got, _ = metaByLabels(t, b)
	delete(got, `{__name__="plain"}`)
	checkMetas(t, "reopened", got, series)

	// A crash: the head, journaled, comes back with its metadata.
	for round := 3; round < 6; round++ {
		for i := range series {
			b.AppendMeta(Ref{}, metaSeries(i), metaOf(i), int64(1_000_000+round*15_000), float64(round))
		}
		if err := b.Journal(); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Journal(); err != nil {
		t.Fatal(err)
	}
	after := openTest(t, crashCopy(t, dir), 4<<20)
	got, n = metaByLabels(t, after)
	delete(got, `{__name__="plain"}`)
	checkMetas(t, "replayed from the journal", got, series)
	if n != 6*series+1 {
		t.Fatalf("after the replay %d samples, want %d", n, 6*series+1)
	}
	after.Close()
	b.Close()

	// The live path.
	b = openTest(t, t.TempDir(), 4<<20)
	defer b.Close()
	for i := range series {
		b.AppendMeta(Ref{}, metaSeries(i), metaOf(i), 2_000_000, 1)
	}
	blk, ok := b.TakeLive(1000, false)
	if !ok {
		t.Fatal("nothing live")
	}
	live := map[string]Meta{}
	for _, s := range blk.Series {
		live[s.Labels.String()] = s.Meta.Value()
	}
	b.LiveDone()
	checkMetas(t, "live", live, series)
}

// A series whose Meta changes (a counter reset moves its start) keeps the
// old Meta on its older samples, the new one on the newer; older samples
// than it has are still refused across the change, and across a change
// back.
func TestMetaChangeKeepsEachSampleItsOwn(t *testing.T) {
	b := openTest(t, t.TempDir(), 4<<20)
	defer b.Close()
	lset := labels.FromStrings("__name__", "c_total")
	a, c := Meta{Family: "c", Type: "counter", Start: 1000}, Meta{Family: "c", Type: "counter", Start: 50_000}
	r := b.AppendMeta(Ref{}, lset, a, 10_000, 5)
	r = b.AppendMeta(r, lset, a, 40_000, 9)
	r = b.AppendMeta(r, lset, c, 60_000, 1)
	r = b.AppendMeta(r, lset, a, 50_000, 10) // older than what the series has
	b.AppendMeta(r, lset, c, 55_000, 2)      // older too
	b.AppendMeta(Ref{}, lset, a, 70_000, 11) // back to a: newer, taken
	if d := b.Stats().Dropped[ReasonOutOfOrder]; d != 2 {
		t.Fatalf("%d out of order, want 2", d)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	var got []string
	_ = b.ForEach(func(blk Block) error {
		for _, s := range blk.Series {
			got = append(got, fmt.Sprintf("start %d: %v", s.Meta.Value().Start, s.T))
		}
		return nil
	})
	if want := []string{"start 1000: [10000 40000 70000]", "start 50000: [60000]"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// Help texts that change at every collection (a target that puts a
// timestamp in its HELP) make a new dictionary entry per series and
// collection: the file stays within its cap, and the entries of the
// evicted samples are deleted with them.
func TestMetaChurnStaysWithinTheCap(t *testing.T) {
	const maxSize = 1 << 20
	dir := t.TempDir()
	b := openTest(t, dir, maxSize)
	defer b.Close()
	long := strings.Repeat("h", 200)
	var most int64
	const rounds, series = 200, 100
	for round := range rounds {
		for i := range series {
			m := Meta{Family: "m0_seconds_total", Type: "gauge", Help: fmt.Sprintf("%s collected in round %d", long, round), Unit: "bytes"}
			b.AppendMeta(Ref{}, metaSeries(i), m, int64(round+1)*1000, float64(i))
		}
		if err := b.Journal(); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		most = max(most, onDisk(t, dir))
		checkIndex(t, b)
	}
	st := b.Stats()
	t.Logf("at most %d bytes on disk; %d samples kept, %d series known, dictionary %d bytes, dropped %v", most, st.Samples, st.Series, st.SeriesBytes, st.Dropped)
	if most > maxSize {
		t.Errorf("%d bytes on disk, cap %d", most, maxSize)
	}
	if st.Dropped[ReasonFull] == 0 {
		t.Fatal("nothing evicted: the test wants the cap reached")
	}
	if st.NewestT != rounds*1000 || st.Samples < 10*series {
		t.Fatalf("kept %d samples, newest %d", st.Samples, st.NewestT)
	}
	// The file's dictionary holds the entries the blocks kept use, and at
	// most one collection's more (deleted by the next transaction).
	used := map[uint32]bool{}
	last := fmt.Sprintf("%s collected in round %d", long, rounds-1)
	_ = b.ForEach(func(blk Block) error {
		for _, s := range blk.Series {
			used[s.Ref] = true
			if s.T[len(s.T)-1] == rounds*1000 && s.Meta.Value().Help != last {
				t.Fatalf("newest sample of %s has help %q", s.Labels, s.Meta.Value().Help)
			}
		}
		return nil
	})
	b.mu.Lock()
	inFile := len(b.series.disk)
	b.mu.Unlock()
	if inFile > len(used)+series || st.Series > 2*st.Samples+1024 {
		t.Fatalf("%d entries in the file, %d in memory, for %d used by the blocks kept", inFile, st.Series, len(used))
	}
}

// checkIndex fails unless the index holds each Meta of its series once,
// counting the series that have it, and no other; and finds each ref by
// its label hash once, and nothing else.
func checkIndex(t *testing.T, b *Buffer) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.series
	refs := map[*sharedMeta]int{}
	for k, e := range s.byRef.All() {
		r := e.ref
		if uint64(r) != k {
			t.Fatalf("ref %d indexed as %d", r, k)
		}
		found := 0
		for x := range s.entriesOf(e.lset.Hash()) {
			if x.ref == r {
				found++
			}
		}
		if found != 1 {
			t.Fatalf("ref %d found %d times by its label hash", r, found)
		}
		if e.meta == nil {
			continue
		}
		if s.metas[e.meta.Meta] != e.meta {
			t.Fatalf("ref %d: its Meta is not the index's", r)
		}
		refs[e.meta]++
	}
	byHash := 0
	for h := range s.byHash.All() {
		for e := range s.entriesOf(h) {
			if e == nil || s.entryOf(e.ref) != e || e.lset.Hash() != h {
				t.Fatalf("label hash %x names entry %+v, not one of its label sets in the index by ref", h, e)
			}
			byHash++
		}
	}
	for h, more := range s.moreByHash {
		if ok := s.byHash.Get(h) != nil; !ok || len(more) == 0 {
			t.Fatalf("label hash %x: %d more refs, first one known %v", h, len(more), ok)
		}
	}
	if byHash != s.byRef.Len() {
		t.Fatalf("%d refs by label hash, %d by ref", byHash, s.byRef.Len())
	}
	for m, sm := range s.metas {
		if sm.Meta != m || sm.refs != refs[sm] || sm.refs == 0 {
			t.Fatalf("Meta %.60q counts %d series, %d have it", m.Help, sm.refs, refs[sm])
		}
	}
}

// A series entry written before metadata existed (a label set alone)
// reads as the zero Meta; one with metadata reads back whole; anything
// else after the labels is damage.
func TestSeriesEntryFormat(t *testing.T) {
	lset := labels.FromStrings("__name__", "m", "a", "b")
	if got, m, err := decodeSeries(encodeLabels(lset)); err != nil || !labels.Equal(got, lset) || !m.IsZero() {
		t.Fatalf("old entry: %v %+v %v", got, m, err)
	}
	want := Meta{Family: "m", Type: "summary", Help: "h", Unit: "bytes", Start: -5}
	if got, m, err := decodeSeries(encodeSeries(lset, want)); err != nil || !labels.Equal(got, lset) || m != want {
		t.Fatalf("entry with metadata: %v %+v %v", got, m, err)
	}
	other := Meta{Family: "other_family", Type: "gauge"} // not a prefix of the name
	if got, m, err := decodeSeries(encodeSeries(lset, other)); err != nil || !labels.Equal(got, lset) || m != other {
		t.Fatalf("entry with another family: %v %+v %v", got, m, err)
	}
	enc := encodeSeries(lset, want)
	for name, bad := range map[string][]byte{
		"unknown trailer": append(encodeLabels(lset), 7),
		"cut short":       enc[:len(enc)-2],
		"trailing bytes":  append(enc, 0),
	} {
		if _, _, err := decodeSeries(bad); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	long := strings.Repeat("é", maxMetaString) // 2 bytes each
	if c := clampMeta(Meta{Help: long}).Help; len(c) > maxMetaString || !strings.HasPrefix(long, c) || len(c) < maxMetaString-1 {
		t.Fatalf("clamped to %d bytes", len(c))
	}
}

// A staleness marker appended without metadata ends the series it ends:
// it goes with the series' newest Meta, not as a series of its own.
func TestStaleMarkerGoesWithTheSeriesMeta(t *testing.T) {
	b := openTest(t, t.TempDir(), 4<<20)
	defer b.Close()
	lset := metaSeries(1)
	b.AppendMeta(Ref{}, lset, metaOf(1), 10_000, 1)
	b.Append(lset, 20_000, math.Float64frombits(value.StaleNaN))
	b.Append(labels.FromStrings("__name__", "never_seen"), 20_000, math.Float64frombits(value.StaleNaN))
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	var got []string
	_ = b.ForEach(func(blk Block) error {
		for _, s := range blk.Series {
			got = append(got, fmt.Sprintf("%s %q %d", s.Labels.Get("__name__"), s.Meta.Value().Help, len(s.T)))
		}
		return nil
	})
	if want := []string{`m1_seconds_total "Help of m1, ä." 2`, `never_seen "" 1`}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
