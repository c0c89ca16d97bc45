//! The store conformance suite on SQLite, one fresh database file per case.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use maas_store::Store;

async fn fresh() -> Option<Arc<dyn Store>> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("maas.db");
    // The directory must outlive the test; leak it (the OS temp dir is cleaned up by the system).
    let path = path.to_str().expect("utf-8 path").to_owned();
    std::mem::forget(dir);
    Some(
        maas_store_sql::connect(&path)
            .await
            .expect("open SQLite store"),
    )
}

maas_store_tests::store_suite!(fresh());

#[tokio::test]
async fn reopening_keeps_data_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("maas.db");
    let path = path.to_str().unwrap();
    {
        let store = maas_store_sql::connect(path).await.unwrap();
        store.create_zone("kept", "", 1).await.unwrap();
    }
    let store = maas_store_sql::connect(&format!("sqlite:{path}"))
        .await
        .unwrap();
    assert_eq!(store.backend_name(), "sqlite");
    assert!(store.zone_by_name("kept").await.unwrap().is_some());
}
