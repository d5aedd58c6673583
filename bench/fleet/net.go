package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cutProxy forwards the devices' remote-write requests to a receiver. Cut
// (set(false)), it closes the connections it carries and every new one at
// once: the devices' link is gone (a VPN concentrator or cell tower down)
// while the receiver runs. Frozen (freeze), it closes every new request's
// connection unanswered and unforwarded, while requests already forwarded
// get their answers: what a device counts as sent and what the receivers
// hold stay put, with no request left in doubt.
type cutProxy struct {
	ln  net.Listener
	srv *http.Server
	fwd *httputil.ReverseProxy

	mu    sync.Mutex
	up    bool
	conns map[net.Conn]struct{} // the devices' side
}

func newCutProxy(target string) (*cutProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &cutProxy{ln: ln, up: true, conns: map[net.Conn]struct{}{}}
	u := &url.URL{Scheme: "http", Host: target}
	p.fwd = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(u) },
		// Hundreds of devices behind three proxies: keep their
		// connections to the receiver.
		Transport: &http.Transport{MaxIdleConnsPerHost: 512, IdleConnTimeout: time.Minute},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) {
			// The receiver is down: the device sees its connection closed.
			hangUp(w)
		},
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second, ConnState: p.track}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	up := p.up
	p.mu.Unlock()
	if !up {
		hangUp(w)
		return
	}
	p.fwd.ServeHTTP(w, r)
}

// hangUp closes a request's connection without an answer.
func hangUp(w http.ResponseWriter) {
	if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
		c.Close()
	}
}

func (p *cutProxy) track(c net.Conn, st http.ConnState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch st {
	case http.StateNew:
		if !p.up {
			c.Close()
			return
		}
		p.conns[c] = struct{}{}
	case http.StateHijacked, http.StateClosed:
		delete(p.conns, c)
	}
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

// freeze takes no new request; those forwarded already are answered.
func (p *cutProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up = false
}

func (p *cutProxy) close() {
	p.set(false)
	p.srv.Close()
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
