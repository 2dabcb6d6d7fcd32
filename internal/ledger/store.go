package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/platform/postgres"
)

// Store books money movements in the ledger tables. It holds no state but
// its default currency and is safe for concurrent use.
type Store struct {
	currency string
}

// New returns a Store whose default currency (used where a currency is
// left empty) is currency, upper-cased.
func New(currency string) *Store {
	return &Store{currency: strings.ToUpper(currency)}
}

// DefaultCurrency returns the Store's default currency.
func (s *Store) DefaultCurrency() string { return s.currency }

var currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)

func (s *Store) currencyOr(c string) (string, error) {
	if c == "" {
		c = s.currency
	}
	if !currencyPattern.MatchString(c) {
		return "", ErrInvalidCurrency.Wrap(fmt.Errorf("currency %q", c))
	}
	return c, nil
}

const accountColumns = `id, kind, owner_user_id, code, currency, balance, held, allow_negative, created_at`

func scanAccount(row pgx.Row) (Account, error) {
	var a Account
	var kind string
	var code *string
	err := row.Scan(&a.ID, &kind, &a.OwnerUserID, &code, &a.Currency, &a.Balance, &a.Held, &a.AllowNegative, &a.CreatedAt)
	a.Kind = AccountKind(kind)
	if code != nil {
		a.Code = *code
	}
	return a, err
}

// OpenWallet returns the wallet of userID, creating it (empty, in currency
// or the default currency) on first use. It is idempotent and race-safe:
// two concurrent calls for one user return the same wallet. An existing
// wallet in another currency is ErrCurrencyMismatch.
func (s *Store) OpenWallet(ctx context.Context, tx pgx.Tx, userID uuid.UUID, currency string) (Account, error) {
	if userID == uuid.Nil {
		return Account{}, fmt.Errorf("%w: nil user id", ErrInvalidTransaction)
	}
	return s.getOrCreate(ctx, tx, currency,
		`-- name: InsertWallet
INSERT INTO ledger_accounts (id, kind, owner_user_id, currency, allow_negative)
		 VALUES ($1, 'wallet', $2, $3, false)
		 ON CONFLICT (owner_user_id) DO NOTHING
		 RETURNING `+accountColumns,
		`-- name: GetWalletOfOwner
SELECT `+accountColumns+` FROM ledger_accounts WHERE owner_user_id = $1`,
		userID)
}

// EnsureSystemAccount returns the system account named code (see
// FundingCode and CodeClearingWithdrawals), creating it in currency (or
// the default currency) on first use. System accounts may go negative. It
// is race-safe; an existing account in another currency is
// ErrCurrencyMismatch.
func (s *Store) EnsureSystemAccount(ctx context.Context, tx pgx.Tx, code, currency string) (Account, error) {
	if code == "" {
		return Account{}, fmt.Errorf("%w: empty system account code", ErrInvalidTransaction)
	}
	return s.getOrCreate(ctx, tx, currency,
		`-- name: InsertSystemAccount
INSERT INTO ledger_accounts (id, kind, code, currency, allow_negative)
		 VALUES ($1, 'system', $2, $3, true)
		 ON CONFLICT (code) DO NOTHING
		 RETURNING `+accountColumns,
		`-- name: GetSystemAccount
SELECT `+accountColumns+` FROM ledger_accounts WHERE code = $1`,
		code)
}

