package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/model/value"
	"gopkg.in/yaml.v3"

	"github.com/ferry-agent/ferry/agent/clock"
	"github.com/ferry-agent/ferry/agent/config"
	"github.com/ferry-agent/ferry/buffer"
	"github.com/ferry-agent/ferry/collectors"
	"github.com/ferry-agent/ferry/collectors/scrape"
)

func TestTargetLabels(t *testing.T) {
	ext := labels.FromStrings("site", "berlin", "device", "pi-07")
	for _, tc := range []struct {
		name     string
		in       labels.Labels
		external labels.Labels
		want     labels.Labels
	}{
		{
			name:     "job and instance added",
			in:       labels.FromStrings("__name__", "node_load1"),
			external: labels.EmptyLabels(),
			want:     labels.FromStrings("__name__", "node_load1", "job", "node", "instance", "pi:9100"),
		},
		{
			name:     "own job and instance become exported_",
			in:       labels.FromStrings("__name__", "up", "job", "pushed", "instance", "other:1"),
			external: labels.EmptyLabels(),
			want: labels.FromStrings("__name__", "up", "job", "node", "instance", "pi:9100",
				"exported_job", "pushed", "exported_instance", "other:1"),
		},
		{
			name:     "own job only",
			in:       labels.FromStrings("__name__", "up", "job", "pushed"),
			external: labels.EmptyLabels(),
			want:     labels.FromStrings("__name__", "up", "job", "node", "instance", "pi:9100", "exported_job", "pushed"),
		},
		{
			name:     "external labels added",
			in:       labels.FromStrings("__name__", "node_load1"),
			external: ext,
			want: labels.FromStrings("__name__", "node_load1", "job", "node", "instance", "pi:9100",
				"site", "berlin", "device", "pi-07"),
		},
		{
			name:     "sample's own label wins over an external one",
			in:       labels.FromStrings("__name__", "node_load1", "site", "hamburg"),
			external: ext,
			want: labels.FromStrings("__name__", "node_load1", "job", "node", "instance", "pi:9100",
				"site", "hamburg", "device", "pi-07"),
		},
		{
			name:     "external job and instance never override the target's",
			in:       labels.FromStrings("__name__", "node_load1"),
			external: labels.FromStrings("job", "ext", "instance", "ext:1", "site", "berlin"),
			want:     labels.FromStrings("__name__", "node_load1", "job", "node", "instance", "pi:9100", "site", "berlin"),
		},
		{
			name:     "external label fills an empty value",
			in:       labels.FromStrings("__name__", "m", "site", ""),
			external: ext,
			want:     labels.FromStrings("__name__", "m", "job", "node", "instance", "pi:9100", "site", "berlin", "device", "pi-07"),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in.Copy()
			b := labels.NewBuilder(labels.EmptyLabels())
			got := targetLabels(b, tc.in, "node", "pi:9100", tc.external)
			if !labels.Equal(got, tc.want) {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if !labels.Equal(tc.in, in) {
				t.Errorf("the sample's labels changed to %s", tc.in)
			}
		})
	}
}

func TestTargetLabelsBuilderReuse(t *testing.T) {
	// collectOnce reuses one builder for all samples of a collection; no
	// label of one sample may leak into the next.
	b := labels.NewBuilder(labels.EmptyLabels())
	ext := labels.FromStrings("site", "berlin")
	first := targetLabels(b, labels.FromStrings("__name__", "a", "job", "x", "extra", "1"), "app", "h:1", ext)
	second := targetLabels(b, labels.FromStrings("__name__", "b"), "app", "h:1", ext)
	if want := labels.FromStrings("__name__", "a", "job", "app", "instance", "h:1", "exported_job", "x", "extra", "1", "site", "berlin"); !labels.Equal(first, want) {
		t.Errorf("first: %s, want %s", first, want)
	}
	if want := labels.FromStrings("__name__", "b", "job", "app", "instance", "h:1", "site", "berlin"); !labels.Equal(second, want) {
		t.Errorf("second: %s, want %s", second, want)
	}
}

