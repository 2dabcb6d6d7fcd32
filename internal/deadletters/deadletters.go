// Package deadletters is the operator's view of the consumers' dead-letter
// topics: GET /v1/admin/dead-letters lists the records that every consumer
// group with a retry policy (email, payouts) gave up on, with why; POST
// /v1/admin/dead-letters/{consumer}/{partition}/{offset}/replay sends one
// back through that consumer's retry topic, once. Consumers are
// idempotent (a mail is sent once per event and recipient, a payout made
// once per withdrawal), so a replay can never do twice what was done.
package deadletters

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/IBM/sarama"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/kafka"
	"github.com/paygate/paygate/internal/platform/postgres"
)

// Errors of the dead-letter endpoints.
var (
	ErrUnknownConsumer = apperr.New(apperr.KindNotFound, "NOT_FOUND", "No consumer has this name.")
	ErrNoDeadLetter    = apperr.New(apperr.KindNotFound, "NOT_FOUND", "The dead-letter topic holds no such record.")
	ErrAlreadyReplayed = apperr.New(apperr.KindConflict, "ALREADY_REPLAYED", "This dead letter was replayed already.")
	ErrBrokerDown      = apperr.New(apperr.KindUnavailable, "BROKER_UNAVAILABLE", "The message broker did not answer; try again.")
)

// MetricReplays counts replayed dead letters by consumer (Prometheus adds
// _total).
const MetricReplays = "paygate.deadletters.replays"

// Topics is what the service reads from and writes to the broker.
type Topics interface {
	ReadAll(ctx context.Context, topic string, limit int) ([]kafka.Record, error)
	Read(ctx context.Context, topic string, partition int32, offset int64) (kafka.Record, error)
}

// DeadLetter is a dead letter as the admin API shows it.
type DeadLetter struct {
	Consumer        string     `json:"consumer"`
	Partition       int32      `json:"partition"`
	Offset          int64      `json:"offset"`
	EventID         string     `json:"event_id"`
	EventType       string     `json:"event_type"`
	Subject         string     `json:"subject"`
	Reason          string     `json:"reason"`
	Error           string     `json:"error"`
	Attempts        int        `json:"attempts"`
	OriginTopic     string     `json:"origin_topic"`
	OriginPartition string     `json:"origin_partition"`
	OriginOffset    string     `json:"origin_offset"`
	DeadLetteredAt  *time.Time `json:"dead_lettered_at"`
	// Value is the record's value (the CloudEvent's data): JSON as it is,
	// anything else base64.
	Value      json.RawMessage `json:"value"`
	ReplayedAt *time.Time      `json:"replayed_at"`
	ReplayedBy *uuid.UUID      `json:"replayed_by"`
}

// Service lists and replays dead letters.
type Service struct {
	queues  map[string]kafka.DeadLetterQueue
	topics  Topics
	pub     kafka.Publisher
	db      *postgres.DB
	store   Store
	replays metric.Int64Counter
}

// NewService returns the service over queues.
func NewService(queues []kafka.DeadLetterQueue, topics Topics, pub kafka.Publisher, db *postgres.DB, mp metric.MeterProvider) (*Service, error) {
	c, err := mp.Meter("paygate/deadletters").Int64Counter(MetricReplays, metric.WithDescription("Dead letters replayed by an operator, by consumer."))
	if err != nil {
		return nil, err
	}
	byName := map[string]kafka.DeadLetterQueue{}
	for _, q := range queues {
		byName[q.Consumer] = q
	}
	return &Service{queues: byName, topics: topics, pub: pub, db: db, replays: c}, nil
}

// Consumers returns the names of the consumers with a dead-letter topic.
func (s *Service) Consumers() []string {
	names := make([]string, 0, len(s.queues))
	for n := range s.queues {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// readTimeout bounds reading a dead-letter topic.
const readTimeout = 10 * time.Second

// List returns up to limit dead letters of consumer (all consumers when
// empty) that come after the position after (nil: from the start), newest
// first, and the position of the last one when more follow.
//
// Dead-letter topics are read whole on every call: they are small (a
// record lands there only after every retry failed), and the list is an
// operator's tool. The cap keeps a topic that is not small from
// exhausting memory.
func (s *Service) List(ctx context.Context, consumer string, limit int, after *Position) ([]DeadLetter, *Position, error) {
	names := s.Consumers()
	if consumer != "" {
		if _, ok := s.queues[consumer]; !ok {
			return nil, nil, ErrUnknownConsumer
		}
		names = []string{consumer}
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	var all []DeadLetter
	for _, n := range names {
		recs, err := s.topics.ReadAll(ctx, s.queues[n].Topic, 10000)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrBrokerDown, err)
		}
		for _, r := range recs {
			if d := view(n, r); after == nil || after.before(d.position()) {
				all = append(all, d)
			}
		}
	}
	slices.SortFunc(all, func(a, b DeadLetter) int { return a.position().compare(b.position()) })
	var next *Position
	if len(all) > limit {
		all = all[:limit]
		p := all[limit-1].position()
		next = &p
	}
	if err := s.store.MarkReplayed(ctx, s.db.Pool, all); err != nil {
		return nil, nil, err
	}
	return all, next, nil
}

// Position is a dead letter's place in the list: newest first, then by
// consumer, partition and offset.
type Position struct {
	At        time.Time
	Consumer  string
	Partition int32
	Offset    int64
}

func (d DeadLetter) position() Position {
	p := Position{Consumer: d.Consumer, Partition: d.Partition, Offset: d.Offset}
	if d.DeadLetteredAt != nil {
		p.At = *d.DeadLetteredAt
	}
	return p
}

// compare orders positions as the list does.
func (p Position) compare(q Position) int {
	if c := q.At.Compare(p.At); c != 0 {
		return c
	}
	if c := strings.Compare(p.Consumer, q.Consumer); c != 0 {
		return c
	}
	if p.Partition != q.Partition {
		return int(p.Partition - q.Partition)
	}
	return cmp.Compare(q.Offset, p.Offset)
}

// before reports whether p comes before q in the list.
func (p Position) before(q Position) bool { return p.compare(q) < 0 }

// Encode returns the position as an opaque cursor.
func (p Position) Encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("%d|%s|%d|%d", p.At.UnixNano(), p.Consumer, p.Partition, p.Offset)))
}

