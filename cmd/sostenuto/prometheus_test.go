package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
)

// A real Prometheus (Debian's) with the shipped configuration and rules
// scrapes a three-node cluster and an edge. Only the targets, the
// intervals (1 s) and SostenutoNodeDown's `for` (5 s) differ from
// deploy/prometheus.
func TestPrometheusInTheLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus not found: install Debian's prometheus package (`scripts/deps.sh test-tools`, run by `make test`)")
	}
	start := time.Now()
	db := pgtest.NewEmptyDB(t, "")
	c := newTestCluster(t, db.URL)
	// Recall sampled and anti-entropy run every second: their metrics exist.
	often := []string{"SOSTENUTO_RECALL_EVERY=1s", "SOSTENUTO_ANTI_ENTROPY_EVERY=1s"}
	n1 := c.add("n1", often...)
	c.ready(n1)
	c.login(n1)
	n2, n3 := c.add("n2", often...), c.add("n3", often...)
	c.waitFor("three voters", 60*time.Second, func() bool {
		s, err := c.status(n1)
		return err == nil && len(s.Nodes) == 3
	})
	edge := startEdge(t, n1.base, n2.base, n3.base)
	prom := startPrometheus(t, promBin, []*cnode{n1, n2, n3}, edge)
	t.Logf("cluster, edge and Prometheus up in %v", time.Since(start).Round(time.Millisecond))

	prom.waitTargetsUp(t, 4)
	for _, q := range []struct{ query, want string }{
		{`sum(sostenuto_raft_leader{job="sostenuto"})`, "1"},
		{`count(sostenuto_raft_dir_free_bytes{job="sostenuto"} > 0)`, "3"},
		{`count(sostenuto_replication_slot_retained_wal_bytes{job="sostenuto"} >= 0)`, "3"},
		{`count(edge_node_healthy{job="sostenuto-edge"} == 1)`, "3"},
		{`count(sostenuto_index_ready{job="sostenuto"} == 1)`, "3"},
		{`count(sostenuto_raft_leader_changes_total{job="sostenuto"} >= 1)`, "3"},
		{`count(sostenuto:api_errors:ratio_rate5m)`, "1"}, // a recording rule over live data
	} {
		prom.waitValue(t, q.query, q.want, 30*time.Second)
	}
	prom.rulesHealthy(t)
	if !recallNaN(t, n1.base) {
		t.Error("an index that sampled no recall yet exports a number (an alert on low recall would fire)")
	}
	driveTraffic(t, edge, c.token)
	checkDashboardMetrics(t, prom, n1.base, n2.base, n3.base, edge)
	if a := prom.alerts(t, "SostenutoNodeDown"); len(a) > 0 {
		t.Fatalf("SostenutoNodeDown before any node died: %v", a)
	}

	victim := n3
	if s, _ := c.status(n3); s.Role == "leader" {
		victim = n2
	}
	instance := strings.TrimPrefix(victim.base, "http://")
	c.kill(victim)
	killed := time.Now()
	c.waitFor("SostenutoNodeDown firing for "+victim.id, 60*time.Second, func() bool {
		for _, a := range prom.alerts(t, "SostenutoNodeDown") {
			if a.State == "firing" && a.Labels["instance"] == instance {
				return true
			}
		}
		return false
	})
	t.Logf("SostenutoNodeDown fired for %s %v after the kill (scrape 1 s, for 5 s); whole test %v",
		victim.id, time.Since(killed).Round(100*time.Millisecond), time.Since(start).Round(time.Second))
	if a := prom.alerts(t, "SostenutoRaftNoLeader"); len(a) > 0 {
		t.Errorf("SostenutoRaftNoLeader with two of three nodes up: %v", a)
	}
}

// startEdge runs sostenuto-edge in front of the nodes and returns its base URL.
func startEdge(t *testing.T, nodes ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sostenuto-edge")
	if out, err := exec.Command("go", "build", "-o", bin, "../sostenuto-edge").CombinedOutput(); err != nil {
		t.Fatalf("build the edge: %v\n%s", err, out)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin)
	cmd.Env = append(childEnv(), "SOSTENUTO_EDGE_LISTEN="+strings.TrimPrefix(base, "http://"), "SOSTENUTO_EDGE_NODES="+strings.Join(nodes, ","))
	logs := &lockedBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitHTTP(t, base+"/edge/health", logs)
	return base
}

// waitHTTP waits for url to answer 200.
func waitHTTP(t *testing.T, url string, logs *lockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never answered 200; log:\n%s", url, tail(logs.String(), 4000))
}

// testPrometheus is a running Prometheus.
type testPrometheus struct {
	base string
	logs *lockedBuffer
}

