//! The content-addressed image store: every boot file once, as `<root>/<sha256>`, whatever
//! resources and sets refer to it.
//!
//! A file appears under its hash only after its size and sha256 were checked, by an atomic
//! rename, so a reader never sees a partial file. Downloads in progress live in
//! `<root>/.partial/<sha256>` (kept across failures and restarts, so a download resumes) and
//! uploads in `<root>/.uploads/<file id>`.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use maas_simplestreams::Sha256;
use sha2::Digest;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PARTIAL: &str = ".partial";
const UPLOADS: &str = ".uploads";

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("content is {actual} bytes, expected {expected}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("content hashes to {actual}, expected {expected}")]
    Sha256Mismatch { expected: Sha256, actual: Sha256 },
    #[error("more than {expected} bytes received")]
    TooMuchData { expected: u64 },
    #[error("upload id {id:?} is not a plain name")]
    BadUploadId { id: String },
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The store under one directory. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    /// Opens (creating if needed) the store at `root`.
    pub async fn open(root: impl Into<PathBuf>) -> Result<ContentStore, StoreError> {
        let root = root.into();
        for dir in [root.clone(), root.join(PARTIAL), root.join(UPLOADS)] {
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(io_error("creating", &dir))?;
        }
        Ok(ContentStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the file with this hash lives (whether or not it is there).
    pub fn path(&self, sha256: &Sha256) -> PathBuf {
        self.root.join(sha256.as_str())
    }

    /// The size of the stored file, `None` when it is not stored.
    pub async fn stored_size(&self, sha256: &Sha256) -> Option<u64> {
        tokio::fs::metadata(self.path(sha256))
            .await
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map(|meta| meta.len())
    }

    /// Whether the file is stored with the expected size.
    pub async fn has(&self, sha256: &Sha256, size: u64) -> bool {
        self.stored_size(sha256).await == Some(size)
    }

    /// Every stored hash.
    pub async fn list(&self) -> Result<BTreeSet<Sha256>, StoreError> {
        let mut entries = tokio::fs::read_dir(&self.root)
            .await
            .map_err(io_error("listing", &self.root))?;
        let mut found = BTreeSet::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(io_error("listing", &self.root))?
        {
            if let Some(sha256) = entry
                .file_name()
                .to_str()
                .and_then(|n| Sha256::parse(n).ok())
            {
                found.insert(sha256);
            }
        }
        Ok(found)
    }

    /// The stored file whose hash starts with `prefix` (at least 7 hex digits), if exactly
    /// one does: how `/MAAS/boot-resources/<prefix>/...` URLs are resolved.
    pub async fn find_prefix(&self, prefix: &str) -> Result<Option<Sha256>, StoreError> {
        if prefix.len() < 7 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let prefix = prefix.to_ascii_lowercase();
        let matching: Vec<Sha256> = self
            .list()
            .await?
            .into_iter()
            .filter(|sha| sha.as_str().starts_with(&prefix))
            .collect();
        Ok(match matching.as_slice() {
            [only] => Some(only.clone()),
            _ => None,
        })
    }

    /// Removes a stored file; absent files are fine.
    pub async fn remove(&self, sha256: &Sha256) -> Result<(), StoreError> {
        for path in [self.path(sha256), self.partial_path(sha256)] {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(StoreError::Io {
                        action: "removing",
                        path,
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// Removes every stored file and partial download not in `keep`; returns what went.
    pub async fn retain(&self, keep: &BTreeSet<Sha256>) -> Result<Vec<Sha256>, StoreError> {
        let mut removed = Vec::new();
        for sha256 in self.list().await? {
            if !keep.contains(&sha256) {
                self.remove(&sha256).await?;
                removed.push(sha256);
            }
        }
        let partial_dir = self.root.join(PARTIAL);
        let mut entries = tokio::fs::read_dir(&partial_dir)
            .await
            .map_err(io_error("listing", &partial_dir))?;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(io_error("listing", &partial_dir))?
        {
            if let Some(sha256) = entry
                .file_name()
                .to_str()
                .and_then(|n| Sha256::parse(n).ok())
                && !keep.contains(&sha256)
            {
                self.remove(&sha256).await?;
            }
        }
        Ok(removed)
    }

    pub(crate) fn partial_path(&self, sha256: &Sha256) -> PathBuf {
        self.root.join(PARTIAL).join(sha256.as_str())
    }

    /// Bytes already downloaded towards `sha256` (0 when none).
    pub async fn partial_len(&self, sha256: &Sha256) -> u64 {
        tokio::fs::metadata(self.partial_path(sha256))
            .await
            .map(|meta| meta.len())
            .unwrap_or(0)
    }

    /// Checks a finished partial download and moves it under its hash; a mismatch deletes
    /// it, so the next attempt starts over.
    pub(crate) async fn commit_partial(
        &self,
        sha256: &Sha256,
        size: u64,
    ) -> Result<(), StoreError> {
        let partial = self.partial_path(sha256);
        let checked = hash_file(&partial).await.and_then(|(actual, len)| {
            if len != size {
                Err(StoreError::SizeMismatch {
                    expected: size,
                    actual: len,
                })
            } else if &actual != sha256 {
                Err(StoreError::Sha256Mismatch {
                    expected: sha256.clone(),
                    actual,
                })
            } else {
                Ok(())
            }
        });
        if let Err(error) = checked {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(error);
        }
        let target = self.path(sha256);
        tokio::fs::rename(&partial, &target)
            .await
            .map_err(io_error("publishing", &target))
    }

    /// Stores `content` read to its end, returning its hash and size; for uploads sent whole.
    pub async fn ingest(
        &self,
        mut content: impl tokio::io::AsyncRead + Unpin,
    ) -> Result<(Sha256, u64), StoreError> {
        let temporary = self
            .root
            .join(UPLOADS)
            .join(format!("ingest-{}", std::process::id()))
            .with_extension(unique_suffix());
        let mut file = tokio::fs::File::create(&temporary)
            .await
            .map_err(io_error("creating", &temporary))?;
        let mut hasher = sha2::Sha256::new();
        let mut buffer = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        loop {
            let read = content
                .read(&mut buffer)
                .await
                .map_err(io_error("reading upload for", &temporary))?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            file.write_all(&buffer[..read])
                .await
                .map_err(io_error("writing", &temporary))?;
            size += read as u64;
        }
        file.sync_all()
            .await
            .map_err(io_error("syncing", &temporary))?;
        let sha256 = Sha256::from_digest(hasher.finalize().into());
        let target = self.path(&sha256);
        tokio::fs::rename(&temporary, &target)
            .await
            .map_err(io_error("publishing", &target))?;
        Ok((sha256, size))
    }

    fn upload_path(&self, upload_id: &str) -> Result<PathBuf, StoreError> {
        if upload_id.is_empty()
            || upload_id.len() > 64
            || !upload_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(StoreError::BadUploadId {
                id: upload_id.to_owned(),
            });
        }
        Ok(self.root.join(UPLOADS).join(upload_id))
    }

    /// Bytes received so far for an upload.
    pub async fn upload_len(&self, upload_id: &str) -> Result<u64, StoreError> {
        let path = self.upload_path(upload_id)?;
        Ok(tokio::fs::metadata(&path)
            .await
            .map(|meta| meta.len())
            .unwrap_or(0))
    }

    /// Appends a chunk to an upload that must end up `size` bytes hashing to `sha256`.
    /// Returns the bytes received; once that reaches `size` the file is checked and moved
    /// under its hash (a mismatch deletes what was received).
    pub async fn append_upload(
        &self,
        upload_id: &str,
        sha256: &Sha256,
        size: u64,
        chunk: &[u8],
    ) -> Result<u64, StoreError> {
        let path = self.upload_path(upload_id)?;
        let received = self.upload_len(upload_id).await?;
        let total = received.saturating_add(chunk.len() as u64);
        if total > size {
            return Err(StoreError::TooMuchData { expected: size });
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(io_error("opening", &path))?;
        file.write_all(chunk)
            .await
            .map_err(io_error("appending to", &path))?;
        file.flush()
            .await
            .map_err(io_error("appending to", &path))?;
        if total == size {
            file.sync_all().await.map_err(io_error("syncing", &path))?;
            drop(file);
            let (actual, _) = hash_file(&path).await?;
            if &actual != sha256 {
                let _ = tokio::fs::remove_file(&path).await;
                return Err(StoreError::Sha256Mismatch {
                    expected: sha256.clone(),
                    actual,
                });
            }
            let target = self.path(sha256);
            tokio::fs::rename(&path, &target)
                .await
                .map_err(io_error("publishing", &target))?;
        }
        Ok(total)
    }

    /// Drops what an upload received so far.
    pub async fn discard_upload(&self, upload_id: &str) -> Result<(), StoreError> {
        let path = self.upload_path(upload_id)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io {
                action: "removing",
                path,
                source,
            }),
        }
    }
}

fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed).to_string()
}

/// The sha256 and length of a file.
pub async fn hash_file(path: &Path) -> Result<(Sha256, u64), StoreError> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(io_error("opening", path))?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 1024 * 1024];
    let mut len = 0u64;
    loop {
        let read = file
            .read(&mut buffer)
            .await
            .map_err(io_error("reading", path))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        len += read as u64;
    }
    Ok((Sha256::from_digest(hasher.finalize().into()), len))
}

