//! The rack image cache against a fake region on loopback: fetch once, LRU under the bound,
//! restarts, damaged files, and serving through the HTTP and TFTP boot servers (curl).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use maas_rack::{
    BootFiles, BootFilesConfig, FileBackend, HttpConfig, HttpServer, ImageCache, ImageCacheConfig,
    ImageCacheError, ImageManifest, RegionHttpSource, ResolveError, TftpConfig, TftpServer,
};
use maas_simplestreams::Sha256;
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::{pattern, require_programs, run_with_timeout};

const KERNEL_PATH: &str = "ubuntu/amd64/ga-22.04/jammy/stable/boot-kernel";

fn sha256(bytes: &[u8]) -> Sha256 {
    Sha256::from_digest(sha2::Sha256::digest(bytes).into())
}

/// A region serving `/MAAS/boot-resources/<sha256>/<name>`, counting requests.
#[derive(Clone, Default)]
struct FakeRegion {
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    requests: Arc<Mutex<HashMap<String, usize>>>,
    corrupt: Arc<AtomicBool>,
    delay: Duration,
}

impl FakeRegion {
    fn add(&self, content: &[u8]) -> Sha256 {
        let sha = sha256(content);
        self.files
            .lock()
            .expect("files")
            .insert(sha.to_string(), content.to_vec());
        sha
    }

    fn requests(&self, sha: &Sha256) -> usize {
        self.requests
            .lock()
            .expect("requests")
            .get(sha.as_str())
            .copied()
            .unwrap_or(0)
    }

    async fn start(self) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let region = self.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                    let sha = path
                        .strip_prefix("/MAAS/boot-resources/")
                        .and_then(|rest| rest.split('/').next())
                        .unwrap_or("")
                        .to_owned();
                    *region
                        .requests
                        .lock()
                        .expect("requests")
                        .entry(sha.clone())
                        .or_default() += 1;
                    tokio::time::sleep(region.delay).await;
                    let body = region.files.lock().expect("files").get(&sha).cloned();
                    let reply = match body {
                        Some(mut body) => {
                            if region.corrupt.load(Ordering::SeqCst) {
                                body[0] ^= 1;
                            }
                            let mut reply = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            )
                            .into_bytes();
                            reply.extend(body);
                            reply
                        }
                        None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
                    };
                    let _ = stream.write_all(&reply).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        address
    }
}

async fn open_cache(dir: &Path, region: SocketAddr, max_bytes: u64) -> Arc<ImageCache> {
    let source = Arc::new(RegionHttpSource::new(vec![region.to_string()]));
    Arc::new(
        ImageCache::open(
            ImageCacheConfig {
                dir: dir.to_path_buf(),
                max_bytes,
            },
            source,
        )
        .await
        .expect("open cache"),
    )
}

