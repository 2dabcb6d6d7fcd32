// Package provider is paygate's port to the payment provider that takes
// customers' money in (top-ups) and pays it out (payouts). It states what
// paygate needs of a provider in paygate's own terms; the adapters speak a
// provider's wire protocol: package xendit (the real provider's HTTP API)
// and package sandbox (a local server that implements the same subset of
// that API and its callback format, for development and tests).
//
// Consumers declare the small interface they use (a top-up needs
// CreatePayment and GetPayment, the payout processor CreatePayout and
// GetPayout, reconciliation ListSettled).
package provider

import (
	"context"
	"errors"
	"time"
)

// Name is a provider's name in paths (/v1/callbacks/{name}/...), metrics
// and the ledger's clearing accounts.
type Name string

// The providers.
const (
	Xendit  Name = "xendit"
	Sandbox Name = "sandbox"
)

// Errors of a provider call.
var (
	// ErrUnavailable means the outcome of a call is not known (timeout,
	// connection refused, 5xx): a create may or may not have happened, and
	// is safe to retry only with the same idempotency key.
	ErrUnavailable = errors.New("provider: unavailable")
	// ErrRejected means the provider refused the request (4xx other than
	// a duplicate idempotency key): retrying the same request will not help.
	ErrRejected = errors.New("provider: request rejected")
	// ErrNotFound means the provider does not know the payment or payout.
	ErrNotFound = errors.New("provider: not found")
)

// Channel family of a top-up method: what the customer is given to pay.
type Family string

// The families.
const (
	FamilyVirtualAccount Family = "virtual_account" // a VA number at a bank
	FamilyEWallet        Family = "ewallet"         // a checkout or deeplink URL
	FamilyRetail         Family = "retail"          // a payment code at a retail outlet
	FamilyCard           Family = "card"            // hosted checkout; no card number reaches paygate
	FamilyCheckout       Family = "checkout"        // hosted checkout for a method without its own channel
)

// PaymentRequest asks the provider to collect a top-up from a customer.
type PaymentRequest struct {
	// Reference is paygate's id of the top-up; the provider echoes it in
	// callbacks and it is the idempotency key of the create.
	Reference string
	Amount    int64 // minor units
	Currency  string
	Method    string // one of the 21 top-up methods, canonical spelling
	ExpiresAt time.Time
	// CustomerName is shown on a virtual account or a payment code.
	CustomerName string
}

// PaymentStatus is where a payment stands at the provider.
type PaymentStatus string

// The payment statuses.
const (
	PaymentPending   PaymentStatus = "pending"
	PaymentSucceeded PaymentStatus = "succeeded"
	PaymentFailed    PaymentStatus = "failed"
	PaymentExpired   PaymentStatus = "expired"
)

// Terminal reports whether s is final.
func (s PaymentStatus) Terminal() bool { return s != PaymentPending }

// Instructions tell the customer how to pay; exactly the part of the
// method's family is set.
type Instructions struct {
	Family  Family `json:"family"`
	Channel string `json:"channel"` // the provider's channel code, e.g. BCA, OVO, ALFAMART
	// Virtual accounts.
	BankCode             string `json:"bank_code,omitempty"`
	VirtualAccountNumber string `json:"virtual_account_number,omitempty"`
	// E-wallets, cards and hosted checkout.
	CheckoutURL string `json:"checkout_url,omitempty"`
	DeeplinkURL string `json:"deeplink_url,omitempty"`
	// Retail outlets.
	Retailer    string `json:"retailer,omitempty"`
	PaymentCode string `json:"payment_code,omitempty"`
}

// Payment is a payment as the provider reports it.
type Payment struct {
	ID        string // the provider's id
	Reference string // paygate's top-up id
	Status    PaymentStatus
	// Amount and Currency are what was requested; PaidAmount and
	// PaidCurrency what the customer paid (set once succeeded).
	Amount       int64
	Currency     string
	PaidAmount   int64
	PaidCurrency string
	Instructions Instructions
	ExpiresAt    time.Time
	PaidAt       *time.Time
	// FailureCode is the provider's reason for a failed payment, and
	// FailureReason the same in words for the customer; the adapter
	// translates its provider's codes, so no domain needs to know them.
	FailureCode   string
	FailureReason string
}

