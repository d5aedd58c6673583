package buffer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
)

func openTest(t *testing.T, dir string, maxSize int64) *Buffer {
	t.Helper()
	b, err := Open(Options{Dir: dir, MaxSize: maxSize})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return b
}

// appendRound appends one sample for each of n series at time ts.
func appendRound(b *Buffer, n int, ts int64) {
	for i := range n {
		b.Append(labels.FromStrings("__name__", "m", "i", fmt.Sprint(i)), ts, float64(ts)+float64(i))
	}
}

// drain reads and acknowledges everything, returning samples per series.
func drain(t *testing.T, b *Buffer) map[string][]int64 {
	t.Helper()
	got := map[string][]int64{}
	for {
		blocks, err := b.Read(0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(blocks) == 0 {
			return got
		}
		for _, blk := range blocks {
			for _, s := range blk.Series {
				got[s.Labels.String()] = append(got[s.Labels.String()], s.T...)
				for i, v := range s.V {
					if want := float64(s.T[i]) + float64(seriesIndexOf(s.Labels)); v != want {
						t.Fatalf("%s at %d: value %v, want %v", s.Labels, s.T[i], v, want)
					}
				}
			}
		}
		if err := b.Ack(blocks[len(blocks)-1].Seq); err != nil {
			t.Fatal(err)
		}
	}
}

func seriesIndexOf(l labels.Labels) int {
	var i int
	fmt.Sscan(l.Get("i"), &i)
	return i
}

func TestCommittedDataSurvivesReopenAndAckedDataIsGone(t *testing.T) {
	dir := t.TempDir()
	b := openTest(t, dir, 8<<20)
	for ts := int64(1000); ts <= 5000; ts += 1000 {
		appendRound(b, 20, ts)
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	appendRound(b, 20, 6000) // in the head only: Close must commit it
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = openTest(t, dir, 8<<20)
	st := b.Stats()
	if st.Samples != 120 || st.Series != 20 || st.OldestT != 1000 || st.NewestT != 6000 {
		t.Fatalf("after reopen: %+v", st)
	}
	// Acknowledge the first three blocks, as the sender would.
	blocks, err := b.Read(0, 60)
	if err != nil || len(blocks) != 3 {
		t.Fatalf("read: %d blocks, %v", len(blocks), err)
	}
	if err := b.Ack(blocks[2].Seq); err != nil {
		t.Fatal(err)
	}
	b.Close()

	b = openTest(t, dir, 8<<20)
	defer b.Close()
	got := drain(t, b)
	if len(got) != 20 {
		t.Fatalf("%d series, want 20", len(got))
	}
	for s, ts := range got {
		if fmt.Sprint(ts) != "[4000 5000 6000]" {
			t.Errorf("%s: timestamps %v, want the unacknowledged [4000 5000 6000]", s, ts)
		}
	}
}

func TestOutOfOrderSampleIsCountedNotStored(t *testing.T) {
	b := openTest(t, t.TempDir(), 8<<20)
	defer b.Close()
	l := labels.FromStrings("__name__", "m")
	b.Append(l, 2000, 1)
	b.Append(l, 2000, 2)
	b.Append(l, 1000, 3)
	st := b.Stats()
	if st.HeadSamples != 1 || st.Dropped[ReasonOutOfOrder] != 2 {
		t.Fatalf("head %d, dropped %v", st.HeadSamples, st.Dropped)
	}
}

func TestFullBufferEvictsOldestAndCounts(t *testing.T) {
	const maxSize = 1 << 20
	b := openTest(t, t.TempDir(), maxSize)
	defer b.Close()
	appended := 0
	rng := rand.New(rand.NewPCG(3, 4))
	for ts := int64(1); ts <= 400; ts++ {
		// Random values, so that blocks do not compress away.
		for i := range 200 {
			b.Append(labels.FromStrings("__name__", "m", "i", fmt.Sprint(i)), ts*1000, rng.Float64())
		}
		appended += 200
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		if st := b.Stats(); st.FileBytes > maxSize {
			t.Fatalf("round %d: file is %d bytes, cap %d", ts, st.FileBytes, maxSize)
		}
	}
	st := b.Stats()
	if st.Dropped[ReasonFull] == 0 {
		t.Fatalf("nothing evicted: %+v", st)
	}
	if got := st.Samples + int(st.Dropped[ReasonFull]); got != appended {
		t.Fatalf("buffered %d + dropped %d = %d, appended %d", st.Samples, st.Dropped[ReasonFull], got, appended)
	}
	if st.NewestT != 400_000 {
		t.Fatalf("newest %d: the newest data must be kept", st.NewestT)
	}
}

func TestCorruptFileIsMovedAside(t *testing.T) {
	for name, damage := range map[string]func([]byte) []byte{
		"truncated": func(b []byte) []byte { return b[:len(b)/3] },
		"zeroed":    func(b []byte) []byte { return make([]byte, len(b)) },
		"garbage":   func(b []byte) []byte { return []byte(strings.Repeat("not a bbolt file ", 500)) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			b := openTest(t, dir, 8<<20)
			appendRound(b, 10, 1000)
			b.Close()
			path := filepath.Join(dir, FileName)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, damage(data), 0o600); err != nil {
				t.Fatal(err)
			}

			b = openTest(t, dir, 8<<20)
			defer b.Close()
			if st := b.Stats(); st.FilesMovedAside != 1 || st.Samples != 0 {
				t.Fatalf("stats after opening a %s file: %+v", name, st)
			}
			aside, _ := filepath.Glob(path + ".corrupt-*")
			if len(aside) != 1 {
				t.Fatalf("moved-aside files: %v", aside)
			}
			appendRound(b, 10, 2000)
			if err := b.Commit(); err != nil {
				t.Fatalf("fresh buffer does not take data: %v", err)
			}
		})
	}
}

