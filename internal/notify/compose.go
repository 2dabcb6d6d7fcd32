package notify

import (
	"bytes"
	"encoding/json"
	htmltemplate "html/template"
	"mime"
	"net/mail"
	"net/url"
	"strings"
	"time"

	"github.com/paygate/paygate/internal/events"
)

// IgnoredTypes are event types the consumer reads and deliberately mails
// nothing for: they are consumed and committed, never dead-lettered.
var IgnoredTypes = []string{events.TypeTopUpReversed, events.TypeTransferReversed}

// MailedTypes are the event types that cause email.
var MailedTypes = []string{
	events.TypeUserRegistered, events.TypePasswordChanged, events.TypeTopUpPending, events.TypeTopUpSucceeded,
	events.TypeTopUpExpired, events.TypeTopUpFailed, events.TypeTransferSucceeded,
	events.TypeWithdrawalRequested, events.TypeWithdrawalSucceeded, events.TypeWithdrawalFailed,
}

// The payment families of events.PaymentInstructions: which instructions
// a pending top-up's mail shows.
const (
	familyVirtualAccount = "virtual_account"
	familyEWallet        = "ewallet"
	familyRetail         = "retail"
	familyCard           = "card"
	familyCheckout       = "checkout"
)

// outgoing is one mail an event causes, before rendering.
type outgoing struct {
	template string
	to       string // normalised address: the recipient of the deliveries table
	view     any
}

// base is what every template gets.
type base struct {
	Firstname string
	// Reference identifies the event in the footer, for support.
	Reference string
}

type welcomeView struct {
	base
	AccountNumber string
}

type passwordChangedView struct {
	base
	ChangedAt string
}

type topupView struct {
	base
	Amount string
	Method string
	// TopUpReference is the customer's own reference of the top-up; the
	// footer's Reference is the event's.
	TopUpReference string
	BalanceAfter   string
	TopUpID        string
	Date           string
}

// topupPendingView holds the payment instructions of one family only:
// compose leaves the fields of the other families empty, and the
// templates show the part that is set.
type topupPendingView struct {
	base
	Amount         string
	Method         string
	TopUpReference string
	TopUpID        string
	ExpiresAt      string
	// A virtual account: the number is shown in full, it is where the
	// customer pays to, not an account of theirs.
	BankCode             string
	VirtualAccountNumber string
	// A retail outlet's payment code.
	Retailer    string
	PaymentCode string
	// Hosted checkout, and an e-wallet's web page or app link. The
	// checkout URL is http(s) and html/template's own URL filter applies
	// to it; the deeplink has an app's scheme, which that filter would
	// replace, so compose vets its scheme and marks it a URL.
	CheckoutURL string
	DeeplinkURL htmltemplate.URL
	// InApp says the e-wallet asks the customer in its app: there is no
	// link to follow.
	InApp bool
}

// topupClosedView is the view of a top-up that expired or failed.
type topupClosedView struct {
	base
	Amount  string
	Method  string
	Reason  string
	TopUpID string
	Date    string
}

// transferSentView and transferReceivedView each hold one party's own
// balance and nothing of the other party's: the other balance is not in
// the view, so no template can show it.
type transferSentView struct {
	base
	Amount           string
	RecipientName    string
	RecipientAccount string
	Note             string
	BalanceAfter     string
	TransferID       string
	Date             string
}

type transferReceivedView struct {
	base
	Amount        string
	SenderName    string
	SenderAccount string
	Note          string
	BalanceAfter  string
	TransferID    string
	Date          string
}

type withdrawalView struct {
	base
	Amount         string
	BankCode       string
	BankAccount    string // "****1234": only the last four digits
	AccountName    string
	AvailableAfter string
	FailureReason  string
	WithdrawalID   string
	Date           string
}