// PayoutRequest asks the provider to pay money out to a bank account.
type PayoutRequest struct {
	// Reference is paygate's withdrawal id, and the idempotency key of the
	// create: a payout retried after a crash is never made twice.
	Reference         string
	Amount            int64
	Currency          string
	BankCode          string // paygate's bank code, e.g. BCA
	AccountNumber     string
	AccountHolderName string
	Description       string
}

// PayoutStatus is where a payout stands at the provider.
type PayoutStatus string

// The payout statuses.
const (
	PayoutAccepted  PayoutStatus = "accepted" // taken, not final
	PayoutSucceeded PayoutStatus = "succeeded"
	PayoutFailed    PayoutStatus = "failed"
)

// Terminal reports whether s is final.
func (s PayoutStatus) Terminal() bool { return s == PayoutSucceeded || s == PayoutFailed }

// Payout is a payout as the provider reports it.
type Payout struct {
	ID          string
	Reference   string // paygate's withdrawal id
	Status      PayoutStatus
	Amount      int64
	Currency    string
	FailureCode string // e.g. INVALID_DESTINATION, INSUFFICIENT_BALANCE
	// FailureReason is FailureCode in words for the customer.
	FailureReason string
}

// TransactionKind is what a settled transaction was.
type TransactionKind string

// The kinds of settled transactions.
const (
	TransactionPayment TransactionKind = "payment"
	TransactionPayout  TransactionKind = "payout"
)

// SettledTransaction is one money movement the provider settled, for
// reconciliation against the ledger.
type SettledTransaction struct {
	ID        string
	Kind      TransactionKind
	Reference string // paygate's top-up or withdrawal id
	Amount    int64
	Currency  string
	SettledAt time.Time
}

// Booking is paygate's own record of a money movement through the
// provider, the counterpart of a SettledTransaction in reconciliation: a
// top-up (Kind payment) or a withdrawal (Kind payout) as paygate's books
// have it. The top-up and withdraw domains return their records in this
// shape so that reconciliation compares both sides without reading their
// tables or importing their types.
type Booking struct {
	Kind      TransactionKind
	Reference string // paygate's top-up or withdrawal id
	// Provider is the provider the movement went through: a top-up's, or
	// the provider of a withdrawal's recorded payout; empty for a top-up
	// booked before the payment rails and a withdrawal with no payout.
	Provider string
	// Status is the movement's status as the API shows it (pending,
	// succeeded, failed, expired, reversed).
	Status string
	// Booked reports whether the ledger moved the money: the wallet was
	// credited (a succeeded top-up, reversed since or not) or the
	// withdrawal's hold was captured (a succeeded withdrawal).
	Booked bool
	// Amount and Currency are what was requested, and so what the ledger
	// moved when Booked.
	Amount   int64
	Currency string
	// ReasonCode is why a movement ended without being booked (e.g.
	// AMOUNT_MISMATCH, EXPIRED, the provider's failure code).
	ReasonCode string
	CreatedAt  time.Time
	SettledAt  *time.Time // when it ended in paygate; nil while pending
}

// Event is a verified callback, in paygate's terms.
type Event struct {
	// ID deduplicates deliveries: the provider's event or object id plus
	// its status, the same for every redelivery of one notification.
	ID      string
	Payment *Payment // set for a payment callback
	Payout  *Payout  // set for a payout callback
}

// ErrBadSignature is returned for a callback whose token or signature does
// not verify.
var ErrBadSignature = errors.New("provider: callback not authenticated")

// Client is the whole port; consumers declare the parts they use.
type Client interface {
	Name() Name
	CreatePayment(ctx context.Context, r PaymentRequest) (Payment, error)
	GetPayment(ctx context.Context, id string) (Payment, error)
	CreatePayout(ctx context.Context, r PayoutRequest) (Payout, error)
	GetPayout(ctx context.Context, id string) (Payout, error)
	ListSettled(ctx context.Context, from, to time.Time) ([]SettledTransaction, error)
}

// CallbackVerifier authenticates and parses a callback exactly as the
// provider documents it: header is the request's header, body its raw
// bytes. An unauthenticated callback is ErrBadSignature; one that
// verifies but cannot be parsed is another error.
type CallbackVerifier interface {
	Verify(header map[string][]string, body []byte) (Event, error)
}
