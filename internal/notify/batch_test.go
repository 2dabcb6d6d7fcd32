package notify_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/paygate/paygate/internal/events"
	"github.com/paygate/paygate/internal/notify"
	"github.com/paygate/paygate/internal/platform/batch"
)

// TestABacklogIsMailedInBatchesOnceEach: events that wait on their
// partition are handled together, their mails claimed and recorded in
// shared statements, and each record is still settled on its own: every
// mail goes out once, a poison record and a refused recipient in the
// middle of the backlog are dead-lettered alone, and the records after
// them are mailed too; an event published twice is mailed once.
func TestABacklogIsMailedInBatchesOnceEach(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Minute)
	h.smtp.RefuseRecipients(refusePrefix("gone", 550))
	// The backlog builds while the consumer is away.
	if err := h.consumer.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	const n = 40
	msgs := make([]*sarama.ProducerMessage, 0, n+3)
	for i := range n {
		email := fmt.Sprintf("user%02d@example.com", i)
		if i == 17 {
			email = "gone@example.com"
		}
		id := uuid.NewString()
		msgs = append(msgs, cloudEvent(t, h.kafka.TopicAuth, "same-key", events.TypeUserRegistered, id, registered(email), nil))
		if i == 9 {
			msgs = append(msgs, cloudEvent(t, h.kafka.TopicAuth, "same-key", events.TypeUserRegistered, "not-a-uuid", registered("poison@example.com"), nil))
		}
		if i == 20 {
			// The same event again, right behind it, as a relay that
			// published it twice would leave it.
			msgs = append(msgs, cloudEvent(t, h.kafka.TopicAuth, "same-key", events.TypeUserRegistered, id, registered(email), nil))
		}
	}
	h.publish(t, msgs...)
	if err := h.consumer.Start(context.Background()); err != nil {
		t.Fatal(err)
	}

	h.smtp.Wait(t, n-1, 30*time.Second)
	dead := h.dlq(t, 2, 30*time.Second)
	if len(dead) != 2 {
		t.Fatalf("%d dead letters, want 2 (the poison record and the refused mail)", len(dead))
	}
	reasons := map[string]bool{}
	for _, r := range dead {
		reasons[r.Headers[notify.HeaderReason]] = true
	}
	if !reasons[notify.ReasonPoison] || !reasons[notify.ReasonRejected] {
		t.Fatalf("dead-letter reasons %v, want poison and rejected", reasons)
	}
	time.Sleep(500 * time.Millisecond) // room for a mail sent twice to show
	for i := range n {
		email := fmt.Sprintf("user%02d@example.com", i)
		if i == 17 {
			continue
		}
		if got := len(h.smtp.To(email)); got != 1 {
			t.Fatalf("%s got %d mails, want 1", email, got)
		}
	}
	var sent, pending int
	if err := h.pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status = 'pending')
FROM notify_deliveries`).Scan(&sent, &pending); err != nil {
		t.Fatal(err)
	}
	if sent != n-1 || pending != 1 {
		t.Fatalf("deliveries: %d sent, %d pending; want %d and 1 (the refused one)", sent, pending, n-1)
	}
	if largest := largestBatch(t, h); largest < 2 {
		t.Fatalf("the largest batch held %d records: the backlog was not handled in batches", largest)
	}
}

// largestBatch is the largest value recorded in the batch-size histogram.
func largestBatch(t *testing.T, h *harness) int64 {
	t.Helper()
	var largest int64
	for _, dp := range histogram[int64](t, h, notify.MetricBatchSize) {
		if v, ok := dp.Max.Value(); ok && v > largest {
			largest = v
		}
	}
	return largest
}

// histogram returns the data points of the histogram named name.
func histogram[N int64 | float64](t *testing.T, h *harness, name string) []metricdata.HistogramDataPoint[N] {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := h.metrics.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var points []metricdata.HistogramDataPoint[N]
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				points = append(points, m.Data.(metricdata.Histogram[N]).DataPoints...)
			}
		}
	}
	return points
}

// asConsumed is pm as a consumer reads it at offset.
func asConsumed(t *testing.T, pm *sarama.ProducerMessage, offset int64) *sarama.ConsumerMessage {
	t.Helper()
	value, err := pm.Value.Encode()
	if err != nil {
		t.Fatal(err)
	}
	m := &sarama.ConsumerMessage{Topic: pm.Topic, Offset: offset, Value: value, Timestamp: time.Now()}
	for _, h := range pm.Headers {
		m.Headers = append(m.Headers, &sarama.RecordHeader{Key: h.Key, Value: h.Value})
	}
	return m
}

// commits is how many delivery commits the consumer's committer made.
func commits(t *testing.T, h *harness) uint64 {
	t.Helper()
	var n uint64
	for _, dp := range histogram[float64](t, h, batch.MetricDuration) {
		if v, ok := dp.Attributes.Value("committer"); ok && v.AsString() == notify.CommitterName {
			n += dp.Count
		}
	}
	return n
}

// TestAChunkIsRecordedInTheCommitThatClaimsTheNext: six mails go out as a
// chunk of four and one of two; the first chunk's mails are recorded as
// sent in the commit that claims the second chunk, so the batch takes
// three commits (claim, record and claim, record), not four.
func TestAChunkIsRecordedInTheCommitThatClaimsTheNext(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Minute)
	var msgs []*sarama.ConsumerMessage
	for i := range 6 {
		pm := cloudEvent(t, h.kafka.TopicAuth, "k", events.TypeUserRegistered, uuid.NewString(),
			registered(fmt.Sprintf("chunk%d@example.com", i)), nil)
		msgs = append(msgs, asConsumed(t, pm, int64(i)))
	}
	before := commits(t, h)
	done, err := h.consumer.HandleBatch(context.Background(), msgs)
	if err != nil || done != len(msgs) {
		t.Fatalf("handled %d of %d records: %v", done, len(msgs), err)
	}
	if n := commits(t, h) - before; n != 3 {
		t.Fatalf("%d delivery commits for two chunks, want 3", n)
	}
	var sent int
	if err := h.pool.QueryRow(context.Background(), `SELECT count(*) FROM notify_deliveries WHERE status = 'sent'`).Scan(&sent); err != nil {
		t.Fatal(err)
	}
	if sent != 6 || len(h.smtp.Messages()) != 6 {
		t.Fatalf("%d mails recorded sent, %d received; want 6 and 6", sent, len(h.smtp.Messages()))
	}
}
