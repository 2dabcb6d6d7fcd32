-- Idempotency keys of mutating money endpoints (internal/platform/idempotency).
-- The first response to (owner, key) is stored in the same transaction as
-- the effect it reports, so a stored response exists if and only if the
-- effect committed; retries get it back instead of running again.
CREATE TABLE idempotency_keys (
    owner_id      uuid        NOT NULL,
    idem_key      text        NOT NULL CHECK (char_length(idem_key) BETWEEN 1 AND 255),
    -- SHA-256 of the operation and its canonical request body: the same key
    -- with another request is refused rather than answered with the first
    -- request's response.
    request_hash  bytea       NOT NULL,
    status_code   integer     NOT NULL,
    response_body bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_id, idem_key)
);

-- Cleanup deletes keys past their retention window.
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
