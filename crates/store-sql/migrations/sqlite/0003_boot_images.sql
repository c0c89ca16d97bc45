-- Boot images: resources, their sets and files, and the boot sources and
-- selections they are imported from. SQLite flavour; keep in step with
-- ../postgres/0003_boot_images.sql.

CREATE TABLE boot_resource (
    id INTEGER PRIMARY KEY,
    -- 0 synced, 2 uploaded (MAAS's rtype).
    rtype INTEGER NOT NULL,
    name TEXT NOT NULL,
    architecture TEXT NOT NULL,
    kflavor TEXT,
    bootloader_type TEXT,
    base_image TEXT,
    extra TEXT NOT NULL DEFAULT '{}',
    last_deployed INTEGER,
    created INTEGER NOT NULL,
    UNIQUE (rtype, name, architecture)
);

CREATE TABLE boot_resource_set (
    id INTEGER PRIMARY KEY,
    resource_id INTEGER NOT NULL REFERENCES boot_resource(id) ON DELETE CASCADE,
    version TEXT NOT NULL,
    label TEXT NOT NULL,
    created INTEGER NOT NULL,
    UNIQUE (resource_id, version)
);

CREATE TABLE boot_resource_file (
    id INTEGER PRIMARY KEY,
    set_id INTEGER NOT NULL REFERENCES boot_resource_set(id) ON DELETE CASCADE,
    filename TEXT NOT NULL,
    filetype TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    extra TEXT NOT NULL DEFAULT '{}',
    complete INTEGER NOT NULL DEFAULT 0,
    UNIQUE (set_id, filename)
);
CREATE INDEX boot_resource_file_sha256 ON boot_resource_file(sha256);

CREATE TABLE boot_source (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    keyring_filename TEXT NOT NULL DEFAULT '',
    keyring_data BLOB NOT NULL,
    skip_keyring_verification INTEGER NOT NULL DEFAULT 0,
    priority INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
);

CREATE TABLE boot_source_selection (
    id INTEGER PRIMARY KEY,
    boot_source_id INTEGER NOT NULL REFERENCES boot_source(id) ON DELETE CASCADE,
    os TEXT NOT NULL,
    release TEXT NOT NULL,
    arches TEXT NOT NULL DEFAULT '["*"]',
    subarches TEXT NOT NULL DEFAULT '["*"]',
    labels TEXT NOT NULL DEFAULT '["*"]',
    UNIQUE (boot_source_id, os, release)
);
