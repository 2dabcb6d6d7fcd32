package transfer

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metric names of the transfer domain (Prometheus adds _total).
const (
	MetricTransfers = "paygate.transfer.requests"
	MetricAmount    = "paygate.transfer.amount"
)

type metrics struct {
	count  metric.Int64Counter
	amount metric.Int64Counter
}

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	m := mp.Meter("paygate/transfer")
	c, err := m.Int64Counter(MetricTransfers, metric.WithDescription("Transfer requests by result (replays not counted)."))
	if err != nil {
		return nil, err
	}
	a, err := m.Int64Counter(MetricAmount, metric.WithUnit("{minor_unit}"), metric.WithDescription("Sum of successful transfer amounts, in minor units."))
	if err != nil {
		return nil, err
	}
	return &metrics{count: c, amount: a}, nil
}

// record counts one transfer outcome; result is one of movement.Results.
func (m *metrics) record(ctx context.Context, result string, amount int64) {
	if m == nil {
		return
	}
	m.count.Add(ctx, 1, metric.WithAttributes(attribute.String("result", result)))
	if result == "success" {
		m.amount.Add(ctx, amount)
	}
}
