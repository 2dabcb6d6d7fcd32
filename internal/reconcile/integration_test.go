package reconcile_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/fx"

	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/observability"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/provider"
	"github.com/paygate/paygate/internal/provider/providertest"
	"github.com/paygate/paygate/internal/provider/sandbox"
	"github.com/paygate/paygate/internal/reconcile"
	"github.com/paygate/paygate/internal/withdraw"
)

// rails is a running application with the services a test drives the
// payment rails with.
type rails struct {
	*apptest.Env
	withdrawals *withdraw.Service
	reconciler  *reconcile.Reconciler
}

func startRails(t *testing.T, opts ...apptest.Option) *rails {
	t.Helper()
	r := &rails{}
	r.Env = apptest.Start(t, append(opts, apptest.WithFx(fx.Populate(&r.withdrawals, &r.reconciler)))...)
	return r
}

// withdraw requests a withdrawal of amount for u and returns its id.
func (r *rails) withdraw(t *testing.T, u apptest.User, amount int64) string {
	t.Helper()
	resp := r.Post(t, "/v1/withdrawals", u.Token, map[string]any{"amount": amount, "bank_code": "BCA",
		"bank_account_number": "1234567890", "bank_account_name": "Ada Lovelace"}, "Idempotency-Key", uuid.NewString())
	if resp.Status != http.StatusCreated {
		t.Fatalf("withdraw %d: %d %s", amount, resp.Status, resp.Body)
	}
	return resp.Map(t)["id"].(string)
}

// payOut does what the payout processor does for withdrawal id: it asks
// the provider for the payout and records it. The provider settles it a
// moment later and tells paygate in a callback.
func (r *rails) payOut(t *testing.T, id string, amount int64) provider.Payout {
	t.Helper()
	ctx := context.Background()
	po, err := r.Provider.Client.CreatePayout(ctx, provider.PayoutRequest{Reference: id, Amount: amount, Currency: "IDR",
		BankCode: "BCA", AccountNumber: "1234567890", AccountHolderName: "Ada Lovelace", Description: "withdrawal " + id})
	if err != nil {
		t.Fatalf("payout of %s: %v", id, err)
	}
	if _, err := r.withdrawals.RecordPayout(ctx, uuid.MustParse(id), provider.Sandbox, po); err != nil {
		t.Fatalf("record the payout of %s: %v", id, err)
	}
	return po
}

// waitWithdrawal waits until the withdrawal id has status.
func (r *rails) waitWithdrawal(t *testing.T, token, id, status string) {
	t.Helper()
	providertest.WaitFor(t, "withdrawal "+id+" "+status, func() bool {
		return r.Get(t, "/v1/withdrawals/"+id, token).Map(t)["status"] == status
	})
}

// waitProviderPayout waits until the provider has settled the payout.
func (r *rails) waitProviderPayout(t *testing.T, po provider.Payout, status provider.PayoutStatus) {
	t.Helper()
	providertest.WaitFor(t, "payout "+po.ID+" "+string(status), func() bool {
		got, err := r.Provider.Client.GetPayout(context.Background(), po.ID)
		return err == nil && got.Status == status
	})
}

// injected are the mismatches a test made, by reference.
type injected map[string]reconcile.Kind

// check fails unless the report has exactly the mismatches want.
func (want injected) check(t *testing.T, rep reconcile.Report) {
	t.Helper()
	got := map[string]reconcile.Kind{}
	for _, m := range rep.Mismatches {
		if _, dup := got[m.Reference]; dup {
			t.Errorf("%s reported twice", m.Reference)
		}
		got[m.Reference] = m.Kind
	}
	for ref, k := range want {
		if got[ref] != k {
			t.Errorf("%s: reported %q, want %q", ref, got[ref], k)
		}
	}
	for ref, k := range got {
		if _, ok := want[ref]; !ok {
			t.Errorf("%s: reported %q, but nothing is wrong with it", ref, k)
		}
	}
}

