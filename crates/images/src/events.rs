//! What an import reports as it goes: the port the region turns into its events (MAAS's
//! `REGION_IMPORT_ERROR`, `REGION_IMPORT_INFO`, ...) and the dashboard's notices.

use std::sync::Mutex;
use std::time::Duration;

use maas_simplestreams::{Sha256, Skipped};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ImportEvent {
    Started {
        sources: usize,
    },
    /// Fetching a source's documents failed and will be tried again.
    SourceRetrying {
        source_id: i64,
        url: String,
        attempt: u32,
        error: String,
        retry_in_ms: u64,
    },
    /// A source failed after every retry; its resources are left as they were.
    SourceFailed {
        source_id: i64,
        url: String,
        error: String,
    },
    Planned {
        resources: usize,
        files_to_download: usize,
        bytes_to_download: u64,
    },
    /// A selected product with nothing importable, or shadowed by a higher-priority source.
    ProductSkipped(Skipped),
    /// A selection matched nothing on its source.
    SelectionUnmatched {
        source_id: i64,
        os: String,
        release: String,
    },
    /// A file could not be fetched or failed its checks after every retry.
    DownloadFailed {
        sha256: Sha256,
        url: String,
        error: String,
    },
    /// A resource's new set is complete and now the one machines boot.
    ResourceImported {
        name: String,
        architecture: String,
        version: String,
    },
    /// A synced resource no selection asks for any more was deleted.
    ResourceRemoved {
        name: String,
        architecture: String,
    },
    Stopped,
    Finished {
        downloaded_files: usize,
        downloaded_bytes: u64,
        failures: usize,
    },
}

impl ImportEvent {
    /// Whether the event reports something that did not happen (MAAS logs these as
    /// `REGION_IMPORT_ERROR`).
    pub fn is_error(&self) -> bool {
        matches!(
            self,
            ImportEvent::SourceFailed { .. } | ImportEvent::DownloadFailed { .. }
        )
    }
}

/// Receives import events; must not block.
pub trait ImportEventSink: Send + Sync {
    fn emit(&self, event: ImportEvent);
}

/// Keeps every event, for tests.
#[derive(Debug, Default)]
pub struct MemoryEvents {
    events: Mutex<Vec<ImportEvent>>,
}

impl MemoryEvents {
    pub fn new() -> MemoryEvents {
        MemoryEvents::default()
    }

    pub fn take(&self) -> Vec<ImportEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl ImportEventSink for MemoryEvents {
    fn emit(&self, event: ImportEvent) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
    }
}

/// Logs events with `tracing` (errors at `error`, the rest at `info`).
#[derive(Debug, Default)]
pub struct TracingEvents;

impl ImportEventSink for TracingEvents {
    fn emit(&self, event: ImportEvent) {
        if event.is_error() {
            tracing::error!(?event, "boot image import");
        } else {
            tracing::info!(?event, "boot image import");
        }
    }
}

pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
