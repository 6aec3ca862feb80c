package monitoring_test

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/valguard/valguard/internal/tooltest"
)

// alertRules returns the alerts of alerts.yml by name, with their
// expressions. Expressions are kept on one line (no YAML block scalars), so
// that this needs no YAML parser; anything else fails the test.
func alertRules(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]string{}
	name := ""
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "- alert:"); ok {
			name = strings.TrimSpace(v)
			rules[name] = ""
			continue
		}
		if v, ok := strings.CutPrefix(line, "expr:"); ok {
			v = strings.TrimSpace(v)
			if name == "" || rules[name] != "" || v == "" || v[0] == '|' || v[0] == '>' {
				t.Fatalf("alerts.yml: expr %q: want one single-line expr per alert", v)
			}
			rules[name] = v
		}
	}
	for n, e := range rules {
		if e == "" {
			t.Fatalf("alerts.yml: alert %s has no expr", n)
		}
	}
	return rules
}

// promtool check rules accepts alerts.yml.
func TestAlertRulesCheck(t *testing.T) {
	promtool := tooltest.Tool(t, "promtool")
	out, err := exec.Command(promtool, "check", "rules", "alerts.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// promtool test rules passes alerts_test.yml, and that file tests every
// alert of alerts.yml both firing and not firing.
func TestAlertRulesUnit(t *testing.T) {
	promtool := tooltest.Tool(t, "promtool")
	out, err := exec.Command(promtool, "test", "rules", "alerts_test.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	data, err := os.ReadFile("alerts_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	// Each `alertname: X` is followed by its exp_alerts: `[]` (not
	// firing) or a list (firing).
	firing, quiet := map[string]bool{}, map[string]bool{}
	re := regexp.MustCompile(`(?m)^\s+alertname: (\S+)\n\s+exp_alerts:(.*)$`)
	for _, m := range re.FindAllStringSubmatch(string(data), -1) {
		if strings.TrimSpace(m[2]) == "[]" {
			quiet[m[1]] = true
		} else {
			firing[m[1]] = true
		}
	}
	var names []string
	for name := range alertRules(t) {
		names = append(names, name)
		if !firing[name] || !quiet[name] {
			t.Errorf("alerts_test.yml: %s tested firing %v, not firing %v; want both", name, firing[name], quiet[name])
		}
	}
	for name := range firing {
		if !slices.Contains(names, name) {
			t.Errorf("alerts_test.yml tests %s, which alerts.yml does not have", name)
		}
	}
	if len(names) < 7 {
		t.Errorf("only %d alerts in alerts.yml", len(names))
	}
}
