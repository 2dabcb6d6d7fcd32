-- The double-entry ledger behind every wallet (owned by internal/ledger).
--
-- Every movement of money is a ledger transaction made of two or more
-- entries whose signed amounts sum to zero, so money is never created or
-- destroyed: it enters the system from funding accounts, whose balances go
-- negative, and the sum of all balances is always 0. All amounts are in
-- minor units (cents) as bigint; nothing here is ever a float.
--
-- The Go code enforces every rule below before it writes; the constraints
-- and triggers are the last line of defence against bugs and hand-written
-- SQL, and ledger.Verify re-checks all of them set-based.
--
-- Lock order (see internal/ledger/doc.go): within one database transaction,
-- a hold row is locked before any account row, and account rows are locked
-- all at once, sorted by id. Following one global order makes deadlocks
-- between ledger writers impossible.

CREATE TABLE ledger_accounts (
    id             uuid PRIMARY KEY,
    -- A wallet belongs to one user; a system account (funding, clearing)
    -- belongs to paygate and is named by its code.
    kind           text        NOT NULL CHECK (kind IN ('wallet', 'system')),
    -- One wallet per user. Deliberately no foreign key to users: domains do
    -- not reach into each other's tables, so the ledger can move to its own
    -- database.
    owner_user_id  uuid        CONSTRAINT ledger_accounts_owner_key UNIQUE,
    -- e.g. 'funding:ovo', 'clearing:withdrawals'; unique so that
    -- get-or-create by code is race-safe (INSERT ... ON CONFLICT).
    code           text        CONSTRAINT ledger_accounts_code_key UNIQUE,
    -- ISO 4217 code; every entry of a transaction is in its currency.
    currency       char(3)     NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- Balance in minor units: always the sum of the account's entries.
    balance        bigint      NOT NULL DEFAULT 0,
    -- Money reserved by active holds: always the sum of their amounts.
    held           bigint      NOT NULL DEFAULT 0 CHECK (held >= 0),
    -- Only system accounts may go negative (funding accounts must, since
    -- money enters the system through them).
    allow_negative boolean     NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- The last line of defence against an overdraft: the Go code refuses
    -- one first (ledger.ErrInsufficientFunds) and maps this violation to
    -- the same error should it ever fire.
    CONSTRAINT ledger_accounts_non_negative CHECK (allow_negative OR balance >= 0),
    -- Available money (balance - held) never goes negative either, so a
    -- hold guarantees that its capture can be paid. Written as a comparison
    -- rather than balance - held >= 0 because the subtraction could
    -- overflow bigint.
    CONSTRAINT ledger_accounts_available_non_negative CHECK (allow_negative OR balance >= held),
    -- A wallet has an owner, no code and may never go negative; a system
    -- account has a code and no owner.
    CONSTRAINT ledger_accounts_kind_shape CHECK (
        (kind = 'wallet' AND owner_user_id IS NOT NULL AND code IS NULL AND NOT allow_negative)
        OR (kind = 'system' AND owner_user_id IS NULL AND code IS NOT NULL AND code <> '')
    )
);

