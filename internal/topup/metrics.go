package topup

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/paygate/paygate/internal/movement"
)

// Metric names of the top-up domain (Prometheus adds _total).
const (
	MetricTopUps = "paygate.topup.requests"
	MetricAmount = "paygate.topup.amount"
)

type metrics struct{ *movement.Counters }

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	c, err := movement.NewCounters(mp.Meter("paygate/topup"),
		MetricTopUps, "Top-up requests by method and result (replays not counted).",
		MetricAmount, "Sum of successful top-up amounts by method, in minor units.")
	return &metrics{c}, err
}

// record counts one top-up outcome. method is one of the 21 methods or
// "unknown"; amount is counted when not 0 (successes).
func (m *metrics) record(ctx context.Context, method, result string, amount int64) {
	if m == nil {
		return
	}
	m.Record(ctx, []attribute.KeyValue{attribute.String("method", method), attribute.String("result", result)},
		amount, attribute.String("method", method))
}
