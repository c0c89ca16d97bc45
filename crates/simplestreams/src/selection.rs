//! Boot source selections (`boot-source-selections`): which products of a source to import.

use serde::{Deserialize, Serialize};

use crate::document::Attributes;

/// Matches every value of a field.
pub const ANY: &str = "*";

/// One selection of a boot source, as the API holds it: `os` and `release` are single values,
/// the rest lists; `*` matches anything. An empty list matches nothing, so the region fills
/// omitted lists with `["*"]` the way MAAS's forms do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    pub os: String,
    pub release: String,
    pub arches: Vec<String>,
    pub subarches: Vec<String>,
    pub labels: Vec<String>,
}

impl Selection {
    /// Whether a product (or version) with these attributes is selected. Compares the
    /// stream's `os`, `release`, `arch`, `subarch` and `label`; a product missing one of
    /// them is selected only by `*` for that field.
    pub fn matches(&self, attributes: &Attributes) -> bool {
        let single = |wanted: &str, key: &str| {
            wanted == ANY || attributes.get(key).is_some_and(|value| value == wanted)
        };
        let listed = |wanted: &[String], key: &str| {
            wanted.iter().any(|entry| {
                entry == ANY || attributes.get(key).is_some_and(|value| value == entry)
            })
        };
        single(&self.os, "os")
            && single(&self.release, "release")
            && listed(&self.arches, "arch")
            && listed(&self.subarches, "subarch")
            && listed(&self.labels, "label")
    }
}

/// A bootloader the region imports without a selection (provisioning reference §7.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootloaderSelection {
    /// The product's `os` (`grub-efi-signed`).
    pub os: String,
    /// The product's `bootloader-type` (`uefi`).
    pub bootloader_type: String,
    pub arch: String,
}

impl BootloaderSelection {
    /// MAAS's implicit set: pxelinux (pxe, i386), grub-efi-signed (uefi, amd64), grub-efi
    /// (uefi, arm64), grub-ieee1275 (open-firmware, ppc64el).
    pub fn defaults() -> Vec<BootloaderSelection> {
        [
            ("pxelinux", "pxe", "i386"),
            ("grub-efi-signed", "uefi", "amd64"),
            ("grub-efi", "uefi", "arm64"),
            ("grub-ieee1275", "open-firmware", "ppc64el"),
        ]
        .into_iter()
        .map(|(os, bootloader_type, arch)| BootloaderSelection {
            os: os.to_owned(),
            bootloader_type: bootloader_type.to_owned(),
            arch: arch.to_owned(),
        })
        .collect()
    }

    pub fn matches(&self, attributes: &Attributes) -> bool {
        attributes.get("os") == Some(self.os.as_str())
            && attributes.get("bootloader-type") == Some(self.bootloader_type.as_str())
            && attributes.get("arch") == Some(self.arch.as_str())
    }
}
