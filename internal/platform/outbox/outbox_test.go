package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/zap/zaptest"

	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/kafka"
	"github.com/paygate/paygate/internal/platform/kafka/kafkatest"
	"github.com/paygate/paygate/internal/platform/outbox"
	"github.com/paygate/paygate/internal/platform/pgtest"
)

const topic = "paygate.test.v1"

func relayConfig() config.Outbox {
	return config.Outbox{BatchSize: 10, PollInterval: 200 * time.Millisecond, RetryBackoff: 100 * time.Millisecond, Retention: time.Hour, Source: "/paygate/test"}
}

type fixture struct {
	pool   *pgxpool.Pool
	prod   *kafka.Producer
	broker *kafkatest.Broker
	relay  *outbox.Relay
	spans  *tracetest.SpanRecorder
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := newStoppedFixture(t, "")
	if err := f.relay.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.relay.Stop(context.Background()) })
	return f
}

// newStoppedFixture is newFixture with the relay not started (a test calls
// RelayOnce itself), on a database URL with params appended.
func newStoppedFixture(t *testing.T, params string) *fixture {
	t.Helper()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t)+params)
	broker := kafkatest.NewBroker(t, topic)
	log := zaptest.NewLogger(t)
	prod := kafka.NewProducer(broker.Config(), []kafka.TopicSpec{{Name: topic}}, log)
	t.Cleanup(func() { _ = prod.Close() })
	spans := tracetest.NewSpanRecorder()
	relay := outbox.NewRelay(pool, prod, relayConfig(), log, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)))
	return &fixture{pool: pool, prod: prod, broker: broker, relay: relay, spans: spans}
}

func (f *fixture) enqueue(t *testing.T, ctx context.Context, commit bool, e outbox.Event) uuid.UUID {
	t.Helper()
	tx, err := f.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id, err := outbox.Enqueue(ctx, tx, e)
	if err != nil {
		t.Fatal(err)
	}
	if commit {
		err = tx.Commit(ctx)
	} else {
		err = tx.Rollback(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// collector is a consumer-group handler that remembers every event.
type collector struct {
	mu     sync.Mutex
	events []kafkatest.Record
	ch     chan struct{}
}

func newCollector() *collector { return &collector{ch: make(chan struct{}, 1000)} }

func (c *collector) handle(_ context.Context, m *sarama.ConsumerMessage) error {
	c.mu.Lock()
	c.events = append(c.events, kafkatest.Record{Key: string(m.Key), Headers: kafka.HeaderMap(m), Value: m.Value})
	c.mu.Unlock()
	c.ch <- struct{}{}
	return nil
}

func (c *collector) waitFor(t *testing.T, n int, timeout time.Duration) []kafkatest.Record {
	t.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		got := len(c.events)
		c.mu.Unlock()
		if got >= n {
			c.mu.Lock()
			defer c.mu.Unlock()
			return append([]kafkatest.Record(nil), c.events...)
		}
		select {
		case <-c.ch:
		case <-deadline:
			t.Fatalf("got %d events, want %d", got, n)
		}
	}
}

func TestCommittedEventReachesConsumerGroupAndRolledBackNever(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := newCollector()
	runner, err := kafka.NewGroupRunner(f.broker.Config(), "outbox-test", []string{topic}, c.handle, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := runner.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = runner.Stop(context.Background()) })

	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("test").Start(context.Background(), "request")
	defer span.End()

	rolledBack := f.enqueue(t, ctx, false, outbox.Event{Topic: topic, Key: "user-1", Type: "paygate.test.rolled_back", Data: map[string]int{"n": 1}})
	committed := f.enqueue(t, ctx, true, outbox.Event{Topic: topic, Key: "user-1", Type: "paygate.test.committed", Subject: "things/1", Data: map[string]int{"n": 2}})

	got := c.waitFor(t, 1, 30*time.Second)
	e := got[0]
	if e.Headers[kafka.HeaderID] != committed.String() {
		t.Fatalf("ce_id = %q, want %s", e.Headers[kafka.HeaderID], committed)
	}
	want := map[string]string{
		kafka.HeaderSpecVersion: "1.0",
		kafka.HeaderType:        "paygate.test.committed",
		kafka.HeaderSource:      "/paygate/test",
		kafka.HeaderSubject:     "things/1",
		kafka.HeaderContentType: "application/json",
	}
	for k, v := range want {
		if e.Headers[k] != v {
			t.Errorf("header %s = %q, want %q", k, e.Headers[k], v)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, e.Headers[kafka.HeaderTime]); err != nil {
		t.Errorf("ce_time %q: %v", e.Headers[kafka.HeaderTime], err)
	}
	// The record carries the context of the relay's publish span, which is
	// a child of the span that enqueued the event: one trace end to end.
	var publish sdktrace.ReadOnlySpan
	for deadline := time.Now().Add(5 * time.Second); publish == nil && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, s := range f.spans.Ended() {
			if s.Name() == "publish "+topic {
				publish = s
			}
		}
	}
	if publish == nil {
		t.Fatal("no publish span")
	}
	if publish.Parent().SpanID() != span.SpanContext().SpanID() || publish.SpanContext().TraceID() != span.SpanContext().TraceID() {
		t.Errorf("publish span parent %s/%s, want the enqueuing span %s", publish.Parent().TraceID(), publish.Parent().SpanID(), span.SpanContext().SpanID())
	}
	wantTP := fmt.Sprintf("00-%s-%s-01", span.SpanContext().TraceID(), publish.SpanContext().SpanID())
	if e.Headers[kafka.HeaderTraceparent] != wantTP {
		t.Errorf("traceparent = %q, want %q", e.Headers[kafka.HeaderTraceparent], wantTP)
	}
	if e.Key != "user-1" {
		t.Errorf("key = %q", e.Key)
	}
	var data map[string]int
	if err := json.Unmarshal(e.Value, &data); err != nil || data["n"] != 2 {
		t.Errorf("data = %s (%v)", e.Value, err)
	}

	// The rolled-back event was enqueued first on the same key and
	// partition: had it been published, it would have arrived first.
	for _, r := range f.broker.ReadToEnd(t, topic) {
		if r.Headers[kafka.HeaderID] == rolledBack.String() {
			t.Fatal("rolled-back event was published")
		}
	}
	var rows int
	if err := f.pool.QueryRow(context.Background(), "SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL").Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("sent rows = %d (%v), want 1", rows, err)
	}
}

