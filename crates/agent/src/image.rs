//! Image filetypes (§7.6, §8.3) and streaming an image to a disk: download, hash,
//! decompress and write in one pass, then check the SHA-256 of what was downloaded.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

/// How an image is packed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    /// A raw disk image, possibly compressed, possibly inside a tar.
    Disk { compression: Compression, tar: bool },
    /// A root file system tarball to extract onto a formatted disk.
    RootTar { compression: Compression },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Bzip2,
}

/// Why an image could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("unknown image type {kind:?}")]
    UnknownKind { kind: String },
    #[error("cannot open {path} for writing")]
    OpenTarget {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("reading or decompressing the image failed after {written} bytes were written")]
    Read {
        written: u64,
        #[source]
        source: io::Error,
    },
    #[error("writing to {path} failed after {written} bytes")]
    Write {
        path: String,
        written: u64,
        #[source]
        source: io::Error,
    },
    #[error("the disk-image tarball holds no regular file")]
    EmptyTar,
    #[error("image SHA-256 is {actual}, expected {expected}")]
    Sha256Mismatch { expected: String, actual: String },
    #[error("image is {actual} bytes, expected {expected}")]
    SizeMismatch { expected: u64, actual: u64 },
}

impl ImageKind {
    /// Parses a MAAS `filetype` (`ddxz`, `tgz`), a stored file type (`root-dd.xz`,
    /// `root-tgz`) or a curtin source prefix (`dd-xz`).
    pub fn parse(kind: &str) -> Result<Self, ImageError> {
        use Compression::*;
        let disk = |compression, tar| ImageKind::Disk { compression, tar };
        let root = |compression| ImageKind::RootTar { compression };
        Ok(match kind.trim().to_ascii_lowercase().as_str() {
            "ddraw" | "dd-raw" | "root-dd" | "root-dd.raw" => disk(None, false),
            "ddgz" | "dd-gz" | "root-dd.gz" => disk(Gzip, false),
            "ddxz" | "dd-xz" | "root-dd.xz" => disk(Xz, false),
            "ddbz2" | "dd-bz2" | "root-dd.bz2" => disk(Bzip2, false),
            "ddtar" | "dd-tar" | "root-dd.tar" => disk(None, true),
            "ddtgz" | "dd-tgz" | "root-dd.tar.gz" => disk(Gzip, true),
            "ddtxz" | "dd-txz" | "root-dd.tar.xz" => disk(Xz, true),
            "ddtbz" | "dd-tbz" | "root-dd.tar.bz2" => disk(Bzip2, true),
            "tgz" | "root-tgz" | "root.tgz" | "tar.gz" => root(Gzip),
            "txz" | "root-txz" | "root.txz" | "tar.xz" => root(Xz),
            "tbz" | "root-tbz" | "root.tbz" | "tar.bz2" => root(Bzip2),
            "tar" | "root-tar" => root(None),
            other => {
                return Err(ImageError::UnknownKind {
                    kind: other.to_owned(),
                });
            }
        })
    }

    pub fn compression(self) -> Compression {
        match self {
            ImageKind::Disk { compression, .. } | ImageKind::RootTar { compression } => compression,
        }
    }
}

/// Counts and hashes everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads whatever the decompressor left (tar padding, trailing garbage) so the hash
    /// covers the whole file, then returns the hex digest and the byte count.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        let digest = self.hasher.finalize();
        Ok((hex(&digest), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.hasher.update(&buf[..read]);
        self.count += read as u64;
        Ok(read)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Wraps a reader in the decompressor for `compression`.
pub fn decompress<'a, R: Read + 'a>(reader: R, compression: Compression) -> Box<dyn Read + 'a> {
    match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(reader)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(reader)),
    }
}

/// What must hold for the downloaded file.
#[derive(Clone, Debug, Default)]
pub struct Expected {
    pub sha256: Option<String>,
    pub size: Option<u64>,
}

/// Checks the digest and size of the downloaded (compressed) bytes.
pub fn check(expected: &Expected, sha256: &str, size: u64) -> Result<(), ImageError> {
    if let Some(want) = &expected.sha256
        && !want.trim().eq_ignore_ascii_case(sha256)
    {
        return Err(ImageError::Sha256Mismatch {
            expected: want.trim().to_ascii_lowercase(),
            actual: sha256.to_owned(),
        });
    }
    if let Some(want) = expected.size
        && want != size
    {
        return Err(ImageError::SizeMismatch {
            expected: want,
            actual: size,
        });
    }
    Ok(())
}

