// Package movement holds what the money movement domains (topup,
// transfer, withdraw) share: the bounded result of an attempt for metrics,
// and reading a wallet's balance off a posted ledger transaction.
package movement

import (
	"errors"

	"github.com/google/uuid"

	"github.com/paygate/paygate/internal/ledger"
	"github.com/paygate/paygate/internal/platform/apperr"
)

// Results are the bounded values of the "result" metric label.
var Results = []string{"success", "insufficient_funds", "rejected", "error"}

// Result maps an attempt's error to its metric label: success,
// insufficient_funds, rejected (any other client error) or error.
func Result(err error) string {
	switch {
	case err == nil:
		return "success"
	case errors.Is(err, ledger.ErrInsufficientFunds):
		return "insufficient_funds"
	default:
		var ae *apperr.Error
		if errors.As(err, &ae) && ae.Kind != apperr.KindInternal && ae.Kind != apperr.KindUnavailable {
			return "rejected"
		}
		return "error"
	}
}

// BalanceAfter returns the balance of account right after the posted
// transaction, from its entry.
func BalanceAfter(p ledger.PostedTransaction, account uuid.UUID) int64 {
	for _, e := range p.Entries {
		if e.AccountID == account {
			return e.BalanceAfter
		}
	}
	return 0
}

// ErrAmountOutOfRange is returned for an amount outside a movement's
// configured limits.
var ErrAmountOutOfRange = apperr.New(apperr.KindBusinessRule, "AMOUNT_OUT_OF_RANGE", "The amount is outside the allowed range.")

// ErrAlreadyReversed is returned when reversing a movement twice. It is
// ledger.ErrAlreadyReversed, worded for the movement.
var ErrAlreadyReversed = ledger.ErrAlreadyReversed.With("The movement was already reversed.")
