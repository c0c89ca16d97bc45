//! Boot images on the region: boot resources (imported and uploaded), boot sources and
//! their selections, the importer running in the background, the files racks fetch, and
//! the check deploy makes that an image exists.
//!
//! `maas-images` does the work (importer, uploads, content store, JSON of api.md §12.1);
//! this module implements its ports on the region's store ([`StoreCatalog`] for
//! `BootResourceCatalog`, [`StoreEvents`] for `ImportEventSink`, which records node-less
//! `REGION_IMPORT_*` events) and holds the rules the API needs around it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use maas_images::{
    BootResourceCatalog, BootResourceJson, CatalogError, ContentStore, ImportEvent,
    ImportEventSink, ImportProgress, Importer, ImporterConfig, Keyring, NewUpload, ResourceDetail,
    ResourceType, TracingEvents, UploadDescription, UploadError, UploadFileType, Uploads,
};
use maas_simplestreams::{FileType, Selection, Sha256};
use maas_store::{
    BootResourceType, BootSource, BootSourceFields, BootSourceSelection, BootSourceSelectionFields,
    EventLevel, Millis, NewEvent, Store, StoreError, User,
};

use crate::error::{FieldErrors, ServiceError, ServiceResult};
use crate::http::params::{FilePart, Params};
use crate::region::{Clock, Region};

/// The boot source a region gets when it has none (MAAS's public stream by default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultBootSource {
    pub url: String,
    pub keyring_filename: String,
}

impl Default for DefaultBootSource {
    fn default() -> DefaultBootSource {
        DefaultBootSource {
            url: maas_images::DEFAULT_SOURCE_URL.to_owned(),
            keyring_filename: maas_images::DEFAULT_KEYRING_FILENAME.to_owned(),
        }
    }
}

/// How the region handles boot images.
#[derive(Clone, Debug)]
pub struct ImagesConfig {
    /// The content store (`<dir>/<sha256>`). Without one the region lists boot resources
    /// but cannot store, upload, import or serve image files (those answer 503).
    pub dir: Option<PathBuf>,
    pub importer: ImporterConfig,
    /// Whether this process imports at start and then every `import_interval` while the
    /// `boot_images_auto_import` setting is true. Off in the library's default, so test
    /// regions never reach for the internet; `maas start` turns it on.
    pub auto_import: bool,
    pub import_interval: Duration,
    /// Created (with a selection of the commissioning release) when no boot source exists.
    pub default_source: DefaultBootSource,
}

impl Default for ImagesConfig {
    fn default() -> ImagesConfig {
        ImagesConfig {
            dir: None,
            importer: ImporterConfig::default(),
            auto_import: false,
            import_interval: Duration::from_secs(3600),
            default_source: DefaultBootSource::default(),
        }
    }
}

/// The region's image machinery, opened on first use (see [`Region::images`]).
pub struct Images {
    pub importer: Arc<Importer>,
    pub uploads: Uploads,
    pub content: ContentStore,
    /// An import was asked for and has not finished (covers the moment before the
    /// importer's own flag is set).
    requested: AtomicBool,
}

impl Images {
    /// `boot-resources/?op=is_importing`.
    pub fn is_importing(&self) -> bool {
        self.requested.load(Ordering::SeqCst) || self.importer.is_importing()
    }
}

fn store_failure(error: maas_images::StoreError) -> ServiceError {
    tracing::error!(error = %maas_images::error_chain(&error), "image store failed");
    ServiceError::Unavailable {
        message: "The region's image store failed; see the region log.".to_owned(),
        retry: false,
    }
}

/// Opens the content store and builds the importer (called once per region).
pub async fn open(region: &Region) -> ServiceResult<Images> {
    let Some(dir) = &region.config.images.dir else {
        return Err(ServiceError::Unavailable {
            message:
                "This region has no image directory (images_dir), so it cannot store boot images."
                    .to_owned(),
            retry: false,
        });
    };
    let content = ContentStore::open(dir.clone())
        .await
        .map_err(store_failure)?;
    let catalog: Arc<dyn BootResourceCatalog> = Arc::new(StoreCatalog::new(
        region.store.clone(),
        region.clock.clone(),
    ));
    let events = StoreEvents::start(region.store.clone(), region.clock.clone());
    let importer = Importer::new(
        region.config.images.importer.clone(),
        content.clone(),
        catalog.clone(),
        Arc::new(events),
    )
    .map_err(|error| {
        tracing::error!(error = %maas_images::error_chain(&error), "boot image importer unusable");
        ServiceError::Unavailable {
            message: "The boot image importer could not start; see the region log.".to_owned(),
            retry: false,
        }
    })?;
    Ok(Images {
        importer: Arc::new(importer),
        uploads: Uploads::new(content.clone(), catalog),
        content,
        requested: AtomicBool::new(false),
    })
}

// ---------------------------------------------------------------------------
// The catalog port on the store.
// ---------------------------------------------------------------------------

/// `maas-images`' catalog on the region's boot resource tables.
pub struct StoreCatalog {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl StoreCatalog {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> StoreCatalog {
        StoreCatalog { store, clock }
    }
}

fn catalog_error(what: &'static str, id: i64) -> impl FnOnce(StoreError) -> CatalogError {
    move |error| match error {
        StoreError::NotFound { .. } => CatalogError::NotFound { what, id },
        StoreError::Conflict { what } => CatalogError::Conflict { what },
        other => CatalogError::Backend {
            source: Box::new(other),
        },
    }
}

fn invalid(what: String) -> CatalogError {
    CatalogError::Backend {
        source: Box::new(StoreError::InvalidData { what }),
    }
}

fn rtype_to_store(rtype: ResourceType) -> BootResourceType {
    match rtype {
        ResourceType::Synced => BootResourceType::Synced,
        ResourceType::Uploaded => BootResourceType::Uploaded,
    }
}

fn rtype_from_store(rtype: BootResourceType) -> ResourceType {
    match rtype {
        BootResourceType::Synced => ResourceType::Synced,
        BootResourceType::Uploaded => ResourceType::Uploaded,
    }
}

pub fn resource_from_store(resource: maas_store::BootResource) -> maas_images::BootResource {
    maas_images::BootResource {
        id: resource.id,
        rtype: rtype_from_store(resource.rtype),
        name: resource.name,
        architecture: resource.architecture,
        kflavor: resource.kflavor,
        bootloader_type: resource.bootloader_type,
        base_image: resource.base_image,
        extra: resource.extra,
    }
}

fn set_from_store(set: maas_store::BootResourceSet) -> maas_images::BootResourceSet {
    maas_images::BootResourceSet {
        id: set.id,
        resource_id: set.resource_id,
        version: set.version,
        label: set.label,
    }
}

fn file_from_store(
    file: maas_store::BootResourceFile,
) -> Result<maas_images::BootResourceFile, CatalogError> {
    let sha256 = Sha256::parse(&file.sha256)
        .map_err(|_| invalid(format!("sha256 of boot resource file {}", file.id)))?;
    let size = u64::try_from(file.size)
        .map_err(|_| invalid(format!("size of boot resource file {}", file.id)))?;
    Ok(maas_images::BootResourceFile {
        id: file.id,
        set_id: file.set_id,
        filename: file.filename,
        filetype: FileType::parse(&file.filetype),
        sha256,
        size,
        extra: file.extra,
        complete: file.complete,
    })
}

fn size_to_store(size: u64) -> Result<i64, CatalogError> {
    i64::try_from(size).map_err(|_| invalid(format!("file size {size}")))
}

#[async_trait]
impl BootResourceCatalog for StoreCatalog {
    async fn resources(&self) -> Result<Vec<maas_images::BootResource>, CatalogError> {
        let resources = self
            .store
            .boot_resources()
            .await
            .map_err(catalog_error("resource", 0))?;
        Ok(resources.into_iter().map(resource_from_store).collect())
    }

