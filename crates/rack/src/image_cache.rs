//! The rack's boot image cache: files the rack serves (kernels, initrds, squashfs roots)
//! fetched from the region by sha256 on first request, checked, kept on disk under a size
//! bound with least-recently-used eviction, and found again after a restart.
//!
//! Which path is which file comes from an [`ImageManifest`] the region provides: classic
//! paths (`ubuntu/amd64/ga-22.04/jammy/stable/boot-kernel`) and the region's current ones
//! (`<sha256 prefix>/ubuntu/amd64/ga-22.04/jammy/stable/boot-kernel`, where everything after
//! the prefix is cosmetic) both resolve. Files are stored as `<dir>/<sha256>`; a file is
//! renamed there only after its size and hash checked out. A file found on disk at startup
//! is hashed again the first time it is served, so a file damaged while the rack was down
//! is fetched anew instead of served. Concurrent requests for a missing file share one
//! download.
//!
//! Eviction unlinks a file; a transfer that already opened it keeps reading it.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;
use maas_simplestreams::Sha256;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tracing::{debug, info, warn};

use crate::backend::BoxFuture;

/// One file of the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub sha256: Sha256,
    pub size: u64,
}

/// What the region's boot images are, by boot path: the newest complete set of every boot
/// resource. JSON: `{"files": {"ubuntu/amd64/ga-22.04/jammy/stable/boot-kernel":
/// {"sha256": "…", "size": 123}}}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageManifest {
    pub files: BTreeMap<String, ManifestFile>,
}

#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("image manifest is not valid JSON of the expected shape")]
    Json(#[source] serde_json::Error),
    #[error("image manifest path {path:?} is not a plain relative path")]
    BadPath { path: String },
}

impl ImageManifest {
    pub fn from_json(text: &[u8]) -> Result<ImageManifest, ManifestError> {
        let manifest: ImageManifest = serde_json::from_slice(text).map_err(ManifestError::Json)?;
        for path in manifest.files.keys() {
            check_path(path)?;
        }
        Ok(manifest)
    }

    pub fn insert(&mut self, path: &str, sha256: Sha256, size: u64) -> Result<(), ManifestError> {
        check_path(path)?;
        self.files
            .insert(path.to_owned(), ManifestFile { sha256, size });
        Ok(())
    }

    /// The file a request path names: a manifest path, or a hash prefix of at least 7 hex
    /// digits as first segment (what follows it is cosmetic) that exactly one file has.
    pub fn lookup(&self, path: &str) -> Option<&ManifestFile> {
        let path = path.trim_start_matches('/');
        if let Some(file) = self.files.get(path) {
            return Some(file);
        }
        let prefix = path.split('/').next()?;
        if prefix.len() < 7 || prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let prefix = prefix.to_ascii_lowercase();
        let mut matching = self
            .files
            .values()
            .filter(|file| file.sha256.as_str().starts_with(&prefix));
        let first = matching.next()?;
        // Several paths may name the same content; different content under one prefix is
        // ambiguous.
        matching
            .all(|other| other.sha256 == first.sha256)
            .then_some(first)
    }
}

fn check_path(path: &str) -> Result<(), ManifestError> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains(['\\', '\0'])
        || path
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..");
    if bad {
        return Err(ManifestError::BadPath {
            path: path.chars().take(200).collect(),
        });
    }
    Ok(())
}

/// Where cached files come from: the region, by hash.
pub trait ImageSource: Send + Sync + 'static {
    /// The bytes of the file with this hash. `name` is cosmetic (the file name in the
    /// region's URL, for its logs).
    fn open<'a>(
        &'a self,
        sha256: &'a Sha256,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn AsyncRead + Send + Unpin>, ImageSourceError>>;
}

#[derive(Debug, Error)]
pub enum ImageSourceError {
    #[error("no region answered for {sha256}")]
    Unreachable {
        sha256: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the region has no file {sha256} (HTTP {status})")]
    Missing { sha256: String, status: u16 },
}

/// Fetches from the regions' `http://<region>:5240/MAAS/boot-resources/<sha256>/<name>`,
/// trying each region in turn.
#[derive(Clone, Debug)]
pub struct RegionHttpSource {
    /// `host:port` of each region (`10.0.0.2:5240`).
    pub regions: Vec<String>,
    pub connect_timeout: Duration,
}

impl RegionHttpSource {
    pub fn new(regions: Vec<String>) -> RegionHttpSource {
        RegionHttpSource {
            regions,
            connect_timeout: Duration::from_secs(10),
        }
    }

