//! The region's storage port: the [`Store`] trait the services program
//! against, the records it reads and writes ([`model`]), and [`StoreError`].
//!
//! This crate names no SQL driver: adapters (`maas-store-sql`) implement the
//! trait for SQLite and PostgreSQL and convert their driver errors into
//! [`StoreError`] before they leave the adapter. Business rules (who may do
//! what, which status follows which) live in the region, not here; the store
//! guarantees only what a database can: uniqueness, and conditional writes
//! that let two racing callers never both win.

#![forbid(unsafe_code)]

pub mod boot;
pub mod model;
pub mod rack;

use async_trait::async_trait;

pub use boot::*;
pub use model::*;
pub use rack::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} not found")]
    NotFound { what: String },
    /// A uniqueness rule would be broken, e.g. a second zone with one name.
    #[error("{what} already exists")]
    Conflict { what: String },
    /// A row the store itself wrote can't be read back (a corrupt or foreign database).
    #[error("stored data is invalid: {what}")]
    InvalidData { what: String },
    #[error("database error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    pub fn not_found(what: impl Into<String>) -> StoreError {
        StoreError::NotFound { what: what.into() }
    }

    pub fn conflict(what: impl Into<String>) -> StoreError {
        StoreError::Conflict { what: what.into() }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Users, API tokens and SSH keys.
#[async_trait]
pub trait UserStore: Send + Sync {
    async fn create_user(&self, user: NewUser, now: Millis) -> StoreResult<User>;
    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>>;
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>>;
    /// All users, sorted by username.
    async fn users(&self) -> StoreResult<Vec<User>>;
    async fn user_count(&self) -> StoreResult<i64>;
    async fn set_password(&self, user_id: i64, hash: Secret) -> StoreResult<()>;
    async fn set_last_login(&self, user_id: i64, now: Millis) -> StoreResult<()>;
    /// Deletes a user, first handing their nodes to `transfer_to` if given.
    async fn delete_user(&self, user_id: i64, transfer_to: Option<i64>) -> StoreResult<()>;
    /// How many nodes the user owns.
    async fn owned_node_count(&self, user_id: i64) -> StoreResult<i64>;

    async fn create_token(&self, token: NewToken, now: Millis) -> StoreResult<ApiToken>;
    async fn lookup_token(&self, consumer_key: &str, token_key: &str) -> StoreResult<TokenLookup>;
    /// The user's tokens, oldest first.
    async fn tokens_for_user(&self, user_id: i64) -> StoreResult<Vec<ApiToken>>;
    /// Returns false when the user has no token with that key.
    async fn delete_token(&self, user_id: i64, token_key: &str) -> StoreResult<bool>;
    async fn rename_token(&self, user_id: i64, token_key: &str, name: &str) -> StoreResult<bool>;

    async fn sshkeys(&self, user_id: i64) -> StoreResult<Vec<SshKey>>;
    async fn sshkey(&self, id: i64) -> StoreResult<Option<SshKey>>;
    async fn create_sshkey(&self, user_id: i64, key: &str, keysource: &str) -> StoreResult<SshKey>;
    async fn delete_sshkey(&self, id: i64) -> StoreResult<()>;
}

/// Global configuration values, stored as JSON text.
#[async_trait]
pub trait ConfigStore: Send + Sync {
    async fn config_value(&self, name: &str) -> StoreResult<Option<String>>;
    async fn set_config_value(&self, name: &str, json: &str) -> StoreResult<()>;
}

/// Zones, resource pools, domains and tags.
#[async_trait]
pub trait GroupingStore: Send + Sync {
    /// Zones sorted by name.
    async fn zones(&self) -> StoreResult<Vec<Zone>>;
    async fn zone_by_name(&self, name: &str) -> StoreResult<Option<Zone>>;
    async fn create_zone(&self, name: &str, description: &str, now: Millis) -> StoreResult<Zone>;
    async fn update_zone(&self, id: i64, name: &str, description: &str) -> StoreResult<Zone>;
    /// Deletes a zone; its nodes move to `fallback_zone_id`.
    async fn delete_zone(&self, id: i64, fallback_zone_id: i64) -> StoreResult<()>;

    /// Pools sorted by name.
    async fn pools(&self) -> StoreResult<Vec<ResourcePool>>;
    async fn pool_by_id(&self, id: i64) -> StoreResult<Option<ResourcePool>>;
    async fn pool_by_name(&self, name: &str) -> StoreResult<Option<ResourcePool>>;
    async fn create_pool(
        &self,
        name: &str,
        description: &str,
        now: Millis,
    ) -> StoreResult<ResourcePool>;
    async fn update_pool(
        &self,
        id: i64,
        name: &str,
        description: &str,
    ) -> StoreResult<ResourcePool>;
    async fn delete_pool(&self, id: i64) -> StoreResult<()>;
    async fn pool_node_count(&self, id: i64) -> StoreResult<i64>;

    async fn domains(&self) -> StoreResult<Vec<Domain>>;
    async fn domain_by_id(&self, id: i64) -> StoreResult<Option<Domain>>;
    async fn domain_by_name(&self, name: &str) -> StoreResult<Option<Domain>>;

    /// Tags sorted by name.
    async fn tags(&self) -> StoreResult<Vec<Tag>>;
    async fn tag_by_name(&self, name: &str) -> StoreResult<Option<Tag>>;
    async fn create_tag(&self, tag: Tag) -> StoreResult<Tag>;
    /// Replaces the tag's fields (the id in `tag` is ignored).
    async fn update_tag(&self, id: i64, tag: Tag) -> StoreResult<Tag>;
    async fn delete_tag(&self, id: i64) -> StoreResult<()>;
    /// Adds the tag to and removes it from nodes given by system_id. Unknown
    /// system ids are ignored; the counts say what changed.
    async fn tag_nodes(
        &self,
        tag_id: i64,
        add: &[String],
        remove: &[String],
    ) -> StoreResult<TagChanges>;
}

/// Fabrics, VLANs, spaces, subnets and IP ranges.
#[async_trait]
pub trait NetworkStore: Send + Sync {
    /// Every fabric, VLAN, space and subnet, each sorted by id.
    async fn network_catalog(&self) -> StoreResult<NetworkCatalog>;

    /// Creates a fabric and its untagged VLAN (vid 0). Without a name the
    /// fabric is called `fabric-<id>`.
    async fn create_fabric(
        &self,
        name: Option<&str>,
        description: &str,
        class_type: Option<&str>,
        now: Millis,
    ) -> StoreResult<Fabric>;
    async fn update_fabric(&self, fabric: Fabric) -> StoreResult<Fabric>;
    async fn delete_fabric(&self, id: i64) -> StoreResult<()>;

    async fn create_vlan(
        &self,
        fabric_id: i64,
        fields: VlanFields,
        now: Millis,
    ) -> StoreResult<Vlan>;
    async fn update_vlan(&self, id: i64, fields: VlanFields) -> StoreResult<Vlan>;
    async fn delete_vlan(&self, id: i64) -> StoreResult<()>;

    async fn create_space(&self, name: &str, description: &str, now: Millis) -> StoreResult<Space>;
    async fn update_space(&self, space: Space) -> StoreResult<Space>;
    async fn delete_space(&self, id: i64) -> StoreResult<()>;

    async fn create_subnet(&self, fields: SubnetFields, now: Millis) -> StoreResult<Subnet>;
    async fn update_subnet(&self, id: i64, fields: SubnetFields) -> StoreResult<Subnet>;
    async fn delete_subnet(&self, id: i64) -> StoreResult<()>;

    /// IP ranges sorted by id.
    async fn ip_ranges(&self) -> StoreResult<Vec<IpRange>>;
    async fn create_ip_range(&self, fields: IpRangeFields, now: Millis) -> StoreResult<IpRange>;
    async fn update_ip_range(&self, id: i64, fields: IpRangeFields) -> StoreResult<IpRange>;
    async fn delete_ip_range(&self, id: i64) -> StoreResult<()>;
}

/// Nodes (machines, devices, controllers) and their hardware.
#[async_trait]
pub trait NodeStore: Send + Sync {
    /// Creates the node and one physical interface per MAC (the first is the
    /// boot interface). Conflict when the system_id, the hostname in its
    /// domain, or a MAC is taken.
    async fn create_node(&self, node: NewNode) -> StoreResult<Node>;
    async fn node_by_system_id(&self, system_id: &str) -> StoreResult<Option<Node>>;
    /// The node that has an interface with this MAC.
    async fn node_by_mac(&self, mac: &str) -> StoreResult<Option<Node>>;
    /// Up to `limit` nodes matching `filter` with internal id above
    /// `after_id`, in id order. Callers page through large sets with this.
    async fn nodes(&self, filter: &NodeFilter, after_id: i64, limit: i64)
    -> StoreResult<Vec<Node>>;
    /// Like `nodes`, but smallest first (cores + GiB of memory, then id), paged
    /// by offset: the order allocation picks machines in.
    async fn nodes_by_size(
        &self,
        filter: &NodeFilter,
        offset: i64,
        limit: i64,
    ) -> StoreResult<Vec<Node>>;
    async fn update_node(&self, id: i64, update: NodeUpdate) -> StoreResult<()>;
    /// Writes a status change if its preconditions still hold; false if not.
    async fn change_status(&self, id: i64, change: StatusChange) -> StoreResult<bool>;
    async fn delete_node(&self, id: i64) -> StoreResult<()>;
    /// Which of these MACs already belong to an interface.
    async fn macs_in_use(&self, macs: &[String]) -> StoreResult<Vec<String>>;
    /// Replaces the node's hardware: CPU, memory, interfaces, block devices.
    async fn set_inventory(&self, id: i64, inventory: Inventory, now: Millis) -> StoreResult<()>;

    /// Records an event; a status event also becomes the node's status message.
    async fn create_event(&self, event: NewEvent) -> StoreResult<i64>;
    /// Matching events, newest first.
    async fn events(&self, query: &EventQuery) -> StoreResult<Vec<Event>>;
}

/// Scripts, script results and node metadata tokens.
#[async_trait]
pub trait ScriptStore: Send + Sync {
    /// Creates a script, or replaces the one with the same name.
    async fn upsert_script(&self, script: Script, now: Millis) -> StoreResult<Script>;
    /// All scripts, sorted by name.
    async fn scripts(&self) -> StoreResult<Vec<Script>>;
    async fn script_by_name(&self, name: &str) -> StoreResult<Option<Script>>;
    async fn delete_script(&self, id: i64) -> StoreResult<()>;

    /// Creates a script set with its results and makes it the node's current
    /// set of that result type.
    async fn create_script_set(
        &self,
        node_id: i64,
        result_type: i64,
        results: Vec<NewScriptResult>,
        now: Millis,
    ) -> StoreResult<ScriptSet>;
    /// A set with its results; output blobs only when `with_output`.
    async fn script_set(&self, id: i64, with_output: bool) -> StoreResult<Option<ScriptSet>>;
    /// The node's sets, newest first, without output blobs.
    async fn script_sets(&self, node_id: i64) -> StoreResult<Vec<ScriptSet>>;
    async fn add_script_result(
        &self,
        set_id: i64,
        result: NewScriptResult,
        now: Millis,
    ) -> StoreResult<ScriptResult>;
    async fn update_script_result(&self, id: i64, update: ScriptResultUpdate) -> StoreResult<()>;
    /// Records that the node was heard from while running this set.
    async fn touch_script_set(&self, set_id: i64, now: Millis) -> StoreResult<()>;
    /// Moves results of these sets whose status is one of `from` to `to`.
    async fn set_result_statuses(
        &self,
        set_ids: &[i64],
        from: &[i64],
        to: i64,
        now: Millis,
    ) -> StoreResult<u64>;

    async fn node_token(&self, node_id: i64) -> StoreResult<Option<NodeToken>>;
    /// Stores a node's token, replacing any it had.
    async fn set_node_token(&self, token: NodeToken, now: Millis) -> StoreResult<()>;
    async fn delete_node_token(&self, node_id: i64) -> StoreResult<()>;
    /// The token with this key and its node.
    async fn node_by_token(&self, token_key: &str) -> StoreResult<Option<(NodeToken, Node)>>;

    /// Nodes whose `status_expires` is at or before `now`.
    async fn expired_nodes(&self, now: Millis) -> StoreResult<Vec<ExpiredNode>>;
    /// Machines whose power type can report a power state (neither unset nor `manual`),
    /// for the power poller: one query, without the nodes' relations.
    async fn power_polled_nodes(&self) -> StoreResult<Vec<PowerPolledNode>>;
    /// Nodes in one of `statuses` with no status timer whose current script
    /// set of `result_type` was last heard from before `cutoff`.
    async fn silent_nodes(
        &self,
        statuses: &[maas_domain::NodeStatus],
        result_type: i64,
        cutoff: Millis,
    ) -> StoreResult<Vec<ExpiredNode>>;
}

/// Dashboard login sessions (api.md §2.7), keyed by a hash of the session key.
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_session(&self, session: Session) -> StoreResult<()>;
    /// The session with this key hash and its user, if it has not expired
    /// by `now`.
    async fn session(&self, key_hash: &str, now: Millis) -> StoreResult<Option<(Session, User)>>;
    /// Returns false when there was no such session.
    async fn delete_session(&self, key_hash: &str) -> StoreResult<bool>;
    /// Removes every session that expired at or before `now`.
    async fn delete_expired_sessions(&self, now: Millis) -> StoreResult<u64>;
    /// Removes every session of a user (on a password change, say).
    async fn delete_user_sessions(&self, user_id: i64) -> StoreResult<u64>;
}

