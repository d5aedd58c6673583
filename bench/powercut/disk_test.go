package main

import (
	"bytes"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func newTestDisk(t *testing.T, size int64) (*volatileDisk, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := openVolatileDisk(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, path
}

// onMedium reads the image file: what a boot after a cut would find.
func onMedium(t *testing.T, path string, off, n int) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b[off : off+n]
}

func fill(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }

func TestCutLosesWhatWasNotFlushed(t *testing.T) {
	d, path := newTestDisk(t, 1<<20)
	must(t, d.WriteAt(fill('a', 4096), 0, false))
	must(t, d.Flush())
	must(t, d.WriteAt(fill('b', 4096), 4096, false)) // never flushed
	must(t, d.WriteAt(fill('c', 512), 8192, true))   // FUA: durable by itself
	must(t, d.WriteAt(fill('d', 512), 0, false))     // over flushed data, not flushed

	// Before the cut the guest reads its own writes.
	got := make([]byte, 8704)
	must(t, d.ReadAt(got, 0))
	want := append(append(append(fill('d', 512), fill('a', 3584)...), fill('b', 4096)...), fill('c', 512)...)
	if !bytes.Equal(got, want) {
		t.Fatal("the guest does not read back what it wrote")
	}

	must(t, d.Cut(rand.New(rand.NewPCG(1, 2)), 0))
	if !bytes.Equal(onMedium(t, path, 0, 4096), fill('a', 4096)) {
		t.Error("flushed page changed by the cut, or the unflushed write over it survived")
	}
	if !bytes.Equal(onMedium(t, path, 4096, 4096), make([]byte, 4096)) {
		t.Error("an unflushed write survived a cut that keeps nothing")
	}
	if !bytes.Equal(onMedium(t, path, 8192, 512), fill('c', 512)) {
		t.Error("a FUA write was lost")
	}
	if st := d.Stats(); st.PagesLost != 2 || st.PagesKept != 0 || st.Flushes != 1 {
		t.Errorf("stats %+v, want 2 pages lost, 0 kept, 1 flush", st)
	}
	// The cache is empty after the cut: reads come from the medium.
	must(t, d.ReadAt(got[:4096], 4096))
	if !bytes.Equal(got[:4096], make([]byte, 4096)) {
		t.Error("the cache outlived the cut")
	}
}

func TestCutKeepsWholePagesByChance(t *testing.T) {
	d, path := newTestDisk(t, 1<<20)
	const pages = 200
	for p := range pages {
		// Two sector writes per page: a cut keeps or loses them together.
		must(t, d.WriteAt(fill(byte(p), 512), int64(p)*pageSize, false))
		must(t, d.WriteAt(fill(byte(p), 512), int64(p)*pageSize+3584, false))
	}
	must(t, d.Cut(rand.New(rand.NewPCG(3, 4)), 0.5))
	medium := onMedium(t, path, 0, pages*pageSize)
	kept := 0
	for p := range pages {
		first := medium[p*pageSize : p*pageSize+512]
		last := medium[p*pageSize+3584 : p*pageSize+4096]
		if !bytes.Equal(first, last) {
			t.Fatalf("page %d torn inside", p)
		}
		if bytes.Equal(first, fill(byte(p), 512)) && p != 0 {
			kept++
		}
	}
	if st := d.Stats(); st.PagesKept+st.PagesLost != pages {
		t.Errorf("stats %+v, want %d pages in all", st, pages)
	}
	if kept < pages/4 || kept > pages*3/4 {
		t.Errorf("kept %d of %d pages with keep 0.5", kept, pages)
	}
}

func TestUnalignedWrite(t *testing.T) {
	d, path := newTestDisk(t, 1<<20)
	must(t, d.WriteAt(fill('x', 1000), 100, false))
	must(t, d.Flush())
	got := onMedium(t, path, 0, 1536)
	want := append(append(make([]byte, 100), fill('x', 1000)...), make([]byte, 436)...)
	if !bytes.Equal(got, want) {
		t.Error("an unaligned write changed bytes around it")
	}
}

// TestNBDWithQemuClient drives the NBD server with qemu's own client, the
// one the rig's VM uses.
func TestNBDWithQemuClient(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no external programs")
	}
	qemuIO, err := exec.LookPath("qemu-io")
	if err != nil {
		t.Skip("qemu-io (Debian's qemu-utils) not installed")
	}
	d, path := newTestDisk(t, 1<<20)
	sock := filepath.Join(t.TempDir(), "nbd.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := serveOneNBD(ln, d)
	// qemu flushes when it closes a drive; the rig's qemu is killed, so
	// this one is too, once its last write has arrived.
	cmd := exec.Command(qemuIO, "-f", "raw", "-t", "writeback",
		"-c", "write -P 0x5a 4096 4096", "-c", "flush", "-c", "write -P 0x77 65536 512", "-c", "sleep 60000",
		"nbd+unix:///?socket="+sock)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 512)
	for deadline := time.Now().Add(30 * time.Second); !bytes.Equal(got, fill(0x77, 512)); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("qemu-io's writes did not arrive")
		}
		must(t, d.ReadAt(got, 65536))
	}
	cmd.Process.Kill()
	cmd.Wait()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	must(t, d.Cut(rand.New(rand.NewPCG(5, 6)), 0))
	if !bytes.Equal(onMedium(t, path, 4096, 4096), fill(0x5a, 4096)) {
		t.Error("flushed write lost")
	}
	if !bytes.Equal(onMedium(t, path, 65536, 512), make([]byte, 512)) {
		t.Error("unflushed write survived the cut")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
