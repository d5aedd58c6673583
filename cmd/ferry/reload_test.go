package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReloadOnSIGHUP runs the binary, changes its config file and sends
// SIGHUP: the new target is scraped, the removed one's series end with
// staleness markers, the buffer keeps what it had, and a broken file is
// refused while the running configuration goes on.
func TestReloadOnSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	targetA := httptest.NewServer(metricsHandler("app_a 1\n"))
	defer targetA.Close()
	targetB := httptest.NewServer(metricsHandler("app_b 2\n"))
	defer targetB.Close()
	hostA, hostB := strings.TrimPrefix(targetA.URL, "http://"), strings.TrimPrefix(targetB.URL, "http://")

	dir := t.TempDir()
	configPath := filepath.Join(dir, "ferry.yml")
	// Scraped every 200ms: a reload's effect shows within a second.
	writeConfig := func(job, host string) {
		t.Helper()
		cfg := fmt.Sprintf("global:\n  scrape_interval: 200ms\nscrape_configs:\n  - job_name: %s\n    static_configs:\n      - targets: [%q]\n", job, host)
		if err := os.WriteFile(configPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig("a", hostA)
	listen := freeAddr(t)
	storage := filepath.Join(dir, "data")
	ferry := start(t, buildFerry(t), "--config.file", configPath, "--storage.path", storage,
		"--web.listen-address", listen, "--no-collector.cpu")
	metrics := func() string {
		resp, err := http.Get("http://" + listen + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	// appended: the source exists and has appended samples (its series is
	// there, at 0, before its first collection ends).
	appended := func(source string) bool {
		prefix := `ferry_samples_appended_total{source="` + source + `"} `
		for line := range strings.Lines(metrics()) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
				return v != "0"
			}
		}
		return false
	}
	failed := func() bool {
		if ferry.cmd.ProcessState != nil {
			b, _ := os.ReadFile(ferry.log)
			t.Fatalf("ferry exited:\n%s", tail(string(b), 20))
		}
		return false
	}
	waitFor(t, 20*time.Second, "target a scraped", func() bool { return failed() || appended("a/"+hostA) })

	writeConfig("b", hostB)
	ferry.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 20*time.Second, "target b scraped after SIGHUP", func() bool {
		return failed() || appended("b/"+hostB) && !appended("a/"+hostA)
	})

	if err := os.WriteFile(configPath, []byte("global:\n  scrape_intervall: 1s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ferry.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 20*time.Second, "the broken file refused", func() bool {
		b, _ := os.ReadFile(ferry.log)
		return failed() || bytes.Contains(b, []byte("reload refused")) && bytes.Contains(b, []byte("scrape_intervall"))
	})
	if !appended("b/" + hostB) {
		t.Error("after a refused reload, target b is no longer scraped")
	}
	if code := ferry.stop(t); code != 0 {
		b, _ := os.ReadFile(ferry.log)
		t.Fatalf("exit %d\n%s", code, tail(string(b), 20))
	}

	var out, stderr bytes.Buffer
	if code := run([]string{"buffer", "export", "--storage.path", storage}, &out, &stderr); code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr.String())
	}
	last := map[string]string{} // series -> last value
	counts := map[string]int{}
	for line := range strings.Lines(out.String()) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		last[fields[0]] = fields[1]
		counts[fields[0]]++
	}
	seriesA := fmt.Sprintf(`app_a{instance="%s",job="a"}`, hostA)
	upA := fmt.Sprintf(`up{instance="%s",job="a"}`, hostA)
	seriesB := fmt.Sprintf(`app_b{instance="%s",job="b"}`, hostB)
	if counts[seriesA] < 2 || last[seriesA] != "NaN" {
		t.Errorf("%s: %d samples ending in %q; want the samples from before the reload, then a staleness marker (NaN)", seriesA, counts[seriesA], last[seriesA])
	}
	if last[upA] != "NaN" {
		t.Errorf("%s ends in %q, want a staleness marker", upA, last[upA])
	}
	if counts[seriesB] == 0 || last[seriesB] != "2" {
		t.Errorf("%s: %d samples ending in %q, want samples of value 2", seriesB, counts[seriesB], last[seriesB])
	}
}

func metricsHandler(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, body)
	}
}
