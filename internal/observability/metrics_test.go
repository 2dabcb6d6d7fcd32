package observability_test

import (
	"bytes"
	"context"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/fx"

	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/notify/smtptest"
	"github.com/paygate/paygate/internal/observability"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/provider/sandbox"
)

// smokeLoad exercises every domain through the API, including refusals,
// so that every metric and many label values appear.
func smokeLoad(t *testing.T, e *apptest.Env) {
	t.Helper()
	alice, bob := e.NewUser(t), e.NewUser(t)
	admin := e.Admin(t)
	e.Post(t, "/v1/auth/login", "", map[string]string{"email": alice.Email, "password": "wrong-password"})
	e.Post(t, "/v1/auth/refresh", "", map[string]string{"refresh_token": bob.Refresh})
	e.Post(t, "/v1/auth/refresh", "", map[string]string{"refresh_token": "pgr_nope"})
	// A top-up is credited once the customer paid at the provider.
	top := e.Post(t, "/v1/topups", alice.Token, map[string]any{"amount": 900000, "method": "OVO"}, "Idempotency-Key", "t1")
	if top.Status != 201 {
		t.Fatalf("top-up: %d %s", top.Status, top.Body)
	}
	topID, _ := top.Map(t)["id"].(string)
	if _, err := e.Provider.Sandbox.Pay(topID, 0, ""); err != nil {
		t.Fatalf("sandbox pay: %v", err)
	}
	e.WaitTopUp(t, alice.Token, topID, "succeeded")
	e.Post(t, "/v1/topups", alice.Token, map[string]any{"amount": 900000, "method": "bitcoin"}, "Idempotency-Key", "t2")
	e.Post(t, "/v1/transfers", alice.Token, map[string]any{"to": bob.Email, "amount": 100000}, "Idempotency-Key", "x1")
	e.Post(t, "/v1/transfers", bob.Token, map[string]any{"to": alice.Email, "amount": 999999999}, "Idempotency-Key", "x2")
	// The provider fails one payout, so that failed withdrawals and
	// released holds appear too.
	e.Provider.Sandbox.SetAmountFaults(70000, sandbox.Faults{PayoutFailureCode: "INVALID_DESTINATION"})
	for i, amt := range []int{60000, 70000, 80000} {
		e.Post(t, "/v1/withdrawals", alice.Token, map[string]any{"amount": amt, "bank_code": "BCA",
			"bank_account_number": "1234567890", "bank_account_name": "Alice"}, "Idempotency-Key", "w"+string(rune('0'+i)))
	}
	e.Get(t, "/v1/saldo", alice.Token)
	e.Get(t, "/v1/saldo/statement", alice.Token)
	e.Get(t, "/v1/users/"+bob.ID, alice.Token)
	e.Get(t, "/v1/no/such/route", alice.Token)
	e.Get(t, "/v1/admin/ledger/verify", admin.Token)
	// Let the relay publish and the payout processor settle.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var pending, open int
		if err := e.Pool.QueryRow(context.Background(), `
SELECT (SELECT count(*) FROM outbox WHERE sent_at IS NULL),
       (SELECT count(*) FROM withdrawals w WHERE NOT EXISTS (SELECT 1 FROM withdrawal_settlements s WHERE s.withdrawal_id = w.id))`).Scan(&pending, &open); err != nil {
			t.Fatal(err)
		}
		if pending == 0 && open == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("smoke load did not settle: %d events pending, %d withdrawals open", pending, open)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func scrape(t *testing.T, e *apptest.Env) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(e.Metrics(t)))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