func TestReadOnlyOpenWhileInUseRefusesClearly(t *testing.T) {
	dir := t.TempDir()
	b := openTest(t, dir, 8<<20)
	defer b.Close()
	_, err := Open(Options{Dir: dir, MaxSize: 8 << 20, ReadOnly: true})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("read-only open of a buffer in use: %v", err)
	}
}

// TestSizeBoundHolds checks the cap at every commit, as the file's size
// and as the blocks it has allocated (what du shows), for caps that are
// small, odd and larger, with commits that vary in size, while a sender
// acknowledges part of the data now and then.
func TestSizeBoundHolds(t *testing.T) {
	for _, tc := range []struct {
		maxSize int64
		thin    bool
	}{{1 << 20, false}, {3<<20 + 12345, false}, {16 << 20, false}, {1 << 20, true}, {3<<20 + 12345, true}} {
		maxSize := tc.maxSize
		t.Run(fmt.Sprintf("%d thin=%v", maxSize, tc.thin), func(t *testing.T) {
			if testing.Short() && maxSize > 2<<20 {
				t.Skip("the larger caps run without -short (TestCapHoldsUnderRandomChurn covers small ones in both)")
			}
			dir := t.TempDir()
			b, err := Open(Options{Dir: dir, MaxSize: maxSize, Thin: tc.thin})
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(uint64(maxSize), 5))
			var maxUsed int64
			// Enough random samples per commit to fill the cap in about
			// half the commits; some commits many times larger than others.
			maxSeries := int(maxSize / 300)
			series := make([]labels.Labels, maxSeries)
			for i := range series {
				series[i] = labels.FromStrings("__name__", "m", "i", fmt.Sprint(i))
			}
			for round := range 100 {
				n := 50 + rng.IntN(maxSeries-50)
				ts := int64(round+1) * 15_000
				for _, lset := range series[:n] {
					b.Append(lset, ts, rng.Float64())
				}
				if err := b.Commit(); err != nil {
					t.Fatal(err)
				}
				if rng.IntN(10) == 0 {
					blocks, _ := b.Read(0, 1)
					if len(blocks) > 0 {
						_ = b.Ack(blocks[0].Seq)
					}
				}
				size, allocated := fileUsage(t, filepath.Join(dir, FileName))
				if size > maxSize || allocated > maxSize {
					t.Fatalf("round %d: file %d bytes, %d allocated; cap %d", round, size, allocated, maxSize)
				}
				maxUsed = max(maxUsed, b.Stats().UsedBytes)
			}
			st := b.Stats()
			if st.Dropped[ReasonFull]+st.Dropped[ReasonThinned] == 0 {
				t.Fatalf("the test never filled the buffer: %+v", st)
			}
			if tc.thin && st.Dropped[ReasonThinned] == 0 {
				t.Errorf("thinning on, but nothing thinned: %+v", st.Dropped)
			}
			// The bound must not be bought by leaving most of the cap empty.
			if maxUsed < maxSize/2 {
				t.Errorf("at most %d bytes in use under a cap of %d", maxUsed, maxSize)
			}
			b.Close()
			if size, allocated := fileUsage(t, filepath.Join(dir, FileName)); size > maxSize || allocated > maxSize {
				t.Fatalf("after close: file %d bytes, %d allocated; cap %d", size, allocated, maxSize)
			}
		})
	}
}

