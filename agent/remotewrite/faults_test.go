package remotewrite

import (
	"crypto/tls"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-agent/ferry/buffer"
	"github.com/ferry-agent/ferry/internal/httpclient"
)

// resetConnection closes the connection under a request whose body is only
// partly read, with SO_LINGER 0, so that the sender sees a TCP reset.
func resetConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
	conn.Close()
}

func TestSendSurvivesResetAndStall(t *testing.T) {
	src := newFakeSource(
		buffer.Block{Seq: 1, Series: []buffer.Series{series(1, lblA, 1000, 2000), series(2, lblB, 1000)}},
		buffer.Block{Seq: 2, Series: []buffer.Series{series(1, lblA, 3000), series(3, lblC, 3000)}},
	)
	rcv := &receiver{t: t, seen: make(chan struct{}, 100)}
	var n atomic.Int32
	rcv.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch n.Add(1) {
		case 1: // reset before the body is read
			resetConnection(w)
		case 2: // take the body, then stall past the sender's timeout
			io.Copy(io.Discard, req.Body)
			select {
			case <-req.Context().Done():
			case <-time.After(10 * time.Second):
			}
		default:
			rcv.serve(w, req)
		}
	}))
	rcv.answer = answers(status(http.StatusOK))
	defer rcv.srv.Close()

	cfg := testConfig(rcv.srv.URL, 1000)
	cfg.Timeout = 300 * time.Millisecond
	s := newSender(cfg, src)
	start(t, s)
	if seq := src.waitAck(t); seq != 2 {
		t.Fatalf("acked up to %d, want 2", seq)
	}
	// After a reset and a stall: the one-sample probe, then the rest.
	reqs := rcv.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests reached the handler whole, want 2 (the probe and the rest)", len(reqs))
	}
	arrived := 0
	for _, r := range reqs {
		arrived += countSamples(r.wr)
		for _, ts := range r.wr.Timeseries {
			for _, smp := range ts.Samples {
				if smp.Value != float64(smp.Timestamp)/10 {
					t.Errorf("%v: sample at %d has value %v, want %v", ts.Labels, smp.Timestamp, smp.Value, float64(smp.Timestamp)/10)
				}
			}
		}
	}
	if arrived != 5 {
		t.Errorf("%d samples arrived, want all 5 once", arrived)
	}
	if st := s.Stats(); st.RequestsFailed != 2 || st.SamplesSent != 5 || len(st.Dropped) != 0 {
		t.Errorf("stats %+v, want 2 failures, 5 sent, nothing dropped", st)
	}
}

// TestSendOverTLSWithAuth checks that the HTTP settings reach the wire: a
// receiver with a certificate from its own CA, a bearer token from a file,
// and a tenant header.
func TestSendOverTLSWithAuth(t *testing.T) {
	src := newFakeSource(buffer.Block{Seq: 1, Series: []buffer.Series{series(1, lblA, 1000)}})
	rcv := &receiver{t: t, answer: answers(status(http.StatusOK)), seen: make(chan struct{}, 100)}
	rcv.srv = httptest.NewUnstartedServer(http.HandlerFunc(rcv.serve))
	rcv.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes below
	rcv.srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	rcv.srv.StartTLS()
	defer rcv.srv.Close()

	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rcv.srv.Certificate().Raw}), 0o600)
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte("device-token\n"), 0o600)

	cfg := testConfig(rcv.srv.URL, 1000)
	cfg.HTTP = httpclient.Config{
		BearerTokenFile: tokenFile,
		Headers:         map[string]string{"X-Scope-OrgID": "fleet-7"},
		TLS:             httpclient.TLSConfig{CAFile: caFile},
	}
	s := newSender(cfg, src)
	start(t, s)
	src.waitAck(t)
	reqs := rcv.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	h := reqs[0].header
	if h.Get("Authorization") != "Bearer device-token" || h.Get("X-Scope-OrgID") != "fleet-7" {
		t.Errorf("Authorization %q, X-Scope-OrgID %q", h.Get("Authorization"), h.Get("X-Scope-OrgID"))
	}
	if h.Get("Content-Encoding") != "snappy" || h.Get("User-Agent") != "ferry-test/1.2.3" {
		t.Errorf("the protocol's headers were lost: %v", h)
	}

	// Without the CA the receiver's certificate is refused, and retried.
	src2 := newFakeSource(buffer.Block{Seq: 1, Series: []buffer.Series{series(1, lblA, 1000)}})
	cfg.HTTP.TLS = httpclient.TLSConfig{}
	s2 := newSender(cfg, src2)
	stop := start(t, s2)
	deadline := time.Now().Add(10 * time.Second)
	for s2.Stats().RequestsFailed < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if st := s2.Stats(); st.RequestsFailed < 2 || st.SamplesSent != 0 {
		t.Errorf("unknown CA: stats %+v, want failures retried and nothing sent", st)
	}
	if acks, _ := src2.state(); len(acks) != 0 {
		t.Errorf("unknown CA: blocks %v acknowledged", acks)
	}
}
