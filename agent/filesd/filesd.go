// Package filesd reads scrape targets from files, as Prometheus'
// file_sd_configs: JSON or YAML lists of target groups, re-read when they
// change and every refresh interval. It only reads: the agent turns the
// groups into targets and starts and ends their scrapes.
package filesd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/ferry-agent/ferry/agent/config"
	"github.com/ferry-agent/ferry/internal/lograte"
)

// PathLabel is the label each group gets with the path of its file, as in
// Prometheus; relabel_configs can use it, and it goes with the other
// labels starting with __.
const PathLabel = model.MetaLabelPrefix + "filepath"

// maxFileSize bounds what is read of one target file.
const maxFileSize = 4 << 20

// ReadFile reads a target file: a JSON (.json) or YAML (.yml, .yaml) list
// of groups, each with targets and labels. Each group gets PathLabel. An
// unknown field, a label that is not valid or an empty file list entry is
// an error naming the file.
func ReadFile(path string) ([]config.TargetGroup, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxFileSize)
	}
	var groups []*config.TargetGroup
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		err = dec.Decode(&groups)
	case ".yml", ".yaml":
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err = dec.Decode(&groups); errors.Is(err, io.EOF) {
			err = nil // an empty file: no targets
		}
	default:
		return nil, fmt.Errorf("%s: want a .json, .yml or .yaml file", path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := make([]config.TargetGroup, 0, len(groups))
	for i, g := range groups {
		if g == nil {
			return nil, fmt.Errorf("%s: group %d is empty", path, i)
		}
		lset := map[string]string{}
		for name, value := range g.Labels {
			if !model.UTF8Validation.IsValidLabelName(name) {
				return nil, fmt.Errorf("%s: group %d: %q is not a valid label name", path, i, name)
			}
			lset[name] = value
		}
		lset[PathLabel] = path
		out = append(out, config.TargetGroup{Targets: g.Targets, Labels: lset})
	}
	return out, nil
}

// Watcher keeps the target groups of a set of file patterns. It checks the
// files' size and modification time every poll interval and re-reads those
// that changed, and re-reads them all every refresh interval. A file that
// cannot be read or parsed (half written, say) keeps the groups it had, with
// a log line, as Prometheus does; a file that is gone takes its groups with
// it. A Watcher is used from one goroutine.
type Watcher struct {
	patterns []string
	refresh  time.Duration
	log      *slog.Logger
	errLog   lograte.Limiter

	files       map[string]fileState
	lastRefresh time.Time
}

type fileState struct {
	size    int64
	modTime time.Time
	groups  []config.TargetGroup
}

// DefaultPoll is how often a Watcher looks at its files' sizes and times:
// a changed file is read within this.
const DefaultPoll = 5 * time.Second

// New returns a Watcher of the files matching patterns (globs, as
// filepath.Glob), re-read every refresh at the latest. Call Read for the
// first groups.
func New(patterns []string, refresh time.Duration, log *slog.Logger) *Watcher {
	return &Watcher{patterns: patterns, refresh: refresh, log: log, files: map[string]fileState{}}
}

// Read brings the groups up to date with the files, reading those that
// are new or changed since the last Read, or all of them when the refresh
// interval has passed, and returns the groups of every file in the order
// of their paths. changed reports whether they differ from the last Read's.
func (w *Watcher) Read(now time.Time) (groups []config.TargetGroup, changed bool) {
	all := now.Sub(w.lastRefresh) >= w.refresh
	if all {
		w.lastRefresh = now
	}
	var paths []string
	for _, p := range w.patterns {
		matches, err := filepath.Glob(p)
		if err != nil {
			continue // checked when the config was read
		}
		for _, m := range matches {
			if !slices.Contains(paths, m) {
				paths = append(paths, m)
			}
		}
	}
	slices.Sort(paths)
	next := make(map[string]fileState, len(paths))
	for _, p := range paths {
		prev, had := w.files[p]
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() {
			if had {
				next[p] = prev // a passing error: keep what it had
			}
			continue
		}
		if had && !all && fi.Size() == prev.size && fi.ModTime().Equal(prev.modTime) {
			next[p] = prev
			continue
		}
		g, err := ReadFile(p)
		if err != nil {
			w.errLog.LogAt(now, w.log, slog.LevelError, "file_sd: cannot read a target file; its targets stay as they were", "err", err)
			if had {
				next[p] = prev
			}
			continue
		}
		next[p] = fileState{size: fi.Size(), modTime: fi.ModTime(), groups: g}
	}
	for _, p := range paths {
		if s, ok := next[p]; ok {
			groups = append(groups, s.groups...)
		}
	}
	changed = len(next) != len(w.files)
	for p, s := range next {
		if prev, ok := w.files[p]; !changed && (!ok || !reflect.DeepEqual(prev.groups, s.groups)) {
			changed = true
		}
	}
	w.files = next
	return groups, changed
}

// Run calls Read every poll interval until ctx ends, and update with the
// groups each time they changed.
func (w *Watcher) Run(ctx context.Context, poll time.Duration, update func([]config.TargetGroup)) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if groups, changed := w.Read(now); changed {
				update(groups)
			}
		}
	}
}
