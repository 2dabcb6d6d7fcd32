package notify

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/paygate/paygate/internal/events"
)

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type rendered struct {
	template, to, subject, text, html string
}

func composeAndRender(t *testing.T, typ string, payload any) []rendered {
	t.Helper()
	r, err := NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	outs, err := compose(uuid.NewString(), typ, "application/json", mustJSON(t, payload))
	if err != nil {
		t.Fatalf("compose %s: %v", typ, err)
	}
	var res []rendered
	for _, o := range outs {
		s, txt, html, err := r.Render(o.template, o.view)
		if err != nil {
			t.Fatalf("render %s: %v", o.template, err)
		}
		res = append(res, rendered{o.template, o.to, s, txt, html})
	}
	return res
}

func (r rendered) contains(t *testing.T, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(r.text, p) || !strings.Contains(r.html, p) {
			t.Errorf("%s mail lacks %q in text or HTML:\n%s", r.template, p, r.text)
		}
	}
}

func (r rendered) lacks(t *testing.T, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if strings.Contains(r.text, p) || strings.Contains(r.html, p) || strings.Contains(r.subject, p) {
			t.Errorf("%s mail shows %q", r.template, p)
		}
	}
}

var at = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

func TestEveryMailedTypeRendersItsMail(t *testing.T) {
	t.Parallel()
	settled := at.Add(time.Hour)
	w := events.Withdrawal{WithdrawalID: uuid.New(), UserID: uuid.New(), Email: "Wendy@Example.com", Firstname: "Wendy",
		Amount: 75000, Currency: "IDR", Status: "pending", BankCode: "BCA", BankAccountLast4: "7890",
		BankAccountName: "Wendy W", AvailableAfter: 25000, CreatedAt: at}
	wOK, wFail := w, w
	wOK.Status, wOK.SettledAt = "succeeded", &settled
	wFail.Status, wFail.SettledAt, wFail.FailureReason, wFail.AvailableAfter = "failed", &settled, "Account closed.", 100000
	closed := events.TopUpClosed{TopUpID: uuid.New(), UserID: uuid.New(), Email: "Ann@Example.com", Firstname: "Ann",
		Amount: 150000, Currency: "IDR", Method: "alfamart", Status: "expired", Reason: "Not paid in time.", ClosedAt: settled}
	failed := closed
	failed.Status, failed.Reason = "failed", "The e-wallet declined the payment."

	cases := []struct {
		typ      string
		payload  any
		template string
		to       string
		subject  string
		parts    []string
	}{
		{events.TypeUserRegistered, events.UserRegistered{UserID: uuid.New(), Email: "ann@example.com", Firstname: "Ann", Lastname: "A",
			AccountNumber: "1234567890123456", Role: "user", RegisteredAt: at},
			TemplateWelcome, "ann@example.com", "Welcome to paygate", []string{"Hi Ann", "1234567890123456"}},
		{events.TypePasswordChanged, events.PasswordChanged{UserID: uuid.New(), Email: "ann@example.com", Firstname: "Ann", ChangedAt: at},
			TemplatePasswordChanged, "ann@example.com", "Your paygate password was changed", []string{"Hi Ann", "4 Mar 2025 05:06 UTC"}},
		{events.TypeTopUpSucceeded, events.TopUpSucceeded{TopUpID: uuid.New(), UserID: uuid.New(), Email: "ann@example.com", Firstname: "Ann",
			AccountNumber: "1234567890123456", Amount: 150000, Currency: "IDR", Method: "ovo", Reference: "INV-7",
			BalanceAfter: 1150000, CreatedAt: at},
			TemplateTopupSucceeded, "ann@example.com", "Top-up of IDR 150.000 paid", []string{"IDR 150.000", "IDR 1.150.000", "ovo", "INV-7",
				"credited to your wallet"}},
		{events.TypeTopUpPending, pending(events.PaymentInstructions{Family: "virtual_account", Channel: "BCA_VIRTUAL_ACCOUNT",
			BankCode: "BCA", VirtualAccountNumber: "8808123456789012"}),
			TemplateTopupPending, "ann@example.com", "Top-up of IDR 150.000 waiting for payment",
			[]string{"IDR 150.000", "bca", "INV-7", "5 Mar 2025 05:06 UTC", "BCA", "8808123456789012"}},
		{events.TypeTopUpExpired, closed, TemplateTopupExpired, "ann@example.com", "Top-up of IDR 150.000 expired",
			[]string{"IDR 150.000", "alfamart", "Not paid in time.", "Nothing was credited", closed.TopUpID.String(), "4 Mar 2025 06:06 UTC"}},
		{events.TypeTopUpFailed, failed, TemplateTopupFailed, "ann@example.com", "Top-up of IDR 150.000 failed",
			[]string{"IDR 150.000", "The e-wallet declined the payment.", "Nothing was credited", failed.TopUpID.String()}},
		{events.TypeWithdrawalRequested, w, TemplateWithdrawalRequested, "wendy@example.com", "Withdrawal of IDR 75.000 requested",
			[]string{"IDR 75.000", "IDR 25.000", "BCA", "****7890"}},
		{events.TypeWithdrawalSucceeded, wOK, TemplateWithdrawalSucceeded, "wendy@example.com", "Withdrawal of IDR 75.000 paid out",
			[]string{"IDR 75.000", "****7890", "4 Mar 2025 06:06 UTC"}},
		{events.TypeWithdrawalFailed, wFail, TemplateWithdrawalFailed, "wendy@example.com", "Withdrawal of IDR 75.000 failed",
			[]string{"IDR 75.000", "IDR 100.000", "****7890", "Account closed.", "The IDR 75.000 held for it", "back in your wallet"}},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.typ] = true
	}
	for _, typ := range MailedTypes {
		if !covered[typ] && typ != events.TypeTransferSucceeded { // TestTransferMailsShowOnlyTheirOwnBalance
			t.Errorf("no case for mailed type %s", typ)
		}
	}
	for _, c := range cases {
		t.Run(c.template, func(t *testing.T) {
			got := composeAndRender(t, c.typ, c.payload)
			if len(got) != 1 {
				t.Fatalf("%d mails, want 1", len(got))
			}
			m := got[0]
			if m.template != c.template || m.to != c.to || m.subject != c.subject {
				t.Fatalf("mail %s to %s %q, want %s to %s %q", m.template, m.to, m.subject, c.template, c.to, c.subject)
			}
			m.contains(t, c.parts...)
		})
	}
}

