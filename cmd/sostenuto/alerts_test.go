package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// deployDir is the repository's deploy/ folder (tests run in cmd/sostenuto).
const deployDir = "../../deploy"

// runbookBase is where every alert's runbook_url points, before its anchor.
const runbookBase = "https://github.com/sostenuto/sostenuto/blob/main/docs/RUNBOOKS.md#"

// promtool is Debian's promtool; the tests fail, not skip, without it.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (`scripts/deps.sh test-tools`, run by `make test`)")
	}
	return p
}

// The shipped rules and configuration pass promtool's checks, and the
// rules pass their unit tests (rules_test.yml).
func TestPrometheusRulesPromtool(t *testing.T) {
	bin := promtool(t)
	dir := filepath.Join(deployDir, "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "rules.yml"},
		{"check", "config", "prometheus.yml"},
		{"test", "rules", "rules_test.yml"},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// Every alert links to its own runbook entry, which exists, and its unit
// tests show it both firing and silent.
func TestAlertsHaveRunbooksAndTests(t *testing.T) {
	rules := readFile(t, filepath.Join(deployDir, "prometheus", "rules.yml"))
	tests := readFile(t, filepath.Join(deployDir, "prometheus", "rules_test.yml"))
	runbooks := readFile(t, "../../docs/RUNBOOKS.md")
	alerts := alertRunbooks(rules)
	if len(alerts) < 15 {
		t.Fatalf("found %d alerts in rules.yml", len(alerts))
	}
	for name, url := range alerts {
		if want := runbookBase + strings.ToLower(name); url != want {
			t.Errorf("%s: runbook_url %q, want %q", name, url, want)
		}
		if !regexp.MustCompile(`(?m)^### ` + name + `$`).MatchString(runbooks) {
			t.Errorf("%s: no `### %s` entry in docs/RUNBOOKS.md", name, name)
		}
		silent := regexp.MustCompile(`alertname: `+name+`\n\s+exp_alerts: \[\]`).FindAllString(tests, -1)
		firing := regexp.MustCompile(`alertname: `+name+`\n\s+exp_alerts:\n\s+- exp_labels`).FindAllString(tests, -1)
		if len(silent) == 0 || len(firing) == 0 {
			t.Errorf("%s: rules_test.yml has %d silent and %d firing cases; want both", name, len(silent), len(firing))
		}
	}
}

// alertRunbooks maps each alert of a rules file to its runbook_url.
func alertRunbooks(rules string) map[string]string {
	out := map[string]string{}
	var current string
	for _, line := range strings.Split(rules, "\n") {
		line = strings.TrimSpace(line)
		if name, ok := strings.CutPrefix(line, "- alert: "); ok {
			current = name
			out[current] = ""
		}
		if url, ok := strings.CutPrefix(line, "runbook_url: "); ok && current != "" {
			out[current] = url
		}
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
