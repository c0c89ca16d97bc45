//! Custom image uploads (`boot-resources create`, provisioning reference §7.6): the
//! resource, set and file records, and the chunked upload into the content store that the
//! `maas` CLI and python-libmaas drive with `PUT <upload_uri>`.

use std::collections::BTreeMap;
use std::sync::Arc;

use maas_simplestreams::{FileType, Sha256};
use thiserror::Error;

use crate::catalog::{
    BootResourceCatalog, CatalogError, NewBootResource, NewBootResourceFile, ResourceDetail,
    ResourceType,
};
use crate::content_store::{ContentStore, StoreError};

/// The `filetype` parameter of `boot-resources create`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UploadFileType {
    Tgz,
    Tbz,
    Txz,
    Ddtgz,
    Ddtbz,
    Ddtxz,
    Ddtar,
    Ddbz2,
    Ddgz,
    Ddxz,
    Ddraw,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "filetype {found:?} is not one of tgz, tbz, txz, ddtgz, ddtbz, ddtxz, ddtar, ddbz2, ddgz, ddxz, ddraw"
)]
pub struct UnknownFileType {
    pub found: String,
}

impl UploadFileType {
    pub const ALL: [UploadFileType; 11] = [
        UploadFileType::Tgz,
        UploadFileType::Tbz,
        UploadFileType::Txz,
        UploadFileType::Ddtgz,
        UploadFileType::Ddtbz,
        UploadFileType::Ddtxz,
        UploadFileType::Ddtar,
        UploadFileType::Ddbz2,
        UploadFileType::Ddgz,
        UploadFileType::Ddxz,
        UploadFileType::Ddraw,
    ];

    /// Parses the API value; MAAS's default when the parameter is absent is `tgz`.
    pub fn parse(text: &str) -> Result<UploadFileType, UnknownFileType> {
        UploadFileType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| UnknownFileType {
                found: text.chars().take(32).collect(),
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UploadFileType::Tgz => "tgz",
            UploadFileType::Tbz => "tbz",
            UploadFileType::Txz => "txz",
            UploadFileType::Ddtgz => "ddtgz",
            UploadFileType::Ddtbz => "ddtbz",
            UploadFileType::Ddtxz => "ddtxz",
            UploadFileType::Ddtar => "ddtar",
            UploadFileType::Ddbz2 => "ddbz2",
            UploadFileType::Ddgz => "ddgz",
            UploadFileType::Ddxz => "ddxz",
            UploadFileType::Ddraw => "ddraw",
        }
    }

    /// The stored file type.
    pub fn file_type(self) -> FileType {
        match self {
            UploadFileType::Tgz => FileType::RootTgz,
            UploadFileType::Tbz => FileType::RootTbz,
            UploadFileType::Txz => FileType::RootTxz,
            UploadFileType::Ddtgz => FileType::RootDd,
            UploadFileType::Ddtbz => FileType::RootDdTarBz2,
            UploadFileType::Ddtxz => FileType::RootDdTarXz,
            UploadFileType::Ddtar => FileType::RootDdTar,
            UploadFileType::Ddbz2 => FileType::RootDdBz2,
            UploadFileType::Ddgz => FileType::RootDdGz,
            UploadFileType::Ddxz => FileType::RootDdXz,
            UploadFileType::Ddraw => FileType::RootDdRaw,
        }
    }

    /// The stored file name (`root.tgz`, `root-dd.gz`, ...).
    pub fn filename(self) -> &'static str {
        match self {
            UploadFileType::Tgz => "root.tgz",
            UploadFileType::Tbz => "root.tbz",
            UploadFileType::Txz => "root.txz",
            UploadFileType::Ddtgz => "root-dd",
            UploadFileType::Ddtbz => "root-dd.tar.bz2",
            UploadFileType::Ddtxz => "root-dd.tar.xz",
            UploadFileType::Ddtar => "root-dd.tar",
            UploadFileType::Ddbz2 => "root-dd.bz2",
            UploadFileType::Ddgz => "root-dd.gz",
            UploadFileType::Ddxz => "root-dd.xz",
            UploadFileType::Ddraw => "root-dd.raw",
        }
    }

    /// Whether it holds a disk image (ESXi, Windows and Ubuntu Core need one).
    pub fn is_disk_image(self) -> bool {
        !matches!(
            self,
            UploadFileType::Tgz | UploadFileType::Tbz | UploadFileType::Txz
        )
    }
}

/// What a `boot-resources create` request describes, already validated by the region
/// (name rules, known architecture, base image).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadDescription {
    pub name: String,
    pub architecture: String,
    pub title: Option<String>,
    pub filetype: UploadFileType,
    pub base_image: Option<String>,
}

