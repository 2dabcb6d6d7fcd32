package xendit_test

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/internal/provider"
	"github.com/paygate/paygate/internal/provider/xendit"
	"github.com/paygate/paygate/internal/topup"
)

const testToken = "whk_verification_token_0123456789abcdef"

func header(token ...string) http.Header {
	h := http.Header{"Content-Type": {"application/json"}}
	for _, v := range token {
		h.Add("x-callback-token", v)
	}
	return h
}

func TestVerifyRejectsWrongOrMissingToken(t *testing.T) {
	body := fixture(t, "webhook_payment_capture.json")
	v := xendit.NewVerifier(testToken)
	for name, h := range map[string]http.Header{
		"missing":           header(),
		"empty":             header(""),
		"wrong":             header("whk_verification_token_0123456789abcdeX"),
		"prefix":            header(testToken[:10]),
		"longer":            header(testToken + "x"),
		"two tokens":        header(testToken, testToken),
		"other header":      {"X-Callback-Signature": {testToken}},
		"case of the value": header(strings.ToUpper(testToken)),
	} {
		t.Run(name, func(t *testing.T) {
			ev, err := v.Verify(h, body)
			if !errors.Is(err, provider.ErrBadSignature) || ev.Payment != nil || ev.Payout != nil {
				t.Fatalf("event %+v, err %v; want ErrBadSignature", ev, err)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Fatal("the error shows the token")
			}
		})
	}
	if _, err := xendit.NewVerifier("").Verify(header(""), body); !errors.Is(err, provider.ErrBadSignature) {
		t.Fatalf("an empty configured token verified a callback: %v", err)
	}
}

func TestVerifyParsesEveryWebhook(t *testing.T) {
	paidAt := time.Date(2026, 12, 1, 10, 12, 30, 0, time.UTC)
	cases := []struct {
		fixture string
		id      string
		check   func(t *testing.T, ev provider.Event)
	}{
		{"webhook_payment_capture.json", "payment.capture:py-9e1b7c2d-4a3f-4b8e-a6d5-0c1f2e3d4b5a", func(t *testing.T, ev provider.Event) {
			p := ev.Payment
			if p == nil || p.ID != "pr-6d2a71c4-0b7e-4a2f-9c41-2f1d8e5b7a10" || p.Reference != "tu_01J9ZQ4K7Y3M5N8P2R6S" ||
				p.Status != provider.PaymentSucceeded || p.Amount != 150000 || p.PaidAmount != 150000 ||
				p.PaidCurrency != "IDR" || p.PaidAt == nil || !p.PaidAt.Equal(paidAt) {
				t.Errorf("payment %+v", p)
			}
		}},
		{"webhook_payment_failure.json", "payment.failure:py-2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d", func(t *testing.T, ev provider.Event) {
			p := ev.Payment
			if p == nil || p.Status != provider.PaymentFailed || p.FailureCode != "INSUFFICIENT_BALANCE" ||
				p.Reference != "tu_01J9ZQ5A1B2C3D4E5F6G" || p.PaidAmount != 0 {
				t.Errorf("payment %+v", p)
			}
		}},
		{"webhook_payment_request_expiry.json", "payment_request.expiry:pr-4b8f0e27-91c2-4d55-a3e8-6c0f1b2d9e44", func(t *testing.T, ev provider.Event) {
			p := ev.Payment
			if p == nil || p.Status != provider.PaymentExpired || p.Reference != "tu_01J9ZQ6H7J8K9L0M1N2P" {
				t.Errorf("payment %+v", p)
			}
		}},
		{"webhook_payment_session_completed.json", "payment_session.completed:ps-674f1a2b3c4d5e6f70819203", func(t *testing.T, ev provider.Event) {
			p := ev.Payment
			if p == nil || p.ID != "ps-674f1a2b3c4d5e6f70819203" || p.Status != provider.PaymentSucceeded ||
				p.PaidAmount != 200000 || p.Instructions.Family != provider.FamilyCard {
				t.Errorf("payment %+v", p)
			}
		}},
		{"webhook_payout_succeeded.json", "payout.succeeded:disb-571f3644d2b4edf0745e9703", func(t *testing.T, ev provider.Event) {
			if ev.Payout == nil || ev.Payout.Status != provider.PayoutSucceeded || ev.Payout.Reference != "wd_01J9ZR0A1B2C3D4E5F6G" {
				t.Errorf("payout %+v", ev.Payout)
			}
		}},
		{"webhook_payout_failed.json", "payout.failed:disb-571f3644d2b4edf0745e9703", func(t *testing.T, ev provider.Event) {
			if ev.Payout == nil || ev.Payout.Status != provider.PayoutFailed || ev.Payout.FailureCode != "INVALID_DESTINATION" {
				t.Errorf("payout %+v", ev.Payout)
			}
		}},
	}
	v := xendit.NewVerifier(testToken)
	for _, tc := range cases {
		t.Run(tc.fixture, func(t *testing.T) {
			body := fixture(t, tc.fixture)
			ev, err := v.Verify(header(testToken), body)
			if err != nil {
				t.Fatal(err)
			}
			if ev.ID != tc.id {
				t.Errorf("id %q, want %q", ev.ID, tc.id)
			}
			tc.check(t, ev)
			again, err := v.Verify(header(testToken), body)
			if err != nil || again.ID != ev.ID {
				t.Errorf("a redelivery has id %q (err %v), want %q", again.ID, err, ev.ID)
			}
		})
	}
}

