package observability_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// promtool returns the path of promtool, failing the test when it is
// missing (make test installs Debian's prometheus package).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: run the tests with `make test`, which installs Debian's prometheus package")
	}
	return p
}

// TestAlertRules checks the rules and runs their unit tests with the real
// promtool.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	tool := promtool(t)
	for _, args := range [][]string{
		{"check", "rules", "paygate-rules.yaml"},
		{"test", "rules", "paygate-rules_test.yaml"},
	} {
		cmd := exec.Command(tool, args...)
		cmd.Dir = "alerts"
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("SUCCESS")) {
			t.Fatalf("promtool %v: %v\n%s", args, err, out)
		}
	}
}

// TestChartShipsTheTestedRules keeps the Helm chart's PrometheusRule
// content byte-identical to the rules tested here.
func TestChartShipsTheTestedRules(t *testing.T) {
	t.Parallel()
	want, err := os.ReadFile(filepath.Join("alerts", "paygate-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("..", "..", "charts", "paygate", "files", "prometheus-rules.yaml"))
	if err != nil {
		t.Fatalf("the chart's rules file: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("charts/paygate/files/prometheus-rules.yaml differs from internal/observability/alerts/paygate-rules.yaml: copy it (make dashboards)")
	}
}
