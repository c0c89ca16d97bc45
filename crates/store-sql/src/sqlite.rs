//! The SQLite backend: one database file in WAL mode.

use std::str::FromStr;
use std::time::Duration;

use maas_store::StoreError;
use sqlx::Pool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::convert;

type Db = sqlx::Sqlite;
type StoreImpl = SqliteStore;
/// JSON functions for aggregating rows (see `fill_nodes`).
const JSON_ARRAY: &str = "json_array";
const JSON_AGG: &str = "json_group_array";
const BACKEND: &str = "sqlite";

/// Readers share a pool; writes go through one connection so they queue in
/// process rather than fail with SQLITE_BUSY.
pub struct SqliteStore {
    read: Pool<Db>,
    write: Pool<Db>,
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database file at `path`.
    pub async fn open(path: &str) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .map_err(convert::backend)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // 2 MiB of page cache per connection (nine of them): the OS page
            // cache holds the rest, and memory stays flat with fleet size.
            .pragma("cache_size", "-2048")
            .pragma("temp_store", "memory");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(convert::backend)?;
        sqlx::migrate!("migrations/sqlite")
            .run(&write)
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await
            .map_err(convert::backend)?;
        Ok(SqliteStore { read, write })
    }
}

include!("shared.rs");
include!("shared_racks.rs");