func TestEventsWaitWhileBrokerIsDownAndAreDeliveredOnceInOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// Let the producer connect once, then take the broker away.
	first := f.enqueue(t, context.Background(), true, outbox.Event{Topic: topic, Key: "k", Type: "paygate.test.n", Data: 0})
	waitSent(t, f.pool, 1)
	f.broker.Stop()

	const n = 40
	ids := []uuid.UUID{first}
	for i := 1; i <= n; i++ {
		ids = append(ids, f.enqueue(t, context.Background(), true, outbox.Event{Topic: topic, Key: "k", Type: "paygate.test.n", Data: i}))
	}
	// Wait until the relay has tried and failed to publish them.
	var pending, attempted int
	for deadline := time.Now().Add(30 * time.Second); attempted == 0; time.Sleep(100 * time.Millisecond) {
		if err := f.pool.QueryRow(context.Background(),
			"SELECT count(*), count(*) FILTER (WHERE attempts > 0 AND last_error <> '') FROM outbox WHERE sent_at IS NULL").Scan(&pending, &attempted); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("relay did not try to publish while the broker was down")
		}
	}
	if pending != n {
		t.Fatalf("pending while broker down = %d, want %d", pending, n)
	}

	f.broker.Start()
	waitSent(t, f.pool, n+1)
	recs := f.broker.ReadAll(t, topic, n+1, 30*time.Second)
	if len(recs) != n+1 {
		t.Fatalf("read %d records, want %d", len(recs), n+1)
	}
	// Each event exactly once, in enqueue order (same key, one partition).
	for i, r := range recs {
		if r.Headers[kafka.HeaderID] != ids[i].String() {
			t.Fatalf("record %d is %s, want %s", i, r.Headers[kafka.HeaderID], ids[i])
		}
	}
	if extra := f.broker.ReadToEnd(t, topic); len(extra) != n+1 {
		t.Fatalf("found %d records, want exactly %d (duplicates published)", len(extra), n+1)
	}
}

func waitSent(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	waitSentWithin(t, pool, n, 45*time.Second)
}

func waitSentWithin(t *testing.T, pool *pgxpool.Pool, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var sent int
		if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL").Scan(&sent); err != nil {
			t.Fatal(err)
		}
		if sent >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events sent, want %d", sent, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestEnqueueRejectsEventWithoutTopicOrType(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t))
	err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		_, err := outbox.Enqueue(context.Background(), tx, outbox.Event{Type: "x"})
		return err
	})
	if err != outbox.ErrInvalidEvent {
		t.Fatalf("err = %v, want ErrInvalidEvent", err)
	}
}

