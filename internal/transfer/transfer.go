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
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/metric"

	"github.com/paygate/paygate/internal/events"
	"github.com/paygate/paygate/internal/ledger"
	"github.com/paygate/paygate/internal/movement"
	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/batch"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/idempotency"
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
	// ErrSenderInactive refuses a reversal that would credit a deactivated
	// sender's wallet.
	ErrSenderInactive = apperr.New(apperr.KindBusinessRule, "SENDER_INACTIVE", "The sender is deactivated; the reversal would credit an inactive wallet.")
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

	fromUserID, toUserID, ledgerTx uuid.UUID
}

// direct sets the direction of t as the caller sees it.
func (t Transfer) direct(caller authn.Principal) Transfer {
	switch caller.UserID {
	case t.fromUserID:
		t.Direction = "sent"
	case t.toUserID:
		t.Direction = "received"
	}
	return t
}

func (t Transfer) position() pagination.Position {
	return pagination.Position{CreatedAt: t.CreatedAt, ID: t.ID}
}

// Ledger is what transfers need of the ledger.
type Ledger interface {
	movement.LedgerReverser
	WalletsOf(ctx context.Context, q postgres.Querier, userIDs []uuid.UUID) (map[uuid.UUID]ledger.Account, error)
	Post(ctx context.Context, tx pgx.Tx, t ledger.Transaction) (ledger.PostedTransaction, error)
	QueueLockWallets(b *pgx.Batch, owners []uuid.UUID) *ledger.WalletLocks
	PlanLocked(l *ledger.WalletLocks, ts []ledger.Transaction) (*ledger.Plan, []error, error)
}

// Users is what transfers need of the users domain: finding the recipient,
// and share-locking both parties against a concurrent deactivation.
type Users interface {
	Get(ctx context.Context, q postgres.Querier, id uuid.UUID) (users.User, error)
	GetByEmail(ctx context.Context, q postgres.Querier, email string) (users.User, error)
	GetByAccountNumber(ctx context.Context, q postgres.Querier, number string) (users.User, error)
	LockMany(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) (map[uuid.UUID]users.User, error)
	QueueLockNamed(b *pgx.Batch, ids []uuid.UUID, numbers, emails []string, into map[uuid.UUID]users.User)
}

// Service books and reads transfers.
type Service struct {
	db      *postgres.DB
	keys    *idempotency.Store
	ledger  Ledger
	users   Users
	store   Store
	cfg     config.Money
	limit   movement.Limit
	topic   string
	metrics *metrics
	// batches books concurrent transfers together (group commit); nil, or
	// not running, books each transfer in its own transaction.
	batches *batch.Committer[item, outcome]
	// parties names the wallets of queued transfers for the committer's
	// scheduling (see parties).
	parties parties
	// relay, when set, is woken after a batch that enqueued events
	// commits, instead of the batch sending a NOTIFY (see
	// outbox.QueueMany).
	relay Waker
}

// Waker is the outbox relay of this process, as batches wake it.
type Waker interface{ Wake() }

// WakeAfterCommit has batches wake w once they commit instead of
// notifying every relay from inside their transaction: a NOTIFY holds a
// database-wide lock through the commit's WAL flush, so concurrent
// batches that notify cannot share a flush.
func (s *Service) WakeAfterCommit(w Waker) {
	s.relay = w
}

// NewService returns the service; m may be nil. Transfers are booked one
// transaction each until UseBatches gives it a group committer.
func NewService(db *postgres.DB, keys *idempotency.Store, l Ledger, u Users, cfg config.Money, topic string, m *metrics) *Service {
	return &Service{db: db, keys: keys, ledger: l, users: u, cfg: cfg, topic: topic, metrics: m,
		limit: movement.Limit{Noun: "transfer", Min: cfg.TransferMin, Max: cfg.TransferMax, Currency: cfg.Currency}}
}

// UseBatches has the service book concurrent transfers in batches of up
// to opts.MaxSize, one transaction and one commit each (see bookBatch).
// The committer runs between its Start and Stop; the service books alone
// whatever arrives outside them.
func (s *Service) UseBatches(opts batch.Options[item], mp metric.MeterProvider) (*batch.Committer[item, outcome], error) {
	opts.Keys = s.parties.keys
	c, err := batch.New(CommitterName, s.bookItems, opts, mp)
	if err != nil {
		return nil, err
	}
	s.batches = c
	return c, nil
}

// bookItems adapts bookBatch to the committer.
func (s *Service) bookItems(ctx context.Context, items []item) []batch.Result[outcome] {
	outs := s.bookBatch(ctx, items)
	res := make([]batch.Result[outcome], len(outs))
	for i, o := range outs {
		res[i] = batch.Result[outcome]{Value: o}
	}
	return res
}

// CreateRequest is the body of POST /v1/transfers.
type CreateRequest struct {
	To     string `json:"to"`
	Amount int64  `json:"amount"`
	Note   string `json:"note"`
}

// Request is a validated transfer request.
type Request struct {
	To     string
	Amount int64
	Note   string
}

var digits16 = regexp.MustCompile(`^[0-9]{16}$`)

