package scrape

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferry-agent/ferry/collectors"
)

// A hostile target answers so as to hurt the scraper: too much, too slowly,
// or not in the format. Each such scrape must fail with its reason and no
// sample (a series many times over is no failure: the agent drops all but
// the first), and the memory it costs must stay within a bound that
// follows from the limits.

// hostileCase is one way a target can hurt; serve answers with lim in mind.
type hostileCase struct {
	name       string
	limits     func(Limits) Limits // nil: the limits as given
	serve      func(lim Limits) http.HandlerFunc
	wantReason string // "": the scrape works
	keepsAll   bool   // the scrape works and keeps each sample: as many as the limit allows
}

// kept is how many samples a scrape of the case keeps under lim.
func (tc hostileCase) kept(lim Limits) int {
	if tc.keepsAll {
		return lim.Samples
	}
	return 0
}

// fill repeats line until n bytes are written or the client goes away.
func fill(w http.ResponseWriter, line []byte, n int64) {
	block := bytes.Repeat(line, max(1, 64<<10/len(line)))
	for written := int64(0); n < 0 || written < n; written += int64(len(block)) {
		if _, err := w.Write(block); err != nil {
			return
		}
	}
}

// seriesBody is n distinct series, each line about lineBytes long.
func seriesBody(n, lineBytes int) []byte {
	pad := strings.Repeat("x", max(0, lineBytes-len(`m{i="0000000",p=""} 1`+"\n")))
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "m{i=\"%07d\",p=\"%s\"} 1\n", i, pad)
	}
	return b.Bytes()
}

// trickle writes the body a byte at a time, flushing each, until the
// client goes away or the body ends.
func trickle(w http.ResponseWriter, r *http.Request, body []byte) {
	w.Header().Set("Content-Type", promContentType)
	rc := http.NewResponseController(w)
	for _, c := range body {
		if _, err := w.Write([]byte{c}); err != nil || rc.Flush() != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func hostileCases() []hostileCase {
	return []hostileCase{
		{name: "endless body", wantReason: ReasonBodyTooLarge,
			serve: func(Limits) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", promContentType)
					fill(w, []byte("endless_series 1\n"), -1)
				}
			}},
		{name: "endless gzip body", wantReason: ReasonBodyTooLarge, // a few KiB on the wire per MiB inflated
			serve: func(Limits) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", promContentType)
					w.Header().Set("Content-Encoding", "gzip")
					zw := gzip.NewWriter(w)
					fill(&gzipResponse{w, zw}, []byte("compressed_series 1\n"), -1)
				}
			}},
		{name: "gzip body that is not gzip", wantReason: ReasonParse,
			serve: func(Limits) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", promContentType)
					w.Header().Set("Content-Encoding", "gzip")
					w.Write([]byte("plain_series 1\n"))
				}
			}},
		{name: "gzip body with a wrong checksum", wantReason: ReasonParse,
			serve: func(Limits) http.HandlerFunc {
				var b bytes.Buffer
				zw := gzip.NewWriter(&b)
				zw.Write([]byte("damaged_series 1\n"))
				zw.Close()
				body := b.Bytes()
				body[len(body)-8] ^= 0xff // the CRC-32 of the trailer
				return func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", promContentType)
					w.Header().Set("Content-Encoding", "gzip")
					w.Write(body)
				}
			}},
		{name: "declared length over the limit", wantReason: ReasonBodyTooLarge,
			serve: func(lim Limits) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", promContentType)
					w.Header().Set("Content-Length", strconv.FormatInt(lim.BodyBytes+1, 10))
					fill(w, []byte("m 1\n"), lim.BodyBytes+1)
				}
			}},
		{name: "body shorter than its declared length", wantReason: ReasonNetwork,
			serve: func(Limits) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", promContentType)
					w.Header().Set("Content-Length", "1000")
					w.Write([]byte("m 1\n")) // the server closes the connection
				}
			}},
		{name: "chunked body cut short", wantReason: ReasonNetwork,
			serve: func(Limits) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					conn, _, err := http.NewResponseController(w).Hijack()
					if err != nil {
						return
					}
					defer conn.Close()
					// A whole line, but no last chunk: the body is incomplete.
					fmt.Fprint(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n4\r\na 1\n\r\n")
				}
			}},
		{name: "100 MB label value", wantReason: ReasonBodyTooLarge,
			serve: func(Limits) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", promContentType)
					w.Write([]byte(`m{l="`))
					fill(w, []byte("v"), 100<<20)
					w.Write([]byte("\"} 1\n"))
				}
			}},
		{name: "label value within the body limit, over the value limit", wantReason: ReasonLabelLimit,
			limits: func(l Limits) Limits { l.LabelValueLength = 1024; return l },
			serve: func(lim Limits) http.HandlerFunc {
				body := []byte(`m{l="` + strings.Repeat("v", int(lim.BodyBytes)-16) + "\"} 1\n")
				return serveBody(promContentType, body)
			}},
		{name: "one series with as many labels as fit the body limit", wantReason: ReasonLabelLimit,
			limits: func(l Limits) Limits { l.Labels = DefaultLimits.Labels; return l },
			serve: func(lim Limits) http.HandlerFunc {
				// Over 300k labels with distinct names: the label limit
				// must be met while the line is read, not once its
				// labels are built.
				body := []byte("m{")
				for i := 0; len(body) < int(lim.BodyBytes)-32; i++ {
					body = append(body, fmt.Sprintf("l%d=\"x\",", i)...)
				}
				return serveBody(promContentType, append(body, "} 1\n"...))
			}},
		{name: "a million series", wantReason: ReasonSampleLimit,
			serve: func(lim Limits) http.HandlerFunc {
				// As many series as fit the body limit, far more than the sample limit.
				n := min(1_000_000, int(lim.BodyBytes)/len("m{i=\"0000000\",p=\"\"} 1\n"))
				return serveBody(promContentType, seriesBody(n, 0))
			}},
		{name: "series up to both limits, then a malformed line", wantReason: ReasonParse,
			// The most a scrape holds before it fails: a full body, and as
			// many samples as allowed, with labels that fill the body.
			serve: func(lim Limits) http.HandlerFunc {
				body := seriesBody(lim.Samples, int(lim.BodyBytes)/lim.Samples-1)
				return serveBody(promContentType, append(body, "{{{ not metrics\n"...))
			}},
		{name: "invalid UTF-8", wantReason: ReasonParse,
			serve: func(lim Limits) http.HandlerFunc {
				body := seriesBody(lim.Samples/2, 0)
				return serveBody(promContentType, append(body, "m{i=\"\xff\xfe\"} 1\n"...))
			}},
		{name: "duplicate series", keepsAll: true,
			serve: func(lim Limits) http.HandlerFunc {
				body := bytes.Repeat([]byte("dup{a=\"1\"} 1\n"), lim.Samples-1)
				return serveBody(promContentType, append(body, "other 2\n"...))
			}},
		{name: "server error", wantReason: ReasonHTTPStatus,
			serve: func(Limits) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", promContentType)
					w.WriteHeader(http.StatusServiceUnavailable)
					w.Write([]byte("a 1\n")) // parses, and must not count
				}
			}},
		{name: "connection closed without an answer", wantReason: ReasonNetwork,
			serve: func(Limits) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
						conn.Close()
					}
				}
			}},
		{name: "headers never come", wantReason: ReasonTimeout,
			serve: func(Limits) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
			}},
		{name: "body trickles (slowloris)", wantReason: ReasonTimeout,
			serve: func(Limits) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) { trickle(w, r, seriesBody(100, 0)) }
			}},
	}
}

