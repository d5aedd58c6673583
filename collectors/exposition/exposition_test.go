package exposition

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// toOpenMetrics rewrites a text-format body of classic metrics (one line per
// sample, the series of a histogram or summary together, as client
// libraries write them) as OpenMetrics: counters named without "_total" in
// their metadata, a UNIT line where a family's name ends in one, and a
// "_created" line after each series of a counter, histogram or summary.
func toOpenMetrics(t testing.TB, text []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	var family, typ, group, groupName string
	created := 1700000000
	endGroup := func() {
		if group != "" {
			created++
			fmt.Fprintf(&out, "%s_created%s %d.25\n", groupName, group, created)
			group = ""
		}
	}
	leOrQuantile := regexp.MustCompile(`(le|quantile)="[^"]*",?`)
	lines := strings.Split(strings.TrimSuffix(string(text), "\n"), "\n")
	types := map[string]string{}
	for _, line := range lines {
		if f := strings.Fields(line); len(f) == 4 && f[1] == "TYPE" {
			types[f[2]] = f[3]
		}
	}
	for _, line := range lines {
		if strings.HasPrefix(line, "# ") {
			endGroup()
			f := strings.SplitN(line, " ", 4)
			if len(f) < 4 {
				t.Fatalf("%q", line)
			}
			name := f[2]
			if f[1] == "TYPE" {
				family, typ = name, f[3]
			}
			if types[name] == "counter" {
				name = strings.TrimSuffix(name, "_total")
			}
			if f[1] == "TYPE" && f[3] == "untyped" {
				f[3] = "unknown"
			}
			fmt.Fprintf(&out, "# %s %s %s\n", f[1], name, f[3])
			if f[1] == "TYPE" {
				for _, u := range []string{"seconds", "bytes"} {
					if strings.HasSuffix(name, "_"+u) {
						fmt.Fprintf(&out, "# UNIT %s %s\n", name, u)
					}
				}
			}
			continue
		}
		if typ == "counter" || typ == "histogram" || typ == "summary" {
			labels := ""
			if i := strings.IndexByte(line, '{'); i >= 0 {
				labels = strings.Replace(leOrQuantile.ReplaceAllString(line[i:strings.LastIndexByte(line, '}')+1], ""), ",}", "}", 1)
				if labels == "{}" {
					labels = ""
				}
			}
			if labels != group {
				endGroup()
			}
			group, groupName = labels, strings.TrimSuffix(family, "_total")
			if group == "" {
				group = " " // a series without labels is a group too
			}
		}
		out.WriteString(line + "\n")
	}
	endGroup()
	out.WriteString("# EOF\n")
	return bytes.ReplaceAll(out.Bytes(), []byte("_created  "), []byte("_created "))
}

// corpus lists real expositions: node_exporter's and Prometheus' own pages
// in the text format, the same re-encoded as OpenMetrics with "_created"
// lines, and the examples of the OpenMetrics specification.
func corpus(t testing.TB) map[string]struct {
	body   []byte
	format Format
} {
	c := map[string]struct {
		body   []byte
		format Format
	}{}
	for _, f := range []string{"node_exporter.txt", "prometheus.txt"} {
		b := readFile(t, f)
		c[f] = struct {
			body   []byte
			format Format
		}{b, Text}
		c[f+" as OpenMetrics"] = struct {
			body   []byte
			format Format
		}{toOpenMetrics(t, b), OpenMetrics}
	}
	c["openmetrics-spec.txt"] = struct {
		body   []byte
		format Format
	}{readFile(t, "openmetrics-spec.txt"), OpenMetrics}
	return c
}

func TestSameAsPrometheusOnCorpus(t *testing.T) {
	var p Parser
	for name, c := range corpus(t) {
		t.Run(name, func(t *testing.T) {
			if d := compare(&p, c.body, c.format); d != "" {
				t.Fatal(d)
			}
			// The comparison above is not vacuous: samples, families and
			// (in OpenMetrics) start times are there to compare.
			o := ourParse(&p, c.body, c.format)
			if o.err != nil || len(o.samples) < 10 {
				t.Fatalf("%d samples, error %v", len(o.samples), o.err)
			}
			withDesc, withStart := 0, 0
			for _, s := range o.samples {
				if s.desc != nil {
					withDesc++
				}
				if s.start != 0 {
					withStart++
				}
			}
			if withDesc < len(o.samples)/2 || (c.format == OpenMetrics) != (withStart > 0) {
				t.Fatalf("%d samples, %d with a family, %d with a start time", len(o.samples), withDesc, withStart)
			}
		})
	}
}

