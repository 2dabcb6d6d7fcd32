package xendit_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paygate/paygate/internal/provider"
	"github.com/paygate/paygate/internal/provider/xendit"
)

const testKey = "xnd_development_testkey_0123456789"

// fixture reads testdata/name.
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameJSON reports whether a and b hold the same JSON value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("not JSON: %v: %s", err, a)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return reflect.DeepEqual(x, y)
}

// exchange is one request the fake Xendit expects, and its answer.
type exchange struct {
	method, path string
	query        map[string][]string // checked when set
	key          string              // expected idempotency key; "" for none
	apiVersion   bool                // the Payments API v3 version header
	request      string              // fixture of the expected body; "" for none
	status       int
	response     string // fixture of the answer
}

// fakeXendit serves the exchanges in order and fails the test on any
// request that differs from the next expected one.
type fakeXendit struct {
	t    *testing.T
	mu   sync.Mutex
	next []exchange
	srv  *httptest.Server
}

func newFake(t *testing.T, ex ...exchange) *fakeXendit {
	f := &fakeXendit{t: t, next: ex}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.next) > 0 {
			t.Errorf("%d expected requests never came, next %s %s", len(f.next), f.next[0].method, f.next[0].path)
		}
	})
	return f
}

func (f *fakeXendit) serve(w http.ResponseWriter, r *http.Request) {
	t := f.t
	f.mu.Lock()
	if len(f.next) == 0 {
		f.mu.Unlock()
		t.Errorf("unexpected request %s %s", r.Method, r.URL)
		http.Error(w, "unexpected", http.StatusTeapot)
		return
	}
	ex := f.next[0]
	f.next = f.next[1:]
	f.mu.Unlock()

	if r.Method != ex.method || r.URL.Path != ex.path {
		t.Errorf("request %s %s, want %s %s", r.Method, r.URL.Path, ex.method, ex.path)
	}
	if ex.query != nil && !reflect.DeepEqual(map[string][]string(r.URL.Query()), ex.query) {
		t.Errorf("query %v, want %v", r.URL.Query(), ex.query)
	}
	user, pass, ok := r.BasicAuth()
	if !ok || user != testKey || pass != "" {
		t.Errorf("basic auth %q:%q (ok %v), want the secret key and an empty password", user, pass, ok)
	}
	if got := r.Header.Values("Idempotency-Key"); ex.key == "" && len(got) != 0 || ex.key != "" && (len(got) != 1 || got[0] != ex.key) {
		t.Errorf("idempotency key %q, want %q", got, ex.key)
	}
	if got := r.Header.Get("api-version"); ex.apiVersion != (got == xendit.PaymentsAPIVersion) {
		t.Errorf("api-version %q (want set: %v)", got, ex.apiVersion)
	}
	body, _ := io.ReadAll(r.Body)
	if ex.request == "" {
		if len(body) != 0 {
			t.Errorf("unexpected body %s", body)
		}
	} else {
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("content type %q", ct)
		}
		if want := fixture(t, ex.request); !sameJSON(t, body, want) {
			t.Errorf("body\n%s\nwant (%s)\n%s", body, ex.request, want)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ex.status)
	if ex.response != "" {
		_, _ = w.Write(fixture(t, ex.response))
	}
}