/// MAAS's `filename_on_disk`: for each hash, its shortest prefix (at least 7 hex digits)
/// that no other hash in `all` shares.
pub fn shortest_unique_prefixes<'a>(
    all: impl IntoIterator<Item = &'a Sha256>,
) -> BTreeMap<Sha256, String> {
    let sorted: Vec<&Sha256> = all
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let common = |a: &Sha256, b: &Sha256| {
        a.as_str()
            .bytes()
            .zip(b.as_str().bytes())
            .take_while(|(x, y)| x == y)
            .count()
    };
    let mut prefixes = BTreeMap::new();
    for (index, sha256) in sorted.iter().enumerate() {
        // In sorted order the longest shared prefix is with a neighbour.
        let before = index
            .checked_sub(1)
            .map_or(0, |previous| common(sorted[previous], sha256));
        let after = sorted.get(index + 1).map_or(0, |next| common(sha256, next));
        let len = (before.max(after) + 1).clamp(7, 64);
        prefixes.insert((*sha256).clone(), sha256.prefix(len).to_owned());
    }
    prefixes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(text: &str) -> Sha256 {
        Sha256::parse(&format!("{text:0<64}")).expect("valid")
    }

    #[test]
    fn prefixes_are_unique_and_at_least_seven() {
        let a = sha("abcdef01");
        let b = sha("abcdef02");
        let c = sha("1234");
        let prefixes = shortest_unique_prefixes([&a, &b, &c]);
        assert_eq!(prefixes[&a], "abcdef01");
        assert_eq!(prefixes[&b], "abcdef02");
        assert_eq!(prefixes[&c], "1234000");
    }

    #[tokio::test]
    async fn ingest_upload_and_prefix_lookup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ContentStore::open(dir.path()).await.expect("open");
        let (sha256, size) = store.ingest(&b"hello"[..]).await.expect("ingest");
        assert_eq!(size, 5);
        assert!(store.has(&sha256, 5).await);
        assert_eq!(
            store.find_prefix(sha256.prefix(7)).await.expect("lookup"),
            Some(sha256.clone())
        );
        assert_eq!(store.find_prefix("abc").await.expect("lookup"), None);

        let content = b"0123456789";
        let expected = Sha256::from_digest(sha2::Sha256::digest(content).into());
        assert_eq!(
            store
                .append_upload("7", &expected, 10, &content[..4])
                .await
                .expect("chunk"),
            4
        );
        assert!(matches!(
            store.append_upload("7", &expected, 10, &[0u8; 7]).await,
            Err(StoreError::TooMuchData { expected: 10 })
        ));
        assert_eq!(
            store
                .append_upload("7", &expected, 10, &content[4..])
                .await
                .expect("chunk"),
            10
        );
        assert!(store.has(&expected, 10).await);
        assert!(matches!(
            store.append_upload("../x", &expected, 10, b"1").await,
            Err(StoreError::BadUploadId { .. })
        ));

        let kept: BTreeSet<Sha256> = [expected.clone()].into();
        assert_eq!(store.retain(&kept).await.expect("retain"), vec![sha256]);
        assert_eq!(store.list().await.expect("list"), kept);
    }
}
