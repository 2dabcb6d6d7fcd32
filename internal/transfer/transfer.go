// Package transfer moves money between wallets: POST /v1/transfers books
// sender wallet → recipient wallet in the ledger, records the transfer and
// enqueues one paygate.transfer.succeeded event, in one transaction under
// the caller's Idempotency-Key. Insufficient funds write nothing but the
// stored refusal. Admins reverse a transfer with a compensating
// transaction.
package transfer

import (
	"context"
	"errors"
	"fmt"
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
	"github.com/paygate/paygate/internal/platform/outbox"
	"github.com/paygate/paygate/internal/platform/pagination"
	"github.com/paygate/paygate/internal/platform/postgres"
	"github.com/paygate/paygate/internal/users"
)

// Errors of the transfer domain.
var (
	ErrNotFound          = apperr.New(apperr.KindNotFound, "NOT_FOUND", "The transfer does not exist.")
	ErrSelfTransfer      = apperr.New(apperr.KindBusinessRule, "SELF_TRANSFER", "You cannot transfer money to yourself.")
	ErrRecipientNotFound = apperr.New(apperr.KindBusinessRule, "RECIPIENT_NOT_FOUND", "No active user matches the recipient.")
)

// Statuses of a transfer.
const (
	StatusSucceeded = "succeeded"
	StatusReversed  = "reversed"
)

// Transfer is a transfer as the API shows it. Direction is relative to
// the caller: "sent" or "received" ("" for an admin who is neither).
type Transfer struct {
	ID                uuid.UUID  `json:"id"`
	Amount            int64      `json:"amount"`
	Currency          string     `json:"currency"`
	FromAccountNumber string     `json:"from_account_number"`
	ToAccountNumber   string     `json:"to_account_number"`
	Note              string     `json:"note"`
	Status            string     `json:"status"`
	Direction         string     `json:"direction,omitempty"`
	CreatedAt         time.Time  `json:"created_at"`
	ReversedAt        *time.Time `json:"reversed_at"`

	fromUserID, toUserID uuid.UUID
}

// Service books and reads transfers.
type Service struct {
	db      *postgres.DB
	ledger  *ledger.Store
	users   *users.Store
	cfg     config.Money
	topic   string
	metrics *metrics
}

// NewService returns the service; m may be nil.
func NewService(db *postgres.DB, l *ledger.Store, u *users.Store, cfg config.Money, topic string, m *metrics) *Service {
	return &Service{db: db, ledger: l, users: u, cfg: cfg, topic: topic, metrics: m}
}

// Request is a validated transfer request.
type Request struct {
	To     string
	Amount int64
	Note   string
}

var digits16 = regexp.MustCompile(`^[0-9]{16}$`)

// Validate checks the shape of a request and the configured limits.
func (s *Service) Validate(to string, amount int64, note string) (Request, error) {
	to = strings.TrimSpace(to)
	var fields []apperr.FieldError
	switch {
	case to == "":
		fields = append(fields, apperr.FieldError{Field: "to", Message: "is required: an account number, an email or a user id"})
	case digits16.MatchString(to) && !users.ValidAccountNumber(to):
		fields = append(fields, apperr.FieldError{Field: "to", Message: "is not a valid account number (check digit)"})
	}
	if amount <= 0 {
		fields = append(fields, apperr.FieldError{Field: "amount", Message: "must be a positive integer in minor units"})
	}
	if utf8.RuneCountInString(note) > 140 {
		fields = append(fields, apperr.FieldError{Field: "note", Message: "must be at most 140 characters"})
	}
	if len(fields) > 0 {
		return Request{}, apperr.Validation("The request has invalid fields.", fields...)
	}
	if amount < s.cfg.TransferMin || amount > s.cfg.TransferMax {
		return Request{}, movement.ErrAmountOutOfRange.With(fmt.Sprintf("A transfer must be between %d and %d %s.", s.cfg.TransferMin, s.cfg.TransferMax, s.cfg.Currency))
	}
	return Request{To: to, Amount: amount, Note: strings.TrimSpace(note)}, nil
}