func TestVerifyTakesTheHeaderInAnyCase(t *testing.T) {
	v := xendit.NewVerifier(testToken)
	for _, name := range []string{"x-callback-token", "X-CALLBACK-TOKEN", "X-Callback-Token"} {
		if _, err := v.Verify(map[string][]string{name: {testToken}}, fixture(t, "webhook_payout_failed.json")); err != nil {
			t.Errorf("header %q: %v", name, err)
		}
	}
}

func TestVerifyUnknownEventAndBadBody(t *testing.T) {
	v := xendit.NewVerifier(testToken)
	if _, err := v.Verify(header(testToken), []byte(`{"event":"payment_token.activation","data":{}}`)); !errors.Is(err, xendit.ErrUnknownEvent) {
		t.Errorf("err %v, want ErrUnknownEvent", err)
	}
	for _, b := range []string{``, `{`, `{"event":"payment.capture"}`, `{"event":"payment.capture","data":{"status":"SUCCEEDED"}}`} {
		_, err := v.Verify(header(testToken), []byte(b))
		if err == nil || errors.Is(err, provider.ErrBadSignature) {
			t.Errorf("body %q: err %v, want a parse error", b, err)
		}
	}
}

// FuzzVerify checks that no header or body makes the verifier accept a
// callback without the exact token, or panic.
func FuzzVerify(f *testing.F) {
	for _, name := range []string{"webhook_payment_capture.json", "webhook_payout_failed.json", "webhook_payment_session_completed.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(testToken, b)
		f.Add("", b)
	}
	v := xendit.NewVerifier(testToken)
	f.Fuzz(func(t *testing.T, token string, body []byte) {
		ev, err := v.Verify(header(token), body)
		if token != testToken {
			if !errors.Is(err, provider.ErrBadSignature) {
				t.Fatalf("token %q verified: %+v, %v", token, ev, err)
			}
			return
		}
		if errors.Is(err, provider.ErrBadSignature) {
			t.Fatalf("the right token was refused")
		}
		if err == nil && (ev.ID == "" || (ev.Payment == nil) == (ev.Payout == nil)) {
			t.Fatalf("event %+v: want an id and exactly one of payment and payout", ev)
		}
	})
}

