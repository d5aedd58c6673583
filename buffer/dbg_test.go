package buffer

import (
	"fmt"
	"github.com/prometheus/prometheus/model/labels"
	"math/rand/v2"
	"testing"
)

func TestDbgLevels2(t *testing.T) {
	dir := t.TempDir()
	b, _ := Open(Options{Dir: dir, MaxSize: 4 << 20, Thin: true})
	rng := rand.New(rand.NewPCG(1, 2))
	lsets := make([]labels.Labels, 1000)
	for i := range lsets {
		lsets[i] = labels.FromStrings("__name__", "node_metric_with_name", "i", fmt.Sprint(i))
	}
	ts := int64(1_700_000_000_000)
	for minute := 0; minute < 12*60; minute++ {
		for range 4 {
			ts += 15000
			for i, l := range lsets {
				b.Append(l, ts, float64(i)+float64(rng.IntN(100)))
			}
		}
		b.Commit()
		if minute%120 == 119 {
			var count [8]int
			for _, bi := range b.blocks {
				count[bi.level]++
			}
			st := b.Stats()
			t.Log(minute/60, "h", len(b.blocks), count, st.Dropped, (ts-st.OldestT)/60000, "min held")
		}
	}
	prev := -1
	for i, bi := range b.blocks {
		if int(bi.level) != prev {
			t.Log(i, bi.seq, bi.level, bi.refs, bi.samples)
			prev = int(bi.level)
		}
		if i > 60 {
			break
		}
	}
	b.Close()
}
