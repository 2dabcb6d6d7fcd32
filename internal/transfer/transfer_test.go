package transfer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/paygate/paygate/internal/apptest"
)

func fund(t *testing.T, e *apptest.Env, u apptest.User, amount int64) {
	t.Helper()
	e.Fund(t, u, amount)
}

func transfer(t *testing.T, e *apptest.Env, from apptest.User, to string, amount int64, key string) *apptest.Response {
	t.Helper()
	return e.Post(t, "/v1/transfers", from.Token, map[string]any{"to": to, "amount": amount, "note": "rent"}, "Idempotency-Key", key)
}

func balance(t *testing.T, e *apptest.Env, u apptest.User) int64 {
	t.Helper()
	var s struct{ Balance int64 }
	e.Get(t, "/v1/saldo", u.Token).JSON(t, &s)
	return s.Balance
}

func count(t *testing.T, e *apptest.Env, sql string) int {
	t.Helper()
	var n int
	if err := e.Pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTransferByEveryKindOfRecipient(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	alice, bob := e.NewUser(t), e.NewUser(t)
	fund(t, e, alice, 300000)
	for i, to := range []string{bob.AccountNumber, bob.Email, bob.ID} {
		r := transfer(t, e, alice, to, 50000, fmt.Sprint("k", i))
		if r.Status != 201 {
			t.Fatalf("to %s: %d %s", to, r.Status, r.Body)
		}
		m := r.Map(t)
		if m["from_account_number"] != alice.AccountNumber || m["to_account_number"] != bob.AccountNumber ||
			m["amount"] != float64(50000) || m["currency"] != "IDR" || m["status"] != "succeeded" {
			t.Fatalf("transfer body %s", r.Body)
		}
	}
	if a, b := balance(t, e, alice), balance(t, e, bob); a != 150000 || b != 150000 {
		t.Fatalf("balances %d/%d, want 150000/150000", a, b)
	}
	// One event per transfer, telling sender and recipient apart, each
	// with their own balance.
	var payload []byte
	if err := e.Pool.QueryRow(context.Background(), "SELECT payload FROM outbox WHERE event_type = 'paygate.transfer.succeeded' ORDER BY id DESC LIMIT 1").Scan(&payload); err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Sender, Recipient struct {
			UserID       string `json:"user_id"`
			BalanceAfter int64  `json:"balance_after"`
		}
	}
	_ = json.Unmarshal(payload, &ev)
	if ev.Sender.UserID != alice.ID || ev.Sender.BalanceAfter != 150000 || ev.Recipient.UserID != bob.ID || ev.Recipient.BalanceAfter != 150000 {
		t.Fatalf("event payload %s", payload)
	}
	if n := count(t, e, "SELECT count(*) FROM outbox WHERE event_type = 'paygate.transfer.succeeded'"); n != 3 {
		t.Fatalf("%d transfer events, want 3", n)
	}

	// Both see the transfer, from their side.
	var page struct{ Data []map[string]any }
	e.Get(t, "/v1/transfers", bob.Token).JSON(t, &page)
	if len(page.Data) != 3 || page.Data[0]["direction"] != "received" {
		t.Fatalf("bob's transfers: %v", page.Data)
	}
	e.Get(t, "/v1/transfers", alice.Token).JSON(t, &page)
	if len(page.Data) != 3 || page.Data[0]["direction"] != "sent" {
		t.Fatalf("alice's transfers: %v", page.Data)
	}
	id := page.Data[0]["id"].(string)
	carol := e.NewUser(t)
	if r := e.Get(t, "/v1/transfers/"+id, carol.Token); r.Status != 404 {
		t.Fatalf("a third party reads the transfer: %d", r.Status)
	}
	e.Get(t, "/v1/transfers", carol.Token).JSON(t, &page)
	if len(page.Data) != 0 {
		t.Fatalf("a third party lists %d transfers", len(page.Data))
	}
}

func TestRefusedTransfersWriteNothing(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	alice, bob := e.NewUser(t), e.NewUser(t)
	fund(t, e, alice, 100000)
	before := count(t, e, "SELECT count(*) FROM outbox")
	cases := []struct {
		name, to string
		amount   int64
		status   int
		code     string
	}{
		{"insufficient funds", bob.Email, 100001, 422, "INSUFFICIENT_FUNDS"},
		{"to oneself", alice.AccountNumber, 20000, 422, "SELF_TRANSFER"},
		{"to oneself by email", alice.Email, 20000, 422, "SELF_TRANSFER"},
		{"unknown recipient", "nobody@example.com", 20000, 422, "RECIPIENT_NOT_FOUND"},
		{"bad check digit", bob.AccountNumber[:15] + string('0'+(bob.AccountNumber[15]-'0'+1)%10), 20000, 400, "VALIDATION_FAILED"},
		{"below minimum", bob.Email, 9999, 422, "AMOUNT_OUT_OF_RANGE"},
		{"zero", bob.Email, 0, 400, "VALIDATION_FAILED"},
		{"negative", bob.Email, -20000, 400, "VALIDATION_FAILED"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := transfer(t, e, alice, c.to, c.amount, fmt.Sprint("r", i))
			if r.Status != c.status || r.Code() != c.code {
				t.Fatalf("got %d %s, want %d %s", r.Status, r.Body, c.status, c.code)
			}
		})
	}
	if n := count(t, e, "SELECT count(*) FROM transfers"); n != 0 {
		t.Fatalf("%d transfers written", n)
	}
	if a, b := balance(t, e, alice), balance(t, e, bob); a != 100000 || b != 0 {
		t.Fatalf("balances moved: %d/%d", a, b)
	}
	if n := count(t, e, "SELECT count(*) FROM outbox"); n != before {
		t.Fatalf("refused transfers enqueued %d events", n-before)
	}
	if n := count(t, e, "SELECT count(*) FROM ledger_transactions WHERE kind = 'transfer'"); n != 0 {
		t.Fatalf("%d ledger transactions for refused transfers", n)
	}
	// The insufficient-funds refusal is the key's stored answer: a retry
	// gets it again even after the wallet was topped up.
	fund(t, e, alice, 200000)
	if r := transfer(t, e, alice, bob.Email, 100001, "r0"); r.Status != 422 || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry of a refused transfer: %d %s", r.Status, r.Body)
	}
}

