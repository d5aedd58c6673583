package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowLink is a reverse proxy in front of a receiver that holds each
// request for a while before it forwards it: a link that is up but slow (a
// satellite hop, a congested cellular cell). Of a request whose sender
// dies while it is held, a coin decides the fate: lost on the way (never
// forwarded), or written by the receiver with its answer lost (forwarded
// all the same). Safe for concurrent use.
type slowLink struct {
	proxy    *httputil.ReverseProxy
	mu       sync.Mutex
	delay    time.Duration
	fast     chan struct{} // closed when the link turns fast: held requests go on
	rng      *rand.Rand
	inFlight atomic.Int32
}

func newSlowLink(target string, rng *rand.Rand) *slowLink {
	u, _ := url.Parse(target)
	l := &slowLink{proxy: httputil.NewSingleHostReverseProxy(u), fast: make(chan struct{}), rng: rng}
	close(l.fast)
	return l
}

// setDelay holds every request from now on for d; 0 lets held requests go.
func (l *slowLink) setDelay(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.delay == 0 && d > 0 {
		l.fast = make(chan struct{})
	} else if l.delay > 0 && d == 0 {
		close(l.fast)
	}
	l.delay = d
}

func (l *slowLink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.inFlight.Add(1)
	defer l.inFlight.Add(-1)
	// Read whole, the body lets the server see the sender go away.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	l.mu.Lock()
	delay, fast, answerLost := l.delay, l.fast, l.rng.IntN(2) == 0
	l.mu.Unlock()
	held := time.After(delay)
	select {
	case <-held:
	case <-fast:
	case <-r.Context().Done():
		if !answerLost {
			return
		}
		select { // the rest of the way
		case <-held:
		case <-fast:
		}
	}
	out := r.Clone(context.WithoutCancel(r.Context()))
	out.Body = io.NopCloser(bytes.NewReader(body))
	l.proxy.ServeHTTP(w, out)
}

// TestEndToEndKillWhileTheLinkIsSlow runs ferry at its defaults against a
// real Prometheus behind a link that is up but slower than the interval:
// each request waits 20 s, so the sender falls behind and what it has sent
// is not yet acknowledged. ferry is killed with SIGKILL at random moments,
// with a request in flight that the receiver may or may not get, and
// started again at once; when the link is fast again, every collection is
// at the receiver but those collected in the last few seconds before a
// kill, which the promise allows to lose. (This Prometheus refuses a whole
// request for one sample it holds already: what ferry sends again after
// the crash must not carry newer samples down with it.)
func TestEndToEndKillWhileTheLinkIsSlow(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; runs without -short")
	}
	t.Parallel()
	const (
		interval = 15 * time.Second // ferry's default
		slow     = 20 * time.Second // longer than an interval: the sender falls behind
		kills    = 2
		// mayLose is what a kill -9 may cost: what was collected in the
		// last seconds, before the head's next tick journaled it.
		mayLose = 3 * time.Second
	)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("seed %d", seed)

	promBin := needTool(t, "prometheus")
	ferryBin := buildFerry(t)
	promAddr, ferryAddr := freeAddr(t), freeAddr(t)
	promDir, dataDir, procfs := t.TempDir(), filepath.Join(t.TempDir(), "data"), fakeProcfs(t)
	startPrometheus(t, promBin, promAddr, promDir)
	link := newSlowLink("http://"+promAddr, rand.New(rand.NewPCG(uint64(seed), 1)))
	linkSrv := httptest.NewServer(link)
	t.Cleanup(linkSrv.Close)

	startFerry := func() *process {
		return startReady(t, ferryBin, ferryAddr,
			"--remote-write.url="+linkSrv.URL+"/api/v1/write",
			"--storage.path="+dataDir,
			"--path.procfs="+procfs,
		)
	}
	newest := func() float64 { return newestLoad1(t, promAddr) }

	began := time.Now()
	ferry := startFerry()
	waitFor(t, 2*interval+5*time.Second, "the first samples at the receiver", func() bool { return newest() >= float64(began.Unix()) })

	// The link turns slow; once a request has taken the whole delay the
	// sender is behind, with collections waiting for the one in flight.
	link.setDelay(slow)
	time.Sleep(slow + interval)
	var killedAt []time.Time
	for range kills {
		waitFor(t, 2*slow, "a request held by the slow link", func() bool { return link.inFlight.Load() > 0 })
		time.Sleep(time.Duration(rng.Int64N(int64(2 * interval))))
		if err := ferry.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = ferry.cmd.Wait()
		killedAt = append(killedAt, time.Now())
		ferry = startFerry()
	}
	fastAgain := time.Now()
	link.setDelay(0)
	waitFor(t, 2*interval+5*time.Second, "fresh samples once the link is fast", func() bool { return newest() >= float64(fastAgain.Unix()) })

	// Between two collections at the receiver, with no kill between
	// them, lies an interval (a half for the schedule's jitter). With a
	// kill between them, the first is the last the killed process
	// delivered: it may lack only the one it collected in the last
	// mayLose, and the next is the restarted process' first.
	window := time.Since(began).Round(time.Second) + interval
	res := query(t, promAddr, fmt.Sprintf(`node_load1{job="node"}[%ds]`, int(window.Seconds())))
	if len(res) != 1 {
		t.Fatalf("%d series of node_load1", len(res))
	}
	var times []float64
	for _, v := range res[0].Values {
		times = append(times, sampleValue(t, v[0]))
	}
	lost := 0
	for i := 1; i < len(times); i++ {
		prev, next := times[i-1], times[i]
		killed := -1.0
		for _, k := range killedAt {
			if at := float64(k.UnixMilli()) / 1000; at > prev && at < next {
				killed = at
			}
		}
		switch {
		case killed < 0 && next-prev > 1.5*interval.Seconds():
			t.Errorf("no collection between %.3f and %.3f at the receiver, and no kill", prev, next)
		case killed >= 0 && killed-prev > (interval+mayLose).Seconds():
			t.Errorf("killed at %.3f, and the receiver has nothing since %.3f: collections of more than %s before the kill were lost", killed, prev, mayLose)
		case killed >= 0 && next-killed >= interval.Seconds():
			t.Errorf("killed at %.3f, and the receiver has nothing until %.3f: the restarted ferry's first collections were lost", killed, next)
		case killed >= 0 && killed-prev > interval.Seconds():
			lost++
		}
	}
	t.Logf("%d samples of node_load1 over %.0f s, %d kills with the link slow, %d collections lost within %s of a kill",
		len(times), times[len(times)-1]-times[0], kills, lost, mayLose)
	if code := ferry.stop(t); code != 0 {
		t.Errorf("ferry exited %d after SIGINT, want 0", code)
	}
}
