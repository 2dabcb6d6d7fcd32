package notify

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/mail"
	"strings"
	"time"

	"github.com/paygate/paygate/internal/events"
)

// IgnoredTypes are event types the consumer reads and deliberately mails
// nothing for: they are consumed and committed, never dead-lettered.
var IgnoredTypes = []string{events.TypeTopUpReversed, events.TypeTransferReversed}

// MailedTypes are the event types that cause email.
var MailedTypes = []string{
	events.TypeUserRegistered, events.TypePasswordChanged, events.TypeTopUpSucceeded, events.TypeTransferSucceeded,
	events.TypeWithdrawalRequested, events.TypeWithdrawalSucceeded, events.TypeWithdrawalFailed,
}

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