func TestTransferReversalAndDeactivationGuard(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	admin := e.Admin(t)
	alice, bob := e.NewUser(t), e.NewUser(t)
	fund(t, e, alice, 100000)
	id := transfer(t, e, alice, bob.Email, 60000, "t1").Map(t)["id"].(string)

	// Bob holds money: he cannot be deactivated.
	if r := e.Do(t, apptest.Request{Method: "DELETE", Path: "/v1/users/" + bob.ID, Token: admin.Token}); r.Status != 409 || r.Code() != "USER_HOLDS_MONEY" {
		t.Fatalf("deactivating a user with money: %d %s", r.Status, r.Body)
	}
	// Neither party may reverse it: 403 whatever the id, and nothing moves.
	for _, u := range []apptest.User{alice, bob} {
		for _, path := range []string{"/v1/transfers/" + id + "/reversal", "/v1/transfers/" + uuid.NewString() + "/reversal"} {
			if r := e.Post(t, path, u.Token, nil, "Idempotency-Key", "nrv"); r.Status != 403 || r.Code() != "FORBIDDEN" {
				t.Fatalf("non-admin reversal %s: %d %s", path, r.Status, r.Body)
			}
		}
	}
	if a, b := balance(t, e, alice), balance(t, e, bob); a != 40000 || b != 60000 {
		t.Fatalf("balances after refused reversals %d/%d", a, b)
	}
	r := e.Post(t, "/v1/transfers/"+id+"/reversal", admin.Token, map[string]string{"reason": "fraud"}, "Idempotency-Key", "rv1")
	if r.Status != 200 || r.Map(t)["status"] != "reversed" {
		t.Fatalf("reversal: %d %s", r.Status, r.Body)
	}
	if a, b := balance(t, e, alice), balance(t, e, bob); a != 100000 || b != 0 {
		t.Fatalf("balances after reversal %d/%d", a, b)
	}
	if r := e.Post(t, "/v1/transfers/"+id+"/reversal", admin.Token, nil, "Idempotency-Key", "rv2"); r.Status != 409 {
		t.Fatalf("second reversal: %d %s", r.Status, r.Body)
	}
	// Empty again: deactivation goes through, and money can no longer
	// reach the deactivated user.
	if r := e.Do(t, apptest.Request{Method: "DELETE", Path: "/v1/users/" + bob.ID, Token: admin.Token}); r.Status != 204 {
		t.Fatalf("deactivating an empty user: %d %s", r.Status, r.Body)
	}
	if r := transfer(t, e, alice, bob.Email, 20000, "t2"); r.Status != 422 || r.Code() != "RECIPIENT_NOT_FOUND" {
		t.Fatalf("transfer to a deactivated user: %d %s", r.Status, r.Body)
	}
	v := e.Get(t, "/v1/admin/ledger/verify", admin.Token)
	if v.Status != 200 || v.Map(t)["ok"] != true {
		t.Fatalf("verify: %d %s", v.Status, v.Body)
	}
	if r := e.Get(t, "/v1/admin/ledger/verify", alice.Token); r.Status != 403 || r.Code() != "FORBIDDEN" {
		t.Fatalf("non-admin verify: %d %s", r.Status, r.Body)
	}
}

// TestReversalToADeactivatedSenderIsRefused empties the sender's wallet
// into the recipient's, deactivates the sender, and tries to reverse: the
// reversal would credit a deactivated wallet, so it is refused with 422
// SENDER_INACTIVE and nothing moves.
func TestReversalToADeactivatedSenderIsRefused(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	admin := e.Admin(t)
	alice, bob := e.NewUser(t), e.NewUser(t)
	fund(t, e, alice, 100000)
	id := transfer(t, e, alice, bob.Email, 100000, "all").Map(t)["id"].(string)
	if r := e.Do(t, apptest.Request{Method: "DELETE", Path: "/v1/users/" + alice.ID, Token: admin.Token}); r.Status != 204 {
		t.Fatalf("deactivating the emptied sender: %d %s", r.Status, r.Body)
	}
	r := e.Post(t, "/v1/transfers/"+id+"/reversal", admin.Token, map[string]string{"reason": "dispute"}, "Idempotency-Key", "rv")
	if r.Status != 422 || r.Code() != "SENDER_INACTIVE" {
		t.Fatalf("reversal to a deactivated sender: %d %s", r.Status, r.Body)
	}
	if b := balance(t, e, bob); b != 100000 {
		t.Fatalf("recipient's balance after the refused reversal: %d", b)
	}
	if n := count(t, e, "SELECT count(*) FROM transfer_reversals"); n != 0 {
		t.Fatalf("%d reversals recorded", n)
	}
	var held int64
	if err := e.Pool.QueryRow(context.Background(), `SELECT coalesce(sum(a.balance), 0) FROM ledger_accounts a
JOIN users u ON u.id = a.owner_user_id WHERE NOT u.active`).Scan(&held); err != nil || held != 0 {
		t.Fatalf("deactivated wallets hold %d (%v)", held, err)
	}
}
