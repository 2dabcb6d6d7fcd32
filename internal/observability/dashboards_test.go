package observability_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/paygate/paygate/internal/observability"
)

const dashboardsDir = "../../" + observability.DashboardsDir

// TestDashboardsAreGeneratedAndCommitted keeps grafana-dashboards/ equal
// to what the generator makes from the catalog.
func TestDashboardsAreGeneratedAndCommitted(t *testing.T) {
	t.Parallel()
	want, err := observability.Dashboards()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dashboardsDir, "*.json"))
	if len(files) != len(want) {
		t.Errorf("%d dashboards committed, %d generated: run `make dashboards`", len(files), len(want))
	}
	for name, b := range want {
		got, err := os.ReadFile(filepath.Join(dashboardsDir, name))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s is not the generated dashboard (%v): run `make dashboards`", name, err)
		}
	}
	for _, d := range append(slices.Clone(observability.Domains), "overview") {
		if _, ok := want[d+".json"]; !ok {
			t.Errorf("no dashboard for %s", d)
		}
	}
}

// TestDashboardsAreStrictlyValid decodes every committed dashboard with
// the Grafana Foundation SDK's strict decoder and validator (unknown fields
// are errors), and checks what every dashboard must have.
func TestDashboardsAreStrictlyValid(t *testing.T) {
	t.Parallel()
	plugins.RegisterDefaultPlugins()
	files, _ := filepath.Glob(filepath.Join(dashboardsDir, "*.json"))
	if len(files) == 0 {
		t.Fatal("no dashboards committed")
	}
	known, labels := map[string]bool{}, map[string]bool{}
	for _, m := range observability.Catalog() {
		known[m.Name] = true
		for l := range m.Labels {
			labels[l] = true
		}
	}
	metricName := regexp.MustCompile(`\b(paygate_[a-z_]+|http_server_[a-z_]+|pgxpool_[a-z_]+|db_client_[a-z_]+)\b`)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// The committed dashboards are classic (v1) JSON, what Grafana's file
		// provisioning loads; the SDK's dashboardv2 is another schema.
		//lint:ignore SA1019 the test decodes the v1 schema the dashboards are in.
		var d dashboard.Dashboard
		if err := d.UnmarshalJSONStrict(raw); failed(err) {
			t.Errorf("%s: strict decode: %v", f, err)
			continue
		}
		if err := d.Validate(); failed(err) {
			t.Errorf("%s: validate: %v", f, err)
		}
		if d.Templating.List == nil || !slices.ContainsFunc(d.Templating.List, func(v dashboard.VariableModel) bool {
			return v.Type == "datasource" && v.Name == "datasource"
		}) {
			t.Errorf("%s: no datasource variable", f)
		}
		if !slices.ContainsFunc(d.Links, func(l dashboard.DashboardLink) bool {
			return l.Url != nil && strings.Contains(*l.Url, "${jaeger_url}/search")
		}) {
			t.Errorf("%s: no Jaeger link", f)
		}
		var generic struct {
			Panels []struct {
				Type        string `json:"type"`
				Title       string `json:"title"`
				FieldConfig struct {
					Defaults struct {
						Unit string `json:"unit"`
					} `json:"defaults"`
				} `json:"fieldConfig"`
				Datasource struct {
					UID string `json:"uid"`
				} `json:"datasource"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(raw, &generic); err != nil {
			t.Fatal(err)
		}
		panels := 0
		for _, p := range generic.Panels {
			if p.Type == "row" {
				continue
			}
			panels++
			if p.Type == "timeseries" && p.FieldConfig.Defaults.Unit == "" {
				t.Errorf("%s: panel %q has no unit", f, p.Title)
			}
			if p.Datasource.UID != "${datasource}" {
				t.Errorf("%s: panel %q does not use the datasource variable", f, p.Title)
			}
			for _, tg := range p.Targets {
				for _, n := range metricName.FindAllString(tg.Expr, -1) {
					base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count"), "_sum")
					if !known[base] && !known[n] && !labels[n] {
						t.Errorf("%s: panel %q queries %s, which paygate does not export", f, p.Title, n)
					}
				}
			}
		}
		if panels == 0 {
			t.Errorf("%s: no panels", f)
		}
	}
}

// failed reports whether err is a real error: the SDK returns an empty
// cog.BuildErrors, a non-nil interface holding nothing, on success.
func failed(err error) bool {
	var be cog.BuildErrors
	if errors.As(err, &be) {
		return len(be) > 0
	}
	return err != nil
}
