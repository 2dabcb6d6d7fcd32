package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.uber.org/zap/zaptest"

	"github.com/paygate/paygate/internal/platform/kafka"
	"github.com/paygate/paygate/internal/platform/kafka/kafkatest"
)

// TestLagFollowsTheGroup publishes records nobody consumed (lag = all of
// them), then lets a consumer group work through them (lag falls to 0).
func TestLagFollowsTheGroup(t *testing.T) {
	t.Parallel()
	const topic = "lag.test"
	b := kafkatest.NewBroker(t, topic)
	cfg := b.Config()
	log := zaptest.NewLogger(t)
	prod := kafka.NewProducer(cfg, nil, log)
	defer prod.Close()
	var msgs []*sarama.ProducerMessage
	for i := range 25 {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder(fmt.Sprint(i))})
	}
	if err := prod.Send(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	m, err := kafka.NewLagMonitor(cfg, metricnoop.NewMeterProvider(), time.Hour, log)
	if err != nil {
		t.Fatal(err)
	}
	m.Watch("lag-group", []string{topic})
	defer m.Stop(context.Background())
	if err := m.Poll(); err != nil {
		t.Fatal(err)
	}
	if lag, ok := m.Lag("lag-group"); !ok || lag != 25 {
		t.Fatalf("lag before consuming = %d (known: %t), want 25", lag, ok)
	}
	seen := make(chan struct{}, 100)
	runner, err := kafka.NewGroupRunner(cfg, "lag-group", []string{topic}, func(context.Context, *sarama.ConsumerMessage) error {
		seen <- struct{}{}
		return nil
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := runner.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 25 {
		select {
		case <-seen:
		case <-time.After(30 * time.Second):
			t.Fatal("records not consumed")
		}
	}
	// Stopping commits the marked offsets.
	if err := runner.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m.Poll(); err != nil {
		t.Fatal(err)
	}
	if lag, ok := m.Lag("lag-group"); !ok || lag != 0 {
		t.Fatalf("lag after consuming = %d (known: %t), want 0", lag, ok)
	}
}
