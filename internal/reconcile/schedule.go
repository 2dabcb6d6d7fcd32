package reconcile

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/postgres"
)

// Metric names of reconciliation.
const (
	// MetricUnreconciled is the number of mismatches, by kind, that the
	// last scheduled reconciliation found.
	MetricUnreconciled = "paygate.reconcile.unreconciled"
	// MetricLastRun is when the last scheduled reconciliation completed
	// (Unix seconds), so that a stalled one shows.
	MetricLastRun = "paygate.reconcile.last_run_timestamp"
)

// lockKey names the advisory lock that lets one replica at a time run the
// scheduled reconciliation: every replica would find the same answer.
const lockKey = "paygate.reconcile"

// Schedule is the scheduled reconciliation: the last window of time,
// ending a settling delay ago, reconciled periodically by one replica at
// a time, its outcome published as the reconciliation gauges. Only the
// schedule feeds the gauges: a reconciliation an administrator asks for
// covers a period of their choosing, which says nothing about now.
type Schedule struct {
	rec    *Reconciler
	pool   *pgxpool.Pool
	window time.Duration
	settle time.Duration
	log    *zap.Logger

	mu     sync.Mutex
	ran    bool
	counts map[Kind]int64
	at     time.Time
}

// NewSchedule returns the schedule reconciling the window ending settle
// ago. settle is how long paygate may take to book what the provider
// settled (a callback in flight, or a lost one the poller catches):
// an item that recent is not yet a mismatch.
func NewSchedule(rec *Reconciler, pool *pgxpool.Pool, window, settle time.Duration, mp metric.MeterProvider, log *zap.Logger) (*Schedule, error) {
	if window > MaxWindow {
		return nil, fmt.Errorf("reconcile: PAYGATE_RECONCILE_WINDOW %s is longer than %s", window, MaxWindow)
	}
	s := &Schedule{rec: rec, pool: pool, window: window, settle: settle, log: log, counts: map[Kind]int64{}}
	m := mp.Meter("paygate/reconcile")
	unreconciled, err := m.Int64ObservableGauge(MetricUnreconciled,
		metric.WithDescription("Mismatches between the provider's settled transactions and the ledger found by the last scheduled reconciliation, by kind."))
	if err != nil {
		return nil, err
	}
	last, err := m.Int64ObservableGauge(MetricLastRun, metric.WithUnit("s"),
		metric.WithDescription("Unix time of the last completed scheduled reconciliation."))
	if err != nil {
		return nil, err
	}
	// Nothing is observed before the first run: no value is better than
	// a zero nobody measured.
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.ran {
			return nil
		}
		for _, k := range Kinds {
			o.ObserveInt64(unreconciled, s.counts[k], metric.WithAttributes(attribute.String("kind", string(k))))
		}
		o.ObserveInt64(last, s.at.Unix())
		return nil
	}, unreconciled, last)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// RunScheduled reconciles the schedule's window unless another replica
// is reconciling right now, and records the outcome. It reports whether
// it ran.
func (s *Schedule) RunScheduled(ctx context.Context) (bool, error) {
	var rep Report
	ran, err := postgres.WithSessionLock(ctx, s.pool, lockKey, func(ctx context.Context) error {
		to := time.Now().Add(-s.settle)
		var err error
		rep, err = s.rec.Run(ctx, to.Add(-s.window), to)
		return err
	})
	if !ran || err != nil {
		return ran, err
	}
	s.record(rep)
	if !rep.OK() {
		fields := []zap.Field{zap.Time("from", rep.From), zap.Time("to", rep.To), zap.Int("mismatches", len(rep.Mismatches))}
		for _, k := range Kinds {
			if n := rep.Count(k); n > 0 {
				fields = append(fields, zap.Int(string(k), n))
			}
		}
		s.log.Error("reconciliation found mismatches; run paygate reconcile for the list", fields...)
	}
	return true, nil
}

func (s *Schedule) record(rep Report) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range Kinds {
		s.counts[k] = int64(rep.Count(k))
	}
	s.ran, s.at = true, time.Now()
}
