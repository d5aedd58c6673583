package collectors

import (
	"bufio"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// WriteText writes c in the Prometheus text exposition format (0.0.4):
// HELP and TYPE of each family that has them, then its samples. Timestamps
// are written only where a sample carries its own.
func WriteText(w io.Writer, c *Collection) error {
	bw := bufio.NewWriter(w)
	families := make(map[string]*Desc, len(c.Families))
	for _, d := range c.Families {
		families[d.Name] = d
	}
	var last string
	for _, s := range c.Samples {
		name := s.Labels.Get(labels.MetricName)
		if d := families[name]; d != nil && name != last {
			bw.WriteString("# HELP " + name + " " + escapeHelp(d.Help) + "\n")
			bw.WriteString("# TYPE " + name + " " + string(d.Type) + "\n")
			delete(families, name) // each family's header once
		}
		last = name
		bw.Write(AppendSeries(nil, s.Labels))
		bw.WriteByte(' ')
		bw.WriteString(FormatValue(s.V))
		if s.T != 0 {
			bw.WriteByte(' ')
			bw.WriteString(strconv.FormatInt(s.T, 10))
		}
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// AppendSeries appends a series as the text formats write it:
// name{label="value",...}, values escaped.
func AppendSeries(b []byte, lset labels.Labels) []byte {
	b = append(b, lset.Get(labels.MetricName)...)
	first := true
	lset.Range(func(l labels.Label) {
		if l.Name == labels.MetricName {
			return
		}
		if first {
			b = append(b, '{')
			first = false
		} else {
			b = append(b, ',')
		}
		b = append(b, l.Name...)
		b = append(b, `="`...)
		b = append(b, escapeLabelValue(l.Value)...)
		b = append(b, '"')
	})
	if !first {
		b = append(b, '}')
	}
	return b
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string       { return helpEscaper.Replace(s) }
func escapeLabelValue(s string) string { return labelEscaper.Replace(s) }

// FormatValue writes a sample value as both text formats do.
func FormatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