// TestReconciliationFindsEveryInjectedMismatch runs top-ups and
// withdrawals through the sandbox provider, breaks some of them in every
// way reconciliation knows, and checks that the reconciler, GET
// /v1/admin/reconciliation and nothing else agree on exactly those.
func TestReconciliationFindsEveryInjectedMismatch(t *testing.T) {
	t.Parallel()
	e := startRails(t)
	ctx := context.Background()
	sb := e.Provider.Sandbox
	from := time.Now().Add(-time.Minute)
	alice := e.NewUser(t)
	want := injected{}

	// Sound: a top-up paid and credited, one left unpaid, one reversed.
	e.Fund(t, alice, 2_000_000)
	e.TopUp(t, alice, 150000)
	reversed := e.Fund(t, alice, 160000)
	admin := e.Admin(t)
	if r := e.Post(t, "/v1/topups/"+reversed+"/reversal", admin.Token, map[string]string{"reason": "test"},
		"Idempotency-Key", uuid.NewString()); r.Status != http.StatusOK && r.Status != http.StatusCreated {
		t.Fatalf("reversal: %d %s", r.Status, r.Body)
	}
	// A top-up booked before the payment rails went through no provider.
	if _, err := e.Pool.Exec(ctx, `INSERT INTO topups (id, user_id, amount, currency, method, ledger_transaction_id)
VALUES ($1, $2, 170000, 'IDR', 'bca', $3)`, uuid.New(), alice.ID, uuid.New()); err != nil {
		t.Fatal(err)
	}

	// paid_not_credited: paid at the provider, the callback lost; paygate
	// still has the top-up pending.
	lost := e.TopUp(t, alice, 100000)["id"].(string)
	sb.SetReferenceFaults(lost, sandbox.Faults{Callbacks: sandbox.CallbackFaults{Drop: 10}})
	if _, err := sb.Pay(lost, 0, ""); err != nil {
		t.Fatal(err)
	}
	want[lost] = reconcile.PaidNotCredited
	// paid_not_credited: paid another amount; paygate failed the top-up
	// (AMOUNT_MISMATCH) and credited nothing, but the provider has the
	// money.
	short := e.TopUp(t, alice, 120000)["id"].(string)
	if _, err := sb.Pay(short, 110000, ""); err != nil {
		t.Fatal(err)
	}
	e.WaitTopUp(t, alice.Token, short, "failed")
	want[short] = reconcile.PaidNotCredited
	// credited_not_paid: credited on the provider's callback, but the
	// provider's books do not show the payment.
	unpaid := e.Fund(t, alice, 130000)
	if n := sb.DropTransactions(unpaid); n != 1 {
		t.Fatalf("dropped %d transactions", n)
	}
	want[unpaid] = reconcile.CreditedNotPaid
	// amount_differs: credited 140000, the provider settled 139000.
	amended := e.Fund(t, alice, 140000)
	if n := sb.AmendTransactions(amended, 139000, ""); n != 1 {
		t.Fatalf("amended %d transactions", n)
	}
	want[amended] = reconcile.AmountDiffers

	// Sound: a withdrawal paid out and settled, one whose payout failed
	// (its hold released, nothing settled at the provider), one pending.
	paid := e.withdraw(t, alice, 60000)
	e.payOut(t, paid, 60000)
	e.waitWithdrawal(t, alice.Token, paid, "succeeded")
	refused := e.withdraw(t, alice, 65000)
	sb.SetReferenceFaults(refused, sandbox.Faults{PayoutFailureCode: "INVALID_DESTINATION"})
	e.payOut(t, refused, 65000)
	e.waitWithdrawal(t, alice.Token, refused, "failed")
	e.withdraw(t, alice, 66000)
	// paid_out_not_settled: paid out, the callback lost; paygate still
	// has the withdrawal pending.
	unsettled := e.withdraw(t, alice, 70000)
	sb.SetReferenceFaults(unsettled, sandbox.Faults{Callbacks: sandbox.CallbackFaults{Drop: 10}})
	e.waitProviderPayout(t, e.payOut(t, unsettled, 70000), provider.PayoutSucceeded)
	want[unsettled] = reconcile.PaidOutNotSettled
	// settled_not_paid_out: settled as paid out by hand, with no payout.
	byHand := e.withdraw(t, alice, 80000)
	if _, err := e.withdrawals.Settle(ctx, uuid.MustParse(byHand), withdraw.Outcome{Succeeded: true}); err != nil {
		t.Fatal(err)
	}
	want[byHand] = reconcile.SettledNotPaidOut
	// amount_differs: paid out 90000, the provider settled 90500.
	fee := e.withdraw(t, alice, 90000)
	e.payOut(t, fee, 90000)
	e.waitWithdrawal(t, alice.Token, fee, "succeeded")
	if n := sb.AmendTransactions(fee, 90500, ""); n != 1 {
		t.Fatalf("amended %d payouts", n)
	}
	want[fee] = reconcile.AmountDiffers

	to := time.Now().Add(time.Minute)
	rep, err := e.reconciler.Run(ctx, from, to)
	if err != nil {
		t.Fatal(err)
	}
	want.check(t, rep)
	// Payments: the funding, the reversed top-up and the four broken ones
	// (the unpaid top-up and the one before the rails are not compared);
	// payouts: the sound one and the three broken ones.
	if rep.Checked != (reconcile.Checked{Payments: 6, Payouts: 4}) {
		t.Errorf("checked %+v", rep.Checked)
	}
	for _, m := range rep.Mismatches {
		if m.Reference == amended && (m.ProviderAmount != 139000 || m.PaygateAmount != 140000 || m.ProviderID == "") {
			t.Errorf("amount_differs: %+v", m)
		}
	}
	// The periods before and after are clean.
	for _, p := range [][2]time.Time{{from.Add(-24 * time.Hour), from}, {to, to.Add(24 * time.Hour)}} {
		if rep, err := e.reconciler.Run(ctx, p[0], p[1]); err != nil || !rep.OK() {
			t.Errorf("%v: %+v, %v", p, rep.Mismatches, err)
		}
	}

	// The admin endpoint answers the same.
	q := url.Values{"from": {from.Format(time.RFC3339Nano)}, "to": {to.Format(time.RFC3339Nano)}}
	resp := e.Get(t, "/v1/admin/reconciliation?"+q.Encode(), admin.Token)
	if resp.Status != http.StatusOK {
		t.Fatalf("admin reconciliation: %d %s", resp.Status, resp.Body)
	}
	var body reconcile.Report
	resp.JSON(t, &body)
	want.check(t, body)
	if body.Provider != "sandbox" || !body.From.Equal(from) || body.Checked != rep.Checked {
		t.Errorf("report %+v", body)
	}
}

