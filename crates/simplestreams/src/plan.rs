//! What to import: the newest complete version of every selected product, the boot resource
//! it becomes, and the files to download that the store does not hold yet.
//!
//! Versions are ordered by their serial as text, as simplestreams orders them
//! (`20250805` > `20250716`, `20210819.1` > `20210819.0`). A version is complete when every
//! file its kind needs is present and well-formed; an incomplete newest version (a stream
//! caught mid-publication) falls back to the newest complete one and is reported.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::document::{Attributes, Item, Product, ProductList, Version};
use crate::selection::{BootloaderSelection, Selection};
use crate::types::{FileType, Sha256, StreamPath};

/// One boot source's parsed product lists and its selections.
#[derive(Clone, Copy, Debug)]
pub struct SourceProducts<'a> {
    pub source_id: i64,
    /// Higher wins when two sources offer the same resource.
    pub priority: i64,
    pub lists: &'a [ProductList],
    pub selections: &'a [Selection],
}

/// How a product is shaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProductKind {
    /// Kernel, initrd and a root (`squashfs`, or `root-image.gz`), optionally a DTB.
    MultiFile,
    /// One root file (`root-tgz`, `root-dd.gz`, ...), as CentOS images are published.
    SingleFile,
    /// Bootloader archives (`archive.tar.xz`).
    Bootloader,
}

/// A boot resource to import and the set (version) of it to hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlannedResource {
    pub source_id: i64,
    pub content_id: String,
    pub product: String,
    pub kind: ProductKind,
    /// `ubuntu/jammy`, `centos/centos70`, or for bootloaders `grub-efi-signed/uefi`.
    pub name: String,
    /// `amd64/ga-22.04`, `amd64/ga-24.04-lowlatency`, `amd64/generic`.
    pub architecture: String,
    pub version: String,
    pub label: String,
    pub kflavor: Option<String>,
    pub bootloader_type: Option<String>,
    /// What MAAS keeps in the resource's `extra`: `subarches`, `title`.
    pub extra: BTreeMap<String, String>,
    pub files: Vec<PlannedFile>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlannedFile {
    pub filetype: FileType,
    /// The item path's last segment (`boot-kernel`, `squashfs`, `grub2-signed.tar.xz`).
    pub filename: String,
    /// Where the file is on the source's mirror.
    pub path: StreamPath,
    pub sha256: Sha256,
    pub size: u64,
    /// `kpackage`, `kparams`, `src_package`, `src_release`, `src_version` when present.
    pub extra: BTreeMap<String, String>,
}

/// A product that a selection matched but that yields nothing to import.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub source_id: i64,
    pub product: String,
    pub reason: SkipReason,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum SkipReason {
    /// No matching version has every file it needs; `newest` is the newest matching one.
    NoCompleteVersion {
        newest: String,
        missing: Vec<String>,
        invalid: Vec<String>,
    },
    /// A higher-priority source offers the same resource.
    Shadowed { by_source_id: i64 },
}

/// The outcome of planning.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Resources in (name, architecture) order.
    pub resources: Vec<PlannedResource>,
    pub skipped: Vec<Skipped>,
    /// Selections (source id, index in that source's list) that matched no product.
    pub unmatched: Vec<(i64, usize)>,
}

/// A file to fetch: which source has it, where, and what it must hash to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Download {
    pub source_id: i64,
    pub path: StreamPath,
    pub sha256: Sha256,
    pub size: u64,
}

impl Plan {
    /// Every distinct file of the plan (by sha256) that `have` says is not stored yet.
    pub fn downloads(&self, have: impl Fn(&Sha256) -> bool) -> Vec<Download> {
        let mut seen = BTreeSet::new();
        let mut downloads = Vec::new();
        for resource in &self.resources {
            for file in &resource.files {
                if seen.insert(file.sha256.clone()) && !have(&file.sha256) {
                    downloads.push(Download {
                        source_id: resource.source_id,
                        path: file.path.clone(),
                        sha256: file.sha256.clone(),
                        size: file.size,
                    });
                }
            }
        }
        downloads
    }

    /// Bytes of every distinct file of the plan.
    pub fn total_bytes(&self) -> u64 {
        let mut seen = BTreeSet::new();
        self.resources
            .iter()
            .flat_map(|resource| &resource.files)
            .filter(|file| seen.insert(&file.sha256))
            .map(|file| file.size)
            .fold(0u64, u64::saturating_add)
    }
}