// DecodePosition reads a cursor Encode made.
func DecodePosition(c string) (*Position, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, err
	}
	parts := strings.Split(string(b), "|")
	if len(parts) != 4 {
		return nil, errors.New("deadletters: not a cursor")
	}
	ns, e1 := strconv.ParseInt(parts[0], 10, 64)
	part, e2 := strconv.ParseInt(parts[2], 10, 32)
	off, e3 := strconv.ParseInt(parts[3], 10, 64)
	if err := errors.Join(e1, e2, e3); err != nil {
		return nil, err
	}
	return &Position{At: time.Unix(0, ns).UTC(), Consumer: parts[1], Partition: int32(part), Offset: off}, nil
}

// view is a record of consumer's dead-letter topic as the API shows it.
func view(consumer string, r kafka.Record) DeadLetter {
	h := r.Headers
	d := DeadLetter{Consumer: consumer, Partition: r.Partition, Offset: r.Offset, EventID: h[kafka.HeaderID],
		EventType: h[kafka.HeaderType], Subject: h["ce_subject"], Reason: h[kafka.HeaderReason], Error: h[kafka.HeaderError],
		OriginTopic: h[kafka.HeaderOriginTopic], OriginPartition: h[kafka.HeaderOriginPartition], OriginOffset: h[kafka.HeaderOriginOffset]}
	d.Attempts, _ = strconv.Atoi(h[kafka.HeaderAttempt])
	if t, err := time.Parse(time.RFC3339Nano, h[kafka.HeaderDeadLetteredAt]); err == nil {
		d.DeadLetteredAt = &t
	} else if !r.Timestamp.IsZero() {
		t := r.Timestamp.UTC()
		d.DeadLetteredAt = &t
	}
	if json.Valid(r.Value) && utf8.Valid(r.Value) {
		d.Value = json.RawMessage(r.Value)
	} else {
		d.Value, _ = json.Marshal(base64.StdEncoding.EncodeToString(r.Value))
	}
	return d
}

// replayDropped are the headers of a dead letter that its replay does not
// carry: the replay starts its attempts afresh.
var replayDropped = []string{kafka.HeaderReason, kafka.HeaderError, kafka.HeaderDeadLetteredAt, kafka.HeaderNotBefore}

// Replay sends the dead letter at partition and offset of consumer's
// dead-letter topic back through the consumer's retry topic, once, and
// records that by replayed it.
func (s *Service) Replay(ctx context.Context, consumer string, partition int32, offset int64, by uuid.UUID) (DeadLetter, error) {
	q, ok := s.queues[consumer]
	if !ok {
		return DeadLetter{}, ErrUnknownConsumer
	}
	rctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	rec, err := s.topics.Read(rctx, q.Topic, partition, offset)
	if errors.Is(err, kafka.ErrNoRecord) {
		return DeadLetter{}, ErrNoDeadLetter
	}
	if err != nil {
		return DeadLetter{}, fmt.Errorf("%w: %w", ErrBrokerDown, err)
	}
	d := view(consumer, rec)
	// The replay is recorded in the transaction that publishes it: a
	// publish that fails rolls the record back, so the dead letter can be
	// replayed again; two operators replaying at once are serialised by
	// the primary key, and the second is told.
	err = s.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		at, err := s.store.Insert(ctx, tx, consumer, rec, d.EventID, by)
		if err != nil {
			return err
		}
		d.ReplayedAt, d.ReplayedBy = &at, &by
		msg := rec.ConsumerMessage()
		msg.Headers = slices.DeleteFunc(msg.Headers, func(h *sarama.RecordHeader) bool {
			return slices.Contains(replayDropped, string(h.Key))
		})
		if err := kafka.Republish(ctx, s.pub, nil, msg, q.RetryTopic, map[string]string{
			kafka.HeaderAttempt:      "0",
			kafka.HeaderReplayedFrom: fmt.Sprintf("%s/%d/%d", q.Topic, partition, offset),
		}); err != nil {
			return fmt.Errorf("%w: %w", ErrBrokerDown, err)
		}
		return nil
	})
	if err != nil {
		return DeadLetter{}, err
	}
	s.replays.Add(ctx, 1, metric.WithAttributes(attribute.String("consumer", consumer)))
	return d, nil
}