    async fn resource(&self, id: i64) -> Result<Option<maas_images::BootResource>, CatalogError> {
        let resource = self
            .store
            .boot_resource(id)
            .await
            .map_err(catalog_error("resource", id))?;
        Ok(resource.map(resource_from_store))
    }

    async fn find_resource(
        &self,
        rtype: ResourceType,
        name: &str,
        architecture: &str,
    ) -> Result<Option<maas_images::BootResource>, CatalogError> {
        let resource = self
            .store
            .find_boot_resource(rtype_to_store(rtype), name, architecture)
            .await
            .map_err(catalog_error("resource", 0))?;
        Ok(resource.map(resource_from_store))
    }

    async fn create_resource(
        &self,
        new: maas_images::NewBootResource,
    ) -> Result<maas_images::BootResource, CatalogError> {
        let resource = self
            .store
            .create_boot_resource(
                maas_store::NewBootResource {
                    rtype: rtype_to_store(new.rtype),
                    name: new.name,
                    architecture: new.architecture,
                    kflavor: new.kflavor,
                    bootloader_type: new.bootloader_type,
                    base_image: new.base_image,
                    extra: new.extra,
                },
                self.clock.now_millis(),
            )
            .await
            .map_err(catalog_error("resource", 0))?;
        Ok(resource_from_store(resource))
    }

    async fn update_resource(
        &self,
        resource: &maas_images::BootResource,
    ) -> Result<(), CatalogError> {
        let mut stored = self
            .store
            .boot_resource(resource.id)
            .await
            .map_err(catalog_error("resource", resource.id))?
            .ok_or(CatalogError::NotFound {
                what: "resource",
                id: resource.id,
            })?;
        stored.kflavor = resource.kflavor.clone();
        stored.bootloader_type = resource.bootloader_type.clone();
        stored.base_image = resource.base_image.clone();
        stored.extra = resource.extra.clone();
        self.store
            .update_boot_resource(&stored)
            .await
            .map_err(catalog_error("resource", resource.id))
    }

    async fn delete_resource(&self, id: i64) -> Result<(), CatalogError> {
        self.store
            .delete_boot_resource(id)
            .await
            .map_err(catalog_error("resource", id))
    }

    async fn sets(
        &self,
        resource_id: i64,
    ) -> Result<Vec<maas_images::BootResourceSet>, CatalogError> {
        let sets = self
            .store
            .boot_resource_sets(resource_id)
            .await
            .map_err(catalog_error("resource", resource_id))?;
        Ok(sets.into_iter().map(set_from_store).collect())
    }

    async fn create_set(
        &self,
        resource_id: i64,
        version: &str,
        label: &str,
    ) -> Result<maas_images::BootResourceSet, CatalogError> {
        let set = self
            .store
            .create_boot_resource_set(resource_id, version, label, self.clock.now_millis())
            .await
            .map_err(catalog_error("resource", resource_id))?;
        Ok(set_from_store(set))
    }

    async fn delete_set(&self, set_id: i64) -> Result<(), CatalogError> {
        self.store
            .delete_boot_resource_set(set_id)
            .await
            .map_err(catalog_error("set", set_id))
    }

    async fn files(&self, set_id: i64) -> Result<Vec<maas_images::BootResourceFile>, CatalogError> {
        self.store
            .boot_resource_files(set_id)
            .await
            .map_err(catalog_error("set", set_id))?
            .into_iter()
            .map(file_from_store)
            .collect()
    }

    async fn file(
        &self,
        file_id: i64,
    ) -> Result<Option<maas_images::BootResourceFile>, CatalogError> {
        self.store
            .boot_resource_file(file_id)
            .await
            .map_err(catalog_error("file", file_id))?
            .map(file_from_store)
            .transpose()
    }

    async fn add_file(
        &self,
        set_id: i64,
        new: maas_images::NewBootResourceFile,
    ) -> Result<maas_images::BootResourceFile, CatalogError> {
        let file = self
            .store
            .add_boot_resource_file(
                set_id,
                maas_store::NewBootResourceFile {
                    filename: new.filename,
                    filetype: new.filetype.as_str().to_owned(),
                    sha256: new.sha256.as_str().to_owned(),
                    size: size_to_store(new.size)?,
                    extra: new.extra,
                    complete: new.complete,
                },
            )
            .await
            .map_err(catalog_error("set", set_id))?;
        file_from_store(file)
    }

    async fn set_complete(&self, sha256: &Sha256, complete: bool) -> Result<(), CatalogError> {
        self.store
            .set_boot_resource_files_complete(sha256.as_str(), complete)
            .await
            .map_err(catalog_error("file", 0))
    }

