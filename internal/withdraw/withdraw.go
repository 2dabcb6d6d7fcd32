// Package withdraw pays money out of wallets. POST /v1/withdrawals places
// a ledger hold (available money drops at once), records the withdrawal as
// pending and enqueues paygate.withdrawal.requested, in one transaction
// under the caller's Idempotency-Key. Settle, called by the payout
// processor, turns it succeeded (the hold is captured into the clearing
// account) or failed (the hold is released), exactly once.
package withdraw

import (
	"context"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/events"
	"github.com/paygate/paygate/internal/ledger"
	"github.com/paygate/paygate/internal/movement"
	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/idempotency"
	"github.com/paygate/paygate/internal/platform/outbox"
	"github.com/paygate/paygate/internal/platform/pagination"
	"github.com/paygate/paygate/internal/platform/postgres"
	"github.com/paygate/paygate/internal/provider"
	"github.com/paygate/paygate/internal/users"
)

// Errors of the withdrawal domain.
var (
	ErrNotFound       = apperr.New(apperr.KindNotFound, "NOT_FOUND", "The withdrawal does not exist.")
	ErrAlreadySettled = apperr.New(apperr.KindConflict, "ALREADY_SETTLED", "The withdrawal was already settled.")
)

// Statuses of a withdrawal.
const (
	StatusPending   = "pending"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// Withdrawal is a withdrawal as the API shows it. The bank account number
// is shown masked: only its last four digits.
type Withdrawal struct {
	ID                uuid.UUID  `json:"id"`
	UserID            uuid.UUID  `json:"user_id"`
	Amount            int64      `json:"amount"`
	Currency          string     `json:"currency"`
	Status            string     `json:"status"`
	BankCode          string     `json:"bank_code"`
	BankAccountNumber string     `json:"bank_account_number"`
	BankAccountName   string     `json:"bank_account_name"`
	FailureReason     string     `json:"failure_reason,omitempty"`
	CreatedAt         time.Time  `json:"created_at"`
	SettledAt         *time.Time `json:"settled_at"`

	holdID      uuid.UUID
	fullAccount string
}

// Mask returns an account number with all but its last four digits hidden.
func Mask(n string) string {
	return strings.Repeat("*", max(len(n)-4, 0)) + events.Last4(n)
}

// Ledger is what withdrawals need of the ledger: a hold placed at request
// time, captured into the clearing account or released at settlement.
type Ledger interface {
	WalletOf(ctx context.Context, q postgres.Querier, userID uuid.UUID) (ledger.Account, error)
	Balance(ctx context.Context, q postgres.Querier, accountID uuid.UUID) (ledger.Balances, error)
	EnsureSystemAccount(ctx context.Context, tx pgx.Tx, code, currency string) (ledger.Account, error)
	PlaceHold(ctx context.Context, tx pgx.Tx, accountID uuid.UUID, amount int64, reference string) (ledger.Hold, error)
	CaptureHold(ctx context.Context, tx pgx.Tx, holdID, toAccountID uuid.UUID, kind, reference string) (ledger.PostedTransaction, error)
	ReleaseHold(ctx context.Context, tx pgx.Tx, holdID uuid.UUID) (ledger.Hold, error)
}

// Users is what withdrawals need of the users domain.
type Users interface {
	Get(ctx context.Context, q postgres.Querier, id uuid.UUID) (users.User, error)
	LockActive(ctx context.Context, tx pgx.Tx, id uuid.UUID) (users.User, error)
}

// Service books, settles and reads withdrawals.
type Service struct {
	db     *postgres.DB
	keys   *idempotency.Store
	ledger Ledger
	users  Users
	store  Store
	cfg    config.Money
	limit  movement.Limit
	topic  string
	// provider names the payment provider that pays withdrawals out: its
	// clearing account receives captured holds.
	provider provider.Name
	metrics  *metrics
}

// NewService returns the service for payouts through prov; m may be nil.
func NewService(db *postgres.DB, keys *idempotency.Store, l Ledger, u Users, cfg config.Money, topic string, prov provider.Name, m *metrics) *Service {
	return &Service{db: db, keys: keys, ledger: l, users: u, cfg: cfg, topic: topic, provider: prov, metrics: m,
		limit: movement.Limit{Noun: "withdrawal", Min: cfg.WithdrawMin, Max: cfg.WithdrawMax, Currency: cfg.Currency}}
}

// CreateRequest is the body of POST /v1/withdrawals.
type CreateRequest struct {
	Amount            int64  `json:"amount"`
	BankCode          string `json:"bank_code"`
	BankAccountNumber string `json:"bank_account_number"`
	BankAccountName   string `json:"bank_account_name"`
}

// Request is a validated withdrawal request.
type Request struct {
	Amount            int64
	BankCode          string
	BankAccountNumber string
	BankAccountName   string
}

var (
	bankCodePattern    = regexp.MustCompile(`^[A-Z0-9]{2,11}$`)
	bankAccountPattern = regexp.MustCompile(`^[0-9]{5,20}$`)
)

// Validate checks the request and the configured limits.
func (s *Service) Validate(in CreateRequest) (Request, error) {
	bankCode := strings.ToUpper(strings.TrimSpace(in.BankCode))
	account := strings.TrimSpace(in.BankAccountNumber)
	name := strings.TrimSpace(in.BankAccountName)
	var code, number, holder *apperr.FieldError
	if !bankCodePattern.MatchString(bankCode) {
		code = &apperr.FieldError{Field: "bank_code", Message: "must be 2 to 11 letters or digits"}
	}
	if !bankAccountPattern.MatchString(account) {
		number = &apperr.FieldError{Field: "bank_account_number", Message: "must be 5 to 20 digits"}
	}
	if n := utf8.RuneCountInString(name); n < 1 || n > 100 {
		holder = &apperr.FieldError{Field: "bank_account_name", Message: "must be 1 to 100 characters"}
	}
	if err := movement.Invalid(movement.AmountField(in.Amount), code, number, holder); err != nil {
		return Request{}, err
	}
	if err := s.limit.Check(in.Amount); err != nil {
		return Request{}, err
	}
	return Request{Amount: in.Amount, BankCode: bankCode, BankAccountNumber: account, BankAccountName: name}, nil
}

// Create validates in and, under the claim, once, places the hold and
// records the pending withdrawal.
func (s *Service) Create(ctx context.Context, c idempotency.Claim, caller authn.Principal, in CreateRequest) (idempotency.Response, error) {
	return movement.Create(ctx, s.keys, c,
		func() (Request, error) { return s.Validate(in) },
		func(ctx context.Context, tx pgx.Tx, req Request) (Withdrawal, error) {
			return s.book(ctx, tx, caller, req)
		},
		func(_ *Request, result string) { s.metrics.requested(ctx, result) })
}

// book places the hold and records the pending withdrawal in tx.
func (s *Service) book(ctx context.Context, tx pgx.Tx, caller authn.Principal, req Request) (Withdrawal, error) {
	u, err := s.users.LockActive(ctx, tx, caller.UserID)
	if err != nil {
		return Withdrawal{}, err
	}
	wallet, err := s.ledger.WalletOf(ctx, tx, u.ID)
	if err != nil {
		return Withdrawal{}, err
	}
	id := uuid.New()
	hold, err := s.ledger.PlaceHold(ctx, tx, wallet.ID, req.Amount, "withdrawal:"+id.String())
	if err != nil {
		return Withdrawal{}, err
	}
	w := Withdrawal{ID: id, UserID: u.ID, Amount: req.Amount, Currency: s.cfg.Currency, Status: StatusPending,
		BankCode: req.BankCode, BankAccountNumber: Mask(req.BankAccountNumber), BankAccountName: req.BankAccountName}
	if w.CreatedAt, err = s.store.Insert(ctx, tx, w, req.BankAccountNumber, hold.ID); err != nil {
		return Withdrawal{}, err
	}
	bal, err := s.ledger.Balance(ctx, tx, wallet.ID)
	if err != nil {
		return Withdrawal{}, err
	}
	_, err = outbox.Enqueue(ctx, tx, outbox.Event{
		Topic: s.topic, Key: u.ID.String(), Type: events.TypeWithdrawalRequested, Subject: "withdrawals/" + id.String(),
		Data: s.event(w, u, bal.Available, ""),
	})
	return w, err
}

func (s *Service) event(w Withdrawal, u users.User, available int64, reason string) events.Withdrawal {
	return events.Withdrawal{WithdrawalID: w.ID, UserID: u.ID, Email: u.Email, Firstname: u.Firstname, Amount: w.Amount,
		Currency: w.Currency, Status: w.Status, BankCode: w.BankCode, BankAccountLast4: events.Last4(w.BankAccountNumber),
		BankAccountName: w.BankAccountName, AvailableAfter: available, FailureReason: reason, CreatedAt: w.CreatedAt,
		SettledAt: w.SettledAt}
}

// Get returns a withdrawal of the caller (any for admins); another's
// answers ErrNotFound.
func (s *Service) Get(ctx context.Context, caller authn.Principal, id uuid.UUID) (Withdrawal, error) {
	return s.store.Get(ctx, s.db.Pool, id, movement.Visible(caller))
}

// List returns the caller's withdrawals newest first; admins see all, or
// one user's with forUser.
func (s *Service) List(ctx context.Context, caller authn.Principal, forUser *uuid.UUID, limit int, cursor string) (pagination.Page[Withdrawal], error) {
	owner := movement.Owner(caller, forUser)
	return pagination.List(cursor, limit, func(after *pagination.Position, n int) ([]Withdrawal, error) {
		return s.store.List(ctx, s.db.Pool, owner, after, n)
	}, Withdrawal.position)
}

func (w Withdrawal) position() pagination.Position {
	return pagination.Position{CreatedAt: w.CreatedAt, ID: w.ID}
}

// Outcome is the payout provider's answer for a withdrawal.
type Outcome struct {
	Succeeded         bool
	Reason            string // why it failed, shown to the user
	ReasonCode        string // the provider's failure code, for machines
	ProviderReference string
	// Source says what told paygate: SourceCreate, SourceCallback,
	// SourcePoll, or empty for a settlement made by hand.
	Source string
}

// Sources of an outcome.
const (
	SourceCreate   = "create"
	SourceCallback = "callback"
	SourcePoll     = "poll"
)

// Settle records the outcome of a withdrawal exactly once, in one
// transaction: the capture (succeeded: wallet → clearing account) or the
// release (failed) of the hold, the settlement row and the
// paygate.withdrawal.succeeded or .failed event. A repeated or concurrent
// settle fails with ErrAlreadySettled and changes nothing.
//
// Lock order: the withdrawal row first (FOR UPDATE serialises settles of
// one withdrawal), then the ledger's hold and accounts.
func (s *Service) Settle(ctx context.Context, id uuid.UUID, out Outcome) (Withdrawal, error) {
	var w Withdrawal
	err := s.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		w, err = s.settle(ctx, tx, id, out)
		return err
	})
	if err != nil {
		return Withdrawal{}, err
	}
	s.metrics.settled(ctx, w.Status, w.Amount)
	return w, nil
}