// pending is a paygate.topup.pending payload paid as in says.
func pending(in events.PaymentInstructions) events.TopUpPending {
	return events.TopUpPending{TopUpID: uuid.New(), UserID: uuid.New(), Email: "ann@example.com", Firstname: "Ann",
		Amount: 150000, Currency: "IDR", Method: "bca", Reference: "INV-7", Provider: "sandbox", Payment: in,
		ExpiresAt: at.Add(24 * time.Hour), CreatedAt: at}
}

// TestTopUpPendingShowsItsFamilysInstructions: the waiting-for-payment
// mail shows exactly the instructions of the payment's family, links as
// links, and nothing of another family's fields even when the event
// carries them.
func TestTopUpPendingShowsItsFamilysInstructions(t *testing.T) {
	t.Parallel()
	const (
		va       = "8808123456789012"
		code     = "SBX123456789"
		checkout = "https://checkout.example.com/pay/pr-123"
		deeplink = "gojek://gopay/pay?id=pr-123"
	)
	cases := []struct {
		name   string
		in     events.PaymentInstructions
		shows  []string
		hrefs  []string
		hides  []string
		method string
	}{
		{"virtual account", events.PaymentInstructions{Family: "virtual_account", Channel: "BCA_VIRTUAL_ACCOUNT", BankCode: "BCA",
			VirtualAccountNumber: va, PaymentCode: code, CheckoutURL: checkout},
			[]string{"Transfer exactly IDR 150.000", "BCA", va}, nil, []string{code, checkout}, "bca"},
		{"retail", events.PaymentInstructions{Family: "retail", Channel: "ALFAMART", Retailer: "ALFAMART", PaymentCode: code,
			VirtualAccountNumber: va},
			[]string{"ALFAMART outlet", "ALFAMART", code}, nil, []string{va}, "alfamart"},
		{"e-wallet with both links", events.PaymentInstructions{Family: "ewallet", Channel: "GOPAY", CheckoutURL: checkout,
			DeeplinkURL: deeplink},
			[]string{checkout, deeplink, "gopay app"}, []string{checkout, deeplink}, []string{"VA number", "Payment code"}, "gopay"},
		{"e-wallet with an app link", events.PaymentInstructions{Family: "ewallet", Channel: "SHOPEEPAY",
			DeeplinkURL: "shopeeid://main?pr=1"},
			[]string{"shopeeid://main?pr=1"}, []string{"shopeeid://main?pr=1"}, []string{"Open this page"}, "shopeepay"},
		{"e-wallet approved in the app", events.PaymentInstructions{Family: "ewallet", Channel: "OVO"},
			[]string{"Approve the payment of IDR 150.000 in your ovo app."}, nil, []string{"href=\"http", "Open this page"}, "ovo"},
		{"card", events.PaymentInstructions{Family: "card", Channel: "CARDS", CheckoutURL: checkout, VirtualAccountNumber: va},
			[]string{checkout}, []string{checkout}, []string{va}, "visa"},
		{"hosted checkout", events.PaymentInstructions{Family: "checkout", Channel: "HOSTED", CheckoutURL: "http://127.0.0.1:8090/_sandbox/checkout/ps-1"},
			[]string{"http://127.0.0.1:8090/_sandbox/checkout/ps-1"}, []string{"http://127.0.0.1:8090/_sandbox/checkout/ps-1"}, nil, "paypal"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := pending(c.in)
			p.Method = c.method
			got := composeAndRender(t, events.TypeTopUpPending, p)
			if len(got) != 1 || got[0].template != TemplateTopupPending || got[0].to != "ann@example.com" {
				t.Fatalf("mails %+v, want one topup_pending to ann@example.com", got)
			}
			m := got[0]
			m.contains(t, append([]string{"Hi Ann", "IDR 150.000", "Pay before", "5 Mar 2025 05:06 UTC", p.TopUpID.String()}, c.shows...)...)
			m.lacks(t, c.hides...)
			for _, h := range c.hrefs {
				if !strings.Contains(m.html, `href="`+h+`"`) {
					t.Errorf("HTML does not link to %s:\n%s", h, m.html)
				}
			}
			if strings.Contains(m.html, "ZgotmplZ") {
				t.Errorf("html/template refused a link:\n%s", m.html)
			}
		})
	}
}

