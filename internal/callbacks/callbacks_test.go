package callbacks_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/provider/providertest"
	"github.com/paygate/paygate/internal/provider/sandbox"
	"github.com/paygate/paygate/internal/provider/xendit"
	"github.com/paygate/paygate/internal/topup"
)

func count(t *testing.T, e *apptest.Env, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := e.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func balance(t *testing.T, e *apptest.Env, u apptest.User) float64 {
	t.Helper()
	b, _ := e.Get(t, "/v1/saldo", u.Token).Map(t)["balance"].(float64)
	return b
}

// TestEveryMethodGetsTheInstructionsOfItsFamilyAndCreditsWhenPaid creates
// a top-up with each of the 21 methods: each is pending with the
// instructions of its channel's family (a virtual account, a checkout or
// deeplink URL, a retail payment code, hosted checkout for cards and for
// methods without a channel), and one of each family is paid at the
// sandbox and credited by the provider's callback.
func TestEveryMethodGetsTheInstructionsOfItsFamilyAndCreditsWhenPaid(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	u := e.NewUser(t)
	paidOne := map[string]bool{}
	var want float64
	for i, m := range topup.Methods {
		r := e.Post(t, "/v1/topups", u.Token, map[string]any{"amount": 10000 + i, "method": m}, "Idempotency-Key", "m-"+m)
		if r.Status != http.StatusCreated {
			t.Fatalf("%s: %d %s", m, r.Status, r.Body)
		}
		tp := r.Map(t)
		pay, _ := tp["payment"].(map[string]any)
		ch, _ := xendit.ChannelFor(m)
		family := string(ch.Family)
		if tp["status"] != "pending" || pay["family"] != family {
			t.Fatalf("%s: status %v, family %v, want pending %s", m, tp["status"], pay["family"], family)
		}
		var need []string
		switch family {
		case "virtual_account":
			need = []string{"bank_code", "virtual_account_number"}
		case "retail":
			need = []string{"retailer", "payment_code"}
		default:
			need = []string{"checkout_url"}
		}
		for _, k := range need {
			if s, _ := pay[k].(string); s == "" {
				t.Fatalf("%s (%s): no %s in %v", m, family, k, pay)
			}
		}
		for _, k := range []string{"card_number", "pan", "cvv"} {
			if _, ok := pay[k]; ok {
				t.Fatalf("%s: card data %q in the instructions", m, k)
			}
		}
		if paidOne[family] {
			continue
		}
		paidOne[family] = true
		id := tp["id"].(string)
		if _, err := e.Provider.Sandbox.Pay(id, 0, ""); err != nil {
			t.Fatalf("pay %s: %v", m, err)
		}
		e.WaitTopUp(t, u.Token, id, "succeeded")
		want += float64(10000 + i)
	}
	if len(paidOne) != 5 {
		t.Fatalf("families paid: %v, want all five", paidOne)
	}
	if got := balance(t, e, u); got != want {
		t.Fatalf("balance %v, want %v", got, want)
	}
	if n := count(t, e, "SELECT count(*) FROM outbox WHERE event_type = 'paygate.topup.succeeded'"); n != 5 {
		t.Fatalf("%d topup.succeeded events, want 5", n)
	}
	if n := count(t, e, "SELECT count(*) FROM outbox WHERE event_type = 'paygate.topup.pending'"); n != len(topup.Methods) {
		t.Fatalf("%d topup.pending events, want %d", n, len(topup.Methods))
	}
	admin := e.Admin(t)
	if v := e.Get(t, "/v1/admin/ledger/verify", admin.Token); v.Map(t)["ok"] != true {
		t.Fatalf("verify: %s", v.Body)
	}
}

// TestDuplicateCallbacksCreditOnce has the sandbox deliver every callback
// four times: the wallet is credited once, every delivery is in the
// inbox, and one notification has one outcome.
func TestDuplicateCallbacksCreditOnce(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	u := e.NewUser(t)
	id := e.TopUp(t, u, 70000)["id"].(string)
	e.Provider.Sandbox.SetReferenceFaults(id, sandbox.Faults{Callbacks: sandbox.CallbackFaults{Duplicate: 3}})
	if _, err := e.Provider.Sandbox.Pay(id, 0, ""); err != nil {
		t.Fatal(err)
	}
	e.WaitTopUp(t, u.Token, id, "succeeded")
	e.Provider.WaitDelivered(t, id, 4)
	if b := balance(t, e, u); b != 70000 {
		t.Fatalf("balance %v after 4 deliveries, want 70000", b)
	}
	if n := count(t, e, "SELECT count(*) FROM provider_callbacks WHERE reference = $1", id); n < 4 {
		t.Fatalf("inbox holds %d deliveries, want at least 4", n)
	}
	if n := count(t, e, "SELECT count(*) FROM provider_callback_events WHERE reference = $1", id); n != 1 {
		t.Fatalf("%d outcomes for one notification", n)
	}
	if n := count(t, e, "SELECT count(*) FROM topup_settlements WHERE topup_id = $1", id); n != 1 {
		t.Fatalf("%d settlements", n)
	}
	metrics := string(e.Metrics(t))
	if !strings.Contains(metrics, `paygate_callback_received_total{kind="payment",outcome="duplicate",provider="sandbox"`) {
		t.Fatalf("no duplicate outcome counted:\n%s", apptest.Lines(metrics, "paygate_callback"))
	}
}

// TestReorderedCallbacksNeverMoveATerminalStateBack holds a payment's
// callbacks and releases them in reverse order, a late expiry webhook
// first: paygate confirms the expiry with the provider, finds the payment
// made, and credits it once; the capture that arrives next changes
// nothing. A late expiry for a top-up that already succeeded changes
// nothing either.
func TestReorderedCallbacksNeverMoveATerminalStateBack(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	u := e.NewUser(t)
	id := e.TopUp(t, u, 50000)["id"].(string)
	e.Provider.Sandbox.SetReferenceFaults(id, sandbox.Faults{Callbacks: sandbox.CallbackFaults{Hold: true}})
	if _, err := e.Provider.Sandbox.Pay(id, 0, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Provider.Sandbox.Expire(id, true); err != nil {
		t.Fatal(err)
	}
	e.Provider.Sandbox.SetReferenceFaults(id, sandbox.Faults{})
	if n := e.Provider.Sandbox.Release(true); n < 2 {
		t.Fatalf("released %d callbacks, want the capture and the expiry", n)
	}
	e.Provider.WaitDelivered(t, id, 2)
	got := e.WaitTopUp(t, u.Token, id, "succeeded")
	if b := balance(t, e, u); b != 50000 {
		t.Fatalf("balance %v, want 50000 (top-up %v)", b, got)
	}
	// Another late expiry: still succeeded, still credited once.
	if _, err := e.Provider.Sandbox.Expire(id, true); err != nil {
		t.Fatal(err)
	}
	e.Provider.WaitDelivered(t, id, 3)
	if m := e.Get(t, "/v1/topups/"+id, u.Token).Map(t); m["status"] != "succeeded" || balance(t, e, u) != 50000 {
		t.Fatalf("after a late expiry: %v, balance %v", m, balance(t, e, u))
	}
	if n := count(t, e, "SELECT count(*) FROM outbox WHERE event_type = 'paygate.topup.succeeded' AND subject = $1", "topups/"+id); n != 1 {
		t.Fatalf("%d succeeded events", n)
	}
}

// TestDelayedCallbackStillCredits delays the callback past the create's
// answer and the first reads: the top-up stays pending, then succeeds.
func TestDelayedCallbackStillCredits(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	u := e.NewUser(t)
	id := e.TopUp(t, u, 30000)["id"].(string)
	e.Provider.Sandbox.SetReferenceFaults(id, sandbox.Faults{Callbacks: sandbox.CallbackFaults{Delay: sandbox.Duration(700 * time.Millisecond)}})
	if _, err := e.Provider.Sandbox.Pay(id, 0, ""); err != nil {
		t.Fatal(err)
	}
	if m := e.Get(t, "/v1/topups/"+id, u.Token).Map(t); m["status"] != "pending" {
		t.Fatalf("before the delayed callback: %v", m["status"])
	}
	e.WaitTopUp(t, u.Token, id, "succeeded")
}

// TestForgedCallbacksAreRefused posts callbacks with a wrong, missing or
// doubled token, and one to another provider's path: 401 (404 for the
// path), nothing stored, nothing credited, the refusals counted, and the
// token never echoed.
func TestForgedCallbacksAreRefused(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	u := e.NewUser(t)
	id := e.TopUp(t, u, 40000)["id"].(string)
	body := captureBody(id, 40000)
	for name, header := range map[string]http.Header{
		"wrong":   {"X-Callback-Token": {"guess"}},
		"missing": {},
		"prefix":  {"X-Callback-Token": {providertest.CallbackToken[:10]}},
		"doubled": {"X-Callback-Token": {"guess", providertest.CallbackToken}},
	} {
		req, err := http.NewRequest("POST", e.BaseURL+"/v1/callbacks/sandbox/payments", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = header
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(string(b), "CALLBACK_UNAUTHENTICATED") || strings.Contains(string(b), providertest.CallbackToken) {
			t.Fatalf("%s token: %d %s", name, resp.StatusCode, b)
		}
	}
	r := e.Do(t, genuine("/v1/callbacks/xendit/payments", body))
	if r.Status != 404 {
		t.Fatalf("another provider's path: %d %s", r.Status, r.Body)
	}
	if n := count(t, e, "SELECT count(*) FROM provider_callbacks"); n != 0 {
		t.Fatalf("%d forged callbacks stored", n)
	}
	if m := e.Get(t, "/v1/topups/"+id, u.Token).Map(t); m["status"] != "pending" || balance(t, e, u) != 0 {
		t.Fatalf("a forged capture moved the top-up: %v", m)
	}
	if !strings.Contains(string(e.Metrics(t)), `paygate_callback_received_total{kind="payment",outcome="rejected",provider="sandbox"`) {
		t.Fatal("refusals not counted")
	}
	// The genuine token on the same body is accepted and credits.
	r = e.Do(t, genuine("/v1/callbacks/sandbox/payments", body))
	if r.Status != 200 || r.Map(t)["outcome"] != "applied" {
		t.Fatalf("genuine callback: %d %s", r.Status, r.Body)
	}
	if balance(t, e, u) != 40000 {
		t.Fatal("genuine callback did not credit")
	}
}

// TestUnknownReferenceIsKeptAndListedForAdmins posts a genuine callback
// about no top-up of paygate's: 200, kept, counted, listed for admins
// (not for users), and a malformed one is kept and listed too.
func TestUnknownReferenceIsKeptAndListedForAdmins(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	ref := uuid.NewString()
	post := func(body string) *apptest.Response {
		return e.Do(t, genuine("/v1/callbacks/sandbox/payments", body))
	}
	for range 2 {
		if r := post(captureBody(ref, 12345)); r.Status != 200 {
			t.Fatalf("unknown reference: %d %s", r.Status, r.Body)
		}
	}
	if r := post(`{"event":"payment.capture","data":{}}`); r.Status != 400 || r.Code() != "CALLBACK_MALFORMED" {
		t.Fatalf("malformed: %d %s", r.Status, r.Body)
	}
	admin, u := e.Admin(t), e.NewUser(t)
	if r := e.Get(t, "/v1/admin/callbacks?outcome=attention", u.Token); r.Status != 403 {
		t.Fatalf("a user lists callbacks: %d", r.Status)
	}
	var page struct {
		Data []struct {
			Reference  string `json:"reference"`
			Outcome    string `json:"outcome"`
			Deliveries int    `json:"deliveries"`
			Body       string `json:"body"`
		} `json:"data"`
	}
	e.Get(t, "/v1/admin/callbacks?outcome=attention", admin.Token).JSON(t, &page)
	if len(page.Data) != 2 {
		t.Fatalf("attention list: %+v", page.Data)
	}
	var unmatched, malformed bool
	for _, d := range page.Data {
		switch d.Outcome {
		case "unmatched":
			unmatched = d.Reference == ref && d.Deliveries == 2 && strings.Contains(d.Body, ref)
		case "malformed":
			malformed = true
		}
	}
	if !unmatched || !malformed {
		t.Fatalf("attention list: %+v", page.Data)
	}
	if r := e.Get(t, "/v1/admin/callbacks?outcome=bogus", admin.Token); r.Status != 400 {
		t.Fatalf("bad outcome filter: %d", r.Status)
	}
	if !strings.Contains(string(e.Metrics(t)), `outcome="unmatched"`) {
		t.Fatal("unmatched callbacks not counted")
	}
}

// TestAmountMismatchFailsAndCreditsNothing pays a virtual account less
// than asked: the top-up fails with AMOUNT_MISMATCH, nothing is credited,
// the mismatch is listed for admins and paygate.topup.failed is
// published.
func TestAmountMismatchFailsAndCreditsNothing(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	u := e.NewUser(t)
	id := e.TopUp(t, u, 90000)["id"].(string)
	if _, err := e.Provider.Sandbox.Pay(id, 89000, ""); err != nil {
		t.Fatal(err)
	}
	m := e.WaitTopUp(t, u.Token, id, "failed")
	if m["failure_code"] != "AMOUNT_MISMATCH" || !strings.Contains(m["failure_reason"].(string), "89000") {
		t.Fatalf("mismatched top-up: %v", m)
	}
	if b := balance(t, e, u); b != 0 {
		t.Fatalf("a mismatched payment credited %v", b)
	}
	if n := count(t, e, "SELECT count(*) FROM provider_callback_events WHERE reference = $1 AND outcome = 'mismatch'", id); n != 1 {
		t.Fatal("the mismatch is not recorded for admins")
	}
	if n := count(t, e, "SELECT count(*) FROM outbox WHERE event_type = 'paygate.topup.failed' AND subject = $1", "topups/"+id); n != 1 {
		t.Fatal("no topup.failed event")
	}
}

// TestExpiry expires one top-up by the provider's webhook and lets
// another pass its expiry with its callbacks dropped, so that the poller
// ends it: both are expired, credit nothing and publish
// paygate.topup.expired; a payment whose callback was dropped is found by
// the poller and credited.
func TestExpiry(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.WithConfig(func(c *config.Config) {
		c.Provider.TopupExpiry, c.Provider.PollInterval, c.Provider.PollAfter, c.Provider.ExpiryGrace =
			time.Second, 50*time.Millisecond, time.Millisecond, 0
	}))
	u := e.NewUser(t)
	byWebhook := e.TopUp(t, u, 20000)["id"].(string)
	if _, err := e.Provider.Sandbox.Expire(byWebhook, false); err != nil {
		t.Fatal(err)
	}
	e.WaitTopUp(t, u.Token, byWebhook, "expired")

	silent := e.TopUp(t, u, 21000)["id"].(string)
	e.Provider.Sandbox.SetReferenceFaults(silent, sandbox.Faults{Callbacks: sandbox.CallbackFaults{Drop: 100}})
	if m := e.WaitTopUp(t, u.Token, silent, "expired"); m["failure_code"] != "EXPIRED" {
		t.Fatalf("expired top-up: %v", m)
	}
	paidSilently := e.TopUp(t, u, 22000)["id"].(string)
	e.Provider.Sandbox.SetReferenceFaults(paidSilently, sandbox.Faults{Callbacks: sandbox.CallbackFaults{Drop: 100}})
	if _, err := e.Provider.Sandbox.Pay(paidSilently, 0, ""); err != nil {
		t.Fatal(err)
	}
	e.WaitTopUp(t, u.Token, paidSilently, "succeeded")
	if b := balance(t, e, u); b != 22000 {
		t.Fatalf("balance %v, want only the paid one", b)
	}
	if n := count(t, e, "SELECT count(*) FROM outbox WHERE event_type = 'paygate.topup.expired'"); n != 2 {
		t.Fatalf("%d topup.expired events, want 2", n)
	}
	if n := count(t, e, "SELECT count(*) FROM topup_settlements WHERE topup_id = $1 AND source = 'poll'", paidSilently); n != 1 {
		t.Fatal("the silent payment was not settled by the poller")
	}
}

// TestProviderDownOrSlowAtCreate: with the provider down, a top-up is
// refused with 503 and nothing is stored; a create the provider made but
// answered with an error, and one answered after the client's timeout,
// are retried with the same Idempotency-Key and give one top-up and one
// payment at the provider, so the customer is never asked to pay twice.
func TestProviderDownOrSlowAtCreate(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.WithConfig(func(c *config.Config) { c.Provider.Timeout = 300 * time.Millisecond }))
	u := e.NewUser(t)
	body := map[string]any{"amount": 15000, "method": "bni"}

	e.Provider.Sandbox.SetFaults(sandbox.Faults{Down: true})
	r := e.Post(t, "/v1/topups", u.Token, body, "Idempotency-Key", "down")
	if r.Status != 503 || r.Code() != "PROVIDER_UNAVAILABLE" {
		t.Fatalf("provider down: %d %s", r.Status, r.Body)
	}
	if n := count(t, e, "SELECT count(*) FROM topups"); n != 0 {
		t.Fatalf("%d top-ups stored while the provider was down", n)
	}
	e.Provider.Sandbox.SetFaults(sandbox.Faults{})
	first := e.Post(t, "/v1/topups", u.Token, body, "Idempotency-Key", "down")
	if first.Status != 201 {
		t.Fatalf("after the provider came back: %d %s", first.Status, first.Body)
	}
	// A replay needs no provider: with it down again, the stored answer.
	e.Provider.Sandbox.SetFaults(sandbox.Faults{Down: true})
	replay := e.Post(t, "/v1/topups", u.Token, body, "Idempotency-Key", "down")
	if replay.Status != 201 || string(replay.Body) != string(first.Body) || replay.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay while the provider is down: %d %s", replay.Status, replay.Body)
	}
	e.Provider.Sandbox.SetFaults(sandbox.Faults{})

	for name, f := range map[string]sandbox.Faults{
		"error after create": {FailCreates: 10, FailAfterCreate: true},
		"slow":               {CreateDelay: sandbox.Duration(time.Second)},
	} {
		amount := int64(16000 + len(name))
		e.Provider.Sandbox.SetAmountFaults(amount, f)
		key := "k-" + strings.ReplaceAll(name, " ", "-")
		b := map[string]any{"amount": amount, "method": "bri"}
		if r := e.Post(t, "/v1/topups", u.Token, b, "Idempotency-Key", key); r.Status != 503 {
			t.Fatalf("%s: %d %s", name, r.Status, r.Body)
		}
		e.Provider.Sandbox.SetAmountFaults(amount, sandbox.Faults{})
		r := e.Post(t, "/v1/topups", u.Token, b, "Idempotency-Key", key)
		if r.Status != 201 {
			t.Fatalf("%s, retried: %d %s", name, r.Status, r.Body)
		}
		id := r.Map(t)["id"].(string)
		if n := e.Provider.Sandbox.Stats().PaymentsByReference[id]; n != 1 {
			t.Fatalf("%s: the provider holds %d payments for the top-up, want 1", name, n)
		}
		if n := count(t, e, "SELECT count(*) FROM topups WHERE amount = $1", amount); n != 1 {
			t.Fatalf("%s: %d top-ups", name, n)
		}
	}
}

