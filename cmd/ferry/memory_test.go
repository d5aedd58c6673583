package main

import (
	"bufio"
	"fmt"
	"io"
	"math/bits"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-agent/ferry/agent/remotewrite/codec"
)

// TestMemoryBoundThroughAnOutage runs ferry in a 40 MiB memory cgroup (v1
// memory.limit_in_bytes, or v2 memory.max) scraping 10k series every
// second, through a 30 s outage of the receiver: what waits is bounded in
// bytes, not by time, so ferry lives, and afterwards every sample it
// scraped arrives.
func TestMemoryBoundThroughAnOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute of 10k series per second; runs without -short")
	}
	if os.Getenv("FERRY_TEST_EXEC") != "" {
		t.Skip("10k series per second is beyond an emulated CPU; the native run covers the bound")
	}
	const (
		series   = 10_000
		limit    = 40 << 20
		outage   = 30 * time.Second
		interval = time.Second // the workload the bound is for: 10k series every second
	)
	cg := memoryCgroup(t, limit)
	target := &wideTarget{series: series}
	tsrv := httptest.NewServer(target)
	defer tsrv.Close()
	recv := &countingReceiver{series: series, got: map[int64][]uint64{}}
	rsrv := httptest.NewServer(recv)
	defer rsrv.Close()
	recv.setDown(true) // the outage comes first: nothing is sent from memory

	ferryBin, ferryAddr := buildFerry(t), freeAddr(t)
	ferry := start(t, "/bin/sh", "-c", `echo $$ > "$0" && exec "$@"`, cg.procs, ferryBin,
		"--remote-write.url="+rsrv.URL+"/api/v1/write",
		"--storage.path="+filepath.Join(t.TempDir(), "data"),
		"--scrape.target=app="+tsrv.URL+"/metrics",
		"--scrape.interval="+interval.String(),
		"--web.listen-address="+ferryAddr,
	)
	waitFor(t, 30*time.Second, "ferry to be ready", func() bool { return httpOK("http://" + ferryAddr + "/-/ready") })
	time.Sleep(outage)
	recv.setDown(false)
	time.Sleep(5 * time.Second) // a few scrapes with the link up
	scrapes := target.freeze()
	// A scrape that ferry gave up on (a timeout on a busy machine) is
	// counted by it and has no samples; every other one arrives whole. The
	// frozen target's refusals count as failures too and are taken off.
	failed := 0
	waitFor(t, 2*time.Minute, "every scraped sample at the receiver", func() bool {
		failed = scrapeFailures(t, ferryAddr) - target.refusals()
		complete, partial := recv.complete(scrapes) // in part: more on the way, or lost
		return partial == 0 && complete+failed >= len(scrapes)
	})
	if failed > len(scrapes)/4 {
		t.Fatalf("%d of %d scrapes failed: the test measured too little", failed, len(scrapes))
	}
	if ferry.cmd.ProcessState != nil {
		t.Fatalf("ferry exited: %v", ferry.cmd.ProcessState)
	}
	if code := ferry.stop(t); code != 0 {
		t.Errorf("ferry exited %d after SIGINT, want 0", code)
	}
	t.Logf("%d scrapes of %d series delivered (%d failed); the cgroup's peak: %.1f MiB of %d MiB", len(scrapes)-failed, series, failed, float64(cg.peak())/(1<<20), limit>>20)
}

// scrapeFailures sums ferry_scrape_failures_total on ferry's /metrics.
func scrapeFailures(t *testing.T, addr string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("ferry's /metrics: %v", err)
	}
	defer resp.Body.Close()
	n := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "ferry_scrape_failures_total{") {
			v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			n += v
		}
	}
	return int(n)
}

// wideTarget serves series gauges with an explicit timestamp per scrape,
// and remembers the timestamps it served. After freeze it answers 503
// and counts those refusals.
type wideTarget struct {
	series  int
	mu      sync.Mutex
	served  []int64
	frozen  bool
	refused int
}

func (w *wideTarget) ServeHTTP(rw http.ResponseWriter, _ *http.Request) {
	w.mu.Lock()
	if w.frozen {
		w.refused++
		w.mu.Unlock()
		http.Error(rw, "frozen", http.StatusServiceUnavailable)
		return
	}
	ts := time.Now().UnixMilli()
	if n := len(w.served); n > 0 && ts <= w.served[n-1] {
		ts = w.served[n-1] + 1
	}
	w.served = append(w.served, ts)
	w.mu.Unlock()
	bw := bufio.NewWriter(rw)
	bw.WriteString("# TYPE ferry_memory_test gauge\n")
	for i := range w.series {
		fmt.Fprintf(bw, "ferry_memory_test{i=\"%d\",pad=\"a label value of some length, as real ones have\"} %d %d\n", i, ts%1000+int64(i), ts)
	}
	bw.Flush()
}

