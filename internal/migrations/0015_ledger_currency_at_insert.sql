-- A ledger transaction's one-currency rule, checked as each entry is
-- inserted instead of at COMMIT. The deferred balance check of 0003 ran a
-- three-table join for every entry and every transaction at COMMIT, while
-- the committing batch still held its accounts' row locks: the join was
-- the largest single statement cost of a transfer. Checking at insert is
-- exactly as strong, because nothing it compares can change later: an
-- entry is immutable, a transaction is immutable, and an account's
-- currency is fixed (ledger_accounts_guard). The error is the one COMMIT
-- gave before (check_violation, constraint
-- ledger_transactions_one_currency).
CREATE FUNCTION ledger_entry_currency() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    same boolean;
BEGIN
    SELECT a.currency = t.currency INTO same
    FROM ledger_accounts a, ledger_transactions t
    WHERE a.id = NEW.account_id AND t.id = NEW.transaction_id;
    -- NULL: the account or transaction does not exist, which the foreign
    -- keys refuse right after this trigger.
    IF same = false THEN
        RAISE EXCEPTION 'ledger transaction % has an entry on an account of another currency', NEW.transaction_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_transactions_one_currency';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER ledger_entries_currency
    BEFORE INSERT ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entry_currency();

-- The deferred check keeps the rest of its rule: at least two entries,
-- summing to exactly zero (numeric, so the sum cannot overflow).
CREATE OR REPLACE FUNCTION ledger_assert_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    tx_id uuid;
    n     bigint;
    total numeric;
BEGIN
    IF TG_TABLE_NAME = 'ledger_entries' THEN
        tx_id := NEW.transaction_id;
    ELSE
        tx_id := NEW.id;
    END IF;
    SELECT count(*), coalesce(sum(amount::numeric), 0) INTO n, total
    FROM ledger_entries WHERE transaction_id = tx_id;
    IF n < 2 OR total <> 0 THEN
        RAISE EXCEPTION 'ledger transaction % is unbalanced: % entries summing to %', tx_id, n, total
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_transactions_balanced';
    END IF;
    RETURN NULL;
END
$$;
