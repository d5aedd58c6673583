package buffer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
)

// crashCopy copies the buffer's files as a process killed now leaves them
// (what was written is in the page cache, and so in the files) into a new
// directory: the test's stand-in for kill -9 and a restart.
func crashCopy(t *testing.T, dir string) string {
	t.Helper()
	to := t.TempDir()
	for _, name := range []string{FileName, FileName + JournalSuffix} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// recoveredAfterCrash opens a crash copy of the buffer in dir, as the
// restart after a kill -9 does, drains it, and returns the samples of
// each series, by its labels; it fails the test unless there are series
// series.
func recoveredAfterCrash(t *testing.T, dir string, maxSize int64, series int) map[string][]int64 {
	t.Helper()
	after := openTest(t, crashCopy(t, dir), maxSize)
	defer after.Close()
	got := drain(t, after)
	if len(got) != series {
		t.Fatalf("recovered %d series, want %d", len(got), series)
	}
	return got
}

func journalBytes(t *testing.T, dir string) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, FileName+JournalSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// What waited in the head for a tick survives a crash of the process
// without any commit: the journal has it, and the next Open commits it.
func TestJournalKeepsTheHeadAcrossAProcessCrash(t *testing.T) {
	dir := t.TempDir()
	b := openTest(t, dir, 4<<20)
	defer b.Close()
	const series = 300
	for round := range 8 {
		appendRound(b, series, int64(1_000_000+round*15_000))
		if err := b.Journal(); err != nil {
			t.Fatal(err)
		}
	}
	// The last round was appended after the last-but-one Journal: it has
	// not waited a tick yet, and a crash now loses it.
	if err := b.Journal(); err != nil {
		t.Fatal(err)
	}
	appendRound(b, series, 1_000_000+8*15_000) // not journaled
	if st := b.Stats(); st.Blocks != 0 {
		t.Fatalf("%d blocks committed; the test wants none", st.Blocks)
	}

	after := openTest(t, crashCopy(t, dir), 4<<20)
	defer after.Close()
	got := drain(t, after)
	if len(got) != series {
		t.Fatalf("recovered %d series, want %d", len(got), series)
	}
	for k, ts := range got {
		if len(ts) != 8 || ts[0] != 1_000_000 || ts[7] != 1_000_000+7*15_000 {
			t.Fatalf("%s: recovered %v, want the 8 journaled rounds", k, ts)
		}
	}
	if n := journalBytes(t, after.path[:len(after.path)-len(FileName)]); n != 0 {
		t.Errorf("journal holds %d bytes after the replay was committed, want 0", n)
	}
	// A commit empties the journal, and the buffer lets go of what it
	// knew of the journal's series.
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := len(b.journaled); n != 0 || journalBytes(t, dir) != 0 {
		t.Errorf("after a commit: the journal holds %d bytes, the buffer what it has of %d series; want none", journalBytes(t, dir), n)
	}
}

// A crash with the link up but slow: the journal knows what the receiver
// acknowledged (not replayed, so not sent again to a receiver that would
// refuse it as out of order, and with it the newer samples of its
// request), what was in flight (it may be at the receiver), and what was
// never sent (NeverSent: the sender must not take it for a duplicate).
func TestJournalKnowsWhatWasSentAndDelivered(t *testing.T) {
	series := func(i int) labels.Labels { return labels.FromStrings("__name__", "m", "i", fmt.Sprint(i)) }
	waitTicks := func(b *Buffer) {
		t.Helper()
		for range 2 { // the second journals what waited a tick
			if err := b.Journal(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// openLive opens a buffer whose live block in flight, if any, is
	// handed back before it is closed.
	openLive := func(dir string) *Buffer {
		b := openTest(t, dir, 4<<20)
		t.Cleanup(func() {
			b.LiveFailed(Block{})
			b.Close()
		})
		return b
	}
	take := func(b *Buffer, n int) Block {
		t.Helper()
		blk, ok := b.TakeLive(n, false)
		if !ok {
			t.Fatal("nothing taken live")
		}
		return blk
	}
	// reopen crashes the process and returns what the journal replayed,
	// per series, and NeverSent, by series.
	reopen := func(dir string) (map[string][]int64, map[string]int64) {
		t.Helper()
		after := openTest(t, crashCopy(t, dir), 4<<20)
		t.Cleanup(func() { after.Close() })
		never := map[string]int64{}
		if err := after.ForEach(func(blk Block) error {
			for _, s := range blk.Series {
				if from, ok := after.NeverSent()[s.Ref]; ok {
					never[s.Labels.String()] = from
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return drain(t, after), never
	}

	t.Run("journaled, then taken", func(t *testing.T) {
		dir := t.TempDir()
		b := openLive(dir)
		for _, ts := range []int64{1000, 2000, 3000} {
			for i := range 3 {
				b.Append(series(i), ts, float64(ts+int64(i))) // as drain checks
			}
		}
		waitTicks(b)
		take(b, 3) // series 0: delivered
		b.LiveDone()
		blk := take(b, 3) // series 1: settled in part, and sent
		settled := Block{Series: []Series{{Ref: blk.Series[0].Ref, T: blk.Series[0].T[:2], V: blk.Series[0].V[:2]}}}
		b.LiveFailed(settled)
		take(b, 3) // series 1's last: in flight at the crash
		got, never := reopen(dir)
		want := map[string][]int64{series(1).String(): {3000}, series(2).String(): {1000, 2000, 3000}}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("replayed %v, want %v: nothing delivered, everything else", got, want)
		}
		if want := map[string]int64{series(2).String(): 1000}; fmt.Sprint(never) != fmt.Sprint(want) {
			t.Errorf("NeverSent %v, want %v: series 2 never taken, series 1's last in flight", never, want)
		}
	})
	t.Run("taken, then journaled in flight", func(t *testing.T) {
		dir := t.TempDir()
		b := openLive(dir)
		b.Append(series(0), 1000, 1000)
		take(b, 10)
		b.Append(series(0), 2000, 2000) // waits behind the block in flight
		waitTicks(b)
		got, never := reopen(dir)
		if want := map[string][]int64{series(0).String(): {1000, 2000}}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("replayed %v, want %v", got, want)
		}
		if want := map[string]int64{series(0).String(): 2000}; fmt.Sprint(never) != fmt.Sprint(want) {
			t.Errorf("NeverSent %v, want %v: the sample in flight may be at the receiver, the one behind it not", never, want)
		}
	})
	t.Run("a journal of the first format", func(t *testing.T) {
		// Left by an older ferry that died: it replays, and as it did not
		// tell what it sent, all of it may be at the receiver.
		dir := t.TempDir()
		b := openTest(t, dir, 4<<20)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		lb := encodeSeries(series(0), Meta{})
		payload := binary.AppendUvarint(nil, 1) // one series defined
		payload = binary.AppendUvarint(payload, 7)
		payload = binary.AppendUvarint(payload, uint64(len(lb)))
		payload = append(payload, lb...)
		payload = binary.AppendUvarint(payload, 1)   // one group
		payload = binary.AppendVarint(payload, 5000) // at 5000
		payload = binary.AppendUvarint(payload, 1)   // of one sample
		payload = binary.AppendUvarint(payload, 7)   // of series 7
		payload = appendValue(payload, nil, 0, 5000) // its value
		z := snappy.Encode(nil, payload)
		rec := binary.AppendUvarint(bytes.Clone(journalMagicV1), uint64(len(z)))
		rec = binary.BigEndian.AppendUint32(rec, crc32.Checksum(z, crcTable))
		if err := os.WriteFile(filepath.Join(dir, FileName+JournalSuffix), append(rec, z...), 0o600); err != nil {
			t.Fatal(err)
		}
		got, never := reopen(dir)
		if want := map[string][]int64{series(0).String(): {5000}}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("replayed %v, want %v", got, want)
		}
		if len(never) != 0 {
			t.Errorf("NeverSent %v, want none", never)
		}
	})
}

// A sent record that does not fit in the journal's share cannot be traded
// for a commit, as Journal's records are: the commit would wait for the
// block being taken. TakeLive leaves the record out and asks for a commit.
func TestTakeLiveWithAFullJournalAsksForACommit(t *testing.T) {
	dir := t.TempDir()
	b := openTest(t, dir, 4<<20)
	t.Cleanup(func() {
		b.LiveFailed(Block{})
		b.Close()
	})
	appendRound(b, 10, 1_000_000)
	for range 2 { // journaled: the block's sent record is due
		if err := b.Journal(); err != nil {
			t.Fatal(err)
		}
	}
	b.writeMu.Lock()
	b.jf.size = journalShare(b.maxSize) // as if full
	b.writeMu.Unlock()
	select {
	case <-b.HeadFull():
	default:
	}
	taken := make(chan bool)
	go func() {
		_, ok := b.TakeLive(100, false)
		taken <- ok
	}()
	select {
	case ok := <-taken:
		if !ok {
			t.Fatal("nothing taken")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("TakeLive did not return: it waits for a commit that waits for its block")
	}
	select {
	case <-b.HeadFull():
	default:
		t.Error("no commit asked for")
	}
}

// With the link up the sender takes each collection before it has waited a
// tick: the journal is never written.
func TestJournalStaysEmptyWhileTheSenderKeepsUp(t *testing.T) {
	dir := t.TempDir()
	b := openTest(t, dir, 4<<20)
	defer b.Close()
	for round := range 10 {
		appendRound(b, 200, int64(1_000_000+round*15_000))
		if _, ok := b.TakeLive(1<<20, false); !ok {
			t.Fatal("nothing to take")
		}
		b.LiveDone()
		if err := b.Journal(); err != nil {
			t.Fatal(err)
		}
		if err := b.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if n := journalBytes(t, dir); n != 0 {
		t.Errorf("journal holds %d bytes although everything was delivered live", n)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := len(b.journaled); n != 0 {
		t.Errorf("the buffer keeps what the journal has of %d series, although it has none", n)
	}
}

// A live block in flight is journaled too: a receiver that stalls does not
// widen what a crash loses.
func TestJournalCoversTheLiveBlockInFlight(t *testing.T) {
	dir := t.TempDir()
	b := openTest(t, dir, 4<<20)
	appendRound(b, 50, 1_000_000)
	if err := b.Journal(); err != nil { // marks
		t.Fatal(err)
	}
	if _, ok := b.TakeLive(1<<20, false); !ok {
		t.Fatal("nothing to take")
	}
	if err := b.Journal(); err != nil { // writes, although in flight
		t.Fatal(err)
	}
	after := openTest(t, crashCopy(t, dir), 4<<20)
	defer after.Close()
	if got := drain(t, after); len(got) != 50 {
		t.Fatalf("recovered %d series, want the 50 in flight", len(got))
	}
	b.LiveDone()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// A torn tail (a power cut in the middle of a write) or a damaged record
// ends the replay there; what came before is recovered.
func TestJournalReplayStopsAtDamage(t *testing.T) {
	dir := t.TempDir()
	b := openTest(t, dir, 4<<20)
	defer b.Close()
	lset := labels.FromStrings("__name__", "m")
	for i := range 6 {
		b.Append(lset, int64(1000*(i+1)), float64(i)*1.5)
		if err := b.Journal(); err != nil { // each call writes the sample before
			t.Fatal(err)
		}
	}
	whole, err := os.ReadFile(filepath.Join(dir, FileName+JournalSuffix))
	if err != nil {
		t.Fatal(err)
	}
	replay := func(data []byte) (ts []int64, err error) {
		_, _, err = replayJournal(bytes.NewReader(data), func(l labels.Labels, _ Meta, t int64, v float64, _ bool) {
			if v != float64(len(ts))*1.5 || !labels.Equal(l, lset) {
				panic(fmt.Sprintf("replayed %s %d %v", l, t, v))
			}
			ts = append(ts, t)
		})
		return ts, err
	}
	ts, err := replay(whole)
	if err != nil || fmt.Sprint(ts) != "[1000 2000 3000 4000 5000]" {
		t.Fatalf("whole journal: %v, %v; want the 5 journaled samples", ts, err)
	}
	for cut := len(journalMagic); cut < len(whole); cut++ {
		if ts, _ := replay(whole[:cut]); len(ts) >= 5 {
			t.Fatalf("cut at %d of %d bytes: %d samples replayed", cut, len(whole), len(ts))
		}
	}
	damaged := bytes.Clone(whole)
	damaged[len(damaged)-2] ^= 0xff
	if ts, err := replay(damaged); err == nil || len(ts) != 4 {
		t.Fatalf("last record damaged: %v, %v; want the 4 before it and an error", ts, err)
	}
}

func FuzzReplayJournal(f *testing.F) {
	f.Add(append(bytes.Clone(journalMagic), 3, 0, 0, 0, 0, 1, 2, 3))
	f.Add([]byte(fmt.Sprint(journalMagic)))
	f.Add(append(bytes.Clone(journalMagicV1), 3, 0, 0, 0, 0, 1, 2, 3))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _ = replayJournal(bytes.NewReader(data), func(labels.Labels, Meta, int64, float64, bool) {})
	})
}

// "ferry buffer export" and "stat" open the buffer read-only: after a crash
// they see what the journal holds too, in memory, and leave the journal for
// the agent's next start to commit.
func TestReadOnlyOpenReadsTheJournal(t *testing.T) {
	dir := t.TempDir()
	b := openTest(t, dir, 4<<20)
	defer b.Close()
	const series = 50
	appendRound(b, series, 1_000_000)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 3; round++ {
		appendRound(b, series, int64(1_000_000+round*15_000))
		if err := b.Journal(); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Journal(); err != nil {
		t.Fatal(err)
	}
	crashed := crashCopy(t, dir)
	journal := journalBytes(t, crashed)

	ro, err := Open(Options{Dir: crashed, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]int64{}
	blocks := 0
	err = ro.ForEach(func(blk Block) error {
		blocks++
		for _, s := range blk.Series {
			got[s.Labels.String()] = append(got[s.Labels.String()], s.T...)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if len(got) != series || blocks < 2 {
		t.Fatalf("%d series in %d blocks, want %d in the committed ones and the journal's", len(got), blocks, series)
	}
	for k, ts := range got {
		if want := []int64{1_000_000, 1_015_000, 1_030_000, 1_045_000}; !slices.Equal(ts, want) {
			t.Fatalf("%s: %v, want the committed round and the three journaled ones, once each", k, ts)
		}
	}
	if n := journalBytes(t, crashed); n != journal {
		t.Fatalf("journal %d bytes after a read-only open, was %d", n, journal)
	}
	after := openTest(t, crashed, 4<<20) // the agent's next start commits it
	defer after.Close()
	if n := len(drain(t, after)); n != series {
		t.Fatalf("the agent recovered %d series after the read-only open, want %d", n, series)
	}
}

// While the live path fails (the link is down), a collection is journaled
// as soon as it is in the head, not a tick later: a crash right after it
// loses nothing of it. Once a live block is delivered again, collections
// wait their tick again (with the link up, the journal stays empty).
func TestJournalTakesEachCollectionAtOnceWhileTheLinkIsDown(t *testing.T) {
	dir := t.TempDir()
	b := openTest(t, dir, 4<<20)
	defer b.Close()
	appendRound(b, 40, 1_000_000)
	b.Collected()
	if _, ok := b.TakeLive(1<<20, false); !ok {
		t.Fatal("nothing to take")
	}
	select {
	case <-b.JournalDue():
		t.Fatal("journal due before the live path failed")
	default:
	}
	b.LiveFailed(Block{}) // the receiver is down
	appendRound(b, 40, 1_015_000)
	b.Collected()
	select {
	case <-b.JournalDue():
	default:
		t.Fatal("a collection while the live path fails: journal not due")
	}
	if err := b.Journal(); err != nil {
		t.Fatal(err)
	}
	after := openTest(t, crashCopy(t, dir), 4<<20)
	got := drain(t, after)
	after.Close()
	if len(got) != 40 {
		t.Fatalf("recovered %d series, want 40", len(got))
	}
	for k, ts := range got {
		if !slices.Equal(ts, []int64{1_000_000, 1_015_000}) {
			t.Fatalf("%s: recovered %v, want both collections", k, ts)
		}
	}

	// The link is back: the sender delivers the head, and the next
	// collection waits its tick again.
	if _, ok := b.TakeLive(1<<20, false); !ok {
		t.Fatal("nothing to take")
	}
	b.LiveDone()
	size := journalBytes(t, dir)
	appendRound(b, 40, 1_030_000)
	b.Collected()
	select {
	case <-b.JournalDue():
		t.Fatal("journal due with the live path delivering")
	default:
	}
	if err := b.Journal(); err != nil {
		t.Fatal(err)
	}
	if n := journalBytes(t, dir); n != size {
		t.Errorf("journal grew by %d bytes for a collection that has not waited a tick", n-size)
	}
}

// A series the buffer forgot (nothing held it, and its newest time was
// pruned from what it remembers of forgotten series) may come back with a
// sample older than the journal has of it, which the buffer accepts: the
// journal's record of the series goes with its state, so that the sample
// is journaled, and a crash then keeps it or counts it, never loses it
// silently.
func TestJournalForgetsWhatTheBufferForgets(t *testing.T) {
	dir := t.TempDir()
	b := openTest(t, dir, 4<<20)
	defer b.Close()
	lset := labels.FromStrings("__name__", "m")
	ref := b.AppendRef(Ref{}, lset, 2_000_000, 2_000_000)
	for range 2 { // the second journals what waited a tick
		if err := b.Journal(); err != nil {
			t.Fatal(err)
		}
	}
	if blk, ok := b.TakeLive(1000, false); !ok || blk.Samples() != 1 {
		t.Fatalf("TakeLive = %d samples, %v; want the one appended", blk.Samples(), ok)
	}
	b.LiveDone()
	b.mu.Lock()
	b.forgetStateLocked(ref.e.ref)
	clear(b.forgotten)
	b.mu.Unlock()

	b.AppendRef(ref, lset, 1_500_000, 1_500_000)
	for range 2 {
		if err := b.Journal(); err != nil {
			t.Fatal(err)
		}
	}
	after := openTest(t, crashCopy(t, dir), 4<<20)
	defer after.Close()
	got := drain(t, after)[lset.String()]
	if !slices.Contains(got, 1_500_000) && after.Stats().Dropped[ReasonOutOfOrder] != 1 {
		t.Errorf("after the crash: samples at %v, %d dropped out of order; want the one at 1500000 kept or counted", got, after.Stats().Dropped[ReasonOutOfOrder])
	}
}

// A record that would take the journal past its share of the cap is not
// written: the head is committed instead. The buffer must not count what
// that record held as journaled: a later record that took the series'
// labels and values for granted would not replay, and a crash would lose
// it and every record after it.
func TestJournalCountsOnlyWhatItWrote(t *testing.T) {
	dir := t.TempDir()
	const maxSize = 1 << 20 // a journal share of 64 KiB
	b := openTest(t, dir, maxSize)
	defer b.Close()
	const series = 5000 // their labels alone are more than the share
	appendRound(b, series, 1_000_000)
	if _, ok := b.TakeLive(1<<20, false); !ok {
		t.Fatal("nothing to take")
	}
	b.LiveFailed(Block{}) // the link is down: everything not journaled is due
	if err := b.Journal(); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.Blocks == 0 || journalBytes(t, dir) != 0 {
		t.Fatalf("%d blocks, a journal of %d bytes; the test wants the record committed instead", st.Blocks, journalBytes(t, dir))
	}
	const again = 100 // few enough that the record fits, labels and all
	appendRound(b, again, 1_015_000)
	if err := b.Journal(); err != nil {
		t.Fatal(err)
	}
	if journalBytes(t, dir) == 0 {
		t.Fatal("the second collection was not journaled; the test wants it in the journal")
	}

	got := recoveredAfterCrash(t, dir, maxSize, series)
	for i := range series {
		k := labels.FromStrings("__name__", "m", "i", fmt.Sprint(i)).String()
		want := []int64{1_000_000}
		if i < again {
			want = append(want, 1_015_000)
		}
		if !slices.Equal(got[k], want) {
			t.Fatalf("%s: recovered %v, want %v: the committed collection and the journaled one", k, got[k], want)
		}
	}
}

// A record the journal fails to write (a full or failing disk) does not
// count as journaled either: the head is committed in its place, and a
// crash afterwards loses nothing.
func TestJournalWriteFailureCommitsInstead(t *testing.T) {
	dir := t.TempDir()
	b := openTest(t, dir, 4<<20)
	defer b.Close()
	const series = 50
	appendRound(b, series, 1_000_000)
	if _, ok := b.TakeLive(1<<20, false); !ok {
		t.Fatal("nothing to take")
	}
	b.LiveFailed(Block{}) // the link is down: everything not journaled is due
	rw := b.jf.f
	ro, err := os.Open(rw.Name())
	if err != nil {
		t.Fatal(err)
	}
	b.jf.f = ro // writes fail
	if err := b.Journal(); err == nil {
		t.Fatal("Journal with a journal that cannot be written: no error")
	}
	b.jf.f = rw
	ro.Close()
	b.mu.Lock()
	claimed := len(b.journaled)
	b.mu.Unlock()
	if st := b.Stats(); claimed != 0 || st.Blocks == 0 {
		t.Fatalf("after the failed write: %d series counted as journaled, %d blocks; want none, and the head committed", claimed, st.Blocks)
	}
	appendRound(b, series, 1_015_000)
	if err := b.Journal(); err != nil {
		t.Fatal(err)
	}
	for k, ts := range recoveredAfterCrash(t, dir, 4<<20, series) {
		if !slices.Equal(ts, []int64{1_000_000, 1_015_000}) {
			t.Fatalf("%s: recovered %v, want the committed collection and the journaled one", k, ts)
		}
	}
}
