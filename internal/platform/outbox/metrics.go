package outbox

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"
)

// Metric names of the outbox.
const (
	// MetricPending is the number of events not yet published.
	MetricPending = "paygate.outbox.pending"
	// MetricOldestAge is the age of the oldest unpublished event: it grows
	// while Kafka is unreachable or the relay is stuck.
	MetricOldestAge = "paygate.outbox.oldest_pending_age"
	// MetricParked is the number of events parked because the broker
	// refused them for good; any is a fault an operator must look at.
	MetricParked = "paygate.outbox.parked"
)

// RegisterMetrics exports the backlog gauges, read from the database at
// each scrape (a partial index keeps the query cheap).
func RegisterMetrics(mp metric.MeterProvider, pool *pgxpool.Pool) error {
	m := mp.Meter("paygate/outbox")
	pending, err := m.Int64ObservableGauge(MetricPending, metric.WithUnit("{event}"),
		metric.WithDescription("Outbox events waiting to be published to Kafka."))
	if err != nil {
		return err
	}
	age, err := m.Float64ObservableGauge(MetricOldestAge, metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest outbox event waiting to be published (0 when none)."))
	if err != nil {
		return err
	}
	parked, err := m.Int64ObservableGauge(MetricParked, metric.WithUnit("{event}"),
		metric.WithDescription("Outbox events parked because the broker refused them for good."))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var n, p int64
		var oldest float64
		if err := pool.QueryRow(ctx, `-- name: OutboxBacklog
SELECT count(*) FILTER (WHERE parked_at IS NULL), count(*) FILTER (WHERE parked_at IS NOT NULL),
  coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE parked_at IS NULL)), 0)::float8
FROM outbox WHERE sent_at IS NULL`).Scan(&n, &p, &oldest); err != nil {
			return err
		}
		o.ObserveInt64(pending, n)
		o.ObserveInt64(parked, p)
		o.ObserveFloat64(age, oldest)
		return nil
	}, pending, parked, age)
	return err
}
