package kafka_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
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
	runner, err := kafka.NewGroupRunner(cfg, "retry-group", []string{topic}, func(_ context.Context, m *sarama.ConsumerMessage) error {
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
	if err != nil {
		t.Fatal(err)
	}
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

// TestRetryPolicyMovesFailingRecordsOffTheirPartition runs a group with a
// retry policy over three records: "flaky" fails its first two
// deliveries, "broken" fails every one, "poison" is refused as poison, and
// "fine" behind them is handled at once, never waiting for them. flaky is
// handled on its third delivery (from the retry topic, in order, with its
// attempt counted); broken lands on the dead-letter topic as exhausted
// after MaxAttempts deliveries, and poison at once, with their origin and
// error; the counters say so.
func TestRetryPolicyMovesFailingRecordsOffTheirPartition(t *testing.T) {
	t.Parallel()
	const topic, retryTopic, dlq = "policy.test", "policy.retry", "policy.dlq"
	b := kafkatest.NewBroker(t, topic, retryTopic, dlq)
	cfg := b.Config()
	cfg.ConsumerRetryBackoff, cfg.ConsumerRetryMaxBackoff = 5*time.Millisecond, 10*time.Millisecond
	log := zaptest.NewLogger(t)
	prod := kafka.NewProducer(cfg, nil, log)
	defer prod.Close()
	var records []*sarama.ProducerMessage
	for _, v := range []string{"flaky", "broken", "poison", "fine"} {
		records = append(records, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder(v)})
	}
	if err := prod.Send(context.Background(), records); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	calls := map[string]int{}
	var order []string
	handled := make(chan string, 10)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	runner, err := kafka.NewGroupRunner(cfg, "policy-group", []string{topic}, func(_ context.Context, m *sarama.ConsumerMessage) error {
		mu.Lock()
		defer mu.Unlock()
		v := string(m.Value)
		calls[v]++
		order = append(order, v)
		switch {
		case v == "poison":
			return kafka.Poison(errors.New("unreadable"))
		case v == "broken", v == "flaky" && kafka.Attempts(m) < 2:
			return errors.New("not now")
		}
		handled <- v
		return nil
	}, log, kafka.WithRetry(kafka.RetryPolicy{RetryTopic: retryTopic, DLQTopic: dlq, MaxAttempts: 3, InPlace: 2,
		Backoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Publisher: prod}, mp))
	if err != nil {
		t.Fatal(err)
	}
	if err := runner.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = runner.Stop(context.Background()) }()
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case v := <-handled:
			got[v] = true
		case <-time.After(30 * time.Second):
			t.Fatalf("handled %v within 30 s", got)
		}
	}
	dead := b.ReadAll(t, dlq, 2, 30*time.Second)
	if len(dead) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dead))
	}
	byValue := map[string]kafkatest.Record{}
	for _, r := range dead {
		byValue[string(r.Value)] = r
	}
	if h := byValue["broken"].Headers; h[kafka.HeaderReason] != kafka.ReasonExhausted || h[kafka.HeaderAttempt] != "3" ||
		h[kafka.HeaderOriginTopic] != topic || h[kafka.HeaderError] != "not now" || h[kafka.HeaderDeadLetteredAt] == "" {
		t.Fatalf("broken's dead letter: %v", h)
	}
	if h := byValue["poison"].Headers; h[kafka.HeaderReason] != kafka.ReasonPoison || h[kafka.HeaderAttempt] != "1" {
		t.Fatalf("poison's dead letter: %v", h)
	}
	mu.Lock()
	defer mu.Unlock()
	// flaky: two deliveries of two calls each failed, the third succeeded;
	// broken: three deliveries of two calls; poison: one call.
	if calls["flaky"] != 5 || calls["broken"] != 6 || calls["poison"] != 1 || calls["fine"] != 1 {
		t.Fatalf("calls %v", calls)
	}
	// fine did not wait for the records before it: it was handled before
	// broken's last attempt (without the policy, broken would have held
	// the partition for ever and fine would never have come).
	fine, lastBroken := slices.Index(order, "fine"), -1
	for i, v := range order {
		if v == "broken" {
			lastBroken = i
		}
	}
	if fine < 0 || fine > lastBroken {
		t.Fatalf("fine handled at call %d of %v, after broken's last attempt", fine, order)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range sum.DataPoints {
					reason, _ := dp.Attributes.Value("reason")
					counts[m.Name+"/"+reason.AsString()] += dp.Value
				}
			}
		}
	}
	if counts[kafka.MetricConsumerRetries+"/"] != 4 || counts[kafka.MetricConsumerDeadLetters+"/exhausted"] != 1 ||
		counts[kafka.MetricConsumerDeadLetters+"/poison"] != 1 {
		t.Fatalf("counters %v", counts)
	}
}

// TestRebalanceTimeoutFollowsTheSessionTimeout: a member that dies in the
// middle of a rebalance holds its group up for the rebalance timeout, so
// it is twice the session timeout, not sarama's minute.
func TestRebalanceTimeoutFollowsTheSessionTimeout(t *testing.T) {
	t.Parallel()
	cfg := kafkatest.NewBroker(t).Config()
	cfg.ConsumerRebalance = 7 * time.Second
	sc, err := kafka.NewSaramaConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Consumer.Group.Session.Timeout != 7*time.Second || sc.Consumer.Group.Rebalance.Timeout != 14*time.Second {
		t.Fatalf("session %v, rebalance %v", sc.Consumer.Group.Session.Timeout, sc.Consumer.Group.Rebalance.Timeout)
	}
}
