package topup

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metric names of the top-up domain (Prometheus adds _total).
const (
	MetricTopUps = "paygate.topup.requests"
	MetricAmount = "paygate.topup.amount"
)

type metrics struct {
	count  metric.Int64Counter
	amount metric.Int64Counter
}

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	m := mp.Meter("paygate/topup")
	c, err := m.Int64Counter(MetricTopUps, metric.WithDescription("Top-up requests by method and result (replays not counted)."))
	if err != nil {
		return nil, err
	}
	a, err := m.Int64Counter(MetricAmount, metric.WithUnit("{minor_unit}"), metric.WithDescription("Sum of successful top-up amounts by method, in minor units."))
	if err != nil {
		return nil, err
	}
	return &metrics{count: c, amount: a}, nil
}

// record counts one top-up outcome. method is one of the 21 methods.
func (m *metrics) record(ctx context.Context, method, result string, amount int64) {
	if m == nil {
		return
	}
	m.count.Add(ctx, 1, metric.WithAttributes(attribute.String("method", method), attribute.String("result", result)))
	if result == "success" {
		m.amount.Add(ctx, amount, metric.WithAttributes(attribute.String("method", method)))
	}
}