// settle is Settle in tx; the caller counts the settlement once tx
// committed.
func (s *Service) settle(ctx context.Context, tx pgx.Tx, id uuid.UUID, out Outcome) (Withdrawal, error) {
	w, err := s.store.LockForSettle(ctx, tx, id)
	if err != nil {
		return Withdrawal{}, err
	}
	if w.Status != StatusPending {
		return Withdrawal{}, ErrAlreadySettled
	}
	var ledgerTx *uuid.UUID
	reason := ""
	if out.Succeeded {
		clearing, err := s.ledger.EnsureSystemAccount(ctx, tx, ledger.ClearingCode(string(s.provider)), w.Currency)
		if err != nil {
			return Withdrawal{}, err
		}
		posted, err := s.ledger.CaptureHold(ctx, tx, w.holdID, clearing.ID, ledger.KindWithdrawal, "withdrawal:"+id.String())
		if err != nil {
			return Withdrawal{}, err
		}
		ledgerTx = &posted.ID
		w.Status = StatusSucceeded
	} else {
		if _, err := s.ledger.ReleaseHold(ctx, tx, w.holdID); err != nil {
			return Withdrawal{}, err
		}
		reason = out.Reason
		if reason == "" {
			reason = "The bank refused the payout."
		}
		w.Status, w.FailureReason = StatusFailed, reason
	}
	at, err := s.store.InsertSettlement(ctx, tx, id, settlementRow{status: w.Status, ledgerTx: ledgerTx, reason: reason,
		reasonCode: out.ReasonCode, providerRef: out.ProviderReference, source: out.Source})
	if err != nil {
		return Withdrawal{}, err
	}
	w.SettledAt = &at
	u, err := s.users.Get(ctx, tx, w.UserID)
	if err != nil {
		return Withdrawal{}, err
	}
	wallet, err := s.ledger.WalletOf(ctx, tx, w.UserID)
	if err != nil {
		return Withdrawal{}, err
	}
	bal, err := s.ledger.Balance(ctx, tx, wallet.ID)
	if err != nil {
		return Withdrawal{}, err
	}
	typ := events.TypeWithdrawalFailed
	if out.Succeeded {
		typ = events.TypeWithdrawalSucceeded
	}
	_, err = outbox.Enqueue(ctx, tx, outbox.Event{
		Topic: s.topic, Key: w.UserID.String(), Type: typ, Subject: "withdrawals/" + id.String(),
		Data: s.event(w, u, bal.Available, reason),
	})
	return w, err
}

// PayoutDetails is what a payout provider needs to pay a withdrawal out,
// including the full bank account number, which events never carry.
type PayoutDetails struct {
	WithdrawalID      uuid.UUID
	Amount            int64
	Currency          string
	BankCode          string
	BankAccountNumber string
	BankAccountName   string
	Status            string
}

// Details returns the payout details of a withdrawal.
func (s *Service) Details(ctx context.Context, id uuid.UUID) (PayoutDetails, error) {
	w, err := s.store.Get(ctx, s.db.Pool, id, nil)
	if err != nil {
		return PayoutDetails{}, err
	}
	return PayoutDetails{WithdrawalID: w.ID, Amount: w.Amount, Currency: w.Currency, BankCode: w.BankCode,
		BankAccountNumber: w.fullAccount, BankAccountName: w.BankAccountName, Status: w.Status}, nil
}
