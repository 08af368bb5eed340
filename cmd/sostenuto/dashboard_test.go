package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// dashboardPath is the shipped Grafana dashboard.
var dashboardPath = filepath.Join(deployDir, "grafana", "sostenuto.json")

// grafanaPanel is the part of a Grafana panel the tests read.
type grafanaPanel struct {
	Title   string         `json:"title"`
	Type    string         `json:"type"`
	Panels  []grafanaPanel `json:"panels"` // a collapsed row's
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// dashboardExprs returns the dashboard's row titles and every PromQL
// expression of its panels and annotations, Grafana's $__rate_interval
// replaced by 1m.
func dashboardExprs(t *testing.T) (rows, exprs []string) {
	t.Helper()
	var d struct {
		Panels      []grafanaPanel `json:"panels"`
		Annotations struct {
			List []struct {
				Expr string `json:"expr"`
			} `json:"list"`
		} `json:"annotations"`
	}
	if err := json.Unmarshal([]byte(readFile(t, dashboardPath)), &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	var walk func(ps []grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			if p.Type == "row" {
				rows = append(rows, p.Title)
			}
			for _, tg := range p.Targets {
				exprs = append(exprs, strings.ReplaceAll(tg.Expr, "$__rate_interval", "1m"))
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, a := range d.Annotations.List {
		exprs = append(exprs, a.Expr)
	}
	return rows, exprs
}

// Every expression of the dashboard parses (promtool checks them as
// recording rules), and the dashboard has the rows on-call people need.
func TestGrafanaDashboardParses(t *testing.T) {
	bin := promtool(t)
	rows, exprs := dashboardExprs(t)
	for _, want := range []string{"Overview", "Search and RAG latency", "Replication", "Ingestion", "Edge"} {
		if !slices.Contains(rows, want) {
			t.Errorf("no %q row in the dashboard (rows %v)", want, rows)
		}
	}
	if len(exprs) < 40 {
		t.Fatalf("only %d expressions in the dashboard", len(exprs))
	}
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		fmt.Fprintf(&b, "      - record: dashboard:expr:%d\n        expr: %s\n", i, yamlQuote(e))
	}
	file := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "check", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("a dashboard expression does not parse: %v\n%s", err, out)
	}
}

// yamlQuote quotes s as a YAML (JSON) string.
func yamlQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

var (
	promStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMatchers = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true,
		"without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true}
)

// metricNames returns the metric (and recording rule) names expr selects:
// identifiers outside strings, label matchers, ranges and grouping lists
// that are not functions or keywords.
func metricNames(expr string) []string {
	s := promStrings.ReplaceAllString(expr, `""`)
	s = promMatchers.ReplaceAllString(s, " ")
	s = promGrouping.ReplaceAllString(s, " ")
	var names []string
	for _, loc := range promIdent.FindAllStringIndex(s, -1) {
		name := s[loc[0]:loc[1]]
		if promKeywords[strings.ToLower(name)] || strings.HasPrefix(strings.TrimSpace(s[loc[1]:]), "(") {
			continue
		}
		if loc[0] > 0 && (s[loc[0]-1] >= '0' && s[loc[0]-1] <= '9' || s[loc[0]-1] == '.') {
			continue // an exponent or unit of a number
		}
		names = append(names, name)
	}
	return names
}

func TestMetricNames(t *testing.T) {
	got := metricNames(`histogram_quantile(0.95, sum by (le, use) (rate(vector_search_duration_seconds_bucket{job="sostenuto",route=~"a|b"}[1m]))) / on (job) group_left sostenuto:x:ratio_rate5m > 1e3 and up offset 5m`)
	want := []string{"vector_search_duration_seconds_bucket", "sostenuto:x:ratio_rate5m", "up"}
	if !slices.Equal(got, want) {
		t.Errorf("metricNames = %v, want %v", got, want)
	}
}

// exposedNames are the sample names (histograms' _bucket, _sum, _count
// included) on the /metrics of every base.
func exposedNames(t *testing.T, bases ...string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, b := range bases {
		for series := range metrics(t, b) {
			name, _, _ := strings.Cut(series, "{")
			names[name] = true
		}
	}
	return names
}

// checkDashboardMetrics fails for each metric the dashboard names that
// neither the given /metrics expose nor rules.yml records, and for each
// expression the running Prometheus refuses.
func checkDashboardMetrics(t *testing.T, prom *testPrometheus, bases ...string) {
	t.Helper()
	exposed := exposedNames(t, bases...)
	rules := readFile(t, filepath.Join(deployDir, "prometheus", "rules.yml"))
	_, exprs := dashboardExprs(t)
	checked := map[string]bool{}
	for _, e := range exprs {
		for _, name := range metricNames(e) {
			if checked[name] {
				continue
			}
			checked[name] = true
			switch {
			case name == "up" || name == "ALERTS": // Prometheus's own
			case strings.Contains(name, ":"):
				if !strings.Contains(rules, "record: "+name+"\n") {
					t.Errorf("the dashboard uses %s, which rules.yml does not record", name)
				}
			case !exposed[name]:
				t.Errorf("the dashboard uses %s, which no node or edge exposes", name)
			}
		}
		prom.query(t, e) // fails the test on a query Prometheus refuses
	}
	t.Logf("the dashboard's %d expressions name %d metrics, all exposed or recorded", len(exprs), len(checked))
}

// driveTraffic makes, through the edge, the requests whose metrics the
// dashboard shows: a document ingested, searches, a chat answer.
func driveTraffic(t *testing.T, edge, token string) {
	t.Helper()
	call := func(method, path string, body any, out any) int {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, edge+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil {
			json.NewDecoder(resp.Body).Decode(out)
		}
		return resp.StatusCode
	}
	var created struct {
		Document struct {
			ID string `json:"id"`
		} `json:"document"`
	}
	if s := call("POST", "/api/knowledge", map[string]any{"title": "Pedalling", "source_type": "text", "is_public": true,
		"content": "Change the sustain pedal just after each new chord, so the harmonies never blur."}, &created); s != 201 {
		t.Fatalf("create a document: %d", s)
	}
	if s := call("POST", "/api/knowledge/"+url.PathEscape(created.Document.ID)+"/process", nil, nil); s != 202 {
		t.Fatalf("process the document: %d", s)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st struct {
			Status string `json:"status"`
		}
		call("GET", "/api/knowledge/"+url.PathEscape(created.Document.ID)+"/status", nil, &st)
		if st.Status == "completed" {
			break
		}
		if st.Status == "failed" || time.Now().After(deadline) {
			t.Fatalf("the document ended %q", st.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i := range 6 {
		if s := call("POST", "/api/search", map[string]any{"query": fmt.Sprintf("sustain pedal %d", i%2), "mode": "hybrid"}, nil); s != 200 {
			t.Fatalf("search: %d", s)
		}
	}
	for range 3 {
		if s := call("POST", "/api/chat/query", map[string]any{"query": "When do I change the pedal?"}, nil); s != 200 {
			t.Fatalf("chat: %d", s)
		}
	}
}

// recallNaN reports whether base exports its recall as not a number.
func recallNaN(t *testing.T, base string) bool {
	v, ok := metrics(t, base)["sostenuto_index_recall_at_10"]
	return ok && math.IsNaN(v)
}