// gzipResponse writes through a gzip stream, flushing it now and then so
// that the client gets it while it is endless.
type gzipResponse struct {
	http.ResponseWriter
	zw *gzip.Writer
}

func (g *gzipResponse) Write(p []byte) (int, error) {
	n, err := g.zw.Write(p)
	if err == nil {
		err = g.zw.Flush()
	}
	return n, err
}

// scrapeTimeout is the hostile tests' scrape timeout: the slow cases take
// this long per scrape.
const scrapeTimeout = time.Second

// TestHostileTargets runs every case in this process with small limits:
// the reason and that nothing of a failed scrape is kept.
func TestHostileTargets(t *testing.T) {
	base := Limits{BodyBytes: 256 << 10, Samples: 1000}
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			lim := base
			if tc.limits != nil {
				lim = tc.limits(lim)
			}
			srv := httptest.NewServer(tc.serve(lim))
			defer srv.Close()
			u, _ := url.Parse(srv.URL)
			s, err := New(Target{URL: u, Limits: lim}, scrapeTimeout)
			if err != nil {
				t.Fatal(err)
			}
			var c collectors.Collection
			err = s.Collect(context.Background(), &c)
			if got := Reason(err); got != tc.wantReason {
				t.Fatalf("reason %q (err %v), want %q", got, err, tc.wantReason)
			}
			if want := tc.kept(lim); len(c.Samples) != want {
				t.Errorf("%d samples kept, want %d", len(c.Samples), want)
			}
		})
	}
}

