package collectors

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
)

func render(t *testing.T, c *Collection) string {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteText(&buf, c); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestWriteText(t *testing.T) {
	temp := NewDesc("node_hwmon_temp_celsius", "Hardware monitor for temperature (input).", Gauge, "chip", "sensor")
	up := NewDesc("up", "1 if the target was scraped.", Gauge)
	odd := NewDesc("odd_help", "Help with a \\ backslash,\na newline and \"quotes\".", Counter)

	for _, tc := range []struct {
		name  string
		build func(c *Collection)
		want  string
	}{
		{
			name:  "empty",
			build: func(c *Collection) {},
			want:  "",
		},
		{
			name: "help and type once per family",
			build: func(c *Collection) {
				c.Add(temp, 48.5, "soc", "temp1")
				c.Add(temp, 41, "pmic", "temp1")
				c.Add(up, 1)
			},
			want: `# HELP node_hwmon_temp_celsius Hardware monitor for temperature (input).
# TYPE node_hwmon_temp_celsius gauge
node_hwmon_temp_celsius{chip="soc",sensor="temp1"} 48.5
node_hwmon_temp_celsius{chip="pmic",sensor="temp1"} 41
# HELP up 1 if the target was scraped.
# TYPE up gauge
up 1
`,
		},
		{
			name: "label values escaped",
			build: func(c *Collection) {
				c.Add(temp, 1, `C:\dir\`, "say \"hi\"\nbye")
			},
			want: `# HELP node_hwmon_temp_celsius Hardware monitor for temperature (input).
# TYPE node_hwmon_temp_celsius gauge
node_hwmon_temp_celsius{chip="C:\\dir\\",sensor="say \"hi\"\nbye"} 1
`,
		},
		{
			name:  "help escaped, quotes kept",
			build: func(c *Collection) { c.Add(odd, 2) },
			want: `# HELP odd_help Help with a \\ backslash,\na newline and "quotes".
# TYPE odd_help counter
odd_help 2
`,
		},
		{
			name: "special floats",
			build: func(c *Collection) {
				c.Add(up, math.Inf(1))
				c.Add(up, math.Inf(-1))
				c.Add(up, math.NaN())
				c.Add(up, -0.25)
				c.Add(up, 1e-9)
				c.Add(up, 123456789012)
			},
			want: `# HELP up 1 if the target was scraped.
# TYPE up gauge
up +Inf
up -Inf
up NaN
up -0.25
up 1e-09
up 1.23456789012e+11
`,
		},
		{
			name: "timestamps only where set",
			build: func(c *Collection) {
				c.AddSample(nil, Sample{Labels: labels.FromStrings("__name__", "scraped", "a", "b"), T: 1718000000123, V: 3})
				c.AddSample(nil, Sample{Labels: labels.FromStrings("__name__", "scraped", "a", "c"), V: 4})
				c.AddSample(nil, Sample{Labels: labels.FromStrings("__name__", "old"), T: -1000, V: 5})
			},
			want: `scraped{a="b"} 3 1718000000123
scraped{a="c"} 4
old 5 -1000
`,
		},
		{
			name: "header from a family added after its first sample",
			build: func(c *Collection) {
				c.AddSample(nil, Sample{Labels: labels.FromStrings("__name__", "up", "job", "x"), V: 0})
				c.Add(up, 1)
			},
			// up's family is known from the second sample; its header is
			// written before the first sample of the name.
			want: `# HELP up 1 if the target was scraped.
# TYPE up gauge
up{job="x"} 0
up 1
`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Collection
			tc.build(&c)
			if got := render(t, &c); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// TestWriteTextParses reads WriteText's output back with Prometheus' own
// parser: whatever the label values, the text must round-trip.
func TestWriteTextParses(t *testing.T) {
	d := NewDesc("ferry_test", "A help text with \\ and\nnewline.", Counter, "v")
	values := []string{"plain", `back\slash`, `"quoted"`, "new\nline", `\n literal`, "ünïcödé", `trailing\`, "{braces}=,"}
	var c Collection
	for i, v := range values {
		c.Add(d, float64(i), v)
	}
	c.AddSample(nil, Sample{Labels: labels.FromStrings("__name__", "with_ts"), T: 42, V: math.Inf(-1)})
	out := render(t, &c)

	p, err := textparse.New([]byte(out), "text/plain; version=0.0.4", labels.NewSymbolTable(), textparse.ParserOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var lset labels.Labels
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("parsing WriteText's output: %v\n%s", err, out)
		}
		switch e {
		case textparse.EntryHelp:
			_, help := p.Help()
			if string(help) != d.Help {
				t.Errorf("help read back as %q, want %q", help, d.Help)
			}
		case textparse.EntrySeries:
			_, ts, v := p.Series()
			p.Labels(&lset)
			if lset.Get("__name__") == "with_ts" {
				if ts == nil || *ts != 42 || !math.IsInf(v, -1) {
					t.Errorf("with_ts read back as ts=%v v=%v, want 42 and -Inf", ts, v)
				}
				continue
			}
			if ts != nil {
				t.Errorf("%s has a timestamp %d, want none", lset, *ts)
			}
			got = append(got, lset.Get("v"))
		}
	}
	if strings.Join(got, "|") != strings.Join(values, "|") {
		t.Errorf("label values read back as %q, want %q", got, values)
	}
}

func TestCollectionAdd(t *testing.T) {
	d := NewDesc("node_network_receive_bytes_total", "Network device statistic receive_bytes.", Counter, "device", "duplex")
	var c Collection
	c.Add(d, 10, "eth0", "full")
	c.Add(d, 20, "wlan0") // fewer values than names: the missing label is left out
	c.AddSample(d, Sample{Labels: labels.FromStrings("__name__", d.Name, "device", "lo"), V: 30})

	if len(c.Families) != 1 || c.Families[0] != d {
		t.Errorf("Families = %v, want just %s once", c.Families, d.Name)
	}
	want := []labels.Labels{
		labels.FromStrings("__name__", d.Name, "device", "eth0", "duplex", "full"),
		labels.FromStrings("__name__", d.Name, "device", "wlan0"),
		labels.FromStrings("__name__", d.Name, "device", "lo"),
	}
	if len(c.Samples) != len(want) {
		t.Fatalf("%d samples, want %d", len(c.Samples), len(want))
	}
	for i, w := range want {
		if !labels.Equal(c.Samples[i].Labels, w) {
			t.Errorf("sample %d labels %s, want %s", i, c.Samples[i].Labels, w)
		}
		if c.Samples[i].T != 0 {
			t.Errorf("sample %d has T=%d, want 0 (the agent fills it in)", i, c.Samples[i].T)
		}
	}
	// Add must not let a later sample's labels change an earlier one's.
	if got := c.Samples[0].Labels.Get("device"); got != "eth0" {
		t.Errorf("first sample's device changed to %q", got)
	}
}
