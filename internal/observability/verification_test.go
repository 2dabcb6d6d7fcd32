package observability_test

import (
	"context"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/observability"
	"github.com/paygate/paygate/internal/platform/config"
)

// gauge returns the value of the unlabelled gauge name, and whether it
// was exported.
func gauge(fams map[string]*dto.MetricFamily, name string) (float64, bool) {
	f := fams[name]
	if f == nil || len(f.GetMetric()) != 1 || f.GetMetric()[0].GetGauge() == nil {
		return 0, false
	}
	return f.GetMetric()[0].GetGauge().GetValue(), true
}

// TestBackgroundVerificationFeedsTheGauges checks that the ledger is
// verified in the background, without anyone calling the verify endpoint:
// the verification gauges appear and say the ledger is sound, then turn
// once a balance is corrupted behind the ledger's back.
func TestBackgroundVerificationFeedsTheGauges(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.WithConfig(func(c *config.Config) { c.Money.VerifyInterval = time.Second }))
	wait := func(what string, cond func(ok, violations, at float64) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			fams := scrape(t, e)
			ok, hasOK := gauge(fams, observability.LedgerOK)
			violations, hasV := gauge(fams, observability.LedgerViolations)
			at, hasAt := gauge(fams, observability.LedgerVerifiedAt)
			if hasOK && hasV && hasAt && cond(ok, violations, at) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: ok=%v (%t) violations=%v (%t) at=%v (%t)", what, ok, hasOK, violations, hasV, at, hasAt)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	start := float64(time.Now().Unix())
	wait("a sound verification", func(ok, violations, at float64) bool { return ok == 1 && violations == 0 && at >= start-1 })

	if _, err := e.Pool.Exec(context.Background(), `
ALTER TABLE ledger_accounts DISABLE TRIGGER USER;
INSERT INTO ledger_accounts (id, kind, code, currency, balance, held, allow_negative)
VALUES ('00000000-0000-4000-8000-000000000001', 'system', 'funding:test', 'IDR', 5, 0, true);`); err != nil {
		t.Fatal(err)
	}
	wait("the violation to be reported", func(ok, violations, _ float64) bool { return ok == 0 && violations >= 1 })
}