// The memory test runs each case in a child process (this test binary
// again) that scrapes and reports its peak RSS, so that the test's own
// servers and bodies do not count.
const hostileChildEnv = "FERRY_SCRAPE_HOSTILE_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(hostileChildEnv); spec != "" {
		os.Exit(hostileChild(spec))
	}
	os.Exit(m.Run())
}

type childSpec struct {
	Good, Hostile string // URLs
	Limits        Limits
	Scrapes       int
}

type childReport struct {
	BaseKB, PeakKB int64
	Reasons        []string
	Kept           []int
	Errors         []string
}

// hostileChild scrapes a good target to warm up, resets the peak RSS, then
// scrapes the hostile one spec.Scrapes times, and prints a childReport.
func hostileChild(spec string) int {
	var cs childSpec
	if err := json.Unmarshal([]byte(spec), &cs); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	scraper := func(raw string) *Scraper {
		u, err := url.Parse(raw)
		if err == nil {
			var s *Scraper
			if s, err = New(Target{URL: u, Limits: cs.Limits}, scrapeTimeout); err == nil {
				return s
			}
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
		return nil
	}
	good, hostile := scraper(cs.Good), scraper(cs.Hostile)
	for range 3 {
		var c collectors.Collection
		if err := good.Collect(context.Background(), &c); err != nil {
			fmt.Fprintln(os.Stderr, "warm-up scrape:", err)
			return 2
		}
	}
	runtime.GC()
	// Writing 5 resets VmHWM to the current RSS (Linux 4.0+).
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		fmt.Fprintln(os.Stderr, "resetting the peak RSS:", err)
		return 2
	}
	var r childReport
	r.BaseKB = statusKB("VmHWM")
	for range cs.Scrapes {
		var c collectors.Collection
		err := hostile.Collect(context.Background(), &c)
		r.Reasons = append(r.Reasons, Reason(err))
		r.Kept = append(r.Kept, len(c.Samples))
		r.Errors = append(r.Errors, fmt.Sprint(err))
	}
	r.PeakKB = statusKB("VmHWM")
	json.NewEncoder(os.Stdout).Encode(r)
	return 0
}

// statusKB reads a field of /proc/self/status, in KiB; -1 if absent.
func statusKB(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb
		}
	}
	return -1
}

// peakBound is what one scrape within lim that fails with reason may add
// to the peak RSS, from what Collect can hold at once:
//   - the body's window, which grows by doubling while one line does not
//     fit in it, up to the limit: the limit, half of it more while the
//     window is copied into the next, and a chunk of the reader. The
//     cases that fail as too slow or cut short hold nothing else: their
//     bodies have one series or none. Those too large have one series,
//     up to as many times as the sample limit allows: its Sample each
//     time, in a slice that grows by copying. (The body is parsed as it
//     arrives: one of many series that failed so would hold what a parse
//     up to the limit holds, as below.)
//   - with a reason of the parse: the parser's copy of the series it is
//     at: up to the limit; the labels of the samples kept, copied from
//     the body: up to the limit, plus per sample the __name__ label and
//     sizes; per sample a 56-byte Sample in a slice that grows by copying
//     (up to 2.25 times), and the series' entry in the scraper's cache (48
//     bytes, its Memo included) with its slot in the cache's map by text,
//     which grows by doubling;
//   - over a label limit at the first line (every such case here): the
//     label set built of it and Labels' unescaped text, each up to the
//     limit; of a line of too many labels, only its first ones;
//
// twice that, since Go's collector lets the heap grow to twice what was
// live at its last run (GOGC=100), and a margin for the runtime and the
// HTTP client.
func peakBound(lim Limits, reason string) int64 {
	live := lim.BodyBytes + lim.BodyBytes/2 + 1<<20
	switch reason {
	case ReasonTimeout, ReasonNetwork, ReasonHTTPStatus:
	case ReasonBodyTooLarge:
		live += int64(lim.Samples) * 126
	case ReasonLabelLimit:
		// See above (Parser.LimitLabels keeps a long line's first labels).
		live += 2 * lim.BodyBytes
	default:
		// __name__ and sizes, Sample and slice growth, cache entry and its
		// slot by text.
		const perSample = 16 + 126 + 48 + 64
		live += 2*lim.BodyBytes + int64(lim.Samples)*perSample
	}
	return 2*live + 8<<20
}

