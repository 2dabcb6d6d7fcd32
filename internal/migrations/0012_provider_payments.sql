-- Payment rails (owned by internal/topup, internal/withdraw and
-- internal/callbacks). A top-up is created pending with the provider's
-- payment instructions and ends once, in topup_settlements: succeeded (the
-- wallet is credited, ledger_transaction_id set), failed or expired. The
-- primary key of the settlement is what makes "credited exactly once" and
-- "a terminal state never moves back" hold under duplicate, late and
-- concurrent callbacks. No row of these tables is ever updated.

-- Top-ups booked before the payment rails carry their ledger transaction
-- on the row and count as succeeded; new ones are credited through their
-- settlement.
ALTER TABLE topups ALTER COLUMN ledger_transaction_id DROP NOT NULL;
ALTER TABLE topups
    ADD COLUMN provider            text        NOT NULL DEFAULT '',
    ADD COLUMN provider_payment_id text        NOT NULL DEFAULT '',
    ADD COLUMN payment             jsonb,
    ADD COLUMN expires_at          timestamptz;
CREATE INDEX topups_pending_idx ON topups (created_at) WHERE ledger_transaction_id IS NULL;

-- topup_intents pins the id and expiry of the top-up an Idempotency-Key
-- creates before the provider is called: a retry after a provider timeout
-- sends the provider the very same create (same reference, same expiry)
-- under the same idempotency key, so the customer is never asked to pay
-- twice. Intents are forgotten with the idempotency keys.
CREATE TABLE topup_intents (
    owner_id    uuid        NOT NULL,
    idem_key    text        NOT NULL,
    fingerprint bytea       NOT NULL,
    topup_id    uuid        NOT NULL UNIQUE,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_id, idem_key, fingerprint)
);
CREATE INDEX topup_intents_created_idx ON topup_intents (created_at);

CREATE TABLE topup_settlements (
    topup_id              uuid PRIMARY KEY REFERENCES topups (id),
    status                text        NOT NULL CHECK (status IN ('succeeded', 'failed', 'expired')),
    ledger_transaction_id uuid UNIQUE,
    reason                text        NOT NULL DEFAULT '',
    -- reason_code is stable for machines: AMOUNT_MISMATCH, EXPIRED, the
    -- provider's failure code.
    reason_code           text        NOT NULL DEFAULT '',
    paid_amount           bigint,
    paid_currency         char(3),
    -- source says what told paygate: callback, poll or expiry.
    source                text        NOT NULL,
    settled_at            timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'succeeded') = (ledger_transaction_id IS NOT NULL))
);
CREATE INDEX topup_settlements_settled_idx ON topup_settlements (settled_at);

-- withdrawal_payouts records the payout the provider accepted for a
-- withdrawal (the withdrawal id is its idempotency key).
CREATE TABLE withdrawal_payouts (
    withdrawal_id uuid PRIMARY KEY REFERENCES withdrawals (id),
    provider      text        NOT NULL,
    payout_id     text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE withdrawal_settlements ADD COLUMN source text NOT NULL DEFAULT '';
ALTER TABLE withdrawal_settlements ADD COLUMN reason_code text NOT NULL DEFAULT '';
CREATE INDEX withdrawal_settlements_settled_idx ON withdrawal_settlements (settled_at);

-- provider_callbacks is the inbox: every authenticated callback exactly
-- as received, stored before it is processed, so that any state can be
-- explained later. Duplicates are stored too; provider_callback_events
-- holds one row per distinct notification, and its primary key is the
-- deduplication.
CREATE TABLE provider_callbacks (
    id          bigserial PRIMARY KEY,
    provider    text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('payment', 'payout')),
    event_id    text        NOT NULL,
    reference   text        NOT NULL DEFAULT '',
    body        bytea       NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX provider_callbacks_event_idx ON provider_callbacks (provider, event_id);

CREATE TABLE provider_callback_events (
    provider     text        NOT NULL,
    event_id     text        NOT NULL,
    callback_id  bigint      NOT NULL REFERENCES provider_callbacks (id),
    kind         text        NOT NULL,
    reference    text        NOT NULL DEFAULT '',
    -- outcome: applied (a state changed), unchanged (already terminal or
    -- still pending), unmatched (no such top-up or withdrawal), mismatch
    -- (paid amount or currency differs), late (paid after paygate closed
    -- the top-up).
    outcome      text        NOT NULL,
    detail       text        NOT NULL DEFAULT '',
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, event_id)
);
CREATE INDEX provider_callback_events_attention_idx ON provider_callback_events (processed_at DESC)
    WHERE outcome IN ('unmatched', 'mismatch', 'late');

CREATE TRIGGER topup_intents_immutable BEFORE UPDATE ON topup_intents
    FOR EACH ROW EXECUTE FUNCTION money_record_immutable();
CREATE TRIGGER topup_settlements_immutable BEFORE UPDATE OR DELETE ON topup_settlements
    FOR EACH ROW EXECUTE FUNCTION money_record_immutable();
CREATE TRIGGER withdrawal_payouts_immutable BEFORE UPDATE OR DELETE ON withdrawal_payouts
    FOR EACH ROW EXECUTE FUNCTION money_record_immutable();
CREATE TRIGGER provider_callbacks_immutable BEFORE UPDATE OR DELETE ON provider_callbacks
    FOR EACH ROW EXECUTE FUNCTION money_record_immutable();
CREATE TRIGGER provider_callback_events_immutable BEFORE UPDATE OR DELETE ON provider_callback_events
    FOR EACH ROW EXECUTE FUNCTION money_record_immutable();
CREATE TRIGGER topup_settlements_no_truncate BEFORE TRUNCATE ON topup_settlements
    FOR EACH STATEMENT EXECUTE FUNCTION money_record_immutable();
CREATE TRIGGER withdrawal_payouts_no_truncate BEFORE TRUNCATE ON withdrawal_payouts
    FOR EACH STATEMENT EXECUTE FUNCTION money_record_immutable();
CREATE TRIGGER provider_callbacks_no_truncate BEFORE TRUNCATE ON provider_callbacks
    FOR EACH STATEMENT EXECUTE FUNCTION money_record_immutable();
CREATE TRIGGER provider_callback_events_no_truncate BEFORE TRUNCATE ON provider_callback_events
    FOR EACH STATEMENT EXECUTE FUNCTION money_record_immutable();
