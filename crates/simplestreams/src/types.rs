//! Checked values that stream documents carry: content hashes, mirror-relative paths and
//! boot resource file types.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// A SHA-256 digest as 64 lower-case hex digits; built only through [`Sha256::parse`] or
/// [`Sha256::from_digest`], so code further in never re-checks it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256(String);

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Sha256Error {
    #[error("sha256 has {len} characters, expected 64")]
    WrongLength { len: usize },
    #[error("sha256 contains {found:?}, which is not a hex digit")]
    NotHex { found: char },
}

impl Sha256 {
    /// Accepts upper- or lower-case hex and keeps it lower-case.
    pub fn parse(text: &str) -> Result<Sha256, Sha256Error> {
        if let Some(found) = text.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(Sha256Error::NotHex { found });
        }
        if text.len() != 64 {
            return Err(Sha256Error::WrongLength { len: text.len() });
        }
        Ok(Sha256(text.to_ascii_lowercase()))
    }

    pub fn from_digest(digest: [u8; 32]) -> Sha256 {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = String::with_capacity(64);
        for byte in digest {
            text.push(char::from(HEX[usize::from(byte >> 4)]));
            text.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        Sha256(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first `len` hex digits (all 64 when `len` is larger).
    pub fn prefix(&self, len: usize) -> &str {
        &self.0[..len.min(64)]
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Sha256({})", &self.0[..12])
    }
}

impl Serialize for Sha256 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Sha256, D::Error> {
        let text = String::deserialize(deserializer)?;
        Sha256::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A path relative to a mirror's root (`noble/amd64/20250805/ga-24.04/generic/boot-kernel`):
/// no leading `/`, no `.` or `..` segment, no empty segment, no `\`, `?`, `#`, `%` or control
/// characters, so joining it to the mirror URL or to a directory can never leave either.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize)]
pub struct StreamPath(String);

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StreamPathError {
    #[error("path is empty")]
    Empty,
    #[error("path is longer than {max} bytes")]
    TooLong { max: usize },
    #[error("path starts with '/'")]
    Absolute,
    #[error("path has an empty, '.' or '..' segment")]
    BadSegment,
    #[error("path contains {found:?}")]
    ForbiddenCharacter { found: char },
}

impl StreamPath {
    const MAX_LEN: usize = 1024;

    pub fn parse(text: &str) -> Result<StreamPath, StreamPathError> {
        if text.is_empty() {
            return Err(StreamPathError::Empty);
        }
        if text.len() > Self::MAX_LEN {
            return Err(StreamPathError::TooLong { max: Self::MAX_LEN });
        }
        if text.starts_with('/') {
            return Err(StreamPathError::Absolute);
        }
        if let Some(found) = text
            .chars()
            .find(|c| c.is_control() || matches!(c, '\\' | '?' | '#' | '%'))
        {
            return Err(StreamPathError::ForbiddenCharacter { found });
        }
        if text
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        {
            return Err(StreamPathError::BadSegment);
        }
        Ok(StreamPath(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment (`boot-kernel`).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// This path with `suffix` appended to its last segment (`index.json` -> `index.json.gpg`).
    pub fn with_suffix(&self, suffix: &str) -> Result<StreamPath, StreamPathError> {
        StreamPath::parse(&format!("{}{suffix}", self.0))
    }
}

impl fmt::Display for StreamPath {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// A boot resource file type, as items name it in `ftype` and as MAAS stores it
/// (`BootResourceFile.filetype`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum FileType {
    BootKernel,
    BootInitrd,
    BootDtb,
    Squashfs,
    /// `root-image.gz`: the older compressed ext4 root, superseded by `squashfs`.
    RootImageGz,
    RootTgz,
    RootTbz,
    RootTxz,
    /// `root-dd`: a tar.gz holding a disk image.
    RootDd,
    RootDdTar,
    RootDdRaw,
    RootDdBz2,
    RootDdGz,
    RootDdXz,
    RootDdTarBz2,
    RootDdTarXz,
    /// `archive.tar.xz`: a bootloader archive.
    Archive,
    Manifest,
    /// Anything else a stream may carry; never downloaded.
    Other(String),
}

impl FileType {
    const KNOWN: [(FileType, &'static str); 18] = [
        (FileType::BootKernel, "boot-kernel"),
        (FileType::BootInitrd, "boot-initrd"),
        (FileType::BootDtb, "boot-dtb"),
        (FileType::Squashfs, "squashfs"),
        (FileType::RootImageGz, "root-image.gz"),
        (FileType::RootTgz, "root-tgz"),
        (FileType::RootTbz, "root-tbz"),
        (FileType::RootTxz, "root-txz"),
        (FileType::RootDd, "root-dd"),
        (FileType::RootDdTar, "root-dd.tar"),
        (FileType::RootDdRaw, "root-dd.raw"),
        (FileType::RootDdBz2, "root-dd.bz2"),
        (FileType::RootDdGz, "root-dd.gz"),
        (FileType::RootDdXz, "root-dd.xz"),
        (FileType::RootDdTarBz2, "root-dd.tar.bz2"),
        (FileType::RootDdTarXz, "root-dd.tar.xz"),
        (FileType::Archive, "archive.tar.xz"),
        (FileType::Manifest, "manifest"),
    ];

    pub fn parse(text: &str) -> FileType {
        FileType::KNOWN
            .iter()
            .find(|(_, name)| *name == text)
            .map(|(file_type, _)| file_type.clone())
            .unwrap_or_else(|| FileType::Other(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            FileType::Other(name) => name,
            known => FileType::KNOWN
                .iter()
                .find(|(file_type, _)| file_type == known)
                .map_or("", |(_, name)| name),
        }
    }

    /// A root file that alone makes a single-file image (CentOS-style `root-tgz`, dd images).
    pub fn is_single_file_root(&self) -> bool {
        matches!(
            self,
            FileType::RootTgz
                | FileType::RootTbz
                | FileType::RootTxz
                | FileType::RootDd
                | FileType::RootDdTar
                | FileType::RootDdRaw
                | FileType::RootDdBz2
                | FileType::RootDdGz
                | FileType::RootDdXz
                | FileType::RootDdTarBz2
                | FileType::RootDdTarXz
        )
    }
}

impl fmt::Display for FileType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl Serialize for FileType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FileType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<FileType, D::Error> {
        Ok(FileType::parse(&String::deserialize(deserializer)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_parsing() {
        let good = "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789";
        let parsed = Sha256::parse(good).expect("valid");
        assert_eq!(parsed.as_str(), good.to_ascii_lowercase());
        assert_eq!(parsed.prefix(7), "abcdef0");
        assert_eq!(parsed.prefix(100).len(), 64);
        assert_eq!(
            Sha256::parse("abc"),
            Err(Sha256Error::WrongLength { len: 3 })
        );
        assert_eq!(
            Sha256::parse(&"g".repeat(64)),
            Err(Sha256Error::NotHex { found: 'g' })
        );
        // Multi-byte characters are refused before slicing could split one.
        assert!(Sha256::parse(&"é".repeat(32)).is_err());
        assert_eq!(
            Sha256::from_digest([0xab; 32]).as_str(),
            "ab".repeat(32).as_str()
        );
    }

    #[test]
    fn stream_paths() {
        let cases: [(&str, Result<(), StreamPathError>); 10] = [
            ("noble/amd64/20250805/squashfs", Ok(())),
            ("streams/v1/index.sjson", Ok(())),
            ("", Err(StreamPathError::Empty)),
            ("/etc/passwd", Err(StreamPathError::Absolute)),
            ("a/../b", Err(StreamPathError::BadSegment)),
            ("a//b", Err(StreamPathError::BadSegment)),
            ("./a", Err(StreamPathError::BadSegment)),
            ("a/b/", Err(StreamPathError::BadSegment)),
            (
                "a\\b",
                Err(StreamPathError::ForbiddenCharacter { found: '\\' }),
            ),
            (
                "a?x=1",
                Err(StreamPathError::ForbiddenCharacter { found: '?' }),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(StreamPath::parse(text).map(|_| ()), expected, "{text:?}");
        }
        let path = StreamPath::parse("jammy/amd64/1/ga-22.04/generic/boot-kernel").expect("ok");
        assert_eq!(path.file_name(), "boot-kernel");
        assert_eq!(
            path.with_suffix(".gpg").expect("ok").as_str(),
            "jammy/amd64/1/ga-22.04/generic/boot-kernel.gpg"
        );
    }

    #[test]
    fn file_types_round_trip() {
        for (file_type, name) in FileType::KNOWN {
            assert_eq!(FileType::parse(name), file_type);
            assert_eq!(file_type.as_str(), name);
        }
        assert_eq!(
            FileType::parse("disk1.img"),
            FileType::Other("disk1.img".into())
        );
        assert_eq!(FileType::parse("disk1.img").as_str(), "disk1.img");
        assert!(FileType::RootDdGz.is_single_file_root());
        assert!(!FileType::Squashfs.is_single_file_root());
    }
}
