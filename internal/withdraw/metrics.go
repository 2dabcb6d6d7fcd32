package withdraw

import (
	"context"

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
	settles  metric.Int64Counter
	amount   metric.Int64Counter
}

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	m := mp.Meter("paygate/withdraw")
	r, err := m.Int64Counter(MetricRequests, metric.WithDescription("Withdrawal requests by result (replays not counted)."))
	if err != nil {
		return nil, err
	}
	s, err := m.Int64Counter(MetricSettled, metric.WithDescription("Withdrawals settled, by final status."))
	if err != nil {
		return nil, err
	}
	a, err := m.Int64Counter(MetricAmount, metric.WithUnit("{minor_unit}"), metric.WithDescription("Sum of settled withdrawal amounts by final status, in minor units."))
	if err != nil {
		return nil, err
	}
	return &metrics{requests: r, settles: s, amount: a}, nil
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
	attrs := metric.WithAttributes(attribute.String("status", status))
	m.settles.Add(ctx, 1, attrs)
	m.amount.Add(ctx, amount, attrs)
}
