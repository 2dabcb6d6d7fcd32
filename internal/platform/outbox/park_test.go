package outbox_test

import (
	"context"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.uber.org/zap/zaptest"

	"github.com/paygate/paygate/internal/platform/kafka"
	"github.com/paygate/paygate/internal/platform/kafka/kafkatest"
	"github.com/paygate/paygate/internal/platform/outbox"
	"github.com/paygate/paygate/internal/platform/pgtest"
)

// TestRelayParksAnEventTheBrokerRefusesForGood: between two ordinary
// events sits one larger than any record the broker takes. The relay
// publishes the two, parks the third with its error (counted by the parked
// gauge, no longer pending), and the next batches neither retry it nor
// fail.
func TestRelayParksAnEventTheBrokerRefusesForGood(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t))
	broker := kafkatest.NewBroker(t, topic)
	log := zaptest.NewLogger(t)
	prod := kafka.NewProducer(broker.Config(), []kafka.TopicSpec{{Name: topic}}, log)
	t.Cleanup(func() { _ = prod.Close() })
	relay := outbox.NewRelay(pool, prod, relayConfig(), log, sdktrace.NewTracerProvider())
	reader := sdkmetric.NewManualReader()
	if err := outbox.RegisterMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), pool); err != nil {
		t.Fatal(err)
	}

	f := &fixture{pool: pool}
	event := func(key string, data any) outbox.Event {
		return outbox.Event{Topic: topic, Key: key, Type: "paygate.test.happened", Subject: "tests/" + key, Data: data}
	}
	f.enqueue(t, ctx, true, event("a", map[string]string{"n": "1"}))
	poison := f.enqueue(t, ctx, true, event("b", map[string]string{"blob": strings.Repeat("x", 2<<20)}))
	f.enqueue(t, ctx, true, event("c", map[string]string{"n": "3"}))

	n, err := relay.RelayOnce(ctx)
	if err != nil || n != 2 {
		t.Fatalf("first batch: published %d, err %v; want the 2 ordinary events and no error", n, err)
	}
	if got := broker.ReadAll(t, topic, 2, 10*time.Second); len(got) != 2 || got[0].Key != "a" || got[1].Key != "c" {
		t.Fatalf("published %v, want a and c", got)
	}
	var parkedAt *time.Time
	var lastError string
	if err := pool.QueryRow(ctx, "SELECT parked_at, last_error FROM outbox WHERE event_id = $1", poison).Scan(&parkedAt, &lastError); err != nil {
		t.Fatal(err)
	}
	if parkedAt == nil || !strings.Contains(lastError, "refused") {
		t.Fatalf("poison event: parked_at %v, last_error %q", parkedAt, lastError)
	}
	for range 2 {
		if n, err := relay.RelayOnce(ctx); err != nil || n != 0 {
			t.Fatalf("later batch: published %d, err %v; want nothing to do", n, err)
		}
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if g, ok := m.Data.(metricdata.Gauge[int64]); ok && len(g.DataPoints) > 0 {
				got[m.Name] = g.DataPoints[0].Value
			}
		}
	}
	if got[outbox.MetricParked] != 1 || got[outbox.MetricPending] != 0 {
		t.Fatalf("gauges %v: want 1 parked and 0 pending", got)
	}
}