/// A `boot-resources create` sent without content: the description plus the `sha256` and
/// `size` the chunks must add up to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUpload {
    pub description: UploadDescription,
    pub sha256: Sha256,
    pub size: u64,
}

/// Bytes received of an upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadProgress {
    pub received: u64,
    pub size: u64,
    pub complete: bool,
}

/// Upload failures. [`UploadError::status`] and [`UploadError::maas_message`] give MAAS's
/// reply for the ones a client causes.
#[derive(Debug, Error)]
pub enum UploadError {
    #[error("boot resource file {file_id} does not exist")]
    NoSuchFile { file_id: i64 },
    #[error("boot resource file {file_id} belongs to a synced resource")]
    NotUploaded { file_id: i64 },
    #[error("upload chunk is empty")]
    MissingData,
    #[error("boot resource file {file_id} is already complete")]
    AlreadyComplete { file_id: i64 },
    #[error("upload exceeds the declared {size} bytes")]
    TooMuchData { size: u64 },
    #[error("uploaded content hashes to {actual}, not {expected}")]
    Sha256Mismatch { expected: Sha256, actual: Sha256 },
    #[error("boot resource catalog failed")]
    Catalog(#[from] CatalogError),
    #[error("image store failed")]
    Store(#[source] StoreError),
}

impl UploadError {
    /// The HTTP status MAAS answers with.
    pub fn status(&self) -> u16 {
        match self {
            UploadError::NoSuchFile { .. } => 404,
            UploadError::NotUploaded { .. } => 403,
            UploadError::MissingData
            | UploadError::AlreadyComplete { .. }
            | UploadError::TooMuchData { .. }
            | UploadError::Sha256Mismatch { .. } => 400,
            UploadError::Catalog(_) | UploadError::Store(_) => 500,
        }
    }

    /// MAAS's body for client errors (api.md §12.1).
    pub fn maas_message(&self) -> &'static str {
        match self {
            UploadError::MissingData => "Missing data.",
            UploadError::AlreadyComplete { .. } => "Cannot upload to a complete file.",
            UploadError::TooMuchData { .. } => "Too much data received.",
            UploadError::Sha256Mismatch { .. } => {
                "Saved content does not match given SHA256 value."
            }
            UploadError::NotUploaded { .. } => "Cannot upload to a synced resource.",
            UploadError::NoSuchFile { .. } => "Not Found",
            UploadError::Catalog(_) | UploadError::Store(_) => "Internal server error.",
        }
    }
}

/// Custom uploads over one catalog and store.
#[derive(Clone)]
pub struct Uploads {
    store: ContentStore,
    catalog: Arc<dyn BootResourceCatalog>,
}

impl Uploads {
    pub fn new(store: ContentStore, catalog: Arc<dyn BootResourceCatalog>) -> Uploads {
        Uploads { store, catalog }
    }

    /// Step 1 of an upload: the resource (found or created; the same name and architecture
    /// gets a new set), a set labelled `uploaded` versioned `today` (`YYYYMMDD`, then
    /// `YYYYMMDD.1`, ...), and its one file, complete at once if the store already holds
    /// identical content.
    pub async fn create(
        &self,
        upload: NewUpload,
        today: &str,
    ) -> Result<ResourceDetail, UploadError> {
        let new = &upload.description;
        let mut extra = BTreeMap::new();
        if let Some(title) = &new.title {
            extra.insert("title".to_owned(), title.clone());
        }
        let resource = match self
            .catalog
            .find_resource(ResourceType::Uploaded, &new.name, &new.architecture)
            .await?
        {
            Some(mut resource) => {
                if new.title.is_some() || new.base_image.is_some() {
                    resource.extra.extend(extra);
                    if new.base_image.is_some() {
                        resource.base_image = new.base_image.clone();
                    }
                    self.catalog.update_resource(&resource).await?;
                }
                resource
            }
            None => {
                self.catalog
                    .create_resource(NewBootResource {
                        rtype: ResourceType::Uploaded,
                        name: new.name.clone(),
                        architecture: new.architecture.clone(),
                        kflavor: None,
                        bootloader_type: None,
                        base_image: new.base_image.clone(),
                        extra,
                    })
                    .await?
            }
        };
        let versions: Vec<String> = self
            .catalog
            .sets(resource.id)
            .await?
            .into_iter()
            .map(|set| set.version)
            .collect();
        let version = (0..)
            .map(|n| {
                if n == 0 {
                    today.to_owned()
                } else {
                    format!("{today}.{n}")
                }
            })
            .find(|candidate| !versions.contains(candidate))
            .unwrap_or_else(|| today.to_owned());
        let set = self
            .catalog
            .create_set(resource.id, &version, "uploaded")
            .await?;
        let complete = self.store.has(&upload.sha256, upload.size).await;
        self.catalog
            .add_file(
                set.id,
                NewBootResourceFile {
                    filename: new.filetype.filename().to_owned(),
                    filetype: new.filetype.file_type(),
                    sha256: upload.sha256.clone(),
                    size: upload.size,
                    extra: BTreeMap::new(),
                    complete,
                },
            )
            .await?;
        tracing::info!(name = %resource.name, architecture = %resource.architecture, version, complete, "boot resource upload created");
        Ok(ResourceDetail::load(self.catalog.as_ref(), resource).await?)
    }