func TestChannelsCoverEveryMethod(t *testing.T) {
	if len(xendit.Channels) != len(topup.Methods) {
		t.Fatalf("%d channels for %d methods", len(xendit.Channels), len(topup.Methods))
	}
	for i, m := range topup.Methods {
		c, ok := xendit.ChannelFor(m)
		if !ok || xendit.Channels[i].Method != m {
			t.Errorf("method %q: no channel, or not in topup.Methods' order", m)
			continue
		}
		switch {
		case c.Family == provider.FamilyCard && !c.Hosted:
			t.Errorf("%s: cards must go through hosted checkout", m)
		case c.Family == provider.FamilyCheckout && (!c.Hosted || c.Code != ""):
			t.Errorf("%s: a method without a channel goes through hosted checkout", m)
		case !c.Hosted && c.Code == "":
			t.Errorf("%s: a direct channel needs a code", m)
		case c.Family == "":
			t.Errorf("%s: no family", m)
		}
	}
}

func TestChannelTable(t *testing.T) {
	var b strings.Builder
	if err := xendit.WriteChannelTable(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2+len(topup.Methods) {
		t.Fatalf("%d lines:\n%s", len(lines), b.String())
	}
	for _, want := range []string{"| bca | virtual_account | `BCA_VIRTUAL_ACCOUNT` | `POST /v3/payment_requests` |",
		"| paypal | checkout | any (hosted checkout) | `POST /sessions (hosted checkout)` |"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no row %q in\n%s", want, b.String())
		}
	}
}

// TestPaymentsDocChannelTable keeps the channel table of docs/payments.md
// equal to Channels.
func TestPaymentsDocChannelTable(t *testing.T) {
	var b strings.Builder
	if err := xendit.WriteChannelTable(&b); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "payments.md"))
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "DO NOT EDIT -->\n", "<!-- END channel table -->"
	_, rest, ok1 := strings.Cut(string(doc), begin)
	table, _, ok2 := strings.Cut(rest, end)
	if !ok1 || !ok2 || table != b.String() {
		t.Fatalf("docs/payments.md's channel table is not xendit.Channels; replace it with:\n%s", b.String())
	}
}

// TestFailureReasonsAreInWords: a failed payment or payout carries the
// customer's text of its code (a known one, an unknown one named, or a
// plain one without a code), from webhooks and reads alike.
func TestFailureReasonsAreInWords(t *testing.T) {
	body := func(event, data string) []byte {
		return []byte(`{"event":"` + event + `","business_id":"b","created":"2026-12-01T10:00:00Z","data":` + data + `}`)
	}
	for _, c := range []struct {
		name string
		body []byte
		want string
	}{
		{"payout, known code", body("payout.failed", `{"id":"disb-1","reference_id":"w-1","status":"FAILED","amount":1,"currency":"IDR","failure_code":"INVALID_DESTINATION"}`),
			"The bank account does not exist or cannot receive transfers."},
		{"payout, unknown code", body("payout.failed", `{"id":"disb-2","reference_id":"w-2","status":"FAILED","amount":1,"currency":"IDR","failure_code":"NEW_CODE"}`),
			"The payout failed (NEW_CODE)."},
		{"payment, known code", body("payment.failure", `{"payment_id":"py-1","payment_request_id":"pr-1","reference_id":"t-1","status":"FAILED","request_amount":1,"currency":"IDR","failure_code":"DECLINED_BY_ISSUER"}`),
			"The card issuer declined the payment."},
	} {
		ev, err := xendit.ParseWebhook(c.body)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var got string
		switch {
		case ev.Payout != nil:
			got = ev.Payout.FailureReason
		case ev.Payment != nil:
			got = ev.Payment.FailureReason
		}
		if got != c.want {
			t.Errorf("%s: reason %q, want %q", c.name, got, c.want)
		}
	}
	if got := xendit.PayoutFailureReason(""); got != "The bank refused the payout." {
		t.Errorf("no code: %q", got)
	}
}
