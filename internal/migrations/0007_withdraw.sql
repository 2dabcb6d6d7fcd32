-- Withdrawals (owned by internal/withdraw). A request places a ledger hold;
-- its settlement is a separate row whose primary key makes it happen
-- exactly once: succeeded captures the hold into the clearing account,
-- failed releases it. Neither table is ever updated.
CREATE TABLE withdrawals (
    id                  uuid PRIMARY KEY,
    user_id             uuid        NOT NULL,
    amount              bigint      NOT NULL CHECK (amount > 0),
    currency            char(3)     NOT NULL,
    bank_code           text        NOT NULL,
    bank_account_number text        NOT NULL,
    bank_account_name   text        NOT NULL,
    hold_id             uuid        NOT NULL UNIQUE,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX withdrawals_user_idx ON withdrawals (user_id, created_at DESC, id DESC);
CREATE INDEX withdrawals_created_idx ON withdrawals (created_at DESC, id DESC);

CREATE TABLE withdrawal_settlements (
    withdrawal_id         uuid PRIMARY KEY REFERENCES withdrawals (id),
    status                text        NOT NULL CHECK (status IN ('succeeded', 'failed')),
    ledger_transaction_id uuid UNIQUE,
    reason                text        NOT NULL DEFAULT '',
    provider_reference    text        NOT NULL DEFAULT '',
    settled_at            timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'succeeded') = (ledger_transaction_id IS NOT NULL))
);

CREATE TRIGGER withdrawals_immutable BEFORE UPDATE OR DELETE ON withdrawals
    FOR EACH ROW EXECUTE FUNCTION money_record_immutable();
CREATE TRIGGER withdrawal_settlements_immutable BEFORE UPDATE OR DELETE ON withdrawal_settlements
    FOR EACH ROW EXECUTE FUNCTION money_record_immutable();
CREATE TRIGGER withdrawals_no_truncate BEFORE TRUNCATE ON withdrawals
    FOR EACH STATEMENT EXECUTE FUNCTION money_record_immutable();
CREATE TRIGGER withdrawal_settlements_no_truncate BEFORE TRUNCATE ON withdrawal_settlements
    FOR EACH STATEMENT EXECUTE FUNCTION money_record_immutable();
