//! The import: fetch each source's index and product lists (verified), plan, record the new
//! sets, download what the store lacks with bounded concurrency and resumption, then retire
//! sets a complete newer one replaces and files nothing refers to.
//!
//! Invariants: a resource's last complete set stays until a newer set of it is complete; a
//! file is in the store only after its size and sha256 checked out; a source that fails
//! leaves its resources untouched; one import runs at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use maas_simplestreams::{
    BootloaderSelection, Download, Index, OpenError, Plan, PlannedResource, ProductList, Sha256,
    SourceProducts, StreamLocation, StreamPath, Trust, needs_detached_signature, open_document,
    plan,
};
use serde::Serialize;
use thiserror::Error;
use tokio::sync::{Semaphore, watch};
use tracing::{Instrument, debug, info, warn};

use crate::catalog::{
    BootResourceCatalog, CatalogError, NewBootResource, NewBootResourceFile, ResourceDetail,
    ResourceType,
};
use crate::content_store::{ContentStore, StoreError};
use crate::events::{ImportEvent, ImportEventSink, millis};
use crate::fetch::{FetchConfig, FetchError, Fetcher};
use crate::source::BootSource;

/// How failed fetches are retried: `attempts` tries in all, waiting `initial_backoff`,
/// then twice as long each time, up to `max_backoff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl RetryPolicy {
    fn backoff(&self, failed_attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(failed_attempts.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImporterConfig {
    /// Files downloaded at once.
    pub max_concurrent_downloads: usize,
    pub retry: RetryPolicy,
    pub fetch: FetchConfig,
    /// Bootloaders imported without a selection.
    pub bootloaders: Vec<BootloaderSelection>,
}

impl Default for ImporterConfig {
    fn default() -> ImporterConfig {
        ImporterConfig {
            max_concurrent_downloads: 4,
            retry: RetryPolicy::default(),
            fetch: FetchConfig::default(),
            bootloaders: BootloaderSelection::defaults(),
        }
    }
}

#[derive(Debug, Error)]
pub enum ImportError {
    #[error("an import is already running")]
    AlreadyImporting,
    #[error("setting up the importer's HTTP client")]
    Client(#[source] FetchError),
    #[error("boot resource catalog failed")]
    Catalog(#[from] CatalogError),
    #[error("image store failed")]
    Store(#[from] StoreError),
}

/// Why a source produced nothing.
#[derive(Debug, Error)]
pub enum SourceError {
    #[error("boot source URL is unusable")]
    Location(#[source] maas_simplestreams::LocationError),
    #[error("boot source keyring is unusable")]
    Keyring(#[source] crate::source::SourceKeyringError),
    #[error("fetching {url}")]
    Fetch {
        url: String,
        #[source]
        source: FetchError,
    },
    #[error("{url} does not exist")]
    Missing { url: String },
    #[error("{url} is refused")]
    Signature {
        url: String,
        #[source]
        source: OpenError,
    },
    #[error("{url} is not a valid simplestreams document")]
    Document {
        url: String,
        #[source]
        source: maas_simplestreams::DocumentError,
    },
    #[error("stopped")]
    Stopped,
}

impl SourceError {
    /// Failures that another attempt can fix; a bad signature or keyring cannot.
    fn is_retryable(&self) -> bool {
        matches!(self, SourceError::Fetch { .. })
    }
}

/// Bytes done and total of one file being downloaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FileProgress {
    pub done: u64,
    pub total: u64,
}

impl FileProgress {
    /// MAAS's `progress`: a percentage.
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            100.0
        } else {
            (self.done as f64 * 100.0) / self.total as f64
        }
    }
}

/// What an import is doing now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportProgress {
    pub importing: bool,
    /// Files of the running import's downloads, by hash.
    pub files: BTreeMap<Sha256, FileProgress>,
}

impl ImportProgress {
    /// Bytes done and total over the given files (a set's or a resource's); files not being
    /// downloaded count as done when `complete`.
    pub fn over<'a>(
        &self,
        files: impl IntoIterator<Item = (&'a Sha256, u64, bool)>,
    ) -> FileProgress {
        files
            .into_iter()
            .fold(FileProgress::default(), |sum, (sha256, size, complete)| {
                let done = match self.files.get(sha256) {
                    Some(progress) => progress.done.min(size),
                    None if complete => size,
                    None => 0,
                };
                FileProgress {
                    done: sum.done.saturating_add(done),
                    total: sum.total.saturating_add(size),
                }
            })
    }
}

/// The result of one import.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub failed_sources: Vec<i64>,
    pub downloaded_files: usize,
    pub downloaded_bytes: u64,
    pub failed_files: Vec<Sha256>,
    /// Resources whose newest planned set is complete now, as (name, architecture, version).
    pub complete: Vec<(String, String, String)>,
    /// Resources whose planned set is still incomplete.
    pub incomplete: Vec<(String, String, String)>,
    pub removed_resources: Vec<(String, String)>,
    pub removed_files: usize,
    pub stopped: bool,
}

/// The importer. Hold it in an `Arc`; `import` runs in the caller's task (spawn it), while
/// `is_importing`, `progress` and `stop` may be called from anywhere.
pub struct Importer {
    config: ImporterConfig,
    store: ContentStore,
    catalog: Arc<dyn BootResourceCatalog>,
    events: Arc<dyn ImportEventSink>,
    fetcher: Arc<Fetcher>,
    importing: AtomicBool,
    stop: watch::Sender<bool>,
    progress: Arc<Mutex<BTreeMap<Sha256, FileProgress>>>,
}

/// Clears the importing flag when an import ends, however it ends.
struct Running<'a>(&'a Importer);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        lock(&self.0.progress).clear();
        self.0.importing.store(false, Ordering::SeqCst);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Progress is plain data; a panicked writer leaves it usable.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl Importer {
    pub fn new(
        config: ImporterConfig,
        store: ContentStore,
        catalog: Arc<dyn BootResourceCatalog>,
        events: Arc<dyn ImportEventSink>,
    ) -> Result<Importer, ImportError> {
        let fetcher = Fetcher::new(config.fetch.clone()).map_err(ImportError::Client)?;
        Ok(Importer {
            config,
            store,
            catalog,
            events,
            fetcher: Arc::new(fetcher),
            importing: AtomicBool::new(false),
            stop: watch::channel(false).0,
            progress: Arc::new(Mutex::new(BTreeMap::new())),
        })
    }

    pub fn store(&self) -> &ContentStore {
        &self.store
    }

    /// `boot-resources/?op=is_importing`.
    pub fn is_importing(&self) -> bool {
        self.importing.load(Ordering::SeqCst)
    }

    /// `boot-resources/?op=stop_import`: the running import stops at its next chunk, keeping
    /// partial downloads for the next one. No effect when nothing runs.
    pub fn stop(&self) {
        if self.is_importing() {
            self.stop.send_replace(true);
        }
    }

    pub fn progress(&self) -> ImportProgress {
        ImportProgress {
            importing: self.is_importing(),
            files: lock(&self.progress).clone(),
        }
    }

    /// `boot-resources/?op=import`: imports what `sources` select.
    pub async fn import(&self, sources: &[BootSource]) -> Result<ImportReport, ImportError> {
        if self
            .importing
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Err(ImportError::AlreadyImporting);
        }
        let _running = Running(self);
        self.stop.send_replace(false);
        let span = tracing::info_span!("boot_image_import", sources = sources.len());
        self.run(sources).instrument(span).await
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    async fn run(&self, sources: &[BootSource]) -> Result<ImportReport, ImportError> {
        self.events.emit(ImportEvent::Started {
            sources: sources.len(),
        });
        let mut report = ImportReport::default();
        let mut fetched: Vec<(&BootSource, StreamLocation, Vec<ProductList>)> = Vec::new();
        for source in sources {
            match self.fetch_source_with_retry(source).await {
                Ok((location, lists)) => fetched.push((source, location, lists)),
                Err(SourceError::Stopped) => {
                    report.stopped = true;
                    break;
                }
                Err(error) => {
                    let error = error_chain(&error);
                    warn!(source_id = source.id, url = %source.url, %error, "boot source failed");
                    self.events.emit(ImportEvent::SourceFailed {
                        source_id: source.id,
                        url: source.url.clone(),
                        error,
                    });
                    report.failed_sources.push(source.id);
                }
            }
        }
        let inputs: Vec<SourceProducts<'_>> = fetched
            .iter()
            .map(|(source, _, lists)| SourceProducts {
                source_id: source.id,
                priority: source.priority,
                lists,
                selections: &source.selections,
            })
            .collect();
        let plan = plan(&inputs, &self.config.bootloaders);
        self.report_plan(&plan, sources);

        let targets = self.record_sets(&plan).await?;
        let mut stored = BTreeSet::new();
        for resource in &plan.resources {
            for file in &resource.files {
                if self.store.has(&file.sha256, file.size).await {
                    stored.insert(file.sha256.clone());
                }
            }
        }
        // Content that is already here (an earlier import, an upload) completes its files.
        for sha256 in &stored {
            self.catalog.set_complete(sha256, true).await?;
        }
        let downloads = plan.downloads(|sha256| stored.contains(sha256));
        self.events.emit(ImportEvent::Planned {
            resources: plan.resources.len(),
            files_to_download: downloads.len(),
            bytes_to_download: downloads.iter().map(|d| d.size).sum(),
        });
        info!(
            resources = plan.resources.len(),
            downloads = downloads.len(),
            "boot image import planned"
        );
        if !report.stopped {
            let locations: BTreeMap<i64, StreamLocation> = fetched
                .iter()
                .map(|(source, location, _)| (source.id, location.clone()))
                .collect();
            self.download_all(downloads, &locations, &mut report)
                .await?;
        }
        report.stopped |= self.stopped();

        self.retire(&plan, &targets, &mut report).await?;
        if report.stopped {
            self.events.emit(ImportEvent::Stopped);
        }
        self.events.emit(ImportEvent::Finished {
            downloaded_files: report.downloaded_files,
            downloaded_bytes: report.downloaded_bytes,
            failures: report.failed_sources.len() + report.failed_files.len(),
        });
        info!(
            downloaded_files = report.downloaded_files,
            downloaded_bytes = report.downloaded_bytes,
            failed_sources = report.failed_sources.len(),
            failed_files = report.failed_files.len(),
            stopped = report.stopped,
            "boot image import finished"
        );
        Ok(report)
    }

    fn report_plan(&self, plan: &Plan, sources: &[BootSource]) {
        for skipped in &plan.skipped {
            debug!(product = %skipped.product, reason = ?skipped.reason, "product skipped");
            self.events
                .emit(ImportEvent::ProductSkipped(skipped.clone()));
        }
        for (source_id, index) in &plan.unmatched {
            if let Some(selection) = sources
                .iter()
                .find(|source| source.id == *source_id)
                .and_then(|source| source.selections.get(*index))
            {
                self.events.emit(ImportEvent::SelectionUnmatched {
                    source_id: *source_id,
                    os: selection.os.clone(),
                    release: selection.release.clone(),
                });
            }
        }
    }

    async fn fetch_source_with_retry(
        &self,
        source: &BootSource,
    ) -> Result<(StreamLocation, Vec<ProductList>), SourceError> {
        let retry = self.config.retry;
        let mut attempt = 1;
        loop {
            match self.fetch_source(source).await {
                Ok(fetched) => return Ok(fetched),
                Err(error) if error.is_retryable() && attempt < retry.attempts => {
                    let wait = retry.backoff(attempt);
                    let message = error_chain(&error);
                    warn!(source_id = source.id, attempt, error = %message, "boot source fetch failed; retrying");
                    self.events.emit(ImportEvent::SourceRetrying {
                        source_id: source.id,
                        url: source.url.clone(),
                        attempt,
                        error: message,
                        retry_in_ms: millis(wait),
                    });
                    if self.sleep_or_stop(wait).await {
                        return Err(SourceError::Stopped);
                    }
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Waits, returning early with `true` when a stop is requested.
    async fn sleep_or_stop(&self, wait: Duration) -> bool {
        let mut stop = self.stop.subscribe();
        if *stop.borrow() {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => false,
            _ = stop.wait_for(|stopped| *stopped) => true,
        }
    }

    async fn fetch_source(
        &self,
        source: &BootSource,
    ) -> Result<(StreamLocation, Vec<ProductList>), SourceError> {
        let location = StreamLocation::parse(&source.url).map_err(SourceError::Location)?;
        let verifier = source.verifier().await.map_err(SourceError::Keyring)?;
        let trust = match &verifier {
            Some(verifier) => Trust::Verify(verifier.as_ref()),
            None => Trust::Unverified,
        };
        let index_text = self
            .fetch_document(&location, &location.index, trust)
            .await?;
        let index_url = location.url_of(&location.index);
        let index = Index::parse(&index_text).map_err(|source| SourceError::Document {
            url: index_url.clone(),
            source,
        })?;
        for (content_id, error) in &index.invalid {
            warn!(url = %index_url, content_id, %error, "index entry ignored");
        }
        let mut lists = Vec::new();
        for entry in index.product_lists() {
            let text = self.fetch_document(&location, &entry.path, trust).await?;
            let list = ProductList::parse(&text).map_err(|source| SourceError::Document {
                url: location.url_of(&entry.path),
                source,
            })?;
            lists.push(list);
        }
        debug!(
            source_id = source.id,
            lists = lists.len(),
            "boot source fetched"
        );
        Ok((location, lists))
    }

    async fn fetch_document(
        &self,
        location: &StreamLocation,
        path: &StreamPath,
        trust: Trust<'_>,
    ) -> Result<Vec<u8>, SourceError> {
        let url = location.url_of(path);
        let fetch_error = |source| SourceError::Fetch {
            url: url.clone(),
            source,
        };
        if self.stopped() {
            return Err(SourceError::Stopped);
        }
        let content = self
            .fetcher
            .document(&url)
            .await
            .map_err(fetch_error)?
            .ok_or_else(|| SourceError::Missing { url: url.clone() })?;
        let detached = if needs_detached_signature(path.as_str(), trust) {
            let signature_url = format!("{url}.gpg");
            self.fetcher
                .document(&signature_url)
                .await
                .map_err(|source| SourceError::Fetch {
                    url: signature_url,
                    source,
                })?
        } else {
            None
        };
        open_document(path.as_str(), &content, detached.as_deref(), trust).map_err(|source| {
            SourceError::Signature {
                url: url.clone(),
                source,
            }
        })
    }

    /// Creates (or finds) each planned resource and its set with its files, so progress and
    /// the API see the set while it downloads.
    async fn record_sets(
        &self,
        plan: &Plan,
    ) -> Result<Vec<(i64, i64, PlannedResource)>, ImportError> {
        let mut targets = Vec::new();
        for planned in &plan.resources {
            let resource = match self
                .catalog
                .find_resource(ResourceType::Synced, &planned.name, &planned.architecture)
                .await?
            {
                Some(mut resource) => {
                    if resource.extra != planned.extra
                        || resource.kflavor != planned.kflavor
                        || resource.bootloader_type != planned.bootloader_type
                    {
                        resource.extra = planned.extra.clone();
                        resource.kflavor = planned.kflavor.clone();
                        resource.bootloader_type = planned.bootloader_type.clone();
                        self.catalog.update_resource(&resource).await?;
                    }
                    resource
                }
                None => {
                    self.catalog
                        .create_resource(NewBootResource {
                            rtype: ResourceType::Synced,
                            name: planned.name.clone(),
                            architecture: planned.architecture.clone(),
                            kflavor: planned.kflavor.clone(),
                            bootloader_type: planned.bootloader_type.clone(),
                            base_image: None,
                            extra: planned.extra.clone(),
                        })
                        .await?
                }
            };
            let sets = self.catalog.sets(resource.id).await?;
            let set = match sets.into_iter().find(|set| set.version == planned.version) {
                Some(set) => set,
                None => {
                    self.catalog
                        .create_set(resource.id, &planned.version, &planned.label)
                        .await?
                }
            };
            let existing: BTreeSet<String> = self
                .catalog
                .files(set.id)
                .await?
                .into_iter()
                .map(|file| file.filename)
                .collect();
            for file in &planned.files {
                if existing.contains(&file.filename) {
                    continue;
                }
                let complete = self.store.has(&file.sha256, file.size).await;
                self.catalog
                    .add_file(
                        set.id,
                        NewBootResourceFile {
                            filename: file.filename.clone(),
                            filetype: file.filetype.clone(),
                            sha256: file.sha256.clone(),
                            size: file.size,
                            extra: file.extra.clone(),
                            complete,
                        },
                    )
                    .await?;
            }
            targets.push((resource.id, set.id, planned.clone()));
        }
        Ok(targets)
    }

    async fn download_all(
        &self,
        downloads: Vec<Download>,
        locations: &BTreeMap<i64, StreamLocation>,
        report: &mut ImportReport,
    ) -> Result<(), ImportError> {
        {
            let mut progress = lock(&self.progress);
            for download in &downloads {
                progress.insert(
                    download.sha256.clone(),
                    FileProgress {
                        done: 0,
                        total: download.size,
                    },
                );
            }
        }
        let slots = Arc::new(Semaphore::new(self.config.max_concurrent_downloads.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for download in downloads {
            let Some(location) = locations.get(&download.source_id) else {
                continue;
            };
            let url = location.url_of(&download.path);
            let job = DownloadJob {
                fetcher: Arc::clone(&self.fetcher),
                store: self.store.clone(),
                progress: Arc::clone(&self.progress),
                stop: self.stop.subscribe(),
                retry: self.config.retry,
                url,
                download,
            };
            let slots = Arc::clone(&slots);
            tasks.spawn(async move {
                // The semaphore is never closed, so acquiring only waits.
                let _slot = slots.acquire_owned().await;
                let outcome = job.run().await;
                (job.download, job.url, outcome)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let Ok((download, url, outcome)) = joined else {
                continue;
            };
            match outcome {
                Ok(()) => {
                    report.downloaded_files += 1;
                    report.downloaded_bytes += download.size;
                    self.catalog.set_complete(&download.sha256, true).await?;
                    debug!(sha256 = %download.sha256, url, "boot file stored");
                }
                Err(FetchError::Stopped) => report.stopped = true,
                Err(error) => {
                    let error = error_chain(&error);
                    warn!(sha256 = %download.sha256, url, %error, "boot file download failed");
                    self.events.emit(ImportEvent::DownloadFailed {
                        sha256: download.sha256.clone(),
                        url,
                        error,
                    });
                    report.failed_files.push(download.sha256);
                }
            }
        }
        Ok(())
    }

    /// Once a resource's planned set is complete, its other sets go; synced resources no
    /// selection asks for go when every source answered; then unreferenced files go.
    async fn retire(
        &self,
        plan: &Plan,
        targets: &[(i64, i64, PlannedResource)],
        report: &mut ImportReport,
    ) -> Result<(), ImportError> {
        for (resource_id, set_id, planned) in targets {
            let Some(resource) = self.catalog.resource(*resource_id).await? else {
                continue;
            };
            let detail = ResourceDetail::load(self.catalog.as_ref(), resource).await?;
            let Some(target) = detail.sets.iter().find(|set| set.set.id == *set_id) else {
                continue;
            };
            let key = (
                planned.name.clone(),
                planned.architecture.clone(),
                planned.version.clone(),
            );
            if !target.complete() {
                report.incomplete.push(key);
                continue;
            }
            let others: Vec<i64> = detail
                .sets
                .iter()
                .filter(|set| set.set.id != *set_id)
                .map(|set| set.set.id)
                .collect();
            let newly = !others.is_empty();
            for other in others {
                self.catalog.delete_set(other).await?;
            }
            if newly || report.downloaded_files > 0 {
                self.events.emit(ImportEvent::ResourceImported {
                    name: planned.name.clone(),
                    architecture: planned.architecture.clone(),
                    version: planned.version.clone(),
                });
            }
            report.complete.push(key);
        }
        if report.failed_sources.is_empty() && !report.stopped {
            let wanted: BTreeSet<(&str, &str)> = plan
                .resources
                .iter()
                .map(|r| (r.name.as_str(), r.architecture.as_str()))
                .collect();
            for resource in self.catalog.resources().await? {
                if resource.rtype == ResourceType::Synced
                    && !wanted.contains(&(resource.name.as_str(), resource.architecture.as_str()))
                {
                    self.catalog.delete_resource(resource.id).await?;
                    info!(name = %resource.name, architecture = %resource.architecture, "boot resource no longer selected; removed");
                    self.events.emit(ImportEvent::ResourceRemoved {
                        name: resource.name.clone(),
                        architecture: resource.architecture.clone(),
                    });
                    report
                        .removed_resources
                        .push((resource.name, resource.architecture));
                }
            }
        }
        let referenced = self.catalog.referenced().await?;
        report.removed_files = self.store.retain(&referenced).await?.len();
        Ok(())
    }
}

struct DownloadJob {
    fetcher: Arc<Fetcher>,
    store: ContentStore,
    progress: Arc<Mutex<BTreeMap<Sha256, FileProgress>>>,
    stop: watch::Receiver<bool>,
    retry: RetryPolicy,
    url: String,
    download: Download,
}

impl DownloadJob {
    async fn run(&self) -> Result<(), FetchError> {
        let sha256 = &self.download.sha256;
        let report = |done: u64| {
            if let Some(entry) = lock(&self.progress).get_mut(sha256) {
                entry.done = done;
            }
        };
        let mut attempt = 1;
        loop {
            let result = self
                .fetcher
                .download(
                    &self.url,
                    &self.store,
                    sha256,
                    self.download.size,
                    &report,
                    &self.stop,
                )
                .await;
            match result {
                Ok(()) => return Ok(()),
                Err(FetchError::Stopped) => return Err(FetchError::Stopped),
                Err(error) if attempt < self.retry.attempts => {
                    let wait = self.retry.backoff(attempt);
                    debug!(url = %self.url, attempt, error = %error_chain(&error), "boot file download failed; retrying");
                    let mut stop = self.stop.clone();
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = stop.wait_for(|stopped| *stopped) => return Err(FetchError::Stopped),
                    }
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// An error with its sources, `: `-separated, for events and logs.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
