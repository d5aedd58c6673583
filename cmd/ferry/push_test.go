package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/ferry-agent/ferry/agent"
	"github.com/ferry-agent/ferry/agent/config"
	"github.com/ferry-agent/ferry/agent/remotewrite"
	"github.com/ferry-agent/ferry/agent/remotewrite/carry"
	"github.com/ferry-agent/ferry/buffer"
)

// fillRecent commits rounds of samples of a few series, 15 s apart and
// ending a few minutes ago (recent enough for a Prometheus head), committed
// every other round, and returns them by "labels@ms".
func fillRecent(t *testing.T, dir string, rounds int) map[string]float64 {
	t.Helper()
	b, err := buffer.Open(buffer.Options{Dir: dir, MaxSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-5*time.Minute - time.Duration(rounds)*15*time.Second).UnixMilli()
	want := map[string]float64{}
	for round := range rounds {
		ts := start + int64(round)*15_000 + int64(round%7) // not only whole seconds
		for i, lset := range []labels.Labels{
			labels.FromStrings("__name__", "carry_load1", "job", "node", "instance", "router-7"),
			labels.FromStrings("__name__", "carry_requests_total", "path", `/a"b\c`, "code", "200", "instance", "router-7"),
			labels.FromStrings("__name__", "carry_temperature", "zone", "cpu", "instance", "router-7"),
		} {
			v := float64(round)*1.25 + float64(i)/3 // 1/3: every bit of the mantissa must arrive
			if i == 2 && round == 5 {
				v = math.Inf(-1)
			}
			b.Append(lset, ts, v)
			want[fmt.Sprintf("%s@%d", lset, ts)] = v
		}
		if round%2 == 1 {
			if err := b.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return want
}

// exportCarry runs "ferry buffer export --format=remote-write" into a file.
func exportCarry(t *testing.T, dir string, extra ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "backlog.carry")
	var stdout, stderr bytes.Buffer
	args := append([]string{"buffer", "export", "--storage.path", dir, "--format=remote-write", "--output", out}, extra...)
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr.String())
	}
	return out
}

// carryRecords reads a carry file's requests.
func carryRecords(t *testing.T, path string) []carry.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := carry.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []carry.Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		rec.Body = bytes.Clone(rec.Body)
		out = append(out, rec)
	}
}

// samplesOf decodes request bodies with prompb, the schema's own code.
func samplesOf(t *testing.T, bodies ...[]byte) map[string]float64 {
	t.Helper()
	got := map[string]float64{}
	for _, body := range bodies {
		raw, err := snappy.Decode(nil, body)
		if err != nil {
			t.Fatal(err)
		}
		var wr prompb.WriteRequest
		if err := wr.Unmarshal(raw); err != nil {
			t.Fatal(err)
		}
		for _, ts := range wr.Timeseries {
			var sb labels.ScratchBuilder
			for _, l := range ts.Labels {
				sb.Add(l.Name, l.Value)
			}
			for _, s := range ts.Samples {
				got[fmt.Sprintf("%s@%d", sb.Labels(), s.Timestamp)] = s.Value
			}
		}
	}
	return got
}

func sameSamples(t *testing.T, got, want map[string]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d samples, want %d", len(got), len(want))
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || math.Float64bits(g) != math.Float64bits(v) {
			t.Errorf("%s: got %v (present %v), want %v", k, g, ok, v)
		}
	}
}

// receiver records request bodies and answers each with answer(n), n
// counting from 1.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
}

func newReceiver(t *testing.T, answer func(n int, body []byte) int) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if req.Header.Get("Content-Encoding") != "snappy" || req.Header.Get("X-Prometheus-Remote-Write-Version") != "0.1.0" {
			t.Errorf("headers %v", req.Header)
		}
		r.mu.Lock()
		r.bodies = append(r.bodies, body)
		n := len(r.bodies)
		r.mu.Unlock()
		code := answer(n, body)
		w.WriteHeader(code)
		if code == http.StatusBadRequest {
			fmt.Fprint(w, "out of bounds")
		}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) received() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.bodies)
}

func ok(int, []byte) int { return http.StatusNoContent }

// pushArgs are push's flags for a test receiver: fast retries.
func pushArgs(file, url string, extra ...string) []string {
	return append([]string{"push", file, "--remote-write.url", url, "--remote-write.min-backoff=5ms", "--remote-write.max-backoff=10ms"}, extra...)
}