    async fn referenced(&self) -> Result<BTreeSet<Sha256>, CatalogError> {
        let hashes = self
            .store
            .boot_resource_hashes()
            .await
            .map_err(catalog_error("file", 0))?;
        hashes
            .iter()
            .map(|text| Sha256::parse(text).map_err(|_| invalid(format!("sha256 {text}"))))
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Import events as node-less events.
// ---------------------------------------------------------------------------

/// Records import events as MAAS's `REGION_IMPORT_INFO`, `REGION_IMPORT_WARNING` and
/// `REGION_IMPORT_ERROR` events (no node), in order, from a task of its own so the
/// importer never waits on the database; also logs them.
pub struct StoreEvents {
    sender: tokio::sync::mpsc::UnboundedSender<ImportEvent>,
}

impl StoreEvents {
    /// Starts the writer task; it ends when the sink is dropped.
    pub fn start(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> StoreEvents {
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<ImportEvent>();
        tokio::spawn(async move {
            while let Some(event) = receiver.recv().await {
                let event = import_event(&event, clock.now_millis());
                if let Err(error) = store.create_event(event).await {
                    tracing::warn!(%error, "recording a boot image import event failed");
                }
            }
        });
        StoreEvents { sender }
    }
}

impl ImportEventSink for StoreEvents {
    fn emit(&self, event: ImportEvent) {
        TracingEvents.emit(event.clone());
        // The writer task lives as long as the sink; a send fails only during shutdown.
        let _ = self.sender.send(event);
    }
}

fn seconds(millis: u64) -> String {
    format!("{:.1}", millis as f64 / 1000.0)
}

/// The event the region records for an import event.
pub fn import_event(event: &ImportEvent, now: Millis) -> NewEvent {
    let (level, description) = match event {
        ImportEvent::Started { sources } => (
            EventLevel::Info,
            format!("Started importing boot images from {sources} boot source(s)."),
        ),
        ImportEvent::SourceRetrying {
            url,
            attempt,
            error,
            retry_in_ms,
            ..
        } => (
            EventLevel::Warning,
            format!(
                "Boot source {url} failed (attempt {attempt}): {error}; retrying in {}s.",
                seconds(*retry_in_ms)
            ),
        ),
        ImportEvent::SourceFailed { url, error, .. } => (
            EventLevel::Error,
            format!("Failed to import boot images from {url}: {error}"),
        ),
        ImportEvent::Planned {
            resources,
            files_to_download,
            bytes_to_download,
        } => (
            EventLevel::Info,
            format!(
                "Importing {resources} boot resource(s): {files_to_download} file(s), {bytes_to_download} bytes to download."
            ),
        ),
        ImportEvent::ProductSkipped(skipped) => (
            EventLevel::Debug,
            format!(
                "Product {} of boot source {} skipped: {:?}",
                skipped.product, skipped.source_id, skipped.reason
            ),
        ),
        ImportEvent::SelectionUnmatched {
            source_id,
            os,
            release,
        } => (
            EventLevel::Warning,
            format!("Boot source {source_id} offers nothing for the selection {os}/{release}."),
        ),
        ImportEvent::DownloadFailed { sha256, url, error } => (
            EventLevel::Error,
            format!("Failed to download {url} (sha256 {sha256}): {error}"),
        ),
        ImportEvent::ResourceImported {
            name,
            architecture,
            version,
        } => (
            EventLevel::Info,
            format!("Imported {name} {architecture} version {version}."),
        ),
        ImportEvent::ResourceRemoved { name, architecture } => (
            EventLevel::Info,
            format!("Removed {name} {architecture}: no boot source selection asks for it."),
        ),
        ImportEvent::Stopped => (
            EventLevel::Warning,
            "Import of boot resources stopped.".to_owned(),
        ),
        ImportEvent::Finished {
            downloaded_files,
            downloaded_bytes,
            failures,
        } => (
            if *failures > 0 {
                EventLevel::Warning
            } else {
                EventLevel::Info
            },
            format!(
                "Finished importing boot images: {downloaded_files} file(s), {downloaded_bytes} bytes downloaded, {failures} failure(s)."
            ),
        ),
    };
    let event_type = match level {
        EventLevel::Error | EventLevel::Critical => "REGION_IMPORT_ERROR",
        EventLevel::Warning => "REGION_IMPORT_WARNING",
        EventLevel::Audit | EventLevel::Debug | EventLevel::Info => "REGION_IMPORT_INFO",
    };
    NewEvent {
        node_id: None,
        event_type: event_type.to_owned(),
        description,
        action: String::new(),
        level,
        user_id: None,
        created: now,
        is_status: false,
    }
}

// ---------------------------------------------------------------------------
// Import.
// ---------------------------------------------------------------------------

/// The importer's view of the region's boot sources and their selections.
pub async fn import_sources(store: &dyn Store) -> ServiceResult<Vec<maas_images::BootSource>> {
    let mut sources = Vec::new();
    for source in store.boot_sources().await? {
        let selections = store
            .boot_source_selections(source.id)
            .await?
            .into_iter()
            .map(|s| Selection {
                os: s.os,
                release: s.release,
                arches: s.arches,
                subarches: s.subarches,
                labels: s.labels,
            })
            .collect();
        sources.push(maas_images::BootSource {
            id: source.id,
            keyring: Keyring::from_maas(
                &source.keyring_filename,
                &source.keyring_data,
                source.skip_keyring_verification,
            ),
            url: source.url,
            priority: source.priority,
            selections,
        });
    }
    Ok(sources)
}

/// Clears `requested` when the background import ends, however it ends.
struct Requested(Arc<Images>);

impl Drop for Requested {
    fn drop(&mut self) {
        self.0.requested.store(false, Ordering::SeqCst);
    }
}

/// `boot-resources/?op=import`: starts an import of what the boot sources select in the
/// background. Returns false (and starts nothing) when one is already running.
pub async fn start_import(region: &Arc<Region>) -> ServiceResult<bool> {
    let images = region.images().await?;
    if images.is_importing()
        || images
            .requested
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
    {
        return Ok(false);
    }
    let guard = Requested(images.clone());
    let sources = match import_sources(region.store.as_ref()).await {
        Ok(sources) => sources,
        Err(error) => {
            drop(guard);
            return Err(error);
        }
    };
    tokio::spawn(async move {
        let importer = guard.0.importer.clone();
        match importer.import(&sources).await {
            Ok(report) => tracing::debug!(?report, "boot image import report"),
            Err(maas_images::ImportError::AlreadyImporting) => {}
            Err(error) => {
                tracing::error!(error = %maas_images::error_chain(&error), "boot image import failed")
            }
        }
        drop(guard);
    });
    Ok(true)
}

/// `boot-resources/?op=stop_import`.
pub async fn stop_import(region: &Arc<Region>) -> ServiceResult<()> {
    region.images().await?.importer.stop();
    Ok(())
}

/// `boot-resources/?op=is_importing`: false on a region that cannot store images.
pub async fn is_importing(region: &Arc<Region>) -> bool {
    match region.images().await {
        Ok(images) => images.is_importing(),
        Err(_) => false,
    }
}

/// Imports at start and then every `import_interval`, each time only while the
/// `boot_images_auto_import` setting is true. Runs until aborted.
pub async fn auto_import(region: Arc<Region>) {
    let config = &region.config.images;
    if !config.auto_import || config.dir.is_none() {
        return std::future::pending().await;
    }
    let mut ticks = tokio::time::interval(config.import_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let enabled = crate::service::config::get(region.store.as_ref(), "boot_images_auto_import")
            .await
            .ok()
            .and_then(|value| value.as_bool())
            .unwrap_or(true);
        if !enabled {
            tracing::debug!("boot_images_auto_import is off; not importing");
            continue;
        }
        match start_import(&region).await {
            Ok(true) => tracing::info!("automatic boot image import started"),
            Ok(false) => tracing::debug!("boot image import already running"),
            Err(error) => tracing::warn!(%error, "automatic boot image import did not start"),
        }
    }
}

/// Creates the default boot source, and its selection of the commissioning release for
/// amd64, when the region has no boot source. Returns whether it did.
pub async fn ensure_default_source(
    store: &dyn Store,
    default: &DefaultBootSource,
    now: Millis,
) -> ServiceResult<bool> {
    if !store.boot_sources().await?.is_empty() {
        return Ok(false);
    }
    let source = match store
        .create_boot_source(
            BootSourceFields {
                url: default.url.clone(),
                keyring_filename: default.keyring_filename.clone(),
                keyring_data: Vec::new(),
                skip_keyring_verification: false,
                priority: 0,
            },
            now,
        )
        .await
    {
        Ok(source) => source,
        // Another region (same database) got there first.
        Err(StoreError::Conflict { .. }) => return Ok(false),
        Err(error) => return Err(error.into()),
    };
    let release = crate::service::config::get(store, "commissioning_distro_series")
        .await?
        .as_str()
        .unwrap_or("noble")
        .to_owned();
    store
        .create_boot_source_selection(
            source.id,
            BootSourceSelectionFields {
                os: "ubuntu".to_owned(),
                release,
                arches: vec!["amd64".to_owned()],
                subarches: vec!["*".to_owned()],
                labels: vec!["*".to_owned()],
            },
        )
        .await?;
    tracing::info!(url = %source.url, "default boot source created");
    Ok(true)
}

// ---------------------------------------------------------------------------
// Boot resources.
// ---------------------------------------------------------------------------

/// `boot-resources/?type=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeFilter {
    All,
    Synced,
    Uploaded,
}

impl TypeFilter {
    pub fn parse(text: Option<&str>) -> ServiceResult<TypeFilter> {
        match text.unwrap_or("all") {
            "" | "all" => Ok(TypeFilter::All),
            "synced" => Ok(TypeFilter::Synced),
            "uploaded" => Ok(TypeFilter::Uploaded),
            other => Err(ServiceError::bad_request(format!(
                "Invalid type: '{other}' is not one of all, synced, uploaded."
            ))),
        }
    }

    fn keeps(self, rtype: BootResourceType) -> bool {
        match self {
            TypeFilter::All => true,
            TypeFilter::Synced => rtype == BootResourceType::Synced,
            TypeFilter::Uploaded => rtype == BootResourceType::Uploaded,
        }
    }
}

fn last_deployed(resource: &maas_store::BootResource) -> Option<String> {
    resource.last_deployed.map(crate::timefmt::iso)
}

/// `GET boot-resources/`.
pub async fn resources(
    store: &dyn Store,
    filter: TypeFilter,
) -> ServiceResult<Vec<BootResourceJson>> {
    Ok(store
        .boot_resources()
        .await?
        .into_iter()
        .filter(|resource| filter.keeps(resource.rtype))
        .map(|resource| {
            let deployed = last_deployed(&resource);
            maas_images::resource_json(&resource_from_store(resource), deployed)
        })
        .collect())
}

pub async fn resource(store: &dyn Store, id: &str) -> ServiceResult<maas_store::BootResource> {
    let missing = || ServiceError::not_found("BootResource");
    let id: i64 = id.parse().map_err(|_| missing())?;
    store.boot_resource(id).await?.ok_or_else(missing)
}

fn from_catalog(error: CatalogError) -> ServiceError {
    match error {
        CatalogError::NotFound { what: "file", .. } => ServiceError::not_found("BootResourceFile"),
        CatalogError::NotFound { what: "set", .. } => ServiceError::not_found("BootResourceSet"),
        CatalogError::NotFound { .. } => ServiceError::not_found("BootResource"),
        CatalogError::Conflict { what } => {
            let mut errors = FieldErrors::new();
            errors.add("__all__", format!("{what} already exists."));
            match errors.check() {
                Err(error) => error,
                Ok(()) => ServiceError::bad_request("already exists"),
            }
        }
        CatalogError::Backend { source } => ServiceError::Store(StoreError::Backend(source)),
    }
}

/// A resource with its sets, newest first, as the catalog sees it.
async fn detail(
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
    resource: maas_store::BootResource,
) -> ServiceResult<ResourceDetail> {
    let catalog = StoreCatalog::new(store.clone(), clock.clone());
    ResourceDetail::load(&catalog, resource_from_store(resource))
        .await
        .map_err(from_catalog)
}

/// `GET boot-resources/{id}/` and the create reply: the resource with `sets`, progress of
/// running downloads and uploads included.
pub async fn resource_detail(
    region: &Arc<Region>,
    resource: maas_store::BootResource,
) -> ServiceResult<BootResourceJson> {
    let deployed = last_deployed(&resource);
    let detail = detail(&region.store, &region.clock, resource).await?;
    let images = region.images().await.ok();
    let progress = images
        .as_ref()
        .map(|images| images.importer.progress())
        .unwrap_or_else(ImportProgress::default);
    let mut received = BTreeMap::new();
    if let Some(images) = &images
        && detail.resource.rtype == ResourceType::Uploaded
    {
        for file in detail.sets.iter().flat_map(|set| &set.files) {
            if !file.complete {
                let bytes = images.uploads.received(file.id).await.unwrap_or(0);
                received.insert(file.id, bytes);
            }
        }
    }
    let hashes: Vec<Sha256> = region
        .store
        .boot_resource_hashes()
        .await?
        .iter()
        .filter_map(|text| Sha256::parse(text).ok())
        .collect();
    let on_disk = maas_images::shortest_unique_prefixes(&hashes);
    Ok(maas_images::resource_detail_json(
        &detail,
        deployed,
        &progress,
        &|file_id| received.get(&file_id).copied().unwrap_or(0),
        &on_disk,
    ))
}

fn admin(user: &User) -> ServiceResult<()> {
    if user.is_superuser {
        Ok(())
    } else {
        Err(ServiceError::admin_only())
    }
}

/// Operating systems MAAS has drivers for (provisioning reference §7.6).
const OPERATING_SYSTEMS: [&str; 10] = [
    "ubuntu",
    "centos",
    "rhel",
    "ol",
    "suse",
    "esxi",
    "windows",
    "ubuntu-core",
    "onie",
    "custom",
];
/// Those whose images must be disk images.
const DISK_IMAGE_ONLY: [&str; 3] = ["esxi", "windows", "ubuntu-core"];
/// Linux systems a custom image's installer environment may be.
const BASE_IMAGE_SYSTEMS: [&str; 5] = ["ubuntu", "centos", "rhel", "ol", "suse"];

fn plain_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 128
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// An upload's name as stored (`esxi/6.7`, or a custom image's bare name) and whether it
/// is a custom image.
fn upload_name(name: &str) -> Result<(String, bool), String> {
    let (os, release) = match name.split_once('/') {
        None => ("custom", name),
        Some((os, release)) => (os, release),
    };
    if !plain_name(os) || !plain_name(release) {
        return Err(format!(
            "'{name}' is not a valid name: use <os>/<release> or a custom name of letters, digits, '.', '-' and '_'."
        ));
    }
    if os == "custom" {
        let reserved = OPERATING_SYSTEMS.contains(&release)
            || release
                .strip_prefix("centos")
                .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()));
        if reserved {
            return Err(format!("'{release}' is a reserved name."));
        }
        return Ok((release.to_owned(), true));
    }
    if !OPERATING_SYSTEMS.contains(&os) {
        return Err(format!(
            "Unsupported operating system '{os}'; it should be one of: {}.",
            OPERATING_SYSTEMS.join(", ")
        ));
    }
    Ok((format!("{os}/{release}"), false))
}

/// `arch/subarch` of a known architecture (a bare arch means `arch/generic`).
fn upload_architecture(text: &str) -> Option<String> {
    let (arch, subarch) = text.split_once('/').unwrap_or((text, "generic"));
    (crate::service::machines::ARCHITECTURES.contains(&arch) && plain_name(subarch))
        .then(|| format!("{arch}/{subarch}"))
}

fn today(now: Millis) -> String {
    crate::timefmt::iso(now)
        .get(..10)
        .unwrap_or("19700101")
        .replace('-', "")
}

fn upload_failure(error: UploadError) -> ServiceError {
    match error {
        UploadError::NoSuchFile { .. } => ServiceError::not_found("BootResourceFile"),
        UploadError::Catalog(error) => from_catalog(error),
        UploadError::Store(error) => store_failure(error),
        other => match other.status() {
            403 => ServiceError::forbidden(other.maas_message()),
            _ => ServiceError::bad_request(other.maas_message()),
        },
    }
}

/// `POST boot-resources/`: an uploaded resource from `content`, or from `sha256` and `size`
/// with the content to follow in chunks. The reply is the resource with its sets.
pub async fn create_resource(
    region: &Arc<Region>,
    caller: &User,
    params: &Params,
    files: &[FilePart],
) -> ServiceResult<BootResourceJson> {
    admin(caller)?;
    let mut errors = FieldErrors::new();
    let text = |name: &str| params.get(name).map(str::trim).filter(|v| !v.is_empty());
    let name = match text("name") {
        None => {
            errors.add("name", "This field is required.");
            None
        }
        Some(name) => match upload_name(name) {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                errors.add("name", message);
                None
            }
        },
    };
    let architecture = match text("architecture") {
        None => {
            errors.add("architecture", "This field is required.");
            None
        }
        Some(arch) => {
            let parsed = upload_architecture(arch);
            if parsed.is_none() {
                errors.add(
                    "architecture",
                    format!("Select a valid choice. {arch} is not one of the available choices."),
                );
            }
            parsed
        }
    };
    let filetype = match text("filetype") {
        None => Some(UploadFileType::Tgz),
        Some(kind) => match UploadFileType::parse(kind) {
            Ok(kind) => Some(kind),
            Err(_) => {
                errors.add(
                    "filetype",
                    format!("Select a valid choice. {kind} is not one of the available choices."),
                );
                None
            }
        },
    };
    if let (Some((stored, false)), Some(kind)) = (&name, filetype) {
        let os = stored.split('/').next().unwrap_or("");
        if DISK_IMAGE_ONLY.contains(&os) && !kind.is_disk_image() {
            errors.add(
                "filetype",
                format!("{os} images must be disk images (ddtgz, ddtbz, ddtxz, ddtar, ddbz2, ddgz, ddxz or ddraw)."),
            );
        }
    }
    let mut base_image = match text("base_image") {
        None => None,
        Some(base) => {
            let valid = base
                .split_once('/')
                .is_some_and(|(os, series)| BASE_IMAGE_SYSTEMS.contains(&os) && plain_name(series));
            if !valid {
                errors.add(
                    "base_image",
                    format!(
                        "'{base}' is not a valid base image: use <os>/<series> with os one of {}.",
                        BASE_IMAGE_SYSTEMS.join(", ")
                    ),
                );
            }
            Some(base.to_owned())
        }
    };
    let content = files.iter().find(|file| file.name == "content");
    let declared = if content.is_some() {
        None
    } else {
        let sha256 = match text("sha256") {
            None => {
                errors.add("sha256", "This field is required.");
                None
            }
            Some(value) => match Sha256::parse(value) {
                Ok(sha256) => Some(sha256),
                Err(_) => {
                    errors.add("sha256", "Enter a valid SHA256 value (64 hex digits).");
                    None
                }
            },
        };
        let size = match text("size") {
            None => {
                errors.add("size", "This field is required.");
                None
            }
            Some(value) => match value.parse::<u64>() {
                Ok(size) if i64::try_from(size).is_ok() => Some(size),
                _ => {
                    errors.add("size", "Enter a whole number.");
                    None
                }
            },
        };
        sha256.zip(size)
    };
    errors.check()?;
    let (Some((name, custom)), Some(architecture), Some(filetype)) = (name, architecture, filetype)
    else {
        return Err(ServiceError::bad_request("invalid boot resource"));
    };
    if custom && base_image.is_none() {
        let series =
            crate::service::config::get(region.store.as_ref(), "commissioning_distro_series")
                .await?
                .as_str()
                .unwrap_or("noble")
                .to_owned();
        base_image = Some(format!("ubuntu/{series}"));
    }
    if region
        .store
        .boot_resources()
        .await?
        .iter()
        .any(|r| r.rtype == BootResourceType::Synced && r.name == name)
    {
        return Err(ServiceError::field(
            "name",
            format!("'{name}' is the name of a synced boot resource; choose another name."),
        ));
    }
    let description = UploadDescription {
        name,
        architecture,
        title: text("title").map(str::to_owned),
        filetype,
        base_image,
    };
    let images = region.images().await?;
    let day = today(region.now());
    let detail = match (content, declared) {
        (Some(content), _) => images
            .uploads
            .create_with_content(description, content.content.as_slice(), &day)
            .await
            .map_err(upload_failure)?,
        (None, Some((sha256, 0))) => {
            // Nothing will be sent for an empty file: store it now, if it is the empty one.
            let detail = images
                .uploads
                .create_with_content(description, &[][..], &day)
                .await
                .map_err(upload_failure)?;
            let stored = detail
                .sets
                .first()
                .and_then(|set| set.files.first())
                .map(|file| file.sha256.clone());
            if stored.as_ref() != Some(&sha256) {
                return Err(ServiceError::bad_request(
                    "Saved content does not match given SHA256 value.",
                ));
            }
            detail
        }
        (None, Some((sha256, size))) => images
            .uploads
            .create(
                NewUpload {
                    description,
                    sha256,
                    size,
                },
                &day,
            )
            .await
            .map_err(upload_failure)?,
        (None, None) => return Err(ServiceError::bad_request("invalid boot resource")),
    };
    let resource = region
        .store
        .boot_resource(detail.resource.id)
        .await?
        .ok_or_else(|| ServiceError::not_found("BootResource"))?;
    resource_detail(region, resource).await
}

