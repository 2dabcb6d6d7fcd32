package outbox_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.uber.org/zap/zaptest"

	"github.com/paygate/paygate/internal/platform/outbox"
	"github.com/paygate/paygate/internal/platform/pgtest"
)

// downSender fails every publish while down, as a producer whose broker
// is away does, and takes every record otherwise.
type downSender struct{ down atomic.Bool }

func (s *downSender) Send(context.Context, []*sarama.ProducerMessage) error {
	if s.down.Load() {
		return errors.New("kafka: client has run out of available brokers to talk to")
	}
	return nil
}

// TestRelayPublishesSoonAfterALongBrokerOutage: after 13 s of failed
// publishes the relay still tries again within MaxRetryBackoff, so the
// events wait at most that long once the broker is back. The pause used
// to double up to 30 s: after a 20 s outage the chaos suite saw the relay
// idle 16 s with the broker back, and consumer lag stay above 0 for more
// than the minute it has.
func TestRelayPublishesSoonAfterALongBrokerOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t))
	sender := &downSender{}
	sender.down.Store(true)
	cfg := relayConfig()
	cfg.RetryBackoff = 50 * time.Millisecond
	relay := outbox.NewRelay(pool, sender, cfg, zaptest.NewLogger(t), sdktrace.NewTracerProvider())
	f := &fixture{pool: pool}
	f.enqueue(t, ctx, true, outbox.Event{Topic: topic, Key: "k", Type: "paygate.test.n", Data: 1})
	if err := relay.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Stop(context.Background()) })

	time.Sleep(13 * time.Second)
	sender.down.Store(false)
	back := time.Now()
	waitSent(t, pool, 1)
	if took := time.Since(back); took > outbox.MaxRetryBackoff+time.Second {
		t.Fatalf("the relay published %s after the broker was back, want within %s", took.Round(100*time.Millisecond), outbox.MaxRetryBackoff)
	}
}
