// Package kafka is paygate's Kafka plumbing over IBM/sarama: an idempotent
// producer (acks=all) that survives brokers being away, a consumer-group
// runner, topic creation, and the CloudEvents binary-mode record format.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/config"
)

// NewSaramaConfig returns the client configuration shared by producer,
// consumers and admin.
func NewSaramaConfig(cfg config.Kafka) (*sarama.Config, error) {
	sc := sarama.NewConfig()
	v, err := sarama.ParseKafkaVersion(cfg.Version)
	if err != nil {
		return nil, fmt.Errorf("kafka version %q: %w", cfg.Version, err)
	}
	sc.Version = v
	sc.ClientID = cfg.ClientID
	sc.Net.DialTimeout = cfg.DialTimeout
	sc.Net.ReadTimeout = 10 * time.Second
	sc.Net.WriteTimeout = 10 * time.Second
	if err := applySecurity(sc, cfg); err != nil {
		return nil, err
	}
	sc.Metadata.Retry.Max = 2
	sc.Metadata.Retry.Backoff = 250 * time.Millisecond

	// Idempotent producer: acks from all in-sync replicas, one request in
	// flight per broker, so retries can neither duplicate nor reorder
	// records within a partition.
	sc.Producer.Idempotent = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Net.MaxOpenRequests = 1
	sc.Producer.Retry.Max = 5
	sc.Producer.Retry.Backoff = 200 * time.Millisecond
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.Timeout = 10 * time.Second
	// Records with the same key land on the same partition, which is what
	// keeps one user's events in order.
	sc.Producer.Partitioner = sarama.NewHashPartitioner

	// A new group starts from the oldest record, so that nothing published
	// before the group first joined is skipped.
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Consumer.Offsets.AutoCommit.Enable = true
	sc.Consumer.Offsets.AutoCommit.Interval = time.Second
	sc.Consumer.MaxWaitTime = cfg.ConsumerMaxWait
	sc.Consumer.Group.Session.Timeout = cfg.ConsumerRebalance
	sc.Consumer.Group.Heartbeat.Interval = cfg.ConsumerRebalance / 3
	// How long the coordinator waits for every member to rejoin a
	// rebalance. sarama's default is a minute: a replica killed in the
	// middle of a rebalance (the chaos suite's fault e) then held its
	// group's partitions unconsumed for that minute. Twice the session
	// timeout leaves a live member time to finish the record in hand; a
	// slower one is dropped and rejoins, and its record is delivered again
	// (every handler is idempotent).
	sc.Consumer.Group.Rebalance.Timeout = 2 * cfg.ConsumerRebalance
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	sc.Consumer.Return.Errors = false
	return sc, nil
}

// TopicSpec names a topic paygate creates when allowed.
type TopicSpec struct {
	Name string
}

// Producer publishes records. It connects on first use and reconnects after
// a failure, so the process starts and keeps running while the brokers are
// away; callers (the outbox relay) keep their records until a send succeeds.
type Producer struct {
	cfg    config.Kafka
	topics []TopicSpec
	log    *zap.Logger

	mu       sync.Mutex
	client   sarama.Client
	producer sarama.SyncProducer
	closed   bool
}

// NewProducer returns a producer; it does not connect yet. When topic
// creation is enabled, topics are created on every (re)connection.
func NewProducer(cfg config.Kafka, topics []TopicSpec, log *zap.Logger) *Producer {
	return &Producer{cfg: cfg, topics: topics, log: log}
}

func (p *Producer) connect() (sarama.SyncProducer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("kafka producer closed")
	}
	if p.producer != nil {
		return p.producer, nil
	}
	sc, err := NewSaramaConfig(p.cfg)
	if err != nil {
		return nil, err
	}
	client, err := sarama.NewClient(p.cfg.Brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("kafka connect: %w", err)
	}
	if p.cfg.CreateTopics {
		if err := EnsureTopics(client, p.cfg, p.topics); err != nil {
			_ = client.Close()
			return nil, err
		}
	}
	sp, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	p.client, p.producer = client, sp
	p.log.Info("kafka producer connected", zap.Strings("brokers", p.cfg.Brokers))
	return sp, nil
}