// Validate checks the shape of a request and the configured limits.
func (s *Service) Validate(in CreateRequest) (Request, error) {
	to := strings.TrimSpace(in.To)
	var toField, note *apperr.FieldError
	switch {
	case to == "":
		toField = &apperr.FieldError{Field: "to", Message: "is required: an account number, an email or a user id"}
	case digits16.MatchString(to) && !users.ValidAccountNumber(to):
		toField = &apperr.FieldError{Field: "to", Message: "is not a valid account number (check digit)"}
	}
	if utf8.RuneCountInString(in.Note) > 140 {
		note = &apperr.FieldError{Field: "note", Message: "must be at most 140 characters"}
	}
	if err := movement.Invalid(toField, movement.AmountField(in.Amount), note); err != nil {
		return Request{}, err
	}
	if err := s.limit.Check(in.Amount); err != nil {
		return Request{}, err
	}
	return Request{To: to, Amount: in.Amount, Note: strings.TrimSpace(in.Note)}, nil
}

// Create validates in and books the transfer under the claim, once: in a
// batch with the transfers that arrive at the same time when the service
// has a running committer, else in a transaction of its own.
func (s *Service) Create(ctx context.Context, c idempotency.Claim, caller authn.Principal, in CreateRequest) (idempotency.Response, error) {
	if s.batches != nil {
		req, err := s.Validate(in)
		if err != nil {
			s.metrics.record(ctx, "rejected", 0)
			return idempotency.Response{}, err
		}
		o, err := s.batches.Do(ctx, item{ctx: ctx, claim: c, caller: caller, req: req})
		if !errors.Is(err, batch.ErrStopped) {
			if err == nil {
				err = o.err
			}
			if err != nil {
				return idempotency.Response{}, err
			}
			if o.result != "" {
				s.metrics.record(ctx, o.result, o.amount)
			}
			return o.res, nil
		}
	}
	return movement.Create(ctx, s.keys, c,
		func() (Request, error) { return s.Validate(in) },
		func(ctx context.Context, tx pgx.Tx, req Request) (Transfer, error) {
			return s.book(ctx, tx, caller, req)
		},
		func(req *Request, result string) {
			var amount int64
			if req != nil && result == "success" {
				amount = req.Amount
			}
			s.metrics.record(ctx, result, amount)
		})
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

// book books the transfer in tx.
//
// Lock order: the two user rows are share-locked in id order (against a
// concurrent deactivation; one statement, users.LockMany), then the ledger
// locks both wallets in id order; every movement follows the same order,
// so transfers in opposite directions between the same wallets cannot
// deadlock.
func (s *Service) book(ctx context.Context, tx pgx.Tx, caller authn.Principal, req Request) (Transfer, error) {
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
	if t.CreatedAt, err = s.store.Insert(ctx, tx, t, posted.ID); err != nil {
		return Transfer{}, err
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

// Get returns a transfer the caller sent or received (any for admins);
// another's answers ErrNotFound.
func (s *Service) Get(ctx context.Context, caller authn.Principal, id uuid.UUID) (Transfer, error) {
	t, err := s.store.Get(ctx, s.db.Pool, id, movement.Visible(caller))
	return t.direct(caller), err
}

// List returns the transfers the caller sent and received, newest first;
// admins see all, or one user's with forUser.
func (s *Service) List(ctx context.Context, caller authn.Principal, forUser *uuid.UUID, limit int, cursor string) (pagination.Page[Transfer], error) {
	party := movement.Owner(caller, forUser)
	return pagination.List(cursor, limit, func(after *pagination.Position, n int) ([]Transfer, error) {
		ts, err := s.store.List(ctx, s.db.Pool, party, after, n)
		for i := range ts {
			ts[i] = ts[i].direct(caller)
		}
		return ts, err
	}, Transfer.position)
}

// Reverse books the compensating transaction of a transfer under the claim
// (the caller is an administrator; the route checked): the recipient's
// wallet pays the amount back. A second reversal is ErrAlreadyReversed; a
// recipient who spent the money since makes it
// ledger.ErrInsufficientFunds.
func (s *Service) Reverse(ctx context.Context, c idempotency.Claim, caller authn.Principal, id uuid.UUID, reason string) (idempotency.Response, error) {
	return s.keys.Run(ctx, c, func(ctx context.Context, tx pgx.Tx) (any, error) {
		return s.reverse(ctx, tx, caller, id, reason)
	})
}

func (s *Service) reverse(ctx context.Context, tx pgx.Tx, caller authn.Principal, id uuid.UUID, reason string) (Transfer, error) {
	t, err := s.store.Get(ctx, tx, id, nil)
	if err != nil {
		return Transfer{}, err
	}
	t = t.direct(caller)
	// The reversal credits the sender: both parties' rows are share-locked
	// first (the lock order of book), and a deactivated sender refuses it,
	// since money must never reach a deactivated wallet.
	locked, err := s.users.LockMany(ctx, tx, []uuid.UUID{t.fromUserID, t.toUserID})
	if err != nil {
		return Transfer{}, err
	}
	if sender, ok := locked[t.fromUserID]; !ok || !sender.Active {
		return Transfer{}, ErrSenderInactive
	}
	posted, err := movement.Reverse(ctx, tx, s.ledger, t.ledgerTx, "transfer-reversal:"+id.String())
	if err != nil {
		return Transfer{}, err
	}
	at, err := s.store.InsertReversal(ctx, tx, id, caller.UserID, reason, posted.ID)
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
