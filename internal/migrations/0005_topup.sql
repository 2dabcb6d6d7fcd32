-- Top-ups (owned by internal/topup). Money records are immutable: a
-- reversal is a new row in topup_reversals pointing at a compensating
-- ledger transaction, never an update.
CREATE TABLE topups (
    id                    uuid PRIMARY KEY,
    user_id               uuid        NOT NULL,
    amount                bigint      NOT NULL CHECK (amount > 0),
    currency              char(3)     NOT NULL,
    method                text        NOT NULL,
    reference             text        NOT NULL DEFAULT '',
    ledger_transaction_id uuid        NOT NULL UNIQUE,
    created_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX topups_user_idx ON topups (user_id, created_at DESC, id DESC);
CREATE INDEX topups_created_idx ON topups (created_at DESC, id DESC);

CREATE TABLE topup_reversals (
    topup_id              uuid PRIMARY KEY REFERENCES topups (id),
    ledger_transaction_id uuid        NOT NULL UNIQUE,
    reversed_by           uuid        NOT NULL,
    reason                text        NOT NULL DEFAULT '',
    created_at            timestamptz NOT NULL DEFAULT now()
);

-- money_record_immutable refuses UPDATE and DELETE on money records.
CREATE FUNCTION money_record_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is immutable: post a compensating transaction instead', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER topups_immutable BEFORE UPDATE OR DELETE ON topups
    FOR EACH ROW EXECUTE FUNCTION money_record_immutable();
CREATE TRIGGER topup_reversals_immutable BEFORE UPDATE OR DELETE ON topup_reversals
    FOR EACH ROW EXECUTE FUNCTION money_record_immutable();
CREATE TRIGGER topups_no_truncate BEFORE TRUNCATE ON topups
    FOR EACH STATEMENT EXECUTE FUNCTION money_record_immutable();
CREATE TRIGGER topup_reversals_no_truncate BEFORE TRUNCATE ON topup_reversals
    FOR EACH STATEMENT EXECUTE FUNCTION money_record_immutable();