    async fn open_from(
        &self,
        region: &str,
        sha256: &Sha256,
        name: &str,
    ) -> Result<
        Result<Box<dyn AsyncRead + Send + Unpin>, u16>,
        Box<dyn std::error::Error + Send + Sync>,
    > {
        let stream =
            tokio::time::timeout(self.connect_timeout, tokio::net::TcpStream::connect(region))
                .await
                .map_err(|_| format!("connecting to {region} timed out"))??;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(%error, "region image connection ended with an error");
            }
        });
        let name: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .collect();
        let request = hyper::Request::get(format!("/MAAS/boot-resources/{sha256}/{name}"))
            .header(hyper::header::HOST, region)
            .body(http_body_util::Empty::<Bytes>::new())?;
        let response = sender.send_request(request).await?;
        if !response.status().is_success() {
            return Ok(Err(response.status().as_u16()));
        }
        Ok(Ok(Box::new(IncomingReader {
            body: response.into_body(),
            pending: Bytes::new(),
        })))
    }
}

impl ImageSource for RegionHttpSource {
    fn open<'a>(
        &'a self,
        sha256: &'a Sha256,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn AsyncRead + Send + Unpin>, ImageSourceError>> {
        Box::pin(async move {
            let mut last: Box<dyn std::error::Error + Send + Sync> = "no region configured".into();
            let mut missing = None;
            for region in &self.regions {
                match self.open_from(region, sha256, name).await {
                    Ok(Ok(reader)) => return Ok(reader),
                    Ok(Err(status)) => {
                        debug!(region, %sha256, status, "region does not have the image file");
                        missing = Some(status);
                    }
                    Err(error) => {
                        debug!(region, %sha256, %error, "region unreachable for the image file");
                        last = error;
                    }
                }
            }
            match missing {
                Some(status) => Err(ImageSourceError::Missing {
                    sha256: sha256.to_string(),
                    status,
                }),
                None => Err(ImageSourceError::Unreachable {
                    sha256: sha256.to_string(),
                    source: last,
                }),
            }
        })
    }
}

/// A hyper response body read as a byte stream.
struct IncomingReader {
    body: Incoming,
    pending: Bytes,
}

impl AsyncRead for IncomingReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let take = self.pending.len().min(buf.remaining());
                let chunk = self.pending.split_to(take);
                buf.put_slice(&chunk);
                return Poll::Ready(Ok(()));
            }
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(error))) => {
                    return Poll::Ready(Err(io::Error::other(error)));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.pending = data;
                    }
                }
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageCacheConfig {
    pub dir: PathBuf,
    /// Bytes the cache may hold (MAAS's default budget is 20 GB).
    pub max_bytes: u64,
}

#[derive(Debug, Error)]
pub enum ImageCacheError {
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("fetching the image file from the region")]
    Source(#[source] ImageSourceError),
    #[error("reading {sha256} from the region")]
    Transfer {
        sha256: String,
        #[source]
        source: io::Error,
    },
    #[error("the region sent {actual} bytes for {sha256}, expected {expected}")]
    SizeMismatch {
        sha256: String,
        expected: u64,
        actual: u64,
    },
    #[error("the region's bytes for {expected} hash to {actual}")]
    Sha256Mismatch { expected: String, actual: String },
    #[error("{sha256} is {size} bytes, more than the whole cache ({max_bytes})")]
    TooLarge {
        sha256: String,
        size: u64,
        max_bytes: u64,
    },
}

/// Counters, readable while the cache is in use.
#[derive(Debug, Default)]
pub struct ImageCacheStats {
    pub hits: AtomicU64,
    pub fetches: AtomicU64,
    pub fetched_bytes: AtomicU64,
    pub evictions: AtomicU64,
    /// Cached files whose content no longer matched their hash; removed and fetched again.
    pub corrupt: AtomicU64,
}

