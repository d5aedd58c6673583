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
	"testing"
	"time"
)

// TestFileSDTargetsComeAndGo runs the binary with a job whose targets are
// in a file: a target added to the file is scraped, one removed from it
// ends its series with staleness markers, as a reload does, without a
// SIGHUP; write_relabel_configs keep what the receiver is not to get out of
// the buffer.
func TestFileSDTargetsComeAndGo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	targetA := httptest.NewServer(metricsHandler("app_a 1\nsecret_a 7\n"))
	defer targetA.Close()
	targetB := httptest.NewServer(metricsHandler("app_b 2\n"))
	defer targetB.Close()
	hostA, hostB := strings.TrimPrefix(targetA.URL, "http://"), strings.TrimPrefix(targetB.URL, "http://")

	dir := t.TempDir()
	targets := filepath.Join(dir, "targets", "apps.json")
	os.Mkdir(filepath.Dir(targets), 0o755)
	writeTargets := func(hosts ...string) {
		t.Helper()
		if err := os.WriteFile(targets+".tmp", fmt.Appendf(nil, `[{"targets": ["%s"], "labels": {"room": "cellar"}}]`, strings.Join(hosts, `", "`)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(targets+".tmp", targets); err != nil {
			t.Fatal(err)
		}
	}
	writeTargets(hostA)
	configPath := filepath.Join(dir, "ferry.yml")
	if err := os.WriteFile(configPath, []byte(`global:
  scrape_interval: 200ms
  evaluation_interval: 1m
rule_files: [rules.yml]
scrape_configs:
  - job_name: apps
    file_sd_configs:
      - files: ['targets/*.json']
        refresh_interval: 200ms
remote_write:
  - url: http://127.0.0.1:1/api/v1/write
    write_relabel_configs:
      - source_labels: [__name__]
        regex: 'secret_.*'
        action: drop
`), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	storage := filepath.Join(dir, "data")
	ferry := start(t, buildFerry(t), "--config.file", configPath, "--storage.path", storage,
		"--web.listen-address", listen, "--no-collector.cpu")
	appended := func(source string) bool {
		resp, err := http.Get("http://" + listen + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		prefix := `ferry_samples_appended_total{source="` + source + `"} `
		for line := range strings.Lines(string(b)) {
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
	waitFor(t, 20*time.Second, "target a scraped", func() bool { return failed() || appended("apps/"+hostA) })
	writeTargets(hostA, hostB)
	waitFor(t, 20*time.Second, "target b scraped once in the file", func() bool { return failed() || appended("apps/"+hostB) })
	writeTargets(hostB)
	waitFor(t, 20*time.Second, "target a gone once out of the file", func() bool {
		return failed() || !appended("apps/"+hostA) && appended("apps/"+hostB)
	})
	time.Sleep(500 * time.Millisecond)
	if code := ferry.stop(t); code != 0 {
		b, _ := os.ReadFile(ferry.log)
		t.Fatalf("exit %d\n%s", code, tail(string(b), 20))
	}
	log, _ := os.ReadFile(ferry.log)
	if !bytes.Contains(log, []byte("rule_files ignored")) {
		t.Errorf("no warning for rule_files in the log:\n%s", tail(string(log), 20))
	}

	var out, stderr bytes.Buffer
	if code := run([]string{"buffer", "export", "--storage.path", storage}, &out, &stderr); code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr.String())
	}
	last, counts := map[string]string{}, map[string]int{}
	for line := range strings.Lines(out.String()) {
		fields := strings.Fields(line)
		if strings.HasPrefix(line, "#") || len(fields) < 2 {
			continue
		}
		last[fields[0]] = fields[1]
		counts[fields[0]]++
	}
	seriesA := fmt.Sprintf(`app_a{instance="%s",job="apps",room="cellar"}`, hostA)
	upA := fmt.Sprintf(`up{instance="%s",job="apps",room="cellar"}`, hostA)
	seriesB := fmt.Sprintf(`app_b{instance="%s",job="apps",room="cellar"}`, hostB)
	if counts[seriesA] < 2 || last[seriesA] != "NaN" {
		t.Errorf("%s: %d samples ending in %q; want samples, then a staleness marker (NaN)", seriesA, counts[seriesA], last[seriesA])
	}
	if last[upA] != "NaN" {
		t.Errorf("%s ends in %q, want a staleness marker", upA, last[upA])
	}
	if counts[seriesB] == 0 || last[seriesB] != "2" {
		t.Errorf("%s: %d samples ending in %q, want samples of value 2", seriesB, counts[seriesB], last[seriesB])
	}
	if strings.Contains(out.String(), "secret_a") {
		t.Error("secret_a is in the buffer although write_relabel_configs drop it")
	}
}