// TestPaymentInstructionsAreEscapedInHTML: codes and URLs from the
// provider reach the HTML escaped for their context, so that none can
// add markup or break out of its link.
func TestPaymentInstructionsAreEscapedInHTML(t *testing.T) {
	t.Parallel()
	got := composeAndRender(t, events.TypeTopUpPending, pending(events.PaymentInstructions{Family: "retail",
		Retailer: `<img src=x onerror=alert(1)>`, PaymentCode: `<b>123</b>`}))[0]
	if strings.Contains(got.html, "<b>123") || strings.Contains(got.html, "<img") ||
		!strings.Contains(got.html, "&lt;b&gt;123&lt;/b&gt;") || !strings.Contains(got.text, "<b>123</b>") {
		t.Fatalf("payment code not escaped in HTML (or mangled in text):\n%s", got.html)
	}
	got = composeAndRender(t, events.TypeTopUpPending, pending(events.PaymentInstructions{Family: "ewallet",
		CheckoutURL: `https://pay.example.com/x?a=1&b="><script>alert(1)</script>`,
		DeeplinkURL: `app://pay?q="onmouseover=alert(1) x="`}))[0]
	for _, bad := range []string{"<script>", `"><`, `" onmouseover`, `"onmouseover`} {
		if strings.Contains(got.html, bad) {
			t.Errorf("HTML contains %q:\n%s", bad, got.html)
		}
	}
	for _, want := range []string{`href="https://pay.example.com/x?a=1&amp;b=%22%3e%3cscript%3ealert%281%29%3c/script%3e"`,
		`href="app://pay?q=%22onmouseover=alert%281%29%20x=%22"`} {
		if !strings.Contains(got.html, want) {
			t.Errorf("HTML lacks %s:\n%s", want, got.html)
		}
	}
}

