package filesd

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-agent/ferry/agent/config"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	js := filepath.Join(dir, "a.json")
	write(t, js, `[{"targets": ["h1:9100", "h2:9100"], "labels": {"env": "prod"}}, {"targets": ["h3:9100"]}]`)
	yml := filepath.Join(dir, "b.yml")
	write(t, yml, "- targets: ['h4:9100']\n  labels: {env: test}\n")
	for path, want := range map[string][]config.TargetGroup{
		js: {
			{Targets: []string{"h1:9100", "h2:9100"}, Labels: map[string]string{"env": "prod", PathLabel: js}},
			{Targets: []string{"h3:9100"}, Labels: map[string]string{PathLabel: js}},
		},
		yml: {{Targets: []string{"h4:9100"}, Labels: map[string]string{"env": "test", PathLabel: yml}}},
	} {
		got, err := ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %+v", path, got)
		}
		for i := range want {
			if !slices.Equal(got[i].Targets, want[i].Targets) || len(got[i].Labels) != len(want[i].Labels) {
				t.Errorf("%s: group %d %+v, want %+v", path, i, got[i], want[i])
			}
			for k, v := range want[i].Labels {
				if got[i].Labels[k] != v {
					t.Errorf("%s: group %d label %s=%q, want %q", path, i, k, got[i].Labels[k], v)
				}
			}
		}
	}

	empty := filepath.Join(dir, "empty.yml")
	write(t, empty, "")
	if g, err := ReadFile(empty); err != nil || len(g) != 0 {
		t.Errorf("empty file: %v %v", g, err)
	}
	for name, content := range map[string]string{
		"bad.json":    `[{"targets": ["h:1"], "lables": {}}]`,
		"bad.yml":     "- targets: [h:1]\n  lables: {}\n",
		"label.json":  `[{"targets": ["h:1"], "labels": {"": "x"}}]`,
		"broken.json": `[{"targets": ["h:1"]`,
		"null.json":   `[null]`,
	} {
		path := filepath.Join(dir, name)
		write(t, path, content)
		if _, err := ReadFile(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v, want an error naming the file", name, err)
		}
	}
}

// TestWatcher: files that appear, change and go are seen within a poll;
// a file that turns unreadable keeps its targets.
func TestWatcher(t *testing.T) {
	dir := t.TempDir()
	w := New([]string{filepath.Join(dir, "*.json")}, time.Hour, slog.New(slog.DiscardHandler))
	now := time.Now()
	targets := func() []string {
		t.Helper()
		now = now.Add(time.Second)
		groups, _ := w.Read(now)
		var ts []string
		for _, g := range groups {
			ts = append(ts, g.Targets...)
		}
		return ts
	}
	if ts := targets(); len(ts) != 0 {
		t.Fatalf("no files, targets %v", ts)
	}
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	write(t, a, `[{"targets": ["a1:1"]}]`)
	if ts := targets(); !slices.Equal(ts, []string{"a1:1"}) {
		t.Errorf("after a.json: %v", ts)
	}
	if _, changed := w.Read(now.Add(time.Second)); changed {
		t.Error("nothing changed, but Read says it did")
	}
	write(t, b, `[{"targets": ["b1:1"]}]`)
	write(t, a, `[{"targets": ["a1:1", "a2:1"]}]`) // a different size: seen without waiting for the refresh
	if ts := targets(); !slices.Equal(ts, []string{"a1:1", "a2:1", "b1:1"}) {
		t.Errorf("after b.json and a change of a.json: %v", ts)
	}
	write(t, a, `[{"targets": ["a1:1"`) // half written
	if ts := targets(); !slices.Equal(ts, []string{"a1:1", "a2:1", "b1:1"}) {
		t.Errorf("a.json broken: %v, want its targets kept", ts)
	}
	os.Remove(b)
	if ts := targets(); !slices.Equal(ts, []string{"a1:1", "a2:1"}) {
		t.Errorf("b.json gone: %v", ts)
	}
	// The same size and time: only the refresh re-reads it.
	fi, _ := os.Stat(a)
	write(t, a, `[{"targets": ["x9:1"`)
	write(t, a, `[{"targets": ["z9:1"]}]`)
	os.Chtimes(a, fi.ModTime(), fi.ModTime())
	if _, err := os.Stat(a); err != nil {
		t.Fatal(err)
	}
	groups, _ := w.Read(now.Add(2 * time.Hour))
	if len(groups) != 1 || !slices.Equal(groups[0].Targets, []string{"z9:1"}) {
		t.Errorf("after the refresh interval: %+v", groups)
	}
}
