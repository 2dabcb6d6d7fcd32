package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Plan is a batch of ledger transactions decided but not yet written: the
// accounts are locked, every transaction is accepted or refused, and the
// accepted ones have their ids, timestamps and balances. Its writes go
// out with Queue; until the queued statements have run (and tx commits)
// nothing of it is in the ledger.
type Plan struct {
	// At is the database transaction's timestamp: every row the plan
	// writes is created at it (now() is fixed for a whole transaction).
	// Zero when the batch locked no account.
	At time.Time
	// Posted holds, for each transaction of the batch, its booking when
	// it was accepted (the zero value when refused). The entries' ids are
	// assigned by the database: they are set once the queued statements
	// have run.
	Posted []PostedTransaction

	txIDs             []uuid.UUID
	kinds, refs, curs []string
	metas             []map[string]any
	entTx, entAcc     []uuid.UUID
	entAmt, entAfter  []int64
	balIDs            []uuid.UUID
	balances          []int64
}

// WalletLocks is the wallets of some users, locked by a statement queued
// with QueueLockWallets, for PlanLocked to book against.
type WalletLocks struct {
	at       time.Time
	accounts map[uuid.UUID]*lockedAccount
	// wallets maps an owner to their wallet's account id.
	wallets map[uuid.UUID]uuid.UUID
	planned bool
}

// QueueLockWallets queues the statement that locks the wallets of owners
// (those that exist), in one statement sorted by account id as every
// writer locks accounts (see lockAccounts). The locks are held until the
// transaction the batch is sent in ends, and once the statement has run
// they can be planned against with PlanLocked, with no further round trip:
// a caller can send it together with other reads it needs.
func (s *Store) QueueLockWallets(b *pgx.Batch, owners []uuid.UUID) *WalletLocks {
	l := &WalletLocks{accounts: make(map[uuid.UUID]*lockedAccount, len(owners)), wallets: make(map[uuid.UUID]uuid.UUID, len(owners))}
	b.Queue(`-- name: LockWallets
		SELECT id, owner_user_id, currency, balance, held, allow_negative, now()
		FROM ledger_accounts
		WHERE owner_user_id = ANY($1)
		ORDER BY id
		FOR UPDATE`, owners).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			a := &lockedAccount{}
			var owner uuid.UUID
			if err := rows.Scan(&a.id, &owner, &a.currency, &a.balance, &a.held, &a.allowNegative, &l.at); err != nil {
				return fmt.Errorf("ledger: lock wallets: %w", err)
			}
			l.accounts[a.id], l.wallets[owner] = a, a.id
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("ledger: lock wallets: %w", err)
		}
		return nil
	})
	return l
}

// Wallet returns the account id of owner's wallet, if it was locked.
func (l *WalletLocks) Wallet(owner uuid.UUID) (uuid.UUID, bool) {
	id, ok := l.wallets[owner]
	return id, ok
}

// PlanLocked decides a batch of transactions against the wallets l has
// locked, in memory, without a round trip: it applies them in order with
// Post's checks, and lays out the accepted ones' writes (Plan.Queue). A
// transaction refused on its own merits (ErrInsufficientFunds,
// ErrAmountOverflow, ErrCurrencyMismatch, ErrAccountNotFound for an
// account l does not hold, an invalid shape) gets its error in errs and
// writes nothing, and the others are booked as if it had not been there:
// the balances a later transaction sees are those the earlier accepted
// ones left. Reversals are not batched (Reverses must be nil). Planning
// consumes the locked balances, so l is planned once.
func (s *Store) PlanLocked(l *WalletLocks, ts []Transaction) (*Plan, []error, error) {
	if l.planned {
		return nil, nil, errors.New("ledger: wallet locks planned twice")
	}
	l.planned = true
	return plan(ts, s.check(ts), l.accounts, l.at)
}

// check validates each transaction's shape and currency (filling in the
// default currency), and returns each one's error.
func (s *Store) check(ts []Transaction) []error {
	errs := make([]error, len(ts))
	for i := range ts {
		t := &ts[i]
		cur, err := s.currencyOr(t.Currency)
		if err != nil {
			errs[i] = err
			continue
		}
		t.Currency = cur
		if t.Reverses != nil {
			errs[i] = fmt.Errorf("%w: reversals are not batched", ErrInvalidTransaction)
			continue
		}
		if err := validatePostings(*t); err != nil {
			errs[i] = err
		}
	}
	return errs
}

