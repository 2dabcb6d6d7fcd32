package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paygate/paygate/internal/provider"
	"github.com/paygate/paygate/internal/provider/providertest"
	"github.com/paygate/paygate/internal/provider/sandbox"
	"github.com/paygate/paygate/internal/provider/xendit"
)

const (
	secret = "xnd_development_sandbox_secret"
	token  = "sandbox-callback-token"
)

// receiver is paygate's callback endpoint, as far as the sandbox sees it:
// it verifies every callback with the xendit verifier.
type receiver struct {
	mu       sync.Mutex
	events   []provider.Event
	paths    []string
	at       []time.Time
	rejected int
	failNext int // answer this many deliveries with 500
	srv      *httptest.Server

	hold        time.Duration // how long each delivery takes to answer
	inFlight    atomic.Int32
	maxInFlight atomic.Int32
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	v := xendit.NewVerifier(token)
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := rc.inFlight.Add(1)
		defer rc.inFlight.Add(-1)
		for m := rc.maxInFlight.Load(); n > m && !rc.maxInFlight.CompareAndSwap(m, n); m = rc.maxInFlight.Load() {
		}
		time.Sleep(rc.hold)
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if rc.failNext > 0 {
			rc.failNext--
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		ev, err := v.Verify(r.Header, body)
		if errors.Is(err, provider.ErrBadSignature) {
			rc.rejected++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if err != nil {
			t.Errorf("callback %s: %v", body, err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		rc.events = append(rc.events, ev)
		rc.paths = append(rc.paths, r.URL.Path)
		rc.at = append(rc.at, time.Now())
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// eventsFor returns the events received for reference.
func (rc *receiver) eventsFor(reference string) []provider.Event {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []provider.Event
	for _, ev := range rc.events {
		if ev.Payment != nil && ev.Payment.Reference == reference || ev.Payout != nil && ev.Payout.Reference == reference {
			out = append(out, ev)
		}
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	providertest.WaitFor(t, what, cond)
}

type env struct {
	sb  *sandbox.Server
	cl  *xendit.Client
	rc  *receiver
	url string
}

func start(t *testing.T, mod ...func(*sandbox.Options)) env {
	t.Helper()
	rc := newReceiver(t)
	pe := providertest.Start(t, append([]func(*sandbox.Options){func(o *sandbox.Options) {
		o.SecretKey, o.CallbackToken, o.CallbackBaseURL = secret, token, rc.srv.URL
	}}, mod...)...)
	return env{sb: pe.Sandbox, cl: pe.Client, rc: rc, url: pe.URL}
}

// expiresAt is fixed: a retried create must send the same body.
var expiresAt = time.Now().Add(time.Hour).Truncate(time.Millisecond)

func topUp(ref, method string) provider.PaymentRequest {
	return provider.PaymentRequest{Reference: ref, Amount: 150000, Currency: "IDR", Method: method,
		ExpiresAt: expiresAt, CustomerName: "Budi Santoso"}
}

func withdrawal(ref string) provider.PayoutRequest {
	return provider.PayoutRequest{Reference: ref, Amount: 100000, Currency: "IDR", BankCode: "BCA",
		AccountNumber: "1234567890", AccountHolderName: "Budi Santoso", Description: "withdrawal"}
}

func TestEveryFamilyPaysEndToEnd(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	for _, c := range xendit.Channels {
		t.Run(c.Method, func(t *testing.T) {
			ref := "tu-" + c.Method
			p, err := e.cl.CreatePayment(ctx, topUp(ref, c.Method))
			if err != nil {
				t.Fatal(err)
			}
			in := p.Instructions
			if p.Status != provider.PaymentPending || in.Family != c.Family {
				t.Fatalf("payment %+v", p)
			}
			switch c.Family {
			case provider.FamilyVirtualAccount:
				if in.VirtualAccountNumber == "" || in.BankCode == "" {
					t.Errorf("no virtual account: %+v", in)
				}
			case provider.FamilyRetail:
				if in.PaymentCode == "" || in.Retailer == "" {
					t.Errorf("no payment code: %+v", in)
				}
			default:
				if in.CheckoutURL == "" {
					t.Errorf("no checkout URL: %+v", in)
				}
			}
			if _, err := e.sb.Pay(ref, 0, ""); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the payment callback", func() bool { return len(e.rc.eventsFor(ref)) == 1 })
			ev := e.rc.eventsFor(ref)[0]
			if ev.Payment.Status != provider.PaymentSucceeded || ev.Payment.ID != p.ID ||
				ev.Payment.PaidAmount != 150000 || ev.Payment.PaidCurrency != "IDR" {
				t.Errorf("event %+v", ev.Payment)
			}
			got, err := e.cl.GetPayment(ctx, p.ID)
			if err != nil || got.Status != provider.PaymentSucceeded || got.PaidAmount != 150000 {
				t.Errorf("GetPayment %+v, %v", got, err)
			}
		})
	}
	if e.rc.rejected != 0 {
		t.Errorf("%d callbacks failed verification", e.rc.rejected)
	}
}

func TestMismatchedAmountAndCurrency(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	if _, err := e.cl.CreatePayment(ctx, topUp("tu-short", "bri")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cl.CreatePayment(ctx, topUp("tu-usd", "mandiri")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sb.Pay("tu-short", 149000, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sb.Pay("tu-usd", 0, "USD"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both callbacks", func() bool { return len(e.rc.eventsFor("tu-short"))+len(e.rc.eventsFor("tu-usd")) == 2 })
	if p := e.rc.eventsFor("tu-short")[0].Payment; p.PaidAmount != 149000 || p.Amount != 150000 {
		t.Errorf("short payment %+v", p)
	}
	if p := e.rc.eventsFor("tu-usd")[0].Payment; p.PaidCurrency != "USD" {
		t.Errorf("USD payment %+v", p)
	}
	if _, err := e.cl.CreatePayment(ctx, topUp("tu-card", "visa")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sb.Pay("tu-card", 1, ""); !errors.Is(err, sandbox.ErrMismatchOnSession) {
		t.Errorf("err %v, want ErrMismatchOnSession", err)
	}
}

func TestIdempotentCreates(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	a, err := e.cl.CreatePayment(ctx, topUp("tu-idem", "bca"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.cl.CreatePayment(ctx, topUp("tu-idem", "bca"))
	if err != nil || b.ID != a.ID || b.Instructions != a.Instructions {
		t.Fatalf("second create %+v (%v), want %+v", b, err, a)
	}
	other := topUp("tu-idem", "bca")
	other.Amount++
	if _, err := e.cl.CreatePayment(ctx, other); !errors.Is(err, provider.ErrRejected) {
		t.Errorf("another body under the same key: %v, want ErrRejected", err)
	}
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.cl.CreatePayout(ctx, withdrawal("wd-race")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	st := e.sb.Stats()
	if st.Creates["tu-idem"] != 3 || st.PaymentsByReference["tu-idem"] != 1 {
		t.Errorf("payment stats %+v", st)
	}
	if st.Creates["wd-race"] != 5 || st.PayoutsByReference["wd-race"] != 1 {
		t.Errorf("payout stats: %d creates, %d payouts; want 5 and 1", st.Creates["wd-race"], st.PayoutsByReference["wd-race"])
	}
}

func TestFailedCreateIsRetriedUnderTheSameKey(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	e.sb.SetReferenceFaults("wd-flaky", sandbox.Faults{FailCreates: 1, FailStatus: 502, FailAfterCreate: true})
	p, err := e.cl.CreatePayout(ctx, withdrawal("wd-flaky"))
	if err != nil {
		t.Fatal(err)
	}
	st := e.sb.Stats()
	if st.Creates["wd-flaky"] != 2 || st.PayoutsByReference["wd-flaky"] != 1 {
		t.Errorf("%d creates, %d payouts; want 2 and 1", st.Creates["wd-flaky"], st.PayoutsByReference["wd-flaky"])
	}
	waitFor(t, "the payout callback", func() bool { return len(e.rc.eventsFor("wd-flaky")) == 1 })
	if ev := e.rc.eventsFor("wd-flaky")[0]; ev.Payout.ID != p.ID || ev.Payout.Status != provider.PayoutSucceeded {
		t.Errorf("event %+v", ev.Payout)
	}

	e.sb.SetFaults(sandbox.Faults{FailCreates: 5})
	if _, err := e.cl.CreatePayment(ctx, topUp("tu-down", "bni")); !errors.Is(err, provider.ErrUnavailable) {
		t.Errorf("err %v, want ErrUnavailable", err)
	}
	if n := e.sb.Stats().PaymentsByReference["tu-down"]; n != 0 {
		t.Errorf("%d payments created by failed creates", n)
	}
	e.sb.SetFaults(sandbox.Faults{Down: true})
	if _, err := e.cl.GetPayout(ctx, p.ID); !errors.Is(err, provider.ErrUnavailable) {
		t.Errorf("a read from a provider that is down: %v, want ErrUnavailable", err)
	}
	e.sb.SetFaults(sandbox.Faults{})
	if got, err := e.cl.GetPayout(ctx, p.ID); err != nil || got.ID != p.ID {
		t.Errorf("a read once up again: %+v, %v", got, err)
	}
}

func TestSlowCreateTimesOutAndTheRetryFindsIt(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	e.sb.SetReferenceFaults("wd-slow", sandbox.Faults{CreateDelay: sandbox.Duration(300 * time.Millisecond)})
	impatient, err := xendit.New(xendit.Options{BaseURL: e.url, SecretKey: secret, Timeout: 50 * time.Millisecond, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := impatient.CreatePayout(ctx, withdrawal("wd-slow")); !errors.Is(err, provider.ErrUnavailable) {
		t.Fatalf("err %v, want ErrUnavailable", err)
	}
	waitFor(t, "the slow create", func() bool { return e.sb.Stats().PayoutsByReference["wd-slow"] == 1 })
	e.sb.SetReferenceFaults("wd-slow", sandbox.Faults{})
	if _, err := e.cl.CreatePayout(ctx, withdrawal("wd-slow")); err != nil {
		t.Fatal(err)
	}
	if n := e.sb.Stats().PayoutsByReference["wd-slow"]; n != 1 {
		t.Errorf("%d payouts, want 1", n)
	}
}

func TestPayoutFailsWithItsCode(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	e.sb.SetReferenceFaults("wd-bad", sandbox.Faults{PayoutFailureCode: "INVALID_DESTINATION"})
	p, err := e.cl.CreatePayout(ctx, withdrawal("wd-bad"))
	if err != nil || p.Status != provider.PayoutAccepted {
		t.Fatalf("payout %+v, %v", p, err)
	}
	waitFor(t, "the payout callback", func() bool { return len(e.rc.eventsFor("wd-bad")) == 1 })
	ev := e.rc.eventsFor("wd-bad")[0]
	if ev.Payout.Status != provider.PayoutFailed || ev.Payout.FailureCode != "INVALID_DESTINATION" || ev.ID != "payout.failed:"+p.ID {
		t.Errorf("event %+v", ev)
	}
	got, err := e.cl.GetPayout(ctx, p.ID)
	if err != nil || got.Status != provider.PayoutFailed || got.FailureCode != "INVALID_DESTINATION" {
		t.Errorf("GetPayout %+v, %v", got, err)
	}
	if _, err := e.cl.GetPayout(ctx, "disb-unknown"); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("unknown payout: %v", err)
	}
}

func TestCallbacksDuplicatedDroppedDelayedRetried(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	pay := func(ref string) {
		t.Helper()
		if _, err := e.cl.CreatePayment(ctx, topUp(ref, "bca")); err != nil {
			t.Fatal(err)
		}
		if _, err := e.sb.Pay(ref, 0, ""); err != nil {
			t.Fatal(err)
		}
	}
	e.sb.SetReferenceFaults("tu-dup", sandbox.Faults{Callbacks: sandbox.CallbackFaults{Duplicate: 2}})
	pay("tu-dup")
	waitFor(t, "three copies", func() bool { return len(e.rc.eventsFor("tu-dup")) == 3 })
	evs := e.rc.eventsFor("tu-dup")
	if evs[0].ID != evs[1].ID || evs[1].ID != evs[2].ID {
		t.Errorf("copies with different ids: %q %q %q", evs[0].ID, evs[1].ID, evs[2].ID)
	}

	e.sb.SetReferenceFaults("tu-drop", sandbox.Faults{Callbacks: sandbox.CallbackFaults{Drop: 1}})
	pay("tu-drop")
	e.sb.SetReferenceFaults("tu-delay", sandbox.Faults{Callbacks: sandbox.CallbackFaults{Delay: sandbox.Duration(200 * time.Millisecond)}})
	paidAt := time.Now()
	pay("tu-delay")
	waitFor(t, "the delayed callback", func() bool { return len(e.rc.eventsFor("tu-delay")) == 1 })
	e.rc.mu.Lock()
	late := e.rc.at[len(e.rc.at)-1].Sub(paidAt)
	e.rc.mu.Unlock()
	if late < 200*time.Millisecond {
		t.Errorf("delayed callback came after %v", late)
	}
	if n := len(e.rc.eventsFor("tu-drop")); n != 0 {
		t.Errorf("dropped callback delivered %d times", n)
	}
	dropped := 0
	for _, d := range e.sb.Deliveries() {
		if d.Reference == "tu-drop" && d.Status == sandbox.DeliveryDropped {
			dropped++
		}
	}
	if dropped != 1 {
		t.Errorf("%d dropped deliveries listed, want 1", dropped)
	}

	e.rc.mu.Lock()
	e.rc.failNext = 2
	e.rc.mu.Unlock()
	pay("tu-retry")
	// The sandbox records the attempt after the receiver's answer: wait
	// for the record, not only for the receiver.
	waitFor(t, "the retried callback", func() bool {
		for _, d := range e.sb.Deliveries() {
			if d.Reference == "tu-retry" && d.Status != sandbox.DeliveryPending {
				return len(e.rc.eventsFor("tu-retry")) == 1
			}
		}
		return false
	})
	for _, d := range e.sb.Deliveries() {
		if d.Reference == "tu-retry" && (d.Attempts != 3 || d.Status != sandbox.DeliveryDelivered) {
			t.Errorf("delivery %+v, want delivered at the third attempt", d)
		}
	}
}

func TestHeldCallbacksReleasedInReverse(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	e.sb.SetFaults(sandbox.Faults{Callbacks: sandbox.CallbackFaults{Hold: true}})
	p, err := e.cl.CreatePayment(ctx, topUp("tu-race", "alfamart"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.sb.Pay(p.ID, 0, ""); err != nil {
		t.Fatal(err)
	}
	// The expiry loses the race with the payment, and its webhook comes late.
	if _, err := e.sb.Expire(p.ID, false); !errors.Is(err, sandbox.ErrNotPending) {
		t.Fatalf("expire a paid payment: %v", err)
	}
	if _, err := e.sb.Expire(p.ID, true); err != nil {
		t.Fatal(err)
	}
	if n := e.sb.Release(true); n != 2 {
		t.Fatalf("released %d, want 2", n)
	}
	waitFor(t, "both callbacks", func() bool { return len(e.rc.eventsFor("tu-race")) == 2 })
	evs := e.rc.eventsFor("tu-race")
	if evs[0].Payment.Status != provider.PaymentExpired || evs[1].Payment.Status != provider.PaymentSucceeded {
		t.Errorf("order %s, %s; want expired, then succeeded", evs[0].Payment.Status, evs[1].Payment.Status)
	}
	if got, _ := e.cl.GetPayment(ctx, p.ID); got.Status != provider.PaymentSucceeded {
		t.Errorf("a late expiry changed the payment: %+v", got)
	}
}

func TestExpiry(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	r := topUp("tu-exp", "indomart")
	r.ExpiresAt = time.Now().Add(100 * time.Millisecond)
	p, err := e.cl.CreatePayment(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the expiry callback", func() bool { return len(e.rc.eventsFor("tu-exp")) == 1 })
	if ev := e.rc.eventsFor("tu-exp")[0]; ev.Payment.Status != provider.PaymentExpired || ev.Payment.ID != p.ID {
		t.Errorf("event %+v", ev.Payment)
	}
	if _, err := e.sb.Pay("tu-exp", 0, ""); !errors.Is(err, sandbox.ErrNotPending) {
		t.Errorf("paying an expired payment: %v", err)
	}
	if _, err := e.cl.CreatePayment(ctx, topUp("tu-exp2", "paypal")); err != nil {
		t.Fatal(err)
	}
	if _, err := (sandbox.AdminClient{BaseURL: e.url}).Expire(ctx, "tu-exp2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the session expiry", func() bool { return len(e.rc.eventsFor("tu-exp2")) == 1 })
	if ev := e.rc.eventsFor("tu-exp2")[0]; ev.Payment.Status != provider.PaymentExpired {
		t.Errorf("event %+v", ev.Payment)
	}
}

func TestListSettledAndAdminClient(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	from := time.Now().Add(-time.Minute)
	admin := sandbox.AdminClient{BaseURL: e.url}
	for _, ref := range []string{"tu-s1", "tu-s2", "tu-s3"} {
		if _, err := e.cl.CreatePayment(ctx, topUp(ref, "bri")); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Pay(ctx, ref, 0, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.cl.CreatePayout(ctx, withdrawal("wd-s")); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Pay(ctx, "tu-nope", 0, ""); err == nil {
		t.Error("paying an unknown payment worked")
	}
	waitFor(t, "the payout", func() bool { return len(e.rc.eventsFor("wd-s")) == 1 })
	got, err := e.cl.ListSettled(ctx, from, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]provider.TransactionKind{}
	for _, tx := range got {
		kinds[tx.Reference] = tx.Kind
	}
	if len(got) != 4 || kinds["tu-s1"] != provider.TransactionPayment || kinds["wd-s"] != provider.TransactionPayout {
		t.Errorf("settled %+v", got)
	}
	if got, _ := e.cl.ListSettled(ctx, time.Now().Add(time.Hour), time.Now().Add(2*time.Hour)); len(got) != 0 {
		t.Errorf("settled in the future: %+v", got)
	}
	st, err := admin.Stats(ctx)
	if err != nil || st.PayoutsByReference["wd-s"] != 1 || st.Callbacks[sandbox.DeliveryDelivered] != 4 {
		t.Errorf("stats %+v, %v", st, err)
	}
}

func TestWrongKeyIsRejected(t *testing.T) {
	e := start(t)
	bad, err := xendit.New(xendit.Options{BaseURL: e.url, SecretKey: "xnd_wrong"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.CreatePayout(context.Background(), withdrawal("wd-key")); !errors.Is(err, provider.ErrRejected) {
		t.Errorf("err %v, want ErrRejected", err)
	}
	if n := e.sb.Stats().Creates["wd-key"]; n != 0 {
		t.Errorf("an unauthenticated create was counted %d times", n)
	}
}

func TestAutoPay(t *testing.T) {
	e := start(t, func(o *sandbox.Options) { o.AutoPay, o.AutoPayDelay = true, 20*time.Millisecond })
	if _, err := e.cl.CreatePayment(context.Background(), topUp("tu-auto", "ovo")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the auto-payment", func() bool { return len(e.rc.eventsFor("tu-auto")) == 1 })
	if ev := e.rc.eventsFor("tu-auto")[0]; ev.Payment.Status != provider.PaymentSucceeded {
		t.Errorf("event %+v", ev.Payment)
	}
}

// TestDeliveriesInFlightAreBounded pays twenty payments at once against a
// receiver that takes 30 ms per callback: never more than MaxInFlight
// callbacks are in flight, and every one arrives.
func TestDeliveriesInFlightAreBounded(t *testing.T) {
	e := start(t, func(o *sandbox.Options) { o.AutoPay, o.AutoPayDelay, o.MaxInFlight = true, 10*time.Millisecond, 3 })
	e.rc.hold = 30 * time.Millisecond
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if _, err := e.cl.CreatePayment(context.Background(), topUp(fmt.Sprintf("tu-bound-%d", i), "ovo")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	waitFor(t, "every auto-payment's callback", func() bool {
		e.rc.mu.Lock()
		defer e.rc.mu.Unlock()
		return len(e.rc.events) == 20
	})
	if m := e.rc.maxInFlight.Load(); m > 3 || m < 2 {
		t.Fatalf("%d callbacks were in flight at once, want at most 3 (and more than one)", m)
	}
}

func TestStateSurvivesARestart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sandbox.json")
	e := start(t, func(o *sandbox.Options) { o.StateFile = file })
	ctx := context.Background()
	p, err := e.cl.CreatePayment(ctx, topUp("tu-keep", "bca"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.sb.Close(); err != nil {
		t.Fatal(err)
	}
	again := start(t, func(o *sandbox.Options) { o.StateFile = file })
	got, err := again.cl.GetPayment(ctx, p.ID)
	if err != nil || got.Instructions.VirtualAccountNumber != p.Instructions.VirtualAccountNumber {
		t.Fatalf("after restart %+v, %v", got, err)
	}
	same, err := again.cl.CreatePayment(ctx, topUp("tu-keep", "bca"))
	if err != nil || same.ID != p.ID {
		t.Errorf("the idempotency key was forgotten: %+v, %v", same, err)
	}
}

func TestAmountFaultsAndALateCallbackURL(t *testing.T) {
	e := start(t, func(o *sandbox.Options) { o.CallbackBaseURL = "" })
	ctx := context.Background()
	admin := sandbox.AdminClient{BaseURL: e.url}
	if err := admin.SetAmountFaults(ctx, 13013, sandbox.Faults{PayoutFailureCode: "INSUFFICIENT_BALANCE"}); err != nil {
		t.Fatal(err)
	}
	e.sb.SetAmountFaults(7007, sandbox.Faults{FailCreates: 10, FailStatus: 500})
	e.sb.SetCallbackBaseURL(e.rc.srv.URL + "/")

	w := withdrawal("wd-magic")
	w.Amount = 13013
	if _, err := e.cl.CreatePayout(ctx, w); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the payout callback", func() bool { return len(e.rc.eventsFor("wd-magic")) == 1 })
	if p := e.rc.eventsFor("wd-magic")[0].Payout; p.Status != provider.PayoutFailed || p.FailureCode != "INSUFFICIENT_BALANCE" {
		t.Errorf("payout %+v", p)
	}
	r := topUp("tu-magic", "bca")
	r.Amount = 7007
	if _, err := e.cl.CreatePayment(ctx, r); !errors.Is(err, provider.ErrUnavailable) {
		t.Errorf("err %v, want ErrUnavailable", err)
	}
	if _, err := e.cl.CreatePayout(ctx, withdrawal("wd-plain")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the other payout", func() bool { return len(e.rc.eventsFor("wd-plain")) == 1 })
	if p := e.rc.eventsFor("wd-plain")[0].Payout; p.Status != provider.PayoutSucceeded {
		t.Errorf("another amount's payout %+v", p)
	}
}

// TestDroppedAndAmendedTransactions: the settled transactions of a
// reference can be dropped or amended, through the Go API and the admin
// API, and the transactions list shows the change; the payments
// themselves keep their state.
func TestDroppedAndAmendedTransactions(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	from := time.Now().Add(-time.Minute)
	admin := sandbox.AdminClient{BaseURL: e.url}
	for _, ref := range []string{"tu-keep", "tu-drop", "tu-amend"} {
		if _, err := e.cl.CreatePayment(ctx, topUp(ref, "bri")); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Pay(ctx, ref, 0, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.cl.CreatePayout(ctx, withdrawal("wd-amend")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the payout", func() bool { return len(e.rc.eventsFor("wd-amend")) == 1 })

	if n := e.sb.DropTransactions("tu-drop"); n != 1 {
		t.Errorf("dropped %d transactions, want 1", n)
	}
	if n, err := admin.DropTransactions(ctx, "tu-nothing"); err != nil || n != 0 {
		t.Errorf("dropping an unknown reference: %d, %v", n, err)
	}
	if n, err := admin.AmendTransactions(ctx, "tu-amend", 140000, ""); err != nil || n != 1 {
		t.Errorf("amend: %d, %v", n, err)
	}
	if n := e.sb.AmendTransactions("wd-amend", 99000, "USD"); n != 1 {
		t.Errorf("amended %d payouts, want 1", n)
	}
	if _, err := admin.AmendTransactions(ctx, "tu-keep", 0, ""); err == nil {
		t.Error("amending to no amount was accepted")
	}
	got, err := e.cl.ListSettled(ctx, from, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	byRef := map[string]provider.SettledTransaction{}
	for _, tx := range got {
		byRef[tx.Reference] = tx
	}
	if len(got) != 3 || byRef["tu-keep"].Amount != 150000 || byRef["tu-amend"].Amount != 140000 ||
		byRef["tu-amend"].Currency != "IDR" || byRef["wd-amend"].Amount != 99000 || byRef["wd-amend"].Currency != "USD" {
		t.Errorf("settled %+v", got)
	}
	if _, ok := byRef["tu-drop"]; ok {
		t.Error("the dropped transaction is still listed")
	}
	if v, err := e.sb.Payment("tu-drop"); err != nil || v.Status != xendit.PRStatusSucceeded {
		t.Errorf("the payment of a dropped transaction: %+v, %v", v, err)
	}
}
