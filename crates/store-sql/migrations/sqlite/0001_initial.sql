-- Region schema, SQLite flavour. Keep in step with ../postgres/0001_initial.sql:
-- the same tables, columns and defaults; only types and id generation differ.
-- Booleans are INTEGER 0/1, times are Unix milliseconds.

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL DEFAULT '',
    password_hash TEXT,
    is_superuser INTEGER NOT NULL DEFAULT 0,
    is_active INTEGER NOT NULL DEFAULT 1,
    is_local INTEGER NOT NULL DEFAULT 1,
    created INTEGER NOT NULL,
    last_login INTEGER
);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    consumer_key TEXT NOT NULL UNIQUE,
    consumer_name TEXT NOT NULL,
    token_key TEXT NOT NULL UNIQUE,
    token_secret TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

CREATE TABLE sshkeys (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    keysource TEXT NOT NULL DEFAULT '',
    UNIQUE (user_id, key)
);

CREATE TABLE config (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE zones (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created INTEGER NOT NULL
);
INSERT INTO zones (id, name, description, created) VALUES (1, 'default', '', 0);

CREATE TABLE resource_pools (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created INTEGER NOT NULL
);
INSERT INTO resource_pools (id, name, description, created) VALUES (0, 'default', 'Default pool', 0);

CREATE TABLE domains (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    authoritative INTEGER NOT NULL DEFAULT 1,
    ttl INTEGER
);
INSERT INTO domains (id, name, authoritative, ttl) VALUES (0, 'maas', 1, NULL);

CREATE TABLE tags (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    definition TEXT NOT NULL DEFAULT '',
    comment TEXT NOT NULL DEFAULT '',
    kernel_opts TEXT
);

CREATE TABLE fabrics (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    class_type TEXT,
    created INTEGER NOT NULL
);
INSERT INTO fabrics (id, name, description, class_type, created) VALUES (0, 'fabric-0', '', NULL, 0);

CREATE TABLE spaces (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created INTEGER NOT NULL
);

CREATE TABLE vlans (
    id INTEGER PRIMARY KEY,
    fabric_id INTEGER NOT NULL REFERENCES fabrics(id) ON DELETE CASCADE,
    vid INTEGER NOT NULL,
    name TEXT,
    description TEXT NOT NULL DEFAULT '',
    mtu INTEGER NOT NULL DEFAULT 1500,
    dhcp_on INTEGER NOT NULL DEFAULT 0,
    external_dhcp TEXT,
    primary_rack TEXT,
    secondary_rack TEXT,
    relay_vlan_id INTEGER REFERENCES vlans(id) ON DELETE SET NULL,
    space_id INTEGER REFERENCES spaces(id) ON DELETE SET NULL,
    created INTEGER NOT NULL,
    UNIQUE (fabric_id, vid)
);
INSERT INTO vlans (id, fabric_id, vid, name, description, mtu, dhcp_on, created)
    VALUES (5001, 0, 0, 'untagged', '', 1500, 0, 0);

CREATE TABLE subnets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    cidr TEXT NOT NULL UNIQUE,
    vlan_id INTEGER NOT NULL REFERENCES vlans(id),
    gateway_ip TEXT,
    dns_servers TEXT NOT NULL DEFAULT '[]',
    rdns_mode INTEGER NOT NULL DEFAULT 2,
    allow_dns INTEGER NOT NULL DEFAULT 1,
    allow_proxy INTEGER NOT NULL DEFAULT 1,
    active_discovery INTEGER NOT NULL DEFAULT 0,
    managed INTEGER NOT NULL DEFAULT 1,
    disabled_boot_architectures TEXT NOT NULL DEFAULT '[]',
    created INTEGER NOT NULL
);

