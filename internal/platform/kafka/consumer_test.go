package kafka_test

import (
	"context"
	"errors"
	"fmt"
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
	startRunner(t, runner)
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
	startRunner(t, runner)
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

// TestBatchHandlerTakesWaitingRecordsTogetherAndResumesAtTheFailure: with
// WithBatches, records already waiting on a partition reach the handler
// together, in order; when the handler reports the first 5 of a batch done
// and fails the rest, those 5 are not handed over again and the others
// are, after a pause; each record ends handled once, and the group's
// committed offsets cover them all (a second runner on the group gets
// nothing).
func TestBatchHandlerTakesWaitingRecordsTogetherAndResumesAtTheFailure(t *testing.T) {
	t.Parallel()
	const topic, group, n = "batch.test", "batch-group", 40
	b := kafkatest.NewBroker(t, topic)
	cfg := b.Config()
	cfg.ConsumerRetryBackoff, cfg.ConsumerRetryMaxBackoff = 20*time.Millisecond, 200*time.Millisecond
	log := zaptest.NewLogger(t)
	prod := kafka.NewProducer(cfg, nil, log)
	defer prod.Close()
	var msgs []*sarama.ProducerMessage
	for i := range n {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder(fmt.Sprint(i))})
	}
	if err := prod.Send(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var handled []string // every record handed over, in order, with repeats
	var sizes []int
	failed := false
	done := make(chan struct{})
	h := func(_ context.Context, ms []*sarama.ConsumerMessage) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		sizes = append(sizes, len(ms))
		for i, m := range ms {
			handled = append(handled, string(m.Value))
			if !failed && len(ms) > 5 && i == 5 {
				failed = true
				return 5, errors.New("the sixth record fails once")
			}
		}
		if string(ms[len(ms)-1].Value) == fmt.Sprint(n-1) {
			close(done)
		}
		return len(ms), nil
	}
	runner, err := kafka.NewGroupRunner(cfg, group, []string{topic}, nil, log, kafka.WithBatches(16, h))
	if err != nil {
		t.Fatal(err)
	}
	if err := runner.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the records were not all handled within 30 s")
	}
	if err := runner.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	if !failed {
		t.Fatalf("no batch of more than 5 records (batch sizes %v): the waiting records were not taken together", sizes)
	}
	if slices.Max(sizes) > 16 {
		t.Fatalf("batch sizes %v exceed the limit of 16", sizes)
	}
	// The failed record and those after it in its batch came again, in
	// order; nothing before it did.
	count := map[string]int{}
	last := -1
	for _, v := range handled {
		count[v]++
		var i int
		fmt.Sscan(v, &i)
		if i < last && count[v] == 1 {
			t.Fatalf("record %s handed over after %d for the first time: order lost (%v)", v, last, handled)
		}
		last = max(last, i)
	}
	repeats := 0
	for i := range n {
		switch c := count[fmt.Sprint(i)]; {
		case c == 0:
			t.Fatalf("record %d never handled", i)
		case c > 1:
			repeats++
			if c > 2 {
				t.Fatalf("record %d handled %d times", i, c)
			}
		}
	}
	if repeats == 0 {
		t.Fatal("the failed records were never handed over again")
	}

	// Every offset was committed: a new runner on the group reads nothing.
	got := make(chan string, n)
	again, err := kafka.NewGroupRunner(cfg, group, []string{topic}, nil, log, kafka.WithBatches(16,
		func(_ context.Context, ms []*sarama.ConsumerMessage) (int, error) {
			for _, m := range ms {
				got <- string(m.Value)
			}
			return len(ms), nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	startRunner(t, again)
	select {
	case v := <-got:
		t.Fatalf("record %s read again after its batch was committed", v)
	case <-time.After(3 * time.Second):
	}
}

func TestWithBatchesRefusesBadSettings(t *testing.T) {
	t.Parallel()
	cfg := kafkatest.NewBroker(t).Config()
	log := zaptest.NewLogger(t)
	ok := func(context.Context, []*sarama.ConsumerMessage) (int, error) { return 0, nil }
	if _, err := kafka.NewGroupRunner(cfg, "g", []string{"t"}, nil, log, kafka.WithBatches(0, ok)); err == nil {
		t.Error("a batch size of 0 was accepted")
	}
	if _, err := kafka.NewGroupRunner(cfg, "g", []string{"t"}, nil, log, kafka.WithBatches(4, nil)); err == nil {
		t.Error("a nil batch handler was accepted")
	}
}

// startRunner starts r for the rest of the test.
func startRunner(t *testing.T, r *kafka.GroupRunner) {
	t.Helper()
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
}
