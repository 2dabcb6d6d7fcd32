package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/config"
)

// MetricConsumerLag is the consumer lag gauge: records published to a
// group's topics that the group has not committed yet, per group.
const MetricConsumerLag = "paygate.kafka.consumer.lag"

// LagMonitor measures the lag of paygate's consumer groups from the
// brokers' point of view (high watermarks minus committed offsets), so a
// stuck consumer shows a growing lag even when it processes nothing.
type LagMonitor struct {
	cfg      config.Kafka
	log      *zap.Logger
	interval time.Duration

	mu     sync.Mutex
	groups map[string][]string // group → topics
	lag    map[string]int64
	client sarama.Client
	cancel context.CancelFunc
	done   chan struct{}
}

// NewLagMonitor returns a monitor polling every interval, exporting the
// gauge through mp.
func NewLagMonitor(cfg config.Kafka, mp metric.MeterProvider, interval time.Duration, log *zap.Logger) (*LagMonitor, error) {
	m := &LagMonitor{cfg: cfg, log: log, interval: interval, groups: map[string][]string{}, lag: map[string]int64{}}
	_, err := mp.Meter("paygate/kafka").Int64ObservableGauge(MetricConsumerLag,
		metric.WithDescription("Records not yet committed by a consumer group, summed over its partitions."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			for g, v := range m.lag {
				o.Observe(v, metric.WithAttributes(attribute.String("group", g)))
			}
			return nil
		}))
	return m, err
}

// Watch adds a consumer group and its topics.
func (m *LagMonitor) Watch(group string, topics []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.groups[group] = topics
}

// Start polls in the background.
func (m *LagMonitor) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan struct{})
	go func() {
		defer close(m.done)
		t := time.NewTicker(m.interval)
		defer t.Stop()
		for {
			if err := m.Poll(); err != nil {
				m.log.Debug("kafka lag poll failed", zap.Error(err))
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// Stop ends polling and closes the connection.
func (m *LagMonitor) Stop(ctx context.Context) error {
	if m.cancel == nil {
		return nil
	}
	m.cancel()
	select {
	case <-m.done:
	case <-ctx.Done():
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.client != nil {
		_ = m.client.Close()
		m.client = nil
	}
	return nil
}

// Poll measures every watched group once.
func (m *LagMonitor) Poll() error {
	m.mu.Lock()
	groups := make(map[string][]string, len(m.groups))
	for g, t := range m.groups {
		groups[g] = t
	}
	client := m.client
	m.mu.Unlock()
	if len(groups) == 0 {
		return nil
	}
	if client == nil || client.Closed() {
		sc, err := NewSaramaConfig(m.cfg)
		if err != nil {
			return err
		}
		if client, err = sarama.NewClient(m.cfg.Brokers, sc); err != nil {
			return fmt.Errorf("kafka lag: %w", err)
		}
		m.mu.Lock()
		m.client = client
		m.mu.Unlock()
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return err
	}
	for group, topics := range groups {
		lag, err := groupLag(client, admin, group, topics)
		if err != nil {
			m.mu.Lock()
			_ = client.Close()
			m.client = nil
			m.mu.Unlock()
			return err
		}
		m.mu.Lock()
		m.lag[group] = lag
		m.mu.Unlock()
	}
	return nil
}

// Lag returns the last measured lag of group.
func (m *LagMonitor) Lag(group string) (int64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.lag[group]
	return v, ok
}

func groupLag(client sarama.Client, admin sarama.ClusterAdmin, group string, topics []string) (int64, error) {
	parts := map[string][]int32{}
	for _, t := range topics {
		ps, err := client.Partitions(t)
		if err != nil {
			return 0, fmt.Errorf("kafka lag: partitions of %s: %w", t, err)
		}
		parts[t] = ps
	}
	committed, err := admin.ListConsumerGroupOffsets(group, parts)
	if errors.Is(err, sarama.ErrGroupIDNotFound) {
		// A group that never committed: everything is still to consume.
		committed, err = nil, nil
	}
	if err != nil {
		return 0, fmt.Errorf("kafka lag: offsets of %s: %w", group, err)
	}
	var lag int64
	for t, ps := range parts {
		for _, p := range ps {
			hw, err := client.GetOffset(t, p, sarama.OffsetNewest)
			if err != nil {
				return 0, fmt.Errorf("kafka lag: watermark of %s/%d: %w", t, p, err)
			}
			var b *sarama.OffsetFetchResponseBlock
			if committed != nil {
				b = committed.GetBlock(t, p)
			}
			done := int64(0) // nothing committed yet: the group starts from the oldest record
			if b != nil && b.Offset >= 0 {
				done = b.Offset
			} else if oldest, err := client.GetOffset(t, p, sarama.OffsetOldest); err == nil {
				done = oldest
			}
			if hw > done {
				lag += hw - done
			}
		}
	}
	return lag, nil
}
