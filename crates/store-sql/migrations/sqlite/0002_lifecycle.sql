-- Life cycle, metadata tokens and script results. SQLite flavour; keep in
-- step with ../postgres/0002_lifecycle.sql.

ALTER TABLE nodes ADD COLUMN user_data TEXT;
ALTER TABLE nodes ADD COLUMN enlisting INTEGER NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN enable_ssh INTEGER NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN skip_networking INTEGER NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN skip_storage INTEGER NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN install_kvm INTEGER NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN current_commissioning_set_id INTEGER;
ALTER TABLE nodes ADD COLUMN current_testing_set_id INTEGER;
ALTER TABLE nodes ADD COLUMN current_installation_set_id INTEGER;
ALTER TABLE nodes ADD COLUMN current_release_set_id INTEGER;

-- One OAuth token per node, for the metadata API.
CREATE TABLE node_tokens (
    node_id INTEGER PRIMARY KEY REFERENCES nodes(id) ON DELETE CASCADE,
    consumer_key TEXT NOT NULL UNIQUE,
    token_key TEXT NOT NULL UNIQUE,
    token_secret TEXT NOT NULL,
    created INTEGER NOT NULL
);

CREATE TABLE scripts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '[]',
    script_type INTEGER NOT NULL,
    hardware_type INTEGER NOT NULL DEFAULT 0,
    parallel INTEGER NOT NULL DEFAULT 0,
    timeout_seconds INTEGER NOT NULL DEFAULT 0,
    destructive INTEGER NOT NULL DEFAULT 0,
    is_default INTEGER NOT NULL DEFAULT 0,
    may_reboot INTEGER NOT NULL DEFAULT 0,
    script TEXT NOT NULL,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
);

CREATE TABLE script_sets (
    id INTEGER PRIMARY KEY,
    node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    result_type INTEGER NOT NULL,
    last_ping INTEGER,
    created INTEGER NOT NULL
);
CREATE INDEX script_sets_node ON script_sets(node_id, id);

CREATE TABLE script_results (
    id INTEGER PRIMARY KEY,
    script_set_id INTEGER NOT NULL REFERENCES script_sets(id) ON DELETE CASCADE,
    script_id INTEGER REFERENCES scripts(id) ON DELETE SET NULL,
    name TEXT NOT NULL,
    status INTEGER NOT NULL,
    exit_status INTEGER,
    started INTEGER,
    ended INTEGER,
    runtime TEXT NOT NULL DEFAULT '',
    output BLOB,
    stdout BLOB,
    stderr BLOB,
    result BLOB,
    parameters TEXT NOT NULL DEFAULT '{}',
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
);
CREATE INDEX script_results_set ON script_results(script_set_id);
