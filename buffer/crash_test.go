package buffer

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// The crash test runs this test binary as a writer process that commits
// as fast as it can and prints, after each commit returns, the timestamp it
// committed; the test kills it with SIGKILL at random moments and checks,
// after each kill, what a restart finds.
const crashWriterEnv = "FERRY_BUFFER_CRASH_WRITER"

const crashCap = 2 << 20

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashWriterEnv); dir != "" {
		crashWriter(dir)
		return
	}
	os.Exit(m.Run())
}

func crashWriter(dir string) {
	b, err := Open(Options{Dir: dir, MaxSize: crashCap})
	if err != nil {
		fmt.Println("open error:", err)
		os.Exit(1)
	}
	st := b.Stats()
	ts := max(st.NewestT, 0)
	out := bufio.NewWriter(os.Stdout)
	for {
		ts += 1000
		for i := range 300 {
			b.Append(labels.FromStrings("__name__", "m", "i", strconv.Itoa(i)), ts, float64(ts)*float64(i))
		}
		if err := b.Commit(); err != nil {
			fmt.Println("commit error:", err)
			os.Exit(1)
		}
		fmt.Fprintln(out, ts)
		out.Flush()
	}
}

func TestCrashedWriterLosesNoCommittedBlock(t *testing.T) {
	kills := 100
	if testing.Short() {
		kills = 20
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(11, 12))
	claimed := map[int64]bool{}
	for kill := range kills {
		cmd := writerCommand()
		cmd.Env = append(os.Environ(), crashWriterEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Kill after a random delay, once the writer has committed at least
		// once in this run.
		delay := time.After(time.Duration(50+rng.IntN(250)) * time.Millisecond)
		got := 0
	wait:
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					break wait
				}
				ts, err := strconv.ParseInt(line, 10, 64)
				if err != nil {
					t.Fatalf("kill %d: writer said %q", kill, line)
				}
				claimed[ts] = true
				got++
			case <-delay:
				if got > 0 {
					_ = cmd.Process.Kill()
					delay = nil
				} else {
					delay = time.After(10 * time.Millisecond)
				}
			}
		}
		_ = cmd.Wait()

		size, allocated := fileUsage(t, filepath.Join(dir, FileName))
		if size > crashCap || allocated > crashCap {
			t.Fatalf("kill %d: file %d bytes, %d allocated; cap %d", kill, size, allocated, crashCap)
		}
		checkClaims(t, kill, dir, claimed)
	}
}

// writerCommand runs this test binary as the writer; under qemu-user
// (scripts/test-cross.sh sets FERRY_TEST_EXEC) through the emulator too.
func writerCommand() *exec.Cmd {
	if emulator := os.Getenv("FERRY_TEST_EXEC"); emulator != "" {
		return exec.Command(emulator, os.Args[0], "-test.run=^$")
	}
	return exec.Command(os.Args[0], "-test.run=^$")
}

// checkClaims opens the buffer as a restarted agent would and checks that
// every claimed commit newer than the oldest data kept (eviction removes the
// oldest) is there, whole.
func checkClaims(t *testing.T, kill int, dir string, claimed map[int64]bool) {
	t.Helper()
	b, err := Open(Options{Dir: dir, MaxSize: crashCap})
	if err != nil {
		t.Fatalf("kill %d: reopen: %v", kill, err)
	}
	defer b.Close()
	st := b.Stats()
	if st.FilesMovedAside != 0 {
		t.Fatalf("kill %d: the buffer file was unreadable after the kill", kill)
	}
	present := map[int64]int{}
	blocks, err := b.Read(0, st.Samples+1)
	if err != nil {
		t.Fatal(err)
	}
	for _, blk := range blocks {
		for _, s := range blk.Series {
			for _, ts := range s.T {
				present[ts]++
			}
		}
	}
	for ts := range claimed {
		if ts >= st.OldestT && present[ts] != 300 {
			t.Fatalf("kill %d: commit at %d claimed, %d of its 300 samples found (oldest kept %d)", kill, ts, present[ts], st.OldestT)
		}
	}
}