CREATE TABLE ip_ranges (
    id INTEGER PRIMARY KEY,
    subnet_id INTEGER NOT NULL REFERENCES subnets(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    start_ip TEXT NOT NULL,
    end_ip TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created INTEGER NOT NULL
);

CREATE TABLE nodes (
    id INTEGER PRIMARY KEY,
    system_id TEXT NOT NULL UNIQUE,
    hostname TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    node_type INTEGER NOT NULL,
    status INTEGER NOT NULL,
    previous_status INTEGER NOT NULL DEFAULT 0,
    owner_id INTEGER REFERENCES users(id),
    domain_id INTEGER NOT NULL REFERENCES domains(id),
    zone_id INTEGER NOT NULL REFERENCES zones(id),
    pool_id INTEGER REFERENCES resource_pools(id),
    architecture TEXT,
    min_hwe_kernel TEXT,
    hwe_kernel TEXT,
    cpu_count INTEGER NOT NULL DEFAULT 0,
    cpu_speed INTEGER NOT NULL DEFAULT 0,
    memory INTEGER NOT NULL DEFAULT 0,
    swap_size INTEGER,
    osystem TEXT NOT NULL DEFAULT '',
    distro_series TEXT NOT NULL DEFAULT '',
    power_type TEXT NOT NULL DEFAULT '',
    power_parameters TEXT NOT NULL DEFAULT '{}',
    power_state TEXT NOT NULL DEFAULT 'unknown',
    locked INTEGER NOT NULL DEFAULT 0,
    netboot INTEGER NOT NULL DEFAULT 1,
    ephemeral_deploy INTEGER NOT NULL DEFAULT 0,
    error_description TEXT NOT NULL DEFAULT '',
    agent_name TEXT NOT NULL DEFAULT '',
    owner_data TEXT NOT NULL DEFAULT '{}',
    hardware_uuid TEXT,
    hardware_info TEXT NOT NULL DEFAULT '{}',
    enable_hw_sync INTEGER NOT NULL DEFAULT 0,
    enable_kernel_crash_dump INTEGER NOT NULL DEFAULT 0,
    is_dpu INTEGER NOT NULL DEFAULT 0,
    address_ttl INTEGER,
    boot_interface_id INTEGER,
    boot_disk_id INTEGER,
    status_message TEXT,
    status_action TEXT,
    status_expires INTEGER,
    bios_boot_method TEXT,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    UNIQUE (hostname, domain_id)
);
CREATE INDEX nodes_status ON nodes(status);
CREATE INDEX nodes_owner ON nodes(owner_id);
CREATE INDEX nodes_status_expires ON nodes(status_expires) WHERE status_expires IS NOT NULL;

CREATE TABLE node_tags (
    node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    tag_id INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
    PRIMARY KEY (node_id, tag_id)
);
CREATE INDEX node_tags_tag ON node_tags(tag_id);

CREATE TABLE interfaces (
    id INTEGER PRIMARY KEY,
    node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    mac_address TEXT,
    vlan_id INTEGER REFERENCES vlans(id) ON DELETE SET NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    params TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '[]',
    vendor TEXT,
    product TEXT,
    firmware_version TEXT,
    link_connected INTEGER NOT NULL DEFAULT 1,
    interface_speed INTEGER NOT NULL DEFAULT 0,
    link_speed INTEGER NOT NULL DEFAULT 0,
    numa_node INTEGER,
    sriov_max_vf INTEGER NOT NULL DEFAULT 0,
    mtu INTEGER NOT NULL DEFAULT 1500,
    UNIQUE (node_id, name)
);
CREATE INDEX interfaces_node ON interfaces(node_id);
-- A MAC belongs to one physical interface; bonds, bridges and VLANs reuse
-- their parent's MAC.
CREATE UNIQUE INDEX interfaces_physical_mac ON interfaces(mac_address) WHERE kind = 'physical';
CREATE INDEX interfaces_mac ON interfaces(mac_address);

CREATE TABLE interface_parents (
    child_id INTEGER NOT NULL REFERENCES interfaces(id) ON DELETE CASCADE,
    parent_id INTEGER NOT NULL REFERENCES interfaces(id) ON DELETE CASCADE,
    node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    PRIMARY KEY (child_id, parent_id)
);
CREATE INDEX interface_parents_node ON interface_parents(node_id);

CREATE TABLE ip_links (
    id INTEGER PRIMARY KEY,
    interface_id INTEGER NOT NULL REFERENCES interfaces(id) ON DELETE CASCADE,
    node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    mode TEXT NOT NULL,
    subnet_id INTEGER REFERENCES subnets(id) ON DELETE SET NULL,
    ip TEXT,
    discovered INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX ip_links_node ON ip_links(node_id);
CREATE INDEX ip_links_subnet ON ip_links(subnet_id);

CREATE TABLE block_devices (
    id INTEGER PRIMARY KEY,
    node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    model TEXT,
    serial TEXT,
    id_path TEXT,
    size INTEGER NOT NULL,
    block_size INTEGER NOT NULL DEFAULT 512,
    tags TEXT NOT NULL DEFAULT '[]',
    uuid TEXT,
    firmware_version TEXT,
    numa_node INTEGER,
    partition_table_type TEXT,
    filesystem TEXT,
    UNIQUE (node_id, name)
);
CREATE INDEX block_devices_node ON block_devices(node_id);

CREATE TABLE partitions (
    id INTEGER PRIMARY KEY,
    block_device_id INTEGER NOT NULL REFERENCES block_devices(id) ON DELETE CASCADE,
    node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    uuid TEXT,
    size INTEGER NOT NULL,
    bootable INTEGER NOT NULL DEFAULT 0,
    tags TEXT NOT NULL DEFAULT '[]',
    filesystem TEXT
);
CREATE INDEX partitions_node ON partitions(node_id);

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    node_id INTEGER REFERENCES nodes(id) ON DELETE SET NULL,
    system_id TEXT,
    hostname TEXT NOT NULL DEFAULT '',
    event_type TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    action TEXT NOT NULL DEFAULT '',
    level INTEGER NOT NULL,
    user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    username TEXT,
    created INTEGER NOT NULL
);
CREATE INDEX events_node ON events(node_id, id);