/// Plans an import: every product a selection of its source matches (the newest complete
/// matching version of each), the highest-priority source winning per resource, and the
/// `bootloaders` from the highest-priority source that has each of them.
pub fn plan(sources: &[SourceProducts<'_>], bootloaders: &[BootloaderSelection]) -> Plan {
    let mut order: Vec<&SourceProducts<'_>> = sources.iter().collect();
    // Stable: equal priorities keep the caller's order.
    order.sort_by_key(|source| std::cmp::Reverse(source.priority));

    let mut result = Plan::default();
    let mut chosen: BTreeMap<(String, String), PlannedResource> = BTreeMap::new();
    let mut bootloader_found = vec![false; bootloaders.len()];
    for source in order {
        let mut matched_selection = vec![false; source.selections.len()];
        for list in source.lists {
            for product in list.products.values() {
                let is_bootloader = product.attributes.get("bootloader-type").is_some();
                let wanted: Box<dyn Fn(&Attributes) -> bool> = if is_bootloader {
                    let open: Vec<usize> = bootloaders
                        .iter()
                        .enumerate()
                        .filter(|(index, selection)| {
                            !bootloader_found[*index] && selection.matches(&product.attributes)
                        })
                        .map(|(index, _)| index)
                        .collect();
                    if open.is_empty() {
                        continue;
                    }
                    Box::new(move |attributes: &Attributes| {
                        open.iter()
                            .any(|index| bootloaders[*index].matches(attributes))
                    })
                } else {
                    let mut any = false;
                    for (index, selection) in source.selections.iter().enumerate() {
                        if product_or_version_matches(selection, product) {
                            matched_selection[index] = true;
                            any = true;
                        }
                    }
                    if !any {
                        continue;
                    }
                    let selections = source.selections;
                    Box::new(move |attributes: &Attributes| {
                        selections.iter().any(|s| s.matches(attributes))
                    })
                };
                match newest_complete(product, &*wanted) {
                    Ok(Some((version, kind, files))) => {
                        let resource =
                            resource(source.source_id, list, product, version, kind, files);
                        if is_bootloader {
                            for (index, selection) in bootloaders.iter().enumerate() {
                                if selection.matches(&version.attributes) {
                                    bootloader_found[index] = true;
                                }
                            }
                        }
                        let key = (resource.name.clone(), resource.architecture.clone());
                        match chosen.get(&key) {
                            Some(existing) if existing.source_id != source.source_id => {
                                result.skipped.push(Skipped {
                                    source_id: source.source_id,
                                    product: product.name.clone(),
                                    reason: SkipReason::Shadowed {
                                        by_source_id: existing.source_id,
                                    },
                                });
                            }
                            // Two products of one source naming the same resource: the
                            // newer version wins.
                            Some(existing) if existing.version >= resource.version => {}
                            _ => {
                                chosen.insert(key, resource);
                            }
                        }
                    }
                    Ok(None) => {}
                    Err(reason) => result.skipped.push(Skipped {
                        source_id: source.source_id,
                        product: product.name.clone(),
                        reason,
                    }),
                }
            }
        }
        result.unmatched.extend(
            matched_selection
                .iter()
                .enumerate()
                .filter(|(_, matched)| !**matched)
                .map(|(index, _)| (source.source_id, index)),
        );
    }
    result.resources = chosen.into_values().collect();
    result.unmatched.sort_unstable();
    result
}

fn product_or_version_matches(selection: &Selection, product: &Product) -> bool {
    selection.matches(&product.attributes)
        || product
            .versions
            .values()
            .any(|version| selection.matches(&version.attributes))
}

/// A version picked for import, its kind and the items to fetch.
type Chosen<'p> = (&'p Version, ProductKind, Vec<&'p Item>);

/// The newest version that `wanted` accepts and that is complete. `Ok(None)` when no version
/// is wanted; `Err` when some are but none is complete.
fn newest_complete<'p>(
    product: &'p Product,
    wanted: &dyn Fn(&Attributes) -> bool,
) -> Result<Option<Chosen<'p>>, SkipReason> {
    let mut first_failure = None;
    for version in product.versions.values().rev() {
        if !wanted(&version.attributes) {
            continue;
        }
        match needed_items(version) {
            Ok((kind, items)) => return Ok(Some((version, kind, items))),
            Err(reason) => {
                first_failure.get_or_insert(reason);
            }
        }
    }
    match first_failure {
        Some(reason) => Err(reason),
        None => Ok(None),
    }
}