// fuzzSeeds are bodies that exercise the corners of both formats.
var fuzzSeeds = []string{
	"foo 1\n",
	"  foo 1\n\n\t# comment\n#HELP x\n# HELP foo  some \\\\ help \\n x\n# TYPE foo gauge\nfoo{a=\"1\" b=\"2\",} 1 123\n",
	"foo{a=\"x\\\"y\\\\z\\n\"} NaN\nfoo{a=\"multi\nline\"} +Inf -5\n",
	"{\"my.metric\", \"a.b\"=\"x\"} 1e3\n{\"a\"=\"b\",\"m\"} -Inf\n",
	"foo 1\n\x00junk\n",
	"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_count 2\nh_sum 3\n",
	"# TYPE s summary\ns{quantile=\"0.50\"} 1\ns_sum 3\ns_count 2\n",
	"# TYPE c counter\n# HELP c help\nc_total{a=\"1\"} 1\nc_created{a=\"1\"} 1.5e9\nc_total{a=\"2\"} 1\nc_created{a=\"2\"} 1.6e9\n# EOF\n",
	"# TYPE c counter\nc_total{a=\"1\"} 1\nc_total{a=\"2\"} 1\nc_created{a=\"2\"} 2\nc_created{a=\"1\"} 3\nc_total{a=\"2\"} 1\n# EOF",
	"# TYPE h histogram\n# UNIT h_seconds seconds\nh_bucket{le=\"1\"} 1 # {t=\"x\"} 0.5 1.5\nh_bucket{le=\"+Inf\"} 2\nh_count 2\nh_sum 3\nh_created 12.5\n# EOF\n",
	"# TYPE i info\ni_info{a=\"b\"} 1\n# TYPE g gaugehistogram\ng_bucket{le=\"1\"} 1\ng_gcount 1\ng_gsum 1\n# EOF\n",
	"foo 1 1.5\nbar{} 2 # {} 1\n# EOF\n",
	"foo  1\n# EOF\n",
	"foo 1\n# EOF\n\n",
}

// FuzzSameAsPrometheus requires the same outcome as Prometheus' parsers
// (see compare) on any body, in either format.
func FuzzSameAsPrometheus(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	for _, c := range corpus(f) {
		// A slice of each real page: the fuzzer mutates small inputs best.
		f.Add(c.body[:min(len(c.body), 2000)], c.format == OpenMetrics)
	}
	var p Parser
	f.Fuzz(func(t *testing.T, body []byte, om bool) {
		format := Text
		if om {
			format = OpenMetrics
		}
		if d := compare(&p, body, format); d != "" {
			t.Fatalf("%s\nbody %q", d, body)
		}
	})
}

// TestParserLetsGoOfTheBody: the scraper keeps a Parser per target between
// scrapes, for its Descs; it must not keep the last body (up to the body
// limit) alive with it, whether the parse ended well or not.
func TestParserLetsGoOfTheBody(t *testing.T) {
	var p Parser
	for _, body := range []string{"# HELP a x\na 1\n", "a{ 1\n"} {
		p.Reset([]byte(body), Text)
		for p.Next() {
		}
		if p.b != nil || p.series != nil || p.fam.name != nil || p.fam.help != nil {
			t.Errorf("%q: the parser still refers to the body", body)
		}
	}
}

// TestLimitLabelsCountsWhatItDoesNotKeep: past LimitLabels' bound, a
// series' labels are counted, not kept, in both formats, whether the name
// is before the braces or quoted in them; the next line starts afresh.
func TestLimitLabelsCountsWhatItDoesNotKeep(t *testing.T) {
	for _, c := range []struct {
		body   string
		format Format
	}{
		{"m{a=\"1\",b=\"2\",c=\"3\",d=\"4\"} 1\nn{a=\"1\"} 2\n", Text},
		{"{\"m\",a=\"1\",b=\"2\",c=\"3\",d=\"4\"} 1\nn{a=\"1\"} 2\n", Text},
		{"m{a=\"1\",b=\"2\",c=\"3\",d=\"4\"} 1\nn{a=\"1\"} 2\n# EOF\n", OpenMetrics},
	} {
		var p Parser
		p.LimitLabels(2)
		p.Reset([]byte(c.body), c.format)
		var b labels.ScratchBuilder
		var got []string
		for p.Next() {
			got = append(got, fmt.Sprint(p.LabelCount(), " ", p.Labels(&b).String()))
		}
		want := []string{`5 {__name__="m", a="1", b="2"}`, `2 {__name__="n", a="1"}`}
		if p.Err() != nil || !slices.Equal(got, want) {
			t.Errorf("%q: %q, err %v; want %q", c.body, got, p.Err(), want)
		}
	}
}

