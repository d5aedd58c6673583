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
)

// The fleet's side of ferry: the alert rules and the Grafana dashboard in
// packaging/, checked with the real tools of the central store.

const (
	alertRules     = "../../packaging/prometheus/ferry-alerts.yml"
	alertRuleTests = "../../packaging/prometheus/ferry-alerts_test.yml"
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
	alerts := strings.Split(string(rules), "- alert: ")[1:]
	if len(alerts) < 5 {
		t.Fatalf("%s has %d alerts, want at least the 5 a fleet needs", alertRules, len(alerts))
	}
	for _, rule := range alerts {
		name, _, _ := strings.Cut(rule, "\n")
		if !strings.Contains(rule, "runbook: ") {
			t.Errorf("alert %s has no runbook annotation", name)
		}
		if !strings.Contains(string(tests), "alertname: "+name+"\n") {
			t.Errorf("alert %s has no unit test in %s", name, alertRuleTests)
		}
	}
	out, err = exec.Command(promtool, "test", "rules", alertRuleTests).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

const fleetDashboard = "../../packaging/grafana/ferry-fleet.json"

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
	t.Logf("%d queries of the dashboard, its variable and the alert rules return data", len(queries)-len(pending))
}