/// The items a version's kind needs, or why it is not complete.
fn needed_items(version: &Version) -> Result<(ProductKind, Vec<&Item>), SkipReason> {
    let by_type = |file_type: FileType| {
        version
            .items
            .values()
            .filter(move |item| item.ftype == file_type)
    };
    let invalid_of = |accept: &dyn Fn(&FileType) -> bool| -> Vec<String> {
        version
            .invalid
            .iter()
            .filter(|item| item.ftype.as_ref().is_some_and(accept))
            .map(|item| format!("{}: {}", item.name, item.error))
            .collect()
    };
    let incomplete = |missing: Vec<&str>, invalid: Vec<String>| SkipReason::NoCompleteVersion {
        newest: version.name.clone(),
        missing: missing.into_iter().map(str::to_owned).collect(),
        invalid,
    };
    let kernel_present = by_type(FileType::BootKernel).next().is_some()
        || version
            .invalid
            .iter()
            .any(|item| item.ftype == Some(FileType::BootKernel));
    if version.attributes.get("bootloader-type").is_some() {
        let invalid = invalid_of(&|t| *t == FileType::Archive);
        let archives: Vec<&Item> = by_type(FileType::Archive).collect();
        if archives.is_empty() || !invalid.is_empty() {
            let missing = if archives.is_empty() {
                vec![FileType::Archive.as_str()]
            } else {
                vec![]
            };
            return Err(incomplete(missing, invalid));
        }
        return Ok((ProductKind::Bootloader, archives));
    }
    if kernel_present {
        let multi = |t: &FileType| {
            matches!(
                t,
                FileType::BootKernel
                    | FileType::BootInitrd
                    | FileType::BootDtb
                    | FileType::Squashfs
                    | FileType::RootImageGz
            )
        };
        let invalid = invalid_of(&multi);
        let kernel = by_type(FileType::BootKernel).next();
        let initrd = by_type(FileType::BootInitrd).next();
        let root = by_type(FileType::Squashfs)
            .next()
            .or_else(|| by_type(FileType::RootImageGz).next());
        let mut missing = Vec::new();
        if kernel.is_none() {
            missing.push(FileType::BootKernel.as_str());
        }
        if initrd.is_none() {
            missing.push(FileType::BootInitrd.as_str());
        }
        if root.is_none() {
            missing.push("squashfs or root-image.gz");
        }
        return match (kernel, initrd, root) {
            (Some(kernel), Some(initrd), Some(root)) if invalid.is_empty() => {
                let mut items = vec![kernel, initrd];
                items.extend(by_type(FileType::BootDtb).next());
                items.push(root);
                Ok((ProductKind::MultiFile, items))
            }
            _ => Err(incomplete(missing, invalid)),
        };
    }
    let invalid = invalid_of(&FileType::is_single_file_root);
    match version
        .items
        .values()
        .find(|item| item.ftype.is_single_file_root())
    {
        Some(root) if invalid.is_empty() => Ok((ProductKind::SingleFile, vec![root])),
        Some(_) => Err(incomplete(vec![], invalid)),
        None => Err(incomplete(vec!["boot-kernel or a root file"], invalid)),
    }
}

fn resource(
    source_id: i64,
    list: &ProductList,
    product: &Product,
    version: &Version,
    kind: ProductKind,
    items: Vec<&Item>,
) -> PlannedResource {
    let attributes = &version.attributes;
    let text = |key: &str| attributes.get(key).map(str::to_owned);
    let os = text("os").unwrap_or_else(|| "unknown".to_owned());
    let arch = text("arch").unwrap_or_else(|| "unknown".to_owned());
    let bootloader_type = text("bootloader-type");
    let kflavor = text("kflavor");
    let (name, architecture) = match (&kind, &bootloader_type) {
        (ProductKind::Bootloader, Some(bootloader_type)) => {
            (format!("{os}/{bootloader_type}"), format!("{arch}/generic"))
        }
        _ => {
            let release = text("release").unwrap_or_else(|| "unknown".to_owned());
            let mut subarch = text("subarch").unwrap_or_else(|| "generic".to_owned());
            // Flavoured kernels (lowlatency, ...) are their own architecture.
            if let Some(flavor) = kflavor.as_deref()
                && flavor != "generic"
                && !subarch.ends_with(&format!("-{flavor}"))
            {
                subarch = format!("{subarch}-{flavor}");
            }
            (format!("{os}/{release}"), format!("{arch}/{subarch}"))
        }
    };
    let mut extra = BTreeMap::new();
    if let Some(subarches) = text("subarches") {
        extra.insert("subarches".to_owned(), subarches);
    }
    if let Some(title) = text("release_title") {
        extra.insert("title".to_owned(), title);
    }
    let files = items
        .into_iter()
        .map(|item| PlannedFile {
            filetype: item.ftype.clone(),
            filename: item.path.file_name().to_owned(),
            path: item.path.clone(),
            sha256: item.sha256.clone(),
            size: item.size,
            extra: [
                "kpackage",
                "kparams",
                "src_package",
                "src_release",
                "src_version",
            ]
            .into_iter()
            .filter_map(|key| Some((key.to_owned(), item.attributes.get(key)?.to_owned())))
            .collect(),
        })
        .collect();
    PlannedResource {
        source_id,
        content_id: list.content_id.clone(),
        product: product.name.clone(),
        kind,
        name,
        architecture,
        version: version.name.clone(),
        label: text("label").unwrap_or_else(|| "stable".to_owned()),
        kflavor: kflavor.filter(|_| kind != ProductKind::Bootloader),
        bootloader_type,
        extra,
        files,
    }
}