var (
	// unbounded recognises values that must never be labels: ids,
	// emails, long digit runs (amounts, account numbers).
	unbounded = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-|@|[0-9]{5,}`)
	// forbiddenLabel names labels that would carry per-user data.
	forbiddenLabel = regexp.MustCompile(`(?i)(^|_)(id|user|email|account|amount|key|token)($|_)`)
)

// TestMetricsHaveOnlyBoundedLabels scrapes a gateway after a smoke load
// over every domain: every paygate metric is in the catalog, every label
// value is one the catalog allows, and every catalog metric of the
// business domains is exported.
func TestMetricsHaveOnlyBoundedLabels(t *testing.T) {
	t.Parallel()
	var srv *httpserver.Server
	mail := smtptest.Start(t)
	// One recipient's server keeps answering 451: their mails are retried,
	// then dead-lettered, so the retry and dead-letter metrics appear too.
	mail.RefuseRecipients(func(addr string) int {
		if strings.HasPrefix(addr, "refused") {
			return 451
		}
		return 0
	})
	e := apptest.Start(t, apptest.WithFx(fx.Populate(&srv)), apptest.WithConfig(func(c *config.Config) {
		c.Payout.Enabled = true
		c.SMTP.Host, c.SMTP.Port = mail.Host, mail.Port
		c.Notify.Enabled, c.Notify.MaxAttempts, c.Notify.RetryBackoff = true, 2, 50*time.Millisecond
	}))
	pw := "password-refused"
	e.Post(t, "/v1/auth/register", "", map[string]string{"firstname": "R", "lastname": "R", "email": "refused@paygate.test",
		"password": pw, "confirm_password": pw})
	smokeLoad(t, e)
	var fams map[string]*dto.MetricFamily
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		fams = scrape(t, e)
		if fams[observability.DeadLetters] != nil && fams[observability.Emails] != nil || time.Now().After(deadline) {
			break
		}
	}

	routes := []string{"unmatched"}
	_ = srv.Router().Walk(func(r *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		if tpl, err := r.GetPathTemplate(); err == nil {
			routes = append(routes, tpl)
		}
		return nil
	})
	groups := []string{e.Config.Payout.Group, e.Config.Payout.Group + "-retry", e.Config.Notify.Group}
	pools := map[string]bool{}

	catalog := map[string]observability.Metric{}
	for _, m := range observability.Catalog() {
		catalog[m.Name] = m
	}
	for name, fam := range fams {
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") || strings.HasPrefix(name, "promhttp_") || name == "target_info" {
			continue
		}
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && fam.GetType() == dto.MetricType_HISTOGRAM {
				base = b
			}
		}
		m, ok := catalog[base]
		if !ok {
			t.Errorf("metric %s is exported but not in the catalog", name)
			continue
		}
		if string(m.Type) != strings.ToLower(fam.GetType().String()) {
			t.Errorf("metric %s is a %s, the catalog says %s", name, fam.GetType(), m.Type)
		}
		for _, sample := range fam.GetMetric() {
			for _, lp := range sample.GetLabel() {
				k, v := lp.GetName(), lp.GetValue()
				allowed, known := m.Labels[k]
				switch {
				case k == "le":
				case !known:
					t.Errorf("%s has label %s=%q the catalog does not declare", name, k, v)
				case forbiddenLabel.MatchString(k):
					t.Errorf("%s has a per-user label %s", name, k)
				case k == observability.LabelRoute:
					if !slices.Contains(routes, v) {
						t.Errorf("%s: %s=%q is not a route template", name, k, v)
					}
				case k == observability.LabelPoolName:
					if pools[v] = true; len(pools) > 1 {
						t.Errorf("%s: more than one pool name: %v", name, pools)
					}
				case k == "server_address" || k == "server_port":
					// The provider client calls one host: the configured
					// provider's.
					u, err := url.Parse(e.Config.Provider.BaseURL())
					if err != nil || (k == "server_address" && v != u.Hostname()) || (k == "server_port" && v != u.Port()) {
						t.Errorf("%s: %s=%q is not the provider's (%s)", name, k, v, e.Config.Provider.BaseURL())
					}
				case k == observability.LabelGroup:
					if !slices.Contains(groups, v) {
						t.Errorf("%s: %s=%q is not a configured consumer group", name, k, v)
					}
				case allowed != nil:
					if !slices.Contains(allowed, v) {
						t.Errorf("%s: %s=%q is outside %v", name, k, v, allowed)
					}
				default:
					if len(v) > 64 || unbounded.MatchString(v) {
						t.Errorf("%s: %s=%q looks unbounded", name, k, v)
					}
				}
			}
		}
	}
	for _, m := range observability.Catalog() {
		if m.Domain == "" || m.Name == observability.ConsumerLag {
			continue
		}
		found := false
		for name := range fams {
			if name == m.Name || strings.HasPrefix(name, m.Name+"_") {
				found = true
			}
		}
		if !found {
			t.Errorf("catalog metric %s was not exported after a smoke load over every domain", m.Name)
		}
	}
}
