package withdraw_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"go.uber.org/fx"

	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/withdraw"
)

type saldo struct{ Balance, Available, Held int64 }

func saldoOf(t *testing.T, e *apptest.Env, u apptest.User) saldo {
	t.Helper()
	var s saldo
	e.Get(t, "/v1/saldo", u.Token).JSON(t, &s)
	return s
}

func start(t *testing.T) (*apptest.Env, *withdraw.Service) {
	t.Helper()
	var svc *withdraw.Service
	e := apptest.Start(t, apptest.WithFx(fx.Populate(&svc)))
	return e, svc
}

func request(t *testing.T, e *apptest.Env, u apptest.User, amount int64, key string) *apptest.Response {
	t.Helper()
	return e.Post(t, "/v1/withdrawals", u.Token, map[string]any{"amount": amount, "bank_code": "bca",
		"bank_account_number": "1234567890", "bank_account_name": "Ada Lovelace"}, "Idempotency-Key", key)
}

func TestWithdrawalHoldsThenSettlesExactlyOnce(t *testing.T) {
	t.Parallel()
	e, svc := start(t)
	u := e.NewUser(t)
	e.Fund(t, u, 500000)
	r := request(t, e, u, 200000, "w1")
	if r.Status != 201 {
		t.Fatalf("withdraw: %d %s", r.Status, r.Body)
	}
	m := r.Map(t)
	if m["status"] != "pending" || m["amount"] != float64(200000) || m["bank_account_number"] != "******7890" || m["bank_code"] != "BCA" {
		t.Fatalf("withdrawal body %s", r.Body)
	}
	if s := saldoOf(t, e, u); s != (saldo{Balance: 500000, Available: 300000, Held: 200000}) {
		t.Fatalf("saldo with a pending withdrawal: %+v", s)
	}
	// Held money cannot be spent twice.
	if r := request(t, e, u, 300001, "w2"); r.Status != 422 || r.Code() != "INSUFFICIENT_FUNDS" {
		t.Fatalf("overdrawing withdrawal: %d %s", r.Status, r.Body)
	}
	id := uuid.MustParse(m["id"].(string))

	// Concurrent settles: exactly one wins.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = svc.Settle(context.Background(), id, withdraw.Outcome{Succeeded: true, ProviderReference: "sim-1"})
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, withdraw.ErrAlreadySettled):
			t.Fatalf("settle: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d settles succeeded, want 1", won)
	}
	if s := saldoOf(t, e, u); s != (saldo{Balance: 300000, Available: 300000, Held: 0}) {
		t.Fatalf("saldo after payout: %+v", s)
	}
	if r := e.Get(t, "/v1/withdrawals/"+id.String(), u.Token); r.Map(t)["status"] != "succeeded" {
		t.Fatalf("withdrawal after payout: %s", r.Body)
	}
	// A later failure report changes nothing.
	if _, err := svc.Settle(context.Background(), id, withdraw.Outcome{Succeeded: false}); !errors.Is(err, withdraw.ErrAlreadySettled) {
		t.Fatalf("late failure: %v", err)
	}
	if s := saldoOf(t, e, u); s.Balance != 300000 {
		t.Fatalf("saldo moved after a repeated settle: %+v", s)
	}
}

func TestFailedWithdrawalReleasesTheHold(t *testing.T) {
	t.Parallel()
	e, svc := start(t)
	u := e.NewUser(t)
	e.Fund(t, u, 100000)
	id := uuid.MustParse(request(t, e, u, 100000, "w1").Map(t)["id"].(string))
	if s := saldoOf(t, e, u); s.Available != 0 {
		t.Fatalf("available with everything held: %+v", s)
	}
	w, err := svc.Settle(context.Background(), id, withdraw.Outcome{Succeeded: false, Reason: "account closed"})
	if err != nil || w.Status != "failed" {
		t.Fatalf("settle failed: %+v %v", w, err)
	}
	if s := saldoOf(t, e, u); s != (saldo{Balance: 100000, Available: 100000}) {
		t.Fatalf("saldo after a failed payout: %+v", s)
	}
	r := e.Get(t, "/v1/withdrawals/"+id.String(), u.Token)
	if m := r.Map(t); m["status"] != "failed" || m["failure_reason"] != "account closed" {
		t.Fatalf("failed withdrawal: %s", r.Body)
	}
	var events int
	if err := e.Pool.QueryRow(context.Background(), "SELECT count(*) FROM outbox WHERE event_type IN ('paygate.withdrawal.requested', 'paygate.withdrawal.failed')").Scan(&events); err != nil {
		t.Fatal(err)
	}
	if events != 2 {
		t.Fatalf("withdrawal events = %d, want requested + failed", events)
	}
	var payload string
	if err := e.Pool.QueryRow(context.Background(), "SELECT payload::text FROM outbox WHERE event_type = 'paygate.withdrawal.requested'").Scan(&payload); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(payload, "1234567890") {
		t.Fatalf("the full bank account number is in the event: %s", payload)
	}
	admin := e.Admin(t)
	if v := e.Get(t, "/v1/admin/ledger/verify", admin.Token); v.Map(t)["ok"] != true {
		t.Fatalf("verify: %s", v.Body)
	}
}

func TestWithdrawalValidationAndVisibility(t *testing.T) {
	t.Parallel()
	e, _ := start(t)
	u, other := e.NewUser(t), e.NewUser(t)
	e.Fund(t, u, 100000)
	for i, body := range []map[string]any{
		{"amount": 60000, "bank_code": "b", "bank_account_number": "1234567890", "bank_account_name": "A"},
		{"amount": 60000, "bank_code": "BCA", "bank_account_number": "12ab", "bank_account_name": "A"},
		{"amount": 60000, "bank_code": "BCA", "bank_account_number": "1234567890", "bank_account_name": ""},
		{"amount": -1, "bank_code": "BCA", "bank_account_number": "1234567890", "bank_account_name": "A"},
	} {
		if r := e.Post(t, "/v1/withdrawals", u.Token, body, "Idempotency-Key", string(rune('a'+i))); r.Status != 400 {
			t.Fatalf("invalid withdrawal %v: %d %s", body, r.Status, r.Body)
		}
	}
	if r := request(t, e, u, 49999, "min"); r.Status != 422 || r.Code() != "AMOUNT_OUT_OF_RANGE" {
		t.Fatalf("below minimum: %d %s", r.Status, r.Body)
	}
	id := request(t, e, u, 60000, "ok").Map(t)["id"].(string)
	if r := e.Get(t, "/v1/withdrawals/"+id, other.Token); r.Status != 404 {
		t.Fatalf("another user reads the withdrawal: %d", r.Status)
	}
	var page struct{ Data []map[string]any }
	e.Get(t, "/v1/withdrawals", u.Token).JSON(t, &page)
	if len(page.Data) != 1 || page.Data[0]["status"] != "pending" {
		t.Fatalf("list: %v", page.Data)
	}
	// Deactivation waits for the pending withdrawal's money.
	admin := e.Admin(t)
	if r := e.Do(t, apptest.Request{Method: "DELETE", Path: "/v1/users/" + u.ID, Token: admin.Token}); r.Status != 409 {
		t.Fatalf("deactivating a user with held money: %d", r.Status)
	}
}