// resolve finds the recipient named by an account number, an email or a
// user id.
func (s *Service) resolve(ctx context.Context, q postgres.Querier, to string) (users.User, error) {
	var u users.User
	var err error
	switch {
	case digits16.MatchString(to):
		u, err = s.users.GetByAccountNumber(ctx, q, to)
	case strings.Contains(to, "@"):
		u, err = s.users.GetByEmail(ctx, q, to)
	default:
		id, perr := uuid.Parse(to)
		if perr != nil {
			return users.User{}, ErrRecipientNotFound
		}
		u, err = s.users.Get(ctx, q, id)
	}
	if errors.Is(err, users.ErrNotFound) {
		return users.User{}, ErrRecipientNotFound
	}
	return u, err
}

// Create books the transfer in tx.
//
// Lock order: the two user rows are share-locked in id order (against a
// concurrent deactivation; one statement, users.LockMany), then the ledger
// locks both wallets in id order;
// every movement follows the same order, so transfers in opposite
// directions between the same wallets cannot deadlock.
func (s *Service) Create(ctx context.Context, tx pgx.Tx, caller authn.Principal, req Request) (Transfer, error) {
	rcpt, err := s.resolve(ctx, tx, req.To)
	if err != nil {
		return Transfer{}, err
	}
	if rcpt.ID == caller.UserID {
		return Transfer{}, ErrSelfTransfer
	}
	ids := []uuid.UUID{caller.UserID, rcpt.ID}
	locked, err := s.users.LockMany(ctx, tx, ids)
	if err != nil {
		return Transfer{}, err
	}
	sender, okS := locked[caller.UserID]
	rcpt, okR := locked[rcpt.ID]
	switch {
	case !okR || !rcpt.Active:
		return Transfer{}, ErrRecipientNotFound
	case !okS:
		return Transfer{}, users.ErrNotFound
	case !sender.Active:
		return Transfer{}, users.ErrInactive
	}
	wallets, err := s.ledger.WalletsOf(ctx, tx, ids)
	if err != nil {
		return Transfer{}, err
	}
	from, to := wallets[sender.ID], wallets[rcpt.ID]
	id := uuid.New()
	posted, err := s.ledger.Post(ctx, tx, ledger.Transaction{
		Kind: ledger.KindTransfer, Reference: id.String(), Currency: s.cfg.Currency,
		Postings: []ledger.Posting{{AccountID: from.ID, Amount: -req.Amount}, {AccountID: to.ID, Amount: req.Amount}},
	})
	if err != nil {
		return Transfer{}, err
	}
	t := Transfer{ID: id, Amount: req.Amount, Currency: s.cfg.Currency, FromAccountNumber: sender.AccountNumber,
		ToAccountNumber: rcpt.AccountNumber, Note: req.Note, Status: StatusSucceeded, Direction: "sent",
		fromUserID: sender.ID, toUserID: rcpt.ID}
	if err := tx.QueryRow(ctx, `-- name: InsertTransfer
INSERT INTO transfers (id, from_user_id, to_user_id, from_account_number, to_account_number, amount, currency, note, ledger_transaction_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING created_at`,
		t.ID, sender.ID, rcpt.ID, t.FromAccountNumber, t.ToAccountNumber, t.Amount, t.Currency, t.Note, posted.ID).Scan(&t.CreatedAt); err != nil {
		return Transfer{}, fmt.Errorf("insert transfer: %w", err)
	}
	_, err = outbox.Enqueue(ctx, tx, outbox.Event{
		Topic: s.topic, Key: sender.ID.String(), Type: events.TypeTransferSucceeded, Subject: "transfers/" + id.String(),
		Data: events.TransferSucceeded{TransferID: id, Amount: t.Amount, Currency: t.Currency, Note: t.Note, CreatedAt: t.CreatedAt,
			Sender:    party(sender, movement.BalanceAfter(posted, from.ID)),
			Recipient: party(rcpt, movement.BalanceAfter(posted, to.ID))},
	})
	return t, err
}

func party(u users.User, balance int64) events.TransferParty {
	return events.TransferParty{UserID: u.ID, Email: u.Email, Firstname: u.Firstname, Lastname: u.Lastname,
		AccountNumber: u.AccountNumber, BalanceAfter: balance}
}

const selectTransfer = `SELECT t.id, t.from_user_id, t.to_user_id, t.from_account_number, t.to_account_number,
  t.amount, t.currency, t.note, t.created_at, r.created_at
FROM transfers t LEFT JOIN transfer_reversals r ON r.transfer_id = t.id`

