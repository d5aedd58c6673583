package buffer

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// smallFilesystem mounts a tmpfs of the given size for the test; it needs
// root. Under CI a missing mount is a failure, not a skip.
func smallFilesystem(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot mount a small filesystem (needs root): %v: %s", err, out)
		}
		t.Skipf("cannot mount a small filesystem (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// TestDiskTroubleKeepsRunningAndRecovers fills the filesystem under the
// buffer, or makes it read-only, while samples keep coming: commits fail
// with an error, what cannot be kept in memory is counted, and when the
// disk is back the kept data is written, every sample accounted for.
func TestDiskTroubleKeepsRunningAndRecovers(t *testing.T) {
	if testing.Short() {
		t.Skip("passes 4 MiB through memory; runs without -short")
	}
	for _, trouble := range []string{"full"} {
		t.Run(trouble, func(t *testing.T) {
			mnt := smallFilesystem(t, "16m")
			dir := filepath.Join(mnt, "buffer")
			b := openTest(t, dir, 64<<20) // the cap is not what stops it here
			defer b.Close()

			var undo func()
			switch trouble {
			case "full":
				filler := filepath.Join(mnt, "filler")
				_ = exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=64k").Run() // until ENOSPC
				undo = func() { os.Remove(filler) }
			case "read-only":
				if out, err := exec.Command("mount", "-o", "remount,ro", mnt).CombinedOutput(); err != nil {
					t.Fatalf("remount ro: %v: %s", err, out)
				}
				undo = func() {
					if out, err := exec.Command("mount", "-o", "remount,rw", mnt).CombinedOutput(); err != nil {
						t.Fatalf("remount rw: %v: %s", err, out)
					}
				}
			}

			rng := rand.New(rand.NewPCG(21, 22))
			series := make([]labels.Labels, 2000)
			for i := range series {
				series[i] = labels.FromStrings("__name__", "m", "i", fmt.Sprint(i))
			}
			appended, failures := 0, 0
			commit := func(round int) error {
				for _, lset := range series {
					b.Append(lset, int64(round+1)*15_000, rng.Float64())
				}
				appended += len(series)
				return b.Commit()
			}
			// Enough rounds to pass the memory bound of maxPendingBytes.
			round := 0
			for ; round < 300; round++ {
				if err := commit(round); err != nil {
					failures++
				}
			}
			st := b.Stats()
			if failures < 290 {
				t.Fatalf("only %d of 300 commits failed on a %s disk", failures, trouble)
			}
			if st.Dropped[ReasonWriteError] == 0 {
				t.Fatalf("more than %d bytes must have been dropped, counted: %+v", maxPendingBytes, st)
			}

			undo()
			if err := commit(round); err != nil {
				t.Fatalf("the disk is back, the commit still fails: %v", err)
			}
			st = b.Stats()
			kept := 0
			if err := b.ForEach(func(blk Block) error { kept += blk.Samples(); return nil }); err != nil {
				t.Fatal(err)
			}
			lost := int(st.Dropped[ReasonWriteError] + st.Dropped[ReasonFull])
			if kept+lost != appended {
				t.Fatalf("kept %d + dropped %d = %d, appended %d", kept, lost, kept+lost, appended)
			}
			if kept < 100_000 {
				t.Fatalf("only %d samples kept through the trouble; memory should have held about %d bytes", kept, maxPendingBytes)
			}
		})
	}
}

// TestFullDiskWithBacklogKeepsTheNewest: when the disk fills up below the
// cap, the file's own pages become the cap: new data still goes in, the
// oldest goes out, counted, and nothing is lost uncounted.
func TestFullDiskWithBacklogKeepsTheNewest(t *testing.T) {
	mnt := smallFilesystem(t, "16m")
	b := openTest(t, filepath.Join(mnt, "buffer"), 64<<20)
	defer b.Close()
	rng := rand.New(rand.NewPCG(23, 24))
	series := make([]labels.Labels, 2000)
	for i := range series {
		series[i] = labels.FromStrings("__name__", "m", "i", fmt.Sprint(i))
	}
	appended, failures := 0, 0
	for round := range 200 {
		if round == 100 {
			_ = exec.Command("dd", "if=/dev/zero", "of="+filepath.Join(mnt, "filler"), "bs=64k").Run()
		}
		for _, lset := range series {
			b.Append(lset, int64(round+1)*15_000, rng.Float64())
		}
		appended += len(series)
		if err := b.Commit(); err != nil {
			failures++
		}
	}
	st := b.Stats()
	if failures > 0 || st.NewestT != 200*15_000 {
		t.Fatalf("%d commits failed; newest kept %d: %+v", failures, st.NewestT, st)
	}
	if st.Dropped[ReasonFull] == 0 || st.Samples+int(st.Dropped[ReasonFull]) != appended {
		t.Fatalf("kept %d + dropped %v, appended %d", st.Samples, st.Dropped, appended)
	}
}
