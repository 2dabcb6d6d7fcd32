-- Transfers between wallets (owned by internal/transfer). Immutable, like
-- every money record: a reversal is a new transfer_reversals row pointing
-- at a compensating ledger transaction.
CREATE TABLE transfers (
    id                    uuid PRIMARY KEY,
    from_user_id          uuid        NOT NULL,
    to_user_id            uuid        NOT NULL CHECK (to_user_id <> from_user_id),
    from_account_number   text        NOT NULL,
    to_account_number     text        NOT NULL,
    amount                bigint      NOT NULL CHECK (amount > 0),
    currency              char(3)     NOT NULL,
    note                  text        NOT NULL DEFAULT '',
    ledger_transaction_id uuid        NOT NULL UNIQUE,
    created_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transfers_from_idx ON transfers (from_user_id, created_at DESC, id DESC);
CREATE INDEX transfers_to_idx ON transfers (to_user_id, created_at DESC, id DESC);
CREATE INDEX transfers_created_idx ON transfers (created_at DESC, id DESC);

CREATE TABLE transfer_reversals (
    transfer_id           uuid PRIMARY KEY REFERENCES transfers (id),
    ledger_transaction_id uuid        NOT NULL UNIQUE,
    reversed_by           uuid        NOT NULL,
    reason                text        NOT NULL DEFAULT '',
    created_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER transfers_immutable BEFORE UPDATE OR DELETE ON transfers
    FOR EACH ROW EXECUTE FUNCTION money_record_immutable();
CREATE TRIGGER transfer_reversals_immutable BEFORE UPDATE OR DELETE ON transfer_reversals
    FOR EACH ROW EXECUTE FUNCTION money_record_immutable();
CREATE TRIGGER transfers_no_truncate BEFORE TRUNCATE ON transfers
    FOR EACH STATEMENT EXECUTE FUNCTION money_record_immutable();
CREATE TRIGGER transfer_reversals_no_truncate BEFORE TRUNCATE ON transfer_reversals
    FOR EACH STATEMENT EXECUTE FUNCTION money_record_immutable();
