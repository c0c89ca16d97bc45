//! SQLite and PostgreSQL implementations of the `maas-store` traits.
//!
//! One body of SQL (`shared.rs`) is compiled twice, once per backend, with
//! `Db` naming the sqlx database type: the queries are written in the subset
//! both databases accept (`$1` placeholders, `RETURNING`, `ON CONFLICT`),
//! and dynamic filters are built with sqlx's `QueryBuilder`, which emits each
//! backend's own placeholders. The schemas differ only in types and id
//! generation (`migrations/sqlite`, `migrations/postgres`).
//!
//! sqlx types never leave this crate: every error becomes a `StoreError`.
//! SQLite runs in WAL mode with one writer connection (writes queue in
//! process instead of failing with SQLITE_BUSY) and a pool of readers.

#![forbid(unsafe_code)]

use std::sync::Arc;

use maas_store::{Store, StoreError};

mod convert;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// Opens the database named by `url`, creating and migrating it as needed.
///
/// `postgres://…` and `postgresql://…` select PostgreSQL; `sqlite:PATH` or a
/// bare file path selects SQLite (the file is created if missing).
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        {
            let store = postgres::PostgresStore::connect(url).await?;
            return Ok(Arc::new(store));
        }
        #[cfg(not(feature = "postgres"))]
        return Err(StoreError::Backend(
            "built without PostgreSQL support".into(),
        ));
    }
    #[cfg(feature = "sqlite")]
    {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"));
        let store = sqlite::SqliteStore::open(path.unwrap_or(url)).await?;
        Ok(Arc::new(store))
    }
    #[cfg(not(feature = "sqlite"))]
    Err(StoreError::Backend("built without SQLite support".into()))
}

/// Removes the password from a database URL, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:****{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://maas:secret@db:5432/maas"),
            "postgres://maas:****@db:5432/maas"
        );
        assert_eq!(
            redact_url("postgres://maas@db/maas"),
            "postgres://maas@db/maas"
        );
        assert_eq!(redact_url("/var/lib/maas/maas.db"), "/var/lib/maas/maas.db");
    }
}
