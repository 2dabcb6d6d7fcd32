package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/ledger"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/postgres"
	"github.com/paygate/paygate/internal/withdraw"
)

// errLedgerViolations makes `paygate ledger verify` exit non-zero.
var errLedgerViolations = errors.New("ledger verification found violations")

// ledgerVerifyVars are the variables `paygate ledger verify` reads.
var ledgerVerifyVars = []string{"PAYGATE_DATABASE_*", "PAYGATE_CURRENCY"}

// ledgerVerify implements `paygate ledger verify`: it checks every ledger
// invariant, prints the counts and each violation, and fails when there
// is any. It builds only what verification reads: a pool, the ledger and
// the hold owners (withdrawals); no producer, relay or consumer.
func ledgerVerify(ctx context.Context, cfg config.Config, _ *zap.Logger, stdout io.Writer) error {
	pool, err := postgres.NewPool(ctx, cfg.Database, nil)
	if err != nil {
		return err
	}
	defer pool.Close()
	v := ledger.NewVerifier(ledger.New(cfg.Money.Currency), withdraw.Store{})
	rep, err := v.Verify(ctx, pool)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "accounts:      %d\ntransactions:  %d\nentries:       %d\nactive holds:  %d\nviolations:    %d\n",
		rep.Accounts, rep.Transactions, rep.Entries, rep.ActiveHolds, len(rep.Violations))
	for _, viol := range rep.Violations {
		fmt.Fprintln(stdout, "  "+viol.String())
	}
	if !rep.OK() {
		return errLedgerViolations
	}
	_, err = fmt.Fprintln(stdout, "ledger OK")
	return err
}
