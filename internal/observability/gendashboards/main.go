// Command gendashboards writes paygate's Grafana dashboards, generated from
// the metric catalog, into grafana-dashboards/ and the Helm chart's
// dashboards/, and copies the tested alert rules into the chart (run it
// from the repository root, or with `make dashboards`). Tests fail when
// any copy differs.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/paygate/paygate/internal/observability"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gendashboards:", err)
		os.Exit(1)
	}
}

func run() error {
	dashboards, err := observability.Dashboards()
	if err != nil {
		return err
	}
	for _, dir := range []string{observability.DashboardsDir, chartDashboards} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for name, b := range dashboards {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				return err
			}
		}
	}
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(chartRules), 0o755); err != nil {
		return err
	}
	return os.WriteFile(chartRules, rules, 0o644)
}

// Paths relative to the repository root.
const (
	chartDashboards = "charts/paygate/dashboards"
	chartRules      = "charts/paygate/files/prometheus-rules.yaml"
	rulesFile       = "internal/observability/alerts/paygate-rules.yaml"
)
