//! The whole region as a user runs it: the `maas` binary started on a real
//! port, the admin commands, the CLI lines of issue 2 typed verbatim, and
//! python-libmaas (from PyPI, unchanged) against it.
//!
//! Needs `jq` and the repo's `.venv` with python-libmaas (scripts/test
//! installs both); without them the checks that need them skip loudly,
//! except under CI=true, where they fail.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const MAAS: &str = env!("CARGO_BIN_EXE_maas");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (loudly) or fails (under CI) when a prerequisite is missing.
fn require(present: bool, what: &str) -> bool {
    if !present {
        assert!(
            !in_ci(),
            "{what} is missing and CI=true: run scripts/test, which installs it"
        );
        eprintln!("SKIPPED part of the e2e test: {what} is missing (scripts/test installs it)");
    }
    present
}

struct Region {
    child: Child,
    url: String,
    data_dir: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Drop for Region {
    fn drop(&mut self) {
        // SIGTERM, then wait: the server must stop cleanly.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

impl Region {
    /// A region that never imports boot images on its own (its default source is the
    /// public stream, which tests must not reach for).
    fn start(database_uri: Option<&str>) -> Region {
        Region::start_with(database_uri, &[("MAAS_IMAGES_AUTO_IMPORT", "false")])
    }

    /// A region whose `maas init` and `maas start` see `env`.
    fn start_with(database_uri: Option<&str>, env: &[(&str, &str)]) -> Region {
        let data_dir = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        let mut init = Command::new(MAAS);
        init.envs(env.iter().copied());
        init.args(["init", "--data-dir"]).arg(data_dir.path());
        if let Some(uri) = database_uri {
            init.args(["--database-uri", uri]);
        }
        let status = init.status().unwrap();
        assert!(status.success(), "maas init failed");
        // Running init twice changes nothing.
        let before = std::fs::read_to_string(data_dir.path().join("regiond.toml")).unwrap();
        assert!(
            Command::new(MAAS)
                .envs(env.iter().copied())
                .args(["init", "--data-dir"])
                .arg(data_dir.path())
                .status()
                .unwrap()
                .success()
        );
        assert_eq!(
            before,
            std::fs::read_to_string(data_dir.path().join("regiond.toml")).unwrap()
        );

        // The all-in-one's rack: loopback only and no DHCP, so a test answers nobody on
        // the machine's network.
        std::fs::create_dir_all(data_dir.path().join("rack")).unwrap();
        std::fs::write(
            data_dir.path().join("rack/rackd.toml"),
            "[dhcp]\nenabled = false\n[tftp]\nlisten = [\"127.0.0.1:0\"]\n[http]\nlisten = \"127.0.0.1:0\"\n",
        )
        .unwrap();
        let mut child = Command::new(MAAS)
            .envs(env.iter().copied())
            .args(["start", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.path())
            .env("MAAS_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(listen) = value["fields"]["listen"].as_str()
                {
                    let _ = sender.send(listen.to_owned());
                }
                // Keep draining so the server never blocks on a full pipe.
            }
        });
        let listen = receiver
            .recv_timeout(Duration::from_secs(30))
            .expect("the region printed its address");
        Region {
            child,
            url: format!("http://{listen}/MAAS/"),
            data_dir,
            home,
        }
    }

    fn maas(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(MAAS)
            .args(args)
            .env("HOME", self.home.path())
            .env("MAAS_CLI_CONFIG", self.home.path().join("profiles.json"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    #[track_caller]
    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.maas(args, stdin);
        assert!(
            out.status.success(),
            "maas {args:?} failed ({:?}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn data_dir(&self) -> &str {
        self.data_dir.path().to_str().unwrap()
    }
}

fn walk(region: &Region) {
    let dir = region.data_dir().to_owned();
    region.ok(
        &[
            "createadmin",
            "--username",
            "admin",
            "--email",
            "admin@example.com",
            "--password",
            "s3cret",
            "--data-dir",
            &dir,
        ],
        None,
    );
    let out = region.maas(
        &[
            "createadmin",
            "--username",
            "admin",
            "--email",
            "a@b",
            "--password",
            "x",
            "--data-dir",
            &dir,
        ],
        None,
    );
    assert!(
        !out.status.success(),
        "a second admin with the same name is refused"
    );
    let key = region.ok(&["apikey", "--username", "admin", "--data-dir", &dir], None);
    let key = key.trim().to_owned();
    assert_eq!(key.split(':').count(), 3, "{key}");

    // The lines of issue 2, verbatim.
    let login = region.ok(
        &["login", "admin", &region.url, "-"],
        Some(&format!("{key}\n")),
    );
    assert!(login.contains("You are now logged in"), "{login}");
    // `maas start` runs a rack in its process, linked to the region like any other.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let racks = region.ok(&["admin", "rack-controllers", "read"], None);
        let racks: serde_json::Value = serde_json::from_str(&racks).unwrap();
        let running = racks.as_array().is_some_and(|list| {
            list.len() == 1
                && list[0]["service_set"].as_array().is_some_and(|services| {
                    services
                        .iter()
                        .any(|s| s["name"] == "rackd" && s["status"] == "running")
                        && services
                            .iter()
                            .any(|s| s["name"] == "tftp" && s["status"] == "running")
                })
        });
        if running {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the in-process rack did not come up: {racks}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let created = region.ok(
        &[
            "admin",
            "users",
            "create",
            "username=u",
            "email=e",
            "password=p",
            "is_superuser=0",
        ],
        None,
    );
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    assert_eq!(created["username"], "u");
    assert_eq!(created["is_superuser"], false);
    region.ok(
        &[
            "admin",
            "machines",
            "create",
            "architecture=amd64",
            "mac_addresses=52:54:00:aa:bb:01",
            "hostname=node2",
            "power_type=manual",
            "commission=false",
        ],
        None,
    );
    region.ok(
        &[
            "admin",
            "machines",
            "create",
            "architecture=amd64",
            "mac_addresses=52:54:00:aa:bb:02",
            "hostname=node3",
            "power_type=manual",
        ],
        None,
    );
    let read = region.ok(&["admin", "machines", "read", "hostname=node2"], None);
    let list: serde_json::Value = serde_json::from_str(&read).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["hostname"], "node2");
    assert!(read.starts_with("[\n    {"), "indented as MAAS prints it");
    let system_id = list[0]["system_id"].as_str().unwrap().to_owned();

    if require(Command::new("jq").arg("--version").output().is_ok(), "jq") {
        let piped = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "'{MAAS}' admin machines read | jq '.[] | .hostname, .system_id'"
            ))
            .env("MAAS_CLI_CONFIG", region.home.path().join("profiles.json"))
            .output()
            .unwrap();
        assert!(
            piped.status.success(),
            "{}",
            String::from_utf8_lossy(&piped.stderr)
        );
        let text = String::from_utf8(piped.stdout).unwrap();
        assert_eq!(
            text.lines().filter(|l| l.starts_with('"')).count(),
            4,
            "{text}"
        );
        assert!(
            text.contains("\"node2\"") && text.contains(&format!("\"{system_id}\"")),
            "{text}"
        );
    }

    let nodes: serde_json::Value =
        serde_json::from_str(&region.ok(&["admin", "nodes", "read"], None)).unwrap();
    // Both machines and the rack controller `maas start` runs (node_type 2).
    let nodes = nodes.as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    assert_eq!(
        nodes.iter().filter(|n| n["node_type"] == 2).count(),
        1,
        "{nodes:?}"
    );
    let one: serde_json::Value =
        serde_json::from_str(&region.ok(&["admin", "machine", "read", &system_id], None)).unwrap();
    assert_eq!(one["hostname"], "node2");
    region.ok(
        &[
            "admin",
            "machine",
            "update",
            &system_id,
            "description=rack 7",
        ],
        None,
    );
    let zone = region.ok(&["admin", "zones", "create", "name=row-9"], None);
    assert!(zone.contains("row-9"));
    let config = region.ok(
        &["admin", "maas", "get-config", "name=default_distro_series"],
        None,
    );
    assert_eq!(config.trim(), "\"noble\"");

    // Bad input gets MAAS's error and exit code 2.
    let missing = region.maas(&["admin", "machine", "read", "zzzzzz"], None);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stdout).contains("No Machine matches the given query.")
    );
    let bad = region.maas(&["admin", "machines", "read", "colour=blue"], None);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("No such constraint."));
    let refused = region.maas(&["login", "bad", &region.url, "a:b:c"], None);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("rejected your API key")
            || String::from_utf8_lossy(&refused.stdout).contains("rejected your API key")
    );

    // changepassword reads the new password from stdin when it isn't a terminal.
    region.ok(
        &["changepassword", "u", "--data-dir", &dir],
        Some("n3w-pass\n"),
    );

    let venv_python = repo_root().join(".venv/bin/python");
    let has_libmaas = Command::new(&venv_python)
        .args(["-c", "import maas.client, pytest"])
        .output()
        .is_ok_and(|o| o.status.success());
    if require(has_libmaas, "python-libmaas in .venv") {
        let out = Command::new(&venv_python)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .arg(repo_root().join("tests/python"))
            .env("MAAS_TEST_URL", &region.url)
            .env("MAAS_TEST_APIKEY", &key)
            .env("MAAS_TEST_USER", "admin")
            .env("MAAS_TEST_PASSWORD", "s3cret")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "python-libmaas tests failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "{}",
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .unwrap_or("")
        );
    }

    region.ok(&["logout", "admin"], None);
    let profiles = region.ok(&["list"], None);
    assert!(!profiles.contains("admin"), "{profiles}");
}