// TestReconciliationEndpointRefusals: users get 403, a bad period 400
// naming the field; without a period the last day is reconciled.
func TestReconciliationEndpointRefusals(t *testing.T) {
	t.Parallel()
	e := startRails(t)
	u, admin := e.NewUser(t), e.Admin(t)
	if r := e.Get(t, "/v1/admin/reconciliation", u.Token); r.Status != http.StatusForbidden || r.Code() != "FORBIDDEN" {
		t.Errorf("a user: %d %s", r.Status, r.Body)
	}
	if r := e.Get(t, "/v1/admin/reconciliation", ""); r.Status != http.StatusUnauthorized {
		t.Errorf("anonymous: %d %s", r.Status, r.Body)
	}
	for query, field := range map[string]string{
		"from=yesterday": "from",
		"to=2025-01-31":  "to",
		"from=2025-01-31T00:00:00Z&to=2025-01-31T00:00:00Z": "to",
		"from=2025-01-31T00:00:00Z&to=2025-01-30T00:00:00Z": "to",
		"from=2025-01-01T00:00:00Z&to=2025-03-01T00:00:00Z": "to",
	} {
		r := e.Get(t, "/v1/admin/reconciliation?"+query, admin.Token)
		if r.Status != http.StatusBadRequest || r.Code() != "VALIDATION_FAILED" || !slices.Equal(r.ProblemFields(), []string{field}) {
			t.Errorf("%s: %d %s", query, r.Status, r.Body)
		}
	}
	r := e.Get(t, "/v1/admin/reconciliation", admin.Token)
	var rep reconcile.Report
	r.JSON(t, &rep)
	if r.Status != http.StatusOK || !rep.OK() || rep.To.Sub(rep.From) != reconcile.DefaultWindow || time.Since(rep.To) > time.Minute {
		t.Errorf("the last day: %d %s", r.Status, r.Body)
	}
	e.Provider.Sandbox.SetFaults(sandbox.Faults{Down: true})
	if r := e.Get(t, "/v1/admin/reconciliation", admin.Token); r.Status != http.StatusServiceUnavailable || r.Code() != "PROVIDER_UNAVAILABLE" {
		t.Errorf("the provider down: %d %s", r.Status, r.Body)
	}
}

// TestScheduledReconciliationFeedsTheGauges: the scheduled run reports
// every kind from the start, and a withdrawal settled by hand shows in
// the unreconciled gauge once its settlement is older than the settling
// delay.
func TestScheduledReconciliationFeedsTheGauges(t *testing.T) {
	t.Parallel()
	e := startRails(t, apptest.WithConfig(func(c *config.Config) {
		c.Provider.ReconcileInterval = 100 * time.Millisecond
		c.Provider.PollAfter, c.Provider.PollInterval = 50*time.Millisecond, 100*time.Millisecond
	}))
	start := time.Now()
	gauges := func() (map[string]float64, float64) {
		fams := scrape(t, e.Env)
		kinds := map[string]float64{}
		if f := fams[observability.Unreconciled]; f != nil {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "kind" {
						kinds[l.GetValue()] = m.GetGauge().GetValue()
					}
				}
			}
		}
		last := 0.0
		if f := fams[observability.ReconciledAt]; f != nil && len(f.GetMetric()) == 1 {
			last = f.GetMetric()[0].GetGauge().GetValue()
		}
		return kinds, last
	}
	providertest.WaitFor(t, "the first scheduled run", func() bool {
		kinds, last := gauges()
		return len(kinds) == len(reconcile.Kinds) && last >= float64(start.Unix()-1)
	})
	u := e.NewUser(t)
	e.Fund(t, u, 500000)
	id := e.withdraw(t, u, 80000)
	if _, err := e.withdrawals.Settle(context.Background(), uuid.MustParse(id), withdraw.Outcome{Succeeded: true}); err != nil {
		t.Fatal(err)
	}
	providertest.WaitFor(t, "the unreconciled withdrawal", func() bool {
		kinds, _ := gauges()
		return kinds[string(reconcile.SettledNotPaidOut)] == 1 && kinds[string(reconcile.PaidNotCredited)] == 0
	})
}

// scrape reads the application's metrics.
func scrape(t *testing.T, e *apptest.Env) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(e.Metrics(t)))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}