// TestTheRelayCommitsWithoutWaitingForItsFlush relays an event over a
// pool of one connection: the relay's batch span records the
// synchronous_commit its transaction ran with, as PostgreSQL reported it
// (off), the event is marked sent, and the connection's next transaction,
// say a transfer's, commits synchronously again.
func TestTheRelayCommitsWithoutWaitingForItsFlush(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// The test server commits asynchronously by default (pgtest); this
	// pool's sessions are durable, as production's are.
	f := newStoppedFixture(t, "&pool_max_conns=1&synchronous_commit=on")
	pool, relay, spans := f.pool, f.relay, f.spans
	f.enqueue(t, ctx, true, outbox.Event{Topic: topic, Key: "k", Type: "paygate.test.happened", Data: map[string]int{"n": 1}})
	n, err := relay.RelayOnce(ctx)
	if err != nil || n != 1 {
		t.Fatalf("relayed %d (%v), want 1", n, err)
	}
	var mode string
	for _, s := range spans.Ended() {
		if s.Name() != "outbox relay" {
			continue
		}
		for _, a := range s.Attributes() {
			if a.Key == "paygate.outbox.synchronous_commit" {
				mode = a.Value.AsString()
			}
		}
	}
	if mode != "off" {
		t.Fatalf("the relay's transaction ran with synchronous_commit %q, want off", mode)
	}
	var pending int
	var after string
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT current_setting('synchronous_commit')").Scan(&after); err != nil {
			return err
		}
		return tx.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE sent_at IS NULL").Scan(&pending)
	})
	if err != nil {
		t.Fatal(err)
	}
	if after != "on" || pending != 0 {
		t.Fatalf("after the relay: synchronous_commit %q on its connection (want on), %d events pending (want 0)", after, pending)
	}
}

// TestARelayThatFindsTheLockTakenLooksAgainSoon: events enqueued without
// a NOTIFY (the money path's batches wake only their own process's relay,
// after the commit) are published by a relay that was woken while another
// relay held the lock as soon as the lock is free, not at its next poll
// (an hour here): the holder may have read the outbox before they
// committed, and nothing would wake it again.
func TestARelayThatFindsTheLockTakenLooksAgainSoon(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newStoppedFixture(t, "")
	cfg := relayConfig()
	cfg.PollInterval = time.Hour
	relay := outbox.NewRelay(f.pool, f.prod, cfg, zaptest.NewLogger(t), nil)

	holder, err := f.pool.Begin(ctx) // another relay's batch
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback(ctx) }()
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", outbox.RelayLockKey); err != nil {
		t.Fatal(err)
	}
	if err := relay.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Stop(context.Background()) })

	tx, err := f.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := &pgx.Batch{}
	if _, err := outbox.QueueMany(ctx, b, []outbox.Event{{Topic: topic, Key: "k", Type: "paygate.test.happened", Data: map[string]int{"n": 1}}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	relay.Wake()
	time.Sleep(300 * time.Millisecond) // woken, it found the lock taken
	var sent int
	if err := f.pool.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL").Scan(&sent); err != nil || sent != 0 {
		t.Fatalf("%d events sent while another relay held the lock (%v)", sent, err)
	}
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	waitSentWithin(t, f.pool, 1, 5*time.Second)
}

// TestAWokenRelayLingersForTheEventsThatFollow: woken by an event, the
// relay waits its linger before reading the outbox, so that events
// committed meanwhile are published in the same transaction (their sent
// marks carry that transaction's one timestamp) instead of one each.
func TestAWokenRelayLingersForTheEventsThatFollow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newStoppedFixture(t, "")
	cfg := relayConfig()
	cfg.PollInterval, cfg.Linger = time.Hour, time.Second
	relay := outbox.NewRelay(f.pool, f.prod, cfg, zaptest.NewLogger(t), nil)
	if err := relay.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Stop(context.Background()) })
	time.Sleep(2 * time.Second) // past the wake-up of its start

	for i := range 3 {
		f.enqueue(t, ctx, true, outbox.Event{Topic: topic, Key: "k", Type: "paygate.test.happened", Data: map[string]int{"n": i}})
		time.Sleep(100 * time.Millisecond)
	}
	waitSentWithin(t, f.pool, 3, 10*time.Second)
	var batches int
	if err := f.pool.QueryRow(ctx, "SELECT count(DISTINCT sent_at) FROM outbox").Scan(&batches); err != nil {
		t.Fatal(err)
	}
	if batches != 1 {
		t.Fatalf("3 events published in %d relay transactions, want 1", batches)
	}
}
