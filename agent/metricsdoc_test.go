package agent

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/ferry-agent/ferry/agent/config"
	"github.com/ferry-agent/ferry/buffer"
	"github.com/ferry-agent/ferry/collectors"
)

// metricsDoc is the self-metrics reference that TestMetricsReference keeps
// true to the code.
const metricsDoc = "../docs/METRICS.md"

// docRow is one row of the reference's table.
type docRow struct {
	typ, labels, meaning string
	line                 int
}

// readMetricsDoc returns the table rows of docs/METRICS.md by family name.
func readMetricsDoc(t *testing.T) map[string]docRow {
	t.Helper()
	data, err := os.ReadFile(metricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]docRow{}
	for i, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 4 {
			t.Fatalf("%s:%d: want 4 cells (name, type, labels, meaning), got %d", metricsDoc, i+1, len(cells))
		}
		name := strings.Trim(strings.TrimSpace(cells[0]), "`")
		if _, dup := rows[name]; dup {
			t.Errorf("%s:%d: %s documented twice", metricsDoc, i+1, name)
		}
		rows[name] = docRow{
			typ:     strings.TrimSpace(cells[1]),
			labels:  strings.ReplaceAll(strings.TrimSpace(cells[2]), "`", ""),
			meaning: strings.TrimSpace(cells[3]),
			line:    i + 1,
		}
	}
	return rows
}

// TestMetricsReference: docs/METRICS.md documents exactly the families that
// a real collection of ferry's self-metrics has, with their types, label
// names and HELP texts; a family added, renamed or changed in the code
// without the reference fails here, and so does a row for a family that is
// gone.
func TestMetricsReference(t *testing.T) {
	cfg := config.DefaultConfig()
	buf, err := buffer.Open(buffer.Options{Dir: t.TempDir(), MaxSize: cfg.StorageMaxSize})
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	fs := pflag.NewFlagSet("ferry", pflag.ContinueOnError)
	flags := config.NewFlags(fs, &cfg, nil)
	if err := fs.Parse([]string{
		"--remote-write.url=http://127.0.0.1:1/api/v1/write", // never called: only its figures are read
		"--scrape.target=app=127.0.0.1:1",                    // never scraped: its counters are read
	}); err != nil {
		t.Fatal(err)
	}
	if err := flags.Finish(); err != nil {
		t.Fatal(err)
	}
	a := &Agent{cfg: cfg, log: slog.New(slog.DiscardHandler), buf: buf, started: time.Now()}
	if a.sender, err = newSenders(cfg, buf, a.log); err != nil {
		t.Fatal(err)
	}
	if a.sources, err = a.buildSources(cfg); err != nil {
		t.Fatal(err)
	}

	var c collectors.Collection
	if err := (selfCollector{a}).Collect(context.Background(), &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Families) < 20 {
		t.Fatalf("a collection of self-metrics has only %d families", len(c.Families))
	}

	doc := readMetricsDoc(t)
	emitted := map[string]bool{}
	for _, d := range c.Families {
		emitted[d.Name] = true
		row, ok := doc[d.Name]
		if !ok {
			t.Errorf("%s (%s) is not documented in %s", d.Name, d.Type, metricsDoc)
			continue
		}
		if row.typ != string(d.Type) {
			t.Errorf("%s:%d: %s is documented as %q, ferry emits it as %q", metricsDoc, row.line, d.Name, row.typ, d.Type)
		}
		if want := strings.Join(d.LabelNames, ", "); row.labels != want {
			t.Errorf("%s:%d: %s is documented with labels %q, ferry gives it %q", metricsDoc, row.line, d.Name, row.labels, want)
		}
		if !strings.HasPrefix(row.meaning, d.Help) {
			t.Errorf("%s:%d: the meaning of %s must start with its HELP text %q; it is %q", metricsDoc, row.line, d.Name, d.Help, row.meaning)
		}
	}
	for name, row := range doc {
		if !emitted[name] {
			t.Errorf("%s:%d: %s is documented but ferry does not emit it", metricsDoc, row.line, name)
		}
	}
}
