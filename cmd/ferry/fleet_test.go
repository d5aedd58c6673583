package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// The fleet's side of ferry: the alert rules and the Grafana dashboard in
// packaging/, checked with the real tools of the central store.

const (
	alertRules     = "../../packaging/prometheus/ferry-alerts.yml"
	alertRuleTests = "../../packaging/prometheus/ferry-alerts_test.yml"
	runbookDoc     = "../../docs/RUNBOOK.md"
	runbookURL     = "https://github.com/ferry-agent/ferry/blob/main/docs/RUNBOOK.md"
)

// TestAlertRules: the alert rules load in Prometheus (`promtool check
// rules`) and pass their unit tests (`promtool test rules`).
func TestAlertRules(t *testing.T) {
	if testing.Short() {
		t.Skip("runs promtool; not with -short")
	}
	promtool := needTool(t, "promtool")
	out, err := exec.Command(promtool, "check", "rules", alertRules).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	// Every alert has a runbook line and unit tests.
	rules, err := os.ReadFile(alertRules)
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(alertRuleTests)
	if err != nil {
		t.Fatal(err)
	}
	// node_exporter's mixin style: a for, a severity, a one-line summary,
	// a description naming the device by instance (its identity, not its
	// hostname), and a runbook_url to a section of docs/RUNBOOK.md.
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(rules, &file); err != nil {
		t.Fatal(err)
	}
	runbook, err := os.ReadFile(runbookDoc)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
			a := r.Annotations
			if r.For == "" || r.Labels["severity"] == "" {
				t.Errorf("alert %s: for %q, severity %q; want both", r.Alert, r.For, r.Labels["severity"])
			}
			if a["summary"] == "" || strings.Contains(a["summary"], "\n") || len(a) != 3 {
				t.Errorf("alert %s: annotations %v; want summary (one line), description, runbook_url", r.Alert, a)
			}
			if !strings.Contains(a["description"], "{{ $labels.instance }}") {
				t.Errorf("alert %s: the description does not name the device by instance: %q", r.Alert, a["description"])
			}
			anchor := strings.ToLower(r.Alert)
			if a["runbook_url"] != runbookURL+"#"+anchor || !strings.Contains(string(runbook), "\n## "+r.Alert+"\n") {
				t.Errorf("alert %s: runbook_url %q; want %s#%s, a section of %s", r.Alert, a["runbook_url"], runbookURL, anchor, runbookDoc)
			}
			if !strings.Contains(string(tests), "alertname: "+r.Alert+"\n") {
				t.Errorf("alert %s has no unit test in %s", r.Alert, alertRuleTests)
			}
		}
	}
	for _, want := range []string{"FerryDeviceSilent", "FerryBacklogOld", "FerryBufferNearlyFull", "FerrySamplesDropped",
		"FerryReceiverRejecting", "FerryBufferFileMovedAside", "FerryClockDroppedSamples"} {
		if !slices.Contains(names, want) {
			t.Errorf("no alert %s in %s", want, alertRules)
		}
	}
	out, err = exec.Command(promtool, "test", "rules", alertRuleTests).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

const fleetDashboard = "../../packaging/grafana/ferry-fleet.json"

// fleetIdentity is the instance the dashboard test's ferry runs with.
const fleetIdentity = "SN-FLEET-0042"