// What push posts is what the agent's sender would have posted from the
// same buffer: the carry file's bodies, byte for byte, in order.
func TestPushSendsTheFileRequestsAsTheAgentWould(t *testing.T) {
	dir := t.TempDir()
	want := fillRecent(t, dir, 40)
	file := exportCarry(t, dir, "--remote-write.max-samples-per-send=20")
	recs := carryRecords(t, file)
	if len(recs) < 3 {
		t.Fatalf("%d requests; the test wants several", len(recs))
	}

	// The agent's sender, draining the same buffer with the same batch size.
	agentRecv := newReceiver(t, ok)
	cfg := config.DefaultConfig()
	cfg.StoragePath, cfg.ListenAddress = dir, ""
	cfg.RemoteWrite.URL, cfg.RemoteWrite.MaxSamplesPerSend = agentRecv.URL, 20
	cfg.RemoteWrite.Protocol = remotewrite.Protocol1 // as the export writes
	cfg.Collectors = map[string]bool{}
	cfg.ScrapeInterval = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- agent.Run(ctx, cfg, slog.New(slog.DiscardHandler), nil) }()
	waitFor(t, 30*time.Second, "the agent to send the backlog", func() bool { return len(agentRecv.received()) >= len(recs) })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	pushRecv := newReceiver(t, ok)
	var stdout, stderr bytes.Buffer
	if code := run(pushArgs(file, pushRecv.URL), &stdout, &stderr); code != 0 {
		t.Fatalf("push: exit %d: %s", code, stderr.String())
	}
	pushed, sent := pushRecv.received(), agentRecv.received()
	for i := range recs {
		if !bytes.Equal(pushed[i], recs[i].Body) {
			t.Fatalf("request %d: push posted other bytes than the file holds", i+1)
		}
		if !bytes.Equal(sent[i], recs[i].Body) {
			t.Fatalf("request %d: the agent posted other bytes than the export wrote", i+1)
		}
	}
	if len(pushed) != len(recs) {
		t.Fatalf("push posted %d requests, the file has %d", len(pushed), len(recs))
	}
	sameSamples(t, samplesOf(t, pushed...), want)
	if line := stderr.String(); strings.Count(line, "\n") != 1 || !strings.Contains(line, fmt.Sprintf("%s samples accepted", group(int64(len(want))))) {
		t.Errorf("not one summary line with the count: %q", line)
	}
}