// TestTopUpMailsFooterNamesTheEvent: the footer's reference is the event
// id, never the top-up's own reference, which the mail shows as such.
func TestTopUpMailsFooterNamesTheEvent(t *testing.T) {
	t.Parallel()
	r, err := NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	for typ, payload := range map[string]any{
		events.TypeTopUpPending: pending(events.PaymentInstructions{Family: "retail", Retailer: "INDOMARET", PaymentCode: "1"}),
		events.TypeTopUpSucceeded: events.TopUpSucceeded{Email: "ann@example.com", Amount: 1, Currency: "IDR", Method: "ovo",
			Reference: "INV-7"},
	} {
		id := uuid.NewString()
		outs, err := compose(id, typ, "application/json", mustJSON(t, payload))
		if err != nil || len(outs) != 1 {
			t.Fatalf("compose %s: %d mails, %v", typ, len(outs), err)
		}
		_, text, html, err := r.Render(outs[0].template, outs[0].view)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(text, "Reference: "+id) || !strings.Contains(html, "Reference: "+id) ||
			!strings.Contains(text, "Reference:     INV-7") {
			t.Errorf("%s: footer lacks the event id %s or the body the top-up reference:\n%s", typ, id, text)
		}
	}
}

// TestFailedTopUpAlwaysGivesAReason: a failed top-up without a reason
// still says why in general terms; an expired one shows its reason only
// when it has one.
func TestFailedTopUpAlwaysGivesAReason(t *testing.T) {
	t.Parallel()
	p := events.TopUpClosed{TopUpID: uuid.New(), Email: "ann@example.com", Firstname: "Ann", Amount: 20000, Currency: "IDR",
		Method: "ovo", Status: "failed", ClosedAt: at}
	composeAndRender(t, events.TypeTopUpFailed, p)[0].contains(t, "Reason", "The payment did not go through.")
	p.Status = "expired"
	m := composeAndRender(t, events.TypeTopUpExpired, p)[0]
	m.lacks(t, "Reason", "did not go through")
	m.contains(t, "IDR 20.000", "expired before its payment arrived")
}

// TestTransferMailsShowOnlyTheirOwnBalance is the unit-level guard of the
// old system's leak; the end-to-end test checks the mails on the wire.
func TestTransferMailsShowOnlyTheirOwnBalance(t *testing.T) {
	t.Parallel()
	p := events.TransferSucceeded{TransferID: uuid.New(), Amount: 111111, Currency: "IDR", Note: "rent", CreatedAt: at,
		Sender: events.TransferParty{UserID: uuid.New(), Email: "alice@example.com", Firstname: "Alice", Lastname: "Smith",
			AccountNumber: "1111222233334444", BalanceAfter: 876543},
		Recipient: events.TransferParty{UserID: uuid.New(), Email: "bob@example.com", Firstname: "Bob", Lastname: "Jones",
			AccountNumber: "5555666677778888", BalanceAfter: 456789}}
	got := composeAndRender(t, events.TypeTransferSucceeded, p)
	if len(got) != 2 {
		t.Fatalf("%d mails, want 2", len(got))
	}
	sent, recv := got[0], got[1]
	if sent.template != TemplateTransferSent || sent.to != "alice@example.com" {
		t.Fatalf("first mail %s to %s", sent.template, sent.to)
	}
	if recv.template != TemplateTransferReceived || recv.to != "bob@example.com" {
		t.Fatalf("second mail %s to %s", recv.template, recv.to)
	}
	if sent.subject != "You sent IDR 111.111 to Bob Jones" || recv.subject != "You received IDR 111.111 from Alice Smith" {
		t.Fatalf("subjects %q / %q", sent.subject, recv.subject)
	}
	sent.contains(t, "IDR 111.111", "IDR 876.543", "Bob Jones", "****8888", "rent")
	recv.contains(t, "IDR 111.111", "IDR 456.789", "Alice Smith", "****4444", "rent")
	sent.lacks(t, "456.789", "456789", "5555666677778888", "bob@example.com")
	recv.lacks(t, "876.543", "876543", "1111222233334444", "alice@example.com")
}