func TestTargetLabelsExportedNameCollision(t *testing.T) {
	var b labels.Builder
	got := targetLabels(&b, labels.FromStrings("__name__", "m", "job", "a", "exported_job", "b"), "node", "h", labels.EmptyLabels())
	want := labels.FromStrings("__name__", "m", "job", "node", "instance", "h", "exported_job", "b", "exported_exported_job", "a")
	if !labels.Equal(got, want) {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// targetLabels is what collectOnce does to each sample's labels, without
// metric relabeling: target labels, then external labels.
func targetLabels(b *labels.Builder, lset labels.Labels, job, instance string, external labels.Labels) labels.Labels {
	s := newSource("test", job, instance, nil)
	return withExternal(b, s.withTarget(b, lset), external)
}

// scripted is a collector that returns the next of its collections each
// time, or fails when that collection is nil.
type scripted struct {
	steps [][]collectors.Sample
	n     int
}

func (s *scripted) Collect(_ context.Context, c *collectors.Collection) error {
	step := s.steps[min(s.n, len(s.steps)-1)]
	s.n++
	if step == nil {
		return errors.New("target down")
	}
	c.Samples = append(c.Samples, step...)
	return nil
}

func sample(lset ...string) collectors.Sample {
	return collectors.Sample{Labels: labels.FromStrings(lset...), V: 1}
}

// testAgent is an agent with a real buffer and no sources of its own.
func testAgent(t *testing.T, external labels.Labels) *Agent {
	t.Helper()
	cfg := config.DefaultConfig()
	cfg.ExternalLabels = external
	buf, err := buffer.Open(buffer.Options{Dir: t.TempDir(), MaxSize: cfg.StorageMaxSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { buf.Close() })
	return &Agent{cfg: cfg, log: slog.New(slog.DiscardHandler), buf: buf, started: time.Now()}
}

// buffered returns what the buffer holds, as "labels value" lines per
// collection timestamp, in order; a staleness marker reads "stale".
func buffered(t *testing.T, a *Agent) [][]string {
	t.Helper()
	if err := a.buf.Commit(); err != nil {
		t.Fatal(err)
	}
	byT := map[int64][]string{}
	var ts []int64
	a.buf.ForEach(func(b buffer.Block) error {
		for _, s := range b.Series {
			for i, t := range s.T {
				v := fmt.Sprint(s.V[i])
				if value.IsStaleNaN(s.V[i]) {
					v = "stale"
				}
				if byT[t] == nil {
					ts = append(ts, t)
				}
				byT[t] = append(byT[t], s.Labels.String()+" "+v)
			}
		}
		return nil
	})
	slices.Sort(ts)
	var out [][]string
	for _, t := range ts {
		slices.Sort(byT[t])
		out = append(out, byT[t])
	}
	return out
}

func TestStalenessMarkers(t *testing.T) {
	a := testAgent(t, labels.FromStrings("site", "berlin"))
	col := &scripted{steps: [][]collectors.Sample{
		{sample("__name__", "a"), sample("__name__", "b")},
		{sample("__name__", "a")}, // b is gone
		nil,                       // the target fails: a is gone too
		{sample("__name__", "a")}, // a is back
	}}
	s := newSource("app/h:1", "app", "h:1", col)
	for range 4 {
		a.collectOnce(context.Background(), s)
		time.Sleep(2 * time.Millisecond) // one timestamp per collection
	}
	got := buffered(t, a)
	want := [][]string{
		{`{__name__="a", instance="h:1", job="app", site="berlin"} 1`, `{__name__="b", instance="h:1", job="app", site="berlin"} 1`},
		{`{__name__="a", instance="h:1", job="app", site="berlin"} 1`, `{__name__="b", instance="h:1", job="app", site="berlin"} stale`},
		{`{__name__="a", instance="h:1", job="app", site="berlin"} stale`},
		{`{__name__="a", instance="h:1", job="app", site="berlin"} 1`},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("buffered\n%s\nwant\n%s", strings.Join(flat(got), "\n"), strings.Join(flat(want), "\n"))
	}

	// A source removed by a reload ends every series it had.
	a.markAllStale(s)
	got = buffered(t, a)
	if last := got[len(got)-1]; !reflect.DeepEqual(last, []string{`{__name__="a", instance="h:1", job="app", site="berlin"} stale`}) {
		t.Errorf("after removal: %q", last)
	}
}

func flat(rows [][]string) []string {
	var out []string
	for i, r := range rows {
		for _, l := range r {
			out = append(out, fmt.Sprint(i)+": "+l)
		}
	}
	return out
}

func TestScrapeReportAndRelabeling(t *testing.T) {
	a := testAgent(t, labels.EmptyLabels())
	drop, err := relabel.NewRegexp("go_.*")
	if err != nil {
		t.Fatal(err)
	}
	col := &scripted{steps: [][]collectors.Sample{
		{sample("__name__", "go_goroutines"), sample("__name__", "app_requests_total", "job", "pushed"), sample("__name__", "app_up")},
		{sample("__name__", "go_goroutines"), sample("__name__", "app_requests_total", "job", "pushed"), sample("__name__", "app_new")},
		nil,
	}}
	for _, honor := range []bool{false, true} {
		col.n = 0
		s := &source{name: "app/h:1", collector: col, target: labels.FromStrings("job", "app", "instance", "h:1", "room", "cellar"),
			honorLabels: honor, report: true, interval: time.Second, timeout: time.Second, series: newSeriesSet(),
			metricRelabel: []*relabel.Config{{SourceLabels: model.LabelNames{"__name__"}, Regex: drop, Action: relabel.Drop, Separator: ";"}}}
		a.buf = testAgent(t, labels.EmptyLabels()).buf
		for range 3 {
			a.collectOnce(context.Background(), s)
			time.Sleep(2 * time.Millisecond)
		}
		got := buffered(t, a)
		job := `exported_job="pushed", instance="h:1", job="app"`
		if honor {
			job = `instance="h:1", job="pushed"`
		}
		report := func(up, scraped, post, added int) []string {
			var r []string
			for _, m := range []struct {
				name string
				v    int
			}{{"up", up}, {"scrape_samples_scraped", scraped}, {"scrape_samples_post_metric_relabeling", post}, {"scrape_series_added", added}} {
				r = append(r, fmt.Sprintf(`{__name__="%s", instance="h:1", job="app", room="cellar"} %d`, m.name, m.v))
			}
			return r
		}
		want := [][]string{
			append([]string{`{__name__="app_requests_total", ` + job + `, room="cellar"} 1`, `{__name__="app_up", instance="h:1", job="app", room="cellar"} 1`}, report(1, 3, 2, 2)...),
			append([]string{`{__name__="app_new", instance="h:1", job="app", room="cellar"} 1`, `{__name__="app_requests_total", ` + job + `, room="cellar"} 1`, `{__name__="app_up", instance="h:1", job="app", room="cellar"} stale`}, report(1, 3, 2, 1)...),
			append([]string{`{__name__="app_new", instance="h:1", job="app", room="cellar"} stale`, `{__name__="app_requests_total", ` + job + `, room="cellar"} stale`}, report(0, 0, 0, 0)...),
		}
		for i := range got {
			// scrape_duration_seconds varies; check it is there, then drop it.
			n := len(got[i])
			got[i] = slices.DeleteFunc(got[i], func(l string) bool { return strings.HasPrefix(l, `{__name__="scrape_duration_seconds"`) })
			if len(got[i]) != n-1 {
				t.Errorf("honor_labels %v, collection %d: %d scrape_duration_seconds samples, want 1", honor, i, n-len(got[i]))
			}
			slices.Sort(want[i])
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("honor_labels %v: buffered\n%s\nwant\n%s", honor, strings.Join(flat(got), "\n"), strings.Join(flat(want), "\n"))
		}
	}
}

// limitedTarget fails its scrapes over the sample limit; a scrape that
// works has one series four times.
type limitedTarget struct{ fail bool }

func (l *limitedTarget) Collect(_ context.Context, c *collectors.Collection) error {
	if l.fail {
		return &scrape.Error{Reason: scrape.ReasonSampleLimit, Err: errors.New("more than the limit of 10 samples")}
	}
	for range 4 {
		c.Samples = append(c.Samples, sample("__name__", "m"))
	}
	return nil
}

func TestScrapeFailuresByReasonAndDuplicates(t *testing.T) {
	a := testAgent(t, labels.EmptyLabels())
	target := &limitedTarget{}
	s := newSource("app/h:1", "app", "h:1", target)
	s.report = true
	s.failures = map[string]*atomic.Uint64{}
	for _, r := range scrape.Reasons {
		s.failures[r] = new(atomic.Uint64)
	}
	a.collectOnce(context.Background(), s)
	target.fail = true
	a.collectOnce(context.Background(), s)
	a.collectOnce(context.Background(), s)
	if got := s.failures[scrape.ReasonSampleLimit].Load(); got != 2 {
		t.Errorf("sample_limit failures %d, want 2", got)
	}
	if got := s.duplicates.Load(); got != 3 {
		t.Errorf("%d duplicates counted, want 3", got)
	}
	got := buffered(t, a)
	// The first scrape: 1 sample kept, 3 duplicates dropped: 4 scraped.
	for _, want := range []string{
		`{__name__="m", instance="h:1", job="app"} 1`,
		`{__name__="scrape_samples_scraped", instance="h:1", job="app"} 4`,
		`{__name__="scrape_samples_post_metric_relabeling", instance="h:1", job="app"} 1`,
	} {
		if !slices.Contains(got[0], want) {
			t.Errorf("first scrape: %q, want %s (duplicates count as scraped, not kept)", got[0], want)
		}
	}
}

// TestTargetsOwnUpComesFirst: a target that exposes the series of the
// scrape's report (up, with the target's labels) has its own sample kept,
// as the first of the collection; the report's is dropped and counted.
func TestTargetsOwnUpComesFirst(t *testing.T) {
	a := testAgent(t, labels.EmptyLabels())
	col := &scripted{steps: [][]collectors.Sample{{{Labels: labels.FromStrings("__name__", "up"), V: 7}}}}
	s := newSource("app/h:1", "app", "h:1", col)
	s.report = true
	a.collectOnce(context.Background(), s)
	got := buffered(t, a)
	if want := `{__name__="up", instance="h:1", job="app"} 7`; len(got) != 1 || !slices.Contains(got[0], want) {
		t.Errorf("buffered %q, want %s", got, want)
	}
	if d := s.duplicates.Load(); d != 1 {
		t.Errorf("%d duplicates counted, want 1", d)
	}
	if n := a.buf.Stats().Dropped[buffer.ReasonOutOfOrder]; n != 0 {
		t.Errorf("%d samples refused by the buffer as out of order: the report's up reached it", n)
	}
}

// TestOutgoingAppliesWriteRelabeling: what the receiver gets is the
// series with the external labels, through write_relabel_configs, as
// Prometheus sends it; a series dropped there, or left without a name, is
// not kept.
func TestOutgoingAppliesWriteRelabeling(t *testing.T) {
	var rcs []*relabel.Config
	if err := yaml.Unmarshal([]byte(`
- source_labels: [__name__]
  regex: 'secret_.*'
  action: drop
- source_labels: [site]
  target_label: region
  regex: 'ber'
  replacement: eu
- regex: 'site'
  action: labeldrop
`), &rcs); err != nil {
		t.Fatal(err)
	}
	for _, rc := range rcs {
		if err := rc.Validate(model.UTF8Validation); err != nil { // as the config file's reading does
			t.Fatal(err)
		}
	}
	b := labels.NewBuilder(labels.EmptyLabels())
	external := labels.FromStrings("site", "ber")
	got, ok := outgoing(b, labels.FromStrings("__name__", "app_up", "job", "a"), external, rcs)
	if want := labels.FromStrings("__name__", "app_up", "job", "a", "region", "eu"); !ok || !labels.Equal(got, want) {
		t.Errorf("got %s %v, want %s", got, ok, want)
	}
	if _, ok := outgoing(b, labels.FromStrings("__name__", "secret_key", "job", "a"), external, rcs); ok {
		t.Error("secret_key kept, want it dropped")
	}
	if got, ok := outgoing(b, labels.FromStrings("__name__", "m"), external, nil); !ok || !labels.Equal(got, labels.FromStrings("__name__", "m", "site", "ber")) {
		t.Errorf("without rules: %s %v", got, ok)
	}
}

// TestExternalLabelsChangeBetweenCollections: the source's cache of label
// sets was made with the external labels of its time; a reload that changes
// them must not leave samples with the old ones: neither in the cache's map
// (a collector without memos) nor in the memos a scraper keeps.
func TestExternalLabelsChangeBetweenCollections(t *testing.T) {
	u := exporter(t, "a 1\n")
	for _, scraped := range []bool{false, true} {
		a := testAgent(t, labels.FromStrings("site", "berlin"))
		col := &scripted{steps: [][]collectors.Sample{
			{sample("__name__", "a")}, {sample("__name__", "a")}, {sample("__name__", "a")},
		}}
		s := newSource("app/h:1", "app", "h:1", col)
		if scraped {
			tg := config.ScrapeTarget{Target: scrape.Target{URL: u, Limits: scrape.DefaultLimits}, Labels: s.target}
			sources, err := a.targetSources(a.cfg, []config.ScrapeTarget{tg}, true)
			if err != nil {
				t.Fatal(err)
			}
			s = sources[0]
		}
		for _, site := range []string{"berlin", "paris", "paris"} {
			a.cfg.ExternalLabels = labels.FromStrings("site", site)
			a.collectOnce(context.Background(), s)
			time.Sleep(2 * time.Millisecond) // one timestamp per collection
		}
		got := buffered(t, a)
		for i, c := range got {
			got[i] = withoutReport(c)
		}
		want := [][]string{
			{`{__name__="a", instance="h:1", job="app", site="berlin"} 1`},
			{`{__name__="a", instance="h:1", job="app", site="paris"} 1`},
			{`{__name__="a", instance="h:1", job="app", site="paris"} 1`},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("scraped %v: buffered\n%s\nwant\n%s", scraped, strings.Join(flat(got), "\n"), strings.Join(flat(want), "\n"))
		}
	}
}

// Each series of a scrape target keeps a labelCache entry in its Memo: at
// the heavy workload's 10k series, 8 bytes more of it are 80 kB more of
// ferry's live heap. The map's entries may be larger (mappedLabels).
func TestMemoEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(cachedLabels{}); n > 48 {
		t.Errorf("a Memo's labelCache entry takes %d bytes, more than 48", n)
	}
}

// A source stopped right after a collection, in the same millisecond,
// still ends its series: the staleness markers come after that
// collection's samples, not at their timestamp (where the buffer would
// refuse them as out of order).
func TestStaleMarkersAfterACollectionInTheSameMillisecond(t *testing.T) {
	a := testAgent(t, labels.EmptyLabels())
	fc := &fakeClock{r: clock.Reading{Wall: at("2026-07-01T00:00:00Z"), Mono: time.Hour}}
	a.clock = clock.New(fc, at("2026-06-01T00:00:00Z"), false, slog.New(slog.DiscardHandler))
	col := &scripted{steps: [][]collectors.Sample{{sample("__name__", "a")}}}
	s := newSource("app/h:1", "app", "h:1", col)
	a.collectOnce(context.Background(), s)
	a.markAllStale(s) // the clock has not moved on: the same millisecond
	if n := a.buf.Stats().Dropped[buffer.ReasonOutOfOrder]; n != 0 {
		t.Fatalf("%d staleness markers refused as out of order", n)
	}
}

// TestSeriesSetFindsWhatIsGone follows random collections, a series coming
// in some and not others, some twice in one, and a reload's markAllStale
// (a finish with nothing added): each finish must return exactly the
// series of the collection before that this one did not have, added must
// count those this one has and the one before did not, and a series must
// be found again in the collection that had it already. Series come by
// label set (add) or by a label cache's entry (addCached), whose own
// entry the set keeps across collections; each series has two such
// entries, as two texts of one series have, and now and then one is made
// anew, as when the scraper forgets a series and finds it again. A second
// run gives the set a hash of a few values, so that most series collide.
func TestSeriesSetFindsWhatIsGone(t *testing.T) {
	for _, collide := range []bool{false, true} {
		rng := rand.New(rand.NewPCG(11, uint64(time.Now().UnixNano())))
		ss := newSeriesSet()
		if collide {
			ss.hash = func(l labels.Labels) uint64 { return l.Hash() % 3 }
		}
		cached := map[string]*[2]*cachedLabels{}
		var prev map[string]bool
		for run := range 300 {
			cur := map[string]bool{}
			n := rng.IntN(40)
			if rng.IntN(10) == 0 {
				n = 0 // a failed scrape, or a reload's last finish
			}
			for range n {
				name := fmt.Sprint("s", rng.IntN(50))
				lset := labels.FromStrings("__name__", name)
				if cached[name] == nil {
					cached[name] = &[2]*cachedLabels{}
				}
				var again bool
				switch e := &cached[name][rng.IntN(2)]; {
				case rng.IntN(3) == 0:
					again = ss.add(lset)
				case *e == nil || rng.IntN(20) == 0:
					*e = &cachedLabels{seenSeries: seenSeries{lset: lset}}
					again = ss.addCached(*e)
				default:
					again = ss.addCached(*e)
				}
				if again != cur[name] {
					t.Fatalf("collide %v, collection %d: %s found again %v, want %v", collide, run, name, again, cur[name])
				}
				cur[name] = true
			}
			added := 0
			for name := range cur {
				if !prev[name] {
					added++
				}
			}
			if ss.added != added {
				t.Fatalf("collide %v, collection %d: added %d, want %d", collide, run, ss.added, added)
			}
			var gone, want []string
			for _, lset := range ss.finish() {
				gone = append(gone, lset.Get("__name__"))
			}
			for name := range prev {
				if !cur[name] {
					want = append(want, name)
				}
			}
			slices.Sort(gone)
			slices.Sort(want)
			if !slices.Equal(gone, want) {
				t.Fatalf("collide %v, collection %d: gone %v, want %v", collide, run, gone, want)
			}
			if n := ss.seen.Len() + len(ss.collided); n != len(cur) {
				t.Fatalf("collide %v, collection %d: the set holds %d entries for %d series", collide, run, n, len(cur))
			}
			if collide && ss.seen.Len() > 3 {
				t.Fatalf("collection %d: %d series at 3 hashes", run, ss.seen.Len())
			}
			prev = cur
		}
	}
}

// TestScrapeDropsDuplicatesRandomized scrapes random bodies through a real
// scraper and the agent's collection, and holds what is buffered to a
// model: each sample as Parse reads it, with the target's labels
// (collectors.WithTarget) and at times metric relabeling that drops y, its
// timestamp kept only with honor_timestamps, and one without a timestamp
// dropped, counted, when its series, as relabeling left it, came earlier in
// the scrape without one. The bodies write a few series in many ways
// (labels in any order, empty values, a job the target's label displaces,
// a label that relabeling drops), so that different texts meet as one
// series before relabeling and after it. None of the duplicates reaches
// the buffer: it would refuse them as out of order.
func TestScrapeDropsDuplicatesRandomized(t *testing.T) {
	target := labels.FromStrings("job", "app", "instance", "h:1")
	var mu sync.Mutex
	var body string
	u := exporterFunc(t, func() string { mu.Lock(); defer mu.Unlock(); return body })
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 23))
		honorLabels, honorTimestamps := rng.IntN(2) == 0, rng.IntN(2) == 0
		var metricRelabel []*relabel.Config
		if rng.IntN(3) > 0 {
			metricRelabel = []*relabel.Config{{Action: relabel.LabelDrop, Regex: relabel.MustNewRegexp("y")}}
		}
		stamp := int64(1_700_000_000_000) // timestamped series only ever go forward
		line := func() string {
			var lbls []string
			for _, n := range []string{"x", "y", "job"} {
				if rng.IntN(2) == 0 {
					lbls = append(lbls, fmt.Sprintf("%s=%q", n, []string{"", "1", "app"}[rng.IntN(3)]))
				}
			}
			rng.Shuffle(len(lbls), func(i, j int) { lbls[i], lbls[j] = lbls[j], lbls[i] })
			name := []string{"a", "b", "ts"}[rng.IntN(3)]
			l := name + "{" + strings.Join(lbls, ",") + "} " + strconv.Itoa(rng.IntN(100))
			if name == "ts" {
				stamp++
				l += " " + strconv.FormatInt(stamp, 10)
			}
			return l + "\n"
		}

		a := testAgent(t, labels.EmptyLabels())
		tg := config.ScrapeTarget{
			Target: scrape.Target{URL: u, Limits: scrape.DefaultLimits, HonorTimestamps: honorTimestamps},
			Labels: target, HonorLabels: honorLabels, MetricRelabel: metricRelabel,
		}
		sources, err := a.targetSources(a.cfg, []config.ScrapeTarget{tg}, true)
		if err != nil {
			t.Fatal(err)
		}
		s := sources[0]
		want := map[string][]float64{} // by series, in order
		var wantScraped, wantKept []float64
		dups := 0
		for range 10 {
			var b strings.Builder
			for range rng.IntN(14) {
				b.WriteString(line())
			}
			mu.Lock()
			body = b.String()
			mu.Unlock()

			var parsed collectors.Collection
			if err := scrape.Parse([]byte(body), "text/plain", scrape.DefaultLimits, &parsed); err != nil {
				t.Fatalf("seed %d: %v\n%s", seed, err, body)
			}
			stamped := map[string]bool{}
			kept := 0
			var builder labels.Builder
			for _, smp := range parsed.Samples {
				lset := collectors.WithTarget(&builder, smp.Labels, target, honorLabels)
				if metricRelabel != nil {
					builder.Reset(lset)
					lset = builder.Del("y").Labels()
				}
				if !honorTimestamps || smp.T == 0 {
					if stamped[lset.String()] {
						dups++
						continue
					}
					stamped[lset.String()] = true
				}
				kept++
				want[lset.String()] = append(want[lset.String()], smp.V)
			}
			wantScraped = append(wantScraped, float64(len(parsed.Samples)))
			wantKept = append(wantKept, float64(kept))

			a.collectOnce(context.Background(), s)
			time.Sleep(2 * time.Millisecond) // the next collection is stamped later
		}

		if err := a.buf.Commit(); err != nil {
			t.Fatal(err)
		}
		got := map[string][]float64{}
		a.buf.ForEach(func(b buffer.Block) error {
			for _, ser := range b.Series {
				for _, v := range ser.V {
					if !value.IsStaleNaN(v) {
						got[ser.Labels.String()] = append(got[ser.Labels.String()], v)
					}
				}
			}
			return nil
		})
		scraped, kept := got[`{__name__="scrape_samples_scraped", instance="h:1", job="app"}`], got[`{__name__="scrape_samples_post_metric_relabeling", instance="h:1", job="app"}`]
		if !slices.Equal(scraped, wantScraped) || !slices.Equal(kept, wantKept) {
			t.Errorf("seed %d: scraped %v, kept %v; want %v, %v", seed, scraped, kept, wantScraped, wantKept)
		}
		maps.DeleteFunc(got, func(series string, _ []float64) bool {
			return strings.HasPrefix(series, `{__name__="scrape_`) || strings.HasPrefix(series, `{__name__="up"`)
		})
		if !reflect.DeepEqual(got, want) {
			t.Errorf("seed %d: buffered\n%v\nwant\n%v", seed, got, want)
		}
		if d := s.duplicates.Load(); d != uint64(dups) {
			t.Errorf("seed %d: %d duplicates counted, want %d", seed, d, dups)
		}
		if n := a.buf.Stats().Dropped[buffer.ReasonOutOfOrder]; n != 0 {
			t.Errorf("seed %d: %d samples refused by the buffer as out of order", seed, n)
		}
		if dups == 0 {
			t.Errorf("seed %d: no duplicates in its bodies", seed)
		}
		if t.Failed() {
			t.Fatalf("seed %d: honor labels %v, timestamps %v, relabeling %v", seed, honorLabels, honorTimestamps, metricRelabel != nil)
		}
	}
}

