package ledger

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/httpserver"
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
	// ID is the entry's public id (see EntryPublicID), a UUID like every
	// other id of the API; the internal sequence number stays internal.
	ID            uuid.UUID `json:"id"`
	TransactionID uuid.UUID `json:"transaction_id"`
	Kind          string    `json:"kind"`
	Reference     string    `json:"reference"`
	Amount        int64     `json:"amount"`
	BalanceAfter  int64     `json:"balance_after"`
	CreatedAt     time.Time `json:"created_at"`
}

// list is a page of a list endpoint.
type list[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// SaldoHandler serves the read-only saldo endpoints and the admin ledger
// verification. No endpoint sets a balance: balances change only by
// posting transactions.
type SaldoHandler struct {
	store    *Store
	verifier *Verifier
	users    *users.Store
	pool     *pgxpool.Pool
	auth     authn.Authenticator
	log      *zap.Logger
	verified func(ctx context.Context, r Report)
}

// NewSaldoHandler returns the handler. verified, if not nil, is told the
// outcome of each verification (for the metric).
func NewSaldoHandler(store *Store, verifier *Verifier, u *users.Store, pool *pgxpool.Pool, auth authn.Authenticator, log *zap.Logger, verified func(context.Context, Report)) *SaldoHandler {
	return &SaldoHandler{store: store, verifier: verifier, users: u, pool: pool, auth: auth, log: log, verified: verified}
}

// RegisterRoutes adds the saldo routes; all require authentication.
func (h *SaldoHandler) RegisterRoutes(r *mux.Router) {
	rt := httpserver.NewRouter(r, Domain, h.log, h.auth.Require)
	rt.Handle(http.MethodGet, "/v1/saldo", h.own)
	rt.Handle(http.MethodGet, "/v1/saldo/statement", h.statement)
	rt.Handle(http.MethodGet, "/v1/users/{id}/saldo", h.ofUser)
	rt.Handle(http.MethodGet, "/v1/saldos", h.all)
	rt.Handle(http.MethodGet, "/v1/admin/ledger/verify", h.verify)
}

func (h *SaldoHandler) saldoOf(ctx context.Context, u users.User) (Saldo, error) {
	w, err := h.store.WalletOf(ctx, h.pool, u.ID)
	if err != nil {
		return Saldo{}, err
	}
	return Saldo{UserID: u.ID, AccountNumber: u.AccountNumber, Currency: w.Currency, Balance: w.Balance,
		Available: w.Available(), Held: w.Held}, nil
}

func (h *SaldoHandler) own(w http.ResponseWriter, r *http.Request) error {
	p, _ := authn.FromContext(r.Context())
	u, err := h.users.Get(r.Context(), h.pool, p.UserID)
	if err != nil {
		return err
	}
	s, err := h.saldoOf(r.Context(), u)
	if err != nil {
		return err
	}
	httpserver.WriteJSON(w, http.StatusOK, s)
	return nil
}

func (h *SaldoHandler) statement(w http.ResponseWriter, r *http.Request) error {
	p, _ := authn.FromContext(r.Context())
	limit, cursor, err := httpserver.PageParams(r)
	if err != nil {
		return err
	}
	wallet, err := h.store.WalletOf(r.Context(), h.pool, p.UserID)
	if err != nil {
		return err
	}
	entries, next, err := h.store.Statement(r.Context(), h.pool, wallet.ID, limit, Cursor(cursor))
	if err != nil {
		return err
	}
	out := list[StatementEntry]{Data: make([]StatementEntry, 0, len(entries))}
	for _, e := range entries {
		out.Data = append(out.Data, StatementEntry{ID: EntryPublicID(e.TransactionID, e.AccountID), TransactionID: e.TransactionID, Kind: e.TransactionKind,
			Reference: e.Reference, Amount: e.Amount, BalanceAfter: e.BalanceAfter, CreatedAt: e.CreatedAt})
	}
	if next != "" {
		c := string(next)
		out.NextCursor = &c
	}
	httpserver.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (h *SaldoHandler) ofUser(w http.ResponseWriter, r *http.Request) error {
	p, _ := authn.FromContext(r.Context())
	id, err := httpserver.PathUUID(r, "id")
	if err != nil || !p.CanAccessUser(id) {
		return apperr.ErrNotFound
	}
	u, err := h.users.Get(r.Context(), h.pool, id)
	if err != nil {
		return err
	}
	s, err := h.saldoOf(r.Context(), u)
	if err != nil {
		return err
	}
	httpserver.WriteJSON(w, http.StatusOK, s)
	return nil
}

func (h *SaldoHandler) all(w http.ResponseWriter, r *http.Request) error {
	p, _ := authn.FromContext(r.Context())
	if !p.IsAdmin() {
		return apperr.ErrForbidden
	}
	limit, cursor, err := httpserver.PageParams(r)
	if err != nil {
		return err
	}
	wallets, next, err := h.store.ListWallets(r.Context(), h.pool, limit, Cursor(cursor))
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
	out := list[Saldo]{Data: make([]Saldo, 0, len(wallets))}
	for _, a := range wallets {
		if a.OwnerUserID == nil {
			continue
		}
		out.Data = append(out.Data, Saldo{UserID: *a.OwnerUserID, AccountNumber: owners[*a.OwnerUserID].AccountNumber,
			Currency: a.Currency, Balance: a.Balance, Available: a.Available(), Held: a.Held})
	}
	if next != "" {
		c := string(next)
		out.NextCursor = &c
	}
	httpserver.WriteJSON(w, http.StatusOK, out)
	return nil
}

// VerifyResult is the body of GET /v1/admin/ledger/verify.
type VerifyResult struct {
	OK           bool        `json:"ok"`
	Accounts     int64       `json:"accounts"`
	Transactions int64       `json:"transactions"`
	Entries      int64       `json:"entries"`
	ActiveHolds  int64       `json:"active_holds"`
	Violations   []Violation `json:"violations"`
}

// ResultOf converts a report for output.
func ResultOf(rep Report) VerifyResult {
	v := rep.Violations
	if v == nil {
		v = []Violation{}
	}
	return VerifyResult{OK: rep.OK(), Accounts: rep.Accounts, Transactions: rep.Transactions, Entries: rep.Entries,
		ActiveHolds: rep.ActiveHolds, Violations: v}
}

func (h *SaldoHandler) verify(w http.ResponseWriter, r *http.Request) error {
	p, _ := authn.FromContext(r.Context())
	if !p.IsAdmin() {
		return apperr.ErrForbidden
	}
	rep, err := h.verifier.Verify(r.Context(), h.pool)
	if err != nil {
		return err
	}
	if h.verified != nil {
		h.verified(r.Context(), rep)
	}
	httpserver.WriteJSON(w, http.StatusOK, ResultOf(rep))
	return nil
}

// Wallets opens a wallet for every new user and tells whether a user still
// holds money. It implements auth.AccountHook and users.MoneyHolder.
type Wallets struct {
	store    *Store
	currency string
}

// NewWallets returns the hook for currency.
func NewWallets(s *Store, currency string) *Wallets { return &Wallets{store: s, currency: currency} }

// OnAccountCreated opens the user's wallet in the registration transaction.
func (w *Wallets) OnAccountCreated(ctx context.Context, tx pgx.Tx, u users.User) error {
	_, err := w.store.OpenWallet(ctx, tx, u.ID, w.currency)
	return err
}

// HoldsMoney reports whether the user's wallet has a non-zero balance or
// held money. It locks the wallet row, so a movement into it cannot commit
// between this check and the caller's deactivation.
func (w *Wallets) HoldsMoney(ctx context.Context, tx pgx.Tx, userID uuid.UUID) (bool, error) {
	a, err := w.store.WalletOf(ctx, tx, userID)
	if errors.Is(err, ErrAccountNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var balance, held int64
	if err := tx.QueryRow(ctx, `-- name: LockWalletForDeactivation
SELECT balance, held FROM ledger_accounts WHERE id = $1 FOR UPDATE`, a.ID).Scan(&balance, &held); err != nil {
		return false, err
	}
	return balance != 0 || held != 0, nil
}
