package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/migrations"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/httpserver"
)

// PoolParams are the dependencies of the pool.
type PoolParams struct {
	fx.In

	Lifecycle      fx.Lifecycle
	Config         config.Database
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
}

// ProvidePool builds the pool, traced (one span per query, named after the
// query's "-- name:" comment; statements but never their parameters) and
// with its connection statistics exported as metrics, and closes it when
// the application stops.
func ProvidePool(p PoolParams) (*pgxpool.Pool, error) {
	tracer := otelpgx.NewTracer(
		otelpgx.WithTracerProvider(p.TracerProvider),
		otelpgx.WithMeterProvider(p.MeterProvider),
		otelpgx.WithSpanNameFunc(SpanName),
		otelpgx.WithTrimSQLInSpanName(),
		otelpgx.WithDisableQuerySpanNamePrefix(),
		otelpgx.WithTracerAttributes(attribute.String("db.system.name", "postgresql")),
	)
	pool, err := NewPool(context.Background(), p.Config, tracer)
	if err != nil {
		return nil, err
	}
	if err := otelpgx.RecordStats(pool, otelpgx.WithStatsMeterProvider(p.MeterProvider)); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres pool metrics: %w", err)
	}
	p.Lifecycle.Append(fx.StopHook(pool.Close))
	return pool, nil
}

// SpanName names a query's span after its "-- name: X" comment, the
// convention of every query in paygate, or its first keyword otherwise.
func SpanName(stmt string) string {
	s := strings.TrimSpace(stmt)
	if rest, ok := strings.CutPrefix(s, "-- name:"); ok {
		name, _, _ := strings.Cut(strings.TrimSpace(rest), "\n")
		return "db " + strings.TrimSpace(name)
	}
	kw, _, _ := strings.Cut(s, " ")
	return "db " + strings.ToUpper(kw)
}

// ProvideDB wraps the pool in the transaction helper.
func ProvideDB(pool *pgxpool.Pool, cfg config.Database, log *zap.Logger) *DB {
	return NewDB(pool, cfg.TxMaxAttempts, log)
}

// ProvideMigrator returns the migrator over paygate's embedded migrations.
func ProvideMigrator(pool *pgxpool.Pool, log *zap.Logger) (*Migrator, error) {
	return NewMigrator(pool, migrations.FS, log)
}

// Checks are the readiness checks of the database.
type Checks struct {
	fx.Out

	Reachable httpserver.Check `group:"readiness"`
	Schema    httpserver.Check `group:"readiness"`
}

// ProvideChecks returns the "postgres" (reachable) and "schema" (no pending
// migration) readiness checks.
func ProvideChecks(pool *pgxpool.Pool, m *Migrator) Checks {
	return Checks{
		Reachable: httpserver.Check{Name: "postgres", Probe: func(ctx context.Context) error {
			if err := pool.Ping(ctx); err != nil {
				return fmt.Errorf("unreachable: %w", err)
			}
			return nil
		}},
		Schema: httpserver.Check{Name: "schema", Probe: m.SchemaCheck},
	}
}

// migrateOnStart applies migrations before anything else starts when
// PAYGATE_MIGRATE_ON_START is true.
func migrateOnStart(lc fx.Lifecycle, cfg config.Database, m *Migrator) {
	if !cfg.MigrateOnStart {
		return
	}
	lc.Append(fx.StartHook(func(ctx context.Context) error {
		_, err := m.Up(ctx)
		return err
	}))
}

// Module is the postgres fx module.
var Module = fx.Module("postgres",
	fx.Provide(ProvidePool, ProvideDB, ProvideMigrator, ProvideChecks),
	fx.Invoke(migrateOnStart),
)
