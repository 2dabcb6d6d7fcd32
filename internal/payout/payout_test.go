package payout_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/payout"
	"github.com/paygate/paygate/internal/platform/config"
)

// TestWithdrawalsSettleExactlyOnceThroughTheSimulator requests 50
// withdrawals over HTTP and lets the payout processor pay them out through
// the bank simulator, which refuses a share: each withdrawal settles exactly
// once, refused ones give their money back, and the ledger verifies.
func TestWithdrawalsSettleExactlyOnceThroughTheSimulator(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.WithConfig(func(c *config.Config) { c.Payout.Enabled = true }))
	users := []apptest.User{e.NewUser(t), e.NewUser(t), e.NewUser(t)}
	for i, u := range users {
		if r := e.Post(t, "/v1/topups", u.Token, map[string]any{"amount": 5000000, "method": "mandiri"}, "Idempotency-Key", fmt.Sprint("f", i)); r.Status != 201 {
			t.Fatalf("fund: %d %s", r.Status, r.Body)
		}
	}
	const n = 50
	for i := range n {
		u := users[i%len(users)]
		r := e.Post(t, "/v1/withdrawals", u.Token, map[string]any{"amount": 60000 + i*1000, "bank_code": "MANDIRI",
			"bank_account_number": "9876543210", "bank_account_name": "Payee"}, "Idempotency-Key", fmt.Sprint("w", i))
		if r.Status != 201 {
			t.Fatalf("withdraw %d: %d %s", i, r.Status, r.Body)
		}
	}
	ctx := context.Background()
	deadline := time.Now().Add(90 * time.Second)
	for {
		var settled int
		if err := e.Pool.QueryRow(ctx, "SELECT count(*) FROM withdrawal_settlements").Scan(&settled); err != nil {
			t.Fatal(err)
		}
		if settled == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d withdrawals settled", settled, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var ok, failed, captured, released, active int
	if err := e.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed')
FROM withdrawal_settlements`).Scan(&ok, &failed); err != nil {
		t.Fatal(err)
	}
	if err := e.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'captured'), count(*) FILTER (WHERE status = 'released'),
  count(*) FILTER (WHERE status = 'active') FROM ledger_holds`).Scan(&captured, &released, &active); err != nil {
		t.Fatal(err)
	}
	t.Logf("paid %d, refused %d", ok, failed)
	if ok+failed != n || captured != ok || released != failed || active != 0 {
		t.Fatalf("settlements %d/%d, holds captured %d released %d active %d", ok, failed, captured, released, active)
	}
	if failed == 0 || ok == 0 {
		t.Fatalf("with a 20%% failure ratio, %d paid and %d refused is implausible", ok, failed)
	}
	// Each settlement booked its event exactly once.
	var events int
	if err := e.Pool.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE event_type IN ('paygate.withdrawal.succeeded', 'paygate.withdrawal.failed')").Scan(&events); err != nil {
		t.Fatal(err)
	}
	if events != n {
		t.Fatalf("%d settlement events, want %d", events, n)
	}
	admin := e.Admin(t)
	if v := e.Get(t, "/v1/admin/ledger/verify", admin.Token); v.Map(t)["ok"] != true {
		t.Fatalf("verify: %s", v.Body)
	}
	var wallets, paid int64
	if err := e.Pool.QueryRow(ctx, "SELECT sum(balance) FROM ledger_accounts WHERE kind = 'wallet'").Scan(&wallets); err != nil {
		t.Fatal(err)
	}
	if err := e.Pool.QueryRow(ctx, "SELECT coalesce(sum(w.amount), 0) FROM withdrawals w JOIN withdrawal_settlements s ON s.withdrawal_id = w.id WHERE s.status = 'succeeded'").Scan(&paid); err != nil {
		t.Fatal(err)
	}
	if wallets != 3*5000000-paid {
		t.Fatalf("wallets hold %d, want %d", wallets, 3*5000000-paid)
	}
}

func TestBankSimulatorHonoursTheFailureRatio(t *testing.T) {
	t.Parallel()
	never := payout.BankSimulator{FailureRate: 0}
	always := payout.BankSimulator{FailureRate: 1}
	for range 20 {
		if r, err := never.Pay(context.Background(), payout.Request{}); err != nil || !r.Succeeded {
			t.Fatalf("ratio 0 refused: %+v %v", r, err)
		}
		if r, err := always.Pay(context.Background(), payout.Request{}); err != nil || r.Succeeded {
			t.Fatalf("ratio 1 paid: %+v %v", r, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (payout.BankSimulator{Latency: time.Hour}).Pay(ctx, payout.Request{}); err == nil {
		t.Fatal("a cancelled payout did not return")
	}
}