// compose returns the mails an event of type typ with JSON data causes.
// It returns no mail and no error for IgnoredTypes, and an ErrPoison error
// for anything that can never be mailed.
func compose(eventID, typ, contentType string, data []byte) ([]outgoing, error) {
	for _, t := range IgnoredTypes {
		if typ == t {
			return nil, nil
		}
	}
	if contentType != "" {
		if mt, _, err := mime.ParseMediaType(contentType); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, poison("content type %q is not JSON", contentType)
		}
	}
	ref := eventID
	switch typ {
	case events.TypeUserRegistered:
		var p events.UserRegistered
		if err := decode(data, &p); err != nil {
			return nil, err
		}
		to, err := address(p.Email, "email")
		if err != nil {
			return nil, err
		}
		return []outgoing{{TemplateWelcome, to, welcomeView{base{p.Firstname, ref}, p.AccountNumber}}}, nil

	case events.TypePasswordChanged:
		var p events.PasswordChanged
		if err := decode(data, &p); err != nil {
			return nil, err
		}
		to, err := address(p.Email, "email")
		if err != nil {
			return nil, err
		}
		return []outgoing{{TemplatePasswordChanged, to, passwordChangedView{base{p.Firstname, ref}, formatTime(p.ChangedAt)}}}, nil

	case events.TypeTopUpPending:
		var p events.TopUpPending
		if err := decode(data, &p); err != nil {
			return nil, err
		}
		to, err := address(p.Email, "email")
		if err != nil {
			return nil, err
		}
		v := topupPendingView{base: base{p.Firstname, ref}, Amount: FormatAmount(p.Amount, p.Currency), Method: p.Method,
			TopUpReference: p.Reference, TopUpID: p.TopUpID.String(), ExpiresAt: formatTime(p.ExpiresAt)}
		if err := instructions(&v, p.Payment); err != nil {
			return nil, err
		}
		return []outgoing{{TemplateTopupPending, to, v}}, nil

	case events.TypeTopUpExpired, events.TypeTopUpFailed:
		var p events.TopUpClosed
		if err := decode(data, &p); err != nil {
			return nil, err
		}
		to, err := address(p.Email, "email")
		if err != nil {
			return nil, err
		}
		tmpl, reason := TemplateTopupExpired, strings.TrimSpace(p.Reason)
		if typ == events.TypeTopUpFailed {
			tmpl = TemplateTopupFailed
			if reason == "" {
				reason = "The payment did not go through."
			}
		}
		return []outgoing{{tmpl, to, topupClosedView{base: base{p.Firstname, ref}, Amount: FormatAmount(p.Amount, p.Currency),
			Method: p.Method, Reason: reason, TopUpID: p.TopUpID.String(), Date: formatTime(p.ClosedAt)}}}, nil

	case events.TypeTopUpSucceeded:
		var p events.TopUpSucceeded
		if err := decode(data, &p); err != nil {
			return nil, err
		}
		to, err := address(p.Email, "email")
		if err != nil {
			return nil, err
		}
		return []outgoing{{TemplateTopupSucceeded, to, topupView{base: base{p.Firstname, ref},
			Amount: FormatAmount(p.Amount, p.Currency), Method: p.Method, TopUpReference: p.Reference,
			BalanceAfter: FormatAmount(p.BalanceAfter, p.Currency), TopUpID: p.TopUpID.String(), Date: formatTime(p.CreatedAt)}}}, nil

	case events.TypeTransferSucceeded:
		var p events.TransferSucceeded
		if err := decode(data, &p); err != nil {
			return nil, err
		}
		from, err := address(p.Sender.Email, "sender.email")
		if err != nil {
			return nil, err
		}
		to, err := address(p.Recipient.Email, "recipient.email")
		if err != nil {
			return nil, err
		}
		amount, date, id := FormatAmount(p.Amount, p.Currency), formatTime(p.CreatedAt), p.TransferID.String()
		return []outgoing{
			{TemplateTransferSent, from, transferSentView{base: base{p.Sender.Firstname, ref}, Amount: amount,
				RecipientName: fullName(p.Recipient), RecipientAccount: maskAccount(p.Recipient.AccountNumber),
				Note: p.Note, BalanceAfter: FormatAmount(p.Sender.BalanceAfter, p.Currency), TransferID: id, Date: date}},
			{TemplateTransferReceived, to, transferReceivedView{base: base{p.Recipient.Firstname, ref}, Amount: amount,
				SenderName: fullName(p.Sender), SenderAccount: maskAccount(p.Sender.AccountNumber),
				Note: p.Note, BalanceAfter: FormatAmount(p.Recipient.BalanceAfter, p.Currency), TransferID: id, Date: date}},
		}, nil

	case events.TypeWithdrawalRequested, events.TypeWithdrawalSucceeded, events.TypeWithdrawalFailed:
		var p events.Withdrawal
		if err := decode(data, &p); err != nil {
			return nil, err
		}
		to, err := address(p.Email, "email")
		if err != nil {
			return nil, err
		}
		tmpl, date := TemplateWithdrawalRequested, p.CreatedAt
		switch typ {
		case events.TypeWithdrawalSucceeded:
			tmpl = TemplateWithdrawalSucceeded
		case events.TypeWithdrawalFailed:
			tmpl = TemplateWithdrawalFailed
		}
		if typ != events.TypeWithdrawalRequested && p.SettledAt != nil {
			date = *p.SettledAt
		}
		reason := p.FailureReason
		if tmpl == TemplateWithdrawalFailed && reason == "" {
			reason = "The bank refused the payout."
		}
		return []outgoing{{tmpl, to, withdrawalView{base: base{p.Firstname, ref},
			Amount: FormatAmount(p.Amount, p.Currency), BankCode: p.BankCode, BankAccount: maskAccount(p.BankAccountLast4),
			AccountName: p.BankAccountName, AvailableAfter: FormatAmount(p.AvailableAfter, p.Currency),
			FailureReason: reason, WithdrawalID: p.WithdrawalID.String(), Date: formatTime(date)}}}, nil
	}
	return nil, poison("unknown event type %q", typ)
}

