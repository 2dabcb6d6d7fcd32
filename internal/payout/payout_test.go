package payout_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/provider/sandbox"
	"github.com/paygate/paygate/internal/withdraw"
)

// TestWithdrawalsSettleExactlyOnceThroughTheProvider requests 50
// withdrawals over HTTP and lets the payout processor pay them out through
// the sandbox provider, which is told to fail the payouts of every fifth
// amount: each withdrawal settles exactly once, as the provider's payout
// callback says; exactly the failed ones give their money back; the
// provider made exactly one payout per withdrawal; and the ledger
// verifies.
func TestWithdrawalsSettleExactlyOnceThroughTheProvider(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.WithConfig(func(c *config.Config) { c.Payout.Enabled = true }))
	users := []apptest.User{e.NewUser(t), e.NewUser(t), e.NewUser(t)}
	for _, u := range users {
		e.Fund(t, u, 5000000)
	}
	const n = 50
	amount := func(i int) int64 { return int64(60000 + i*1000) }
	failing := map[int64]bool{}
	for i := 0; i < n; i += 5 {
		failing[amount(i)] = true
		e.Provider.Sandbox.SetAmountFaults(amount(i), sandbox.Faults{PayoutFailureCode: "INVALID_DESTINATION"})
	}
	ids := map[string]int64{}
	for i := range n {
		u := users[i%len(users)]
		r := e.Post(t, "/v1/withdrawals", u.Token, map[string]any{"amount": amount(i), "bank_code": "MANDIRI",
			"bank_account_number": "9876543210", "bank_account_name": "Payee"}, "Idempotency-Key", fmt.Sprint("w", i))
		if r.Status != 201 {
			t.Fatalf("withdraw %d: %d %s", i, r.Status, r.Body)
		}
		ids[r.Map(t)["id"].(string)] = amount(i)
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
	// Exactly the withdrawals whose payout the provider failed are failed,
	// with the provider's failure code.
	rows, err := e.Pool.Query(ctx, `SELECT w.id::text, w.amount, s.status, s.reason_code
FROM withdrawals w JOIN withdrawal_settlements s ON s.withdrawal_id = w.id`)
	if err != nil {
		t.Fatal(err)
	}
	ok, failed := 0, 0
	for rows.Next() {
		var id, status, code string
		var amt int64
		if err := rows.Scan(&id, &amt, &status, &code); err != nil {
			t.Fatal(err)
		}
		switch {
		case failing[amt] && status == withdraw.StatusFailed && code == "INVALID_DESTINATION":
			failed++
		case !failing[amt] && status == withdraw.StatusSucceeded:
			ok++
		default:
			t.Errorf("withdrawal %s of %d settled %s (%q)", id, amt, status, code)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if ok+failed != n || failed != len(failing) {
		t.Fatalf("paid %d, failed %d; want %d failed of %d", ok, failed, len(failing), n)
	}
	var captured, released, active int
	if err := e.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'captured'), count(*) FILTER (WHERE status = 'released'),
  count(*) FILTER (WHERE status = 'active') FROM ledger_holds`).Scan(&captured, &released, &active); err != nil {
		t.Fatal(err)
	}
	if captured != ok || released != failed || active != 0 {
		t.Fatalf("holds captured %d released %d active %d, want %d, %d and 0", captured, released, active, ok, failed)
	}
	// Each settlement booked its event exactly once.
	var events int
	if err := e.Pool.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE event_type IN ('paygate.withdrawal.succeeded', 'paygate.withdrawal.failed')").Scan(&events); err != nil {
		t.Fatal(err)
	}
	if events != n {
		t.Fatalf("%d settlement events, want %d", events, n)
	}
	// The provider made one payout per withdrawal, under its id.
	byRef := e.Provider.Sandbox.Stats().PayoutsByReference
	if len(byRef) != n {
		t.Fatalf("payouts for %d references, want %d: %v", len(byRef), n, byRef)
	}
	for id := range ids {
		if byRef[id] != 1 {
			t.Fatalf("withdrawal %s was paid out %d times: %v", id, byRef[id], byRef)
		}
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