func scanTransfer(row pgx.Row, caller authn.Principal) (Transfer, error) {
	var t Transfer
	err := row.Scan(&t.ID, &t.fromUserID, &t.toUserID, &t.FromAccountNumber, &t.ToAccountNumber,
		&t.Amount, &t.Currency, &t.Note, &t.CreatedAt, &t.ReversedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Transfer{}, ErrNotFound
	}
	t.Status = StatusSucceeded
	if t.ReversedAt != nil {
		t.Status = StatusReversed
	}
	switch caller.UserID {
	case t.fromUserID:
		t.Direction = "sent"
	case t.toUserID:
		t.Direction = "received"
	}
	return t, err
}

// Get returns a transfer the caller sent or received (any for admins);
// another's answers ErrNotFound.
func (s *Service) Get(ctx context.Context, caller authn.Principal, id uuid.UUID) (Transfer, error) {
	t, err := scanTransfer(s.db.Pool.QueryRow(ctx, `-- name: GetTransfer
`+selectTransfer+` WHERE t.id = $1`, id), caller)
	if err != nil {
		return Transfer{}, err
	}
	if !caller.IsAdmin() && t.Direction == "" {
		return Transfer{}, ErrNotFound
	}
	return t, nil
}

// List returns the transfers the caller sent and received, newest first;
// admins see all, or one user's with forUser.
func (s *Service) List(ctx context.Context, caller authn.Principal, forUser *uuid.UUID, limit int, cursor string) (pagination.Page[Transfer], error) {
	return movement.ListQuery(ctx, s.db.Pool, `-- name: ListTransfers
`+selectTransfer+`
WHERE ($1::uuid IS NULL OR t.from_user_id = $1 OR t.to_user_id = $1)
  AND ($2::timestamptz IS NULL OR (t.created_at, t.id) < ($2, $3))
ORDER BY t.created_at DESC, t.id DESC
LIMIT $4`, movement.Owner(caller, forUser), limit, cursor,
		func(r pgx.Row) (Transfer, error) { return scanTransfer(r, caller) },
		func(t Transfer) pagination.Position { return pagination.Position{CreatedAt: t.CreatedAt, ID: t.ID} })
}

// Reverse books the compensating transaction of a transfer (admins only):
// the recipient's wallet pays the amount back. A second reversal is
// ErrAlreadyReversed; a recipient who spent the money since makes it
// ledger.ErrInsufficientFunds.
func (s *Service) Reverse(ctx context.Context, tx pgx.Tx, caller authn.Principal, id uuid.UUID, reason string) (Transfer, error) {
	if !caller.IsAdmin() {
		return Transfer{}, apperr.ErrForbidden
	}
	var ledgerTx uuid.UUID
	if err := tx.QueryRow(ctx, `-- name: GetTransferLedgerTx
SELECT ledger_transaction_id FROM transfers WHERE id = $1`, id).Scan(&ledgerTx); errors.Is(err, pgx.ErrNoRows) {
		return Transfer{}, ErrNotFound
	} else if err != nil {
		return Transfer{}, err
	}
	t, err := scanTransfer(tx.QueryRow(ctx, selectTransfer+` WHERE t.id = $1`, id), caller)
	if err != nil {
		return Transfer{}, err
	}
	_, at, err := movement.Reversal(ctx, tx, s.ledger, ledgerTx, "transfer-reversal:"+id.String(), `-- name: InsertTransferReversal
INSERT INTO transfer_reversals (transfer_id, reversed_by, reason, ledger_transaction_id) VALUES ($1, $2, $3, $4)
RETURNING created_at`, id, caller.UserID, reason)
	if err != nil {
		return Transfer{}, err
	}
	t.Status, t.ReversedAt = StatusReversed, &at
	_, err = outbox.Enqueue(ctx, tx, outbox.Event{
		Topic: s.topic, Key: t.fromUserID.String(), Type: events.TypeTransferReversed, Subject: "transfers/" + id.String(),
		Data: events.TransferReversed{TransferID: id, FromUserID: t.fromUserID, ToUserID: t.toUserID, Amount: t.Amount,
			Currency: t.Currency, Reason: reason, ReversedAt: at},
	})
	return t, err
}