// TestScrapeTargetLabelsThroughTheScraper: a real scrape target, whose
// scraper adds the target labels to the label sets it caches, buffers what
// Prometheus would: metric relabeling sees the target's labels (job as
// the target's, or with honor_labels as the sample's), in the first
// collection and in those from the scraper's cache.
func TestScrapeTargetLabelsThroughTheScraper(t *testing.T) {
	u := exporter(t, "app_requests_total{job=\"pushed\"} 1\ngo_goroutines 5\napp_up 1\n")
	for _, honor := range []bool{false, true} {
		a := testAgent(t, labels.EmptyLabels())
		tg := config.ScrapeTarget{
			Target:      scrape.Target{URL: u, Limits: scrape.DefaultLimits},
			Labels:      labels.FromStrings("job", "app", "instance", "h:1", "room", "cellar"),
			HonorLabels: honor,
			MetricRelabel: []*relabel.Config{
				{SourceLabels: model.LabelNames{"__name__"}, Regex: relabel.MustNewRegexp("go_.*"), Action: relabel.Drop, Separator: ";"},
				{SourceLabels: model.LabelNames{"job"}, Regex: relabel.MustNewRegexp("(.*)"), TargetLabel: "seen_job", Replacement: "$1", Action: relabel.Replace, Separator: ";", NameValidationScheme: model.UTF8Validation},
			},
		}
		sources, err := a.targetSources(a.cfg, []config.ScrapeTarget{tg}, true)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 { // the first parses, the others come from the cache
			a.collectOnce(context.Background(), sources[0])
			time.Sleep(2 * time.Millisecond)
		}
		requests := `{__name__="app_requests_total", exported_job="pushed", instance="h:1", job="app", room="cellar", seen_job="app"} 1`
		if honor {
			requests = `{__name__="app_requests_total", instance="h:1", job="pushed", room="cellar", seen_job="pushed"} 1`
		}
		want := []string{requests, `{__name__="app_up", instance="h:1", job="app", room="cellar", seen_job="app"} 1`}
		got := buffered(t, a)
		if len(got) != 3 {
			t.Fatalf("honor_labels %v: %d collections buffered, want 3", honor, len(got))
		}
		for i, c := range got {
			if c = withoutReport(c); !slices.Equal(c, want) {
				t.Errorf("honor_labels %v, collection %d:\n got  %q\n want %q", honor, i, c, want)
			}
		}
	}
}

// exporter serves body as a scrape target's /metrics until the test ends,
// and returns its URL.
func exporter(t *testing.T, body string) *url.URL {
	t.Helper()
	return exporterFunc(t, func() string { return body })
}

// exporterFunc is exporter of what body returns at each scrape.
func exporterFunc(t *testing.T, body func() string) *url.URL {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, body())
	}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// withoutReport is a collection's buffered series (buffered's lines)
// without the scrape's report: up and the scrape_ series.
func withoutReport(c []string) []string {
	return slices.DeleteFunc(c, func(l string) bool {
		return strings.Contains(l, `{__name__="scrape_`) || strings.HasPrefix(l, `{__name__="up"`)
	})
}