// TestConcurrentDeliveriesOfOneNotificationApplyOnce posts one genuine
// capture twenty times at once, delivering again what the admission limit
// refuses: one outcome applied, the rest duplicates, one credit.
func TestConcurrentDeliveriesOfOneNotificationApplyOnce(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	u := e.NewUser(t)
	id := e.TopUp(t, u, 33000)["id"].(string)
	body := captureBody(id, 33000)
	var wg sync.WaitGroup
	outcomes := make(chan string, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Like the provider, deliver again what the admission limit
			// refused.
			r := e.Do(t, genuine("/v1/callbacks/sandbox/payments", body))
			for try := 0; r.Status == 503 && r.Code() == "CALLBACK_NOT_PROCESSED" && try < 100; try++ {
				time.Sleep(10 * time.Millisecond)
				r = e.Do(t, genuine("/v1/callbacks/sandbox/payments", body))
			}
			if r.Status != 200 {
				outcomes <- fmt.Sprint(r.Status)
				return
			}
			outcomes <- r.Map(t)["outcome"].(string)
		}()
	}
	wg.Wait()
	close(outcomes)
	got := map[string]int{}
	for o := range outcomes {
		got[o]++
	}
	if got["applied"] != 1 || got["applied"]+got["duplicate"] != 20 {
		t.Fatalf("outcomes: %v", got)
	}
	if b := balance(t, e, u); b != 33000 {
		t.Fatalf("balance %v", b)
	}
}

