package topup_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/paygate/paygate/internal/apptest"
)

func topup(t *testing.T, e *apptest.Env, token string, body any, key string) *apptest.Response {
	t.Helper()
	h := []string{}
	if key != "" {
		h = append(h, "Idempotency-Key", key)
	}
	return e.Post(t, "/v1/topups", token, body, h...)
}

func saldo(t *testing.T, e *apptest.Env, token string) map[string]any {
	t.Helper()
	r := e.Get(t, "/v1/saldo", token)
	if r.Status != 200 {
		t.Fatalf("saldo: %d %s", r.Status, r.Body)
	}
	return r.Map(t)
}

func count(t *testing.T, e *apptest.Env, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := e.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTopUpCreditsTheWalletOnce creates a top-up, which is pending with
// payment instructions and credits nothing, replays its key, then lets
// the customer pay at the sandbox: the provider's callback credits the
// wallet once.
func TestTopUpCreditsTheWalletOnce(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	u := e.NewUser(t)
	if s := saldo(t, e, u.Token); s["balance"] != float64(0) || s["account_number"] != u.AccountNumber || s["currency"] != "IDR" {
		t.Fatalf("new wallet: %v", s)
	}
	key := uuid.NewString()
	r := topup(t, e, u.Token, map[string]any{"amount": 150000, "method": "OVO"}, key)
	if r.Status != http.StatusCreated {
		t.Fatalf("top-up: %d %s", r.Status, r.Body)
	}
	m := r.Map(t)
	for k, want := range map[string]any{"amount": float64(150000), "currency": "IDR", "method": "ovo", "status": "pending", "settled_at": nil} {
		if m[k] != want {
			t.Errorf("%s = %v, want %v", k, m[k], want)
		}
	}
	if m["id"] == nil || m["created_at"] == nil || m["expires_at"] == nil {
		t.Fatalf("top-up body %s", r.Body)
	}
	if pay, _ := m["payment"].(map[string]any); pay["family"] != "ewallet" || pay["channel"] != "OVO" || pay["checkout_url"] == nil {
		t.Fatalf("OVO payment instructions: %v", m["payment"])
	}
	if s := saldo(t, e, u.Token); s["balance"] != float64(0) {
		t.Fatalf("a pending top-up credited the wallet: %v", s)
	}

	// The same key and body: the first response again, no second credit.
	again := topup(t, e, u.Token, map[string]any{"method": "OVO", "amount": 150000}, key)
	if again.Status != http.StatusCreated || string(again.Body) != string(r.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %s", again.Status, again.Body)
	}
	// The same key, another body: refused.
	if r := topup(t, e, u.Token, map[string]any{"amount": 999999, "method": "ovo"}, key); r.Status != 422 || r.Code() != "IDEMPOTENCY_KEY_REUSED" {
		t.Fatalf("reused key: %d %s", r.Status, r.Body)
	}
	if n := e.Provider.Sandbox.Stats().PaymentsByReference[m["id"].(string)]; n != 1 {
		t.Fatalf("the provider holds %d payments for the top-up, want 1", n)
	}
	if _, err := e.Provider.Sandbox.Pay(m["id"].(string), 0, ""); err != nil {
		t.Fatal(err)
	}
	paid := e.WaitTopUp(t, u.Token, m["id"].(string), "succeeded")
	if paid["settled_at"] == nil {
		t.Fatalf("succeeded top-up without settled_at: %v", paid)
	}
	if s := saldo(t, e, u.Token); s["balance"] != float64(150000) || s["available"] != float64(150000) || s["held"] != float64(0) {
		t.Fatalf("saldo after one top-up and retries: %v", s)
	}
	if n := count(t, e, "SELECT count(*) FROM outbox WHERE event_type = 'paygate.topup.succeeded'"); n != 1 {
		t.Fatalf("topup.succeeded events = %d, want 1", n)
	}

	// The statement shows the entry with the balance after it.
	st := e.Get(t, "/v1/saldo/statement", u.Token)
	var page struct {
		Data []struct {
			ID           string `json:"id"`
			Amount       int64  `json:"amount"`
			BalanceAfter int64  `json:"balance_after"`
			Kind         string `json:"kind"`
		} `json:"data"`
		NextCursor *string `json:"next_cursor"`
	}
	st.JSON(t, &page)
	if len(page.Data) != 1 || page.Data[0].Amount != 150000 || page.Data[0].BalanceAfter != 150000 || page.Data[0].Kind != "topup" || page.NextCursor != nil {
		t.Fatalf("statement: %s", st.Body)
	}
	// The entry id is an opaque UUID, the same on every read.
	if _, err := uuid.Parse(page.Data[0].ID); err != nil {
		t.Fatalf("statement entry id %q is not a UUID: %v", page.Data[0].ID, err)
	}
	firstID := page.Data[0].ID
	e.Get(t, "/v1/saldo/statement", u.Token).JSON(t, &page)
	if page.Data[0].ID != firstID {
		t.Fatalf("statement entry id changed between reads: %s then %s", firstID, page.Data[0].ID)
	}
}

func TestTopUpRejectsBadInputAndWritesNothing(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	u := e.NewUser(t)
	cases := []struct {
		name   string
		body   any
		key    string
		status int
		code   string
	}{
		{"no key", map[string]any{"amount": 20000, "method": "ovo"}, "", 400, "IDEMPOTENCY_KEY_REQUIRED"},
		{"key of 256", map[string]any{"amount": 20000, "method": "ovo"}, strings.Repeat("k", 256), 400, "IDEMPOTENCY_KEY_INVALID"},
		{"zero", map[string]any{"amount": 0, "method": "ovo"}, "k1", 400, "VALIDATION_FAILED"},
		{"negative", map[string]any{"amount": -5000, "method": "ovo"}, "k2", 400, "VALIDATION_FAILED"},
		{"fraction", `{"amount": 100.5, "method": "ovo"}`, "k3", 400, "VALIDATION_FAILED"},
		{"beyond int64", `{"amount": 92233720368547758070, "method": "ovo"}`, "k4", 400, "VALIDATION_FAILED"},
		{"amount as string", `{"amount": "20000", "method": "ovo"}`, "k5", 400, "VALIDATION_FAILED"},
		{"unknown method", map[string]any{"amount": 20000, "method": "bitcoin"}, "k6", 400, "VALIDATION_FAILED"},
		{"below minimum", map[string]any{"amount": 9999, "method": "ovo"}, "k7", 422, "AMOUNT_OUT_OF_RANGE"},
		{"above maximum", map[string]any{"amount": 50000001, "method": "ovo"}, "k8", 422, "AMOUNT_OUT_OF_RANGE"},
		{"balance field", map[string]any{"amount": 20000, "method": "ovo", "user_id": uuid.NewString()}, "k9", 400, "VALIDATION_FAILED"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := topup(t, e, u.Token, c.body, c.key)
			if r.Status != c.status || r.Code() != c.code {
				t.Fatalf("got %d %s, want %d %s", r.Status, r.Body, c.status, c.code)
			}
		})
	}
	if n := count(t, e, "SELECT count(*) FROM topups"); n != 0 {
		t.Fatalf("%d top-ups written", n)
	}
	if n := count(t, e, "SELECT count(*) FROM idempotency_keys"); n != 0 {
		t.Fatalf("%d idempotency keys stored for requests refused before running", n)
	}
	// All 21 methods, any case.
	for i, m := range []string{"alfamart", "INDOMART", "Lawson", "dana", "ovo", "gopay", "linkaja", "jenius", "fastpay", "kudo",
		"bri", "mandiri", "bca", "bni", "bukopin", "E-Banking", "visa", "mastercard", "discover", "American Express", "paypal"} {
		if r := topup(t, e, u.Token, map[string]any{"amount": 10000, "method": m}, fmt.Sprint("m", i)); r.Status != 201 {
			t.Fatalf("method %q: %d %s", m, r.Status, r.Body)
		}
	}
	// A key of exactly 255 characters is accepted, and replays.
	long := strings.Repeat("k", 255)
	body := map[string]any{"amount": 10000, "method": "ovo"}
	first, again := topup(t, e, u.Token, body, long), topup(t, e, u.Token, body, long)
	if first.Status != 201 || again.Status != 201 || again.Header.Get("Idempotent-Replayed") != "true" || string(first.Body) != string(again.Body) {
		t.Fatalf("255-character key: %d %s, then %d %s", first.Status, first.Body, again.Status, again.Body)
	}
}

