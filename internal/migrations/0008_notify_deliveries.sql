-- Email deliveries (owned by internal/notify): one row per mail an event
-- causes, keyed by the event's CloudEvents id, the recipient address and
-- the template. A row is claimed (pending) in its own committed statement
-- before the SMTP conversation and marked sent once the server accepted
-- the mail, so a redelivered event skips what was sent and a crash between
-- the two steps resends at most that one mail.
CREATE TABLE notify_deliveries (
    event_id      uuid        NOT NULL,
    recipient     text        NOT NULL CHECK (recipient <> ''),
    template      text        NOT NULL CHECK (template <> ''),
    status        text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent')),
    -- SMTP conversations started for this mail.
    attempts      integer     NOT NULL DEFAULT 0,
    -- While a consumer is sending, no other one claims the row; a claim
    -- left by a crash expires and the mail is sent again.
    claimed_until timestamptz,
    last_error    text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    PRIMARY KEY (event_id, recipient, template),
    CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);

-- Operators look for mails that never went out.
CREATE INDEX notify_deliveries_pending_idx ON notify_deliveries (created_at) WHERE status = 'pending';
