-- Dashboard sessions (api.md §2.7). PostgreSQL flavour; keep in step with
-- ../sqlite/0004_sessions.sql.

CREATE TABLE sessions (
    -- SHA-256 of the session key, hex; the key itself is only in the cookie.
    key_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expires ON sessions(expires);
