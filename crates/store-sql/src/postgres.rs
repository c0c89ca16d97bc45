//! The PostgreSQL backend, for installs with several region controllers.

use std::time::Duration;

use maas_store::StoreError;
use sqlx::Pool;
use sqlx::postgres::PgPoolOptions;

use crate::convert;

type Db = sqlx::Postgres;
type StoreImpl = PostgresStore;
/// JSON functions for aggregating rows (see `fill_nodes`).
const JSON_ARRAY: &str = "json_build_array";
const JSON_AGG: &str = "json_agg";
const BACKEND: &str = "postgres";

/// One pool serves reads and writes; PostgreSQL handles concurrent writers.
pub struct PostgresStore {
    read: Pool<Db>,
    write: Pool<Db>,
}

impl PostgresStore {
    /// Connects to `url` and applies any missing migrations.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await
            .map_err(convert::backend)?;
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(PostgresStore {
            read: pool.clone(),
            write: pool,
        })
    }
}

include!("shared.rs");
include!("shared_racks.rs");
