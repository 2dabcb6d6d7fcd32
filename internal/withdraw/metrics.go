package withdraw

import (
	"context"

	"github.com/paygate/paygate/internal/movement"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metric names of the withdrawal domain (Prometheus adds _total).
const (
	MetricRequests = "paygate.withdraw.requests"
	MetricSettled  = "paygate.withdraw.settled"
	MetricAmount   = "paygate.withdraw.settled_amount"
)

// Statuses are the bounded values of the status label of settlements.
var Statuses = []string{StatusSucceeded, StatusFailed}

type metrics struct {
	requests metric.Int64Counter
	settles  *movement.Counters
}

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	m := mp.Meter("paygate/withdraw")
	r, err := m.Int64Counter(MetricRequests, metric.WithDescription("Withdrawal requests by result (replays not counted)."))
	if err != nil {
		return nil, err
	}
	s, err := movement.NewCounters(m, MetricSettled, "Withdrawals settled, by final status.",
		MetricAmount, "Sum of settled withdrawal amounts by final status, in minor units.")
	return &metrics{requests: r, settles: s}, err
}

func (m *metrics) requested(ctx context.Context, result string) {
	if m != nil {
		m.requests.Add(ctx, 1, metric.WithAttributes(attribute.String("result", result)))
	}
}

func (m *metrics) settled(ctx context.Context, status string, amount int64) {
	if m == nil {
		return
	}
	attr := attribute.String("status", status)
	m.settles.Record(ctx, []attribute.KeyValue{attr}, amount, attr)
}
