package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/periodic"
)

// Metric names of the ledger.
const (
	// MetricVerificationOK is 1 when the last verification found the
	// ledger consistent, 0 when it found violations.
	MetricVerificationOK = "paygate.ledger.verification.ok"
	// MetricVerificationViolations is the number of violations found by
	// the last verification.
	MetricVerificationViolations = "paygate.ledger.verification.violations"
	// MetricVerificationTime is when the last verification ran (Unix
	// seconds), so a stalled verifier shows.
	MetricVerificationTime = "paygate.ledger.verification.timestamp"
)

// VerifierParams are the dependencies of the verifier.
type VerifierParams struct {
	fx.In

	Store  *Store
	Owners []HoldOwner `group:"hold_owners"`
}

// ProvideVerifier builds the verifier over every hold owner.
func ProvideVerifier(p VerifierParams) *Verifier { return NewVerifier(p.Store, p.Owners...) }

// AsHoldOwner annotates a constructor whose result joins the hold owners.
func AsHoldOwner(f any) any {
	return fx.Annotate(f, fx.As(new(HoldOwner)), fx.ResultTags(`group:"hold_owners"`))
}

// Verification runs the verifier against the database and publishes each
// outcome as the verification gauges, whoever asked for it: the schedule,
// or an administrator over HTTP.
type Verification struct {
	verifier *Verifier
	pool     *pgxpool.Pool
	log      *zap.Logger

	ok, violations, at metric.Int64Gauge
}

// NewVerification returns the verification of the ledger in pool.
func NewVerification(v *Verifier, pool *pgxpool.Pool, mp metric.MeterProvider, log *zap.Logger) (*Verification, error) {
	m := mp.Meter("paygate/ledger")
	ok, err := m.Int64Gauge(MetricVerificationOK, metric.WithDescription("1 when the last ledger verification passed, 0 when it found violations."))
	if err != nil {
		return nil, err
	}
	viol, err := m.Int64Gauge(MetricVerificationViolations, metric.WithDescription("Violations found by the last ledger verification."))
	if err != nil {
		return nil, err
	}
	at, err := m.Int64Gauge(MetricVerificationTime, metric.WithUnit("s"), metric.WithDescription("Unix time of the last ledger verification."))
	if err != nil {
		return nil, err
	}
	return &Verification{verifier: v, pool: pool, log: log, ok: ok, violations: viol, at: at}, nil
}

// Run verifies the ledger now and records the outcome.
func (c *Verification) Run(ctx context.Context) (Report, error) {
	rep, err := c.verifier.Verify(ctx, c.pool)
	if err != nil {
		return Report{}, err
	}
	c.record(ctx, rep)
	return rep, nil
}

// verifyLockKey names the advisory lock that lets one replica at a time run
// the scheduled verification: it reads the whole ledger, and every replica
// would find the same answer.
const verifyLockKey = "paygate.ledger.verify"

// errBusy means another replica holds the verification lock.
var errBusy = errors.New("ledger verification running elsewhere")

// RunScheduled verifies the ledger unless another replica is verifying it
// right now, and records the outcome. It reports whether it ran.
//
// The lock is transaction-scoped and taken in the verification's own
// snapshot transaction, so it is released however the run ends, a lost
// connection included.
func (c *Verification) RunScheduled(ctx context.Context) (bool, error) {
	var rep Report
	err := c.verifier.inSnapshot(ctx, c.pool, func(tx pgx.Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, `-- name: TryLockLedgerVerification
SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))`, verifyLockKey).Scan(&locked); err != nil {
			return fmt.Errorf("ledger verify: lock: %w", err)
		}
		if !locked {
			return errBusy
		}
		var err error
		rep, err = c.verifier.verifyIn(ctx, tx)
		return err
	})
	if errors.Is(err, errBusy) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	c.record(ctx, rep)
	if !rep.OK() {
		c.log.Error("ledger verification found violations", zap.Int("violations", len(rep.Violations)))
	}
	return true, nil
}

func (c *Verification) record(ctx context.Context, rep Report) {
	ok := int64(0)
	if rep.OK() {
		ok = 1
	}
	c.ok.Record(ctx, ok)
	c.violations.Record(ctx, int64(len(rep.Violations)))
	c.at.Record(ctx, time.Now().Unix())
}

// VerificationParams are the dependencies of the verification.
type VerificationParams struct {
	fx.In

	Verifier      *Verifier
	Pool          *pgxpool.Pool
	MeterProvider metric.MeterProvider
	Log           *zap.Logger
}

// ProvideVerification builds the verification.
func ProvideVerification(p VerificationParams) (*Verification, error) {
	return NewVerification(p.Verifier, p.Pool, p.MeterProvider, p.Log.Named("ledger"))
}

// scheduleVerification runs the verification once right after start, so
// the verification gauges have a value as soon as the process is up rather
// than one interval later, and then every PAYGATE_LEDGER_VERIFY_INTERVAL.
func scheduleVerification(lc fx.Lifecycle, c *Verification, cfg config.Money) {
	lc.Append(periodic.Hook(cfg.VerifyInterval, func(ctx context.Context) {
		if _, err := c.RunScheduled(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("ledger verification failed to run", zap.Error(err))
		}
	}))
}

// Module is the ledger fx module: the engine, its verifier and the
// scheduled verification. The HTTP surface over it is the saldo domain's.
var Module = fx.Module("ledger",
	fx.Provide(
		func(cfg config.Money) *Store { return New(cfg.Currency) },
		ProvideVerifier,
		ProvideVerification,
	),
	fx.Invoke(scheduleVerification),
)
