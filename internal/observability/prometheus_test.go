package observability_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
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

	"go.yaml.in/yaml/v4"

	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/notify/smtptest"
	"github.com/paygate/paygate/internal/observability"
	"github.com/paygate/paygate/internal/platform/config"
)

// promServer is a real Prometheus (Debian's package) scraping a gateway.
type promServer struct {
	base string
}

func startPrometheus(t *testing.T, target string) *promServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus not found: run the tests with `make test`, which installs Debian's prometheus package")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: paygate
    static_configs:
      - targets: [%q]
`, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p := &promServer{base: "http://" + addr}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if resp, err := http.Get(p.base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("prometheus did not become ready")
		}
	}
}

type promResult struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string            `json:"resultType"`
		Result     []json.RawMessage `json:"result"`
	} `json:"data"`
}

func (p *promServer) query(t *testing.T, expr string) promResult {
	t.Helper()
	resp, err := http.Get(p.base + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r promResult
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

func (p *promServer) metricNames(t *testing.T) map[string]bool {
	t.Helper()
	resp, err := http.Get(p.base + "/api/v1/label/__name__/values")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Data []string `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, n := range r.Data {
		out[n] = true
	}
	return out
}

// panelQueries returns every panel query of the committed dashboards, by
// "dashboard / panel".
func panelQueries(t *testing.T) map[string]string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dashboardsDir, "*.json"))
	out := map[string]string{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr  string `json:"expr"`
					RefID string `json:"refId"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				out[filepath.Base(f)+" / "+p.Title+" / "+tg.RefID] = tg.Expr
			}
		}
	}
	return out
}

// alertExprs returns every alert expression of the rules file.
func alertExprs(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("alerts", "paygate-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			out[r.Alert] = r.Expr
		}
	}
	return out
}

var metricRef = regexp.MustCompile(`\b(paygate_[a-z_]+|http_server_[a-z_]+|pgxpool_[a-z_]+|db_client_[a-z_]+)\b`)

// TestDashboardsAndAlertsAgainstRealPrometheus runs a real Prometheus that
// scrapes a real gateway while a smoke load exercises every domain, then
// runs every dashboard panel query and every alert expression through
// Prometheus's HTTP API: every expression parses and evaluates, every
// panel query returns data, and every metric any query names is exported.
func TestDashboardsAndAlertsAgainstRealPrometheus(t *testing.T) {
	t.Parallel()
	mail := smtptest.Start(t)
	mail.RefuseRecipients(func(addr string) int {
		if strings.HasPrefix(addr, "refused") {
			return 451
		}
		return 0
	})
	e := apptest.Start(t, apptest.WithConfig(func(c *config.Config) {
		c.Payout.Enabled = true
		c.SMTP.Host, c.SMTP.Port = mail.Host, mail.Port
		c.Notify.Enabled, c.Notify.MaxAttempts, c.Notify.RetryBackoff = true, 2, 50*time.Millisecond
	}))
	prom := startPrometheus(t, strings.TrimPrefix(e.MetricsURL, "http://"))
	pw := "password-refused"
	e.Post(t, "/v1/auth/register", "", map[string]string{"firstname": "R", "lastname": "R", "email": "refused@paygate.test",
		"password": pw, "confirm_password": pw})
	smokeLoad(t, e)
	// Client errors in every HTTP domain, so that 4xx panels have data.
	u := e.NewUser(t)
	e.Get(t, "/v1/saldo/statement?limit=0", u.Token)
	e.Get(t, "/v1/withdrawals/not-an-id", u.Token)
	e.Get(t, "/v1/users/not-an-id", u.Token)

	// Enough 1s scrapes for rates over 15s windows, and for the dead
	// letters of the refused recipient to be counted.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		if r := prom.query(t, observability.DeadLetters); len(r.Data.Result) > 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("Prometheus never saw the dead-letter counter")
		case <-time.After(500 * time.Millisecond):
		}
	}
	panels := panelQueries(t)
	if len(panels) < 30 {
		t.Fatalf("only %d panel queries found", len(panels))
	}
	alerts := alertExprs(t)
	if len(alerts) < 8 {
		t.Fatalf("only %d alerts found", len(alerts))
	}
	// problems runs every query once and says what is wrong. Rates over
	// 15s windows need a few 1s scrapes before they have data, so the
	// queries are polled until they all pass rather than after a fixed
	// pause; what is still wrong at the deadline fails the test.
	problems := func() []string {
		var out []string
		names := prom.metricNames(t)
		check := func(kind, name, expr string, wantData bool) {
			for _, m := range metricRef.FindAllString(expr, -1) {
				if m == observability.LabelDomain || m == observability.LabelPoolName {
					continue
				}
				if !names[m] {
					out = append(out, fmt.Sprintf("%s %q uses %s, which Prometheus never scraped", kind, name, m))
				}
			}
			r := prom.query(t, strings.ReplaceAll(expr, "$__rate_interval", "15s"))
			if r.Status != "success" {
				out = append(out, fmt.Sprintf("%s %q: %s: %s\n%s", kind, name, r.ErrorType, r.Error, expr))
				return
			}
			if wantData && len(r.Data.Result) == 0 {
				out = append(out, fmt.Sprintf("%s %q returned no data\n%s", kind, name, expr))
			}
		}
		for name, expr := range panels {
			check("panel", name, expr, true)
		}
		for name, expr := range alerts {
			check("alert", name, expr, false)
		}
		slices.Sort(out)
		return out
	}
	deadline := time.Now().Add(45 * time.Second)
	for {
		left := problems()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range left {
				t.Error(p)
			}
			return
		}
		time.Sleep(time.Second)
	}
}