impl ImageCacheStats {
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
    pub fn corrupt(&self) -> u64 {
        self.corrupt.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
struct Entry {
    size: u64,
    last_used: u64,
    /// Hashed since this process started (downloaded here, or checked once).
    verified: bool,
}

#[derive(Debug, Default)]
struct Index {
    entries: HashMap<Sha256, Entry>,
    total: u64,
    clock: u64,
}

impl Index {
    fn touch(&mut self, sha256: &Sha256) {
        self.clock += 1;
        let now = self.clock;
        if let Some(entry) = self.entries.get_mut(sha256) {
            entry.last_used = now;
        }
    }

    fn remove(&mut self, sha256: &Sha256) -> Option<Entry> {
        let entry = self.entries.remove(sha256)?;
        self.total -= entry.size;
        Some(entry)
    }
}

pub struct ImageCache {
    config: ImageCacheConfig,
    source: Arc<dyn ImageSource>,
    manifest: RwLock<Arc<ImageManifest>>,
    index: Mutex<Index>,
    /// One lock per file being fetched or checked, so each is fetched once.
    inflight: Mutex<HashMap<Sha256, Arc<tokio::sync::Mutex<()>>>>,
    stats: ImageCacheStats,
    temp_counter: AtomicU64,
}

const TEMP_PREFIX: &str = ".partial-";

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The index is plain data; a panicked holder leaves it consistent enough to use.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl ImageCache {
    /// Opens the cache in `config.dir`, rebuilding its index from the files there (their
    /// modification times order them for eviction), dropping interrupted downloads, and
    /// evicting down to the bound.
    pub async fn open(
        config: ImageCacheConfig,
        source: Arc<dyn ImageSource>,
    ) -> Result<ImageCache, ImageCacheError> {
        let dir = &config.dir;
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|source| ImageCacheError::Io {
                action: "creating",
                path: dir.clone(),
                source,
            })?;
        let listing_error = |source| ImageCacheError::Io {
            action: "listing",
            path: dir.clone(),
            source,
        };
        let mut found: Vec<(SystemTime, Sha256, u64)> = Vec::new();
        let mut entries = tokio::fs::read_dir(dir).await.map_err(listing_error)?;
        while let Some(entry) = entries.next_entry().await.map_err(listing_error)? {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(TEMP_PREFIX) {
                let _ = tokio::fs::remove_file(entry.path()).await;
                continue;
            }
            let Ok(sha256) = Sha256::parse(name) else {
                continue;
            };
            let Ok(meta) = entry.metadata().await else {
                continue;
            };
            if meta.is_file() {
                found.push((
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    sha256,
                    meta.len(),
                ));
            }
        }
        found.sort();
        let mut index = Index::default();
        for (_, sha256, size) in found {
            index.clock += 1;
            index.total += size;
            index.entries.insert(
                sha256,
                Entry {
                    size,
                    last_used: index.clock,
                    verified: false,
                },
            );
        }
        info!(dir = %dir.display(), files = index.entries.len(), bytes = index.total, max_bytes = config.max_bytes, "image cache opened");
        let cache = ImageCache {
            config,
            source,
            manifest: RwLock::new(Arc::new(ImageManifest::default())),
            index: Mutex::new(index),
            inflight: Mutex::new(HashMap::new()),
            stats: ImageCacheStats::default(),
            temp_counter: AtomicU64::new(0),
        };
        cache.evict_for(0).await;
        Ok(cache)
    }

    pub fn stats(&self) -> &ImageCacheStats {
        &self.stats
    }

    /// Replaces the manifest (the region sends a new one when its images change).
    pub fn set_manifest(&self, manifest: ImageManifest) {
        *self
            .manifest
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = Arc::new(manifest);
    }

    pub fn manifest(&self) -> Arc<ImageManifest> {
        Arc::clone(
            &self
                .manifest
                .read()
                .unwrap_or_else(|poison| poison.into_inner()),
        )
    }

    /// Bytes held now.
    pub fn cached_bytes(&self) -> u64 {
        lock(&self.index).total
    }

    /// Whether the file is in the cache (without fetching it).
    pub fn contains(&self, sha256: &Sha256) -> bool {
        lock(&self.index).entries.contains_key(sha256)
    }

    /// The cached file for a request path, fetched if needed; `Ok(None)` when the manifest
    /// names no such file.
    pub async fn resolve(&self, path: &str) -> Result<Option<(PathBuf, u64)>, ImageCacheError> {
        let manifest = self.manifest();
        let Some(file) = manifest.lookup(path) else {
            return Ok(None);
        };
        let name = path.rsplit('/').next().unwrap_or("file");
        let cached = self.file(&file.sha256, file.size, name).await?;
        Ok(Some((cached, file.size)))
    }

    /// The path of the cached file with this hash and size, fetching it first if needed.
    pub async fn file(
        &self,
        sha256: &Sha256,
        size: u64,
        name: &str,
    ) -> Result<PathBuf, ImageCacheError> {
        let path = self.config.dir.join(sha256.as_str());
        if self.ready(sha256, size) {
            self.used(sha256, &path).await;
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(path);
        }
        let gate = {
            let mut inflight = lock(&self.inflight);
            Arc::clone(inflight.entry(sha256.clone()).or_default())
        };
        let result = {
            let _held = gate.lock().await;
            self.fill(sha256, size, name, &path).await
        };
        {
            let mut inflight = lock(&self.inflight);
            if inflight.get(sha256).is_some_and(|current| {
                Arc::ptr_eq(current, &gate) && Arc::strong_count(current) <= 2
            }) {
                inflight.remove(sha256);
            }
        }
        result.map(|()| path)
    }

    fn ready(&self, sha256: &Sha256, size: u64) -> bool {
        lock(&self.index)
            .entries
            .get(sha256)
            .is_some_and(|entry| entry.verified && entry.size == size)
    }

    async fn used(&self, sha256: &Sha256, path: &Path) {
        lock(&self.index).touch(sha256);
        // The modification time carries recency across restarts.
        if let Ok(file) = std::fs::File::options().write(true).open(path) {
            let _ = file.set_modified(SystemTime::now());
        }
    }

    /// With the file's gate held: make the file present and verified.
    async fn fill(
        &self,
        sha256: &Sha256,
        size: u64,
        name: &str,
        path: &Path,
    ) -> Result<(), ImageCacheError> {
        if self.ready(sha256, size) {
            // Another request fetched it while this one waited.
            self.used(sha256, path).await;
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let on_disk = lock(&self.index)
            .entries
            .get(sha256)
            .map(|entry| entry.size);
        if let Some(disk_size) = on_disk {
            let intact = disk_size == size
                && matches!(hash_file(path).await, Ok((actual, len)) if actual == *sha256 && len == size);
            if intact {
                if let Some(entry) = lock(&self.index).entries.get_mut(sha256) {
                    entry.verified = true;
                }
                self.used(sha256, path).await;
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            warn!(%sha256, path = %path.display(), "cached image file is damaged; fetching it again");
            self.stats.corrupt.fetch_add(1, Ordering::Relaxed);
            lock(&self.index).remove(sha256);
            let _ = tokio::fs::remove_file(path).await;
        }
        if size > self.config.max_bytes {
            return Err(ImageCacheError::TooLarge {
                sha256: sha256.to_string(),
                size,
                max_bytes: self.config.max_bytes,
            });
        }
        self.download(sha256, size, name, path).await?;
        self.evict_for(size).await;
        {
            let mut index = lock(&self.index);
            index.clock += 1;
            let now = index.clock;
            index.total += size;
            index.entries.insert(
                sha256.clone(),
                Entry {
                    size,
                    last_used: now,
                    verified: true,
                },
            );
        }
        Ok(())
    }

    async fn download(
        &self,
        sha256: &Sha256,
        size: u64,
        name: &str,
        path: &Path,
    ) -> Result<(), ImageCacheError> {
        self.stats.fetches.fetch_add(1, Ordering::Relaxed);
        info!(%sha256, size, name, "fetching image file from the region");
        let mut reader = self
            .source
            .open(sha256, name)
            .await
            .map_err(ImageCacheError::Source)?;
        let temporary = self.config.dir.join(format!(
            "{TEMP_PREFIX}{sha256}-{}",
            self.temp_counter.fetch_add(1, Ordering::Relaxed)
        ));
        let outcome =
            async {
                let io_error = |action| {
                    let path = temporary.clone();
                    move |source| ImageCacheError::Io {
                        action,
                        path,
                        source,
                    }
                };
                let mut file = tokio::fs::File::create(&temporary)
                    .await
                    .map_err(io_error("creating"))?;
                let mut hasher = sha2::Sha256::new();
                let mut buffer = vec![0u8; 256 * 1024];
                let mut received = 0u64;
                loop {
                    let read = reader.read(&mut buffer).await.map_err(|source| {
                        ImageCacheError::Transfer {
                            sha256: sha256.to_string(),
                            source,
                        }
                    })?;
                    if read == 0 {
                        break;
                    }
                    received += read as u64;
                    if received > size {
                        return Err(ImageCacheError::SizeMismatch {
                            sha256: sha256.to_string(),
                            expected: size,
                            actual: received,
                        });
                    }
                    hasher.update(&buffer[..read]);
                    file.write_all(&buffer[..read])
                        .await
                        .map_err(io_error("writing"))?;
                }
                if received != size {
                    return Err(ImageCacheError::SizeMismatch {
                        sha256: sha256.to_string(),
                        expected: size,
                        actual: received,
                    });
                }
                let actual = Sha256::from_digest(hasher.finalize().into());
                if actual != *sha256 {
                    return Err(ImageCacheError::Sha256Mismatch {
                        expected: sha256.to_string(),
                        actual: actual.to_string(),
                    });
                }
                file.sync_all().await.map_err(io_error("syncing"))?;
                drop(file);
                tokio::fs::rename(&temporary, path)
                    .await
                    .map_err(io_error("publishing"))?;
                self.stats.fetched_bytes.fetch_add(size, Ordering::Relaxed);
                Ok(())
            }
            .await;
        if outcome.is_err() {
            let _ = tokio::fs::remove_file(&temporary).await;
        }
        outcome
    }

    /// Evicts least-recently-used files until `incoming` more bytes fit.
    async fn evict_for(&self, incoming: u64) {
        loop {
            let victim = {
                let mut index = lock(&self.index);
                if index.total.saturating_add(incoming) <= self.config.max_bytes {
                    return;
                }
                let Some(oldest) = index
                    .entries
                    .iter()
                    .min_by_key(|(_, entry)| entry.last_used)
                    .map(|(sha256, _)| sha256.clone())
                else {
                    return;
                };
                index.remove(&oldest);
                oldest
            };
            self.stats.evictions.fetch_add(1, Ordering::Relaxed);
            debug!(sha256 = %victim, "evicting image file from the cache");
            let _ = tokio::fs::remove_file(self.config.dir.join(victim.as_str())).await;
        }
    }
}

async fn hash_file(path: &Path) -> io::Result<(Sha256, u64)> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 1024 * 1024];
    let mut len = 0u64;
    loop {
        let read = file.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        len += read as u64;
    }
    Ok((Sha256::from_digest(hasher.finalize().into()), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(first: char) -> Sha256 {
        Sha256::parse(&first.to_string().repeat(64)).expect("sha")
    }

    #[test]
    fn manifest_lookup_by_path_and_prefix() {
        let mut manifest = ImageManifest::default();
        manifest
            .insert(
                "ubuntu/amd64/ga-22.04/jammy/stable/boot-kernel",
                sha('a'),
                10,
            )
            .expect("insert");
        manifest
            .insert(
                "ubuntu/amd64/ga-22.04/jammy/stable/boot-initrd",
                sha('b'),
                20,
            )
            .expect("insert");
        let kernel = manifest
            .lookup("ubuntu/amd64/ga-22.04/jammy/stable/boot-kernel")
            .expect("by path");
        assert_eq!(kernel.size, 10);
        let initrd = manifest
            .lookup("bbbbbbb/ubuntu/amd64/ga-22.04/jammy/stable/boot-initrd")
            .expect("by prefix");
        assert_eq!(initrd.size, 20);
        assert_eq!(
            manifest.lookup("bbbbbbb/anything").map(|f| f.size),
            Some(20)
        );
        assert!(manifest.lookup("bbbb/short-prefix").is_none());
        assert!(manifest.lookup("ubuntu/amd64/unknown").is_none());
        assert!(manifest.insert("../etc/passwd", sha('c'), 1).is_err());

        let json = serde_json::to_vec(&manifest).expect("json");
        assert_eq!(ImageManifest::from_json(&json).expect("parse"), manifest);
        assert!(
            ImageManifest::from_json(br#"{"files": {"/abs": {"sha256": "aa", "size": 1}}}"#)
                .is_err()
        );
        assert!(ImageManifest::from_json(b"[]").is_err());
    }
}
