package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/postgres"
	"github.com/paygate/paygate/internal/provider"
	"github.com/paygate/paygate/internal/provider/xendit"
	"github.com/paygate/paygate/internal/reconcile"
)

// errUnreconciled makes `paygate reconcile` exit non-zero.
var errUnreconciled = errors.New("reconciliation found mismatches")

// reconcileVars are the variables `paygate reconcile` reads: the database
// and the provider's API; not the callback token, which only verifies
// callbacks.
var reconcileVars = []string{"PAYGATE_DATABASE_*", "PAYGATE_PROVIDER", "PAYGATE_PROVIDER_URL",
	"PAYGATE_PROVIDER_SECRET_KEY", "PAYGATE_PROVIDER_TIMEOUT", "PAYGATE_PROVIDER_MAX_ATTEMPTS"}

// reconcileCmd implements `paygate reconcile [-from T] [-to T]`: it
// compares the provider's settled transactions of the period (the last
// 24 hours by default) with the books, prints every mismatch and a
// summary, and fails when there is any. It builds only what
// reconciliation reads: a pool and the provider's API client.
func reconcileCmd(ctx context.Context, cfg config.Config, _ *zap.Logger, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("reconcile", flag.ContinueOnError)
	fromS := fs.String("from", "", "start of the period, RFC 3339 (default: 24h before -to)")
	toS := fs.String("to", "", "end of the period, RFC 3339, exclusive (default: now)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errUsage
	}
	from, to, err := reconcile.Window(*fromS, *toS, time.Now())
	if err != nil {
		return windowError(err)
	}
	pool, err := postgres.NewPool(ctx, cfg.Database, nil)
	if err != nil {
		return err
	}
	defer pool.Close()
	client, err := xendit.New(xendit.Options{BaseURL: cfg.Provider.BaseURL(), SecretKey: cfg.Provider.SecretKey,
		Timeout: cfg.Provider.Timeout, MaxAttempts: cfg.Provider.MaxAttempts, Name: provider.Name(cfg.Provider.Name)})
	if err != nil {
		return err
	}
	rep, err := reconcile.Build(client, pool).Run(ctx, from, to)
	if err != nil {
		return err
	}
	if err := writeReport(stdout, rep); err != nil {
		return err
	}
	if !rep.OK() {
		return errUnreconciled
	}
	return nil
}

// windowError turns a refused period into a command-line message naming
// the flags.
func windowError(err error) error {
	var ae *apperr.Error
	if !errors.As(err, &ae) {
		return err
	}
	var parts []string
	for _, f := range ae.Fields {
		parts = append(parts, "-"+f.Field+" "+f.Message)
	}
	return fmt.Errorf("reconcile: %s", strings.Join(parts, "; "))
}

// writeReport prints the summary and a table of the mismatches.
func writeReport(w io.Writer, rep reconcile.Report) error {
	summary := fmt.Sprintf("%d", len(rep.Mismatches))
	var byKind []string
	for _, k := range reconcile.Kinds {
		if n := rep.Count(k); n > 0 {
			byKind = append(byKind, fmt.Sprintf("%s %d", k, n))
		}
	}
	if len(byKind) > 0 {
		summary += " (" + strings.Join(byKind, ", ") + ")"
	}
	fmt.Fprintf(w, "period:      %s to %s\nprovider:    %s\nchecked:     %d payments, %d payouts\nmismatches:  %s\n",
		rep.From.Format(time.RFC3339), rep.To.Format(time.RFC3339), rep.Provider, rep.Checked.Payments, rep.Checked.Payouts, summary)
	if rep.OK() {
		_, err := fmt.Fprintln(w, "reconciled OK")
		return err
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tREFERENCE\tPROVIDER ID\tPROVIDER AMOUNT\tPAYGATE AMOUNT\tCURRENCY\tAT\tDETAIL")
	for _, m := range rep.Mismatches {
		id := m.ProviderID
		if id == "" {
			id = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", m.Kind, m.Reference, id, m.ProviderAmount, m.PaygateAmount,
			m.Currency, m.At.Format(time.RFC3339), m.Detail)
	}
	return tw.Flush()
}