func fileUsage(t *testing.T, path string) (size, allocated int64) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Size, st.Blocks * 512
}

func TestCapBeyond32BitAddressSpaceIsRefused(t *testing.T) {
	_, err := Open(Options{Dir: t.TempDir(), MaxSize: MaxSize32 + 1})
	if is32 := strconv.IntSize == 32; is32 != (err != nil) {
		t.Fatalf("32-bit %v: opening a %d-byte cap gave %v", is32, MaxSize32+1, err)
	}
}

// TestCrashDuringOpenIsForgivenOnce: one crash while opening (a power cut,
// the OOM killer) must not cost the backlog; repeated crashes must not
// become a crash loop.
func TestCrashDuringOpenIsForgivenOnce(t *testing.T) {
	dir := t.TempDir()
	b := openTest(t, dir, 8<<20)
	appendRound(b, 10, 1000)
	b.Close()
	markerPath := filepath.Join(dir, FileName+openingMarkerSuffix)

	// As if the process died inside Open: the marker stays behind.
	if err := os.WriteFile(markerPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	b = openTest(t, dir, 8<<20)
	if st := b.Stats(); st.FilesMovedAside != 0 || st.Samples != 10 {
		t.Fatalf("after one crashed open: %+v", st)
	}
	b.Close()
	if _, err := os.Stat(markerPath); !os.IsNotExist(err) {
		t.Fatalf("marker left after a good open: %v", err)
	}

	// Two crashed opens in a row: the file goes aside, what it holds is
	// salvaged into a fresh one, read without bbolt.
	if err := os.WriteFile(markerPath, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	b = openTest(t, dir, 8<<20)
	if st := b.Stats(); st.FilesMovedAside != 1 || st.Samples != 10 {
		t.Fatalf("after two crashed opens: %+v", st)
	}
	b.Close()

	// Opening a salvage made after crashed opens crashes twice too (the
	// marker keeps 's' while its opens crash): an empty file.
	if err := (marker{opens: maxCrashedOpens, salvaged: true}).write(markerPath); err != nil {
		t.Fatal(err)
	}
	b = openTest(t, dir, 8<<20)
	defer b.Close()
	if st := b.Stats(); st.FilesMovedAside != 1 || st.Samples != 0 {
		t.Fatalf("after a salvage crashed twice: %+v", st)
	}
}

func TestTimestampsOutOfBoundsAreCountedNotStored(t *testing.T) {
	b := openTest(t, t.TempDir(), 8<<20)
	defer b.Close()
	l := labels.FromStrings("__name__", "m")
	for _, ts := range []int64{0, -1, math.MinInt64, maxTimestamp, math.MaxInt64} {
		b.Append(l, ts, 1)
	}
	b.Append(labels.FromStrings("__name__", "ok"), 1000, 1)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	st := b.Stats()
	if st.Dropped[ReasonOutOfBounds] != 5 || st.Samples != 1 {
		t.Fatalf("stats: %+v", st)
	}
	if blocks, err := b.Read(0, 10); err != nil || len(blocks) != 1 || blocks[0].Samples() != 1 {
		t.Fatalf("the good sample must be readable: %v %v", blocks, err)
	}
}

func TestDamagedBlockCostsOnlyItsSamplesCounted(t *testing.T) {
	dir := t.TempDir()
	b := openTest(t, dir, 8<<20)
	appendRound(b, 100, 1000)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	appendRound(b, 100, 2000)
	b.Close()

	// Damage the payload of the first block, in place: the file stays a
	// valid bbolt file.
	damageFirstBlock(t, filepath.Join(dir, FileName))

	b = openTest(t, dir, 8<<20)
	defer b.Close()
	// The damaged block comes first; the sender must get the next one at
	// once, not wait for the next commit.
	if blocks, err := b.Read(0, 1000); err != nil || len(blocks) == 0 {
		t.Fatalf("first read after the damaged block: %d blocks, %v", len(blocks), err)
	}
	got := drain(t, b)
	st := b.Stats()
	n := 0
	for _, ts := range got {
		n += len(ts)
	}
	if st.FilesMovedAside != 0 || st.Dropped[ReasonCorrupt] == 0 {
		t.Fatalf("read %d samples; stats: %+v", n, st)
	}
	if n+int(st.Dropped[ReasonCorrupt]) != 200 {
		t.Fatalf("read %d + dropped %d, want 200 in all", n, st.Dropped[ReasonCorrupt])
	}
}

// damageFirstBlock flips a byte in the payload of the first block (100
// samples from 1000, span 0), in place: the file stays a valid bbolt file.
// bbolt copies pages on write: every copy is damaged, the live one among them.
func damageFirstBlock(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	header := append(binary.AppendVarint([]byte{blockVersion, 100}, 1000), 0)
	found := 0
	for i := bytes.Index(data, header); i >= 0; i = nextIndex(data, header, i) {
		data[i+40] ^= 0xff
		found++
	}
	if found == 0 {
		t.Fatal("first block not found in the file")
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func nextIndex(data, sep []byte, after int) int {
	if j := bytes.Index(data[after+1:], sep); j >= 0 {
		return after + 1 + j
	}
	return -1
}

// TestChurningSeriesDoNotGrowTheDictionary: a target whose label values
// change all the time (ids, pids) must not grow the series dictionary,
// in memory or in the file, past what the buffered blocks still use.
func TestChurningSeriesDoNotGrowTheDictionary(t *testing.T) {
	const maxSize = 1 << 20
	dir := t.TempDir()
	b := openTest(t, dir, maxSize)
	long := strings.Repeat("x", 200)
	maxSeries := 0
	for round := range 400 {
		for i := range 50 {
			b.Append(labels.FromStrings("__name__", "m", "id", fmt.Sprintf("%d-%d-%s", round, i, long)), int64(round+1)*1000, 1)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		if round%10 == 0 { // the sender drains now and then
			blocks, err := b.Read(0, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if len(blocks) > 0 {
				if err := b.Ack(blocks[len(blocks)-1].Seq); err != nil {
					t.Fatal(err)
				}
			}
		}
		if size, allocated := fileUsage(t, filepath.Join(dir, FileName)); size > maxSize || allocated > maxSize {
			t.Fatalf("round %d: file %d bytes, %d allocated; cap %d", round, size, allocated, maxSize)
		}
		maxSeries = max(maxSeries, b.Stats().Series)
	}
	if maxSeries > 3000 {
		t.Fatalf("the dictionary reached %d series; at most 500 are in use at any time", maxSeries)
	}
	b.Close()

	// The series that remain resolve after a restart.
	b = openTest(t, dir, maxSize)
	defer b.Close()
	blocks, err := b.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, blk := range blocks {
		for _, s := range blk.Series {
			if !strings.HasSuffix(s.Labels.Get("id"), long) {
				t.Fatalf("series %v lost its labels", s.Labels)
			}
		}
	}
	if st := b.Stats(); st.Dropped[ReasonCorrupt] != 0 {
		t.Fatalf("blocks refer to removed series: %+v", st)
	}
}

// TestAppendRefOfAForgottenSeries: the Ref of a series the buffer has
// forgotten (as collectSeries does after churn) is stale; a sample
// appended with it goes to the series' new entry, in the index, and to the
// receiver under its labels.
func TestAppendRefOfAForgottenSeries(t *testing.T) {
	b := openTest(t, t.TempDir(), 4<<20)
	defer b.Close()
	x := labels.FromStrings("__name__", "m", "id", "x")
	rx := b.AppendRef(Ref{}, x, 10_000, 1)
	deliverLive(b)
	forgetByChurn(t, b, 20_000)
	if b.series.entryOf(rx.e.ref) != nil {
		t.Fatal("x was not forgotten: the test shows nothing")
	}
	got := b.AppendRef(rx, x, 30_000, 2)
	if got == rx || got == (Ref{}) || b.series.entryOf(got.e.ref) != got.e {
		t.Fatalf("with a forgotten series' hint: ref %+v, want a new one in the index", got.e)
	}
	sent := deliverLive(b)
	if len(sent) != 1 || !labels.Equal(sent[0].Labels, x) || !slices.Equal(sent[0].T, []int64{30_000}) {
		t.Fatalf("sent %v, want x's sample at 30000", sent)
	}
}

func TestAppendRefHintIsCheckedNotTrusted(t *testing.T) {
	b := openTest(t, t.TempDir(), 8<<20)
	defer b.Close()
	x, y := labels.FromStrings("__name__", "x"), labels.FromStrings("__name__", "y")
	rx := b.AppendRef(Ref{}, x, 1000, 1)
	ry := b.AppendRef(Ref{}, y, 1000, 2)
	if rx == (Ref{}) || ry == (Ref{}) || rx == ry {
		t.Fatalf("refs %v and %v, want two different ones", rx, ry)
	}
	if got := b.AppendRef(rx, x, 2000, 3); got != rx {
		t.Errorf("with its own hint: ref %v, want %v", got, rx)
	}
	// A hint that names another series, or none, is ignored.
	if got := b.AppendRef(rx, y, 2000, 4); got != ry {
		t.Errorf("with x's ref as the hint of y: ref %v, want %v", got, ry)
	}
	if got := b.AppendRef(Ref{}, x, 3000, 5); got != rx {
		t.Errorf("without a hint: ref %v, want %v", got, rx)
	}
	if got := b.AppendRef(rx, labels.EmptyLabels(), 3000, 6); got != (Ref{}) {
		t.Errorf("empty labels: ref %v, want none", got)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	b.ForEach(func(blk Block) error {
		for _, s := range blk.Series {
			for i := range s.T {
				got[s.Labels.String()] = append(got[s.Labels.String()], fmt.Sprintf("%d:%v", s.T[i], s.V[i]))
			}
		}
		return nil
	})
	want := map[string][]string{`{__name__="x"}`: {"1000:1", "2000:3", "3000:5"}, `{__name__="y"}`: {"1000:2", "2000:4"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("buffered %v, want %v", got, want)
	}
}

// Each series the buffer knows has an index entry: at the heavy workload's
// 10k series, the next size class up (112 bytes) is 160 kB more of ferry's
// live heap.
func TestIndexEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(indexed{}); n > 96 {
		t.Errorf("an index entry takes %d bytes, more than 96", n)
	}
}