func TestTopUpsAreVisibleToTheirOwnerAndAdminsOnly(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	alice, bob := e.NewUser(t), e.NewUser(t)
	id := e.Fund(t, alice, 20000)
	e.TopUp(t, bob, 30000)

	if r := e.Get(t, "/v1/topups/"+id, bob.Token); r.Status != 404 {
		t.Fatalf("bob reads alice's top-up: %d", r.Status)
	}
	var page struct{ Data []map[string]any }
	e.Get(t, "/v1/topups", bob.Token).JSON(t, &page)
	if len(page.Data) != 1 || page.Data[0]["amount"] != float64(30000) {
		t.Fatalf("bob's list: %v", page.Data)
	}
	admin := e.Admin(t)
	e.Get(t, "/v1/topups", admin.Token).JSON(t, &page)
	if len(page.Data) != 2 {
		t.Fatalf("admin's list has %d top-ups, want 2", len(page.Data))
	}
	if r := e.Get(t, "/v1/topups/"+id, admin.Token); r.Status != 200 {
		t.Fatalf("admin get: %d", r.Status)
	}
	if r := e.Get(t, "/v1/users/"+alice.ID+"/saldo", bob.Token); r.Status != 404 {
		t.Fatalf("bob reads alice's saldo: %d", r.Status)
	}
	if r := e.Get(t, "/v1/users/"+alice.ID+"/saldo", admin.Token); r.Status != 200 || r.Map(t)["balance"] != float64(20000) {
		t.Fatalf("admin reads alice's saldo: %d %s", r.Status, r.Body)
	}
	if r := e.Get(t, "/v1/saldos", bob.Token); r.Status != 403 {
		t.Fatalf("bob lists saldos: %d", r.Status)
	}
}

