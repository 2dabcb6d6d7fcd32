package ledger

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// PostMany books a batch of transactions in tx as Post books one, with a
// few statements for the whole batch instead of a few per transaction:
// every account of every transaction is locked in one statement (in id
// order, as Post locks), the transactions are applied in order against
// the locked balances in memory, and the accepted ones are written with
// one insert of transactions, one of entries and one update of balances.
//
// A transaction refused on its own merits (ErrInsufficientFunds,
// ErrAmountOverflow, ErrCurrencyMismatch, ErrAccountNotFound, an invalid
// shape) gets its error in errs and writes nothing, and the others are
// booked as if it had not been there: the balances a later transaction
// sees are those the earlier accepted ones left. Reversals are not
// batched (Reverses must be nil). The returned error is the database's,
// for the whole batch; tx must then be rolled back.
func (s *Store) PostMany(ctx context.Context, tx pgx.Tx, ts []Transaction) (posted []PostedTransaction, errs []error, err error) {
	posted, errs = make([]PostedTransaction, len(ts)), make([]error, len(ts))
	var ids []uuid.UUID
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
			continue
		}
		for _, p := range t.Postings {
			ids = append(ids, p.AccountID)
		}
	}
	// A missing account is the concern of the transaction that names it.
	accounts, err := lockRows(ctx, tx, ids)
	if err != nil {
		return nil, nil, err
	}

	// Apply in order against the locked balances. after[i][j] is the
	// balance of posting j of transaction i once it is booked.
	after := make([][]int64, len(ts))
	touched := map[uuid.UUID]bool{}
	var accepted []int
	for i, t := range ts {
		if errs[i] != nil {
			continue
		}
		next, err := apply(t, accounts)
		if err != nil {
			errs[i] = err
			continue
		}
		after[i] = make([]int64, len(t.Postings))
		for j, p := range t.Postings {
			accounts[p.AccountID].balance = next[j]
			after[i][j] = next[j]
			touched[p.AccountID] = true
		}
		accepted = append(accepted, i)
	}
	if len(accepted) == 0 {
		return posted, errs, nil
	}

	// Three statements in one pipelined round trip.
	txIDs := make([]uuid.UUID, len(accepted))
	kinds, refs, curs := make([]string, len(accepted)), make([]string, len(accepted)), make([]string, len(accepted))
	metas := make([]map[string]any, len(accepted))
	var entTx, entAcc []uuid.UUID
	var entAmt, entAfter []int64
	for k, i := range accepted {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, nil, fmt.Errorf("ledger: new transaction id: %w", err)
		}
		t := ts[i]
		meta := t.Metadata
		if meta == nil {
			meta = map[string]any{}
		}
		txIDs[k], kinds[k], refs[k], curs[k], metas[k] = id, t.Kind, t.Reference, t.Currency, meta
		for j, p := range t.Postings {
			entTx, entAcc = append(entTx, id), append(entAcc, p.AccountID)
			entAmt, entAfter = append(entAmt, p.Amount), append(entAfter, after[i][j])
		}
	}
	balIDs := make([]uuid.UUID, 0, len(touched))
	for id := range touched {
		balIDs = append(balIDs, id)
	}
	slices.SortFunc(balIDs, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	balances := make([]int64, len(balIDs))
	for i, id := range balIDs {
		balances[i] = accounts[id].balance
	}

	b := &pgx.Batch{}
	b.Queue(`-- name: InsertTransactions
		INSERT INTO ledger_transactions (id, kind, reference, currency, metadata)
		SELECT u.id, u.kind, u.reference, u.currency, u.metadata
		FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[]) WITH ORDINALITY AS u(id, kind, reference, currency, metadata, n)
		ORDER BY u.n
		RETURNING id, created_at`, txIDs, kinds, refs, curs, metas)
	// Entries are inserted in booking order, so that ids (and with them
	// every account's balance_after chain) follow the order the balances
	// were computed in.
	b.Queue(`-- name: InsertBatchEntries
		INSERT INTO ledger_entries (transaction_id, account_id, amount, balance_after)
		SELECT u.transaction_id, u.account_id, u.amount, u.balance_after
		FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::bigint[]) WITH ORDINALITY AS u(transaction_id, account_id, amount, balance_after, n)
		ORDER BY u.n
		RETURNING id, transaction_id, account_id, created_at`, entTx, entAcc, entAmt, entAfter)
	b.Queue(`-- name: UpdateBatchBalances
		UPDATE ledger_accounts a SET balance = u.balance
		FROM unnest($1::uuid[], $2::bigint[]) AS u(id, balance)
		WHERE a.id = u.id`, balIDs, balances)
	br := tx.SendBatch(ctx, b)
	defer br.Close()

	created := make(map[uuid.UUID]time.Time, len(txIDs))
	rows, err := br.Query()
	if err != nil {
		return nil, nil, fmt.Errorf("ledger: insert transactions: %w", err)
	}
	for rows.Next() {
		var id uuid.UUID
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("ledger: insert transactions: %w", err)
		}
		created[id] = at
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("ledger: insert transactions: %w", err)
	}
	type key struct{ tx, acc uuid.UUID }
	type inserted struct {
		id int64
		at time.Time
	}
	entries := make(map[key]inserted, len(entTx))
	rows, err = br.Query()
	if err != nil {
		return nil, nil, fmt.Errorf("ledger: insert entries: %w", err)
	}
	for rows.Next() {
		var k key
		var in inserted
		if err := rows.Scan(&in.id, &k.tx, &k.acc, &in.at); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("ledger: insert entries: %w", err)
		}
		entries[k] = in
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("ledger: insert entries: %w", err)
	}
	if _, err := br.Exec(); err != nil {
		return nil, nil, fmt.Errorf("ledger: update balances: %w", err)
	}
	if err := br.Close(); err != nil {
		return nil, nil, fmt.Errorf("ledger: post batch: %w", err)
	}
	for k, i := range accepted {
		t, id := ts[i], txIDs[k]
		pt := PostedTransaction{ID: id, Kind: t.Kind, Reference: t.Reference, Currency: t.Currency, Metadata: metas[k],
			CreatedAt: created[id], Entries: make([]Entry, len(t.Postings))}
		for j, p := range t.Postings {
			in := entries[key{id, p.AccountID}]
			pt.Entries[j] = Entry{ID: in.id, TransactionID: id, AccountID: p.AccountID, Amount: p.Amount,
				BalanceAfter: after[i][j], CreatedAt: in.at, TransactionKind: t.Kind, Reference: t.Reference}
		}
		posted[i] = pt
	}
	return posted, errs, nil
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