CREATE TABLE ledger_transactions (
    id         uuid PRIMARY KEY,
    -- What happened: topup, transfer, withdrawal, capture, reversal, ...
    kind       text        NOT NULL CHECK (kind <> ''),
    -- The business record this transaction books (a top-up id, a transfer
    -- id, ...), so that every movement can be traced back to its cause.
    reference  text        NOT NULL DEFAULT '',
    -- The transaction this one reverses. UNIQUE: a transaction can be
    -- reversed at most once, even by two concurrent reversals (the second
    -- one's insert fails, and ledger.Reverse reports ALREADY_REVERSED).
    reverses   uuid        CONSTRAINT ledger_transactions_reverses_key UNIQUE
                           REFERENCES ledger_transactions (id),
    currency   char(3)     NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    metadata   jsonb       NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ledger_transactions_not_self_reversing CHECK (reverses <> id)
);

-- Business records find their ledger transactions by reference.
CREATE INDEX ledger_transactions_reference_idx ON ledger_transactions (reference);

CREATE TABLE ledger_entries (
    -- Monotonic within an account: a statement is the account's entries
    -- newest first by id, and balance_after chains along that order.
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id uuid        NOT NULL REFERENCES ledger_transactions (id),
    account_id     uuid        NOT NULL REFERENCES ledger_accounts (id),
    -- Signed: positive increases the account's balance. Never zero: an
    -- entry that moves nothing is a bug.
    amount         bigint      NOT NULL CHECK (amount <> 0),
    -- The account's balance right after this entry, so that a statement
    -- page needs no running sum; it equals the previous entry's
    -- balance_after plus amount.
    balance_after  bigint      NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- One entry per account per transaction keeps balance_after
    -- unambiguous; its index also serves the per-transaction lookups of
    -- the balance trigger and of reversals.
    CONSTRAINT ledger_entries_one_per_account UNIQUE (transaction_id, account_id)
);

-- Statements: an account's entries newest first, keyset-paginated by id.
CREATE INDEX ledger_entries_account_idx ON ledger_entries (account_id, id DESC);

CREATE TABLE ledger_holds (
    id                     uuid PRIMARY KEY,
    account_id             uuid        NOT NULL REFERENCES ledger_accounts (id),
    -- A hold reserves a positive amount of the account's available money.
    amount                 bigint      NOT NULL CHECK (amount > 0),
    -- active -> captured (money moved) or active -> released (reservation
    -- dropped); the trigger below forbids every other transition.
    status                 text        NOT NULL CHECK (status IN ('active', 'captured', 'released')),
    reference              text        NOT NULL DEFAULT '',
    created_at             timestamptz NOT NULL DEFAULT now(),
    settled_at             timestamptz,
    -- The transaction that moved the held money, for captured holds only.
    capture_transaction_id uuid        REFERENCES ledger_transactions (id),
    -- A hold is settled exactly when it is no longer active.
    CONSTRAINT ledger_holds_settled CHECK ((status = 'active') = (settled_at IS NULL)),
    -- A captured hold always names its transaction; no other hold does.
    CONSTRAINT ledger_holds_capture CHECK ((status = 'captured') = (capture_transaction_id IS NOT NULL))
);

-- held = sum of active holds: keeps Verify and per-account lookups cheap.
CREATE INDEX ledger_holds_active_idx ON ledger_holds (account_id) WHERE status = 'active';
CREATE INDEX ledger_holds_reference_idx ON ledger_holds (reference);

-- Immutability. Entries and transactions are the audit trail: a mistake is
-- corrected by a new (reversing) transaction, never by editing history.
CREATE FUNCTION ledger_forbid_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER ledger_entries_immutable
    BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER ledger_entries_no_truncate
    BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER ledger_transactions_immutable
    BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER ledger_transactions_no_truncate
    BEFORE TRUNCATE ON ledger_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER ledger_holds_no_truncate
    BEFORE TRUNCATE ON ledger_holds
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER ledger_accounts_no_truncate
    BEFORE TRUNCATE ON ledger_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();

-- Accounts are never deleted (their history would dangle) and only their
-- balance and held change: a changed currency, kind, owner or code would
-- silently re-interpret every entry already booked on the account.
CREATE FUNCTION ledger_accounts_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'ledger accounts are never deleted'
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF (NEW.id, NEW.kind, NEW.owner_user_id, NEW.code, NEW.currency, NEW.allow_negative, NEW.created_at)
       IS DISTINCT FROM
       (OLD.id, OLD.kind, OLD.owner_user_id, OLD.code, OLD.currency, OLD.allow_negative, OLD.created_at) THEN
        RAISE EXCEPTION 'only balance and held of a ledger account may change'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER ledger_accounts_guard
    BEFORE UPDATE OR DELETE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_accounts_guard();

-- Holds change once: active -> captured or active -> released, stamping
-- settled_at (and, for a capture, the capture transaction); every other
-- column stays as it was, and holds are never deleted. Without this a
-- settled hold could be re-activated and its money held, or captured, twice.
CREATE FUNCTION ledger_holds_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'ledger holds are never deleted'
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.status <> 'active'
       OR NEW.status NOT IN ('captured', 'released')
       OR NEW.settled_at IS NULL
       OR (NEW.status = 'captured') <> (NEW.capture_transaction_id IS NOT NULL)
       OR (NEW.id, NEW.account_id, NEW.amount, NEW.reference, NEW.created_at)
          IS DISTINCT FROM (OLD.id, OLD.account_id, OLD.amount, OLD.reference, OLD.created_at) THEN
        RAISE EXCEPTION 'ledger hold %: only active -> captured/released is allowed (% -> %)',
            OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER ledger_holds_guard
    BEFORE UPDATE OR DELETE ON ledger_holds
    FOR EACH ROW EXECUTE FUNCTION ledger_holds_guard();

-- Sum to zero. Checked at COMMIT (deferred), because a transaction's
-- entries are inserted one statement at a time and only the complete set
-- must balance: its entries must number at least two, sum to exactly zero
-- and be in the transaction's currency. The trigger fires for every new
-- entry and for every new transaction row, so a transaction without any
-- entry fails too. The sum is numeric, so it cannot overflow.
CREATE FUNCTION ledger_assert_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    tx_id   uuid;
    n       bigint;
    total   numeric;
    foreign_currency boolean;
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
    SELECT EXISTS (
        SELECT 1
        FROM ledger_entries e
        JOIN ledger_accounts a ON a.id = e.account_id
        JOIN ledger_transactions t ON t.id = e.transaction_id
        WHERE e.transaction_id = tx_id AND a.currency <> t.currency
    ) INTO foreign_currency;
    IF foreign_currency THEN
        RAISE EXCEPTION 'ledger transaction % has an entry on an account of another currency', tx_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_transactions_one_currency';
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER ledger_entries_balanced
    AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_assert_balanced();
CREATE CONSTRAINT TRIGGER ledger_transactions_balanced
    AFTER INSERT ON ledger_transactions
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_assert_balanced();
