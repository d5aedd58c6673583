package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procs is every process the harness started, so that all of them can be
// ended at the end, also on failure.
type procs struct {
	mu   sync.Mutex
	list []*exec.Cmd
}

// start runs bin with args, its output appended to logPath. The child gets
// SIGKILL if the harness dies without cleaning up (Pdeathsig).
func (p *procs) start(logPath, bin string, args ...string) (*exec.Cmd, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { cmd.Wait(); logf.Close() }()
	p.mu.Lock()
	p.list = append(p.list, cmd)
	p.mu.Unlock()
	return cmd, nil
}

// stopAll ends every process it started, by pid, the last started first
// (agents before their receivers): SIGTERM, then SIGKILL after grace.
func (p *procs) stopAll(grace time.Duration) {
	p.mu.Lock()
	list := append([]*exec.Cmd(nil), p.list...)
	p.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		c := list[i]
		if !alive(c.Process.Pid) {
			continue
		}
		c.Process.Signal(syscall.SIGTERM)
		for deadline := time.Now().Add(grace); alive(c.Process.Pid) && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(c.Process.Pid) {
			c.Process.Kill()
		}
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
}

// procSample is one reading of /proc/PID.
type procSample struct {
	rss, anon, file int64 // bytes
	cpu             float64
	writeBytes      int64
	ok              bool
}

var clkTck = 100.0 // sysconf(_SC_CLK_TCK) on Linux for every architecture Go supports

func readProc(pid int) procSample {
	var s procSample
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s
	}
	sc := bufio.NewScanner(bytes.NewReader(st))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			s.rss = v * 1024
		case "RssAnon:":
			s.anon = v * 1024
		case "RssFile:":
			s.file = v * 1024
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s
	}
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+2:]))
	// Fields after the command: state is f[0], utime f[11], stime f[12].
	if len(f) > 12 {
		u, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		s.cpu = (u + st) / clkTck
	}
	io, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return s
	}
	for _, line := range strings.Split(string(io), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			s.writeBytes, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	s.ok = true
	return s
}

// dirSize returns the allocated bytes (st_blocks) and apparent bytes of
// every file under dir.
func dirSize(dir string) (alloc, apparent int64) {
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		apparent += fi.Size()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			alloc += st.Blocks * 512
		}
		return nil
	})
	return alloc, apparent
}

// waitHTTP polls url until it answers 200 or the timeout passes.
func waitHTTP(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: 2 * time.Second}
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			last = fmt.Errorf("status %s", resp.Status)
		} else {
			last = err
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s: %v", url, timeout, last)
}
