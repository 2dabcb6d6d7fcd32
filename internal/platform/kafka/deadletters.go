package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/fx"

	"github.com/paygate/paygate/internal/platform/config"
)

// DeadLetterQueue names a consumer's dead-letter topic and the retry topic
// a replayed dead letter goes back through.
type DeadLetterQueue struct {
	// Consumer is the name an operator uses (email, payouts).
	Consumer   string
	Group      string
	Topic      string
	RetryTopic string
}

// AsDeadLetterQueue annotates a constructor returning a DeadLetterQueue
// for the "dead_letter_queues" group, which the admin route reads.
func AsDeadLetterQueue(f any) any {
	return fx.Annotate(f, fx.ResultTags(`group:"dead_letter_queues"`))
}

// Record is a record read back from a topic.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   map[string]string
	Timestamp time.Time
}

// ErrNoRecord is a record that is not (or no longer) on its topic.
var ErrNoRecord = errors.New("kafka: no such record")

// TopicReader reads whole topics, or one record, without a consumer
// group: what an operator's view of a dead-letter topic needs.
type TopicReader struct {
	cfg config.Kafka
}

// NewTopicReader returns a reader for the brokers of cfg.
func NewTopicReader(cfg config.Kafka) *TopicReader { return &TopicReader{cfg: cfg} }

// ReadAll returns every record the topic holds, partition by partition
// from the oldest kept to the high-water mark at the time of the call, at
// most limit of them. A topic that does not exist holds none.
func (r *TopicReader) ReadAll(ctx context.Context, topic string, limit int) ([]Record, error) {
	client, consumer, err := r.open()
	if err != nil {
		return nil, err
	}
	defer client.Close()
	defer consumer.Close()
	parts, err := client.Partitions(topic)
	if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kafka: partitions of %s: %w", topic, err)
	}
	var out []Record
	for _, p := range parts {
		oldest, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, err
		}
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, err
		}
		if end <= oldest {
			continue
		}
		recs, err := readRange(ctx, consumer, topic, p, oldest, end, limit-len(out))
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
		if len(out) >= limit {
			break
		}
	}
	return out, nil
}

// Read returns the record at offset of the topic's partition.
func (r *TopicReader) Read(ctx context.Context, topic string, partition int32, offset int64) (Record, error) {
	client, consumer, err := r.open()
	if err != nil {
		return Record{}, err
	}
	defer client.Close()
	defer consumer.Close()
	oldest, err := client.GetOffset(topic, partition, sarama.OffsetOldest)
	if err != nil {
		if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			return Record{}, ErrNoRecord
		}
		return Record{}, err
	}
	end, err := client.GetOffset(topic, partition, sarama.OffsetNewest)
	if err != nil {
		return Record{}, err
	}
	if offset < oldest || offset >= end {
		return Record{}, ErrNoRecord
	}
	recs, err := readRange(ctx, consumer, topic, partition, offset, offset+1, 1)
	if err != nil {
		return Record{}, err
	}
	if len(recs) == 0 || recs[0].Offset != offset {
		return Record{}, ErrNoRecord
	}
	return recs[0], nil
}

func (r *TopicReader) open() (sarama.Client, sarama.Consumer, error) {
	sc, err := NewSaramaConfig(r.cfg)
	if err != nil {
		return nil, nil, err
	}
	client, err := sarama.NewClient(r.cfg.Brokers, sc)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka: %w", err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, nil, fmt.Errorf("kafka: %w", err)
	}
	return client, consumer, nil
}

// readRange reads offsets [from, end) of one partition, at most limit.
func readRange(ctx context.Context, consumer sarama.Consumer, topic string, p int32, from, end int64, limit int) ([]Record, error) {
	pc, err := consumer.ConsumePartition(topic, p, from)
	if err != nil {
		return nil, fmt.Errorf("kafka: read %s/%d: %w", topic, p, err)
	}
	defer pc.Close()
	var out []Record
	for len(out) < limit {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case m, ok := <-pc.Messages():
			if !ok {
				return out, nil
			}
			if m.Offset >= end {
				return out, nil
			}
			out = append(out, Record{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value,
				Headers: HeaderMap(m), Timestamp: m.Timestamp})
			if m.Offset+1 >= end {
				return out, nil
			}
		case err := <-pc.Errors():
			return nil, fmt.Errorf("kafka: read %s/%d: %w", topic, p, err)
		}
	}
	return out, nil
}

// ConsumerMessage is r as a consumer sees it, for Republish.
func (r Record) ConsumerMessage() *sarama.ConsumerMessage {
	m := &sarama.ConsumerMessage{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
	for k, v := range r.Headers {
		m.Headers = append(m.Headers, &sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
	}
	return m
}
