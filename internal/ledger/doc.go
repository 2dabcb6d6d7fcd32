// Package ledger is paygate's double-entry ledger: the accounts behind every
// wallet, the balanced transactions that move money between them, holds that
// reserve money before it moves, reversals, statements and a verifier.
//
// # Model
//
// Amounts are int64 minor units (cents), never floats. A transaction is two
// or more postings whose signed amounts sum to zero (positive increases the
// account's balance). Money enters the system from funding accounts (system
// accounts that may go negative), so the sum of all balances is always 0.
// A wallet's balance, and its available money (balance − held), never go
// negative.
//
// # Transactions
//
// Every mutating method takes a pgx.Tx owned by the caller and neither
// begins nor commits it: the caller books its business record, idempotency
// record and outbox event in the same transaction, so either all of it
// commits or none. Callers run it in postgres.DB.InTx, which retries
// serialization failures (40001) and deadlocks (40P01); this package wraps
// database errors with %w and never swallows them, so the retry sees them.
// An error returned by a mutating method leaves the transaction unusable
// (PostgreSQL aborts it on the failed statement) or, for errors found
// before any write (insufficient funds, overflow, inactive hold, ...)
// untouched; either way the caller should roll back.
//
// The sum-to-zero rule is also checked by a deferred constraint trigger at
// COMMIT, so a caller that wrote entries by hand learns it from Commit.
//
// # Lock order
//
// Deadlocks are impossible between ledger writers because every one of them
// takes row locks in one global order:
//
//  1. the caller's own business rows (a top-up, a withdrawal, ...) first;
//  2. then at most one ledger hold row (SELECT ... FOR UPDATE);
//  3. then every ledger account row the operation touches, all at once, in
//     a single SELECT ... WHERE id = ANY($1) ORDER BY id FOR UPDATE, that
//     is in ascending id order.
//
// Two writers that need overlapping sets of accounts therefore always
// request the shared rows in the same order: the later one waits for the
// earlier one instead of each holding a row the other wants. A caller that
// makes several ledger calls in one database transaction breaks rule 3
// across those calls (each call sorts only its own accounts) and may
// deadlock with another writer; InTx then retries, which is correct but
// slower, so prefer one Post per transaction.
package ledger