// Send publishes msgs and waits for the brokers' acknowledgement. It
// returns nil only when every record was acknowledged; otherwise the
// returned error is a *SendError listing which records failed. After a
// failure the connection is dropped and rebuilt on the next call.
func (p *Producer) Send(ctx context.Context, msgs []*sarama.ProducerMessage) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sp, err := p.connect()
	if err != nil {
		return &SendError{Failed: msgs, Err: err}
	}
	err = sp.SendMessages(msgs)
	if err == nil {
		return nil
	}
	p.reset()
	var perrs sarama.ProducerErrors
	if errors.As(err, &perrs) && len(perrs) > 0 {
		failed := make([]*sarama.ProducerMessage, 0, len(perrs))
		causes := make(map[*sarama.ProducerMessage]error, len(perrs))
		for _, pe := range perrs {
			failed = append(failed, pe.Msg)
			causes[pe.Msg] = pe.Err
		}
		// ProducerErrors' own text only counts the failures; the first
		// cause (e.g. TOPIC_AUTHORIZATION_FAILED) is what an operator needs.
		return &SendError{Failed: failed, Causes: causes, Err: fmt.Errorf("%w (first failure: %w)", err, perrs[0].Err)}
	}
	return &SendError{Failed: msgs, Err: err}
}

func (p *Producer) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.producer != nil {
		_ = p.producer.Close()
	}
	if p.client != nil && !p.client.Closed() {
		_ = p.client.Close()
	}
	p.producer, p.client = nil, nil
}

// Close flushes and closes the connection; later sends fail.
func (p *Producer) Close() error {
	p.reset()
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	return nil
}

// SendError reports records that were not acknowledged.
type SendError struct {
	Failed []*sarama.ProducerMessage
	Err    error
	// Causes holds each failed record's own error, when the producer
	// reported one.
	Causes map[*sarama.ProducerMessage]error
}

// Permanent reports whether a record's send error means the broker (or the
// client, checking the broker's limits) will never take the record as it
// is: retrying it cannot help, while the records after it may go through.
func Permanent(err error) bool {
	for _, k := range []sarama.KError{sarama.ErrMessageSizeTooLarge, sarama.ErrInvalidMessage, sarama.ErrInvalidMessageSize,
		sarama.ErrInvalidTopic, sarama.ErrMessageSetSizeTooLarge, sarama.ErrInvalidRecord, sarama.ErrPolicyViolation} {
		if errors.Is(err, k) {
			return true
		}
	}
	// The producer refuses a record over the broker's size limit itself,
	// with a configuration error that concerns that record alone.
	var ce sarama.ConfigurationError
	return errors.As(err, &ce) && strings.Contains(string(ce), "larger than configured Producer.MaxMessageBytes")
}

func (e *SendError) Error() string {
	return fmt.Sprintf("kafka: %d record(s) not acknowledged: %v", len(e.Failed), e.Err)
}

func (e *SendError) Unwrap() error { return e.Err }

// EnsureTopics creates the topics that do not exist yet, with the
// configured partitions and replication factor.
func EnsureTopics(client sarama.Client, cfg config.Kafka, topics []TopicSpec) error {
	if len(topics) == 0 {
		return nil
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return fmt.Errorf("kafka admin: %w", err)
	}
	// Closing the admin would close the shared client; it holds nothing else.
	existing, err := admin.ListTopics()
	if err != nil {
		return fmt.Errorf("kafka list topics: %w", err)
	}
	for _, t := range topics {
		if _, ok := existing[t.Name]; ok {
			continue
		}
		err := admin.CreateTopic(t.Name, &sarama.TopicDetail{
			NumPartitions:     cfg.TopicPartitions,
			ReplicationFactor: cfg.TopicReplication,
		}, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) && !strings.Contains(err.Error(), "already exists") {
			return fmt.Errorf("kafka create topic %s: %w", t.Name, err)
		}
	}
	return nil
}