    /// Step 2: one `PUT <upload_uri>` body. The last chunk (the one reaching the declared
    /// size) is checked against the sha256; the file is then complete and published.
    pub async fn append(&self, file_id: i64, chunk: &[u8]) -> Result<UploadProgress, UploadError> {
        let file = self
            .catalog
            .file(file_id)
            .await?
            .ok_or(UploadError::NoSuchFile { file_id })?;
        if !self.is_uploaded(file.set_id).await? {
            return Err(UploadError::NotUploaded { file_id });
        }
        if file.complete {
            return Err(UploadError::AlreadyComplete { file_id });
        }
        if chunk.is_empty() {
            return Err(UploadError::MissingData);
        }
        let upload_id = file_id.to_string();
        let received = match self
            .store
            .append_upload(&upload_id, &file.sha256, file.size, chunk)
            .await
        {
            Ok(received) => received,
            Err(StoreError::TooMuchData { expected }) => {
                return Err(UploadError::TooMuchData { size: expected });
            }
            Err(StoreError::Sha256Mismatch { expected, actual }) => {
                tracing::warn!(file_id, %expected, %actual, "uploaded content does not match its sha256");
                return Err(UploadError::Sha256Mismatch { expected, actual });
            }
            Err(error) => return Err(UploadError::Store(error)),
        };
        let complete = received == file.size;
        if complete {
            self.catalog.set_complete(&file.sha256, true).await?;
            tracing::info!(file_id, sha256 = %file.sha256, size = file.size, "boot resource upload complete");
        }
        Ok(UploadProgress {
            received,
            size: file.size,
            complete,
        })
    }

    /// Bytes received so far (for `progress` of an incomplete uploaded file).
    pub async fn received(&self, file_id: i64) -> Result<u64, UploadError> {
        self.store
            .upload_len(&file_id.to_string())
            .await
            .map_err(UploadError::Store)
    }

    /// A `boot-resources create` that carried `content`: stores it whole, then records it.
    pub async fn create_with_content(
        &self,
        description: UploadDescription,
        content: impl tokio::io::AsyncRead + Unpin,
        today: &str,
    ) -> Result<ResourceDetail, UploadError> {
        let (sha256, size) = self
            .store
            .ingest(content)
            .await
            .map_err(UploadError::Store)?;
        self.create(
            NewUpload {
                description,
                sha256,
                size,
            },
            today,
        )
        .await
    }

    async fn is_uploaded(&self, set_id: i64) -> Result<bool, UploadError> {
        for resource in self.catalog.resources().await? {
            if self
                .catalog
                .sets(resource.id)
                .await?
                .iter()
                .any(|set| set.id == set_id)
            {
                return Ok(resource.rtype == ResourceType::Uploaded);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filetype_maps_to_a_stored_type_and_name() {
        let expected = [
            ("tgz", "root-tgz", "root.tgz"),
            ("tbz", "root-tbz", "root.tbz"),
            ("txz", "root-txz", "root.txz"),
            ("ddtgz", "root-dd", "root-dd"),
            ("ddtbz", "root-dd.tar.bz2", "root-dd.tar.bz2"),
            ("ddtxz", "root-dd.tar.xz", "root-dd.tar.xz"),
            ("ddtar", "root-dd.tar", "root-dd.tar"),
            ("ddbz2", "root-dd.bz2", "root-dd.bz2"),
            ("ddgz", "root-dd.gz", "root-dd.gz"),
            ("ddxz", "root-dd.xz", "root-dd.xz"),
            ("ddraw", "root-dd.raw", "root-dd.raw"),
        ];
        for (api, stored, filename) in expected {
            let kind = UploadFileType::parse(api).expect(api);
            assert_eq!(kind.as_str(), api);
            assert_eq!(kind.file_type().as_str(), stored, "{api}");
            assert_eq!(kind.filename(), filename, "{api}");
        }
        assert!(UploadFileType::parse("iso").is_err());
        assert!(UploadFileType::Ddgz.is_disk_image());
        assert!(!UploadFileType::Tgz.is_disk_image());
    }
}
