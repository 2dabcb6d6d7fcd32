package ledger_test

import (
	"context"
	"testing"
	"time"

	otelmetric "go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/ledger"
	"github.com/paygate/paygate/internal/platform/config"
)

// gauge returns the last value of the named gauge, and whether it has one.
func gauge(t *testing.T, r *metric.ManualReader, name string) (int64, bool) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if g, ok := m.Data.(metricdata.Gauge[int64]); ok && m.Name == name && len(g.DataPoints) > 0 {
				return g.DataPoints[0].Value, true
			}
		}
	}
	return 0, false
}

// TestScheduledVerificationRunsOnOneReplicaAtATime: while one replica
// verifies (it holds the lock in its snapshot transaction), another's
// scheduled run skips the round and records nothing; once the lock is
// free, the run verifies and records the gauges.
func TestScheduledVerificationRunsOnOneReplicaAtATime(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reader := metric.NewManualReader()
	v, err := ledger.NewVerification(ledger.NewVerifier(f.store), f.pool, metric.NewMeterProvider(metric.WithReader(reader)), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	// Another replica, mid-verification: it holds the same lock.
	tx, err := f.pool.Begin(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var locked bool
	if err := tx.QueryRow(f.ctx, "SELECT pg_try_advisory_xact_lock(hashtextextended('paygate.ledger.verify', 0))").Scan(&locked); err != nil || !locked {
		t.Fatalf("taking the lock as the other replica: %v %v", locked, err)
	}
	ran, err := v.RunScheduled(f.ctx)
	if err != nil || ran {
		t.Fatalf("with the lock taken elsewhere: ran=%v err=%v, want a skipped round", ran, err)
	}
	if _, ok := gauge(t, reader, ledger.MetricVerificationTime); ok {
		t.Fatal("a skipped round recorded a verification time")
	}
	if err := tx.Rollback(f.ctx); err != nil {
		t.Fatal(err)
	}
	ran, err = v.RunScheduled(f.ctx)
	if err != nil || !ran {
		t.Fatalf("with the lock free: ran=%v err=%v", ran, err)
	}
	if ok, _ := gauge(t, reader, ledger.MetricVerificationOK); ok != 1 {
		t.Fatalf("verification ok gauge = %d, want 1", ok)
	}
	if at, ok := gauge(t, reader, ledger.MetricVerificationTime); !ok || time.Since(time.Unix(at, 0)) > time.Minute {
		t.Fatalf("verification time gauge = %d (%v)", at, ok)
	}
}

// TestVerificationRunsAtStart: the module verifies once right after start,
// long before its interval, so the gauges have a value at once.
func TestVerificationRunsAtStart(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reader := metric.NewManualReader()
	mp := metric.NewMeterProvider(metric.WithReader(reader))
	app := fxtest.New(t,
		fx.Supply(f.pool, zap.NewNop(), config.Money{Currency: currency, VerifyInterval: time.Hour}),
		fx.Provide(func() otelmetric.MeterProvider { return mp }),
		ledger.Module,
	)
	app.RequireStart()
	defer app.RequireStop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ok, found := gauge(t, reader, ledger.MetricVerificationOK); found {
			if ok != 1 {
				t.Fatalf("verification ok gauge = %d, want 1", ok)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no verification within 10s of start (interval 1h)")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
