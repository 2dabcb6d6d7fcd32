package notify_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/paygate/paygate/internal/notify/smtptest"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/kafka"
	"github.com/paygate/paygate/internal/platform/kafka/kafkatest"
)

// notifyConfig is the consumer configuration of the tests: short backoffs.
func notifyConfig() config.Notify {
	return config.Notify{Enabled: true, Group: "paygate-email", RetryTopic: "paygate.notify.retry.v1", DLQTopic: "paygate.notify.dlq.v1",
		MaxAttempts: 10, RetryBackoff: 50 * time.Millisecond, DeliveryRetention: 336 * time.Hour}
}

// templateOf returns the template of a received mail, from its
// Message-ID (<event id>.<template>@paygate).
func templateOf(m smtptest.Message) string {
	local, _, _ := strings.Cut(m.MessageID, "@")
	_, tmpl, _ := strings.Cut(local, ".")
	return tmpl
}

// eventOf returns the event id of a received mail.
func eventOf(m smtptest.Message) string {
	id, _, _ := strings.Cut(m.MessageID, ".")
	return id
}

// cloudEvent builds a binary-mode record as the outbox relay does.
func cloudEvent(t *testing.T, topic, key, typ, id string, payload any, extra map[string]string) *sarama.ProducerMessage {
	t.Helper()
	e := cloudevents.New()
	e.SetID(id)
	e.SetSource("/paygate/test")
	e.SetType(typ)
	e.SetTime(time.Now())
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetData("application/json", json.RawMessage(b)); err != nil {
		t.Fatal(err)
	}
	e.DataEncoded = b
	pm, err := kafka.ToProducerMessage(e, topic, key, extra)
	if err != nil {
		t.Fatal(err)
	}
	return pm
}

// rawProducer returns a plain sarama producer on addr, for records the
// application would never publish.
func rawProducer(t *testing.T, addr string) sarama.SyncProducer {
	t.Helper()
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.Producer.Return.Successes = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	p, err := sarama.NewSyncProducer([]string{addr}, sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// caughtUp reports whether group has committed every record of topics.
func caughtUp(t *testing.T, b *kafkatest.Broker, group string, topics []string) bool {
	t.Helper()
	client, err := sarama.NewClient([]string{b.Addr()}, b.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	parts := map[string][]int32{}
	for _, topic := range topics {
		ps, err := client.Partitions(topic)
		if err != nil {
			return false // not created yet
		}
		parts[topic] = ps
	}
	resp, err := admin.ListConsumerGroupOffsets(group, parts)
	if err != nil {
		return false
	}
	for topic, ps := range parts {
		for _, p := range ps {
			end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				return false
			}
			if end == 0 {
				continue
			}
			b := resp.GetBlock(topic, p)
			if b == nil || b.Offset < end {
				return false
			}
		}
	}
	return true
}

// waitCaughtUp waits until group has committed every record of topics.
func waitCaughtUp(t *testing.T, b *kafkatest.Broker, group string, topics []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !caughtUp(t, b, group, topics) {
		if time.Now().After(deadline) {
			t.Fatalf("group %s did not commit every record of %v within %s", group, topics, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// counter sums the data points of the named counter whose attributes
// include attrs.
func counter(t *testing.T, r sdkmetric.Reader, name string, attrs ...attribute.KeyValue) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				t.Fatalf("%s is %T", name, m.Data)
			}
		points:
			for _, dp := range sum.DataPoints {
				for _, a := range attrs {
					if v, ok := dp.Attributes.Value(a.Key); !ok || v != a.Value {
						continue points
					}
				}
				n += dp.Value
			}
		}
	}
	return n
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readTopic reads up to n records of every partition of topic.
func readTopic(t *testing.T, addr, topic string, n int, timeout time.Duration) []kafkatest.Record {
	t.Helper()
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	c, err := sarama.NewConsumer([]string{addr}, sc)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer c.Close()
	parts, err := c.Partitions(topic)
	if err != nil {
		return nil // no such topic: nothing in it
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ch := make(chan kafkatest.Record)
	for _, p := range parts {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("consume %s/%d: %v", topic, p, err)
		}
		defer pc.Close()
		go func() {
			for m := range pc.Messages() {
				select {
				case ch <- kafkatest.Record{Topic: m.Topic, Key: string(m.Key), Value: m.Value, Headers: kafka.HeaderMap(m), Offset: m.Offset}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	var out []kafkatest.Record
	for len(out) < n {
		select {
		case <-ctx.Done():
			return out
		case r := <-ch:
			out = append(out, r)
		}
	}
	return out
}

// refusePrefix is an smtptest recipient rule: addresses that start with
// prefix are refused with code.
func refusePrefix(prefix string, code int) func(string) int {
	return func(addr string) int {
		if strings.HasPrefix(addr, prefix) {
			return code
		}
		return 0
	}
}
