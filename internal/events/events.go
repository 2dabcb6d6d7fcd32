// Package events is paygate's event contract: the CloudEvents type of
// every domain event and the Go type of its payload, as docs/events.md
// documents them. Producers (auth, topup, transfer, withdraw) and
// consumers (notify, payout) both import this package and nothing of each
// other, so a consumer depends on the contract, not on the code that
// emits it. A payload field is added, never renamed or removed: consumers
// decode events written by older and newer producers alike.
package events

import (
	"time"

	"github.com/google/uuid"
)

// The CloudEvents types (the ce_type header) of every event paygate
// publishes.
const (
	TypeUserRegistered      = "paygate.user.registered"
	TypePasswordChanged     = "paygate.user.password_changed"
	TypeTopUpPending        = "paygate.topup.pending"
	TypeTopUpSucceeded      = "paygate.topup.succeeded"
	TypeTopUpExpired        = "paygate.topup.expired"
	TypeTopUpFailed         = "paygate.topup.failed"
	TypeTopUpReversed       = "paygate.topup.reversed"
	TypeTransferSucceeded   = "paygate.transfer.succeeded"
	TypeTransferReversed    = "paygate.transfer.reversed"
	TypeWithdrawalRequested = "paygate.withdrawal.requested"
	TypeWithdrawalSucceeded = "paygate.withdrawal.succeeded"
	TypeWithdrawalFailed    = "paygate.withdrawal.failed"
)

// Catalog maps every event type to a zero value of its payload type. The
// test that keeps docs/events.md true reads it.
var Catalog = map[string]any{
	TypeUserRegistered:      UserRegistered{},
	TypePasswordChanged:     PasswordChanged{},
	TypeTopUpPending:        TopUpPending{},
	TypeTopUpSucceeded:      TopUpSucceeded{},
	TypeTopUpExpired:        TopUpClosed{},
	TypeTopUpFailed:         TopUpClosed{},
	TypeTopUpReversed:       TopUpReversed{},
	TypeTransferSucceeded:   TransferSucceeded{},
	TypeTransferReversed:    TransferReversed{},
	TypeWithdrawalRequested: Withdrawal{},
	TypeWithdrawalSucceeded: Withdrawal{},
	TypeWithdrawalFailed:    Withdrawal{},
}

// UserRegistered is the data of paygate.user.registered.
type UserRegistered struct {
	UserID        uuid.UUID `json:"user_id"`
	Email         string    `json:"email"`
	Firstname     string    `json:"firstname"`
	Lastname      string    `json:"lastname"`
	AccountNumber string    `json:"account_number"`
	Role          string    `json:"role"`
	RegisteredAt  time.Time `json:"registered_at"`
}

// PasswordChanged is the data of paygate.user.password_changed.
type PasswordChanged struct {
	UserID    uuid.UUID `json:"user_id"`
	Email     string    `json:"email"`
	Firstname string    `json:"firstname"`
	ChangedAt time.Time `json:"changed_at"`
}

// TopUpSucceeded is the data of paygate.topup.succeeded.
type TopUpSucceeded struct {
	TopUpID       uuid.UUID `json:"topup_id"`
	UserID        uuid.UUID `json:"user_id"`
	Email         string    `json:"email"`
	Firstname     string    `json:"firstname"`
	AccountNumber string    `json:"account_number"`
	Amount        int64     `json:"amount"`
	Currency      string    `json:"currency"`
	Method        string    `json:"method"`
	Reference     string    `json:"reference"`
	BalanceAfter  int64     `json:"balance_after"`
	CreatedAt     time.Time `json:"created_at"`
}

// PaymentInstructions tell a customer how to pay a pending top-up;
// exactly the part of the method's family is set: a virtual account
// number and bank, a checkout or deeplink URL, or a retail payment code.
type PaymentInstructions struct {
	Family               string `json:"family"`
	Channel              string `json:"channel"`
	BankCode             string `json:"bank_code,omitempty"`
	VirtualAccountNumber string `json:"virtual_account_number,omitempty"`
	CheckoutURL          string `json:"checkout_url,omitempty"`
	DeeplinkURL          string `json:"deeplink_url,omitempty"`
	Retailer             string `json:"retailer,omitempty"`
	PaymentCode          string `json:"payment_code,omitempty"`
}

