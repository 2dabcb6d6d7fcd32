package ledger

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Reverse books the exact opposite of transaction originalTxID: the same
// accounts with negated amounts, in the original's currency, with reverses
// set and the given kind (typically KindReversal) and reference. A
// transaction is reversed at most once: a second reversal, even a
// concurrent one, is ErrAlreadyReversed (see Post). Reversing a reversal is ErrNotReversible, an unknown
// transaction ErrTransactionNotFound, and a reversal that would overdraw a
// wallet (its money was spent since) ErrInsufficientFunds.
func (s *Store) Reverse(ctx context.Context, tx pgx.Tx, originalTxID uuid.UUID, kind, reference string) (PostedTransaction, error) {
	orig, err := s.Transaction(ctx, tx, originalTxID)
	if err != nil {
		return PostedTransaction{}, err
	}
	if orig.Reverses != nil {
		return PostedTransaction{}, ErrNotReversible.Wrap(fmt.Errorf("transaction %s reverses %s", orig.ID, *orig.Reverses))
	}
	postings := make([]Posting, len(orig.Entries))
	for i, e := range orig.Entries {
		if e.Amount == -1<<63 {
			return PostedTransaction{}, ErrAmountOverflow.Wrap(fmt.Errorf("entry %d cannot be negated", e.ID))
		}
		postings[i] = Posting{AccountID: e.AccountID, Amount: -e.Amount}
	}
	return s.Post(ctx, tx, Transaction{
		Kind: kind, Reference: reference, Currency: orig.Currency, Reverses: &orig.ID,
		Metadata: map[string]any{"reverses": orig.ID.String(), "reversed_kind": orig.Kind, "reversed_reference": orig.Reference},
		Postings: postings,
	})
}
