//! Boot images: boot resources with their sets and files (what machines boot), and the
//! boot sources and selections they are imported from (provisioning reference §7).
//!
//! Hashes and file types are plain text here; the region checks them on the way in and
//! turns these records into the image importer's types.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::{Millis, StoreResult};

/// How a boot resource got here (MAAS's `rtype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BootResourceType {
    /// Imported from a boot source (0).
    Synced,
    /// Uploaded by a user (2).
    Uploaded,
}

impl BootResourceType {
    pub fn number(self) -> i64 {
        match self {
            BootResourceType::Synced => 0,
            BootResourceType::Uploaded => 2,
        }
    }

    pub fn from_number(number: i64) -> Option<BootResourceType> {
        match number {
            0 => Some(BootResourceType::Synced),
            2 => Some(BootResourceType::Uploaded),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootResource {
    pub id: i64,
    pub rtype: BootResourceType,
    /// `ubuntu/jammy`, `grub-efi-signed/uefi`, `esxi/6.7`, `my-image`.
    pub name: String,
    /// `amd64/ga-22.04`, `amd64/generic`.
    pub architecture: String,
    pub kflavor: Option<String>,
    pub bootloader_type: Option<String>,
    /// Custom images: the `<os>/<series>` that installs them.
    pub base_image: Option<String>,
    /// `subarches`, `title`, ...
    pub extra: BTreeMap<String, String>,
    /// When a machine last deployed it.
    pub last_deployed: Option<Millis>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBootResource {
    pub rtype: BootResourceType,
    pub name: String,
    pub architecture: String,
    pub kflavor: Option<String>,
    pub bootloader_type: Option<String>,
    pub base_image: Option<String>,
    pub extra: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootResourceSet {
    pub id: i64,
    pub resource_id: i64,
    /// The stream version (`20240301`) or, for uploads, `YYYYMMDD[.n]`.
    pub version: String,
    /// `stable`, `candidate`, `uploaded`.
    pub label: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootResourceFile {
    pub id: i64,
    pub set_id: i64,
    /// `boot-kernel`, `squashfs`, `root-dd.gz`.
    pub filename: String,
    /// `boot-kernel`, `root-tgz`, `root-dd.gz`.
    pub filetype: String,
    /// Lower-case hex.
    pub sha256: String,
    pub size: i64,
    /// `kpackage`, `kparams`, ...
    pub extra: BTreeMap<String, String>,
    /// The region's content store holds the bytes.
    pub complete: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBootResourceFile {
    pub filename: String,
    pub filetype: String,
    pub sha256: String,
    pub size: i64,
    pub extra: BTreeMap<String, String>,
    pub complete: bool,
}

/// A simplestreams mirror images are imported from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootSource {
    pub id: i64,
    pub url: String,
    /// A keyring file on the region; empty when `keyring_data` holds the keyring.
    pub keyring_filename: String,
    pub keyring_data: Vec<u8>,
    /// Documents are taken unsigned (only when the source says so).
    pub skip_keyring_verification: bool,
    /// Higher wins when two sources offer the same image.
    pub priority: i64,
    pub created: Millis,
    pub updated: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootSourceFields {
    pub url: String,
    pub keyring_filename: String,
    pub keyring_data: Vec<u8>,
    pub skip_keyring_verification: bool,
    pub priority: i64,
}

/// What to import from a source: one OS release, for some arches, subarches and labels
/// (`*` for any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootSourceSelection {
    pub id: i64,
    pub boot_source_id: i64,
    pub os: String,
    pub release: String,
    pub arches: Vec<String>,
    pub subarches: Vec<String>,
    pub labels: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootSourceSelectionFields {
    pub os: String,
    pub release: String,
    pub arches: Vec<String>,
    pub subarches: Vec<String>,
    pub labels: Vec<String>,
}

/// Boot resources, sets and files; boot sources and selections.
#[async_trait]
pub trait BootResourceStore: Send + Sync {
    /// Every boot resource, by id.
    async fn boot_resources(&self) -> StoreResult<Vec<BootResource>>;
    async fn boot_resource(&self, id: i64) -> StoreResult<Option<BootResource>>;
    /// The resource with this type, name and architecture (unique together).
    async fn find_boot_resource(
        &self,
        rtype: BootResourceType,
        name: &str,
        architecture: &str,
    ) -> StoreResult<Option<BootResource>>;
    /// Conflict when the type, name and architecture are taken.
    async fn create_boot_resource(
        &self,
        new: NewBootResource,
        now: Millis,
    ) -> StoreResult<BootResource>;
    /// Replaces `kflavor`, `bootloader_type`, `base_image` and `extra`.
    async fn update_boot_resource(&self, resource: &BootResource) -> StoreResult<()>;
    async fn set_boot_resource_deployed(&self, id: i64, now: Millis) -> StoreResult<()>;
    /// Deletes the resource with its sets and files; NotFound when absent.
    async fn delete_boot_resource(&self, id: i64) -> StoreResult<()>;

    /// Sets of a resource, oldest version first.
    async fn boot_resource_sets(&self, resource_id: i64) -> StoreResult<Vec<BootResourceSet>>;
    async fn boot_resource_set(&self, id: i64) -> StoreResult<Option<BootResourceSet>>;
    /// Conflict when the resource has this version; NotFound when it is absent.
    async fn create_boot_resource_set(
        &self,
        resource_id: i64,
        version: &str,
        label: &str,
        now: Millis,
    ) -> StoreResult<BootResourceSet>;
    /// Deletes the set with its files; NotFound when absent.
    async fn delete_boot_resource_set(&self, id: i64) -> StoreResult<()>;

    /// Files of a set, by id.
    async fn boot_resource_files(&self, set_id: i64) -> StoreResult<Vec<BootResourceFile>>;
    async fn boot_resource_file(&self, id: i64) -> StoreResult<Option<BootResourceFile>>;
    /// Conflict when the set has a file of this name; NotFound when it is absent.
    async fn add_boot_resource_file(
        &self,
        set_id: i64,
        new: NewBootResourceFile,
    ) -> StoreResult<BootResourceFile>;
    /// Marks every file with this hash, in any set, complete or not.
    async fn set_boot_resource_files_complete(
        &self,
        sha256: &str,
        complete: bool,
    ) -> StoreResult<()>;
    /// Every hash some file refers to, sorted.
    async fn boot_resource_hashes(&self) -> StoreResult<Vec<String>>;

    /// Boot sources by id.
    async fn boot_sources(&self) -> StoreResult<Vec<BootSource>>;
    async fn boot_source(&self, id: i64) -> StoreResult<Option<BootSource>>;
    /// Conflict when the URL is taken.
    async fn create_boot_source(
        &self,
        fields: BootSourceFields,
        now: Millis,
    ) -> StoreResult<BootSource>;
    async fn update_boot_source(
        &self,
        id: i64,
        fields: BootSourceFields,
        now: Millis,
    ) -> StoreResult<BootSource>;
    /// Deletes the source with its selections; NotFound when absent.
    async fn delete_boot_source(&self, id: i64) -> StoreResult<()>;

    /// A source's selections, by id.
    async fn boot_source_selections(
        &self,
        boot_source_id: i64,
    ) -> StoreResult<Vec<BootSourceSelection>>;
    async fn boot_source_selection(&self, id: i64) -> StoreResult<Option<BootSourceSelection>>;
    /// Conflict when the source already selects this os and release; NotFound when the
    /// source is absent.
    async fn create_boot_source_selection(
        &self,
        boot_source_id: i64,
        fields: BootSourceSelectionFields,
    ) -> StoreResult<BootSourceSelection>;
    async fn update_boot_source_selection(
        &self,
        id: i64,
        fields: BootSourceSelectionFields,
    ) -> StoreResult<BootSourceSelection>;
    async fn delete_boot_source_selection(&self, id: i64) -> StoreResult<()>;
}
