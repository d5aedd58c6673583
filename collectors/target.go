package collectors

import "github.com/prometheus/prometheus/model/labels"

// WithTarget returns a sample's labels lset with its target's labels
// added, as Prometheus adds them: with honor the sample's own values win;
// without, a sample's own job becomes exported_job (prefixed again until
// the name is free). b is scratch space, reset here. Two label sets may
// end up the same ({job="a"} and {exported_job="a"}; with honor, {} and
// {job="a"} of target job a): a scraper's duplicate check comes after.
func WithTarget(b *labels.Builder, lset, target labels.Labels, honor bool) labels.Labels {
	b.Reset(lset)
	target.Range(func(l labels.Label) {
		old := lset.Get(l.Name)
		if old != "" {
			if honor {
				return
			}
			exported := "exported_" + l.Name
			for lset.Get(exported) != "" {
				exported = "exported_" + exported
			}
			b.Set(exported, old)
		}
		b.Set(l.Name, l.Value)
	})
	return b.Labels()
}
