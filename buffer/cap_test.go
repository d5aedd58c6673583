package buffer

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// onDisk returns every byte the buffer in dir takes: the file and the
// journal, each the larger of its size and the blocks it has allocated.
func onDisk(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	for _, name := range []string{FileName, FileName + JournalSuffix} {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(dir, name), &st); err != nil {
			if os.IsNotExist(err) {
				continue
			}
			t.Fatal(err)
		}
		total += max(st.Size, st.Blocks*512)
	}
	return total
}

// logBuffer is a logger for tests that read what was logged.
func logBuffer() (*slog.Logger, *bytes.Buffer) {
	var out bytes.Buffer
	return slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo})), &out
}

// TestCapHoldsWithMoreSeriesThanItHolds: the label sets of one collection
// alone are more than the cap. The cap holds, the newest samples of the
// series that fit are kept, the rest are counted, and the buffer says once
// which cap the workload needs.
func TestCapHoldsWithMoreSeriesThanItHolds(t *testing.T) {
	const maxSize = 2 << 20
	dir := t.TempDir()
	log, logged := logBuffer()
	b, err := Open(Options{Dir: dir, MaxSize: maxSize, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	series := make([]labels.Labels, 20_000)
	for i := range series {
		series[i] = labels.FromStrings("__name__", "node_some_metric_with_a_long_name_total", "instance", "device-0001:9100",
			"job", "node", "device", fmt.Sprintf("dev%05d", i), "mode", "somewhat-long-mode-name")
	}
	appended := 0
	var most int64
	for round := range 10 {
		for _, lset := range series {
			b.Append(lset, int64(round+1)*15_000, float64(round))
		}
		appended += len(series)
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		most = max(most, onDisk(t, dir))
	}
	st := b.Stats()
	t.Logf("cap %d: at most %d bytes on disk; kept %d samples; dropped %v; needed %d", maxSize, most, st.Samples, st.Dropped, st.NeededBytes)
	if most > maxSize {
		t.Errorf("%d bytes on disk, cap %d", most, maxSize)
	}
	if st.Samples == 0 || st.NewestT != 10*15_000 {
		t.Fatalf("nothing of the newest collection kept: %+v", st)
	}
	if st.Samples+int(st.Dropped[ReasonFull]+st.Dropped[ReasonCapTooSmall]) != appended {
		t.Fatalf("kept %d + dropped %v, appended %d", st.Samples, st.Dropped, appended)
	}
	if st.Dropped[ReasonCapTooSmall] == 0 {
		t.Fatalf("series that did not fit are not counted as %s: %v", ReasonCapTooSmall, st.Dropped)
	}
	if st.NeededBytes <= maxSize {
		t.Fatalf("Stats.NeededBytes %d: want the cap the workload needs, above %d", st.NeededBytes, maxSize)
	}
	if n := strings.Count(logged.String(), "needed_bytes"); n != 1 {
		t.Fatalf("the needed cap logged %d times, want once:\n%s", n, logged)
	}
	if n := strings.Count(logged.String(), "\n"); n > 3 {
		t.Fatalf("%d log lines for 10 commits:\n%s", n, logged)
	}

	// With the cap it names, one collection fits whole.
	dir2 := t.TempDir()
	b2, err := Open(Options{Dir: dir2, MaxSize: st.NeededBytes})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	for _, lset := range series {
		b2.Append(lset, 15_000, 1)
	}
	if err := b2.Commit(); err != nil {
		t.Fatal(err)
	}
	if st2 := b2.Stats(); st2.Samples != len(series) || onDisk(t, dir2) > st.NeededBytes {
		t.Fatalf("at the needed cap %d: kept %d of %d, %d bytes on disk", st.NeededBytes, st2.Samples, len(series), onDisk(t, dir2))
	}
}

// TestCapHoldsWhileLabelSetsChurn: offline, every collection brings new
// label sets (ids, pids, a value that changes). The label sets of evicted
// blocks go with them: the cap holds and blocks are kept.
func TestCapHoldsWhileLabelSetsChurn(t *testing.T) {
	for _, tc := range []struct {
		name        string
		maxSize     int64
		series      int
		valueBytes  int
		rounds      int
		wantSamples int
	}{
		{"many small", 1 << 20, 200, 200, 300, 1000},
		{"many per collection", 1 << 20, 1500, 300, 60, 1000},
		{"one huge value", 1 << 20, 1, 300 << 10, 40, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b := openTest(t, dir, tc.maxSize)
			defer b.Close()
			long := strings.Repeat("x", tc.valueBytes)
			var most int64
			for round := range tc.rounds {
				for i := range tc.series {
					b.Append(labels.FromStrings("__name__", "m", "id", fmt.Sprintf("%d-%d-%s", round, i, long)), int64(round+1)*1000, float64(i))
				}
				if err := b.Journal(); err != nil {
					t.Fatal(err)
				}
				if err := b.Commit(); err != nil {
					t.Fatal(err)
				}
				most = max(most, onDisk(t, dir))
			}
			st := b.Stats()
			t.Logf("cap %d: at most %d bytes on disk; kept %d samples in %d blocks; %d series known", tc.maxSize, most, st.Samples, st.Blocks, st.Series)
			if most > tc.maxSize {
				t.Errorf("%d bytes on disk, cap %d", most, tc.maxSize)
			}
			if st.Samples < tc.wantSamples || st.NewestT != int64(tc.rounds)*1000 {
				t.Fatalf("kept %d samples, newest %d; want at least %d and the newest: %+v", st.Samples, st.NewestT, tc.wantSamples, st)
			}
			if st.Series > 2*st.Samples+1024 {
				t.Fatalf("%d series known for %d samples", st.Series, st.Samples)
			}
		})
	}
}

// TestJournalStaysWithinItsShare: the journal of a head whose label sets
// are large (a huge value that changes every collection) stays within its
// share of the cap: when a tick's record would not fit, Journal commits.
func TestJournalStaysWithinItsShare(t *testing.T) {
	const maxSize = 1 << 20
	dir := t.TempDir()
	b := openTest(t, dir, maxSize)
	defer b.Close()
	huge := strings.Repeat("y", 100<<10)
	var most int64
	for round := range 30 {
		b.Append(labels.FromStrings("__name__", "m", "v", fmt.Sprint(round, huge)), int64(round+1)*1000, 1)
		appendRound(b, 20, int64(round+1)*1000)
		if err := b.Journal(); err != nil {
			t.Fatal(err)
		}
		most = max(most, journalBytes(t, dir))
		if n := onDisk(t, dir); n > maxSize {
			t.Fatalf("round %d: %d bytes on disk, cap %d", round, n, maxSize)
		}
	}
	if most > journalShare(maxSize) {
		t.Fatalf("the journal reached %d bytes, its share is %d", most, journalShare(maxSize))
	}
	if st := b.Stats(); st.Samples == 0 || st.NewestT < 29_000 {
		t.Fatalf("the journal's overflow was not committed: %+v", st)
	}
}

// TestLargeLabelSetsSurviveReopen: label sets larger than a chunk of the
// series bucket come back whole after a restart, and their blocks resolve.
func TestLargeLabelSetsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	b := openTest(t, dir, 4<<20)
	want := map[string]bool{}
	for i, n := range []int{1, seriesChunk - 40, seriesChunk, 3*seriesChunk + 7, 200 << 10} {
		lset := labels.FromStrings("__name__", "m", "i", fmt.Sprint(i), "v", strings.Repeat(string(rune('a'+i)), n))
		b.Append(lset, 1000, float64(1000+i))
		want[lset.String()] = true
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openTest(t, dir, 4<<20)
	defer b.Close()
	got := drain(t, b)
	if len(got) != len(want) {
		t.Fatalf("%d series back, want %d", len(got), len(want))
	}
	for k := range got {
		if !want[k] {
			t.Fatalf("series %.100s... came back changed", k)
		}
	}
	if st := b.Stats(); st.Dropped[ReasonCorrupt] != 0 || st.FilesMovedAside != 0 {
		t.Fatalf("%+v", st)
	}
}
