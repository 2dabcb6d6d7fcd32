package topup

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/paygate/paygate/internal/movement"
)

// Metric names of the top-up domain (Prometheus adds _total).
const (
	MetricTopUps      = "paygate.topup.requests"
	MetricAmount      = "paygate.topup.amount"
	MetricSettlements = "paygate.topup.settlements"
)

// SettlementResults are the values of the result label of
// MetricSettlements.
var SettlementResults = []string{ResultSucceeded, ResultFailed, ResultExpired, ResultMismatch}

type metrics struct {
	requests    metric.Int64Counter
	settlements *movement.Counters
}

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	m := mp.Meter("paygate/topup")
	c, err := m.Int64Counter(MetricTopUps, metric.WithDescription(
		"Top-up requests by method and result (success: pending with payment instructions; replays not counted)."))
	if err != nil {
		return nil, err
	}
	s, err := movement.NewCounters(m,
		MetricSettlements, "Top-ups ended by method and result: succeeded (credited), failed, expired, mismatch (paid another amount; nothing credited).",
		MetricAmount, "Sum of credited top-up amounts by method, in minor units.")
	if err != nil {
		return nil, err
	}
	return &metrics{requests: c, settlements: s}, nil
}

// record counts one top-up request outcome. method is one of the 21
// methods or "unknown".
func (m *metrics) record(ctx context.Context, method, result string, _ int64) {
	if m == nil {
		return
	}
	m.requests.Add(ctx, 1, metric.WithAttributes(attribute.String("method", method), attribute.String("result", result)))
}

// settled counts one top-up that ended; the amount of a credited one is
// added to MetricAmount.
func (m *metrics) settled(ctx context.Context, method, result string, amount int64) {
	if m == nil {
		return
	}
	if result != ResultSucceeded {
		amount = 0
	}
	m.settlements.Record(ctx, []attribute.KeyValue{attribute.String("method", method), attribute.String("result", result)},
		amount, attribute.String("method", method))
}