func (w *wideTarget) refusals() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.refused
}

func (w *wideTarget) freeze() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.frozen = true
	return append([]int64(nil), w.served...)
}

// countingReceiver takes Remote-Write 1.0 requests and keeps, per
// timestamp, a bitmap of the series it received; while down it answers 503.
type countingReceiver struct {
	series int
	mu     sync.Mutex
	down   bool
	got    map[int64][]uint64
}

func (r *countingReceiver) setDown(down bool) {
	r.mu.Lock()
	r.down = down
	r.mu.Unlock()
}

func (r *countingReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 64<<20))
	r.mu.Lock()
	down := r.down
	r.mu.Unlock()
	if down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	blk, derr := codec.DecodeRequest(body, 256<<20, 1<<20)
	if err != nil || derr != nil {
		http.Error(w, fmt.Sprint(err, derr), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range blk.Series {
		i, err := strconv.Atoi(s.Labels.Get("i"))
		if err != nil || s.Labels.Get("__name__") != "ferry_memory_test" {
			continue // ferry's own series, up, ...
		}
		for _, ts := range s.T {
			m := r.got[ts]
			if m == nil {
				m = make([]uint64, (r.series+63)/64)
				r.got[ts] = m
			}
			m[i/64] |= 1 << (i % 64)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// complete counts the scrapes all of whose series arrived, and those of
// which only some did.
func (r *countingReceiver) complete(scrapes []int64) (complete, partial int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ts := range scrapes {
		count := 0
		for _, word := range r.got[ts] {
			count += bits.OnesCount64(word)
		}
		switch {
		case count == r.series:
			complete++
		case count > 0:
			partial++
		}
	}
	return complete, partial
}

// cgroup is a memory cgroup made for one test and removed after it.
type cgroup struct {
	dir, procs string
	v2         bool
}

// memoryCgroup makes a memory cgroup limited to limit bytes below the
// test's own. Where none can be made (not root, no memory controller) the
// test skips, except under CI, where that is a failure.
func memoryCgroup(t *testing.T, limit int64) cgroup {
	t.Helper()
	fail := func(why string, args ...any) cgroup {
		t.Helper()
		msg := fmt.Sprintf(why, args...)
		if os.Getenv("CI") == "true" {
			t.Fatalf("no memory cgroup: %s", msg)
		}
		t.Skipf("no memory cgroup can be made here: %s", msg)
		return cgroup{}
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return fail("%v", err)
	}
	var cg cgroup
	for _, line := range strings.Split(strings.TrimSpace(string(self)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[1] == "memory" || strings.Contains(","+parts[1]+",", ",memory,"):
			cg.dir = filepath.Join("/sys/fs/cgroup/memory", parts[2])
		case parts[0] == "0" && cg.dir == "":
			if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
				cg.dir, cg.v2 = filepath.Join("/sys/fs/cgroup", parts[2]), true
			}
		}
	}
	if cg.dir == "" {
		return fail("no memory controller in /proc/self/cgroup")
	}
	cg.dir = filepath.Join(cg.dir, fmt.Sprintf("ferry-test-%d", os.Getpid()))
	if err := os.Mkdir(cg.dir, 0o755); err != nil {
		return fail("%v", err)
	}
	t.Cleanup(func() {
		for i := 0; i < 50 && os.Remove(cg.dir) != nil; i++ {
			time.Sleep(100 * time.Millisecond) // until its last process is gone
		}
	})
	limitFile := "memory.limit_in_bytes"
	if cg.v2 {
		limitFile = "memory.max"
	}
	if err := os.WriteFile(filepath.Join(cg.dir, limitFile), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
		return fail("%v", err)
	}
	cg.procs = filepath.Join(cg.dir, "cgroup.procs")
	return cg
}

// peak is the most memory the cgroup held, 0 where the kernel does not say.
func (c cgroup) peak() int64 {
	name := "memory.max_usage_in_bytes"
	if c.v2 {
		name = "memory.peak"
	}
	b, _ := os.ReadFile(filepath.Join(c.dir, name))
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}
