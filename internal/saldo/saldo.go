// Package saldo is the HTTP surface of the ledger: a user's balance,
// available and held money, their statement, every wallet for
// administrators and the admin ledger verification. It also opens a
// wallet for every new user and tells the users domain whether a user
// still holds money. No endpoint sets a balance: balances change only by
// posting transactions, which the money movement domains do.
package saldo

import (
	"context"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/ledger"
	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/platform/pagination"
	"github.com/paygate/paygate/internal/platform/postgres"
	"github.com/paygate/paygate/internal/users"
)

// Domain is the paygate.domain of the saldo endpoints.
const Domain = "saldo"

// Saldo is a wallet's balance as the API shows it.
type Saldo struct {
	UserID        uuid.UUID `json:"user_id"`
	AccountNumber string    `json:"account_number"`
	Currency      string    `json:"currency"`
	Balance       int64     `json:"balance"`
	Available     int64     `json:"available"`
	Held          int64     `json:"held"`
}

// StatementEntry is one line of a statement.
type StatementEntry struct {
	// ID is the entry's public id (see ledger.EntryPublicID), a UUID like
	// every other id of the API; the internal sequence number stays
	// internal.
	ID            uuid.UUID `json:"id"`
	TransactionID uuid.UUID `json:"transaction_id"`
	Kind          string    `json:"kind"`
	Reference     string    `json:"reference"`
	Amount        int64     `json:"amount"`
	BalanceAfter  int64     `json:"balance_after"`
	CreatedAt     time.Time `json:"created_at"`
}

// Ledger is what the saldo endpoints read of the ledger.
type Ledger interface {
	WalletOf(ctx context.Context, q postgres.Querier, userID uuid.UUID) (ledger.Account, error)
	Statement(ctx context.Context, q postgres.Querier, accountID uuid.UUID, limit int, cursor ledger.Cursor) ([]ledger.Entry, ledger.Cursor, error)
	ListWallets(ctx context.Context, q postgres.Querier, limit int, cursor ledger.Cursor) ([]ledger.Account, ledger.Cursor, error)
}

// Users is what the saldo endpoints read of the users domain: the owner of
// a wallet, for its account number.
type Users interface {
	Get(ctx context.Context, q postgres.Querier, id uuid.UUID) (users.User, error)
	GetMany(ctx context.Context, q postgres.Querier, ids []uuid.UUID) (map[uuid.UUID]users.User, error)
}

// Verification verifies the ledger on demand and records the outcome.
type Verification interface {
	Run(ctx context.Context) (ledger.Report, error)
}

// Handler serves the read-only saldo endpoints and the admin ledger
// verification.
type Handler struct {
	ledger   Ledger
	users    Users
	verifier Verification
	pool     *pgxpool.Pool
	auth     authn.Authenticator
	log      *zap.Logger
}

// NewHandler returns the handler.
func NewHandler(l Ledger, u Users, v Verification, pool *pgxpool.Pool, auth authn.Authenticator, log *zap.Logger) *Handler {
	return &Handler{ledger: l, users: u, verifier: v, pool: pool, auth: auth, log: log}
}

// RegisterRoutes adds the saldo routes; all require authentication.
func (h *Handler) RegisterRoutes(r *mux.Router) {
	rt := httpserver.NewRouter(r, Domain, h.log, h.auth.Require)
	rt.Handle(http.MethodGet, "/v1/saldo", h.own)
	rt.Handle(http.MethodGet, "/v1/saldo/statement", h.statement)
	rt.Handle(http.MethodGet, "/v1/users/{id}/saldo", h.ofUser)
	rt.Handle(http.MethodGet, "/v1/saldos", h.all)
	rt.Handle(http.MethodGet, "/v1/admin/ledger/verify", h.verify)
}

func (h *Handler) saldoOf(ctx context.Context, userID uuid.UUID) (Saldo, error) {
	u, err := h.users.Get(ctx, h.pool, userID)
	if err != nil {
		return Saldo{}, err
	}
	w, err := h.ledger.WalletOf(ctx, h.pool, u.ID)
	if err != nil {
		return Saldo{}, err
	}
	return Saldo{UserID: u.ID, AccountNumber: u.AccountNumber, Currency: w.Currency, Balance: w.Balance,
		Available: w.Available(), Held: w.Held}, nil
}