func TestReversal(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	admin := e.Admin(t)
	u := e.NewUser(t)
	pending := topup(t, e, u.Token, map[string]any{"amount": 40000, "method": "bca"}, "t0").Map(t)["id"].(string)
	if r := e.Post(t, "/v1/topups/"+pending+"/reversal", admin.Token, nil, "Idempotency-Key", "rp"); r.Status != 422 || r.Code() != "TOPUP_NOT_SUCCEEDED" {
		t.Fatalf("reversal of a pending top-up: %d %s", r.Status, r.Body)
	}
	id := e.Fund(t, u, 40000)
	path := "/v1/topups/" + id + "/reversal"

	if r := e.Post(t, path, u.Token, map[string]string{"reason": "mine"}, "Idempotency-Key", "r0"); r.Status != 403 || r.Code() != "FORBIDDEN" {
		t.Fatalf("user reverses own top-up: %d %s", r.Status, r.Body)
	}
	r := e.Post(t, path, admin.Token, map[string]string{"reason": "chargeback"}, "Idempotency-Key", "r1")
	if r.Status != 200 || r.Map(t)["status"] != "reversed" {
		t.Fatalf("reversal: %d %s", r.Status, r.Body)
	}
	if s := saldo(t, e, u.Token); s["balance"] != float64(0) {
		t.Fatalf("saldo after reversal: %v", s)
	}
	if r := e.Post(t, path, admin.Token, map[string]string{"reason": "again"}, "Idempotency-Key", "r2"); r.Status != 409 {
		t.Fatalf("second reversal: %d %s", r.Status, r.Body)
	}
	if r := e.Get(t, "/v1/topups/"+id, u.Token); r.Map(t)["status"] != "reversed" {
		t.Fatalf("top-up after reversal: %s", r.Body)
	}

	// A reversal that would overdraw the wallet is refused.
	id2 := e.Fund(t, u, 60000)
	other := e.NewUser(t)
	if r := e.Post(t, "/v1/transfers", u.Token, map[string]any{"to": other.Email, "amount": 50000}, "Idempotency-Key", "x1"); r.Status != 201 {
		t.Fatalf("transfer: %d %s", r.Status, r.Body)
	}
	if r := e.Post(t, "/v1/topups/"+id2+"/reversal", admin.Token, nil, "Idempotency-Key", "r3"); r.Status != 422 || r.Code() != "INSUFFICIENT_FUNDS" {
		t.Fatalf("overdrawing reversal: %d %s", r.Status, r.Body)
	}
	if s := saldo(t, e, u.Token); s["balance"] != float64(10000) {
		t.Fatalf("saldo after refused reversal: %v", s)
	}
	// Money records cannot be changed behind the API's back either.
	if _, err := e.Pool.Exec(context.Background(), "UPDATE topups SET amount = 1 WHERE id = $1", id2); err == nil {
		t.Fatal("a top-up record was updated")
	}
	if _, err := e.Pool.Exec(context.Background(), "DELETE FROM topups WHERE id = $1", id2); err == nil {
		t.Fatal("a top-up record was deleted")
	}
}
