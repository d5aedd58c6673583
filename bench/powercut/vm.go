package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// guestInit is the guest's /init (busybox sh): load the modules for virtio
// and ext4, mount the data disk (ext4 replays its journal here), let the
// agent's inspect command put what the host should read into /out, hand
// /out to the host as a tar on the second disk, then run the agent with a
// heartbeat of the guest's clock on the console. Lines for the rig start
// with "RIG "; the heartbeat forks only sleep, which costs wall time under
// emulation.
const guestInit = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /data /out
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod /lib/modules/$m 2>/dev/null; done
ifconfig lo 127.0.0.1 up
hostname device
. /rig.conf
i=0; while [ ! -b /dev/vdb ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
if mount -t ext4 /dev/vda /data; then echo "RIG mounted"; else echo "RIG mount-failed"; poweroff -f; fi
dmesg | grep "EXT4-fs" | sed 's/^/RIG dmesg /'
(inspect) >/out/inspect.log 2>&1; rc=$?
tar -cf /dev/vdb -C /out .
sync
echo "RIG inspected rc=$rc"
read up rest </proc/uptime; echo "RIG epoch $(($(date +%s) - ${up%.*}))"
(while :; do read up rest </proc/uptime; echo "RIG clock $up"; sleep 1; done) &
read up rest </proc/uptime; echo "RIG start $up"
(run)
echo "RIG agent-exited rc=$?"
poweroff -f
`

// vmConfig is what every boot shares.
type vmConfig struct {
	Kernel  string // vmlinuz
	Initrd  string // built by buildInitrd
	NBDSock string // the data disk (a volatileDisk behind NBD)
	OutDisk string // raw image the guest writes /out to
	KVM     bool
	MemMiB  int
}

// kvmUsable tells whether qemu can use KVM here: /dev/kvm opens, and a
// guest with no disk runs on it for two seconds (inside some VMs, nested
// KVM opens but qemu aborts when it sets the CPU's registers).
func kvmUsable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	probe := exec.Command("qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", "64",
		"-nodefaults", "-display", "none", "-no-reboot")
	if probe.Start() != nil {
		return false
	}
	exited := make(chan struct{})
	go func() { _ = probe.Wait(); close(exited) }()
	select {
	case <-exited:
		return false
	case <-time.After(2 * time.Second):
		_ = probe.Process.Kill()
		<-exited
		return true
	}
}

// qemuCommand starts the guest with its clock at start (the guest has no
// battery-backed clock worth the name; the rig keeps time monotonic across
// boots, as NTP would).
//
// Without KVM the guest runs under TCG with -icount sleep=off: the virtual
// clock advances with the instructions executed and jumps over idle time,
// so minutes of an agent's mostly idle life pass in seconds of wall time.
// The guest cannot tell: its timers, ext4's journal commits and the
// agent's sync interval all run on that clock.
func qemuCommand(c vmConfig, start time.Time) *exec.Cmd {
	args := []string{
		"-machine", "q35", "-m", fmt.Sprint(c.MemMiB), "-smp", "1",
		"-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot", "-nic", "none",
		"-rtc", "base=" + start.UTC().Format("2006-01-02T15:04:05") + ",clock=vm",
		"-kernel", c.Kernel, "-initrd", c.Initrd,
		// Not quiet: the kernel's own lines show a slow boot (TCG on a
		// loaded host) is alive.
		"-append", "console=ttyS0 panic=-1",
		// cache=writeback: the guest sees a volatile write cache and
		// flushes it when it must; qemu passes each flush on to the NBD
		// server, which is the only place unflushed writes live.
		"-drive", "file=nbd+unix:///?socket=" + c.NBDSock + ",format=raw,if=virtio,cache=writeback",
		"-drive", "file=" + c.OutDisk + ",format=raw,if=virtio,cache=writeback",
	}
	if c.KVM {
		args = append(args, "-accel", "kvm", "-cpu", "host")
	} else {
		args = append(args, "-accel", "tcg", "-cpu", "max", "-icount", "shift=4,sleep=off")
	}
	return exec.Command("qemu-system-x86_64", args...)
}

// consoleLines sends the guest's console output line by line, with
// carriage returns removed, and closes the channel when qemu is gone.
func consoleLines(r io.Reader, log io.Writer) <-chan string {
	ch := make(chan string, 1024)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			fmt.Fprintln(log, line)
			ch <- line
		}
	}()
	return ch
}

// buildInitrd writes a newc cpio archive with busybox, the kernel modules
// in load order, the init script, the agent's files and its commands.
func buildInitrd(path, busybox string, modules []string, agent Agent) error {
	var buf bytes.Buffer
	cw := &cpioWriter{w: &buf}
	for _, d := range []string{"bin", "lib", "lib/modules", "usr", "usr/lib", "data", "out", "tmp", "proc", "sys", "dev"} {
		cw.dir(d)
	}
	if err := cw.fileFrom("bin/busybox", busybox, 0o755); err != nil {
		return err
	}
	var order []string
	for _, m := range modules {
		if err := cw.fileFrom("lib/modules/"+filepath.Base(m), m, 0o644); err != nil {
			return err
		}
		order = append(order, filepath.Base(m))
	}
	cw.file("modules.order", []byte(strings.Join(order, "\n")+"\n"), 0o644)
	cw.file("init", []byte(guestInit), 0o755)
	cw.file("usr/lib/os-release", []byte("ID=powercut\nNAME=\"powercut guest\"\nVERSION_ID=1\n"), 0o644)
	conf := fmt.Sprintf("inspect() {\n%s\n}\nrun() {\n%s\n}\n", agent.InspectCommand(), agent.RunCommand())
	cw.file("rig.conf", []byte(conf), 0o644)
	for guest, host := range agent.GuestFiles() {
		if err := cw.fileFrom(strings.TrimPrefix(guest, "/"), host, 0o755); err != nil {
			return err
		}
	}
	cw.trailer()
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// cpioWriter writes the "newc" cpio format the kernel unpacks as initramfs.
type cpioWriter struct {
	w   *bytes.Buffer
	ino int
}

func (c *cpioWriter) entry(name string, mode int, data []byte) {
	c.ino++
	fmt.Fprintf(c.w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	c.w.WriteString(name)
	c.w.WriteByte(0)
	c.pad()
	c.w.Write(data)
	c.pad()
}

func (c *cpioWriter) pad() {
	for c.w.Len()%4 != 0 {
		c.w.WriteByte(0)
	}
}

func (c *cpioWriter) dir(name string)                         { c.entry(name, 0o040755, nil) }
func (c *cpioWriter) file(name string, data []byte, perm int) { c.entry(name, 0o100000|perm, data) }
func (c *cpioWriter) trailer()                                { c.entry("TRAILER!!!", 0, nil) }

func (c *cpioWriter) fileFrom(name, hostPath string, perm int) error {
	data, err := os.ReadFile(hostPath)
	if err != nil {
		return err
	}
	c.file(name, data, perm)
	return nil
}
