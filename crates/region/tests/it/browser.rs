//! The dashboard in a real browser: Debian's headless Chromium driven over
//! ChromeDriver's W3C WebDriver HTTP API, against the region serving on
//! 127.0.0.1. It logs in, lists machines, filters, opens a machine, runs an
//! action, sees a status change arrive live (no reload), double-clicks a
//! button (one request), and logs out; screenshots of the pages it visits
//! are saved under `target/dashboard-screenshots/` (or
//! `$DASHBOARD_SCREENSHOTS`).
//!
//! Needs /usr/bin/chromium and /usr/bin/chromedriver (scripts/deps/dashboard.sh
//! installs them; `CHROMIUM` and `CHROMEDRIVER` override the paths). Without
//! them the test says so and skips, except under CI=true, where it fails.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::support::{TestRegion, p};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn tool(variable: &str, default: &str) -> PathBuf {
    std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

/// The browser and driver, or why the test can't run.
fn prerequisites() -> Result<(PathBuf, PathBuf), String> {
    let chromium = tool("CHROMIUM", "/usr/bin/chromium");
    let driver = tool("CHROMEDRIVER", "/usr/bin/chromedriver");
    for path in [&chromium, &driver] {
        if !path.exists() {
            return Err(format!(
                "{} not found (bash scripts/deps/dashboard.sh installs chromium and chromium-driver)",
                path.display()
            ));
        }
    }
    Ok((chromium, driver))
}

/// One HTTP/1.1 exchange with a fresh connection; returns status and body.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, Vec<u8>) {
    let payload = body.map(Value::to_string).unwrap_or_default();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to chromedriver");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    )
    .unwrap();
    // ChromeDriver may keep the connection open: read by Content-Length
    // (or to the last chunk), not to the end of the stream.
    let mut raw = Vec::new();
    let mut buffer = [0u8; 64 * 1024];
    let split = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut buffer).expect("read from chromedriver");
        assert!(n > 0, "chromedriver closed the connection mid-header");
        raw.extend_from_slice(&buffer[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("HTTP status");
    let length: Option<usize> = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok());
    let chunked = head.contains("transfer-encoding: chunked");
    let mut body = raw[split + 4..].to_vec();
    loop {
        let complete = match length {
            Some(length) => body.len() >= length,
            None if chunked => body.ends_with(b"0\r\n\r\n"),
            None => false,
        };
        if complete {
            break;
        }
        let n = stream.read(&mut buffer).expect("read from chromedriver");
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buffer[..n]);
    }
    if chunked {
        let mut plain = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).trim(), 16)
                .unwrap();
            if size == 0 {
                break;
            }
            plain.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
            rest = &rest[line_end + 2 + size + 2..];
        }
        body = plain;
    }
    (status, body)
}

/// A child process killed when dropped, on a failed assertion too.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Driver {
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
    // Dropped last: the session is deleted (closing Chromium) before the
    // driver is killed.
    _process: Process,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = http(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Driver {
    fn start(chromium: &Path, chromedriver: &Path) -> Driver {
        let port = free_port();
        let process = Process(
            Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver"),
        );
        let started = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok()
                && http(port, "GET", "/status", None).0 == 200
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        // The flags known to work on these machines (closed network, root).
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_str().unwrap(),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        }}});
        let (status, body) = http(port, "POST", "/session", Some(&capabilities));
        let reply: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 200, "new session: {reply}");
        let session = reply["value"]["sessionId"].as_str().unwrap().to_owned();
        Driver {
            port,
            session,
            _profile: profile,
            _process: process,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let full = format!("/session/{}{path}", self.session);
        let (status, reply) = tokio::task::block_in_place(|| {
            http(self.port, method, &full, Some(&body.unwrap_or(json!({}))))
        });
        let reply: Value = serde_json::from_slice(&reply).unwrap_or(Value::Null);
        assert_eq!(status, 200, "{method} {path}: {reply}");
        reply["value"].clone()
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})));
    }

    fn find(&self, css: &str) -> String {
        let value = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        value[ELEMENT].as_str().unwrap().to_owned()
    }

    fn count(&self, css: &str) -> usize {
        self.call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )
        .as_array()
        .map(Vec::len)
        .unwrap_or(0)
    }

    fn click(&self, css: &str) {
        let element = self.find(css);
        self.call("POST", &format!("/element/{element}/click"), None);
    }

    fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.call("POST", &format!("/element/{element}/clear"), None);
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        );
    }

    fn text(&self, css: &str) -> String {
        let element = self.find(css);
        self.call("GET", &format!("/element/{element}/text"), None)
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    fn url(&self) -> String {
        self.call("GET", "/url", None)
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// Waits for a JavaScript expression to be true.
    async fn wait_for(&self, what: &str, expression: &str) {
        let started = Instant::now();
        loop {
            if self.script(&format!("return Boolean({expression});")) == json!(true) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "timed out waiting for {what} ({expression}) on {}",
                self.url()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A double click, as a person's: two presses in quick succession.
    fn double_click(&self, css: &str) {
        let element = self.find(css);
        let origin = json!({ELEMENT: element});
        self.call(
            "POST",
            "/actions",
            Some(json!({"actions": [{
                "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
                "actions": [
                    {"type": "pointerMove", "origin": origin, "x": 0, "y": 0},
                    {"type": "pointerDown", "button": 0},
                    {"type": "pointerUp", "button": 0},
                    {"type": "pointerDown", "button": 0},
                    {"type": "pointerUp", "button": 0},
                ],
            }]})),
        );
    }

    fn screenshot(&self, directory: &Path, name: &str) {
        let data = self.call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap())
            .unwrap();
        std::fs::write(directory.join(format!("{name}.png")), png).unwrap();
    }
}

fn screenshot_dir() -> PathBuf {
    let directory = std::env::var_os("DASHBOARD_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-screenshots")
        });
    std::fs::create_dir_all(&directory).unwrap();
    directory
}