fn manifest(entries: &[(&str, &Sha256, usize)]) -> ImageManifest {
    let mut manifest = ImageManifest::default();
    for (path, sha, size) in entries {
        manifest
            .insert(path, (*sha).clone(), *size as u64)
            .expect("insert");
    }
    manifest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_for_a_missing_file_fetch_it_once() {
    let region = FakeRegion {
        delay: Duration::from_millis(200),
        ..FakeRegion::default()
    };
    let kernel = pattern(3 * 1024 * 1024 + 17, 1);
    let sha = region.add(&kernel);
    let address = region.clone().start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = open_cache(dir.path(), address, 100 * 1024 * 1024).await;
    cache.set_manifest(manifest(&[(KERNEL_PATH, &sha, kernel.len())]));

    let mut tasks = Vec::new();
    for index in 0..8 {
        let cache = Arc::clone(&cache);
        // Half by classic path, half by the region's hash-prefixed path.
        let path = if index % 2 == 0 {
            KERNEL_PATH.to_owned()
        } else {
            format!("{}/{KERNEL_PATH}", sha.prefix(12))
        };
        tasks.push(tokio::spawn(async move { cache.resolve(&path).await }));
    }
    for task in tasks {
        let (path, len) = task.await.expect("join").expect("resolve").expect("found");
        assert_eq!(len, kernel.len() as u64);
        assert_eq!(std::fs::read(path).expect("read"), kernel);
    }
    assert_eq!(region.requests(&sha), 1);
    assert_eq!(cache.stats().fetches(), 1);
    assert_eq!(cache.stats().hits(), 7);
    assert!(
        cache
            .resolve("ubuntu/amd64/nothing")
            .await
            .expect("resolve")
            .is_none()
    );
}

#[tokio::test]
async fn least_recently_used_files_go_first_under_the_size_bound() {
    let region = FakeRegion::default();
    let files: Vec<Vec<u8>> = (0..3)
        .map(|seed| pattern(1024 * 1024, 2 * seed + 10))
        .collect();
    let shas: Vec<Sha256> = files.iter().map(|f| region.add(f)).collect();
    let address = region.clone().start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Room for two and a half files.
    let cache = open_cache(dir.path(), address, 2 * 1024 * 1024 + 512 * 1024).await;
    let paths = ["a/boot-kernel", "b/boot-kernel", "c/boot-kernel"];
    cache.set_manifest(manifest(&[
        (paths[0], &shas[0], files[0].len()),
        (paths[1], &shas[1], files[1].len()),
        (paths[2], &shas[2], files[2].len()),
    ]));

    cache.resolve(paths[0]).await.expect("a").expect("a found");
    cache.resolve(paths[1]).await.expect("b").expect("b found");
    // a is used again, so b is now the least recently used.
    cache.resolve(paths[0]).await.expect("a").expect("a found");
    cache.resolve(paths[2]).await.expect("c").expect("c found");
    assert!(cache.contains(&shas[0]));
    assert!(!cache.contains(&shas[1]), "b was evicted");
    assert!(cache.contains(&shas[2]));
    assert!(!dir.path().join(shas[1].as_str()).exists());
    assert_eq!(cache.stats().evictions(), 1);
    assert!(cache.cached_bytes() <= 2 * 1024 * 1024 + 512 * 1024);
    assert_eq!(region.requests(&shas[0]), 1);

    cache.resolve(paths[1]).await.expect("b").expect("b found");
    assert_eq!(
        region.requests(&shas[1]),
        2,
        "an evicted file is fetched again"
    );

    // A file larger than the whole cache is refused, not cached.
    let big = pattern(3 * 1024 * 1024, 99);
    let big_sha = region.add(&big);
    cache.set_manifest(manifest(&[("big", &big_sha, big.len())]));
    assert!(matches!(
        cache.resolve("big").await,
        Err(ImageCacheError::TooLarge { .. })
    ));
    assert_eq!(region.requests(&big_sha), 0);
}

#[tokio::test]
async fn a_restart_keeps_the_cache_and_a_damaged_file_is_fetched_again() {
    let region = FakeRegion::default();
    let kernel = pattern(2 * 1024 * 1024, 5);
    let initrd = pattern(1024 * 1024, 6);
    let kernel_sha = region.add(&kernel);
    let initrd_sha = region.add(&initrd);
    let address = region.clone().start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let entries = manifest(&[
        (KERNEL_PATH, &kernel_sha, kernel.len()),
        (
            "ubuntu/amd64/ga-22.04/jammy/stable/boot-initrd",
            &initrd_sha,
            initrd.len(),
        ),
    ]);
    {
        let cache = open_cache(dir.path(), address, 64 * 1024 * 1024).await;
        cache.set_manifest(entries.clone());
        cache
            .resolve(KERNEL_PATH)
            .await
            .expect("kernel")
            .expect("found");
        cache
            .resolve("ubuntu/amd64/ga-22.04/jammy/stable/boot-initrd")
            .await
            .expect("initrd")
            .expect("found");
    }
    // An interrupted download left behind, and damage to the initrd while the rack was down.
    std::fs::write(dir.path().join(format!(".partial-{kernel_sha}-0")), b"half").expect("write");
    let initrd_file = dir.path().join(initrd_sha.as_str());
    let mut damaged = std::fs::read(&initrd_file).expect("read");
    damaged[1000] ^= 0x55;
    std::fs::write(&initrd_file, damaged).expect("write");

    let cache = open_cache(dir.path(), address, 64 * 1024 * 1024).await;
    cache.set_manifest(entries);
    assert_eq!(cache.cached_bytes(), (kernel.len() + initrd.len()) as u64);
    assert!(!dir.path().join(format!(".partial-{kernel_sha}-0")).exists());
    let (path, _) = cache
        .resolve(KERNEL_PATH)
        .await
        .expect("kernel")
        .expect("found");
    assert_eq!(std::fs::read(path).expect("read"), kernel);
    assert_eq!(
        region.requests(&kernel_sha),
        1,
        "served from the cache after the restart"
    );
    let (path, _) = cache
        .resolve("ubuntu/amd64/ga-22.04/jammy/stable/boot-initrd")
        .await
        .expect("initrd")
        .expect("found");
    assert_eq!(std::fs::read(path).expect("read"), initrd);
    assert_eq!(
        region.requests(&initrd_sha),
        2,
        "the damaged file was fetched again"
    );
    assert_eq!(cache.stats().corrupt(), 1);
}

#[tokio::test]
async fn region_bytes_that_do_not_hash_right_are_not_cached() {
    let region = FakeRegion::default();
    let kernel = pattern(512 * 1024, 7);
    let sha = region.add(&kernel);
    region.corrupt.store(true, Ordering::SeqCst);
    let address = region.clone().start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = open_cache(dir.path(), address, 64 * 1024 * 1024).await;
    cache.set_manifest(manifest(&[(KERNEL_PATH, &sha, kernel.len())]));
    assert!(matches!(
        cache.resolve(KERNEL_PATH).await,
        Err(ImageCacheError::Sha256Mismatch { .. })
    ));
    assert!(!cache.contains(&sha));
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);

    // Through BootFiles the failure is a backend problem, not a missing file.
    let backend = Arc::new(FileBackend::from_toml("").expect("backend"));
    let root = tempfile::tempdir().expect("root");
    let files = BootFiles::new(
        BootFilesConfig {
            root: root.path().to_path_buf(),
            images: None,
            http_port: 5248,
        },
        backend,
    )
    .with_image_cache(Arc::clone(&cache));
    let request = maas_rack::FileRequest {
        local_ip: "127.0.0.1".parse().expect("ip"),
        remote_ip: "127.0.0.1".parse().expect("ip"),
        protocol: maas_rack::Protocol::Http,
    };
    assert!(matches!(
        files
            .resolve(&format!("/images/{KERNEL_PATH}"), request)
            .await,
        Err(ResolveError::Backend { .. })
    ));
    region.corrupt.store(false, Ordering::SeqCst);
    assert!(matches!(
        files
            .resolve(&format!("/images/{KERNEL_PATH}"), request)
            .await,
        Ok(maas_rack::Resolved::File { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kernel_is_served_over_http_and_tftp_fetched_from_the_region_once() {
    if !require_programs(&["curl"]) {
        return;
    }
    let region = FakeRegion::default();
    let kernel = pattern(2 * 1024 * 1024 + 333, 8);
    let sha = region.add(&kernel);
    let address = region.clone().start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = open_cache(&dir.path().join("cache"), address, 64 * 1024 * 1024).await;
    cache.set_manifest(manifest(&[(KERNEL_PATH, &sha, kernel.len())]));
    std::fs::create_dir_all(dir.path().join("root")).expect("root");
    let backend = Arc::new(FileBackend::from_toml("").expect("backend"));
    let files = Arc::new(
        BootFiles::new(
            BootFilesConfig {
                root: dir.path().join("root"),
                images: None,
                http_port: 5248,
            },
            backend,
        )
        .with_image_cache(Arc::clone(&cache)),
    );
    let http = HttpServer::bind(
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        },
        Arc::clone(&files),
    )
    .await
    .expect("bind HTTP");
    let http_address = http.local_addr().expect("address");
    let tftp = TftpServer::bind(
        TftpConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            ..TftpConfig::default()
        },
        Arc::clone(&files),
    )
    .await
    .expect("bind TFTP");
    let tftp_address = tftp.local_addrs()[0];
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut http_stop = stopped.clone();
    let mut tftp_stop = stopped;
    let http_task = tokio::spawn(http.run(async move {
        let _ = http_stop.wait_for(|s| *s).await;
    }));
    let tftp_task = tokio::spawn(tftp.run(async move {
        let _ = tftp_stop.wait_for(|s| *s).await;
    }));

    let out = dir.path().join("out");
    let fetch = move |url: String| {
        let out = out.clone();
        tokio::task::spawn_blocking(move || {
            let output = run_with_timeout(
                Command::new("curl")
                    .args(["-s", "-S", "-f", "-o"])
                    .arg(&out)
                    .arg(&url),
                Duration::from_secs(60),
            );
            assert!(
                output.status.success(),
                "curl {url}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            std::fs::read(&out).expect("read")
        })
    };
    let urls = [
        format!("http://{http_address}/images/{KERNEL_PATH}"),
        format!(
            "http://{http_address}/images/{}/{KERNEL_PATH}",
            sha.prefix(7)
        ),
        format!("tftp://{tftp_address}/{KERNEL_PATH}"),
    ];
    for url in urls {
        let body = fetch(url.clone()).await.expect("join");
        assert!(body == kernel, "{url} served other bytes");
    }
    assert_eq!(region.requests(&sha), 1);
    assert_eq!(cache.stats().hits(), 2);
    let missing = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("http://{http_address}/images/ubuntu/amd64/nothing"))
            .output()
            .expect("curl")
    })
    .await
    .expect("join");
    assert_eq!(String::from_utf8_lossy(&missing.stdout), "404");

    stop.send_replace(true);
    let _ = http_task.await;
    let _ = tftp_task.await;
}