// TestNoAllocationPerSample: once a target's families are known, walking a
// body (values, timestamps, series text, families, start times) allocates
// nothing; labels are built by the caller only for series it does not know.
func TestNoAllocationPerSample(t *testing.T) {
	for name, c := range corpus(t) {
		var p Parser
		walk := func() {
			p.Reset(c.body, c.format)
			for p.Next() {
				_ = p.Series()
				_ = p.Value()
				_, _ = p.Timestamp()
				_ = p.Desc()
			}
			if p.Err() != nil || len(p.Starts()) == 0 && c.format == OpenMetrics {
				t.Fatalf("%s: %v, %d start times", name, p.Err(), len(p.Starts()))
			}
		}
		walk()
		if n := testing.AllocsPerRun(5, walk); n != 0 {
			t.Errorf("%s: %.0f allocations per body", name, n)
		}
	}
}

// TestPlainLabelsEndIsTheScans: where the fast search for the labels' end
// answers, it finds the '}' that the quote-by-quote scan finds, in random
// texts of quotes, escapes, braces and line ends; and it answers for most
// texts that have none of the escapes and line ends it leaves to the scan.
func TestPlainLabelsEndIsTheScans(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, uint64(time.Now().UnixNano())))
	const alphabet = `ab="\},{` + "\n"
	answered, plain := 0, 0
	for range 200_000 {
		b := make([]byte, 1+rng.IntN(24))
		b[0] = '{'
		for i := 1; i < len(b); i++ {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		p := Parser{b: b}
		want := p.labelsEnd(0)
		got := plainLabelsEnd(b[1:])
		if got >= 0 {
			answered++
			if got+1 != want {
				t.Fatalf("%q: the fast search ends the labels at %d, the scan at %d", b, got+1, want)
			}
		}
		if want >= 0 && !bytes.ContainsAny(b[:want], "\\\n") {
			plain++
		}
	}
	if answered < plain/2 {
		t.Fatalf("the fast search answered for %d texts of %d it could read", answered, plain)
	}
}

// FuzzKnownSeries: a caller that knows a series' text (Known) gets the
// same samples and the same error as one that does not, its labels aside,
// which it has from before. The texts known are those of another body's
// samples, as a scraper's cache holds the last scrape's: lines that begin
// like a known series but differ after it, in quotes, escapes and braces,
// must still be read in full.
func FuzzKnownSeries(f *testing.F) {
	f.Add([]byte("a{x=\"}\"} 1\na{x=\"\\\\\"} 2\n"), []byte("a{x=\"}\"} 1\na{x=\"\\\\\"} 2 # {\na{x=\"\\\"}\"} 3\n"))
	f.Add([]byte("a{x=\"1\"} 1\na {x=\"1\"} 2\n"), []byte("a{x=\"1\"} 3\na{x=\"1\"}} 4\na{x=\"1\",} 5\na{x=\"1\" 6\n"))
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), []byte(s))
	}
	for _, c := range corpus(f) {
		if c.format == Text {
			b := c.body[:min(len(c.body), 2000)]
			f.Add(b, b)
		}
	}
	f.Fuzz(func(t *testing.T, before, body []byte) {
		known := map[string]bool{}
		var p Parser
		p.Reset(before, Text)
		for p.Next() {
			known[string(p.Series())] = true
		}

		type sample struct {
			series string
			v      uint64 // bits: every NaN is the same
			t      int64
			hasT   bool
		}
		walk := func(p *Parser) (out []sample, err error) {
			p.Reset(body, Text)
			for p.Next() {
				s := sample{series: string(p.Series()), v: math.Float64bits(p.Value())}
				s.t, s.hasT = p.Timestamp()
				out = append(out, s)
			}
			return out, p.Err()
		}
		var plain, cached Parser
		want, wantErr := walk(&plain)
		asked := 0
		cached.Known = func(series []byte) bool {
			asked++
			return known[string(series)]
		}
		got, gotErr := walk(&cached)
		if fmt.Sprint(wantErr) != fmt.Sprint(gotErr) || len(got) != len(want) {
			t.Fatalf("with known series: %d samples, error %v; without: %d, %v", len(got), gotErr, len(want), wantErr)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("sample %d: %+v with known series, %+v without", i, got[i], want[i])
			}
		}
		// It is asked about every series with a name and labels.
		withLabels := 0
		for _, s := range want {
			if strings.Contains(s.series, "{") && !strings.HasPrefix(s.series, "{") {
				withLabels++
			}
		}
		if asked < withLabels {
			t.Fatalf("Known asked %d times, %d series have a name and labels", asked, withLabels)
		}
	})
}
