//! The JSON of `boot-resources` (api.md §12.1) built from catalog records, so the region's
//! handlers serialise these instead of re-deriving the rules: `progress` only while
//! incomplete, `upload_uri` only on incomplete files of uploaded resources, `sets` keyed by
//! version newest first, no `resource_uri` on sets or files.

use std::collections::BTreeMap;

use maas_simplestreams::Sha256;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::catalog::{BootResource, ResourceDetail, ResourceType};
use crate::importer::{FileProgress, ImportProgress};

/// A resource as `GET boot-resources/` lists it. `extra` is flattened into the object.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BootResourceJson {
    pub id: i64,
    #[serde(rename = "type")]
    pub rtype: &'static str,
    pub name: String,
    pub architecture: String,
    pub resource_uri: String,
    /// The region's record of the last deployment (an ISO datetime), `null` when never.
    pub last_deployed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_image: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, String>,
    /// Only in the single-object read and the create reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sets: Option<SetsJson>,
}

/// `sets`, in the order given (newest first).
#[derive(Clone, Debug, PartialEq)]
pub struct SetsJson(pub Vec<(String, SetJson)>);

impl Serialize for SetsJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (version, set) in &self.0 {
            map.serialize_entry(version, set)?;
        }
        map.end()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SetJson {
    pub version: String,
    pub label: String,
    pub size: u64,
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    pub files: BTreeMap<String, FileJson>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileJson {
    pub filename: String,
    pub filetype: String,
    pub sha256: Sha256,
    pub filename_on_disk: String,
    pub size: u64,
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_uri: Option<String>,
}

pub fn resource_uri(id: i64) -> String {
    format!("/MAAS/api/2.0/boot-resources/{id}/")
}

/// The list entry of a resource.
pub fn resource_json(resource: &BootResource, last_deployed: Option<String>) -> BootResourceJson {
    let mut extra = resource.extra.clone();
    if let Some(kflavor) = &resource.kflavor {
        extra
            .entry("kflavor".to_owned())
            .or_insert_with(|| kflavor.clone());
    }
    if let Some(bootloader_type) = &resource.bootloader_type {
        extra
            .entry("bootloader-type".to_owned())
            .or_insert_with(|| bootloader_type.clone());
    }
    BootResourceJson {
        id: resource.id,
        rtype: resource.rtype.as_str(),
        name: resource.name.clone(),
        architecture: resource.architecture.clone(),
        resource_uri: resource_uri(resource.id),
        last_deployed,
        base_image: resource.base_image.clone(),
        extra,
        sets: None,
    }
}

/// The single-object read: the list entry plus `sets`. `filename_on_disk` comes from
/// [`crate::shortest_unique_prefixes`] over every stored hash; `uploaded` gives the bytes an
/// upload has received (by file id).
pub fn resource_detail_json(
    detail: &ResourceDetail,
    last_deployed: Option<String>,
    progress: &ImportProgress,
    uploaded: &dyn Fn(i64) -> u64,
    filename_on_disk: &BTreeMap<Sha256, String>,
) -> BootResourceJson {
    let mut json = resource_json(&detail.resource, last_deployed);
    let is_upload = detail.resource.rtype == ResourceType::Uploaded;
    let sets = detail
        .sets
        .iter()
        .map(|set| {
            let mut done_total = FileProgress::default();
            let files = set
                .files
                .iter()
                .map(|file| {
                    let file_progress = if file.complete {
                        FileProgress {
                            done: file.size,
                            total: file.size,
                        }
                    } else if is_upload {
                        FileProgress {
                            done: uploaded(file.id).min(file.size),
                            total: file.size,
                        }
                    } else {
                        progress.over([(&file.sha256, file.size, false)])
                    };
                    done_total.done += file_progress.done;
                    done_total.total += file_progress.total;
                    let json = FileJson {
                        filename: file.filename.clone(),
                        filetype: file.filetype.as_str().to_owned(),
                        sha256: file.sha256.clone(),
                        filename_on_disk: filename_on_disk
                            .get(&file.sha256)
                            .cloned()
                            .unwrap_or_else(|| file.sha256.prefix(7).to_owned()),
                        size: file.size,
                        complete: file.complete,
                        progress: (!file.complete).then(|| file_progress.percent()),
                        upload_uri: (is_upload && !file.complete).then(|| {
                            format!(
                                "/MAAS/api/2.0/boot-resources/{}/upload/{}/",
                                detail.resource.id, file.id
                            )
                        }),
                    };
                    (file.filename.clone(), json)
                })
                .collect();
            let complete = set.complete();
            (
                set.set.version.clone(),
                SetJson {
                    version: set.set.version.clone(),
                    label: set.set.label.clone(),
                    size: set.size(),
                    complete,
                    progress: (!complete).then(|| done_total.percent()),
                    files,
                },
            )
        })
        .collect();
    json.sets = Some(SetsJson(sets));
    json
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{BootResourceFile, BootResourceSet, SetDetail};
    use maas_simplestreams::FileType;

    #[test]
    fn upload_in_progress_renders_like_maas() {
        let sha256 = Sha256::parse(&"ab".repeat(32)).expect("sha");
        let detail = ResourceDetail {
            resource: BootResource {
                id: 7,
                rtype: ResourceType::Uploaded,
                name: "esxi/6.7".into(),
                architecture: "amd64/generic".into(),
                kflavor: None,
                bootloader_type: None,
                base_image: None,
                extra: [("title".to_owned(), "VMware ESXi 6.7".to_owned())].into(),
            },
            sets: vec![SetDetail {
                set: BootResourceSet {
                    id: 9,
                    resource_id: 7,
                    version: "20240301".into(),
                    label: "uploaded".into(),
                },
                files: vec![BootResourceFile {
                    id: 18,
                    set_id: 9,
                    filename: "root-dd.gz".into(),
                    filetype: FileType::RootDdGz,
                    sha256: sha256.clone(),
                    size: 400,
                    extra: BTreeMap::new(),
                    complete: false,
                }],
            }],
        };
        let json = resource_detail_json(
            &detail,
            None,
            &ImportProgress::default(),
            &|_| 100,
            &BTreeMap::new(),
        );
        let text = serde_json::to_string(&json).expect("json");
        assert_eq!(
            text,
            format!(
                "{{\"id\":7,\"type\":\"Uploaded\",\"name\":\"esxi/6.7\",\"architecture\":\"amd64/generic\",\
\"resource_uri\":\"/MAAS/api/2.0/boot-resources/7/\",\"last_deployed\":null,\"title\":\"VMware ESXi 6.7\",\
\"sets\":{{\"20240301\":{{\"version\":\"20240301\",\"label\":\"uploaded\",\"size\":400,\"complete\":false,\"progress\":25.0,\
\"files\":{{\"root-dd.gz\":{{\"filename\":\"root-dd.gz\",\"filetype\":\"root-dd.gz\",\"sha256\":\"{sha256}\",\
\"filename_on_disk\":\"abababa\",\"size\":400,\"complete\":false,\"progress\":25.0,\
\"upload_uri\":\"/MAAS/api/2.0/boot-resources/7/upload/18/\"}}}}}}}}}}"
            )
        );
    }
}