/// `PUT boot-resources/{id}/upload/{file_id}/`: one chunk of an upload.
pub async fn upload_chunk(
    region: &Arc<Region>,
    caller: &User,
    resource_id: &str,
    file_id: &str,
    chunk: &[u8],
    content_length: Option<u64>,
) -> ServiceResult<()> {
    admin(caller)?;
    let resource = resource(region.store.as_ref(), resource_id).await?;
    let missing = || ServiceError::not_found("BootResourceFile");
    let file_id: i64 = file_id.parse().map_err(|_| missing())?;
    let file = region
        .store
        .boot_resource_file(file_id)
        .await?
        .ok_or_else(missing)?;
    let in_resource = region
        .store
        .boot_resource_set(file.set_id)
        .await?
        .is_some_and(|set| set.resource_id == resource.id);
    if !in_resource {
        return Err(missing());
    }
    if resource.rtype == BootResourceType::Synced {
        return Err(ServiceError::forbidden(
            "Cannot upload to a synced resource.",
        ));
    }
    if let Some(length) = content_length
        && length != chunk.len() as u64
    {
        return Err(ServiceError::bad_request(
            "Content-Length doesn't equal size of received data.",
        ));
    }
    let images = region.images().await?;
    images
        .uploads
        .append(file_id, chunk)
        .await
        .map_err(upload_failure)?;
    Ok(())
}

