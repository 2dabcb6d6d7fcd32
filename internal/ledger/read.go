package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/platform/postgres"
)

// Page sizes of Statement and ListWallets.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

func pageSize(limit int) int {
	switch {
	case limit <= 0:
		return DefaultPageSize
	case limit > MaxPageSize:
		return MaxPageSize
	}
	return limit
}

// Account returns the account id.
func (s *Store) Account(ctx context.Context, q postgres.Querier, id uuid.UUID) (Account, error) {
	a, err := scanAccount(q.QueryRow(ctx, `-- name: GetAccount
SELECT `+accountColumns+` FROM ledger_accounts WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Account{}, ErrAccountNotFound.Wrap(fmt.Errorf("account %s", id))
	}
	if err != nil {
		return Account{}, fmt.Errorf("ledger: read account: %w", err)
	}
	return a, nil
}

// WalletOf returns the wallet of userID, or ErrAccountNotFound when the
// user has none.
func (s *Store) WalletOf(ctx context.Context, q postgres.Querier, userID uuid.UUID) (Account, error) {
	a, err := scanAccount(q.QueryRow(ctx, `-- name: GetWallet
SELECT `+accountColumns+` FROM ledger_accounts WHERE owner_user_id = $1`, userID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Account{}, ErrAccountNotFound.Wrap(fmt.Errorf("wallet of user %s", userID))
	}
	if err != nil {
		return Account{}, fmt.Errorf("ledger: read wallet: %w", err)
	}
	return a, nil
}

// LockWallet returns the wallet of userID with its row locked FOR UPDATE
// until tx ends, so that no movement posts to it in between; a user
// without a wallet is ErrAccountNotFound.
func (s *Store) LockWallet(ctx context.Context, tx pgx.Tx, userID uuid.UUID) (Account, error) {
	a, err := scanAccount(tx.QueryRow(ctx, `-- name: LockWallet
SELECT `+accountColumns+` FROM ledger_accounts WHERE owner_user_id = $1 FOR UPDATE`, userID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Account{}, ErrAccountNotFound.Wrap(fmt.Errorf("wallet of user %s", userID))
	}
	if err != nil {
		return Account{}, fmt.Errorf("ledger: lock wallet: %w", err)
	}
	return a, nil
}

// WalletsOf returns the wallets of the users, by user id, in one round
// trip; a user without a wallet is ErrAccountNotFound. It locks nothing:
// Post locks the accounts it books on.
func (s *Store) WalletsOf(ctx context.Context, q postgres.Querier, userIDs []uuid.UUID) (map[uuid.UUID]Account, error) {
	rows, err := q.Query(ctx, `-- name: GetWallets
SELECT `+accountColumns+` FROM ledger_accounts WHERE owner_user_id = ANY($1)`, userIDs)
	if err != nil {
		return nil, fmt.Errorf("ledger: read wallets: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Account, error) { return scanAccount(r) })
	if err != nil {
		return nil, fmt.Errorf("ledger: read wallets: %w", err)
	}
	out := make(map[uuid.UUID]Account, len(list))
	for _, a := range list {
		if a.OwnerUserID != nil {
			out[*a.OwnerUserID] = a
		}
	}
	for _, id := range userIDs {
		if _, ok := out[id]; !ok {
			return nil, ErrAccountNotFound.Wrap(fmt.Errorf("wallet of user %s", id))
		}
	}
	return out, nil
}

// Balance returns the balance, held and available amounts of accountID.
func (s *Store) Balance(ctx context.Context, q postgres.Querier, accountID uuid.UUID) (Balances, error) {
	a, err := s.Account(ctx, q, accountID)
	if err != nil {
		return Balances{}, err
	}
	return Balances{AccountID: a.ID, Currency: a.Currency, Balance: a.Balance, Held: a.Held, Available: a.Available()}, nil
}

// Statement returns up to limit entries of accountID (DefaultPageSize when
// limit ≤ 0, at most MaxPageSize), newest first, starting after cursor (the
// zero Cursor for the newest), and the cursor of the next page, empty when
// there is none. Pagination is by keyset on the entry id, so pages have no
// gaps or duplicates however many entries are booked meanwhile. An unknown
// account is ErrAccountNotFound, a foreign cursor ErrInvalidCursor.
func (s *Store) Statement(ctx context.Context, q postgres.Querier, accountID uuid.UUID, limit int, cursor Cursor) ([]Entry, Cursor, error) {
	before, err := cursor.entryID()
	if err != nil {
		return nil, "", err
	}
	n := pageSize(limit)
	// One extra row says whether another page follows.
	rows, err := q.Query(ctx, `-- name: Statement
		SELECT e.id, e.transaction_id, e.account_id, e.amount, e.balance_after, e.created_at, t.kind, t.reference
		FROM ledger_entries e
		JOIN ledger_transactions t ON t.id = e.transaction_id
		WHERE e.account_id = $1 AND e.id < $2
		ORDER BY e.id DESC
		LIMIT $3`, accountID, before, n+1)
	if err != nil {
		return nil, "", fmt.Errorf("ledger: statement: %w", err)
	}
	entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Entry, error) {
		var e Entry
		err := r.Scan(&e.ID, &e.TransactionID, &e.AccountID, &e.Amount, &e.BalanceAfter, &e.CreatedAt, &e.TransactionKind, &e.Reference)
		return e, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("ledger: statement: %w", err)
	}
	if len(entries) == 0 {
		if _, err := s.Account(ctx, q, accountID); err != nil {
			return nil, "", err
		}
		return entries, "", nil
	}
	var next Cursor
	if len(entries) > n {
		entries = entries[:n]
		next = entryCursor(entries[n-1].ID)
	}
	return entries, next, nil
}

// ListWallets returns up to limit wallets (see Statement for limit) in id
// order, which is creation order, starting after cursor, and the cursor of
// the next page, empty when there is none. It is meant for administrators.
func (s *Store) ListWallets(ctx context.Context, q postgres.Querier, limit int, cursor Cursor) ([]Account, Cursor, error) {
	after, err := cursor.accountID()
	if err != nil {
		return nil, "", err
	}
	n := pageSize(limit)
	rows, err := q.Query(ctx, `-- name: ListWallets
SELECT `+accountColumns+` FROM ledger_accounts
		WHERE kind = 'wallet' AND id > $1 ORDER BY id LIMIT $2`, after, n+1)
	if err != nil {
		return nil, "", fmt.Errorf("ledger: list wallets: %w", err)
	}
	accounts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Account, error) { return scanAccount(r) })
	if err != nil {
		return nil, "", fmt.Errorf("ledger: list wallets: %w", err)
	}
	var next Cursor
	if len(accounts) > n {
		accounts = accounts[:n]
		next = accountCursor(accounts[n-1].ID)
	}
	return accounts, next, nil
}

// TotalHeld returns the money held by active holds across all accounts in
// currency (the default currency when empty).
func (s *Store) TotalHeld(ctx context.Context, q postgres.Querier, currency string) (int64, error) {
	cur, err := s.currencyOr(currency)
	if err != nil {
		return 0, err
	}
	var total int64
	// held is the sum of active holds (Verify checks it), so summing the
	// accounts' held reads one row per account instead of every hold.
	if err := q.QueryRow(ctx, `-- name: TotalHeld
SELECT coalesce(sum(held), 0)::bigint FROM ledger_accounts WHERE currency = $1`, cur).Scan(&total); err != nil {
		return 0, fmt.Errorf("ledger: total held: %w", err)
	}
	return total, nil
}

// Hold returns the hold id.
func (s *Store) Hold(ctx context.Context, q postgres.Querier, id uuid.UUID) (Hold, error) {
	h, err := scanHold(q.QueryRow(ctx, `-- name: GetHold
SELECT `+holdColumns+` FROM ledger_holds WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Hold{}, ErrHoldNotFound.Wrap(fmt.Errorf("hold %s", id))
	}
	if err != nil {
		return Hold{}, fmt.Errorf("ledger: read hold: %w", err)
	}
	return h, nil
}

// Transaction returns the ledger transaction id with its entries in entry
// order, or ErrTransactionNotFound.
func (s *Store) Transaction(ctx context.Context, q postgres.Querier, id uuid.UUID) (PostedTransaction, error) {
	var t PostedTransaction
	err := q.QueryRow(ctx, `-- name: GetTransaction
SELECT id, kind, reference, reverses, currency, metadata, created_at
		FROM ledger_transactions WHERE id = $1`, id).
		Scan(&t.ID, &t.Kind, &t.Reference, &t.Reverses, &t.Currency, &t.Metadata, &t.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return PostedTransaction{}, ErrTransactionNotFound.Wrap(fmt.Errorf("transaction %s", id))
	}
	if err != nil {
		return PostedTransaction{}, fmt.Errorf("ledger: read transaction: %w", err)
	}
	rows, err := q.Query(ctx, `-- name: GetTransactionEntries
SELECT id, transaction_id, account_id, amount, balance_after, created_at
		FROM ledger_entries WHERE transaction_id = $1 ORDER BY id`, id)
	if err != nil {
		return PostedTransaction{}, fmt.Errorf("ledger: read entries: %w", err)
	}
	t.Entries, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Entry, error) {
		e := Entry{TransactionKind: t.Kind, Reference: t.Reference}
		err := r.Scan(&e.ID, &e.TransactionID, &e.AccountID, &e.Amount, &e.BalanceAfter, &e.CreatedAt)
		return e, err
	})
	if err != nil {
		return PostedTransaction{}, fmt.Errorf("ledger: read entries: %w", err)
	}
	return t, nil
}