func TestHTMLEscapesWhatUsersTyped(t *testing.T) {
	t.Parallel()
	got := composeAndRender(t, events.TypeUserRegistered, events.UserRegistered{Email: "x@example.com",
		Firstname: `<script>alert(1)</script>`, AccountNumber: "1"})
	if strings.Contains(got[0].html, "<script>") || !strings.Contains(got[0].html, "&lt;script&gt;") {
		t.Fatalf("HTML not escaped:\n%s", got[0].html)
	}
	got = composeAndRender(t, events.TypeTransferSucceeded, events.TransferSucceeded{Amount: 10000, Currency: "IDR",
		Sender:    events.TransferParty{Email: "a@example.com", Firstname: "A\r\nBcc: evil@example.com"},
		Recipient: events.TransferParty{Email: "b@example.com", Firstname: "B"}})
	if strings.ContainsAny(got[1].subject, "\r\n") {
		t.Fatalf("subject spans lines: %q", got[1].subject)
	}
}

// TestEveryEventTypeIsMailedOrIgnored: each type of the event contract is
// in exactly one of MailedTypes and IgnoredTypes, so a new type is a
// decision here, not a dead letter in production.
func TestEveryEventTypeIsMailedOrIgnored(t *testing.T) {
	t.Parallel()
	seen := map[string]int{}
	for _, typ := range append(append([]string{}, MailedTypes...), IgnoredTypes...) {
		seen[typ]++
		if _, ok := events.Catalog[typ]; !ok {
			t.Errorf("%s is not an event type of the contract", typ)
		}
	}
	for typ := range events.Catalog {
		if seen[typ] != 1 {
			t.Errorf("%s is listed %d times in MailedTypes and IgnoredTypes, want once", typ, seen[typ])
		}
	}
}

func TestIgnoredTypesCauseNoMailAndNoError(t *testing.T) {
	t.Parallel()
	for _, typ := range IgnoredTypes {
		outs, err := compose(uuid.NewString(), typ, "application/json", []byte(`{"amount":1}`))
		if err != nil || len(outs) != 0 {
			t.Errorf("%s: %d mails, err %v; want none and no error", typ, len(outs), err)
		}
	}
}

