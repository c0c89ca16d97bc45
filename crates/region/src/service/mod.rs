//! Services: the region's business rules, called by the REST handlers and
//! the dashboard. They take typed inputs and the calling user, and
//! return records or a `ServiceError`; they know nothing of HTTP.

pub mod allocation;
pub mod boot;
pub mod config;
pub mod grouping;
pub mod images;
pub mod inventory;
pub mod lifecycle;
pub mod machine_actions;
pub mod machine_search;
pub mod machines;
pub mod metadata;
pub mod network;
pub mod power_poll;
pub mod racks;
pub mod scripts;
pub mod timers;
pub mod users;

use maas_store::StoreError;

use crate::error::ServiceError;

/// Maps a store conflict on `field` to MAAS's form error for a duplicate.
pub(crate) fn duplicate(error: StoreError, field: &str, message: &str) -> ServiceError {
    match error {
        StoreError::Conflict { .. } => ServiceError::field(field, message),
        other => ServiceError::Store(other),
    }
}
