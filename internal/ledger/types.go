package ledger

import (
	"encoding/base64"
	"math"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// AccountKind says who an account belongs to.
type AccountKind string

// The account kinds.
const (
	// AccountWallet is a user's wallet; it never goes negative.
	AccountWallet AccountKind = "wallet"
	// AccountSystem is one of paygate's own accounts (funding, clearing);
	// it may go negative.
	AccountSystem AccountKind = "system"
)

// Transaction kinds used by paygate's domains. Kind is free text; these are
// the conventional values.
const (
	KindTopUp      = "topup"
	KindTransfer   = "transfer"
	KindWithdrawal = "withdrawal"
	KindCapture    = "capture"
	KindReversal   = "reversal"
)

// FundingCode returns the code of the funding account of a payment
// provider, e.g. FundingCode("ovo") = "funding:ovo". Funding accounts are
// where money enters the ledger; their balances go negative.
func FundingCode(provider string) string { return "funding:" + provider }

// ClearingCode returns the code of a payment provider's clearing account,
// e.g. ClearingCode("xendit") = "clearing:provider:xendit". A confirmed
// payment moves money from it into the customer's wallet and a captured
// payout back into it, so its balance is minus what the provider holds
// for paygate: collected from customers and not yet paid out.
func ClearingCode(provider string) string { return "clearing:provider:" + provider }

// CodeClearingWithdrawals is the code of the system account that receives
// withdrawn money until the payout provider settles it.
const CodeClearingWithdrawals = "clearing:withdrawals"

// Account is a ledger account with its balances in minor units.
type Account struct {
	ID   uuid.UUID
	Kind AccountKind
	// OwnerUserID is the owning user of a wallet; nil for system accounts.
	OwnerUserID *uuid.UUID
	// Code names a system account; empty for wallets.
	Code          string
	Currency      string
	Balance       int64
	Held          int64
	AllowNegative bool
	CreatedAt     time.Time
}

// Available returns Balance − Held: the money that can be spent or held.
// For a system account so negative that the difference does not fit in 64
// bits it returns math.MinInt64.
func (a Account) Available() int64 {
	v, ok := sub64(a.Balance, a.Held)
	if !ok {
		return math.MinInt64
	}
	return v
}

// Balances are an account's figures in minor units.
type Balances struct {
	AccountID uuid.UUID
	Currency  string
	Balance   int64
	Held      int64
	// Available is Balance − Held (see Account.Available).
	Available int64
}

// Posting is one leg of a transaction: Amount (minor units, signed, never
// zero) is added to the account's balance.
type Posting struct {
	AccountID uuid.UUID
	Amount    int64
}

// Transaction is what Post books.
type Transaction struct {
	// Kind says what happened, e.g. KindTransfer. Required.
	Kind string
	// Reference is the id of the business record being booked.
	Reference string
	// Currency of every posting's account; the Store's default when empty.
	Currency string
	// Reverses is the transaction this one reverses, if any. A transaction
	// can be reversed at most once. Prefer Store.Reverse, which builds the
	// negated postings itself.
	Reverses *uuid.UUID
	// Metadata is stored as JSON with the transaction.
	Metadata map[string]any
	// Postings are two or more legs on distinct accounts summing to zero.
	Postings []Posting
}

// PostedTransaction is a booked transaction with its entries.
type PostedTransaction struct {
	ID        uuid.UUID
	Kind      string
	Reference string
	Currency  string
	Reverses  *uuid.UUID
	Metadata  map[string]any
	CreatedAt time.Time
	// Entries are in posting order.
	Entries []Entry
}

// Entry is one booked posting.
type Entry struct {
	ID            int64
	TransactionID uuid.UUID
	AccountID     uuid.UUID
	Amount        int64
	// BalanceAfter is the account's balance right after this entry.
	BalanceAfter int64
	CreatedAt    time.Time
	// TransactionKind and Reference are the transaction's, for statements.
	TransactionKind string
	Reference       string
}

// EntryPublicID returns the UUID the API shows for the entry of transaction
// txID on account accountID. A transaction books at most one entry per
// account (ledger_entries_one_per_account), so the pair names the entry;
// a name-based (SHA-1, version 5) UUID of it is stable across reads and
// needs no column of its own, and it reveals neither the entry count nor the
// account id.
func EntryPublicID(txID, accountID uuid.UUID) uuid.UUID {
	return uuid.NewSHA1(txID, accountID[:])
}

// HoldStatus is the state of a hold.
type HoldStatus string

// The hold states. A hold goes from active to captured or released, once.
const (
	HoldActive   HoldStatus = "active"
	HoldCaptured HoldStatus = "captured"
	HoldReleased HoldStatus = "released"
)

// Hold reserves money of an account until it is captured or released.
type Hold struct {
	ID        uuid.UUID
	AccountID uuid.UUID
	Amount    int64
	Status    HoldStatus
	Reference string
	CreatedAt time.Time
	// SettledAt is when the hold was captured or released.
	SettledAt *time.Time
	// CaptureTransactionID is the transaction that moved the held money.
	CaptureTransactionID *uuid.UUID
}

// Cursor is an opaque page position; the zero value means the first page.
type Cursor string

func entryCursor(id int64) Cursor {
	return Cursor(base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(id, 10))))
}

func (c Cursor) entryID() (int64, error) {
	if c == "" {
		return math.MaxInt64, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(string(c))
	if err != nil {
		return 0, ErrInvalidCursor
	}
	id, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || id <= 0 {
		return 0, ErrInvalidCursor
	}
	return id, nil
}

func accountCursor(id uuid.UUID) Cursor {
	return Cursor(base64.RawURLEncoding.EncodeToString(id[:]))
}

func (c Cursor) accountID() (uuid.UUID, error) {
	if c == "" {
		return uuid.Nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(string(c))
	if err != nil || len(b) != 16 {
		return uuid.Nil, ErrInvalidCursor
	}
	return uuid.UUID(b), nil
}
