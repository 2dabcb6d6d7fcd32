-- Users (owned by internal/users) and their credentials, sessions and login
-- throttling (owned by internal/auth). There are no foreign keys between
-- the two domains' tables: each domain reaches the other only through its
-- Go API, so either can move to its own database later.

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    firstname      text        NOT NULL CHECK (char_length(firstname) BETWEEN 1 AND 100),
    lastname       text        NOT NULL CHECK (char_length(lastname) BETWEEN 1 AND 100),
    -- Stored trimmed and lower-cased, so uniqueness is case-insensitive.
    email          text        NOT NULL CHECK (email = lower(email) AND char_length(email) BETWEEN 3 AND 254),
    -- 16 digits with a Luhn check digit; usable as a transfer recipient.
    account_number text        NOT NULL CHECK (account_number ~ '^[0-9]{16}$'),
    role           text        NOT NULL CHECK (role IN ('user', 'admin')),
    active         boolean     NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deactivated_at timestamptz,
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_account_number_key UNIQUE (account_number)
);

-- Admin listing pages newest first by (created_at, id).
CREATE INDEX users_created_idx ON users (created_at DESC, id DESC);

CREATE TABLE auth_credentials (
    user_id       uuid PRIMARY KEY,
    -- PHC-encoded argon2id hash carrying its own salt and parameters.
    password_hash text        NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- A session is one login: the family of refresh tokens rotated from it.
-- Revoking a session ends every token of the family.
CREATE TABLE auth_sessions (
    id            uuid PRIMARY KEY,
    user_id       uuid        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    revoke_reason text        NOT NULL DEFAULT ''
);
CREATE INDEX auth_sessions_user_idx ON auth_sessions (user_id) WHERE revoked_at IS NULL;

-- Refresh tokens are stored only as SHA-256 hashes. used_at is set when a
-- token is rotated; presenting a used token again means it was stolen, and
-- revokes its session.
CREATE TABLE auth_refresh_tokens (
    id         uuid PRIMARY KEY,
    session_id uuid        NOT NULL REFERENCES auth_sessions (id),
    token_hash bytea       NOT NULL CONSTRAINT auth_refresh_tokens_hash_key UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX auth_refresh_tokens_session_idx ON auth_refresh_tokens (session_id);

-- Failed logins, counted per email and per client IP over a sliding window.
-- Kept in Postgres, not in process memory, so limits hold across replicas.
CREATE TABLE auth_login_failures (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email     text        NOT NULL,
    client_ip text        NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX auth_login_failures_email_idx ON auth_login_failures (email, failed_at);
CREATE INDEX auth_login_failures_ip_idx ON auth_login_failures (client_ip, failed_at);