#[test]
fn sqlite_region_with_real_clients() {
    let region = Region::start(None);
    walk(&region);
}

#[test]
fn postgres_region_with_real_clients() {
    let Ok(admin_url) = std::env::var("TEST_POSTGRES_URL") else {
        require(false, "TEST_POSTGRES_URL (a PostgreSQL server)");
        return;
    };
    let name = format!("maas_e2e_{}", std::process::id());
    let psql_ok = Command::new("psql")
        .arg(&admin_url)
        .args([
            "-q",
            "-c",
            &format!("DROP DATABASE IF EXISTS {name}"),
            "-c",
            &format!("CREATE DATABASE {name}"),
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(psql_ok, "creating the e2e database with psql");
    let slash = admin_url.rfind('/').unwrap();
    let url = format!("{}/{name}", &admin_url[..slash]);
    let region = Region::start(Some(&url));
    walk(&region);
}

/// Serves `root` over HTTP on a loopback port (GET, one request per connection), as a
/// simplestreams mirror would; returns its URL.
fn serve_dir(root: PathBuf) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let root = root.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    return;
                }
                // Skip the headers.
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let path = request_line.split(' ').nth(1).unwrap_or("/");
                let path = path.trim_start_matches('/');
                let file = (!path.contains(".."))
                    .then(|| std::fs::read(root.join(path)).ok())
                    .flatten();
                let _ = match file {
                    Some(body) => stream
                        .write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            )
                            .as_bytes(),
                        )
                        .and_then(|()| stream.write_all(&body)),
                    None => stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    ),
                };
            });
        }
    });
    url
}