/// Node listings as the dashboard pages them: sorted, grouped and counted
/// in the database, so a page of 10,000 machines costs one page of rows.
#[async_trait]
pub trait NodeListingStore: Send + Sync {
    /// Up to `limit` matching nodes from `offset`, in the query's order (the
    /// group column first, then the sort column, then the internal id).
    async fn node_page(&self, query: &NodeQuery, offset: i64, limit: i64)
    -> StoreResult<Vec<Node>>;
    /// How many nodes match the query's filter and text.
    async fn node_count(&self, query: &NodeQuery) -> StoreResult<i64>;
    /// Matching nodes per value of `group`, in the order `node_page` lists
    /// the groups (ascending).
    async fn node_group_counts(
        &self,
        query: &NodeQuery,
        group: NodeGroup,
    ) -> StoreResult<Vec<NodeGroupCount>>;
}

/// Everything the region stores. Held as `Arc<dyn Store>`.
#[async_trait]
pub trait Store:
    UserStore
    + ConfigStore
    + GroupingStore
    + NetworkStore
    + NodeStore
    + ScriptStore
    + SessionStore
    + NodeListingStore
    + RackStore
    + BootResourceStore
{
    /// Which backend this is (`sqlite` or `postgres`), for logs and health.
    fn backend_name(&self) -> &'static str;
    /// Cheap round trip to the database.
    async fn ping(&self) -> StoreResult<()>;
}

/// Ids of the rows every database starts with.
pub mod defaults {
    pub const DEFAULT_ZONE_ID: i64 = 1;
    pub const DEFAULT_POOL_ID: i64 = 0;
    pub const DEFAULT_DOMAIN_ID: i64 = 0;
    pub const DEFAULT_FABRIC_ID: i64 = 0;
    pub const DEFAULT_VLAN_ID: i64 = 5001;
}
