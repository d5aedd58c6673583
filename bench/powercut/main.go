// Command powercut cuts the power under an agent, again and again, and
// checks each time that what the agent said was durable is still there.
//
// The agent runs in a qemu VM whose data disk keeps unflushed writes only in
// a volatile cache (disk.go); the rig kills qemu with SIGKILL at a random
// moment, drops that cache, boots again and compares what the agent
// recovered with what it claimed on the console before the cut. See
// README.md in this directory.
package main

import (
	"archive/tar"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	work, kernelDir, ferry, label, report string
	cuts                                  int
	syncInterval, scrapeInterval          time.Duration
	minDelay, maxDelay                    time.Duration
	maxBytes                              int64
	keep                                  float64
	seed                                  uint64
	diskMiB                               int
}

func main() {
	var o options
	flag.StringVar(&o.work, "work", "bin/powercut", "working directory: disk images, console logs")
	flag.StringVar(&o.kernelDir, "kernel", "bin/powercut/kernel", "the unpacked Debian kernel and modules.list (setup.sh)")
	flag.StringVar(&o.ferry, "ferry", "bin/ferry", "ferry's static binary")
	flag.StringVar(&o.label, "label", "", "name of this run in the report (default: the sync interval)")
	flag.StringVar(&o.report, "report", "", "append the table as Markdown to this file")
	flag.IntVar(&o.cuts, "cuts", 20, "power cuts")
	flag.DurationVar(&o.syncInterval, "sync-interval", time.Minute, "ferry's --storage.sync-interval")
	flag.DurationVar(&o.scrapeInterval, "scrape-interval", 15*time.Second, "ferry's --scrape.interval")
	flag.DurationVar(&o.minDelay, "min-delay", 10*time.Second, "shortest time ferry runs before a cut (guest clock)")
	flag.DurationVar(&o.maxDelay, "max-delay", 3*time.Minute, "longest time ferry runs before a cut (guest clock)")
	flag.Int64Var(&o.maxBytes, "max-size", 8<<20, "ferry's --storage.max-size in bytes")
	flag.Float64Var(&o.keep, "keep", 0.5, "chance that a cut writes out an unflushed page instead of losing it")
	flag.Uint64Var(&o.seed, "seed", uint64(time.Now().UnixNano()), "random seed (printed, to repeat a run)")
	flag.IntVar(&o.diskMiB, "disk-mib", 64, "size of the ext4 data disk")
	flag.Parse()
	if o.label == "" {
		o.label = "--storage.sync-interval=" + o.syncInterval.String()
	}
	agent := ferryAgent{binary: o.ferry, syncInterval: o.syncInterval, scrapeInterval: o.scrapeInterval, maxBytes: o.maxBytes}
	ok, err := run(o, agent)
	if err != nil {
		fmt.Fprintln(os.Stderr, "powercut:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

// row is one cut and what the boot after it found.
type row struct {
	cut         int
	delay       time.Duration // how long the agent ran before the cut (guest clock)
	commits     int           // claims the agent made in that run
	claimed     int           // samples it claimed durable, in all, at the cut
	newClaimed  int           // of which claimed in the run before the cut
	found       int           // samples recovered after the cut
	lost        int           // claimed but not recovered
	unclaimed   int           // recovered but never claimed: the batch in flight
	dups        int           // the same series and timestamp twice
	window      time.Duration // guest time from the newest claimed sample to the cut
	dataBytes   int64
	replayed    bool   // ext4 replayed its journal at mount
	clean       bool   // mounted, data opened, agent started without trouble
	trouble     string // why not clean
	flushes     int    // disk flushes during the run
	bytesFlush  int64  // bytes the run made durable
	pagesLost   int    // unflushed pages the cut dropped
	pagesKept   int    // unflushed pages the cut wrote out
	bootSeconds float64
}

func run(o options, agent Agent) (bool, error) {
	if err := os.MkdirAll(o.work, 0o755); err != nil {
		return false, err
	}
	kernel, modules, err := readKernel(o.kernelDir)
	if err != nil {
		return false, err
	}
	initrd := filepath.Join(o.work, "initrd.cpio")
	if err := buildInitrd(initrd, "/bin/busybox", modules, agent); err != nil {
		return false, fmt.Errorf("initramfs: %w", err)
	}
	dataImg := filepath.Join(o.work, "data.img")
	outImg := filepath.Join(o.work, "out.img")
	os.Remove(dataImg)
	if err := exec.Command("truncate", "-s", fmt.Sprintf("%dM", o.diskMiB), dataImg).Run(); err != nil {
		return false, err
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", dataImg).CombinedOutput(); err != nil {
		return false, fmt.Errorf("mkfs.ext4: %v: %s", err, out)
	}
	disk, err := openVolatileDisk(dataImg)
	if err != nil {
		return false, err
	}
	defer disk.Close()
	consoleLog, err := os.Create(filepath.Join(o.work, "console.log"))
	if err != nil {
		return false, err
	}
	defer consoleLog.Close()

	kvm := kvmUsable()
	rng := rand.New(rand.NewPCG(o.seed, 7))
	fmt.Printf("powercut: %s, %d cuts, %s, seed %d, keep %.2f\n", o.label, o.cuts,
		map[bool]string{true: "KVM", false: "TCG with -icount sleep=off (no usable /dev/kvm)"}[kvm], o.seed, o.keep)
	cfg := vmConfig{Kernel: kernel, Initrd: initrd, NBDSock: filepath.Join(o.work, "data.sock"), OutDisk: outImg, KVM: kvm, MemMiB: 256}

	var (
		rows     []row
		prev     map[Sample]struct{} // what the last boot recovered
		last     bootResult          // the run before the current cut
		clock    = time.Now()
		allClean = true
	)
	for boot := 0; boot <= o.cuts; boot++ {
		var delay time.Duration
		if boot < o.cuts {
			delay = o.minDelay + time.Duration(rng.Int64N(int64(o.maxDelay-o.minDelay)+1))
		}
		before := disk.Stats()
		res, err := bootOnce(cfg, agent, disk, clock, delay, boot == o.cuts, rng, consoleLog)
		if err != nil {
			return false, fmt.Errorf("boot %d: %w", boot, err)
		}
		if res.lastEpoch > 0 {
			clock = time.Unix(res.lastEpoch+2, 0)
		}
		cur := map[Sample]struct{}{}
		dups := 0
		for _, s := range res.recovered.Samples {
			if _, ok := cur[s]; ok {
				dups++
			}
			cur[s] = struct{}{}
		}
		if boot > 0 {
			r := compare(prev, cur, last)
			r.cut, r.dups, r.dataBytes = boot, dups, res.recovered.DataBytes
			r.replayed, r.clean, r.trouble = res.replayed, res.clean(), res.trouble
			r.bootSeconds = res.bootSeconds
			r.flushes, r.bytesFlush = last.flushes, last.bytesFlushed
			r.pagesLost, r.pagesKept = last.pagesLost, last.pagesKept
			rows = append(rows, r)
			printRow(r, boot == 1)
			if r.lost > 0 || r.dups > 0 || !r.clean || r.dataBytes > agent.MaxBytes() {
				allClean = false
			}
		} else if !res.clean() {
			return false, fmt.Errorf("first boot did not start cleanly: %s", res.trouble)
		}
		prev, last = cur, res
		after := disk.Stats()
		last.flushes, last.bytesFlushed = after.Flushes-before.Flushes, after.BytesFlushed-before.BytesFlushed
		if boot < o.cuts {
			before := disk.Stats()
			if err := disk.Cut(rng, o.keep); err != nil {
				return false, err
			}
			after := disk.Stats()
			last.pagesLost, last.pagesKept = after.PagesLost-before.PagesLost, after.PagesKept-before.PagesKept
		}
	}
	printTotals(os.Stdout, o, rows, agent.MaxBytes(), allClean)
	if o.report != "" {
		f, err := os.OpenFile(o.report, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return false, err
		}
		writeMarkdown(f, o, kvm, rows, agent.MaxBytes(), allClean)
		f.Close()
	}
	return allClean, nil
}

// readKernel finds vmlinuz and the modules, in load order, that setup.sh
// unpacked.
func readKernel(dir string) (string, []string, error) {
	kernels, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if len(kernels) != 1 {
		return "", nil, fmt.Errorf("no single kernel in %s/boot: run powercut/setup.sh", dir)
	}
	list, err := os.ReadFile(filepath.Join(dir, "modules.list"))
	if err != nil {
		return "", nil, fmt.Errorf("%v: run powercut/setup.sh", err)
	}
	return kernels[0], strings.Fields(string(list)), nil
}

// bootResult is what one boot showed: at its start, what the agent
// recovered; while it ran, what it claimed, until the cut.
type bootResult struct {
	mounted, inspected, started, replayed bool
	trouble                               string
	recovered                             Recovered
	claims                                int
	claim                                 Claim         // the last one
	ran                                   time.Duration // agent start to the last clock line (guest)
	lastEpoch                             int64         // guest clock at the last heartbeat, seconds
	bootSeconds                           float64       // wall time from qemu start to the agent's start

	flushes, pagesLost, pagesKept int
	bytesFlushed                  int64
}

func (b bootResult) clean() bool { return b.mounted && b.inspected && b.started && b.trouble == "" }

// bootTimeout is how long the console may stay silent (wall time) before
// the guest counts as hung; the kernel speaks while it boots and the
// heartbeat every guest second after, but module loading and ext4's journal
// replay are silent and take minutes under TCG on a loaded host.
const bootTimeout = 5 * time.Minute

// bootOnce boots the guest, reads what the agent recovered, waits for it to
// start, and then, unless final, cuts the power once the agent has run for
// delay on the guest's clock.
func bootOnce(cfg vmConfig, agent Agent, disk *volatileDisk, clock time.Time, delay time.Duration, final bool,
	rng *rand.Rand, consoleLog io.Writer) (bootResult, error) {
	var res bootResult
	if err := os.Truncate(cfg.OutDisk, 0); err != nil && !os.IsNotExist(err) {
		return res, err
	}
	if err := exec.Command("truncate", "-s", "64M", cfg.OutDisk).Run(); err != nil {
		return res, err
	}
	os.Remove(cfg.NBDSock)
	ln, err := net.Listen("unix", cfg.NBDSock)
	if err != nil {
		return res, err
	}
	defer ln.Close()
	served := serveOneNBD(ln, disk)

	cmd := qemuCommand(cfg, clock)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	cmd.Stderr = consoleLog
	fmt.Fprintf(consoleLog, "=== boot at guest clock %s, cut after %s\n", clock.UTC().Format(time.RFC3339), delay)
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return res, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	kill := func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		<-served // the NBD connection is gone: nothing more can reach the disk
	}

	lines := consoleLines(stdout, consoleLog)
	var startUptime, epoch0 float64
	var readErr error
	handle := func(line string) {
		switch {
		case line == "RIG mounted":
			res.mounted = true
		case line == "RIG mount-failed":
			res.trouble = joinTrouble(res.trouble, "ext4 did not mount")
		case strings.HasPrefix(line, "RIG dmesg") && strings.Contains(line, "recovery complete"):
			res.replayed = true
		case strings.HasPrefix(line, "RIG inspected rc="):
			res.inspected = strings.TrimPrefix(line, "RIG inspected rc=") == "0"
			if !res.inspected {
				res.trouble = joinTrouble(res.trouble, "the data did not open")
			}
			dir, err := readOutDisk(cfg.OutDisk)
			if err != nil {
				readErr = err
				return
			}
			res.recovered, err = agent.Recovered(dir)
			os.RemoveAll(dir)
			if err != nil {
				res.trouble = joinTrouble(res.trouble, err.Error())
			}
		case strings.HasPrefix(line, "RIG epoch "):
			epoch0, _ = strconv.ParseFloat(strings.TrimPrefix(line, "RIG epoch "), 64)
		case strings.HasPrefix(line, "RIG start "):
			startUptime, _ = strconv.ParseFloat(strings.TrimPrefix(line, "RIG start "), 64)
			res.bootSeconds = time.Since(t0).Seconds()
		case strings.HasPrefix(line, "RIG clock "):
			up, err := strconv.ParseFloat(strings.TrimPrefix(line, "RIG clock "), 64)
			if err == nil {
				res.lastEpoch = int64(epoch0 + up)
				res.ran = time.Duration((up - startUptime) * float64(time.Second))
			}
		default:
			ev := agent.ParseConsole(line)
			if ev.Claim != nil {
				res.claims++
				res.claim = *ev.Claim
			}
			if ev.Trouble != "" {
				res.trouble = joinTrouble(res.trouble, ev.Trouble)
			}
			res.started = res.started || ev.Started
		}
	}
	// cut kills qemu and then reads what its console had already said:
	// every claim that left the guest before the power went counts.
	cut := func(why string) (bootResult, error) {
		kill()
		for line := range lines {
			handle(line)
		}
		if why != "" {
			res.trouble = joinTrouble(res.trouble, why)
		}
		return res, readErr
	}

	for {
		select {
		case line, open := <-lines:
			if !open {
				return cut("the guest stopped on its own")
			}
			handle(line)
		case <-time.After(bootTimeout):
			return cut("the console was silent for " + bootTimeout.String())
		}
		switch {
		case readErr != nil:
			return cut("")
		case final && res.started:
			return cut("")
		case res.started && res.ran >= delay:
			// The clock line comes once a guest second: land anywhere
			// inside that second.
			time.Sleep(time.Duration(rng.Int64N(int64(300 * time.Millisecond))))
			return cut("")
		}
	}
}

func joinTrouble(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// readOutDisk unpacks the tar the guest wrote to its second disk.
func readOutDisk(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	dir, err := os.MkdirTemp(filepath.Dir(path), "out-")
	if err != nil {
		return "", err
	}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return dir, nil
		}
		if err != nil {
			return dir, fmt.Errorf("out disk: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		w, err := os.Create(filepath.Join(dir, filepath.Base(h.Name)))
		if err != nil {
			return dir, err
		}
		_, err = io.Copy(w, tr)
		w.Close()
		if err != nil {
			return dir, err
		}
	}
}
