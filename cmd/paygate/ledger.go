package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/app"
	"github.com/paygate/paygate/internal/ledger"
	"github.com/paygate/paygate/internal/platform/config"
)

// errLedgerViolations makes `paygate ledger verify` exit non-zero.
var errLedgerViolations = errors.New("ledger verification found violations")

// ledgerVerify implements `paygate ledger verify`: it checks every ledger
// invariant, prints the counts and each violation, and fails when there
// is any.
func ledgerVerify(ctx context.Context, cfg config.Config, log *zap.Logger, stdout io.Writer) error {
	var v *ledger.Verifier
	var pool *pgxpool.Pool
	a := fx.New(app.Options(cfg, log), fx.NopLogger, fx.Populate(&v, &pool))
	if err := a.Err(); err != nil {
		return err
	}
	defer pool.Close()
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
