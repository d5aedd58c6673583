package main

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferry-agent/ferry/buffer"
	"github.com/ferry-agent/ferry/collectors"
)

// exportOpenMetrics writes the buffer's backlog as OpenMetrics text.
//
// OpenMetrics wants each metric family's samples together, but the buffer
// stores them by time. So the export first counts the samples of each
// family, then reads the buffer once per group of families whose samples
// fit in maxSamples, and writes each group sorted by family and series,
// each series' samples in time order. Memory stays bounded whatever the
// size of the backlog; a small buffer is read twice.
func exportOpenMetrics(b *buffer.Buffer, w io.Writer, maxSamples int) (int, error) {
	perFamily := map[string]int{}
	err := b.ForEach(func(blk buffer.Block) error {
		for _, s := range blk.Series {
			perFamily[s.Labels.Get(labels.MetricName)] += len(s.T)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	families := slices.Sorted(func(yield func(string) bool) {
		for f := range perFamily {
			if !yield(f) {
				return
			}
		}
	})

	bw := bufio.NewWriter(w)
	written := 0
	for len(families) > 0 {
		group := map[string]bool{}
		n := 0
		for len(families) > 0 && (len(group) == 0 || n+perFamily[families[0]] <= maxSamples) {
			group[families[0]] = true
			n += perFamily[families[0]]
			families = families[1:]
		}
		count, err := exportGroup(b, bw, group)
		if err != nil {
			return written, err
		}
		written += count
	}
	bw.WriteString("# EOF\n")
	return written, bw.Flush()
}

type exportSeries struct {
	lset labels.Labels
	t    []int64
	v    []float64
}

func exportGroup(b *buffer.Buffer, w *bufio.Writer, group map[string]bool) (int, error) {
	byRef := map[uint32]*exportSeries{}
	err := b.ForEach(func(blk buffer.Block) error {
		for _, s := range blk.Series {
			if !group[s.Labels.Get(labels.MetricName)] {
				continue
			}
			es := byRef[s.Ref]
			if es == nil {
				es = &exportSeries{lset: s.Labels}
				byRef[s.Ref] = es
			}
			es.t = append(es.t, s.T...)
			es.v = append(es.v, s.V...)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	series := make([]*exportSeries, 0, len(byRef))
	for _, es := range byRef {
		series = append(series, es)
	}
	// Sorting by labels puts each family's series together: __name__
	// sorts first among label names.
	slices.SortFunc(series, func(x, y *exportSeries) int { return labels.Compare(x.lset, y.lset) })

	n := 0
	var line []byte
	lastFamily := ""
	for _, es := range series {
		if f := es.lset.Get(labels.MetricName); f != lastFamily {
			fmt.Fprintf(w, "# TYPE %s unknown\n", f)
			lastFamily = f
		}
		for i := range es.t {
			line = collectors.AppendSeries(line[:0], es.lset)
			line = append(line, ' ')
			line = append(line, collectors.FormatValue(es.v[i])...)
			line = append(line, ' ')
			line = strconv.AppendFloat(line, float64(es.t[i])/1000, 'f', -1, 64) // seconds
			line = append(line, '\n')
			if _, err := w.Write(line); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}