func (h *Handler) own(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.FromRequest(r)
	if err != nil {
		return err
	}
	s, err := h.saldoOf(r.Context(), p.UserID)
	if err != nil {
		return err
	}
	httpserver.WriteJSON(w, http.StatusOK, s)
	return nil
}

func (h *Handler) statement(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.FromRequest(r)
	if err != nil {
		return err
	}
	limit, cursor, err := httpserver.PageParams(r)
	if err != nil {
		return err
	}
	wallet, err := h.ledger.WalletOf(r.Context(), h.pool, p.UserID)
	if err != nil {
		return err
	}
	entries, next, err := h.ledger.Statement(r.Context(), h.pool, wallet.ID, limit, ledger.Cursor(cursor))
	if err != nil {
		return err
	}
	out := pagination.Page[StatementEntry]{Data: make([]StatementEntry, 0, len(entries)), NextCursor: nextCursor(next)}
	for _, e := range entries {
		out.Data = append(out.Data, StatementEntry{ID: ledger.EntryPublicID(e.TransactionID, e.AccountID), TransactionID: e.TransactionID,
			Kind: e.TransactionKind, Reference: e.Reference, Amount: e.Amount, BalanceAfter: e.BalanceAfter, CreatedAt: e.CreatedAt})
	}
	httpserver.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (h *Handler) ofUser(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.FromRequest(r)
	if err != nil {
		return err
	}
	id, err := httpserver.PathUUID(r, "id")
	if err != nil || !p.CanAccessUser(id) {
		return users.ErrNotFound
	}
	s, err := h.saldoOf(r.Context(), id)
	if err != nil {
		return err
	}
	httpserver.WriteJSON(w, http.StatusOK, s)
	return nil
}

func (h *Handler) all(w http.ResponseWriter, r *http.Request) error {
	if _, err := authn.AdminFromRequest(r); err != nil {
		return err
	}
	limit, cursor, err := httpserver.PageParams(r)
	if err != nil {
		return err
	}
	wallets, next, err := h.ledger.ListWallets(r.Context(), h.pool, limit, ledger.Cursor(cursor))
	if err != nil {
		return err
	}
	ids := make([]uuid.UUID, 0, len(wallets))
	for _, a := range wallets {
		if a.OwnerUserID != nil {
			ids = append(ids, *a.OwnerUserID)
		}
	}
	owners, err := h.users.GetMany(r.Context(), h.pool, ids)
	if err != nil {
		return err
	}
	out := pagination.Page[Saldo]{Data: make([]Saldo, 0, len(wallets)), NextCursor: nextCursor(next)}
	for _, a := range wallets {
		if a.OwnerUserID == nil {
			continue
		}
		out.Data = append(out.Data, Saldo{UserID: *a.OwnerUserID, AccountNumber: owners[*a.OwnerUserID].AccountNumber,
			Currency: a.Currency, Balance: a.Balance, Available: a.Available(), Held: a.Held})
	}
	httpserver.WriteJSON(w, http.StatusOK, out)
	return nil
}

// nextCursor is the list's next_cursor: null on the last page.
func nextCursor(c ledger.Cursor) *string {
	if c == "" {
		return nil
	}
	s := string(c)
	return &s
}

// VerifyResult is the body of GET /v1/admin/ledger/verify.
type VerifyResult struct {
	OK           bool               `json:"ok"`
	Accounts     int64              `json:"accounts"`
	Transactions int64              `json:"transactions"`
	Entries      int64              `json:"entries"`
	ActiveHolds  int64              `json:"active_holds"`
	Violations   []ledger.Violation `json:"violations"`
}

// ResultOf converts a report for output.
func ResultOf(rep ledger.Report) VerifyResult {
	v := rep.Violations
	if v == nil {
		v = []ledger.Violation{}
	}
	return VerifyResult{OK: rep.OK(), Accounts: rep.Accounts, Transactions: rep.Transactions, Entries: rep.Entries,
		ActiveHolds: rep.ActiveHolds, Violations: v}
}

func (h *Handler) verify(w http.ResponseWriter, r *http.Request) error {
	if _, err := authn.AdminFromRequest(r); err != nil {
		return err
	}
	rep, err := h.verifier.Run(r.Context())
	if err != nil {
		return err
	}
	httpserver.WriteJSON(w, http.StatusOK, ResultOf(rep))
	return nil
}
