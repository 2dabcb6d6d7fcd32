package apperr_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/paygate/paygate/internal/ledger"
	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/idempotency"
	"github.com/paygate/paygate/internal/platform/pagination"
	"github.com/paygate/paygate/internal/topup"
	"github.com/paygate/paygate/internal/transfer"
	"github.com/paygate/paygate/internal/users"
	"github.com/paygate/paygate/internal/withdraw"
)

// TestCopiesMatchTheirSentinel: a copy made by With or Wrap, wrapped again
// with %w, is still its sentinel for errors.Is, and keeps its cause.
func TestCopiesMatchTheirSentinel(t *testing.T) {
	base := apperr.New(apperr.KindConflict, "SOME_CONFLICT", "base")
	cause := errors.New("the cause")
	for name, err := range map[string]error{
		"with":         base.With("another detail"),
		"wrap":         base.Wrap(cause),
		"with of wrap": base.Wrap(cause).With("x"),
		"%w":           fmt.Errorf("context: %w", base.With("y")),
	} {
		if !errors.Is(err, base) {
			t.Errorf("%s: errors.Is(%v, base) = false", name, err)
		}
	}
	if !errors.Is(base.Wrap(cause), cause) {
		t.Error("a wrapped copy does not unwrap to its cause")
	}
	other := apperr.New(apperr.KindConflict, "SOME_CONFLICT", "base")
	if errors.Is(base, other) || errors.Is(base.With("z"), other) {
		t.Error("two sentinels with the same kind and code match each other")
	}
	if !errors.Is(apperr.Validation("bad", apperr.FieldError{Field: "f"}), apperr.ErrValidation) {
		t.Error("Validation is not ErrValidation")
	}
}

// TestErrorsOfDifferentDomainsDoNotMatch: sentinels that share a kind and
// a code across domains (NOT_FOUND, INVALID_CURSOR, ...) are different
// errors; each matches only itself.
func TestErrorsOfDifferentDomainsDoNotMatch(t *testing.T) {
	sentinels := map[string]*apperr.Error{
		"apperr.ErrNotFound":          apperr.ErrNotFound,
		"users.ErrNotFound":           users.ErrNotFound,
		"topup.ErrNotFound":           topup.ErrNotFound,
		"transfer.ErrNotFound":        transfer.ErrNotFound,
		"withdraw.ErrNotFound":        withdraw.ErrNotFound,
		"ledger.ErrAccountNotFound":   ledger.ErrAccountNotFound,
		"ledger.ErrAlreadyReversed":   ledger.ErrAlreadyReversed,
		"ledger.ErrHoldNotActive":     ledger.ErrHoldNotActive,
		"withdraw.ErrAlreadySettled":  withdraw.ErrAlreadySettled,
		"idempotency.ErrInProgress":   idempotency.ErrInProgress,
		"pagination.ErrBadCursor":     pagination.ErrBadCursor,
		"apperr.ErrValidation":        apperr.ErrValidation,
		"users.ErrEmailTaken":         users.ErrEmailTaken,
		"transfer.ErrSelfTransfer":    transfer.ErrSelfTransfer,
		"ledger.ErrInsufficientFunds": ledger.ErrInsufficientFunds,
	}
	for an, a := range sentinels {
		for bn, b := range sentinels {
			got := errors.Is(a.With("detail"), b)
			if want := a == b; got != want {
				t.Errorf("errors.Is(%s.With(...), %s) = %v, want %v", an, bn, got, want)
			}
		}
	}
}
