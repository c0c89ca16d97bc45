//! Test plumbing: the signed test mirror (built by scripts/build-test-images.sh), a
//! loopback HTTP server over it with `Range` support and injectable faults, and fixtures.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use maas_images::{
    BootSource, ContentStore, FetchConfig, ImporterConfig, Keyring, MemoryCatalog, MemoryEvents,
    RetryPolicy,
};
use maas_simplestreams::{Selection, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Whether a prerequisite holds; otherwise skip loudly, or fail under `CI=true`.
pub fn require(what: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("prerequisite missing under CI=true: {what} (run scripts/deps/images.sh as root)");
    }
    eprintln!(
        "\n========================================================================\n\
         SKIPPING TEST: prerequisite missing: {what}\n\
         (install with scripts/deps/images.sh as root; under CI=true this fails)\n\
         ========================================================================\n"
    );
    false
}

/// The published test image set.
pub struct Mirror {
    pub dir: PathBuf,
    pub files: BTreeMap<String, String>,
}

impl Mirror {
    pub fn v1(&self) -> PathBuf {
        self.dir.join("mirror")
    }

    pub fn next(&self) -> PathBuf {
        self.dir.join("mirror-next")
    }

    pub fn keyring(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("keyring.gpg")).expect("keyring.gpg")
    }

    pub fn other_keyring(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("other-keyring.gpg")).expect("other-keyring.gpg")
    }

    pub fn sha(&self, key: &str) -> Sha256 {
        Sha256::parse(&self.files[key]).expect(key)
    }

    pub fn value(&self, key: &str) -> &str {
        &self.files[key]
    }
}

/// Builds (once per test process; cached on disk across runs) and returns the mirror, or
/// `None` after a loud skip when its tools or packages are missing.
pub fn mirror() -> Option<&'static Mirror> {
    static MIRROR: OnceLock<Result<Mirror, String>> = OnceLock::new();
    let built = MIRROR.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = repo.join("target/test-images");
        let output = Command::new("bash")
            .arg(repo.join("scripts/build-test-images.sh"))
            .arg(&dir)
            .output()
            .map_err(|e| format!("running scripts/build-test-images.sh: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "scripts/build-test-images.sh failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let env = std::fs::read_to_string(dir.join("files.env"))
            .map_err(|e| format!("reading files.env: {e}"))?;
        let files = env
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Ok(Mirror { dir, files })
    });
    match built {
        Ok(mirror) => Some(mirror),
        Err(reason) => {
            require(&format!("the test image mirror ({reason})"), false);
            None
        }
    }
}

/// A fault the server injects into responses for paths ending in `suffix`.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Close the connection after this many body bytes, for the first `times` requests.
    DropAfter {
        suffix: String,
        bytes: usize,
        times: usize,
    },
    /// Flip a byte in the middle of the body.
    Corrupt { suffix: String },
    /// Answer with this status and no body.
    Status { suffix: String, status: u16 },
    /// Send at most this many bytes per 10 ms.
    Throttle { suffix: String, per_10ms: usize },
}

impl Fault {
    fn suffix(&self) -> &str {
        match self {
            Fault::DropAfter { suffix, .. }
            | Fault::Corrupt { suffix }
            | Fault::Status { suffix, .. }
            | Fault::Throttle { suffix, .. } => suffix,
        }
    }
}

/// One request the server saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub range: Option<String>,
    pub status: u16,
    /// Body bytes the server set out to send (fewer when a fault cuts the body).
    pub body_bytes: usize,
}

#[derive(Default)]
struct ServerState {
    root: PathBuf,
    faults: Vec<Fault>,
    seen: Vec<Seen>,
}

/// A minimal HTTP/1.1 file server on loopback (one request per connection).
#[derive(Clone)]
pub struct MirrorServer {
    pub address: SocketAddr,
    state: Arc<Mutex<ServerState>>,
}

impl MirrorServer {
    pub async fn start(root: &Path) -> MirrorServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let state = Arc::new(Mutex::new(ServerState {
            root: root.to_path_buf(),
            ..ServerState::default()
        }));
        let served = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&served)));
            }
        });
        MirrorServer { address, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    pub fn set_root(&self, root: &Path) {
        self.state.lock().expect("state").root = root.to_path_buf();
    }

    pub fn set_faults(&self, faults: Vec<Fault>) {
        self.state.lock().expect("state").faults = faults;
    }

    pub fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut self.state.lock().expect("state").seen)
    }
}

fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && let Some(value) = path
                .get(index + 1..index + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(value);
            index += 3;
            continue;
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<ServerState>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
        if head.len() > 16 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.lines();
    let Some(request_line) = lines.next() else {
        return;
    };
    let raw_path = request_line.split(' ').nth(1).unwrap_or("/");
    let path = percent_decode(raw_path.trim_start_matches('/'));
    let range = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("range"))
        .map(|(_, value)| value.trim().to_owned());

    let (root, fault) = {
        let mut state = state.lock().expect("state");
        let fault = state
            .faults
            .iter_mut()
            .find(|fault| path.ends_with(fault.suffix()))
            .map(|fault| {
                let current = fault.clone();
                if let Fault::DropAfter { times, .. } = fault {
                    *times = times.saturating_sub(1);
                }
                current
            });
        (state.root.clone(), fault)
    };
    let record = |status: u16, body_bytes: usize| {
        state.lock().expect("state").seen.push(Seen {
            path: path.clone(),
            range: range.clone(),
            status,
            body_bytes,
        });
    };
    if let Some(Fault::Status { status, .. }) = &fault {
        let _ = stream
            .write_all(
                format!(
                    "HTTP/1.1 {status} Injected\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .await;
        record(*status, 0);
        return;
    }
    let file = root.join(&path);
    let Ok(mut body) = (if path.contains("..") {
        Err(std::io::Error::other("escape"))
    } else {
        std::fs::read(&file)
    }) else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        record(404, 0);
        return;
    };
    if let Some(Fault::Corrupt { .. }) = &fault {
        let middle = body.len() / 2;
        if let Some(byte) = body.get_mut(middle) {
            *byte ^= 0xff;
        }
    }
    let total = body.len();
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse::<usize>().ok());
    let (status_line, slice, extra) = match start {
        Some(start) if start < total => (
            "206 Partial Content",
            &body[start..],
            format!("Content-Range: bytes {start}-{}/{total}\r\n", total - 1),
        ),
        Some(_) => {
            let _ = stream
                .write_all(
                    format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await;
            record(416, 0);
            return;
        }
        None => ("200 OK", &body[..], String::new()),
    };
    let status: u16 = status_line[..3].parse().unwrap_or(200);
    let header = format!(
        "HTTP/1.1 {status_line}\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\n{extra}Connection: close\r\n\r\n",
        slice.len()
    );
    let limit = match &fault {
        Some(Fault::DropAfter { bytes, times, .. }) if *times > 0 => (*bytes).min(slice.len()),
        _ => slice.len(),
    };
    // Logged before the client can see a byte, so a test that has its reply has its log.
    record(status, limit);
    if stream.write_all(header.as_bytes()).await.is_err() {
        return;
    }
    match &fault {
        Some(Fault::Throttle { per_10ms, .. }) => {
            for chunk in slice.chunks((*per_10ms).max(1)) {
                if stream.write_all(chunk).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        _ => {
            let _ = stream.write_all(&slice[..limit]).await;
        }
    }
    let _ = stream.flush().await;
    // Dropping the stream closes the connection (mid-body when a fault cut it short).
}

/// Importer settings for tests: fast retries, short timeouts.
pub fn config() -> ImporterConfig {
    ImporterConfig {
        max_concurrent_downloads: 2,
        retry: RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
        },
        fetch: FetchConfig {
            proxy: None,
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
            max_document_bytes: 1024 * 1024,
        },
        bootloaders: Vec::new(),
    }
}

pub fn selection(os: &str, release: &str) -> Selection {
    Selection {
        os: os.into(),
        release: release.into(),
        arches: vec!["*".into()],
        subarches: vec!["*".into()],
        labels: vec!["*".into()],
    }
}

pub fn source(id: i64, url: String, keyring: Keyring) -> BootSource {
    BootSource {
        id,
        url,
        keyring,
        priority: 10,
        selections: vec![selection("ubuntu", "jammy"), selection("custom", "tiny")],
    }
}

/// A fresh store, catalog and event log.
pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub store: ContentStore,
    pub catalog: Arc<MemoryCatalog>,
    pub events: Arc<MemoryEvents>,
}

impl Fixture {
    pub async fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ContentStore::open(dir.path().join("images"))
            .await
            .expect("store");
        Fixture {
            _dir: dir,
            store,
            catalog: Arc::new(MemoryCatalog::new()),
            events: Arc::new(MemoryEvents::new()),
        }
    }

    pub fn importer(&self) -> maas_images::Importer {
        maas_images::Importer::new(
            config(),
            self.store.clone(),
            self.catalog.clone(),
            self.events.clone(),
        )
        .expect("importer")
    }
}

/// Copies a directory tree (for tampered mirror copies).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