// dashboard is the part of Grafana's dashboard JSON model that the test reads.
type dashboard struct {
	Title         string  `json:"title"`
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ X, Y, W, H int } `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a row
}

// grafanaVariables stands in for what Grafana puts in place of the
// dashboard's variables: every device, and a rate window of several of
// the test's 1 s intervals.
var grafanaVariables = strings.NewReplacer(
	"$__rate_interval", "30s",
	"$__interval", "5s",
	"${instance}", ".+",
	"$instance", ".+",
)

// TestFleetDashboard: the fleet dashboard is a Grafana dashboard whose
// every panel's query returns data from a Prometheus that the real ferry
// writes its self-metrics to, and whose device variable lists that ferry;
// every ferry_* series the alert rules read is there too.
func TestFleetDashboard(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ferry and prometheus; not with -short")
	}
	promBin := needTool(t, "prometheus")

	data, err := os.ReadFile(fleetDashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", fleetDashboard, err)
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion < 36 {
		t.Errorf("title %q, uid %q, schemaVersion %d: Grafana needs a title and uid, and 36 or later for datasource references by uid", d.Title, d.UID, d.SchemaVersion)
	}
	var panels []panel
	for _, p := range d.Panels {
		panels = append(panels, p)
		panels = append(panels, p.Panels...)
	}
	ids := map[int]bool{}
	var queries []string
	for _, p := range panels {
		if p.Type == "row" {
			continue
		}
		if ids[p.ID] {
			t.Errorf("panel %q: id %d is taken", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v does not fit Grafana's 24 columns", p.Title, p.GridPos)
		}
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %q, want the ${datasource} variable, so that it imports into any Grafana", p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			queries = append(queries, p.Title+" "+q.RefID+"\x00"+q.Expr)
		}
	}
	if len(queries) < 8 {
		t.Fatalf("%d queries in the dashboard", len(queries))
	}

	promAddr, ferryAddr := freeAddr(t), freeAddr(t)
	startPrometheus(t, promBin, promAddr, t.TempDir())
	start(t, buildFerry(t),
		"--remote-write.url=http://"+promAddr+"/api/v1/write",
		"--storage.path="+filepath.Join(t.TempDir(), "data"),
		// Short, so that rate() over the dashboard's windows has samples
		// within seconds; the rest are ferry's defaults.
		"--scrape.interval=1s",
		"--web.listen-address="+ferryAddr,
		// The device's identity, as one image on many devices sets it:
		// the dashboard lists devices by it, not by the hostname.
		"--instance="+fleetIdentity,
	)

	// A device variable lists the devices from a label of ferry's metrics.
	labelValues := regexp.MustCompile(`^label_values\((.+), *(\w+)\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)
		m := labelValues.FindStringSubmatch(fmt.Sprint(q["query"]))
		if m == nil {
			t.Errorf("variable %s: query %v is not label_values(SERIES, LABEL)", v.Name, v.Query)
			continue
		}
		queries = append(queries, "variable "+v.Name+"\x00count by ("+m[2]+") ("+m[1]+")")
	}

	// The series the alert rules read.
	rules, err := os.ReadFile(alertRules)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range slices.Compact(slices.Sorted(slices.Values(regexp.MustCompile(`ferry_\w+`).FindAllString(string(rules), -1)))) {
		queries = append(queries, "alert rules' "+name+"\x00"+name)
	}

	// Rates need a few samples in their window: wait until each query
	// returns data, and name those that never do.
	pending := queries
	deadline := time.Now().Add(90 * time.Second)
	for len(pending) > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Second)
		var still []string
		for _, q := range pending {
			_, expr, _ := strings.Cut(q, "\x00")
			if len(query(t, promAddr, grafanaVariables.Replace(expr))) == 0 {
				still = append(still, q)
			}
		}
		pending = still
	}
	for _, q := range pending {
		what, expr, _ := strings.Cut(q, "\x00")
		t.Errorf("%s returns no data: %s", what, grafanaVariables.Replace(expr))
	}
	// Every per-device query groups by instance, and the device variable
	// lists the configured identity, for ferry's series and the host's.
	for _, q := range queries {
		what, expr, _ := strings.Cut(q, "\x00")
		if m := regexp.MustCompile(`\b(?:by|without) \(([^)]*)\)`).FindAllStringSubmatch(expr, -1); m != nil {
			for _, g := range m {
				if !strings.Contains(g[0], "by (") || !strings.HasPrefix(g[1], "instance") {
					t.Errorf("%s: %q does not group by the device's identity, instance", what, g[0])
				}
			}
		}
	}
	for _, q := range []string{`count by (instance) (ferry_build_info{job="ferry"})`, `count by (instance) (node_load1{job="node"})`} {
		var got []string
		for _, s := range query(t, promAddr, q) {
			got = append(got, s.Metric["instance"])
		}
		if !slices.Equal(got, []string{fleetIdentity}) {
			t.Errorf("%s: instances %q, want the configured identity %q", q, got, fleetIdentity)
		}
	}
	t.Logf("%d queries of the dashboard, its variable and the alert rules return data", len(queries)-len(pending))
}
