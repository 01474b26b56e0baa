package deploytest

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"

	"go.yaml.in/yaml/v3"

	"github.com/keyescrow/keyescrow/internal/metrics"
)

const rulesFile = "../../deploy/prometheus/keyescrow-rules.yaml"

// ruleFile is the shape of a Prometheus rule file (rule_files:), decoded
// strictly so a misspelt key fails.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func readRules(t *testing.T, doc string) []rule {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	var f ruleFile
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("the rule file does not decode: %v", err)
	}
	var out []rule
	for _, g := range f.Groups {
		if g.Name == "" {
			t.Error("a rule group has no name")
		}
		out = append(out, g.Rules...)
	}
	return out
}

// metricRE finds the metric names an expression uses.
var metricRE = regexp.MustCompile(`keyescrow_[a-z_]+`)

// templateFuncs are the template functions Prometheus gives annotations
// (only their names matter here: the templates are parsed, not run).
var templateFuncs = template.FuncMap{
	"query": func(string) []any { return nil }, "first": func([]any) any { return nil }, "value": func(any) float64 { return 0 },
	"humanize": func(any) string { return "" }, "humanizeDuration": func(any) string { return "" }, "label": func(string, any) string { return "" },
}

func TestAlertRulesUseOnlyMetricsKeyescrowWrites(t *testing.T) {
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	rules := readRules(t, string(b))
	names := metrics.Names()
	seen := map[string]bool{}
	for _, r := range rules {
		if r.Alert == "" || r.Expr == "" {
			t.Errorf("a rule without alert or expr: %+v", r)
		}
		if seen[r.Alert] {
			t.Errorf("alert %s is defined twice", r.Alert)
		}
		seen[r.Alert] = true
		for _, m := range metricRE.FindAllString(r.Expr, -1) {
			if !slices.Contains(names, m) {
				t.Errorf("%s uses %s, which keyescrow does not write (it writes %v)", r.Alert, m, names)
			}
		}
		if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") || strings.Count(r.Expr, "{") != strings.Count(r.Expr, "}") {
			t.Errorf("%s: unbalanced brackets in %s", r.Alert, r.Expr)
		}
		for k, v := range r.Annotations {
			// Prometheus defines these variables before every template.
			defs := "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$value := .Value}}"
			if _, err := template.New(k).Funcs(templateFuncs).Parse(defs + v); err != nil {
				t.Errorf("%s: annotation %s is not a valid template: %v", r.Alert, k, err)
			}
		}
	}
	for _, a := range []string{"KeyescrowCertificateWithoutCopy", "KeyescrowDatabaseMasterKeyWithoutCopy", "KeyescrowItemStale", "KeyescrowArchiveStaleOrBroken"} {
		if !seen[a] {
			t.Errorf("the rule file has no %s", a)
		}
	}
}

// The rules the operations guide shows are the file's (the file may have
// more).
func TestTheGuidesAlertRulesAreTheFiles(t *testing.T) {
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]rule{}
	for _, r := range readRules(t, string(f)) {
		byName[r.Alert] = r
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(groups:.*?)```").FindAllStringSubmatch(string(b), -1)
	for _, m := range blocks {
		for _, r := range readRules(t, m[1]) {
			if fr, ok := byName[r.Alert]; !ok || fr.Expr != r.Expr {
				t.Errorf("docs/operations.md's %s (%s) is not the rule file's (%s)", r.Alert, r.Expr, fr.Expr)
			}
		}
	}
}
