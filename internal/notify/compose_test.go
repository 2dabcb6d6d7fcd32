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
			TemplateTopupSucceeded, "ann@example.com", "Top-up of IDR 150.000 received", []string{"IDR 150.000", "IDR 1.150.000", "ovo", "INV-7"}},
		{events.TypeWithdrawalRequested, w, TemplateWithdrawalRequested, "wendy@example.com", "Withdrawal of IDR 75.000 requested",
			[]string{"IDR 75.000", "IDR 25.000", "BCA", "****7890"}},
		{events.TypeWithdrawalSucceeded, wOK, TemplateWithdrawalSucceeded, "wendy@example.com", "Withdrawal of IDR 75.000 paid out",
			[]string{"IDR 75.000", "****7890", "4 Mar 2025 06:06 UTC"}},
		{events.TypeWithdrawalFailed, wFail, TemplateWithdrawalFailed, "wendy@example.com", "Withdrawal of IDR 75.000 failed",
			[]string{"IDR 75.000", "IDR 100.000", "****7890", "Account closed."}},
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

// TestTopUpMailsFooterNamesTheEvent: the footer's reference is the event
// id, never the top-up's own reference, which the mail shows as such.
func TestTopUpMailsFooterNamesTheEvent(t *testing.T) {
	t.Parallel()
	r, err := NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	for typ, payload := range map[string]any{
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
