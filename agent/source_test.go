package agent

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
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
