-- Replays of dead letters (owned by internal/deadletters). A dead letter is
-- a record on a consumer's dead-letter topic; an operator replays it once,
-- back through the consumer's retry topic. This table records who replayed
-- which one and when, and its primary key refuses a second replay of the
-- same dead letter (the consumers are idempotent, but a replay is an
-- operator's decision and should say so once).
CREATE TABLE dead_letter_replays (
    consumer    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    event_id    text        NOT NULL DEFAULT '',
    replayed_by uuid        NOT NULL,
    replayed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition, "offset")
);