// TestHostileTargetsMemory checks that no hostile case takes the scraper's
// memory past peakBound of the default limits, over three scrapes in a
// row: with the default limits, 22 MiB for a body that fails before its
// parse holds anything, 46 MiB for one too large, 86 MiB for one parsed
// with up to 100k samples.
func TestHostileTargetsMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("a child process per case, each scraping up to the default limits; runs without -short")
	}
	if raceEnabled() {
		t.Skip("the race detector's own memory would be measured")
	}
	if _, err := os.Stat("/proc/self/clear_refs"); err != nil {
		t.Skipf("no /proc/self/clear_refs to reset the peak RSS: %v", err)
	}
	good := serveBody(promContentType, readFixture(t, "prometheus.txt"))
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			lim := DefaultLimits
			if tc.limits != nil {
				lim = tc.limits(lim)
			}
			hostile := tc.serve(lim)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/good" {
					good(w, r)
					return
				}
				hostile(w, r)
			}))
			defer srv.Close()
			spec, _ := json.Marshal(childSpec{Good: srv.URL + "/good", Hostile: srv.URL + "/metrics", Limits: lim, Scrapes: 3})
			cmd := childCommand()
			cmd.Env = append(os.Environ(), hostileChildEnv+"="+string(spec), "GOGC=", "GOMEMLIMIT=")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, stderr.Bytes())
			}
			var r childReport
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatalf("child said %q: %v", out, err)
			}
			for i, reason := range r.Reasons {
				if reason != tc.wantReason || r.Kept[i] != tc.kept(lim) {
					t.Errorf("scrape %d: reason %q, %d samples (err %s); want %q, %d", i, reason, r.Kept[i], r.Errors[i], tc.wantReason, tc.kept(lim))
				}
			}
			growth, bound := (r.PeakKB-r.BaseKB)<<10, peakBound(lim, tc.wantReason)
			t.Logf("peak RSS %d MiB over the %d MiB before; bound %d MiB", growth>>20, r.BaseKB>>10, bound>>20)
			if r.BaseKB <= 0 || growth > bound {
				t.Errorf("peak RSS grew by %d bytes (from %d KiB), more than the bound of %d", growth, r.BaseKB, bound)
			}
		})
	}
}

// childCommand runs this test binary as the child; under qemu-user
// (scripts/test-cross.sh sets FERRY_TEST_EXEC) through the emulator too.
func childCommand() *exec.Cmd {
	if emulator := os.Getenv("FERRY_TEST_EXEC"); emulator != "" {
		return exec.Command(emulator, os.Args[0], "-test.run=^$")
	}
	return exec.Command(os.Args[0], "-test.run=^$")
}

func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// FuzzParseLimits: whatever the body and the limits, Parse keeps only
// samples within the limits and valid for a receiver, or fails with a
// reason that parsing can have.
func FuzzParseLimits(f *testing.F) {
	f.Add([]byte("a{b=\"c\",d=\"e\"} 1\na 2\n"), "text/plain; version=0.0.4", uint8(3), uint8(1), uint8(1), uint8(1))
	f.Add([]byte("# TYPE a counter\na_total{b=\"long value\"} 3\n# EOF\n"), omContentType, uint8(10), uint8(2), uint8(5), uint8(4))
	f.Add([]byte("a{b=\"\xff\"} 1\na{b=\"1\"} 1\na{b=\"1\"} 2\n"), "", uint8(2), uint8(0), uint8(0), uint8(0))
	f.Fuzz(func(t *testing.T, body []byte, contentType string, samples, nLabels, nameLen, valueLen uint8) {
		lim := Limits{Samples: int(samples), Labels: int(nLabels), LabelNameLength: int(nameLen), LabelValueLength: int(valueLen)}
		var c collectors.Collection
		err := Parse(body, contentType, lim, &c)
		if err != nil {
			switch Reason(err) {
			case ReasonParse, ReasonSampleLimit, ReasonLabelLimit:
			default:
				t.Fatalf("Parse: reason %q for %v", Reason(err), err)
			}
			return
		}
		if len(c.Samples) > lim.Samples {
			t.Fatalf("%d samples past the limit of %d", len(c.Samples), lim.Samples)
		}
		for _, s := range c.Samples {
			if lim.Labels > 0 && s.Labels.Len() > lim.Labels {
				t.Fatalf("%s: more labels than %d", s.Labels, lim.Labels)
			}
			if _, dup := s.Labels.HasDuplicateLabelNames(); dup || !s.Labels.Has("__name__") {
				t.Fatalf("%s: a label name twice, or no name", s.Labels)
			}
			s.Labels.Range(func(l labels.Label) {
				switch {
				case l.Value == "", !utf8.ValidString(l.Name), !utf8.ValidString(l.Value):
					t.Fatalf("%s: empty or invalid UTF-8 label %q", s.Labels, l.Name)
				case lim.LabelNameLength > 0 && len(l.Name) > lim.LabelNameLength,
					lim.LabelValueLength > 0 && len(l.Value) > lim.LabelValueLength:
					t.Fatalf("%s: label %q over the length limits", s.Labels, l.Name)
				}
			})
		}
	})
}
