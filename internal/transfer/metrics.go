package transfer

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/paygate/paygate/internal/movement"
)

// Metric names of the transfer domain (Prometheus adds _total).
const (
	MetricTransfers = "paygate.transfer.requests"
	MetricAmount    = "paygate.transfer.amount"
)

// CommitterName is the "committer" label of the transfer batches' metrics
// (internal/platform/batch).
const CommitterName = "transfer"

type metrics struct{ *movement.Counters }

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	c, err := movement.NewCounters(mp.Meter("paygate/transfer"),
		MetricTransfers, "Transfer requests by result (replays not counted).",
		MetricAmount, "Sum of successful transfer amounts, in minor units.")
	return &metrics{c}, err
}

// record counts one transfer outcome; result is one of movement.Results,
// amount is counted when not 0 (successes).
func (m *metrics) record(ctx context.Context, result string, amount int64) {
	if m == nil {
		return
	}
	m.Record(ctx, []attribute.KeyValue{attribute.String("result", result)}, amount)
}
