// Command paygate is the payment gateway: one binary that serves the API
// and runs the outbox relay and the Kafka consumers.
//
// Usage:
//
//	paygate [serve]          run the gateway (default)
//	paygate migrate          apply pending database migrations and exit
//	paygate config [-markdown]  print every configuration variable
//	paygate users create-admin -email E [-firstname F -lastname L]
//	                         create an administrator; the password is read
//	                         from PAYGATE_ADMIN_PASSWORD or standard input
//	paygate ledger verify    check every ledger invariant; exit 1 on a violation
//	paygate reconcile [-from T -to T]
//	                         compare the provider's settled transactions with
//	                         the books (default: the last 24 hours); exit 1 on
//	                         a mismatch
//	paygate jwt-keygen       print a new Ed25519 signing key and its public key
//	paygate sandbox [-listen A -auto-pay ...]  run the local payment provider
//	paygate sandbox pay|expire <payment-id-or-reference> [-amount N]
//	                         tell a running sandbox that a customer paid, or
//	                         that a payment expired
//	paygate version          print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/app"
	"github.com/paygate/paygate/internal/migrations"
	"github.com/paygate/paygate/internal/platform/buildinfo"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/logging"
	"github.com/paygate/paygate/internal/platform/postgres"
)

func main() {
	// Times leave paygate in UTC (RFC 3339 with Z), whatever the host's
	// zone: values read from PostgreSQL come back in time.Local.
	time.Local = time.UTC
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "paygate:", err)
		os.Exit(1)
	}
}

// errUsage is returned for a command line paygate does not understand.
var errUsage = errors.New("usage: paygate [serve|migrate|config [-markdown]|users create-admin -email E|ledger verify|reconcile [-from T -to T]|jwt-keygen|sandbox [pay|expire]|version]")

// run executes the command named by args and returns its error.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	return runWithInput(ctx, args, os.Stdin, stdout)
}

// runWithInput is run with an explicit standard input, for tests.
func runWithInput(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		cfg, log, err := load("*")
		if err != nil {
			return err
		}
		defer func() { _ = log.Sync() }()
		return serve(ctx, cfg, log)
	case "migrate":
		cfg, log, err := load(migrateVars...)
		if err != nil {
			return err
		}
		defer func() { _ = log.Sync() }()
		return migrate(ctx, cfg, log)
	case "config":
		fs := flag.NewFlagSet("config", flag.ContinueOnError)
		md := fs.Bool("markdown", false, "print a Markdown table")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *md {
			return config.WriteMarkdown(stdout)
		}
		return config.WriteTable(stdout)
	case "users":
		if len(args) == 0 || args[0] != "create-admin" {
			return errUsage
		}
		cfg, log, err := load(createAdminVars...)
		if err != nil {
			return err
		}
		defer func() { _ = log.Sync() }()
		return createAdmin(ctx, cfg, log, args[1:], stdin, stdout)
	case "ledger":
		if len(args) == 0 || args[0] != "verify" {
			return errUsage
		}
		cfg, log, err := load(ledgerVerifyVars...)
		if err != nil {
			return err
		}
		defer func() { _ = log.Sync() }()
		return ledgerVerify(ctx, cfg, log, stdout)
	case "reconcile":
		cfg, log, err := load(reconcileVars...)
		if err != nil {
			return err
		}
		defer func() { _ = log.Sync() }()
		return reconcileCmd(ctx, cfg, log, args, stdout)
	case "jwt-keygen":
		return jwtKeygen(stdout)
	case "sandbox":
		return sandboxCmd(ctx, args, stdout)
	case "version":
		_, err := fmt.Fprintln(stdout, buildinfo.Version)
		return err
	case "help", "-h", "--help":
		_, err := fmt.Fprintln(stdout, errUsage.Error())
		return err
	default:
		return fmt.Errorf("unknown command %q; %w", cmd, errUsage)
	}
}

// migrateVars are the variables `paygate migrate` reads: the migration Job
// is given the database and nothing else.
var migrateVars = []string{"PAYGATE_DATABASE_*"}

// load reads the configuration variables matching patterns (see
// config.LoadMatching) and builds the logger.
func load(patterns ...string) (config.Config, *zap.Logger, error) {
	cfg, err := config.LoadMatching(patterns...)
	if err != nil {
		return config.Config{}, nil, err
	}
	log, err := logging.New(cfg.Env, cfg.LogLevel)
	if err != nil {
		return config.Config{}, nil, err
	}
	return cfg, log, nil
}

// serve runs the application until SIGINT or SIGTERM (or ctx ends), then
// stops it gracefully. extra options let tests add to the graph.
func serve(ctx context.Context, cfg config.Config, log *zap.Logger, extra ...fx.Option) error {
	a := fx.New(app.Options(cfg, log, extra...))
	if err := a.Err(); err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, a.StartTimeout())
	defer cancel()
	if err := a.Start(startCtx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	log.Info("paygate started", zap.String("version", buildinfo.Version))
	select {
	case sig := <-a.Wait():
		log.Info("shutting down", zap.String("signal", sig.Signal.String()))
	case <-ctx.Done():
		log.Info("shutting down", zap.Error(ctx.Err()))
	}
	stopCtx, cancelStop := context.WithTimeout(context.WithoutCancel(ctx), a.StopTimeout())
	defer cancelStop()
	if err := a.Stop(stopCtx); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	log.Info("paygate stopped")
	return nil
}

// migrate applies pending migrations and exits.
func migrate(ctx context.Context, cfg config.Config, log *zap.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	pool, err := postgres.NewPool(ctx, cfg.Database, nil)
	if err != nil {
		return err
	}
	defer pool.Close()
	m, err := postgres.NewMigrator(pool, migrations.FS, log)
	if err != nil {
		return err
	}
	applied, err := m.Up(ctx)
	if err != nil {
		return err
	}
	log.Info("migrations done", zap.Ints("applied", applied), zap.Int("latest", m.Latest()))
	return nil
}