func newClient(t *testing.T, base string, mod ...func(*xendit.Options)) *xendit.Client {
	t.Helper()
	o := xendit.Options{BaseURL: base, SecretKey: testKey, Timeout: 2 * time.Second, Backoff: time.Millisecond,
		SuccessReturnURL: "https://paygate.example/topups/done", FailureReturnURL: "https://paygate.example/topups/failed"}
	for _, m := range mod {
		m(&o)
	}
	c, err := xendit.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var expiry = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func TestCreatePaymentPerFamily(t *testing.T) {
	cases := []struct {
		name      string
		req       provider.PaymentRequest
		ex        exchange
		wantID    string
		wantInstr provider.Instructions
	}{
		{
			name: "virtual account",
			req: provider.PaymentRequest{Reference: "tu_01J9ZQ4K7Y3M5N8P2R6S", Amount: 150000, Currency: "IDR",
				Method: "bca", ExpiresAt: expiry, CustomerName: "Budi Santoso"},
			ex: exchange{method: "POST", path: "/v3/payment_requests", key: "tu_01J9ZQ4K7Y3M5N8P2R6S", apiVersion: true,
				request: "payment_request_va.request.json", status: 201, response: "payment_request_va.response.json"},
			wantID: "pr-6d2a71c4-0b7e-4a2f-9c41-2f1d8e5b7a10",
			wantInstr: provider.Instructions{Family: provider.FamilyVirtualAccount, Channel: "BCA_VIRTUAL_ACCOUNT",
				BankCode: "BCA", VirtualAccountNumber: "381659999123456"},
		},
		{
			name: "e-wallet",
			req: provider.PaymentRequest{Reference: "tu_01J9ZQ5A1B2C3D4E5F6G", Amount: 50000, Currency: "IDR",
				Method: "dana", ExpiresAt: expiry, CustomerName: "Budi Santoso"},
			ex: exchange{method: "POST", path: "/v3/payment_requests", key: "tu_01J9ZQ5A1B2C3D4E5F6G", apiVersion: true,
				request: "payment_request_ewallet.request.json", status: 201, response: "payment_request_ewallet.response.json"},
			wantID: "pr-0c9e2b11-5a7d-4c3e-8f60-7d4b2a9e1c35",
			wantInstr: provider.Instructions{Family: provider.FamilyEWallet, Channel: "DANA",
				CheckoutURL: "https://link.dana.id/pay?ref=9f3a61", DeeplinkURL: "dana://pay?ref=9f3a61"},
		},
		{
			name: "retail outlet",
			req: provider.PaymentRequest{Reference: "tu_01J9ZQ6H7J8K9L0M1N2P", Amount: 75000, Currency: "IDR",
				Method: "alfamart", ExpiresAt: expiry, CustomerName: "Siti Rahayu"},
			ex: exchange{method: "POST", path: "/v3/payment_requests", key: "tu_01J9ZQ6H7J8K9L0M1N2P", apiVersion: true,
				request: "payment_request_retail.request.json", status: 201, response: "payment_request_retail.response.json"},
			wantID: "pr-4b8f0e27-91c2-4d55-a3e8-6c0f1b2d9e44",
			wantInstr: provider.Instructions{Family: provider.FamilyRetail, Channel: "ALFAMART",
				Retailer: "ALFAMART", PaymentCode: "TEST829104"},
		},
		{
			name: "card through hosted checkout",
			req: provider.PaymentRequest{Reference: "tu_01J9ZQ7Q8R9S0T1U2V3W", Amount: 200000, Currency: "IDR",
				Method: "visa", ExpiresAt: expiry, CustomerName: "Andi Wijaya"},
			ex: exchange{method: "POST", path: "/sessions", key: "tu_01J9ZQ7Q8R9S0T1U2V3W",
				request: "session_card.request.json", status: 201, response: "session_card.response.json"},
			wantID: "ps-674f1a2b3c4d5e6f70819203",
			wantInstr: provider.Instructions{Family: provider.FamilyCard, Channel: "CARDS",
				CheckoutURL: "https://xen.to/pG7kQz2a"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.ex)
			p, err := newClient(t, f.srv.URL).CreatePayment(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if p.ID != tc.wantID || p.Reference != tc.req.Reference || p.Status != provider.PaymentPending ||
				p.Amount != tc.req.Amount || p.Currency != "IDR" || !p.ExpiresAt.Equal(expiry) {
				t.Errorf("payment %+v", p)
			}
			if p.Instructions != tc.wantInstr {
				t.Errorf("instructions %+v, want %+v", p.Instructions, tc.wantInstr)
			}
		})
	}
}

func TestGetPaymentSucceeded(t *testing.T) {
	f := newFake(t, exchange{method: "GET", path: "/v3/payment_requests/pr-6d2a71c4-0b7e-4a2f-9c41-2f1d8e5b7a10",
		apiVersion: true, status: 200, response: "payment_request_succeeded.response.json"})
	p, err := newClient(t, f.srv.URL).GetPayment(context.Background(), "pr-6d2a71c4-0b7e-4a2f-9c41-2f1d8e5b7a10")
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != provider.PaymentSucceeded || p.PaidAmount != 150000 || p.PaidCurrency != "IDR" || p.PaidAt == nil ||
		p.Reference != "tu_01J9ZQ4K7Y3M5N8P2R6S" {
		t.Errorf("payment %+v", p)
	}
}

func TestGetPaymentNotFound(t *testing.T) {
	f := newFake(t, exchange{method: "GET", path: "/sessions/ps-unknown", status: 404, response: "error_validation.response.json"})
	_, err := newClient(t, f.srv.URL).GetPayment(context.Background(), "ps-unknown")
	if !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("err %v, want ErrNotFound", err)
	}
}