func TestPushRetriesUntilAccepted(t *testing.T) {
	dir := t.TempDir()
	want := fillRecent(t, dir, 10)
	file := exportCarry(t, dir, "--remote-write.max-samples-per-send=9")
	var mu sync.Mutex
	var accepted [][]byte
	failing := map[int]bool{1: true, 2: true, 4: true}
	recv := newReceiver(t, func(n int, body []byte) int {
		if failing[n] {
			if n == 4 {
				return http.StatusTooManyRequests
			}
			return http.StatusInternalServerError
		}
		mu.Lock()
		accepted = append(accepted, body)
		mu.Unlock()
		return http.StatusOK
	})
	var stdout, stderr bytes.Buffer
	if code := run(pushArgs(file, recv.URL), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	// Every request after a failure is a one-sample probe; what the
	// receiver accepted is every sample of the file, once.
	bodies := recv.received()
	for n := range failing {
		if got := len(samplesOf(t, bodies[n])); got != 1 {
			t.Errorf("request %d, after a failure, carried %d samples; want a one-sample probe", n+1, got)
		}
	}
	sameSamples(t, samplesOf(t, accepted...), want)
	if !strings.Contains(stderr.String(), "retrying") || !strings.Contains(stderr.String(), fmt.Sprintf("%s samples accepted", group(int64(len(want))))) {
		t.Errorf("stderr: %s", stderr.String())
	}
}

func TestPushReportsRefusedRequests(t *testing.T) {
	dir := t.TempDir()
	want := fillRecent(t, dir, 10)
	file := exportCarry(t, dir, "--remote-write.max-samples-per-send=9")
	recs := carryRecords(t, file)
	recv := newReceiver(t, func(n int, _ []byte) int {
		if n == 2 {
			return http.StatusBadRequest
		}
		return http.StatusNoContent
	})
	var stdout, stderr bytes.Buffer
	if code := run(pushArgs(file, recv.URL), &stdout, &stderr); code != exitPushIncomplete {
		t.Fatalf("exit %d, want %d: %s", code, exitPushIncomplete, stderr.String())
	}
	refused := recs[1].Samples
	out := stderr.String()
	for _, s := range []string{
		fmt.Sprintf("request 2 (%d samples, %s to %s) refused: 400 Bad Request: out of bounds", refused, formatMillis(recs[1].MinT), formatMillis(recs[1].MaxT)),
		fmt.Sprintf("%s samples accepted", group(int64(len(want))-refused)),
		fmt.Sprintf("%d refused by the receiver (1 request)", refused),
	} {
		if !strings.Contains(out, s) {
			t.Errorf("stderr lacks %q:\n%s", s, out)
		}
	}
	if len(recv.received()) != len(recs) {
		t.Errorf("%d requests for %d records: a refused request must not be retried", len(recv.received()), len(recs))
	}
}

func TestPushTruncatedFile(t *testing.T) {
	dir := t.TempDir()
	fillRecent(t, dir, 10)
	file := exportCarry(t, dir, "--remote-write.max-samples-per-send=9")
	recs := carryRecords(t, file)
	data, _ := os.ReadFile(file)
	// Cut in the middle of the third request.
	cut := 12 + 2*(36+4) + len(recs[0].Body) + len(recs[1].Body) + 20 + len(recs[2].Body)/2
	if err := os.WriteFile(file, data[:cut], 0o600); err != nil {
		t.Fatal(err)
	}
	recv := newReceiver(t, ok)
	var stdout, stderr bytes.Buffer
	if code := run(pushArgs(file, recv.URL), &stdout, &stderr); code != exitPushIncomplete {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if got := recv.received(); len(got) != 2 || !bytes.Equal(got[1], recs[1].Body) {
		t.Errorf("%d requests sent, want the 2 intact ones", len(got))
	}
	if out := stderr.String(); !strings.Contains(out, "truncated") || !strings.Contains(out, fmt.Sprintf("%d samples accepted", recs[0].Samples+recs[1].Samples)) {
		t.Errorf("stderr: %s", out)
	}
}

func TestPushSkipsADamagedRequest(t *testing.T) {
	dir := t.TempDir()
	want := fillRecent(t, dir, 10)
	file := exportCarry(t, dir, "--remote-write.max-samples-per-send=9")
	recs := carryRecords(t, file)
	data, _ := os.ReadFile(file)
	data[12+36+4+len(recs[0].Body)+36+len(recs[1].Body)/2] ^= 0x08 // a bit in the second body
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	recv := newReceiver(t, ok)
	var stdout, stderr bytes.Buffer
	if code := run(pushArgs(file, recv.URL), &stdout, &stderr); code != exitPushIncomplete {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if got := recv.received(); len(got) != len(recs)-1 || !bytes.Equal(got[1], recs[2].Body) {
		t.Errorf("%d requests sent, want all but the damaged one", len(got))
	}
	lost := recs[1].Samples
	out := stderr.String()
	if !strings.Contains(out, fmt.Sprintf("%d samples accepted", int64(len(want))-lost)) || !strings.Contains(out, fmt.Sprintf("%d lost to damage in the file (1 damaged stretch", lost)) {
		t.Errorf("stderr: %s", out)
	}
}

func TestPushRefusesWhatIsNotACarryFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "x")
	os.WriteFile(file, []byte("# TYPE x counter\nx 1\n# EOF\n"), 0o600)
	var stdout, stderr bytes.Buffer
	if code := run(pushArgs(file, "http://127.0.0.1:1/api/v1/write"), &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "not a ferry carry file") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

func TestPushUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"push", "f"}, "--remote-write.url is required"},
		{[]string{"push", "--remote-write.url", "http://x/"}, "usage"},
		{[]string{"push", "f", "--remote-write.url", "http://x/", "--storage.path", "d"}, "--storage.path does not apply"},
		{[]string{"push", "f", "--remote-write.url", "http://x/", "--remote-write.max-samples-per-send=5"}, "does not apply"},
		{[]string{"push", "f", "--remote-write.url", "ftp://x/"}, "--remote-write.url"},
		{[]string{"push", "f", "--remote-write.url", "http://x/", "--progress=sometimes"}, "--progress"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"push", "--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "--remote-write.bearer-token-file") || strings.Contains(stdout.String(), "--scrape.interval") {
		t.Errorf("help: exit %d:\n%s", code, stdout.String())
	}
}