// TopUpPending is the data of paygate.topup.pending: a top-up waits for
// the customer's payment, which the instructions describe.
type TopUpPending struct {
	TopUpID   uuid.UUID           `json:"topup_id"`
	UserID    uuid.UUID           `json:"user_id"`
	Email     string              `json:"email"`
	Firstname string              `json:"firstname"`
	Amount    int64               `json:"amount"`
	Currency  string              `json:"currency"`
	Method    string              `json:"method"`
	Reference string              `json:"reference"`
	Provider  string              `json:"provider"`
	Payment   PaymentInstructions `json:"payment"`
	ExpiresAt time.Time           `json:"expires_at"`
	CreatedAt time.Time           `json:"created_at"`
}

// TopUpClosed is the data of paygate.topup.expired and
// paygate.topup.failed: the top-up ended without crediting the wallet.
// Reason says why, for the customer.
type TopUpClosed struct {
	TopUpID   uuid.UUID `json:"topup_id"`
	UserID    uuid.UUID `json:"user_id"`
	Email     string    `json:"email"`
	Firstname string    `json:"firstname"`
	Amount    int64     `json:"amount"`
	Currency  string    `json:"currency"`
	Method    string    `json:"method"`
	Status    string    `json:"status"`
	Reason    string    `json:"reason"`
	ClosedAt  time.Time `json:"closed_at"`
}

// TopUpReversed is the data of paygate.topup.reversed.
type TopUpReversed struct {
	TopUpID      uuid.UUID `json:"topup_id"`
	UserID       uuid.UUID `json:"user_id"`
	Amount       int64     `json:"amount"`
	Currency     string    `json:"currency"`
	BalanceAfter int64     `json:"balance_after"`
	Reason       string    `json:"reason"`
	ReversedAt   time.Time `json:"reversed_at"`
}

// TransferParty is one side of a transfer. BalanceAfter is that party's
// own balance after the transfer: each party's mail shows only its own.
type TransferParty struct {
	UserID        uuid.UUID `json:"user_id"`
	Email         string    `json:"email"`
	Firstname     string    `json:"firstname"`
	Lastname      string    `json:"lastname"`
	AccountNumber string    `json:"account_number"`
	BalanceAfter  int64     `json:"balance_after"`
}

// TransferSucceeded is the data of paygate.transfer.succeeded: one event
// per transfer, carrying both parties so that consumers can tell them
// apart.
type TransferSucceeded struct {
	TransferID uuid.UUID     `json:"transfer_id"`
	Amount     int64         `json:"amount"`
	Currency   string        `json:"currency"`
	Note       string        `json:"note"`
	Sender     TransferParty `json:"sender"`
	Recipient  TransferParty `json:"recipient"`
	CreatedAt  time.Time     `json:"created_at"`
}

// TransferReversed is the data of paygate.transfer.reversed.
type TransferReversed struct {
	TransferID uuid.UUID `json:"transfer_id"`
	FromUserID uuid.UUID `json:"from_user_id"`
	ToUserID   uuid.UUID `json:"to_user_id"`
	Amount     int64     `json:"amount"`
	Currency   string    `json:"currency"`
	Reason     string    `json:"reason"`
	ReversedAt time.Time `json:"reversed_at"`
}

// Withdrawal is the data of every withdrawal event; Status tells which.
// The bank account number is never in an event, only its last four
// digits.
type Withdrawal struct {
	WithdrawalID     uuid.UUID  `json:"withdrawal_id"`
	UserID           uuid.UUID  `json:"user_id"`
	Email            string     `json:"email"`
	Firstname        string     `json:"firstname"`
	Amount           int64      `json:"amount"`
	Currency         string     `json:"currency"`
	Status           string     `json:"status"`
	BankCode         string     `json:"bank_code"`
	BankAccountLast4 string     `json:"bank_account_last4"`
	BankAccountName  string     `json:"bank_account_name"`
	AvailableAfter   int64      `json:"available_after"`
	FailureReason    string     `json:"failure_reason,omitempty"`
	CreatedAt        time.Time  `json:"created_at"`
	SettledAt        *time.Time `json:"settled_at,omitempty"`
}

// Last4 returns the last four characters of an account number (all of a
// shorter one): what an event and a mail may show of it.
func Last4(number string) string {
	if len(number) <= 4 {
		return number
	}
	return number[len(number)-4:]
}
