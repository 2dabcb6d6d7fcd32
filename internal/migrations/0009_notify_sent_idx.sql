-- The hourly prune of sent delivery records (notify.Store.Prune) finds
-- them by sent_at; without this index it would scan the whole table.
CREATE INDEX notify_deliveries_sent_idx ON notify_deliveries (sent_at) WHERE status = 'sent';
