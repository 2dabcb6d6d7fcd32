package ledger

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/paygate/paygate/internal/platform/postgres"
)

// ViolationKind names a broken ledger invariant.
type ViolationKind string

// The invariants Verify checks.
const (
	// ViolationUnbalanced: a transaction's entries do not sum to zero.
	ViolationUnbalanced ViolationKind = "unbalanced_transaction"
	// ViolationTooFewEntries: a transaction has fewer than two entries.
	ViolationTooFewEntries ViolationKind = "too_few_entries"
	// ViolationCurrencyMismatch: an entry is on an account whose currency
	// is not its transaction's.
	ViolationCurrencyMismatch ViolationKind = "currency_mismatch"
	// ViolationBalanceMismatch: an account's balance is not the sum of its
	// entries.
	ViolationBalanceMismatch ViolationKind = "balance_mismatch"
	// ViolationBalanceAfterChain: an entry's balance_after is not the
	// previous entry's balance_after (0 for the first) plus its amount.
	ViolationBalanceAfterChain ViolationKind = "balance_after_chain"
	// ViolationLatestBalanceAfter: an account's balance is not its latest
	// entry's balance_after.
	ViolationLatestBalanceAfter ViolationKind = "latest_balance_after"
	// ViolationHeldMismatch: an account's held is not the sum of its active
	// holds.
	ViolationHeldMismatch ViolationKind = "held_mismatch"
	// ViolationNegativeBalance: an account that may not go negative has a
	// negative balance.
	ViolationNegativeBalance ViolationKind = "negative_balance"
	// ViolationNegativeAvailable: an account that may not go negative holds
	// more than its balance.
	ViolationNegativeAvailable ViolationKind = "negative_available"
	// ViolationMoneyNotConserved: the balances of a currency do not sum to
	// zero.
	ViolationMoneyNotConserved ViolationKind = "money_not_conserved"
)

// Violation is one broken invariant with the ids and figures involved. Got
// and Want are decimal figures (they may exceed 64 bits in a corrupt
// ledger).
type Violation struct {
	Kind          ViolationKind `json:"kind"`
	TransactionID *uuid.UUID    `json:"transaction_id"`
	AccountID     *uuid.UUID    `json:"account_id"`
	EntryID       int64         `json:"entry_id"`
	Currency      string        `json:"currency"`
	Got           string        `json:"got"`
	Want          string        `json:"want"`
}

// String renders v for logs and test failures.
func (v Violation) String() string {
	var b strings.Builder
	b.WriteString(string(v.Kind))
	if v.TransactionID != nil {
		fmt.Fprintf(&b, " transaction=%s", v.TransactionID)
	}
	if v.AccountID != nil {
		fmt.Fprintf(&b, " account=%s", v.AccountID)
	}
	if v.EntryID != 0 {
		fmt.Fprintf(&b, " entry=%d", v.EntryID)
	}
	if v.Currency != "" {
		fmt.Fprintf(&b, " currency=%s", v.Currency)
	}
	fmt.Fprintf(&b, ": got %s, want %s", v.Got, v.Want)
	return b.String()
}

// Report is the outcome of Verify.
type Report struct {
	Accounts     int64
	Transactions int64
	Entries      int64
	ActiveHolds  int64
	// Violations lists broken invariants, at most ViolationsPerKind of
	// each kind.
	Violations []Violation
}

// OK reports whether the ledger is consistent.
func (r Report) OK() bool { return len(r.Violations) == 0 }

// ViolationsPerKind caps the violations Verify lists per kind.
const ViolationsPerKind = 100

