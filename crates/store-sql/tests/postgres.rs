//! The store conformance suite on PostgreSQL, one fresh database per case.
//!
//! Needs `TEST_POSTGRES_URL` (a URL whose user may create databases, e.g.
//! `postgres://maas:maas@127.0.0.1/postgres`); `scripts/test` starts a
//! server and sets it. Without it the cases skip loudly, except under CI.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use maas_store::Store;
use sqlx::Connection;

static COUNTER: AtomicU32 = AtomicU32::new(0);

async fn fresh() -> Option<Arc<dyn Store>> {
    let Ok(admin_url) = std::env::var("TEST_POSTGRES_URL") else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "TEST_POSTGRES_URL is not set, and CI=true: the PostgreSQL store suite must run"
            );
        }
        eprintln!(
            "SKIPPED: PostgreSQL store suite: TEST_POSTGRES_URL is not set (scripts/test sets it)"
        );
        return None;
    };
    let name = format!(
        "maas_test_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect to TEST_POSTGRES_URL");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut admin)
        .await
        .expect("drop old test database");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let url = match admin_url.rfind('/') {
        Some(slash) if slash > "postgres://".len() => format!("{}/{name}", &admin_url[..slash]),
        _ => panic!("TEST_POSTGRES_URL must name a database: {admin_url}"),
    };
    let store = maas_store_sql::connect(&url)
        .await
        .expect("open PostgreSQL store");
    assert_eq!(store.backend_name(), "postgres");
    Some(store)
}

maas_store_tests::store_suite!(fresh());