// getOrCreate inserts with ON CONFLICT DO NOTHING and, when the row exists
// already, selects it. Under READ COMMITTED the insert waits for a
// concurrent uncommitted insert of the same key and the select then sees
// the committed row; under REPEATABLE READ PostgreSQL reports a
// serialization failure instead, which InTx retries.
func (s *Store) getOrCreate(ctx context.Context, tx pgx.Tx, currency, insert, sel string, key any) (Account, error) {
	cur, err := s.currencyOr(currency)
	if err != nil {
		return Account{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Account{}, fmt.Errorf("ledger: new account id: %w", err)
	}
	a, err := scanAccount(tx.QueryRow(ctx, insert, id, key, cur))
	if errors.Is(err, pgx.ErrNoRows) {
		a, err = scanAccount(tx.QueryRow(ctx, sel, key))
	}
	if err != nil {
		return Account{}, fmt.Errorf("ledger: open account %v: %w", key, err)
	}
	if a.Currency != cur {
		return Account{}, ErrCurrencyMismatch.Wrap(fmt.Errorf("account %s is in %s, not %s", a.ID, a.Currency, cur))
	}
	return a, nil
}

// lockedAccount is the part of an account row Post needs, read under lock.
type lockedAccount struct {
	id            uuid.UUID
	currency      string
	balance       int64
	held          int64
	allowNegative bool
}

// lockAccounts locks the rows of ids and returns them by id. It and
// QueueLockWallets are the only places that lock account rows, and each
// does so in ONE statement sorted by id: with every writer locking in
// ascending id order, two transactions touching overlapping accounts (say
// A→B and B→A transfers) queue on the lowest shared id instead of each
// holding a row the other wants, so they cannot deadlock. (PostgreSQL sorts first and locks the sorted rows, in
// order, above the sort.) A missing id is ErrAccountNotFound.
func lockAccounts(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) (map[uuid.UUID]*lockedAccount, error) {
	out, err := lockRows(ctx, tx, ids)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if out[id] == nil {
			return nil, ErrAccountNotFound.Wrap(fmt.Errorf("account %s", id))
		}
	}
	return out, nil
}

