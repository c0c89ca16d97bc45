-- Dashboard sessions (api.md §2.7). SQLite flavour; keep in step with
-- ../postgres/0004_sessions.sql.

CREATE TABLE sessions (
    -- SHA-256 of the session key, hex; the key itself is only in the cookie.
    key_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expires ON sessions(expires);
