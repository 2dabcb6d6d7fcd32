-- The role of a session (owned by internal/auth): the user's role when the
-- session began. Every change of a user's role or active flag revokes
-- their sessions in the same transaction (internal/users), so a session
-- that is still active carries its user's current role, and the
-- per-request check reads one row of auth's own table instead of two
-- lookups. Sessions begun before this migration have none, and are
-- checked against the user as before.
ALTER TABLE auth_sessions ADD COLUMN role text;
