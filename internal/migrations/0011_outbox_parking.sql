-- Parked outbox events (owned by internal/platform/outbox). An event the
-- broker refuses for good (too large, an invalid topic, a policy) is parked:
-- taken out of the relay's scan, kept with its error for an operator, and
-- counted, so that it neither blocks nor slows the events after it.
ALTER TABLE outbox ADD COLUMN parked_at timestamptz;

DROP INDEX outbox_pending_idx;
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE sent_at IS NULL AND parked_at IS NULL;
CREATE INDEX outbox_parked_idx ON outbox (id) WHERE parked_at IS NOT NULL AND sent_at IS NULL;
