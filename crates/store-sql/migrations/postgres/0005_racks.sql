-- Controllers: registration facts, service states, region-rack links.
-- postgres flavour; keep in step with the other backend's 0005_racks.sql.

CREATE TABLE controller_info (
    node_id BIGINT PRIMARY KEY REFERENCES nodes(id) ON DELETE CASCADE,
    version TEXT NOT NULL DEFAULT '',
    url TEXT NOT NULL DEFAULT '',
    registered BIGINT NOT NULL
);

CREATE TABLE controller_services (
    node_id BIGINT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    status_info TEXT NOT NULL DEFAULT '',
    updated BIGINT NOT NULL,
    PRIMARY KEY (node_id, name)
);

-- Region processes (hostname:pid=N) and when each last said it was alive.
CREATE TABLE region_processes (
    name TEXT PRIMARY KEY,
    last_seen BIGINT NOT NULL
);

-- Which region process holds a link to which rack, refreshed by its heartbeat.
CREATE TABLE rack_links (
    node_id BIGINT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    region TEXT NOT NULL,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (node_id, region)
);
