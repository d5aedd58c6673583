package main

import (
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// procs is every process the harness started and has not stopped yet, so
// that each is stopped by its PID, also when the harness itself is
// interrupted.
type procs struct {
	mu  sync.Mutex
	all map[int]*exec.Cmd
}

var running = &procs{all: map[int]*exec.Cmd{}}

// start runs name with args, its output to logPath. The child gets SIGKILL
// if the harness dies without stopping it (Pdeathsig).
func (p *procs) start(logPath, name string, args ...string) (*exec.Cmd, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	f.Close() // the child has its own descriptor
	p.mu.Lock()
	p.all[cmd.Process.Pid] = cmd
	p.mu.Unlock()
	go func() { _ = cmd.Wait() }()
	return cmd, nil
}

// stop sends SIGTERM to the process, and SIGKILL after grace.
func (p *procs) stop(cmd *exec.Cmd, grace time.Duration) {
	pid := cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) && alive(pid) {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	p.mu.Lock()
	delete(p.all, pid)
	p.mu.Unlock()
}

// kill sends SIGKILL at once, by PID.
func (p *procs) kill(cmd *exec.Cmd) {
	_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
	p.mu.Lock()
	delete(p.all, cmd.Process.Pid)
	p.mu.Unlock()
}

// killAll kills what is left, by PID: the harness's exit path.
func (p *procs) killAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pid := range p.all {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		delete(p.all, pid)
	}
}

// stopAll stops many processes at once, in parallel.
func (p *procs) stopAll(cmds []*exec.Cmd, grace time.Duration) {
	var wg sync.WaitGroup
	for _, c := range cmds {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); p.stop(c, grace) }()
	}
	wg.Wait()
}

// alive reports whether pid is a process that has not been reaped. A
// zombie counts as gone.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == ')' {
			return i+2 < len(b) && b[i+2] != 'Z'
		}
	}
	return true
}

// rssKiB is a process's resident set (VmRSS), 0 if it is gone.
func rssKiB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	var kib int64
	for _, line := range splitLines(b) {
		if _, err := fmt.Sscanf(line, "VmRSS: %d kB", &kib); err == nil {
			return kib
		}
	}
	return 0
}

func splitLines(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == '\n' {
			out = append(out, string(b[start:i]))
			start = i + 1
		}
	}
	return append(out, string(b[start:]))
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(n int) []int {
	var lns []net.Listener
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatalf("fleet: no free port: %v", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}
