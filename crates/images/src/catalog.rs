//! The port the region implements to persist boot resources (its `boot-resources` tables),
//! the records it holds, and [`MemoryCatalog`], the in-memory implementation the tests use.
//!
//! Model (provisioning reference §7.4): a [`BootResource`] (synced or uploaded, `name`,
//! `architecture`) has [`BootResourceSet`]s (one per stream version or upload), each with
//! [`BootResourceFile`]s. A file is complete when the content store holds its bytes; a set is
//! complete when all its files are; the newest complete set is the one machines boot.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;
use maas_simplestreams::{FileType, Sha256};
use serde::Serialize;
use thiserror::Error;

/// `rtype`: how a resource got here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ResourceType {
    /// Imported from a boot source (MAAS `rtype` 0, shown as `Synced`).
    Synced,
    /// Uploaded by a user (MAAS `rtype` 2, shown as `Uploaded`).
    Uploaded,
}

impl ResourceType {
    /// MAAS's number for the `rtype` column.
    pub fn as_number(self) -> i64 {
        match self {
            ResourceType::Synced => 0,
            ResourceType::Uploaded => 2,
        }
    }

    /// The API's `type` (`Synced`, `Uploaded`).
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Synced => "Synced",
            ResourceType::Uploaded => "Uploaded",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BootResource {
    pub id: i64,
    pub rtype: ResourceType,
    /// `ubuntu/jammy`, `grub-efi-signed/uefi`, `esxi/6.7`, `my-image`.
    pub name: String,
    /// `amd64/ga-22.04`, `amd64/generic`.
    pub architecture: String,
    pub kflavor: Option<String>,
    pub bootloader_type: Option<String>,
    /// Custom images: the `<os>/<series>` that installs them.
    pub base_image: Option<String>,
    /// `subarches`, `title`, ... (the API lists them as extra keys of the resource).
    pub extra: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBootResource {
    pub rtype: ResourceType,
    pub name: String,
    pub architecture: String,
    pub kflavor: Option<String>,
    pub bootloader_type: Option<String>,
    pub base_image: Option<String>,
    pub extra: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BootResourceSet {
    pub id: i64,
    pub resource_id: i64,
    /// The stream version (`20240301`) or, for uploads, `YYYYMMDD[.n]`.
    pub version: String,
    /// `stable`, `candidate`, `uploaded`.
    pub label: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BootResourceFile {
    pub id: i64,
    pub set_id: i64,
    /// `boot-kernel`, `squashfs`, `root-dd.gz`.
    pub filename: String,
    pub filetype: FileType,
    pub sha256: Sha256,
    pub size: u64,
    /// `kpackage`, `kparams`, `src_package`, ...
    pub extra: BTreeMap<String, String>,
    /// The content store holds the bytes.
    pub complete: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBootResourceFile {
    pub filename: String,
    pub filetype: FileType,
    pub sha256: Sha256,
    pub size: u64,
    pub extra: BTreeMap<String, String>,
    pub complete: bool,
}

#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("boot resource {what} {id} does not exist")]
    NotFound { what: &'static str, id: i64 },
    #[error("boot resource {what} already exists")]
    Conflict { what: String },
    #[error("boot resource catalog backend failed")]
    Backend {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Persistence of boot resources, sets and files. The region implements it on its store;
/// the importer and uploads call it.
#[async_trait]
pub trait BootResourceCatalog: Send + Sync {
    async fn resources(&self) -> Result<Vec<BootResource>, CatalogError>;
    async fn resource(&self, id: i64) -> Result<Option<BootResource>, CatalogError>;
    /// The resource with this type, name and architecture (unique together).
    async fn find_resource(
        &self,
        rtype: ResourceType,
        name: &str,
        architecture: &str,
    ) -> Result<Option<BootResource>, CatalogError>;
    async fn create_resource(&self, new: NewBootResource) -> Result<BootResource, CatalogError>;
    /// Replaces `kflavor`, `bootloader_type`, `base_image` and `extra`.
    async fn update_resource(&self, resource: &BootResource) -> Result<(), CatalogError>;
    /// Deletes the resource with its sets and files.
    async fn delete_resource(&self, id: i64) -> Result<(), CatalogError>;

    /// Sets of a resource, oldest version first.
    async fn sets(&self, resource_id: i64) -> Result<Vec<BootResourceSet>, CatalogError>;
    async fn create_set(
        &self,
        resource_id: i64,
        version: &str,
        label: &str,
    ) -> Result<BootResourceSet, CatalogError>;
    /// Deletes the set with its files.
    async fn delete_set(&self, set_id: i64) -> Result<(), CatalogError>;

    async fn files(&self, set_id: i64) -> Result<Vec<BootResourceFile>, CatalogError>;
    async fn file(&self, file_id: i64) -> Result<Option<BootResourceFile>, CatalogError>;
    async fn add_file(
        &self,
        set_id: i64,
        new: NewBootResourceFile,
    ) -> Result<BootResourceFile, CatalogError>;
    /// Marks every file with this hash, in any set, complete or not.
    async fn set_complete(&self, sha256: &Sha256, complete: bool) -> Result<(), CatalogError>;
    /// Every hash some file refers to.
    async fn referenced(&self) -> Result<BTreeSet<Sha256>, CatalogError>;
}

/// A resource with its sets and their files, newest set first: what the API's single-object
/// read renders (`sets` keyed by version).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResourceDetail {
    pub resource: BootResource,
    pub sets: Vec<SetDetail>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SetDetail {
    pub set: BootResourceSet,
    pub files: Vec<BootResourceFile>,
}

impl SetDetail {
    pub fn complete(&self) -> bool {
        !self.files.is_empty() && self.files.iter().all(|file| file.complete)
    }

    pub fn size(&self) -> u64 {
        self.files.iter().map(|file| file.size).sum()
    }
}

impl ResourceDetail {
    pub async fn load(
        catalog: &dyn BootResourceCatalog,
        resource: BootResource,
    ) -> Result<ResourceDetail, CatalogError> {
        let mut sets = Vec::new();
        for set in catalog.sets(resource.id).await? {
            let files = catalog.files(set.id).await?;
            sets.push(SetDetail { set, files });
        }
        sets.reverse();
        Ok(ResourceDetail { resource, sets })
    }

    /// The newest complete set: what machines boot.
    pub fn current(&self) -> Option<&SetDetail> {
        self.sets.iter().find(|set| set.complete())
    }
}

/// One file a rack serves: its classic boot path
/// (`ubuntu/amd64/ga-22.04/jammy/stable/boot-kernel`, provisioning reference §3.3 without
/// the hash prefix), hash and size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BootFileEntry {
    pub path: String,
    pub sha256: Sha256,
    pub size: u64,
}

/// The files of the newest complete set of every resource, by boot path: what the region
/// hands racks as their image manifest. Paths are `<os>/<arch>/<subarch>/<series>/<label>/
/// <filename>` for `<os>/<series>` names and `<name>/<arch>/<subarch>/<label>/<filename>`
/// otherwise (bootloaders, custom images).
pub async fn boot_files(
    catalog: &dyn BootResourceCatalog,
) -> Result<Vec<BootFileEntry>, CatalogError> {
    let mut entries = Vec::new();
    for resource in catalog.resources().await? {
        let detail = ResourceDetail::load(catalog, resource).await?;
        let Some(current) = detail.current() else {
            continue;
        };
        let (arch, subarch) = detail
            .resource
            .architecture
            .split_once('/')
            .unwrap_or((detail.resource.architecture.as_str(), "generic"));
        let prefix = match detail.resource.name.split_once('/') {
            Some((os, series)) => format!("{os}/{arch}/{subarch}/{series}/{}", current.set.label),
            None => format!(
                "{}/{arch}/{subarch}/{}",
                detail.resource.name, current.set.label
            ),
        };
        for file in &current.files {
            entries.push(BootFileEntry {
                path: format!("{prefix}/{}", file.filename),
                sha256: file.sha256.clone(),
                size: file.size,
            });
        }
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

/// The catalog in memory, for tests and for a region without a database.
#[derive(Debug, Default)]
pub struct MemoryCatalog {
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    next_id: i64,
    resources: BTreeMap<i64, BootResource>,
    sets: BTreeMap<i64, BootResourceSet>,
    files: BTreeMap<i64, BootResourceFile>,
}

impl MemoryState {
    fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }
}

impl MemoryCatalog {
    pub fn new() -> MemoryCatalog {
        MemoryCatalog::default()
    }

    fn with<T>(&self, action: impl FnOnce(&mut MemoryState) -> T) -> T {
        // A panic while holding the lock leaves plain data behind; keep using it.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        action(&mut state)
    }
}

#[async_trait]
impl BootResourceCatalog for MemoryCatalog {
    async fn resources(&self) -> Result<Vec<BootResource>, CatalogError> {
        Ok(self.with(|state| state.resources.values().cloned().collect()))
    }

    async fn resource(&self, id: i64) -> Result<Option<BootResource>, CatalogError> {
        Ok(self.with(|state| state.resources.get(&id).cloned()))
    }

    async fn find_resource(
        &self,
        rtype: ResourceType,
        name: &str,
        architecture: &str,
    ) -> Result<Option<BootResource>, CatalogError> {
        Ok(self.with(|state| {
            state
                .resources
                .values()
                .find(|r| r.rtype == rtype && r.name == name && r.architecture == architecture)
                .cloned()
        }))
    }

    async fn create_resource(&self, new: NewBootResource) -> Result<BootResource, CatalogError> {
        self.with(|state| {
            if state.resources.values().any(|r| {
                r.rtype == new.rtype && r.name == new.name && r.architecture == new.architecture
            }) {
                return Err(CatalogError::Conflict {
                    what: format!("{} {}", new.name, new.architecture),
                });
            }
            let resource = BootResource {
                id: state.id(),
                rtype: new.rtype,
                name: new.name,
                architecture: new.architecture,
                kflavor: new.kflavor,
                bootloader_type: new.bootloader_type,
                base_image: new.base_image,
                extra: new.extra,
            };
            state.resources.insert(resource.id, resource.clone());
            Ok(resource)
        })
    }

    async fn update_resource(&self, resource: &BootResource) -> Result<(), CatalogError> {
        self.with(|state| match state.resources.get_mut(&resource.id) {
            Some(stored) => {
                stored.kflavor = resource.kflavor.clone();
                stored.bootloader_type = resource.bootloader_type.clone();
                stored.base_image = resource.base_image.clone();
                stored.extra = resource.extra.clone();
                Ok(())
            }
            None => Err(CatalogError::NotFound {
                what: "resource",
                id: resource.id,
            }),
        })
    }

    async fn delete_resource(&self, id: i64) -> Result<(), CatalogError> {
        self.with(|state| {
            if state.resources.remove(&id).is_none() {
                return Err(CatalogError::NotFound {
                    what: "resource",
                    id,
                });
            }
            let sets: Vec<i64> = state
                .sets
                .values()
                .filter(|set| set.resource_id == id)
                .map(|set| set.id)
                .collect();
            for set_id in sets {
                state.sets.remove(&set_id);
                state.files.retain(|_, file| file.set_id != set_id);
            }
            Ok(())
        })
    }

    async fn sets(&self, resource_id: i64) -> Result<Vec<BootResourceSet>, CatalogError> {
        let mut sets: Vec<BootResourceSet> = self.with(|state| {
            state
                .sets
                .values()
                .filter(|set| set.resource_id == resource_id)
                .cloned()
                .collect()
        });
        sets.sort_by(|a, b| a.version.cmp(&b.version).then(a.id.cmp(&b.id)));
        Ok(sets)
    }

    async fn create_set(
        &self,
        resource_id: i64,
        version: &str,
        label: &str,
    ) -> Result<BootResourceSet, CatalogError> {
        self.with(|state| {
            if !state.resources.contains_key(&resource_id) {
                return Err(CatalogError::NotFound {
                    what: "resource",
                    id: resource_id,
                });
            }
            if state
                .sets
                .values()
                .any(|set| set.resource_id == resource_id && set.version == version)
            {
                return Err(CatalogError::Conflict {
                    what: format!("set {version} of resource {resource_id}"),
                });
            }
            let set = BootResourceSet {
                id: state.id(),
                resource_id,
                version: version.to_owned(),
                label: label.to_owned(),
            };
            state.sets.insert(set.id, set.clone());
            Ok(set)
        })
    }

    async fn delete_set(&self, set_id: i64) -> Result<(), CatalogError> {
        self.with(|state| {
            if state.sets.remove(&set_id).is_none() {
                return Err(CatalogError::NotFound {
                    what: "set",
                    id: set_id,
                });
            }
            state.files.retain(|_, file| file.set_id != set_id);
            Ok(())
        })
    }

    async fn files(&self, set_id: i64) -> Result<Vec<BootResourceFile>, CatalogError> {
        Ok(self.with(|state| {
            state
                .files
                .values()
                .filter(|file| file.set_id == set_id)
                .cloned()
                .collect()
        }))
    }

    async fn file(&self, file_id: i64) -> Result<Option<BootResourceFile>, CatalogError> {
        Ok(self.with(|state| state.files.get(&file_id).cloned()))
    }

    async fn add_file(
        &self,
        set_id: i64,
        new: NewBootResourceFile,
    ) -> Result<BootResourceFile, CatalogError> {
        self.with(|state| {
            if !state.sets.contains_key(&set_id) {
                return Err(CatalogError::NotFound {
                    what: "set",
                    id: set_id,
                });
            }
            if state
                .files
                .values()
                .any(|file| file.set_id == set_id && file.filename == new.filename)
            {
                return Err(CatalogError::Conflict {
                    what: format!("file {} of set {set_id}", new.filename),
                });
            }
            let file = BootResourceFile {
                id: state.id(),
                set_id,
                filename: new.filename,
                filetype: new.filetype,
                sha256: new.sha256,
                size: new.size,
                extra: new.extra,
                complete: new.complete,
            };
            state.files.insert(file.id, file.clone());
            Ok(file)
        })
    }

    async fn set_complete(&self, sha256: &Sha256, complete: bool) -> Result<(), CatalogError> {
        self.with(|state| {
            for file in state.files.values_mut() {
                if &file.sha256 == sha256 {
                    file.complete = complete;
                }
            }
        });
        Ok(())
    }

    async fn referenced(&self) -> Result<BTreeSet<Sha256>, CatalogError> {
        Ok(self.with(|state| state.files.values().map(|f| f.sha256.clone()).collect()))
    }
}