// lockRows locks the rows of ids that exist, in one statement sorted by
// id (see lockAccounts), and returns them by id.
func lockRows(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) (map[uuid.UUID]*lockedAccount, error) {
	sorted := slices.Clone(ids)
	slices.SortFunc(sorted, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	rows, err := tx.Query(ctx, `-- name: LockAccounts
		SELECT id, currency, balance, held, allow_negative
		FROM ledger_accounts
		WHERE id = ANY($1)
		ORDER BY id
		FOR UPDATE`, sorted)
	if err != nil {
		return nil, fmt.Errorf("ledger: lock accounts: %w", err)
	}
	out := make(map[uuid.UUID]*lockedAccount, len(ids))
	for rows.Next() {
		a := &lockedAccount{}
		if err := rows.Scan(&a.id, &a.currency, &a.balance, &a.held, &a.allowNegative); err != nil {
			rows.Close()
			return nil, fmt.Errorf("ledger: lock accounts: %w", err)
		}
		out[a.id] = a
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: lock accounts: %w", err)
	}
	return out, nil
}

// validatePostings checks the shape of t's postings and that they sum to
// zero without overflow.
func validatePostings(t Transaction) error {
	if t.Kind == "" {
		return fmt.Errorf("%w: empty kind", ErrInvalidTransaction)
	}
	if len(t.Postings) < 2 {
		return fmt.Errorf("%w: %d posting(s), need at least 2", ErrInvalidTransaction, len(t.Postings))
	}
	seen := make(map[uuid.UUID]bool, len(t.Postings))
	// Debits and credits are summed separately, each overflow-checked, so
	// the result does not depend on the order of the postings: [MaxInt64,
	// 1, -MaxInt64-1] is refused rather than wrapping around to zero.
	var credits, debits int64
	for _, p := range t.Postings {
		if p.AccountID == uuid.Nil {
			return fmt.Errorf("%w: posting without an account", ErrInvalidTransaction)
		}
		if seen[p.AccountID] {
			return fmt.Errorf("%w: account %s posted twice", ErrInvalidTransaction, p.AccountID)
		}
		seen[p.AccountID] = true
		var ok bool
		switch {
		case p.Amount == 0:
			return ErrInvalidAmount.Wrap(fmt.Errorf("zero posting on account %s", p.AccountID))
		case p.Amount > 0:
			credits, ok = add64(credits, p.Amount)
		default:
			// MinInt64 has no positive counterpart: it could never be
			// reversed.
			ok = p.Amount != -1<<63
			if ok {
				debits, ok = add64(debits, p.Amount)
			}
		}
		if !ok {
			return ErrAmountOverflow.Wrap(fmt.Errorf("postings of %q overflow 64 bits", t.Kind))
		}
	}
	if credits != -debits {
		return fmt.Errorf("%w: credits %d, debits %d", ErrUnbalanced, credits, debits)
	}
	return nil
}

// Post books t: it validates the postings (at least two, distinct
// accounts, non-zero, summing to zero without overflow), locks every
// involved account in id order (see the package doc), checks currencies,
// computes the new balances with overflow checks, refuses a wallet whose
// available money (balance − held) would go negative, and inserts the
// transaction and its entries and updates the balances. It returns the
// booked transaction with its entries in posting order.
//
// Errors: ErrInvalidTransaction, ErrUnbalanced, ErrInvalidAmount,
// ErrInvalidCurrency, ErrAmountOverflow, ErrAccountNotFound,
// ErrCurrencyMismatch, ErrInsufficientFunds, ErrAlreadyReversed and
// ErrTransactionNotFound (Reverses unknown), or a wrapped database error.
func (s *Store) Post(ctx context.Context, tx pgx.Tx, t Transaction) (PostedTransaction, error) {
	return s.post(ctx, tx, t, nil)
}

// post is Post, additionally lowering the held amount of accounts by
// release (a capture turns a hold into a debit in the same update).
func (s *Store) post(ctx context.Context, tx pgx.Tx, t Transaction, release map[uuid.UUID]int64) (PostedTransaction, error) {
	cur, err := s.currencyOr(t.Currency)
	if err != nil {
		return PostedTransaction{}, err
	}
	t.Currency = cur
	if err := validatePostings(t); err != nil {
		return PostedTransaction{}, err
	}
	ids := make([]uuid.UUID, len(t.Postings))
	for i, p := range t.Postings {
		ids[i] = p.AccountID
	}
	accounts, err := lockAccounts(ctx, tx, ids)
	if err != nil {
		return PostedTransaction{}, err
	}
	if t.Reverses != nil {
		// Checked after the account locks: a concurrent reversal of the
		// same transaction locks the same accounts, so under READ
		// COMMITTED it has committed by now and is visible here, and the
		// answer is ALREADY_REVERSED rather than, say, INSUFFICIENT_FUNDS.
		// The UNIQUE constraint on reverses stays the arbiter of every
		// other race (it is mapped below).
		var reversed bool
		if err := tx.QueryRow(ctx, `-- name: TransactionReversed
SELECT EXISTS (SELECT 1 FROM ledger_transactions WHERE reverses = $1)`, *t.Reverses).Scan(&reversed); err != nil {
			return PostedTransaction{}, fmt.Errorf("ledger: look up reversal: %w", err)
		}
		if reversed {
			return PostedTransaction{}, ErrAlreadyReversed.Wrap(fmt.Errorf("transaction %s", *t.Reverses))
		}
	}

	amounts := make([]int64, len(t.Postings))
	after := make([]int64, len(t.Postings))
	releases := make([]int64, len(t.Postings))
	for i, p := range t.Postings {
		a := accounts[p.AccountID]
		if a.currency != cur {
			return PostedTransaction{}, ErrCurrencyMismatch.Wrap(fmt.Errorf("account %s is in %s, transaction in %s", a.id, a.currency, cur))
		}
		nb, ok := add64(a.balance, p.Amount)
		if !ok {
			return PostedTransaction{}, ErrAmountOverflow.Wrap(fmt.Errorf("balance %d of account %s plus %d overflows", a.balance, a.id, p.Amount))
		}
		r := release[p.AccountID]
		if r < 0 || r > a.held {
			return PostedTransaction{}, fmt.Errorf("ledger: release %d of account %s exceeds held %d", r, a.id, a.held)
		}
		nh := a.held - r
		// nb < nh rather than nb-nh < 0: the subtraction could overflow.
		if !a.allowNegative && nb < nh {
			return PostedTransaction{}, ErrInsufficientFunds.Wrap(fmt.Errorf(
				"account %s: balance %d, held %d, posting %d", a.id, a.balance, a.held, p.Amount))
		}
		amounts[i], after[i], releases[i] = p.Amount, nb, r
	}

	id, err := uuid.NewV7()
	if err != nil {
		return PostedTransaction{}, fmt.Errorf("ledger: new transaction id: %w", err)
	}
	meta := t.Metadata
	if meta == nil {
		meta = map[string]any{}
	}
	// The three writes go in one pipelined round trip.
	b := &pgx.Batch{}
	b.Queue(`-- name: InsertTransaction
		INSERT INTO ledger_transactions (id, kind, reference, reverses, currency, metadata)
		VALUES ($1, $2, $3, $4, $5, $6)
		RETURNING created_at`, id, t.Kind, t.Reference, t.Reverses, cur, meta)
	b.Queue(`-- name: InsertEntries
		INSERT INTO ledger_entries (transaction_id, account_id, amount, balance_after)
		SELECT $1, u.account_id, u.amount, u.balance_after
		FROM unnest($2::uuid[], $3::bigint[], $4::bigint[]) WITH ORDINALITY AS u(account_id, amount, balance_after, n)
		ORDER BY u.n
		RETURNING id, account_id, created_at`, id, ids, amounts, after)
	b.Queue(`-- name: UpdateBalances
		UPDATE ledger_accounts a
		SET balance = u.balance, held = a.held - u.release
		FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS u(id, balance, release)
		WHERE a.id = u.id`, ids, after, releases)
	br := tx.SendBatch(ctx, b)
	defer br.Close()

	pt := PostedTransaction{ID: id, Kind: t.Kind, Reference: t.Reference, Currency: cur, Reverses: t.Reverses, Metadata: meta}
	if err := br.QueryRow().Scan(&pt.CreatedAt); err != nil {
		switch {
		case postgres.IsUniqueViolation(err, "ledger_transactions_reverses_key"):
			return PostedTransaction{}, ErrAlreadyReversed.Wrap(err)
		case isForeignKeyViolation(err, "ledger_transactions_reverses_fkey"):
			return PostedTransaction{}, ErrTransactionNotFound.Wrap(err)
		}
		return PostedTransaction{}, fmt.Errorf("ledger: insert transaction: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return PostedTransaction{}, fmt.Errorf("ledger: insert entries: %w", err)
	}
	type inserted struct {
		id        int64
		createdAt time.Time
	}
	byAccount := make(map[uuid.UUID]inserted, len(ids))
	for rows.Next() {
		var acc uuid.UUID
		var in inserted
		if err := rows.Scan(&in.id, &acc, &in.createdAt); err != nil {
			rows.Close()
			return PostedTransaction{}, fmt.Errorf("ledger: insert entries: %w", err)
		}
		byAccount[acc] = in
	}
	if err := rows.Err(); err != nil {
		return PostedTransaction{}, fmt.Errorf("ledger: insert entries: %w", err)
	}
	if _, err := br.Exec(); err != nil {
		if postgres.IsCheckViolation(err, "ledger_accounts_non_negative") ||
			postgres.IsCheckViolation(err, "ledger_accounts_available_non_negative") {
			return PostedTransaction{}, ErrInsufficientFunds.Wrap(err)
		}
		return PostedTransaction{}, fmt.Errorf("ledger: update balances: %w", err)
	}
	if err := br.Close(); err != nil {
		return PostedTransaction{}, fmt.Errorf("ledger: post: %w", err)
	}
	pt.Entries = make([]Entry, len(t.Postings))
	for i, p := range t.Postings {
		in := byAccount[p.AccountID]
		pt.Entries[i] = Entry{
			ID: in.id, TransactionID: id, AccountID: p.AccountID, Amount: p.Amount, BalanceAfter: after[i],
			CreatedAt: in.createdAt, TransactionKind: t.Kind, Reference: t.Reference,
		}
	}
	return pt, nil
}