async fn machine_event_count(t: &TestRegion, system_id: &str, event_type: &str) -> usize {
    let reply = t
        .get(
            "events/",
            p().op("query").text("id", system_id).text("level", "DEBUG"),
        )
        .await;
    reply.expect(200);
    reply.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == event_type)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_runs_the_dashboard_in_chromium() {
    let (chromium, chromedriver) = match prerequisites() {
        Ok(found) => found,
        Err(why) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("the browser test must run under CI=true: {why}");
            }
            eprintln!("SKIPPED: dashboard browser test: {why}");
            return;
        }
    };
    let t = TestRegion::new().await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let machine = t
            .machine(&format!("web-{i:02}"), &format!("52:54:00:ee:00:{i:02}"))
            .await;
        ids.push(machine["system_id"].as_str().unwrap().to_owned());
    }
    // Three Ready machines (commissioned by hand through the store).
    let store = t.region.store.as_ref();
    for id in &ids[..3] {
        let node = store.node_by_system_id(id).await.unwrap().unwrap();
        store
            .change_status(
                node.id,
                maas_store::StatusChange {
                    from: maas_domain::NodeStatus::New,
                    to: maas_domain::NodeStatus::Ready,
                    owner: None,
                    owner_must_be: None,
                    agent_name: None,
                    status_expires: None,
                    error_description: None,
                    keep_previous: false,
                    events: vec![],
                    updated: 1,
                },
            )
            .await
            .unwrap();
    }
    // One deployed machine the admin owns, for power actions.
    let deployed = t
        .post(
            "machines/",
            p().text("architecture", "amd64/generic")
                .text("mac_addresses", "52:54:00:ee:01:01")
                .text("hostname", "web-deployed")
                .text("power_type", "manual")
                .text("deployed", "true"),
        )
        .await;
    deployed.expect(200);
    let deployed_id = deployed.json()["system_id"].as_str().unwrap().to_owned();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(maas_region::serve(t.region.clone(), listener, async {
        let _ = stopped.await;
    }));
    let base = format!("http://{address}");
    let shots = screenshot_dir();
    let driver = Driver::start(&chromium, &chromedriver);

    // Log in through the form.
    driver.go(&format!("{base}/MAAS/r/machines"));
    driver
        .wait_for(
            "the login page",
            "document.querySelector('input[name=password]')",
        )
        .await;
    driver.screenshot(&shots, "01-login");
    driver.type_into("input[name=username]", "admin");
    driver.type_into("input[name=password]", "admin-pw");
    driver.click("form.stacked button[type=submit]");
    driver
        .wait_for(
            "the machines list",
            "document.querySelector('table.machines')",
        )
        .await;
    assert!(
        driver.url().ends_with("/MAAS/r/machines"),
        "{}",
        driver.url()
    );
    assert_eq!(driver.count("tr[data-system-id]"), 7);
    driver
        .wait_for("the live stream", "document.body.dataset.live === 'on'")
        .await;
    driver.screenshot(&shots, "02-machines");

    // Filter with MAAS's syntax.
    driver.type_into("input[name=q]", "status:ready");
    driver.click("form.search button[type=submit]");
    driver
        .wait_for("the filtered list", "location.search.includes('status')")
        .await;
    assert_eq!(driver.count("tr[data-system-id]"), 3);
    for row in 0..3 {
        let label = driver.text(&format!(
            "tr[data-system-id]:nth-of-type({}) [data-status-label]",
            row + 2
        ));
        assert_eq!(label, "Ready");
    }
    driver.screenshot(&shots, "03-filtered");

    // Open a machine and run an action from its menu.
    driver.click(&format!("tr[data-system-id='{}'] td.hostname a", ids[0]));
    driver
        .wait_for(
            "the machine page",
            "document.getElementById('machine-header')",
        )
        .await;
    assert_eq!(driver.text("#machine-header h1"), "web-00");
    driver
        .wait_for("the live stream", "document.body.dataset.live === 'on'")
        .await;
    driver.click("#machine-header form input[value=commission] ~ button");
    driver
        .wait_for("the action's result", "document.querySelector('.flash.ok')")
        .await;
    assert_eq!(driver.text(".flash"), "Commission: done.");
    assert_eq!(
        driver.text("#machine-header [data-status-label]"),
        "Commissioning"
    );
    driver.screenshot(&shots, "04-machine-commissioning");

    // A change made elsewhere (here through the REST API) arrives live:
    // the header updates and the page is not reloaded.
    driver
        .wait_for("the live stream", "document.body.dataset.live === 'on'")
        .await;
    driver.script("window.notReloaded = true;");
    t.post(&format!("machines/{}/", ids[0]), p().op("abort"))
        .await
        .expect(200);
    driver
        .wait_for(
            "the live header",
            "document.querySelector('#machine-header [data-status-label]').textContent === 'New'",
        )
        .await;
    assert_eq!(
        driver.script("return window.notReloaded === true;"),
        json!(true)
    );
    driver.screenshot(&shots, "05-machine-live");

    // The list's rows update live too.
    driver.go(&format!("{base}/MAAS/r/machines?group=none"));
    driver
        .wait_for("the live stream", "document.body.dataset.live === 'on'")
        .await;
    driver.script("window.notReloaded = true;");
    t.post(
        &format!("machines/{}/", ids[4]),
        p().op("mark_broken").text("comment", "disk on fire"),
    )
    .await
    .expect(200);
    driver
        .wait_for(
            "the live row",
            &format!(
                "document.querySelector(\"tr[data-system-id='{}'] [data-status-label]\").textContent === 'Broken'",
                ids[4]
            ),
        )
        .await;
    assert_eq!(
        driver.script("return window.notReloaded === true;"),
        json!(true)
    );
    driver.screenshot(&shots, "06-machines-live");

    // Bulk: select two machines and mark them broken through the form.
    driver.click(&format!(
        "tr[data-system-id='{}'] input[type=checkbox]",
        ids[1]
    ));
    driver.click(&format!(
        "tr[data-system-id='{}'] input[type=checkbox]",
        ids[2]
    ));
    assert_eq!(driver.text("[data-selected-count]"), "2 selected");
    driver.script(
        "const s = document.querySelector('select[name=action]'); s.value = 'mark_broken'; s.dispatchEvent(new Event('change'));",
    );
    driver.click("form.bulk button[type=submit]");
    driver
        .wait_for("the bulk result", "document.querySelector('.flash')")
        .await;
    assert!(
        driver
            .text(".flash")
            .starts_with("Mark broken: done on 2 machines")
    );
    driver.screenshot(&shots, "07-bulk");

    // A double click on an action sends it once.
    driver.go(&format!("{base}/MAAS/r/machine/{deployed_id}"));
    driver
        .wait_for(
            "the machine page",
            "document.getElementById('machine-header')",
        )
        .await;
    let before = machine_event_count(&t, &deployed_id, "User powering down node").await;
    driver.double_click("#machine-header form input[value=power_off] ~ button");
    driver
        .wait_for("the action's result", "document.querySelector('.flash')")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = machine_event_count(&t, &deployed_id, "User powering down node").await;
    assert_eq!(
        after - before,
        1,
        "a double click powered off more than once"
    );

    // The other pages, for the record.
    for (path, name) in [
        ("/MAAS/r/", "08-dashboard"),
        (
            &format!("/MAAS/r/machine/{}?tab=events", ids[4]),
            "09-events",
        ),
        (
            &format!("/MAAS/r/machine/{deployed_id}?tab=config"),
            "10-config",
        ),
        ("/MAAS/r/machines/add", "11-add-machine"),
        ("/MAAS/r/networks", "12-networks"),
        ("/MAAS/r/settings", "13-settings"),
        ("/MAAS/r/controllers", "14-controllers"),
    ] {
        driver.go(&format!("{base}{path}"));
        driver
            .wait_for("the page", "document.readyState === 'complete'")
            .await;
        driver.screenshot(&shots, name);
    }

    // Log out.
    driver.click("header.top form button");
    driver
        .wait_for(
            "the login page",
            "document.querySelector('input[name=password]')",
        )
        .await;
    assert!(driver.url().contains("/MAAS/accounts/login/"));
    driver.go(&format!("{base}/MAAS/r/machines"));
    driver
        .wait_for(
            "the login page again",
            "location.pathname === '/MAAS/accounts/login/'",
        )
        .await;

    drop(driver);
    let _ = stop.send(());
    let _ = server.await;
    eprintln!("dashboard screenshots: {}", shots.display());
}