// genuine is a callback request carrying the sandbox's token.
func genuine(path, body string) apptest.Request {
	return apptest.Request{Method: "POST", Path: path, Body: []byte(body),
		Header: map[string]string{"Content-Type": "application/json", "X-Callback-Token": providertest.CallbackToken}}
}

// captureBody is a genuine-looking payment.capture webhook for the
// payment request of reference, paid in full.
func captureBody(reference string, amount int64) string {
	return fmt.Sprintf(`{"event":"payment.capture","business_id":"b","created":"2026-12-01T10:12:30.500Z",
"data":{"payment_id":"py-%[1]s","business_id":"b","status":"SUCCEEDED","payment_request_id":"pr-%[1]s",
"request_amount":%[2]d,"channel_code":"BCA_VIRTUAL_ACCOUNT","country":"ID","currency":"IDR","reference_id":"%[1]s",
"type":"PAY","captures":[{"capture_id":"py-%[1]s","capture_amount":%[2]d,"capture_timestamp":"2026-12-01T10:12:30.000Z"}],
"created":"2026-12-01T10:12:30.000Z","updated":"2026-12-01T10:12:30.000Z"}}`, reference, amount)
}

// TestConcurrentCreatesWithOneKeyMakeOnePayment sends one top-up request
// ten times at once under one Idempotency-Key: every answer is the one
// top-up (or 409 while it is being recorded), and the provider holds one
// payment for it.
func TestConcurrentCreatesWithOneKeyMakeOnePayment(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	u := e.NewUser(t)
	var wg sync.WaitGroup
	ids := make(chan string, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.Post(t, "/v1/topups", u.Token, map[string]any{"amount": 25000, "method": "mandiri"}, "Idempotency-Key", "same")
			switch r.Status {
			case 201:
				ids <- r.Map(t)["id"].(string)
			case 409:
				if r.Code() != "IDEMPOTENCY_IN_PROGRESS" {
					t.Errorf("409 %s", r.Body)
				}
			default:
				t.Errorf("%d %s", r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	close(ids)
	var id string
	for got := range ids {
		if id != "" && got != id {
			t.Fatalf("two top-ups for one key: %s and %s", id, got)
		}
		id = got
	}
	if id == "" {
		t.Fatal("no request got the top-up")
	}
	if st := e.Provider.Sandbox.Stats(); st.PaymentsByReference[id] != 1 || st.Payments != 1 {
		t.Fatalf("provider payments: %d for the top-up, %d in all", st.PaymentsByReference[id], st.Payments)
	}
	if n := count(t, e, "SELECT count(*) FROM topups"); n != 1 {
		t.Fatalf("%d top-ups", n)
	}
}

// TestACallbackOvertakingItsTopUpIsDeliveredAgain: paygate asks the
// provider for the payment before it commits the top-up, so a callback can
// arrive first. One about a top-up whose intent exists but whose record
// does not yet is answered 503 (not processed), nothing is kept as
// unmatched, and once the record exists the redelivery credits it.
func TestACallbackOvertakingItsTopUpIsDeliveredAgain(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	u := e.NewUser(t)
	id := uuid.New()
	if _, err := e.Pool.Exec(context.Background(), `INSERT INTO topup_intents (owner_id, idem_key, fingerprint, topup_id, expires_at)
VALUES ($1, 'k', 'f', $2, now() + interval '1 hour')`, u.ID, id); err != nil {
		t.Fatal(err)
	}
	r := e.Do(t, genuine("/v1/callbacks/sandbox/payments", captureBody(id.String(), 10000)))
	if r.Status != 503 || r.Code() != "CALLBACK_NOT_PROCESSED" {
		t.Fatalf("a callback ahead of its top-up: %d %s", r.Status, r.Body)
	}
	if n := count(t, e, "SELECT count(*) FROM provider_callback_events"); n != 0 {
		t.Fatalf("%d outcomes recorded for a callback that was not processed", n)
	}
	if n := count(t, e, "SELECT count(*) FROM provider_callbacks"); n != 1 {
		t.Fatalf("the inbox holds %d deliveries, want the one", n)
	}
	if !strings.Contains(string(e.Metrics(t)), `outcome="in_flight"`) {
		t.Fatal("the early callback was not counted")
	}
}

// TestCallbacksOverTheAdmissionLimitAreRefusedAtOnce holds the one
// callback a four-connection pool admits (its notification's lock is
// taken by the test) and delivers another: that one is answered 503 with
// a Retry-After at once, nothing of it is stored, and it is counted
// busy, while a forged one is still refused as forged. Once the first is
// done, the second is processed when delivered again.
func TestCallbacksOverTheAdmissionLimitAreRefusedAtOnce(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.WithConfig(func(c *config.Config) { c.Database.MaxConns = 4 }))
	u := e.NewUser(t)
	first := e.TopUp(t, u, 11000)["id"].(string)
	second := e.TopUp(t, u, 12000)["id"].(string)
	ctx := context.Background()
	tx, err := e.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('paygate.callback/sandbox/payment.capture:py-' || $1, 0))`, first); err != nil {
		t.Fatal(err)
	}
	held := make(chan *apptest.Response, 1)
	go func() { held <- e.Do(t, genuine("/v1/callbacks/sandbox/payments", captureBody(first, 11000))) }()
	providertest.WaitFor(t, "the first callback to wait for its lock", func() bool {
		return count(t, e, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`) == 1
	})
	stored := count(t, e, `SELECT count(*) FROM provider_callbacks`)
	start := time.Now()
	r := e.Do(t, genuine("/v1/callbacks/sandbox/payments", captureBody(second, 12000)))
	if r.Status != 503 || r.Header.Get("Retry-After") != "1" || r.Code() != "CALLBACK_NOT_PROCESSED" {
		t.Fatalf("over the limit: %d %s Retry-After=%q", r.Status, r.Body, r.Header.Get("Retry-After"))
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("the refusal waited %v: it must not queue", took)
	}
	if n := count(t, e, `SELECT count(*) FROM provider_callbacks`); n != stored {
		t.Fatalf("a refused callback was stored: %d rows, %d before", n, stored)
	}
	// Only an authenticated callback competes for a place: a forged one is
	// refused as forged, full or not.
	forged := genuine("/v1/callbacks/sandbox/payments", captureBody(second, 12000))
	forged.Header["X-Callback-Token"] = "not-the-token"
	if r := e.Do(t, forged); r.Status != 401 || r.Code() != "CALLBACK_UNAUTHENTICATED" {
		t.Fatalf("a forged callback while the limit is full: %d %s", r.Status, r.Body)
	}
	if got := apptest.Lines(string(e.Metrics(t)), `outcome="busy"`); !strings.HasPrefix(got, "paygate_callback_received_total{") || !strings.HasSuffix(got, " 1") {
		t.Fatalf("busy callbacks counted %q, want one series at 1", got)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-held; r.Status != 200 {
		t.Fatalf("the admitted callback: %d %s", r.Status, r.Body)
	}
	if r := e.Do(t, genuine("/v1/callbacks/sandbox/payments", captureBody(second, 12000))); r.Status != 200 || r.Map(t)["outcome"] != "applied" {
		t.Fatalf("delivered again: %d %s", r.Status, r.Body)
	}
	if b := balance(t, e, u); b != 23000 {
		t.Fatalf("balance %v, want both top-ups", b)
	}
}
