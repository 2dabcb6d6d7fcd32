-- The transactional outbox: domains insert events here in the same
-- transaction as the change they describe; the relay publishes them to Kafka.
CREATE TABLE outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    uuid        NOT NULL UNIQUE,
    topic       text        NOT NULL CHECK (topic <> ''),
    event_key   text        NOT NULL,
    event_type  text        NOT NULL CHECK (event_type <> ''),
    source      text        NOT NULL,
    subject     text        NOT NULL DEFAULT '',
    event_time  timestamptz NOT NULL,
    payload     jsonb       NOT NULL,
    -- W3C trace context of the transaction that enqueued the event.
    traceparent text        NOT NULL DEFAULT '',
    tracestate  text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    attempts    integer     NOT NULL DEFAULT 0,
    last_error  text        NOT NULL DEFAULT ''
);

-- The relay scans pending rows in id order; this index holds only them.
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE sent_at IS NULL;
-- Cleanup deletes published rows past their retention.
CREATE INDEX outbox_sent_at_idx ON outbox (sent_at) WHERE sent_at IS NOT NULL;