// Interrupted, push says where it stopped; --skip-records goes on from there.
func TestPushInterruptedThenResumed(t *testing.T) {
	dir := t.TempDir()
	want := fillRecent(t, dir, 10)
	file := exportCarry(t, dir, "--remote-write.max-samples-per-send=9")
	recs := carryRecords(t, file)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	down := newReceiver(t, func(n int, _ []byte) int {
		if n <= 2 {
			return http.StatusOK
		}
		cancel() // the third request: the user presses Ctrl-C during an outage
		return http.StatusServiceUnavailable
	})
	cfg := config.DefaultConfig()
	cfg.RemoteWrite.URL, cfg.RemoteWrite.MinBackoff, cfg.RemoteWrite.MaxBackoff = down.URL, 5*time.Millisecond, 10*time.Millisecond
	cfg.RemoteWrite.Protocol = remotewrite.Protocol1 // as runPush sets it
	var stderr bytes.Buffer
	if code := push(ctx, file, cfg, 0, false, &stderr); code != 1 || !strings.Contains(stderr.String(), "--skip-records=2") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}

	up := newReceiver(t, ok)
	var stdout bytes.Buffer
	stderr.Reset()
	if code := run(pushArgs(file, up.URL, "--skip-records=2"), &stdout, &stderr); code != 0 {
		t.Fatalf("resumed: exit %d: %s", code, stderr.String())
	}
	got := up.received()
	if len(got) != len(recs)-2 || !bytes.Equal(got[0], recs[2].Body) {
		t.Fatalf("resumed with %d requests, want %d from the third on", len(got), len(recs)-2)
	}
	sameSamples(t, samplesOf(t, append(down.received()[:2], got...)...), want)
}

// On a terminal push redraws a progress line; elsewhere only the summary.
func TestPushProgress(t *testing.T) {
	dir := t.TempDir()
	want := fillRecent(t, dir, 10)
	file := exportCarry(t, dir, "--remote-write.max-samples-per-send=9")
	recv := newReceiver(t, ok)
	total := group(int64(len(want)))

	var stdout, stderr bytes.Buffer
	if code := run(pushArgs(file, recv.URL, "--progress=always"), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stderr.String()
	if !strings.Contains(out, "\rpushed ") || !strings.Contains(out, " of "+total+" samples (") || strings.Count(out, "\n") != 1 {
		t.Errorf("no progress line, or more than the summary line:\n%q", out)
	}

	stderr.Reset()
	if code := run(pushArgs(file, recv.URL), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if out := stderr.String(); strings.Contains(out, "\r") || strings.Count(out, "\n") != 1 {
		t.Errorf("not a terminal, yet more than one summary line:\n%q", out)
	}
}

// The real binary, a real Prometheus: every sample arrives with its exact
// value and timestamp, and with stderr a pipe push prints one line.
func TestPushIntoPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	promBin := needTool(t, "prometheus")
	ferry := buildFerry(t)
	dir := t.TempDir()
	want := fillRecent(t, dir, 60)

	carryFile := filepath.Join(t.TempDir(), "site.carry")
	if out, err := exec.Command(ferry, "buffer", "export", "--storage.path", dir, "--format=remote-write", "--output", carryFile,
		"--remote-write.max-samples-per-send=50").CombinedOutput(); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}

	addr := freeAddr(t)
	startPrometheus(t, promBin, addr, t.TempDir())
	cmd := exec.Command(ferry, "push", carryFile, "--remote-write.url", "http://"+addr+"/api/v1/write")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("push: %v\n%s", err, stderr.String())
	}
	if out := stderr.String(); strings.Count(out, "\n") != 1 || !strings.Contains(out, group(int64(len(want)))+" samples accepted") {
		t.Errorf("want one summary line with every sample accepted, got:\n%s", out)
	}

	got := map[string]float64{}
	for _, s := range query(t, addr, `{__name__=~"carry_.+"}[1h]`) {
		lset := labels.FromMap(s.Metric)
		for _, v := range s.Values {
			ms, err := strconv.ParseFloat(fmt.Sprint(v[0]), 64)
			if err != nil {
				t.Fatal(err)
			}
			got[fmt.Sprintf("%s@%d", lset, int64(math.Round(ms*1000)))] = sampleValue(t, v[1])
		}
	}
	sameSamples(t, got, want)
}