// startPrometheus writes deploy/prometheus's configuration and rules with
// the test's targets and short intervals, and runs Prometheus on them.
func startPrometheus(t *testing.T, bin string, nodes []*cnode, edge string) *testPrometheus {
	t.Helper()
	dir := t.TempDir()
	var targets []string
	for _, n := range nodes {
		targets = append(targets, `"`+strings.TrimPrefix(n.base, "http://")+`"`)
	}
	cfg := rewrite(t, readFile(t, filepath.Join(deployDir, "prometheus", "prometheus.yml")),
		"scrape_interval: 15s", "scrape_interval: 1s",
		"evaluation_interval: 15s", "evaluation_interval: 1s",
		`["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"]`, "["+strings.Join(targets, ", ")+"]",
		`["10.0.0.10:8090"]`, `["`+strings.TrimPrefix(edge, "http://")+`"]`)
	rules := rewrite(t, readFile(t, filepath.Join(deployDir, "prometheus", "rules.yml")),
		"- alert: SostenutoNodeDown\n        expr: |\n          up{job=\"sostenuto\"} == 0\n        for: 1m",
		"- alert: SostenutoNodeDown\n        expr: |\n          up{job=\"sostenuto\"} == 0\n        for: 5s")
	for name, body := range map[string]string{"prometheus.yml": cfg, "rules.yml": rules} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := &testPrometheus{base: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), logs: &lockedBuffer{}}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+strings.TrimPrefix(p.base, "http://"), "--log.level=warn")
	cmd.Stderr = p.logs
	cmd.Stdout = p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", tail(p.logs.String(), 4000))
		}
	})
	waitHTTP(t, p.base+"/-/ready", p.logs)
	return p
}

// rewrite replaces each old with its new in s, failing when one is
// missing (the shipped file changed shape).
func rewrite(t *testing.T, s string, pairs ...string) string {
	t.Helper()
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("deploy/prometheus no longer holds %q", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

// api GETs one Prometheus API path into out (its "data").
func (p *testPrometheus) api(t *testing.T, path string, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", p.base+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || env.Status != "success" {
		t.Fatalf("GET %s: %s %v %s", path, env.Status, err, env.Error)
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		t.Fatal(err)
	}
}

// waitTargetsUp waits until n targets are scraped and every one is up.
func (p *testPrometheus) waitTargetsUp(t *testing.T, n int) {
	t.Helper()
	var last string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var data struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
			} `json:"activeTargets"`
		}
		p.api(t, "/api/v1/targets", &data)
		up := 0
		var states []string
		for _, tg := range data.ActiveTargets {
			if tg.Health == "up" {
				up++
			}
			states = append(states, tg.Labels["job"]+"/"+tg.Labels["instance"]+"="+tg.Health+" "+tg.LastError)
		}
		last = strings.Join(states, "; ")
		if len(data.ActiveTargets) == n && up == n {
			t.Logf("targets up: %s", last)
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("targets not all up: %s", last)
}

// query evaluates an instant query and returns each sample's value.
func (p *testPrometheus) query(t *testing.T, q string) []string {
	t.Helper()
	var data struct {
		Result []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	p.api(t, "/api/v1/query?query="+url.QueryEscape(q), &data)
	var out []string
	for _, r := range data.Result {
		out = append(out, fmt.Sprint(r.Value[1]))
	}
	return out
}

// waitValue waits until q yields exactly one sample equal to want.
func (p *testPrometheus) waitValue(t *testing.T, q, want string, timeout time.Duration) {
	t.Helper()
	var got []string
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if got = p.query(t, q); len(got) == 1 && got[0] == want {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Errorf("%s = %v, want %s", q, got, want)
}

// promAlert is one alert of /api/v1/alerts.
type promAlert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

// alerts lists the pending and firing alerts named name.
func (p *testPrometheus) alerts(t *testing.T, name string) []promAlert {
	t.Helper()
	var data struct {
		Alerts []promAlert `json:"alerts"`
	}
	p.api(t, "/api/v1/alerts", &data)
	var out []promAlert
	for _, a := range data.Alerts {
		if a.Labels["alertname"] == name {
			out = append(out, a)
		}
	}
	return out
}

// rulesHealthy fails when any rule's evaluation errs.
func (p *testPrometheus) rulesHealthy(t *testing.T) {
	t.Helper()
	var data struct {
		Groups []struct {
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	p.api(t, "/api/v1/rules", &data)
	n := 0
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health == "err" {
				t.Errorf("rule %s: %s", r.Name, r.LastError)
			}
		}
	}
	if n < 30 {
		t.Errorf("Prometheus loaded %d rules", n)
	}
}