// verifySQL checks every invariant set-based, in one statement, so that it
// sees one snapshot even on a pool while writers keep booking. Sums are
// numeric and so cannot overflow, however corrupt the data.
const verifySQL = `-- name: Verify
WITH
tx_sums AS (
    SELECT t.id, count(e.id) AS n, coalesce(sum(e.amount::numeric), 0) AS total
    FROM ledger_transactions t
    LEFT JOIN ledger_entries e ON e.transaction_id = t.id
    GROUP BY t.id
),
acct_sums AS (
    SELECT a.id, a.balance, coalesce(s.total, 0) AS total
    FROM ledger_accounts a
    LEFT JOIN (SELECT account_id, sum(amount::numeric) AS total FROM ledger_entries GROUP BY account_id) s
        ON s.account_id = a.id
),
chain AS (
    SELECT id, account_id, amount, balance_after,
           coalesce(lag(balance_after) OVER (PARTITION BY account_id ORDER BY id), 0) AS before
    FROM ledger_entries
),
latest AS (
    SELECT DISTINCT ON (account_id) account_id, balance_after
    FROM ledger_entries
    ORDER BY account_id, id DESC
),
active_held AS (
    SELECT a.id, a.held, coalesce(h.total, 0) AS total
    FROM ledger_accounts a
    LEFT JOIN (SELECT account_id, sum(amount::numeric) AS total FROM ledger_holds
               WHERE status = 'active' GROUP BY account_id) h
        ON h.account_id = a.id
),
violations AS (
    (SELECT 'unbalanced_transaction' AS kind, id AS transaction_id, NULL::uuid AS account_id, NULL::bigint AS entry_id,
            NULL::text AS currency, total::text AS got, '0' AS want
     FROM tx_sums WHERE total <> 0 LIMIT $1)
    UNION ALL
    (SELECT 'too_few_entries', id, NULL, NULL, NULL, n::text, '>= 2'
     FROM tx_sums WHERE n < 2 LIMIT $1)
    UNION ALL
    (SELECT 'currency_mismatch', e.transaction_id, e.account_id, e.id, a.currency::text, a.currency::text, t.currency::text
     FROM ledger_entries e
     JOIN ledger_accounts a ON a.id = e.account_id
     JOIN ledger_transactions t ON t.id = e.transaction_id
     WHERE a.currency <> t.currency LIMIT $1)
    UNION ALL
    (SELECT 'balance_mismatch', NULL, id, NULL, NULL, balance::text, total::text
     FROM acct_sums WHERE balance <> total LIMIT $1)
    UNION ALL
    (SELECT 'balance_after_chain', NULL, account_id, id, NULL, balance_after::text, (before::numeric + amount)::text
     FROM chain WHERE balance_after::numeric <> before::numeric + amount LIMIT $1)
    UNION ALL
    (SELECT 'latest_balance_after', NULL, a.id, NULL, NULL, a.balance::text, l.balance_after::text
     FROM ledger_accounts a JOIN latest l ON l.account_id = a.id
     WHERE a.balance <> l.balance_after LIMIT $1)
    UNION ALL
    (SELECT 'held_mismatch', NULL, id, NULL, NULL, held::text, total::text
     FROM active_held WHERE held <> total LIMIT $1)
    UNION ALL
    (SELECT 'negative_balance', NULL, id, NULL, NULL, balance::text, '>= 0'
     FROM ledger_accounts WHERE (kind = 'wallet' OR NOT allow_negative) AND balance < 0 LIMIT $1)
    UNION ALL
    (SELECT 'negative_available', NULL, id, NULL, NULL, (balance::numeric - held)::text, '>= 0'
     FROM ledger_accounts WHERE (kind = 'wallet' OR NOT allow_negative) AND balance < held LIMIT $1)
    UNION ALL
    (SELECT 'money_not_conserved', NULL, NULL, NULL, currency::text, sum(balance::numeric)::text, '0'
     FROM ledger_accounts GROUP BY currency HAVING sum(balance::numeric) <> 0 LIMIT $1)
)
SELECT
    (SELECT count(*) FROM ledger_accounts),
    (SELECT count(*) FROM ledger_transactions),
    (SELECT count(*) FROM ledger_entries),
    (SELECT count(*) FROM ledger_holds WHERE status = 'active'),
    (SELECT coalesce(jsonb_agg(to_jsonb(v) ORDER BY v.kind, v.transaction_id, v.account_id, v.entry_id), '[]') FROM violations v)`

// Verify checks the whole ledger's invariants in SQL, set-based, in one
// statement (one snapshot): every transaction's entries sum to zero and
// number at least two, in its currency; every account's balance equals the
// sum of its entries and its latest entry's balance_after; every
// balance_after chains from the previous one; every account's held equals
// the sum of its active holds; no wallet's balance or available money is
// negative; and each currency's balances sum to zero (money is conserved).
// It reads every row, so it is meant for audits and tests, not for every
// request.
func (s *Store) Verify(ctx context.Context, q postgres.Querier) (Report, error) {
	var r Report
	if err := q.QueryRow(ctx, verifySQL, ViolationsPerKind).
		Scan(&r.Accounts, &r.Transactions, &r.Entries, &r.ActiveHolds, &r.Violations); err != nil {
		return Report{}, fmt.Errorf("ledger: verify: %w", err)
	}
	return r, nil
}