/// What was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// Bytes written to the target (uncompressed).
    pub bytes: u64,
    /// Bytes downloaded (as stored in MAAS).
    pub downloaded: u64,
    pub sha256: String,
}

const BLOCK: usize = 1024 * 1024;

/// Streams a disk image onto `target` (a block device or a file). On a checksum or size
/// mismatch the first MiB of the target is zeroed again so a corrupt image never boots.
pub fn write_disk_image<R: Read>(
    source: R,
    kind: ImageKind,
    target: &Path,
    expected: &Expected,
) -> Result<Written, ImageError> {
    let ImageKind::Disk { compression, tar } = kind else {
        return Err(ImageError::UnknownKind {
            kind: format!("{kind:?} is not a disk image"),
        });
    };
    let path = target.display().to_string();
    let mut output = OpenOptions::new()
        .write(true)
        .create(!is_block_device(target))
        .truncate(false)
        .open(target)
        .map_err(|source| ImageError::OpenTarget {
            path: path.clone(),
            source,
        })?;
    let mut hashing = HashingReader::new(source);
    let written = {
        let mut decompressed = decompress(&mut hashing, compression);
        if tar {
            let mut archive = tar::Archive::new(decompressed);
            let mut entries = archive
                .entries()
                .map_err(|source| ImageError::Read { written: 0, source })?;
            loop {
                let Some(entry) = entries.next() else {
                    return Err(ImageError::EmptyTar);
                };
                let entry = entry.map_err(|source| ImageError::Read { written: 0, source })?;
                if entry.header().entry_type().is_file() {
                    break copy_blocks(entry, &mut output, &path)?;
                }
            }
        } else {
            let written = copy_blocks(&mut decompressed, &mut output, &path)?;
            // Anything the decoder leaves unread still counts toward the hash.
            io::copy(&mut decompressed, &mut io::sink())
                .map_err(|source| ImageError::Read { written, source })?;
            written
        }
    };
    output.sync_all().map_err(|source| ImageError::Write {
        path: path.clone(),
        written,
        source,
    })?;
    let (sha256, downloaded) = hashing
        .finish()
        .map_err(|source| ImageError::Read { written, source })?;
    if let Err(error) = check(expected, &sha256, downloaded) {
        let _ = invalidate(target);
        return Err(error);
    }
    Ok(Written {
        bytes: written,
        downloaded,
        sha256,
    })
}

fn copy_blocks<R: Read, W: Write>(
    mut reader: R,
    writer: &mut W,
    path: &str,
) -> Result<u64, ImageError> {
    let mut buffer = vec![0u8; BLOCK];
    let mut written = 0u64;
    loop {
        let mut filled = 0;
        while filled < BLOCK {
            match reader.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(ImageError::Read { written, source }),
            }
        }
        if filled == 0 {
            return Ok(written);
        }
        writer
            .write_all(&buffer[..filled])
            .map_err(|source| ImageError::Write {
                path: path.to_owned(),
                written,
                source,
            })?;
        written += filled as u64;
    }
}

/// Zeroes the first MiB (partition table and boot sector).
fn invalidate(target: &Path) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).open(target)?;
    file.write_all(&vec![0u8; BLOCK])?;
    file.sync_all()
}

pub fn is_block_device(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(
            ImageKind::parse("ddxz").unwrap(),
            ImageKind::Disk {
                compression: Compression::Xz,
                tar: false
            }
        );
        assert_eq!(
            ImageKind::parse("dd-tgz").unwrap(),
            ImageKind::Disk {
                compression: Compression::Gzip,
                tar: true
            }
        );
        assert_eq!(
            ImageKind::parse("root-tbz").unwrap(),
            ImageKind::RootTar {
                compression: Compression::Bzip2
            }
        );
        assert!(ImageKind::parse("iso").is_err());
    }

    #[test]
    fn size_and_digest_checks() {
        let expected = Expected {
            sha256: Some("AB".into()),
            size: Some(3),
        };
        assert!(check(&expected, "ab", 3).is_ok());
        assert!(matches!(
            check(&expected, "cd", 3),
            Err(ImageError::Sha256Mismatch { .. })
        ));
        assert!(matches!(
            check(&expected, "ab", 2),
            Err(ImageError::SizeMismatch { .. })
        ));
    }
}