// plan applies the transactions without an error in errs, in order,
// against the locked accounts (changing their balances), and lays out the
// accepted ones' writes.
func plan(ts []Transaction, errs []error, accounts map[uuid.UUID]*lockedAccount, at time.Time) (*Plan, []error, error) {
	p := &Plan{At: at, Posted: make([]PostedTransaction, len(ts))}
	touched := map[uuid.UUID]bool{}
	for i, t := range ts {
		if errs[i] != nil {
			continue
		}
		after, err := apply(t, accounts)
		if err != nil {
			errs[i] = err
			continue
		}
		id, err := uuid.NewV7()
		if err != nil {
			return nil, nil, fmt.Errorf("ledger: new transaction id: %w", err)
		}
		meta := t.Metadata
		if meta == nil {
			meta = map[string]any{}
		}
		pt := PostedTransaction{ID: id, Kind: t.Kind, Reference: t.Reference, Currency: t.Currency, Metadata: meta,
			CreatedAt: at, Entries: make([]Entry, len(t.Postings))}
		for j, po := range t.Postings {
			accounts[po.AccountID].balance = after[j]
			touched[po.AccountID] = true
			pt.Entries[j] = Entry{TransactionID: id, AccountID: po.AccountID, Amount: po.Amount, BalanceAfter: after[j],
				CreatedAt: at, TransactionKind: t.Kind, Reference: t.Reference}
			p.entTx, p.entAcc = append(p.entTx, id), append(p.entAcc, po.AccountID)
			p.entAmt, p.entAfter = append(p.entAmt, po.Amount), append(p.entAfter, after[j])
		}
		p.Posted[i] = pt
		p.txIDs, p.kinds, p.refs = append(p.txIDs, id), append(p.kinds, t.Kind), append(p.refs, t.Reference)
		p.curs, p.metas = append(p.curs, t.Currency), append(p.metas, meta)
	}
	p.balIDs = make([]uuid.UUID, 0, len(touched))
	for id := range touched {
		p.balIDs = append(p.balIDs, id)
	}
	slices.SortFunc(p.balIDs, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	p.balances = make([]int64, len(p.balIDs))
	for i, id := range p.balIDs {
		p.balances[i] = accounts[id].balance
	}
	return p, errs, nil
}

// Queue adds the plan's writes to b: one insert of transactions, one of
// entries and one update of balances; nothing when no transaction was
// accepted. b must be sent in the transaction the plan was made in, and
// the plan's entry ids are set as its results are read.
func (p *Plan) Queue(b *pgx.Batch) {
	if len(p.txIDs) == 0 {
		return
	}
	// created_at is written as At, the value now() has in this
	// transaction, so that what the plan reports is what the rows hold.
	b.Queue(`-- name: InsertTransactions
		INSERT INTO ledger_transactions (id, kind, reference, currency, metadata, created_at)
		SELECT u.id, u.kind, u.reference, u.currency, u.metadata, $6
		FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[]) WITH ORDINALITY AS u(id, kind, reference, currency, metadata, n)
		ORDER BY u.n`, p.txIDs, p.kinds, p.refs, p.curs, p.metas, p.At).Exec(func(ct pgconn.CommandTag) error {
		if n := ct.RowsAffected(); n != int64(len(p.txIDs)) {
			return fmt.Errorf("ledger: inserted %d of %d transactions", n, len(p.txIDs))
		}
		return nil
	})
	// Entries are inserted in booking order, so that ids (and with them
	// every account's balance_after chain) follow the order the balances
	// were computed in; they come back in that order too.
	b.Queue(`-- name: InsertBatchEntries
		INSERT INTO ledger_entries (transaction_id, account_id, amount, balance_after, created_at)
		SELECT u.transaction_id, u.account_id, u.amount, u.balance_after, $5
		FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::bigint[]) WITH ORDINALITY AS u(transaction_id, account_id, amount, balance_after, n)
		ORDER BY u.n
		RETURNING id, transaction_id, account_id`, p.entTx, p.entAcc, p.entAmt, p.entAfter, p.At).Query(p.scanEntryIDs)
	b.Queue(`-- name: UpdateBatchBalances
		UPDATE ledger_accounts a SET balance = u.balance
		FROM unnest($1::uuid[], $2::bigint[]) AS u(id, balance)
		WHERE a.id = u.id`, p.balIDs, p.balances).Exec(func(ct pgconn.CommandTag) error {
		if n := ct.RowsAffected(); n != int64(len(p.balIDs)) {
			return fmt.Errorf("ledger: updated %d of %d balances", n, len(p.balIDs))
		}
		return nil
	})
}

// scanEntryIDs sets the ids the database gave the plan's entries.
func (p *Plan) scanEntryIDs(rows pgx.Rows) error {
	type key struct{ tx, acc uuid.UUID }
	ids := make(map[key]int64, len(p.entTx))
	for rows.Next() {
		var k key
		var id int64
		if err := rows.Scan(&id, &k.tx, &k.acc); err != nil {
			return fmt.Errorf("ledger: insert entries: %w", err)
		}
		ids[k] = id
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("ledger: insert entries: %w", err)
	}
	for i := range p.Posted {
		for j := range p.Posted[i].Entries {
			e := &p.Posted[i].Entries[j]
			if e.TransactionID != uuid.Nil {
				e.ID = ids[key{e.TransactionID, e.AccountID}]
			}
		}
	}
	return nil
}

// apply computes the balances t's postings leave on accounts, with Post's
// checks, without changing accounts.
func apply(t Transaction, accounts map[uuid.UUID]*lockedAccount) ([]int64, error) {
	next := make([]int64, len(t.Postings))
	for j, p := range t.Postings {
		a := accounts[p.AccountID]
		if a == nil {
			return nil, ErrAccountNotFound.Wrap(fmt.Errorf("account %s", p.AccountID))
		}
		if a.currency != t.Currency {
			return nil, ErrCurrencyMismatch.Wrap(fmt.Errorf("account %s is in %s, transaction in %s", a.id, a.currency, t.Currency))
		}
		nb, ok := add64(a.balance, p.Amount)
		if !ok {
			return nil, ErrAmountOverflow.Wrap(fmt.Errorf("balance %d of account %s plus %d overflows", a.balance, a.id, p.Amount))
		}
		if !a.allowNegative && nb < a.held {
			return nil, ErrInsufficientFunds.Wrap(fmt.Errorf("account %s: balance %d, held %d, posting %d", a.id, a.balance, a.held, p.Amount))
		}
		next[j] = nb
	}
	return next, nil
}