func TestPayoutCreateAndGet(t *testing.T) {
	f := newFake(t,
		exchange{method: "POST", path: "/v2/payouts", key: "wd_01J9ZR0A1B2C3D4E5F6G",
			request: "payout.request.json", status: 200, response: "payout.response.json"},
		exchange{method: "GET", path: "/v2/payouts/disb-571f3644d2b4edf0745e9703", status: 200, response: "payout_failed.response.json"},
	)
	c := newClient(t, f.srv.URL)
	p, err := c.CreatePayout(context.Background(), provider.PayoutRequest{Reference: "wd_01J9ZR0A1B2C3D4E5F6G",
		Amount: 100000, Currency: "IDR", BankCode: "BCA", AccountNumber: "0000000000099",
		AccountHolderName: "Michael Chen", Description: "paygate withdrawal"})
	if err != nil {
		t.Fatal(err)
	}
	if p != (provider.Payout{ID: "disb-571f3644d2b4edf0745e9703", Reference: "wd_01J9ZR0A1B2C3D4E5F6G",
		Status: provider.PayoutAccepted, Amount: 100000, Currency: "IDR"}) {
		t.Errorf("payout %+v", p)
	}
	g, err := c.GetPayout(context.Background(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if g.Status != provider.PayoutFailed || g.FailureCode != "INVALID_DESTINATION" {
		t.Errorf("payout %+v", g)
	}
}

func TestListSettledFollowsPages(t *testing.T) {
	from := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(24 * time.Hour)
	q := func(after string) map[string][]string {
		m := map[string][]string{"types": {"PAYMENT", "DISBURSEMENT"}, "statuses": {"SUCCESS"},
			"created[gte]": {"2026-12-01T00:00:00.000Z"}, "created[lte]": {"2026-12-02T00:00:00.000Z"}, "limit": {"50"}}
		if after != "" {
			m["after_id"] = []string{after}
		}
		return m
	}
	f := newFake(t,
		exchange{method: "GET", path: "/transactions", query: q(""), status: 200, response: "transactions_page1.response.json"},
		exchange{method: "GET", path: "/transactions", query: q("txn_3f1c6a2e-8b4d-4e71-9a05-1d2c3b4a5e60"), status: 200,
			response: "transactions_page2.response.json"},
	)
	got, err := newClient(t, f.srv.URL).ListSettled(context.Background(), from, to)
	if err != nil {
		t.Fatal(err)
	}
	want := []provider.SettledTransaction{
		{ID: "txn_3f1c6a2e-8b4d-4e71-9a05-1d2c3b4a5e60", Kind: provider.TransactionPayment, Reference: "tu_01J9ZQ4K7Y3M5N8P2R6S",
			Amount: 150000, Currency: "IDR", SettledAt: time.Date(2026, 12, 1, 10, 12, 31, 0, time.UTC)},
		{ID: "txn_7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d", Kind: provider.TransactionPayout, Reference: "wd_01J9ZR0A1B2C3D4E5F6G",
			Amount: 100000, Currency: "IDR", SettledAt: time.Date(2026, 12, 1, 10, 9, 0, 0, time.UTC)},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Kind != want[i].Kind || got[i].Reference != want[i].Reference ||
			got[i].Amount != want[i].Amount || !got[i].SettledAt.Equal(want[i].SettledAt) {
			t.Errorf("transaction %d %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestCreateRetriesA5xxWithTheSameKey(t *testing.T) {
	f := newFake(t,
		exchange{method: "POST", path: "/v2/payouts", key: "wd_01J9ZR0A1B2C3D4E5F6G", request: "payout.request.json", status: 500},
		exchange{method: "POST", path: "/v2/payouts", key: "wd_01J9ZR0A1B2C3D4E5F6G", request: "payout.request.json",
			status: 200, response: "payout.response.json"},
	)
	p, err := newClient(t, f.srv.URL).CreatePayout(context.Background(), provider.PayoutRequest{Reference: "wd_01J9ZR0A1B2C3D4E5F6G",
		Amount: 100000, Currency: "IDR", BankCode: "BCA", AccountNumber: "0000000000099",
		AccountHolderName: "Michael Chen", Description: "paygate withdrawal"})
	if err != nil || p.ID != "disb-571f3644d2b4edf0745e9703" {
		t.Fatalf("payout %+v, err %v", p, err)
	}
}

func TestNoRetryAfterA4xx(t *testing.T) {
	f := newFake(t, exchange{method: "POST", path: "/v2/payouts", key: "wd_01J9ZR0A1B2C3D4E5F6G", request: "payout.request.json",
		status: 400, response: "error_validation.response.json"})
	_, err := newClient(t, f.srv.URL).CreatePayout(context.Background(), provider.PayoutRequest{Reference: "wd_01J9ZR0A1B2C3D4E5F6G",
		Amount: 100000, Currency: "IDR", BankCode: "BCA", AccountNumber: "0000000000099",
		AccountHolderName: "Michael Chen", Description: "paygate withdrawal"})
	if !errors.Is(err, provider.ErrRejected) || errors.Is(err, provider.ErrUnavailable) {
		t.Fatalf("err %v, want ErrRejected only", err)
	}
}

func TestPersistent5xxIsUnavailableAfterMaxAttempts(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	_, err := newClient(t, srv.URL, func(o *xendit.Options) { o.MaxAttempts = 4 }).GetPayout(context.Background(), "disb-1")
	if !errors.Is(err, provider.ErrUnavailable) {
		t.Fatalf("err %v, want ErrUnavailable", err)
	}
	if n.Load() != 4 {
		t.Errorf("%d attempts, want 4", n.Load())
	}
}

func TestTimeoutIsUnavailable(t *testing.T) {
	release := make(chan struct{})
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	c := newClient(t, srv.URL, func(o *xendit.Options) { o.Timeout = 50 * time.Millisecond; o.MaxAttempts = 2 })
	start := time.Now()
	_, err := c.CreatePayment(context.Background(), provider.PaymentRequest{Reference: "tu_1", Amount: 1, Currency: "IDR", Method: "bri"})
	if !errors.Is(err, provider.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want ErrUnavailable from a deadline", err)
	}
	if n.Load() != 2 {
		t.Errorf("%d attempts, want 2 (one retry under the same key)", n.Load())
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v; the per-request timeout was not applied", d)
	}
}

func TestSecretNeverInErrors(t *testing.T) {
	f := newFake(t, exchange{method: "GET", path: "/v2/payouts/disb-x", status: 401, response: "error_validation.response.json"})
	_, err := newClient(t, f.srv.URL).GetPayout(context.Background(), "disb-x")
	if err == nil || strings.Contains(err.Error(), testKey) {
		t.Fatalf("err %v", err)
	}
}
