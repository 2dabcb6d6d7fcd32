-- Auth hardening (issue 13): registrations counted per client IP, refresh
-- tokens that know their successor (the retry grace window), and the
-- stable identity of the bootstrap administrator.

-- Registrations per client IP over a sliding window, like
-- auth_login_failures: kept in Postgres so the limit holds across replicas.
CREATE TABLE auth_registration_attempts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_ip    text        NOT NULL,
    attempted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX auth_registration_attempts_ip_idx ON auth_registration_attempts (client_ip, attempted_at);

-- replaced_by is the token a rotation issued. A token presented again
-- shortly after its rotation, whose successor was never used, is a client
-- retrying after a lost response: the successor is revoked (revoked_at)
-- and a fresh one issued, so the family keeps one live token.
ALTER TABLE auth_refresh_tokens
    ADD COLUMN replaced_by uuid,
    ADD COLUMN revoked_at  timestamptz;

-- Sessions have an absolute lifetime counted from created_at; the pruning
-- job deletes ended sessions by it.
CREATE INDEX auth_sessions_created_idx ON auth_sessions (created_at);

-- The bootstrap administrator, recognised by its user id rather than by
-- the configured email: once one was created (or adopted), no other is,
-- whatever happens to its email.
CREATE TABLE auth_bootstrap_admin (
    singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    user_id    uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