func TestPoisonPayloads(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, typ, ct, data string
	}{
		{"unknown type", "paygate.user.deleted", "application/json", `{"email":"a@example.com"}`},
		{"bad json", events.TypeUserRegistered, "application/json", `{"email":`},
		{"not an object", events.TypeUserRegistered, "application/json", `"a@example.com"`},
		{"null", events.TypeUserRegistered, "application/json", `null`},
		{"empty", events.TypeTopUpSucceeded, "application/json", ``},
		{"wrong field type", events.TypeTopUpSucceeded, "application/json", `{"email":"a@example.com","amount":"lots"}`},
		{"missing email", events.TypePasswordChanged, "application/json", `{"firstname":"Ann"}`},
		{"bad email", events.TypeWithdrawalRequested, "application/json", `{"email":"not an address"}`},
		{"address with a name", events.TypeWithdrawalRequested, "application/json", `{"email":"Ann <a@example.com>"}`},
		{"missing recipient email", events.TypeTransferSucceeded, "application/json", `{"sender":{"email":"a@example.com"},"recipient":{}}`},
		{"not json", events.TypeUserRegistered, "text/plain", `{"email":"a@example.com"}`},
		{"pending without email", events.TypeTopUpPending, "application/json", `{"payment":{"family":"retail","retailer":"A","payment_code":"1"}}`},
		{"unknown payment family", events.TypeTopUpPending, "application/json", `{"email":"a@example.com","payment":{"family":"qr_code"}}`},
		{"no payment", events.TypeTopUpPending, "application/json", `{"email":"a@example.com"}`},
		{"virtual account without number", events.TypeTopUpPending, "application/json",
			`{"email":"a@example.com","payment":{"family":"virtual_account","bank_code":"BCA"}}`},
		{"virtual account without bank", events.TypeTopUpPending, "application/json",
			`{"email":"a@example.com","payment":{"family":"virtual_account","virtual_account_number":"8808"}}`},
		{"retail without code", events.TypeTopUpPending, "application/json",
			`{"email":"a@example.com","payment":{"family":"retail","retailer":"ALFAMART"}}`},
		{"card without checkout", events.TypeTopUpPending, "application/json", `{"email":"a@example.com","payment":{"family":"card"}}`},
		{"checkout to a script", events.TypeTopUpPending, "application/json",
			`{"email":"a@example.com","payment":{"family":"checkout","checkout_url":"javascript:alert(1)"}}`},
		{"checkout not over http", events.TypeTopUpPending, "application/json",
			`{"email":"a@example.com","payment":{"family":"checkout","checkout_url":"ftp://x.example.com/pay"}}`},
		{"checkout without host", events.TypeTopUpPending, "application/json",
			`{"email":"a@example.com","payment":{"family":"card","checkout_url":"https:///pay"}}`},
		{"e-wallet checkout to a script", events.TypeTopUpPending, "application/json",
			`{"email":"a@example.com","payment":{"family":"ewallet","checkout_url":"JavaScript:alert(1)"}}`},
		{"deeplink to a script", events.TypeTopUpPending, "application/json",
			`{"email":"a@example.com","payment":{"family":"ewallet","deeplink_url":"JAVASCRIPT:alert(1)"}}`},
		{"deeplink to data", events.TypeTopUpPending, "application/json",
			`{"email":"a@example.com","payment":{"family":"ewallet","deeplink_url":"data:text/html,<script>alert(1)</script>"}}`},
		{"deeplink with a tab in the scheme", events.TypeTopUpPending, "application/json",
			`{"email":"a@example.com","payment":{"family":"ewallet","deeplink_url":"java\tscript:alert(1)"}}`},
		{"relative deeplink", events.TypeTopUpPending, "application/json",
			`{"email":"a@example.com","payment":{"family":"ewallet","deeplink_url":"//evil.example.com/x"}}`},
		{"expired without email", events.TypeTopUpExpired, "application/json", `{"amount":1}`},
		{"failed with a bad amount", events.TypeTopUpFailed, "application/json", `{"email":"a@example.com","amount":"x"}`},
	}
	for _, c := range cases {
		_, err := compose(uuid.NewString(), c.typ, c.ct, []byte(c.data))
		if !errors.Is(err, ErrPoison) {
			t.Errorf("%s: err = %v, want ErrPoison", c.name, err)
		}
	}
}

func TestRendererFailsOnUnknownTemplate(t *testing.T) {
	t.Parallel()
	r, err := NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := r.Render("nope", nil); err == nil {
		t.Fatal("rendered an unknown template")
	}
	if len(r.text) != len(Templates) || len(r.html) != len(Templates) {
		t.Fatalf("%d/%d templates parsed, want %d", len(r.text), len(r.html), len(Templates))
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	s := redact("send failed: 451 4.3.0 <bob@example.com>: later, affected recipient(s): bob@example.com, x")
	if strings.Contains(s, "@") || !strings.Contains(s, "451 4.3.0") {
		t.Fatalf("redact = %q", s)
	}
}
