package kafka_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/zap/zaptest"

	"github.com/paygate/paygate/internal/platform/kafka"
	"github.com/paygate/paygate/internal/platform/kafka/kafkatest"
)

// TestRetryDelayIsBoundedExponentialWithJitter: each pause lies in the
// upper half of base·2^attempt, never above max, and pauses vary.
func TestRetryDelayIsBoundedExponentialWithJitter(t *testing.T) {
	t.Parallel()
	base, maxD := 100*time.Millisecond, 3*time.Second
	for attempt := range 12 {
		want := min(base<<attempt, maxD)
		seen := map[time.Duration]bool{}
		for range 50 {
			d := kafka.RetryDelay(base, maxD, attempt)
			if d < want/2 || d > want {
				t.Fatalf("attempt %d: delay %v outside [%v, %v]", attempt, d, want/2, want)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Fatalf("attempt %d: no jitter in 50 delays", attempt)
		}
	}
}

// TestFailingHandlerIsRetriedInPlace: a handler that fails a record four
// times is called again after short, growing pauses, within the same group
// session, instead of the consumer leaving and rejoining the group after
// the reconnect backoff (a minute here) each time; the record after it
// waits its turn, and both are handled once they succeed.
func TestFailingHandlerIsRetriedInPlace(t *testing.T) {
	t.Parallel()
	const topic = "retry.test"
	b := kafkatest.NewBroker(t, topic)
	cfg := b.Config()
	cfg.ReconnectBackoff = time.Minute
	cfg.ConsumerRetryBackoff, cfg.ConsumerRetryMaxBackoff = 20*time.Millisecond, 200*time.Millisecond
	log := zaptest.NewLogger(t)
	prod := kafka.NewProducer(cfg, nil, log)
	defer prod.Close()
	if err := prod.Send(context.Background(), []*sarama.ProducerMessage{
		{Topic: topic, Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder("first")},
		{Topic: topic, Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder("second")},
	}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var calls []string
	done := make(chan struct{})
	runner := kafka.NewGroupRunner(cfg, "retry-group", []string{topic}, func(_ context.Context, m *sarama.ConsumerMessage) error {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, string(m.Value))
		if string(m.Value) == "first" && len(calls) <= 4 {
			return errors.New("not yet")
		}
		if string(m.Value) == "second" {
			close(done)
		}
		return nil
	}, log)
	if err := runner.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = runner.Stop(context.Background()) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("the second record was not handled within 30 s (reconnect backoff 1 min); calls: %v", calls)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"first", "first", "first", "first", "first", "second"}
	if len(calls) != len(want) {
		t.Fatalf("calls %v, want %v", calls, want)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Fatalf("calls %v, want %v", calls, want)
		}
	}
}
