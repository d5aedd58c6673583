package buffer

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// TestCapHoldsAtLargeCaps fills a buffer at the largest caps ferry takes
// (1 GiB on 64-bit, MaxSize32 on every system) and churns past it: label
// sets of 1 MiB that change every commit, with a few blocks beside them, so
// that the file reaches its cap in a few dozen commits. The file and the
// journal stay within the cap after every commit, and the newest data is
// kept. It writes about 1.5 times the cap to disk: skipped with -short.
func TestCapHoldsAtLargeCaps(t *testing.T) {
	if testing.Short() {
		t.Skip("writes up to 1.5 GiB; runs without -short")
	}
	caps := []int64{MaxSize32}
	if strconv.IntSize == 64 {
		caps = append(caps, 1<<30)
	}
	for _, maxSize := range caps {
		t.Run(fmt.Sprint(maxSize>>20, "MiB"), func(t *testing.T) {
			start := time.Now()
			dir := t.TempDir()
			b := openTest(t, dir, maxSize)
			defer b.Close()
			huge := strings.Repeat("z", 1<<20)
			const perCommit = 40 // MiB of label sets
			rounds := int(maxSize/(perCommit<<20))*3/2 + 2
			var most int64
			for round := range rounds {
				ts := int64(round+1) * 15_000
				for i := range perCommit {
					b.Append(labels.FromStrings("__name__", "big", "i", fmt.Sprint(i), "v", fmt.Sprint(round, huge)), ts, 1)
				}
				appendRound(b, 2000, ts)
				if err := b.Journal(); err != nil {
					t.Fatal(err)
				}
				if err := b.Commit(); err != nil {
					t.Fatal(err)
				}
				n := onDisk(t, dir)
				most = max(most, n)
				if n > maxSize {
					t.Fatalf("round %d: %d bytes on disk, cap %d", round, n, maxSize)
				}
				if st := b.Stats(); st.NewestT != ts {
					t.Fatalf("round %d: the newest collection is not kept: %+v", round, st)
				}
			}
			st := b.Stats()
			t.Logf("cap %d: at most %d bytes on disk in %d commits, %v; %d series, %d samples kept, dropped %v", maxSize, most, rounds, time.Since(start).Round(time.Millisecond), st.Series, st.Samples, st.Dropped)
			if most < maxSize*3/4 || st.Dropped[ReasonFull] == 0 {
				t.Fatalf("the cap was not reached: at most %d bytes of %d", most, maxSize)
			}
		})
	}
}