/// `DELETE boot-resources/{id}/`: the resource, its sets and files, and the stored content
/// nothing else refers to.
pub async fn delete_resource(
    region: &Arc<Region>,
    caller: &User,
    resource: &maas_store::BootResource,
) -> ServiceResult<()> {
    admin(caller)?;
    let mut hashes = BTreeSet::new();
    let mut uploads = Vec::new();
    for set in region.store.boot_resource_sets(resource.id).await? {
        for file in region.store.boot_resource_files(set.id).await? {
            if !file.complete {
                uploads.push(file.id);
            }
            hashes.insert(file.sha256);
        }
    }
    region.store.delete_boot_resource(resource.id).await?;
    tracing::info!(name = %resource.name, architecture = %resource.architecture, "boot resource deleted");
    let Ok(images) = region.images().await else {
        return Ok(());
    };
    let referenced: BTreeSet<String> = region
        .store
        .boot_resource_hashes()
        .await?
        .into_iter()
        .collect();
    for file_id in uploads {
        if let Err(error) = images.content.discard_upload(&file_id.to_string()).await {
            tracing::warn!(file_id, error = %maas_images::error_chain(&error), "discarding a partial upload failed");
        }
    }
    for sha256 in hashes.difference(&referenced) {
        if let Ok(sha256) = Sha256::parse(sha256)
            && let Err(error) = images.content.remove(&sha256).await
        {
            tracing::warn!(%sha256, error = %maas_images::error_chain(&error), "removing an image file failed");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Files for racks.
// ---------------------------------------------------------------------------

/// What racks serve: `{"files": {<boot path>: {"sha256", "size"}}}` over the newest
/// complete set of every resource (the rack's `ImageManifest`).
pub async fn manifest(region: &Arc<Region>) -> ServiceResult<serde_json::Value> {
    let catalog = StoreCatalog::new(region.store.clone(), region.clock.clone());
    let entries = maas_images::boot_files(&catalog)
        .await
        .map_err(from_catalog)?;
    let files: serde_json::Map<String, serde_json::Value> = entries
        .into_iter()
        .map(|entry| {
            (
                entry.path,
                serde_json::json!({"sha256": entry.sha256.as_str(), "size": entry.size}),
            )
        })
        .collect();
    Ok(serde_json::json!({ "files": files }))
}

/// The stored file a `/MAAS/boot-resources/<rest>` request names: `<sha256 or a unique
/// prefix of at least 7 hex digits>/<anything>`, or a boot path of the manifest
/// (`ubuntu/amd64/ga-22.04/jammy/stable/boot-kernel`). Returns its path and size.
pub async fn file_for_path(
    region: &Arc<Region>,
    rest: &str,
) -> ServiceResult<Option<(PathBuf, u64)>> {
    let images = region.images().await?;
    let first = rest.split('/').next().unwrap_or("");
    let sha256 = if first.len() >= 7 && first.chars().all(|c| c.is_ascii_hexdigit()) {
        if first.len() == 64 {
            Sha256::parse(first).ok()
        } else {
            images
                .content
                .find_prefix(first)
                .await
                .map_err(store_failure)?
        }
    } else {
        let catalog = StoreCatalog::new(region.store.clone(), region.clock.clone());
        maas_images::boot_files(&catalog)
            .await
            .map_err(from_catalog)?
            .into_iter()
            .find(|entry| entry.path == rest.trim_end_matches('/'))
            .map(|entry| entry.sha256)
    };
    let Some(sha256) = sha256 else {
        return Ok(None);
    };
    Ok(images
        .content
        .stored_size(&sha256)
        .await
        .map(|size| (images.content.path(&sha256), size)))
}

// ---------------------------------------------------------------------------
// Deploy validation.
// ---------------------------------------------------------------------------

/// The boot resource a deployment will use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployImage {
    pub resource_id: i64,
    pub name: String,
    pub architecture: String,
}

/// The `(osystem, distro_series)` a resource provides: `ubuntu/jammy` → (ubuntu, jammy),
/// a custom image `my-image` → (custom, my-image); bootloaders provide none.
fn provides(resource: &maas_store::BootResource) -> Option<(String, String)> {
    if resource.bootloader_type.is_some() {
        return None;
    }
    Some(match resource.name.split_once('/') {
        Some((os, series)) => (os.to_owned(), series.to_owned()),
        None => ("custom".to_owned(), resource.name.clone()),
    })
}

/// Whether a resource of `resource_arch` (`amd64/ga-22.04`, with `subarches`) boots a
/// machine of `machine_arch` (`amd64/generic`, `amd64`, `arm64/xgene-uboot`).
fn arch_matches(resource: &maas_store::BootResource, machine_arch: &str) -> bool {
    let (arch, subarch) = machine_arch
        .split_once('/')
        .unwrap_or((machine_arch, "generic"));
    let (resource_arch, resource_subarch) = resource
        .architecture
        .split_once('/')
        .unwrap_or((resource.architecture.as_str(), "generic"));
    if arch != resource_arch {
        return false;
    }
    subarch.is_empty()
        || subarch == "generic"
        || subarch == resource_subarch
        || resource
            .extra
            .get("subarches")
            .is_some_and(|list| list.split(',').any(|s| s.trim() == subarch))
}

fn set_complete(files: &[maas_store::BootResourceFile]) -> bool {
    !files.is_empty() && files.iter().all(|file| file.complete)
}

/// Resources with a complete set that boot `architecture`, with what they provide.
async fn usable(
    store: &dyn Store,
    architecture: &str,
) -> ServiceResult<Vec<(maas_store::BootResource, (String, String))>> {
    let mut found = Vec::new();
    for resource in store.boot_resources().await? {
        let Some(provided) = provides(&resource) else {
            continue;
        };
        if !arch_matches(&resource, architecture) {
            continue;
        }
        let mut complete = false;
        for set in store.boot_resource_sets(resource.id).await? {
            if set_complete(&store.boot_resource_files(set.id).await?) {
                complete = true;
                break;
            }
        }
        if complete {
            found.push((resource, provided));
        }
    }
    Ok(found)
}

/// Deploy's image check (api.md §8.2 step 3, provisioning reference §8.1): `osystem`/
/// `distro_series` (as the machine will get them, e.g. `ubuntu`/`jammy` or `custom`/
/// `my-image`) must have a boot resource with a complete set for the machine's
/// `architecture`, and an OS other than Ubuntu also needs the commissioning release's
/// image, which installs it. Otherwise a 400 form error keyed `distro_series`, as MAAS
/// answers. Returns the resource to deploy (for [`mark_deployed`]).
/// The boot resource with a complete set that installs `osystem`/`distro_series` on a
/// machine of `architecture`, if the region has one.
pub async fn deploy_resource(
    store: &dyn Store,
    osystem: &str,
    distro_series: &str,
    architecture: &str,
) -> ServiceResult<Option<maas_store::BootResource>> {
    let wanted = (osystem.to_owned(), distro_series.to_owned());
    Ok(usable(store, architecture)
        .await?
        .into_iter()
        .find(|(_, provided)| *provided == wanted)
        .map(|(resource, _)| resource))
}

pub async fn check_deployable(
    store: &dyn Store,
    osystem: &str,
    distro_series: &str,
    architecture: &str,
) -> ServiceResult<DeployImage> {
    let usable = usable(store, architecture).await?;
    let wanted = (osystem.to_owned(), distro_series.to_owned());
    let Some((resource, _)) = usable.iter().find(|(_, provided)| *provided == wanted) else {
        let mut choices: Vec<String> = usable
            .iter()
            .map(|(_, (os, series))| format!("'{os}/{series}'"))
            .collect();
        choices.sort();
        choices.dedup();
        let message = if choices.is_empty() {
            format!(
                "'{osystem}/{distro_series}' is not a valid distro_series.  No boot images for {architecture} are available; import or upload them first."
            )
        } else {
            format!(
                "'{osystem}/{distro_series}' is not a valid distro_series.  It should be one of: {}.",
                choices.join(", ")
            )
        };
        return Err(ServiceError::field("distro_series", message));
    };
    if osystem != "ubuntu" {
        let commissioning = crate::service::config::get(store, "commissioning_distro_series")
            .await?
            .as_str()
            .unwrap_or("noble")
            .to_owned();
        let installer = ("ubuntu".to_owned(), commissioning.clone());
        if !usable.iter().any(|(_, provided)| *provided == installer) {
            return Err(ServiceError::field(
                "distro_series",
                format!(
                    "'{osystem}/{distro_series}' is installed from the commissioning image 'ubuntu/{commissioning}', which is not available for {architecture}."
                ),
            ));
        }
    }
    Ok(DeployImage {
        resource_id: resource.id,
        name: resource.name.clone(),
        architecture: resource.architecture.clone(),
    })
}

/// Records that a machine deployed the image (the resource's `last_deployed`).
pub async fn mark_deployed(
    store: &dyn Store,
    image: &DeployImage,
    now: Millis,
) -> ServiceResult<()> {
    Ok(store
        .set_boot_resource_deployed(image.resource_id, now)
        .await?)
}

// ---------------------------------------------------------------------------
// Boot sources and selections.
// ---------------------------------------------------------------------------

pub async fn boot_source(store: &dyn Store, id: &str) -> ServiceResult<BootSource> {
    let missing = || ServiceError::not_found("BootSource");
    let id: i64 = id.parse().map_err(|_| missing())?;
    store.boot_source(id).await?.ok_or_else(missing)
}

pub async fn boot_source_selection(
    store: &dyn Store,
    source: &BootSource,
    id: &str,
) -> ServiceResult<BootSourceSelection> {
    let missing = || ServiceError::not_found("BootSourceSelection");
    let id: i64 = id.parse().map_err(|_| missing())?;
    store
        .boot_source_selection(id)
        .await?
        .filter(|selection| selection.boot_source_id == source.id)
        .ok_or_else(missing)
}

/// `keyring_data` as a file part (the CLI's `keyring_data@=file`) or, failing that, a
/// text field.
fn keyring_data(params: &Params, files: &[FilePart]) -> Option<Vec<u8>> {
    files
        .iter()
        .find(|file| file.name == "keyring_data")
        .map(|file| file.content.clone())
        .or_else(|| {
            params
                .get("keyring_data")
                .map(|text| text.as_bytes().to_vec())
        })
}

fn parse_bool(params: &Params, name: &str, errors: &mut FieldErrors) -> Option<bool> {
    let value = params.get(name).filter(|v| !v.is_empty())?;
    match maas_domain::parse_bool(value) {
        Ok(value) => Some(value),
        Err(_) => {
            errors.add(
                name,
                format!("'{value}' value must be either True or False."),
            );
            None
        }
    }
}

fn source_url(url: &str) -> bool {
    (url.starts_with("http://") || url.starts_with("https://") || url.starts_with("file://"))
        && url.len() > "http://".len()
        && !url.chars().any(char::is_whitespace)
}

/// Fields of a boot source after `params` are applied to `current` (or to nothing).
fn source_fields(
    current: Option<&BootSource>,
    params: &Params,
    files: &[FilePart],
) -> ServiceResult<BootSourceFields> {
    let mut errors = FieldErrors::new();
    let url = match params.get("url").map(str::trim) {
        Some(url) if !url.is_empty() => {
            if !source_url(url) {
                errors.add("url", "Enter a valid URL.");
            }
            url.to_owned()
        }
        _ => match current {
            Some(current) => current.url.clone(),
            None => {
                errors.add("url", "This field is required.");
                String::new()
            }
        },
    };
    let mut keyring_filename = current
        .map(|c| c.keyring_filename.clone())
        .unwrap_or_default();
    let mut keyring = current.map(|c| c.keyring_data.clone()).unwrap_or_default();
    let new_filename = params
        .get("keyring_filename")
        .map(str::trim)
        .filter(|f| !f.is_empty());
    let new_data = keyring_data(params, files).filter(|data| !data.is_empty());
    // One keyring at a time: whichever is sent replaces the other.
    match (new_filename, new_data) {
        (Some(filename), Some(data)) => {
            keyring_filename = filename.to_owned();
            keyring = data;
        }
        (Some(filename), None) => {
            keyring_filename = filename.to_owned();
            keyring.clear();
        }
        (None, Some(data)) => {
            keyring = data;
            keyring_filename.clear();
        }
        (None, None) => {}
    }
    let skip = parse_bool(params, "skip_keyring_verification", &mut errors)
        .unwrap_or(current.is_some_and(|c| c.skip_keyring_verification));
    if keyring_filename.is_empty() && keyring.is_empty() && !skip {
        errors.add(
            "__all__",
            "One of keyring_data or keyring_filename must be specified.",
        );
    }
    errors.check()?;
    Ok(BootSourceFields {
        url,
        keyring_filename,
        keyring_data: keyring,
        skip_keyring_verification: skip,
        priority: current.map_or(0, |c| c.priority),
    })
}

fn duplicate_url(error: StoreError) -> ServiceError {
    crate::service::duplicate(error, "url", "Boot source with this Url already exists.")
}

pub async fn create_boot_source(
    store: &dyn Store,
    caller: &User,
    params: &Params,
    files: &[FilePart],
    now: Millis,
) -> ServiceResult<BootSource> {
    admin(caller)?;
    let fields = source_fields(None, params, files)?;
    let source = store
        .create_boot_source(fields, now)
        .await
        .map_err(duplicate_url)?;
    tracing::info!(url = %source.url, "boot source created");
    Ok(source)
}

pub async fn update_boot_source(
    store: &dyn Store,
    caller: &User,
    source: &BootSource,
    params: &Params,
    files: &[FilePart],
    now: Millis,
) -> ServiceResult<BootSource> {
    admin(caller)?;
    let fields = source_fields(Some(source), params, files)?;
    store
        .update_boot_source(source.id, fields, now)
        .await
        .map_err(duplicate_url)
}

pub async fn delete_boot_source(
    store: &dyn Store,
    caller: &User,
    source: &BootSource,
) -> ServiceResult<()> {
    admin(caller)?;
    store.delete_boot_source(source.id).await?;
    tracing::info!(url = %source.url, "boot source deleted");
    Ok(())
}

/// The values of a list field: repeated parameters, each possibly comma-separated.
fn list(params: &Params, name: &str) -> Option<Vec<String>> {
    let values: Vec<String> = params
        .all(name)
        .iter()
        .flat_map(|value| value.split(','))
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
        .collect();
    (params.contains(name) && !values.is_empty()).then_some(values)
}

fn selection_word(text: &str) -> bool {
    text == "*" || plain_name(text)
}

fn selection_fields(
    current: Option<&BootSourceSelection>,
    params: &Params,
) -> ServiceResult<BootSourceSelectionFields> {
    let mut errors = FieldErrors::new();
    let mut single = |name: &str, current: Option<&String>| -> String {
        match params.get(name).map(str::trim).filter(|v| !v.is_empty()) {
            Some(value) => {
                if !plain_name(value) {
                    errors.add(name, format!("'{value}' is not a valid {name}."));
                }
                value.to_owned()
            }
            None => match current {
                Some(current) => current.clone(),
                None => {
                    errors.add(name, "This field is required.");
                    String::new()
                }
            },
        }
    };
    let os = single("os", current.map(|c| &c.os));
    let release = single("release", current.map(|c| &c.release));
    let mut many = |name: &str, current: Option<&Vec<String>>| -> Vec<String> {
        let values = list(params, name)
            .or_else(|| current.cloned())
            .unwrap_or_else(|| vec!["*".to_owned()]);
        if let Some(bad) = values.iter().find(|v| !selection_word(v)) {
            errors.add(name, format!("'{bad}' is not a valid value for {name}."));
        }
        values
    };
    let arches = many("arches", current.map(|c| &c.arches));
    let subarches = many("subarches", current.map(|c| &c.subarches));
    let labels = many("labels", current.map(|c| &c.labels));
    errors.check()?;
    Ok(BootSourceSelectionFields {
        os,
        release,
        arches,
        subarches,
        labels,
    })
}

fn duplicate_selection(error: StoreError) -> ServiceError {
    crate::service::duplicate(
        error,
        "__all__",
        "Boot source selection with this Boot source, Os and Release already exists.",
    )
}

pub async fn create_boot_source_selection(
    store: &dyn Store,
    caller: &User,
    source: &BootSource,
    params: &Params,
) -> ServiceResult<BootSourceSelection> {
    admin(caller)?;
    let fields = selection_fields(None, params)?;
    store
        .create_boot_source_selection(source.id, fields)
        .await
        .map_err(duplicate_selection)
}

pub async fn update_boot_source_selection(
    store: &dyn Store,
    caller: &User,
    selection: &BootSourceSelection,
    params: &Params,
) -> ServiceResult<BootSourceSelection> {
    admin(caller)?;
    let fields = selection_fields(Some(selection), params)?;
    store
        .update_boot_source_selection(selection.id, fields)
        .await
        .map_err(duplicate_selection)
}

pub async fn delete_boot_source_selection(
    store: &dyn Store,
    caller: &User,
    selection: &BootSourceSelection,
) -> ServiceResult<()> {
    admin(caller)?;
    Ok(store.delete_boot_source_selection(selection.id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_names() {
        assert_eq!(upload_name("esxi/6.7"), Ok(("esxi/6.7".into(), false)));
        assert_eq!(upload_name("my-image"), Ok(("my-image".into(), true)));
        assert_eq!(
            upload_name("custom/my-image"),
            Ok(("my-image".into(), true))
        );
        assert!(upload_name("ubuntu").is_err());
        assert!(upload_name("centos8").is_err());
        assert!(upload_name("plan9/4").is_err());
        assert!(upload_name("a/b/c").is_err());
        assert!(upload_name("../x").is_err());
        assert!(upload_name("").is_err());
    }

    #[test]
    fn architectures() {
        assert_eq!(
            upload_architecture("amd64/generic").as_deref(),
            Some("amd64/generic")
        );
        assert_eq!(
            upload_architecture("arm64").as_deref(),
            Some("arm64/generic")
        );
        assert_eq!(upload_architecture("vax/generic"), None);
        assert_eq!(upload_architecture("amd64/"), None);
    }

    #[test]
    fn upload_versions_are_days() {
        assert_eq!(today(1_714_558_272_345), "20240501");
    }

    #[test]
    fn import_events_have_maas_types_and_levels() {
        let event = import_event(
            &ImportEvent::SourceFailed {
                source_id: 1,
                url: "http://mirror/".into(),
                error: "refused".into(),
            },
            5,
        );
        assert_eq!(event.event_type, "REGION_IMPORT_ERROR");
        assert_eq!(event.level, EventLevel::Error);
        assert_eq!(event.node_id, None);
        assert!(event.description.contains("http://mirror/"));
        let started = import_event(&ImportEvent::Started { sources: 2 }, 5);
        assert_eq!(started.event_type, "REGION_IMPORT_INFO");
        let retry = import_event(
            &ImportEvent::SourceRetrying {
                source_id: 1,
                url: "u".into(),
                attempt: 1,
                error: "e".into(),
                retry_in_ms: 2000,
            },
            5,
        );
        assert_eq!(retry.event_type, "REGION_IMPORT_WARNING");
        assert!(retry.description.contains("retrying in 2.0s"));
    }
}