/// `GET path` on the region without credentials: (status, body).
fn http_get(region_url: &str, path: &str) -> (u16, Vec<u8>) {
    http_get_with(region_url, path, None)
}

/// An admin with a key, logged in as profile `admin`.
fn login_admin(region: &Region) -> String {
    let dir = region.data_dir().to_owned();
    region.ok(
        &[
            "createadmin",
            "--username",
            "admin",
            "--email",
            "admin@example.com",
            "--password",
            "s3cret",
            "--data-dir",
            &dir,
        ],
        None,
    );
    let key = region.ok(&["apikey", "--username", "admin", "--data-dir", &dir], None);
    let key = key.trim().to_owned();
    region.ok(
        &["login", "admin", &region.url, "-"],
        Some(&format!("{key}\n")),
    );
    key
}

fn wait_for_import(region: &Region) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while region
        .ok(&["admin", "boot-resources", "is-importing"], None)
        .trim()
        != "false"
    {
        assert!(
            Instant::now() < deadline,
            "the boot image import did not end"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned()
}

/// Boot images through `maas start`: the default source (pointed at the signed test mirror
/// on loopback) imported at start and on `import`, and the upload line of issue 6 typed
/// verbatim, its content then served to racks by sha256.
#[test]
fn boot_images_with_real_clients() {
    let root = repo_root();
    let images = root.join("target/test-images");
    let built = Command::new("bash")
        .arg(root.join("scripts/build-test-images.sh"))
        .arg(&images)
        .output();
    let tools = ["gzip", "sha256sum"]
        .iter()
        .all(|tool| Command::new(tool).arg("--version").output().is_ok());
    if !require(
        built.is_ok_and(|o| o.status.success()) && tools,
        "the signed test mirror (scripts/build-test-images.sh; scripts/deps/images.sh installs its tools)",
    ) {
        return;
    }
    let mirror_url = serve_dir(images.join("mirror"));
    let keyring = images.join("keyring.gpg");
    let region = Region::start_with(
        None,
        &[
            ("MAAS_BOOT_SOURCE_URL", mirror_url.as_str()),
            ("MAAS_BOOT_SOURCE_KEYRING", keyring.to_str().unwrap()),
        ],
    );
    login_admin(&region);

    // `maas init` made the default source, with the commissioning release selected, and
    // `maas start` imported from it (the mirror has no noble, so it imported nothing).
    let sources: serde_json::Value =
        serde_json::from_str(&region.ok(&["admin", "boot-sources", "read"], None)).unwrap();
    assert_eq!(sources.as_array().unwrap().len(), 1, "{sources}");
    assert_eq!(sources[0]["url"], mirror_url.as_str());
    assert_eq!(sources[0]["keyring_filename"], keyring.to_str().unwrap());
    let source_id = sources[0]["id"].to_string();
    let selections: serde_json::Value = serde_json::from_str(&region.ok(
        &["admin", "boot-source-selections", "read", &source_id],
        None,
    ))
    .unwrap();
    assert_eq!(selections[0]["release"], "noble");
    wait_for_import(&region);
    let events = region.ok(&["admin", "events", "query", "level=DEBUG"], None);
    assert!(events.contains("REGION_IMPORT_"), "{events}");

    region.ok(
        &[
            "admin",
            "boot-source-selections",
            "create",
            &source_id,
            "os=ubuntu",
            "release=jammy",
            "arches=amd64",
        ],
        None,
    );
    let started = region.ok(&["admin", "boot-resources", "import"], None);
    assert!(
        started.contains("Import of boot resources started"),
        "{started}"
    );
    wait_for_import(&region);
    let synced: serde_json::Value =
        serde_json::from_str(&region.ok(&["admin", "boot-resources", "read", "type=synced"], None))
            .unwrap();
    let jammy = synced
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "ubuntu/jammy")
        .unwrap_or_else(|| panic!("ubuntu/jammy imported: {synced}"));
    let detail: serde_json::Value = serde_json::from_str(&region.ok(
        &["admin", "boot-resource", "read", &jammy["id"].to_string()],
        None,
    ))
    .unwrap();
    assert_eq!(detail["sets"]["20240301"]["complete"], true, "{detail}");

    // The upload line of issue 6, verbatim, with a generated disk image of three chunks.
    let work = tempfile::tempdir().unwrap();
    let raw = work.path().join("vmware-esxi.dd");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..9 * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(&raw, &bytes).unwrap();
    assert!(Command::new("gzip").arg(&raw).status().unwrap().success());
    let image = work.path().join("vmware-esxi.dd.gz");
    let line = format!(
        "'{MAAS}' admin boot-resources create name='esxi/6.7' title='VMware ESXi 6.7' architecture='amd64/generic' filetype='ddgz' content@={}",
        image.display()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(&line)
        .env("HOME", region.home.path())
        .env("MAAS_CLI_CONFIG", region.home.path().join("profiles.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{line}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let uploaded: serde_json::Value = serde_json::from_str(
        &region.ok(&["admin", "boot-resources", "read", "type=uploaded"], None),
    )
    .unwrap();
    assert_eq!(uploaded.as_array().unwrap().len(), 1, "{uploaded}");
    assert_eq!(uploaded[0]["name"], "esxi/6.7");
    assert_eq!(uploaded[0]["title"], "VMware ESXi 6.7");
    assert_eq!(uploaded[0]["architecture"], "amd64/generic");
    let detail: serde_json::Value = serde_json::from_str(&region.ok(
        &[
            "admin",
            "boot-resource",
            "read",
            &uploaded[0]["id"].to_string(),
        ],
        None,
    ))
    .unwrap();
    let set = detail["sets"].as_object().unwrap().values().next().unwrap();
    assert_eq!(set["complete"], true, "{detail}");
    let file = &set["files"]["root-dd.gz"];
    let sha256 = sha256_of(&image);
    assert_eq!(file["sha256"], sha256.as_str());
    assert_eq!(file["size"], std::fs::metadata(&image).unwrap().len());

    // Racks fetch the upload by its sha256.
    let (status, body) = http_get(
        &region.url,
        &format!("/MAAS/boot-resources/{sha256}/root-dd.gz"),
    );
    assert_eq!(status, 200);
    assert_eq!(body, std::fs::read(&image).unwrap());
    let (status, manifest) = http_get(&region.url, "/MAAS/boot-resources/manifest.json");
    assert_eq!(status, 200);
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(
        manifest["files"]["esxi/amd64/generic/6.7/uploaded/root-dd.gz"]["sha256"],
        sha256.as_str()
    );
    assert!(
        manifest["files"]["ubuntu/amd64/ga-22.04/jammy/stable/boot-kernel"].is_object(),
        "{manifest}"
    );
}

/// The machine agent of the in-memory environment, run in this process against the
/// region, with the small VM's /proc and /sys fixture and a sparse file as its disk.
struct Machine {
    root: PathBuf,
    dev: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Machine {
    fn new() -> Machine {
        let dev = tempfile::tempdir().unwrap();
        let disk = std::fs::File::create(dev.path().join("vda")).unwrap();
        disk.set_len(8 * 1024 * 1024 * 1024).unwrap();
        Machine {
            root: repo_root().join("crates/agent/tests/data/inventory/qemu-vm"),
            dev,
            work: tempfile::tempdir().unwrap(),
        }
    }

    /// Boots the environment with `preseed_url` on its kernel command line, as the rack's
    /// boot config puts it, and runs the agent to its end.
    fn boot(&self, preseed_url: &str) -> maas_agent::agent::Ending {
        let mut config = maas_agent::agent::Config::new(format!(
            "console=ttyS0 cloud-config-url={preseed_url} BOOTIF=01-52-54-00-12-34-56"
        ));
        config.root = self.root.clone();
        config.dev = self.dev.path().to_path_buf();
        config.work = self.work.path().to_path_buf();
        config.heartbeat = Duration::from_secs(5);
        config.backoff = vec![Duration::from_millis(100)];
        maas_agent::agent::run(&config).unwrap()
    }

    fn disk(&self) -> PathBuf {
        self.dev.path().join("vda")
    }
}

fn machine_json(region: &Region, system_id: &str) -> serde_json::Value {
    serde_json::from_str(&region.ok(&["admin", "machine", "read", system_id], None)).unwrap()
}

/// A YAML `key: value` line's value from a preseed.
fn preseed_value(preseed: &str, key: &str) -> String {
    preseed
        .lines()
        .find_map(|line| line.trim().strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("{key} in {preseed}"))
        .trim()
        .trim_matches('"')
        .to_owned()
}

/// A machine's whole life through `maas start`, the `maas` CLI and the real machine agent
/// (in this process instead of a PXE-booted VM; the QEMU boot of the same agent is
/// crates/agent's boot test): enlisted as New, commissioned to Ready with its inventory,
/// allocated, deployed (the curtin configuration's image written to its disk), Deployed
/// when the installed OS fetches its user data, released with a quick erase to Ready.
#[test]
fn machine_life_with_the_agent() {
    let region = Region::start(None);
    login_admin(&region);
    let phase = Instant::now();
    let mut timings = Vec::new();
    let lap = |name: &str, timings: &mut Vec<String>| {
        timings.push(format!("{name} {:.2} s", phase.elapsed().as_secs_f64()));
    };

    // A custom disk image to deploy, uploaded as users do.
    let work = tempfile::tempdir().unwrap();
    let image = work.path().join("life.dd");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..3 * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(&image, &bytes).unwrap();
    region.ok(
        &[
            "admin",
            "boot-resources",
            "create",
            "name=custom/life",
            "title=Life test",
            "architecture=amd64/generic",
            "filetype=ddraw",
            &format!("content@={}", image.display()),
        ],
        None,
    );

    // An unknown machine boots the enlistment environment and enlists itself.
    let machine = Machine::new();
    let base = region.url.trim_end_matches('/').to_owned();
    let ending = machine.boot(&format!(
        "{base}/metadata/latest/enlist-preseed/?op=get_enlist_preseed"
    ));
    assert_eq!(ending, maas_agent::agent::Ending::PowerOff);
    let found: serde_json::Value = serde_json::from_str(&region.ok(
        &["admin", "machines", "read", "mac_address=52:54:00:12:34:56"],
        None,
    ))
    .unwrap();
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    let system_id = found[0]["system_id"].as_str().unwrap().to_owned();
    assert_eq!(found[0]["status_name"], "New", "{found}");
    lap("enlisted", &mut timings);

    region.ok(
        &[
            "admin",
            "machine",
            "update",
            &system_id,
            "power_type=manual",
        ],
        None,
    );
    let started = machine_json(&region, &system_id);
    assert_eq!(started["status_name"], "New");
    let out: serde_json::Value = serde_json::from_str(&region.ok(
        &[
            "admin",
            "machine",
            "commission",
            &system_id,
            "testing_scripts=none",
        ],
        None,
    ))
    .unwrap();
    assert_eq!(out["status_name"], "Commissioning", "{out}");
    let preseed_url = format!("{base}/metadata/latest/by-id/{system_id}/?op=get_preseed");
    machine.boot(&preseed_url);
    let ready = machine_json(&region, &system_id);
    assert_eq!(ready["status_name"], "Ready", "{ready}");
    assert_eq!(ready["cpu_count"], 2, "{ready}");
    assert_eq!(ready["memory"], 512, "{ready}");
    assert_eq!(ready["boot_interface"]["mac_address"], "52:54:00:12:34:56");
    assert_eq!(
        ready["storage"].as_f64().map(|mb| mb.round() as i64),
        Some(8590),
        "{ready}"
    );
    lap("commissioned", &mut timings);

    let allocated: serde_json::Value = serde_json::from_str(&region.ok(
        &[
            "admin",
            "machines",
            "allocate",
            &format!("system_id={system_id}"),
        ],
        None,
    ))
    .unwrap();
    assert_eq!(allocated["status_name"], "Allocated", "{allocated}");
    // user_data is base64, as MAAS's CLI users give it.
    let user_data = "I2Nsb3VkLWNvbmZpZwpydW5jbWQ6IFtlY2hvLCBoZWxsb10K";
    let deploying: serde_json::Value = serde_json::from_str(&region.ok(
        &[
            "admin",
            "machine",
            "deploy",
            &system_id,
            "distro_series=custom/life",
            &format!("user_data={user_data}"),
        ],
        None,
    ))
    .unwrap();
    assert_eq!(deploying["status_name"], "Deploying", "{deploying}");
    let ending = machine.boot(&preseed_url);
    assert_eq!(ending, maas_agent::agent::Ending::Reboot);
    let mut written = vec![0u8; bytes.len()];
    {
        use std::io::Read;
        std::fs::File::open(machine.disk())
            .unwrap()
            .read_exact(&mut written)
            .unwrap();
    }
    assert!(written == bytes, "the image was written to the boot disk");
    let after_install = machine_json(&region, &system_id);
    assert_eq!(after_install["status_name"], "Deploying");
    assert_eq!(after_install["netboot"], false, "netboot_off was posted");
    // The installed OS's first boot: cloud-init's MAAS datasource fetches its user data
    // with the node's token, and that makes the machine Deployed.
    let (status, preseed) = http_get(
        &region.url,
        &format!("/MAAS/metadata/latest/by-id/{system_id}/?op=get_preseed"),
    );
    assert_eq!(status, 200);
    let preseed = String::from_utf8(preseed).unwrap();
    let header = format!(
        "OAuth oauth_version=\"1.0\", oauth_signature_method=\"PLAINTEXT\", oauth_consumer_key=\"{}\", oauth_token=\"{}\", oauth_signature=\"&{}\", oauth_nonce=\"life-1\", oauth_timestamp=\"{}\"",
        preseed_value(&preseed, "consumer_key"),
        preseed_value(&preseed, "token_key"),
        preseed_value(&preseed, "token_secret"),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );
    let (status, data) = http_get_with(
        &region.url,
        "/MAAS/metadata/latest/user-data",
        Some(&header),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&data));
    assert_eq!(data, b"#cloud-config\nruncmd: [echo, hello]\n");
    let deployed = machine_json(&region, &system_id);
    assert_eq!(deployed["status_name"], "Deployed", "{deployed}");
    assert_eq!(deployed["osystem"], "custom");
    assert_eq!(deployed["distro_series"], "life");
    lap("deployed", &mut timings);

    let releasing: serde_json::Value = serde_json::from_str(&region.ok(
        &[
            "admin",
            "machine",
            "release",
            &system_id,
            "erase=true",
            "quick_erase=true",
        ],
        None,
    ))
    .unwrap();
    assert_eq!(releasing["status_name"], "Disk erasing", "{releasing}");
    machine.boot(&preseed_url);
    let released = machine_json(&region, &system_id);
    assert_eq!(released["status_name"], "Ready", "{released}");
    assert!(released["owner"].is_null(), "{released}");
    {
        use std::io::Read;
        let mut head = vec![0u8; 1024 * 1024];
        std::fs::File::open(machine.disk())
            .unwrap()
            .read_exact(&mut head)
            .unwrap();
        assert!(
            head.iter().all(|b| *b == 0),
            "the quick erase wiped the first MiB"
        );
    }
    lap("released", &mut timings);
    let events = region.ok(
        &[
            "admin",
            "events",
            "query",
            &format!("id={system_id}"),
            "level=DEBUG",
        ],
        None,
    );
    for wanted in ["Commissioning", "Deploying", "Deployed", "Disk erasing"] {
        assert!(
            events.contains(wanted),
            "{wanted} in the event log: {events}"
        );
    }
    eprintln!("machine life: {}", timings.join(", "));
}

/// `GET path` on the region, with an `Authorization` header if given: (status, body).
fn http_get_with(region_url: &str, path: &str, authorization: Option<&str>) -> (u16, Vec<u8>) {
    use std::io::Read;
    let host = region_url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{}Connection: close\r\n\r\n",
        authorization
            .map(|value| format!("Authorization: {value}\r\n"))
            .unwrap_or_default()
    )
    .unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP reply");
    let head = String::from_utf8_lossy(&reply[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, reply[split + 4..].to_vec())
}

/// The power poller of `maas start` against pyghmi's IPMI v2.0 BMC (from PyPI): a wrong
/// password turns the machine's power state to `error` with an event naming the BMC;
/// the right one brings the BMC's state back, and a change made behind MAAS's back
/// (ipmitool) is noticed.
#[test]
fn power_is_polled_from_a_real_bmc() {
    let python = repo_root().join(".venv/bin/python");
    let pyghmi = Command::new(&python)
        .args(["-c", "import pyghmi.ipmi.bmc"])
        .output()
        .is_ok_and(|o| o.status.success());
    let ipmitool = Command::new("ipmitool").arg("-V").output().is_ok();
    if !require(
        pyghmi && ipmitool,
        "pyghmi in .venv and ipmitool (scripts/deps/power.sh)",
    ) {
        return;
    }
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut bmc = Command::new(&python)
        .arg(repo_root().join("crates/power/tests/bmc/ipmi_bmc.py"))
        .args(["--address", "127.0.0.1", "--port", &port.to_string()])
        .args(["--user", "admin", "--password", "secret"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(bmc.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert!(ready.contains("ready"), "the BMC started: {ready}");
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _bmc = Kill(bmc);

    let region = Region::start_with(
        None,
        &[
            ("MAAS_IMAGES_AUTO_IMPORT", "false"),
            ("MAAS_POWER_POLL_INTERVAL", "1"),
        ],
    );
    login_admin(&region);
    let bmc_address = format!("127.0.0.1:{port}");
    let created: serde_json::Value = serde_json::from_str(&region.ok(
        &[
            "admin",
            "machines",
            "create",
            "architecture=amd64/generic",
            "mac_addresses=52:54:00:00:07:77",
            "power_type=ipmi",
            &format!("power_parameters_power_address={bmc_address}"),
            "power_parameters_power_user=admin",
            "power_parameters_power_pass=wrong",
            "power_parameters_power_driver=LAN_2_0",
        ],
        None,
    ))
    .unwrap();
    let system_id = created["system_id"].as_str().unwrap().to_owned();
    let wait_for = |wanted: &str| {
        let started = Instant::now();
        loop {
            let machine = machine_json(&region, &system_id);
            if machine["power_state"] == wanted {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "power_state never became {wanted}: {machine}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_for("error");
    // The commissioning power-on failed ("Failed to power on node"); the poller's own
    // query fails too and says so, naming the BMC.
    let started = Instant::now();
    loop {
        let events = region.ok(
            &[
                "admin",
                "events",
                "query",
                &format!("id={system_id}"),
                "level=DEBUG",
            ],
            None,
        );
        let events: serde_json::Value = serde_json::from_str(&events).unwrap();
        let polled = events["events"].as_array().unwrap().iter().find(|e| {
            e["type"] == "Failed to query node's BMC"
                && e["description"]
                    .as_str()
                    .unwrap_or("")
                    .contains(&bmc_address)
        });
        if let Some(event) = polled {
            eprintln!(
                "power poller: error after {:.2} s: {}",
                started.elapsed().as_secs_f64(),
                event["description"]
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no poller event naming {bmc_address}: {events}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(machine_json(&region, &system_id)["power_state"], "error");

    region.ok(
        &[
            "admin",
            "machine",
            "update",
            &system_id,
            "power_parameters_power_pass=secret",
        ],
        None,
    );
    // The region's own commissioning power-on failed with the wrong password, so the
    // BMC is as the emulator started it: off, unless something powered it on since.
    let status = Command::new("ipmitool")
        .args(["-I", "lanplus", "-H", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "admin", "-E", "power", "status"])
        .env("IPMI_PASSWORD", "secret")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout).to_lowercase();
    let now_state = if text.contains("is on") { "on" } else { "off" };
    let took = wait_for(now_state);
    eprintln!(
        "power poller: {now_state} after {:.2} s",
        took.as_secs_f64()
    );
    let other = if now_state == "on" { "off" } else { "on" };
    let changed = Command::new("ipmitool")
        .args(["-I", "lanplus", "-H", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "admin", "-E", "power", other])
        .env("IPMI_PASSWORD", "secret")
        .output()
        .unwrap();
    assert!(changed.status.success(), "{changed:?}");
    let took = wait_for(other);
    eprintln!(
        "power poller: noticed {other} after {:.2} s",
        took.as_secs_f64()
    );
}
