package ledger

import (
	"errors"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/pagination"
)

// Errors a client can act on. Compare with errors.Is; the returned errors
// are copies carrying the cause, which is logged and never sent to clients.
var (
	// ErrInsufficientFunds is returned when a posting or a hold would make
	// a wallet's balance or available money (balance − held) negative.
	ErrInsufficientFunds = apperr.New(apperr.KindBusinessRule, "INSUFFICIENT_FUNDS",
		"The account does not have enough available funds.")
	// ErrAmountOverflow is returned when an amount, a sum of amounts or a
	// resulting balance does not fit in 64 bits.
	ErrAmountOverflow = apperr.New(apperr.KindBusinessRule, "AMOUNT_OVERFLOW",
		"The amount is too large.")
	// ErrCurrencyMismatch is returned when a transaction's currency differs
	// from an account's, or an existing account has another currency.
	ErrCurrencyMismatch = apperr.New(apperr.KindBusinessRule, "CURRENCY_MISMATCH",
		"The accounts are in different currencies.")
	// ErrAccountNotFound is returned when an account does not exist.
	ErrAccountNotFound = apperr.New(apperr.KindNotFound, "ACCOUNT_NOT_FOUND",
		"The account does not exist.")
	// ErrTransactionNotFound is returned when a ledger transaction does not
	// exist.
	ErrTransactionNotFound = apperr.New(apperr.KindNotFound, "TRANSACTION_NOT_FOUND",
		"The transaction does not exist.")
	// ErrHoldNotFound is returned when a hold does not exist.
	ErrHoldNotFound = apperr.New(apperr.KindNotFound, "HOLD_NOT_FOUND",
		"The hold does not exist.")
	// ErrHoldNotActive is returned when capturing or releasing a hold that
	// was already captured or released.
	ErrHoldNotActive = apperr.New(apperr.KindConflict, "HOLD_NOT_ACTIVE",
		"The hold was already captured or released.")
	// ErrAlreadyReversed is returned when reversing a transaction that was
	// reversed before.
	ErrAlreadyReversed = apperr.New(apperr.KindConflict, "ALREADY_REVERSED",
		"The transaction was already reversed.")
	// ErrNotReversible is returned when reversing a reversal; re-doing the
	// original movement is a new transaction with its own business record.
	ErrNotReversible = apperr.New(apperr.KindConflict, "NOT_REVERSIBLE",
		"A reversal cannot itself be reversed.")
	// ErrInvalidAmount is returned for a zero posting amount or a hold
	// amount that is not positive.
	ErrInvalidAmount = apperr.New(apperr.KindValidation, "INVALID_AMOUNT",
		"The amount must be a positive number of minor units.")
	// ErrInvalidCurrency is returned for a currency that is not three
	// upper-case letters.
	ErrInvalidCurrency = apperr.New(apperr.KindValidation, "INVALID_CURRENCY",
		"The currency must be an ISO 4217 code such as IDR.")
	// ErrInvalidCursor is returned for a page cursor this package did not
	// issue. It is pagination.ErrBadCursor: one meaning, one value.
	ErrInvalidCursor = pagination.ErrBadCursor
)

// Errors that mean a bug in the calling code rather than anything a client
// did; they map to an internal error at the HTTP layer.
var (
	// ErrUnbalanced is returned by Post when the postings do not sum to
	// zero.
	ErrUnbalanced = errors.New("ledger: postings do not sum to zero")
	// ErrInvalidTransaction is returned by Post for a transaction without a
	// kind, with fewer than two postings, a nil account id or the same
	// account twice.
	ErrInvalidTransaction = errors.New("ledger: invalid transaction")
)
