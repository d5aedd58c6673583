package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cutProxy forwards TCP connections to a receiver while up; cut, it closes
// the connections it carries and every new one at once: the devices' link
// is gone (a VPN concentrator or cell tower down) while the receiver runs.
type cutProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	up    bool
	conns map[net.Conn]struct{}
}

func newCutProxy(target string) (*cutProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &cutProxy{ln: ln, target: target, up: true, conns: map[net.Conn]struct{}{}}
	go p.serve()
	return p, nil
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if !p.up {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		go p.pipe(c)
	}
}

func (p *cutProxy) pipe(c net.Conn) {
	defer p.forget(c)
	u, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return // the receiver is down: the device sees its connection closed
	}
	p.mu.Lock()
	p.conns[u] = struct{}{}
	p.mu.Unlock()
	defer p.forget(u)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
	<-done
}

func (p *cutProxy) forget(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// set cuts (false) or restores (true) the link.
func (p *cutProxy) set(up bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up = up
	if !up {
		for c := range p.conns {
			c.Close()
		}
	}
}

func (p *cutProxy) close() {
	p.set(false)
	p.ln.Close()
}

// probeSeries is how many series each device's scrape target serves.
const probeSeries = 4

// target is every device's small scrape target in one HTTP server:
// /d/<device> answers fleet_probe{series="0".."3"} with the number of that
// device's scrape as the value, and remembers when it served each, so that
// what reaches the receiver can be checked sample by sample.
type target struct {
	srv *http.Server
	ln  net.Listener

	mu     sync.Mutex
	served [][]int64 // per device: when scrape n+1 was served, Unix ms
}

func newTarget(devices int) (*target, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := &target{ln: ln, served: make([][]int64, devices)}
	t.srv = &http.Server{Handler: t, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = t.srv.Serve(ln) }()
	return t, nil
}

func (t *target) url(device int) string { return fmt.Sprintf("http://%s/d/%d", t.ln.Addr(), device) }

func (t *target) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/d/"))
	if err != nil || d < 0 || d >= len(t.served) {
		http.NotFound(w, r)
		return
	}
	t.mu.Lock()
	t.served[d] = append(t.served[d], time.Now().UnixMilli())
	n := len(t.served[d])
	t.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	var b strings.Builder
	b.WriteString("# TYPE fleet_probe gauge\n")
	for s := range probeSeries {
		fmt.Fprintf(&b, "fleet_probe{series=\"%d\"} %d\n", s, n)
	}
	_, _ = io.WriteString(w, b.String())
}

// servedTimes returns a copy of when each of device's scrapes was served.
func (t *target) servedTimes(device int) []int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]int64(nil), t.served[device]...)
}