// instructions puts the payment instructions of in's family into v. A
// family this consumer does not know, or instructions that lack what
// their family is paid with, are poison: a mail asking for a payment
// without saying how to make it would only mislead, and the dead letter
// can be replayed once the cause is fixed.
func instructions(v *topupPendingView, in events.PaymentInstructions) error {
	field := func(s, name string) (string, error) {
		s = strings.TrimSpace(s)
		if s == "" {
			return "", poison("payload's %s payment has no %s", in.Family, name)
		}
		return s, nil
	}
	var err error
	switch in.Family {
	case familyVirtualAccount:
		if v.BankCode, err = field(in.BankCode, "payment.bank_code"); err != nil {
			return err
		}
		v.VirtualAccountNumber, err = field(in.VirtualAccountNumber, "payment.virtual_account_number")
		return err
	case familyRetail:
		if v.Retailer, err = field(in.Retailer, "payment.retailer"); err != nil {
			return err
		}
		v.PaymentCode, err = field(in.PaymentCode, "payment.payment_code")
		return err
	case familyCard, familyCheckout:
		u, err := field(in.CheckoutURL, "payment.checkout_url")
		if err != nil {
			return err
		}
		v.CheckoutURL, err = webURL(u, "payment.checkout_url")
		return err
	case familyEWallet:
		if strings.TrimSpace(in.CheckoutURL) != "" {
			if v.CheckoutURL, err = webURL(in.CheckoutURL, "payment.checkout_url"); err != nil {
				return err
			}
		}
		if strings.TrimSpace(in.DeeplinkURL) != "" {
			if v.DeeplinkURL, err = appURL(in.DeeplinkURL, "payment.deeplink_url"); err != nil {
				return err
			}
		}
		v.InApp = v.CheckoutURL == "" && v.DeeplinkURL == ""
		return nil
	}
	return poison("payload's payment family %q is unknown", in.Family)
}

// webURL returns s if it is an absolute http or https URL.
func webURL(s, field string) (string, error) {
	s = strings.TrimSpace(s)
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", poison("payload's %s is not an http(s) URL", field)
	}
	return s, nil
}

// unsafeSchemes are URL schemes a link in a mail must never have: they
// run script or reach the reader's own files instead of opening an app.
var unsafeSchemes = map[string]bool{
	"javascript": true, "vbscript": true, "data": true, "file": true, "blob": true, "filesystem": true, "about": true,
}

// appURL returns s as a URL a mail may link to: an absolute URL whose
// scheme opens a web page or an app, never one of unsafeSchemes. The
// HTML template still escapes it for its attribute.
func appURL(s, field string) (htmltemplate.URL, error) {
	s = strings.TrimSpace(s)
	u, err := url.Parse(s)
	// Parse refuses control characters and lower-cases the scheme.
	if err != nil || u.Scheme == "" || unsafeSchemes[u.Scheme] {
		return "", poison("payload's %s is not a link to an app or a web page", field)
	}
	return htmltemplate.URL(s), nil
}

// decode reads a JSON object payload. Unknown fields are allowed (a
// producer may add fields before consumers know them); anything that is
// not a JSON object of the right shape is poison.
func decode(data []byte, v any) error {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return poison("payload is not a JSON object")
	}
	if err := json.Unmarshal(trimmed, v); err != nil {
		return poison("payload does not decode: %v", err)
	}
	return nil
}

// address validates a recipient and returns it normalised (the bare,
// lower-cased address).
func address(s, field string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", poison("payload has no %s", field)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || !strings.Contains(a.Address, "@") {
		return "", poison("payload's %s is not an email address", field)
	}
	return strings.ToLower(a.Address), nil
}

func fullName(p events.TransferParty) string {
	return strings.TrimSpace(p.Firstname + " " + p.Lastname)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2 Jan 2006 15:04 UTC")
}
