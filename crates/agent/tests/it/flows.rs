//! The agent's flows against a recording peer: the exact metadata-API requests.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use maas_agent::agent::{self, Config, Ending};

use crate::peer::{Peer, Recorded, Reply, tarball};

const SYSTEM_ID: &str = "abc123";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/inventory")
        .join(name)
}

fn node_preseed(base: &str, curtin: bool) -> String {
    format!(
        "#cloud-config\ndatasource:\n  MAAS:\n    consumer_key: ck\n    metadata_url: {base}/MAAS/metadata/{}\n    token_key: tk\n    token_secret: ts\npower_state:\n  mode: {}\n",
        if curtin { "curtin/" } else { "" },
        if curtin { "reboot" } else { "poweroff" }
    )
}

fn config(peer: &Peer, preseed_path: &str, work: &Path, dev: &Path) -> Config {
    let mut config = Config::new(format!(
        "console=ttyS0 cloud-config-url={}{preseed_path} BOOTIF=01-52-54-00-12-34-56",
        peer.base
    ));
    config.root = fixture("qemu-vm");
    config.dev = dev.to_path_buf();
    config.work = work.to_path_buf();
    config.heartbeat = Duration::from_millis(150);
    config.backoff = vec![Duration::from_millis(10)];
    config
}

/// Every signed request carries the six OAuth parameters with the PLAINTEXT signature.
fn assert_signed(request: &Recorded) {
    let header = request
        .header("Authorization")
        .unwrap_or_else(|| panic!("{} {} is not signed", request.method, request.target));
    assert!(header.starts_with("OAuth "), "{header}");
    for field in [
        "oauth_version=\"1.0\"",
        "oauth_signature_method=\"PLAINTEXT\"",
        "oauth_consumer_key=\"ck\"",
        "oauth_token=\"tk\"",
        "oauth_signature=\"%26ts\"",
        "oauth_nonce=\"",
        "oauth_timestamp=\"",
    ] {
        assert!(header.contains(field), "{field} missing from {header}");
    }
}

fn is_heartbeat(request: &Recorded) -> bool {
    request.method == "POST"
        && request.field("status").as_deref() == Some("WORKING")
        && request.field("error").is_none()
        && request.field("script_result_id").is_none()
        && request.field("name").is_none()
}

/// (method, target) of what the agent asked, heartbeats and webhook events left out.
fn calls(requests: &[Recorded]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| !is_heartbeat(r) && !r.path().contains("/metadata/status/"))
        .map(|r| match r.field("status") {
            Some(status) => format!(
                "{} {} signal {status}{}",
                r.method,
                r.target,
                r.field("name").map(|n| format!(" {n}")).unwrap_or_default()
            ),
            None => format!("{} {}", r.method, r.target),
        })
        .collect()
}

fn events(requests: &[Recorded]) -> Vec<serde_json::Value> {
    requests
        .iter()
        .filter(|r| r.path() == format!("/MAAS/metadata/status/{SYSTEM_ID}"))
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

fn index(lists: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "1.0": lists })).unwrap()
}

fn commissioning_tarball() -> Vec<u8> {
    let index = index(serde_json::json!({
        "commissioning_scripts": [
            {"name": "50-maas-01-commissioning", "path": "commissioning/50-maas-01-commissioning",
             "script_result_id": 11, "script_version_id": 101, "timeout_seconds": 60, "parallel": 0,
             "hardware_type": 0, "default": true},
            {"name": "maas-lshw", "path": "commissioning/maas-lshw", "script_result_id": 12,
             "timeout_seconds": 60, "parallel": 2, "hardware_type": 0, "default": true},
            {"name": "echo-args", "path": "commissioning/echo-args", "script_result_id": 13,
             "parallel": 0, "hardware_type": 1,
             "parameters": {"flag": {"type": "boolean", "value": true},
                            "speed": {"type": "string", "value": "fast"}}},
            {"name": "sleeper", "path": "commissioning/sleeper", "script_result_id": 14,
             "timeout_seconds": 1, "parallel": 0, "hardware_type": 0},
            {"name": "fails", "path": "commissioning/fails", "script_result_id": 15,
             "parallel": 0, "hardware_type": 0}
        ],
        "testing_scripts": [
            {"name": "smoke", "path": "testing/smoke", "script_result_id": 21, "parallel": 0,
             "hardware_type": 0}
        ]
    }));
    tarball(&[
        ("index.json", 0o644, &index),
        ("commissioning/50-maas-01-commissioning", 0o755, b"#!/usr/bin/env python3\nprint('never run')\n"),
        ("commissioning/maas-lshw", 0o755, b"#!/usr/bin/no-such-interpreter\n"),
        ("commissioning/echo-args", 0o755, b"#!/bin/sh\necho \"args: $*\"\necho to-stderr >&2\necho 'status: passed' > \"$RESULT_PATH\"\n"),
        ("commissioning/sleeper", 0o755, b"#!/bin/sh\necho sleeping\nsleep 30\n"),
        ("commissioning/fails", 0o755, b"#!/bin/sh\necho broken >&2\nexit 3\n"),
        ("testing/smoke", 0o755, b"#!/bin/sh\necho smoke ok\n"),
    ])
}

#[test]
fn commissioning_runs_scripts_and_uploads_results() {
    let tar = commissioning_tarball();
    let peer = Peer::start(move |request| {
        let base = request
            .header("Host")
            .map(|h| format!("http://{h}"))
            .unwrap_or_default();
        match request.target.as_str() {
            "/MAAS/metadata/latest/by-id/abc123/?op=get_preseed" => {
                Reply::ok(node_preseed(&base, false))
            }
            "/MAAS/metadata/latest/meta-data/instance-id" => Reply::ok(SYSTEM_ID),
            "/MAAS/metadata/latest/maas-scripts" => Reply::ok(tar.clone()),
            "/MAAS/metadata/latest/" => Reply::ok("OK"),
            "/MAAS/metadata/status/abc123" => Reply::status(204),
            _ => Reply::status(404),
        }
    });
    let work = tempfile::tempdir().unwrap();
    let config = config(
        &peer,
        "/MAAS/metadata/latest/by-id/abc123/?op=get_preseed",
        work.path(),
        work.path(),
    );
    let ending = agent::run(&config).unwrap();
    assert_eq!(ending, Ending::PowerOff);
    let requests = peer.requests();
    let signal = "POST /MAAS/metadata/latest/ signal";
    assert_eq!(
        calls(&requests),
        [
            "GET /MAAS/metadata/latest/by-id/abc123/?op=get_preseed".to_owned(),
            "GET /MAAS/metadata/latest/meta-data/instance-id".into(),
            "GET /MAAS/metadata/latest/maas-scripts".into(),
            format!("{signal} WORKING echo-args"),
            format!("{signal} WORKING echo-args"),
            format!("{signal} WORKING 50-maas-01-commissioning"),
            format!("{signal} WORKING 50-maas-01-commissioning"),
            format!("{signal} WORKING fails"),
            format!("{signal} WORKING fails"),
            format!("{signal} WORKING sleeper"),
            format!("{signal} TIMEDOUT sleeper"),
            format!("{signal} WORKING maas-lshw"),
            format!("{signal} WORKING maas-lshw"),
            format!("{signal} TESTING"),
            format!("{signal} WORKING smoke"),
            format!("{signal} WORKING smoke"),
            format!("{signal} FAILED"),
        ]
    );
    // The preseed fetch is anonymous; everything after it is signed.
    assert!(requests[0].header("Authorization").is_none());
    for request in &requests[1..] {
        assert_signed(request);
    }
    let signals: Vec<&Recorded> = requests
        .iter()
        .filter(|r| r.path() == "/MAAS/metadata/latest/" && !is_heartbeat(r))
        .collect();
    // Start: WORKING with the result id and a message; the op is a body field.
    let start = signals[0];
    assert_eq!(start.field("op").as_deref(), Some("signal"));
    assert_eq!(start.field("script_result_id").as_deref(), Some("13"));
    assert_eq!(
        start.field("error").as_deref(),
        Some("Starting echo-args [1/5]")
    );
    assert!(
        start
            .header("Content-Type")
            .unwrap()
            .starts_with("multipart/form-data; boundary=")
    );
    // Result: exit status, runtime, the four files named after the script.
    let result = signals[1];
    assert_eq!(result.field("exit_status").as_deref(), Some("0"));
    assert!(result.field("runtime").unwrap().parse::<f64>().is_ok());
    let files: Vec<(String, Vec<u8>)> = result
        .parts()
        .into_iter()
        .filter(|p| p.filename.is_some())
        .map(|p| (p.name, p.content))
        .collect();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "echo-args",
            "echo-args.out",
            "echo-args.err",
            "echo-args.yaml"
        ]
    );
    assert_eq!(files[1].1, b"args: --flag --speed=fast\n");
    assert_eq!(files[2].1, b"to-stderr\n");
    assert_eq!(files[3].1, b"status: passed\n");
    // The builtin inventory script uploads the machine-resources JSON as its stdout.
    let inventory = signals[3];
    assert_eq!(inventory.field("script_version_id").as_deref(), Some("101"));
    let out = inventory
        .parts()
        .into_iter()
        .find(|p| p.name == "50-maas-01-commissioning.out")
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.content).unwrap();
    assert_eq!(json["resources"]["cpu"]["total"], 2);
    assert_eq!(json["machine-extra"]["boot_mac"], "52:54:00:12:34:56");
    // A failing script: its exit status and stderr.
    assert_eq!(signals[5].field("exit_status").as_deref(), Some("3"));
    // The timed-out script: exit status 124 and the output it had written.
    assert_eq!(signals[7].field("exit_status").as_deref(), Some("124"));
    let combined = signals[7]
        .parts()
        .into_iter()
        .find(|p| p.name == "sleeper")
        .unwrap();
    assert_eq!(combined.content, b"sleeping\n");
    // A builtin whose interpreter is missing is skipped, not failed.
    let lshw = signals[9]
        .parts()
        .into_iter()
        .find(|p| p.name == "maas-lshw.yaml")
        .unwrap();
    assert_eq!(lshw.content, b"status: skipped\n");
    let last = signals.last().unwrap();
    assert_eq!(
        last.field("error").as_deref(),
        Some("2 scripts failed to run")
    );
    // Heartbeats ran while the sleeper did.
    assert!(requests.iter().any(is_heartbeat), "no heartbeat sent");
    // The event log: a start per script, a failed finish for the failures, modules-final last.
    let events = events(&requests);
    assert!(events.iter().any(|e| e["event_type"] == "start"
        && e["name"] == "maas-agent/commissioning/fails"
        && e["origin"] == "maas-agent"));
    assert!(events.iter().any(|e| e["event_type"] == "finish"
        && e["name"] == "maas-agent/commissioning/sleeper"
        && e["result"] == "FAIL"));
    let final_event = events.last().unwrap();
    assert_eq!(final_event["name"], "modules-final");
    assert_eq!(final_event["result"], "FAIL");
    assert!(final_event["timestamp"].as_f64().unwrap() > 1.0e9);
}

#[test]
fn unknown_machine_enlists_then_commissions() {
    let created = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&created);
    let tar = tarball(&[(
        "index.json",
        0o644,
        &index(serde_json::json!({"commissioning_scripts": [
            {"name": "50-maas-01-commissioning", "path": "commissioning/50-maas-01-commissioning", "default": true}
        ]})),
    )]);
    let peer = Peer::start(move |request| {
        let base = request
            .header("Host")
            .map(|h| format!("http://{h}"))
            .unwrap_or_default();
        match (request.method.as_str(), request.target.as_str()) {
            (_, "/MAAS/metadata/latest/enlist-preseed/?op=get_enlist_preseed") => {
                Reply::ok(format!(
                    "#cloud-config\ndatasource:\n  MAAS:\n    metadata_url: {base}/MAAS/metadata/\npower_state: {{mode: poweroff}}\n"
                ))
            }
            (
                "GET",
                "/MAAS/api/2.0/machines/?op=is_registered&mac_address=52%3A54%3A00%3A12%3A34%3A56",
            ) => Reply::ok("false"),
            ("GET", "/MAAS/metadata/latest/maas-scripts")
                if request.header("Authorization").is_none() =>
            {
                Reply::status(204)
            }
            ("POST", "/MAAS/api/2.0/machines/") => {
                seen.store(true, Ordering::SeqCst);
                Reply::ok(format!("{{\"system_id\": \"{SYSTEM_ID}\", \"status\": 1}}"))
            }
            (_, "/MAAS/metadata/latest/by-id/abc123/?op=get_preseed") => {
                Reply::ok(node_preseed(&base, false))
            }
            (_, "/MAAS/metadata/latest/meta-data/instance-id") => Reply::ok(SYSTEM_ID),
            (_, "/MAAS/metadata/latest/maas-scripts") => Reply::ok(tar.clone()),
            (_, "/MAAS/metadata/latest/") => Reply::ok("OK"),
            (_, "/MAAS/metadata/status/abc123") => Reply::status(204),
            _ => Reply::status(404),
        }
    });
    let work = tempfile::tempdir().unwrap();
    let config = config(
        &peer,
        "/MAAS/metadata/latest/enlist-preseed/?op=get_enlist_preseed",
        work.path(),
        work.path(),
    );
    assert_eq!(agent::run(&config).unwrap(), Ending::PowerOff);
    assert!(created.load(Ordering::SeqCst));
    let requests = peer.requests();
    let signal = "POST /MAAS/metadata/latest/ signal";
    assert_eq!(
        calls(&requests),
        [
            "GET /MAAS/metadata/latest/enlist-preseed/?op=get_enlist_preseed".to_owned(),
            "GET /MAAS/api/2.0/machines/?op=is_registered&mac_address=52%3A54%3A00%3A12%3A34%3A56"
                .into(),
            "GET /MAAS/metadata/latest/maas-scripts".into(),
            "POST /MAAS/api/2.0/machines/".into(),
            "GET /MAAS/metadata/latest/by-id/abc123/?op=get_preseed".into(),
            "GET /MAAS/metadata/latest/meta-data/instance-id".into(),
            "GET /MAAS/metadata/latest/maas-scripts".into(),
            format!("{signal} WORKING 50-maas-01-commissioning"),
            format!("{signal} WORKING 50-maas-01-commissioning"),
            format!("{signal} OK"),
        ]
    );
    for request in &requests[..5] {
        assert!(
            request.header("Authorization").is_none(),
            "{} is signed",
            request.target
        );
    }
    for request in &requests[5..] {
        assert_signed(request);
    }
    let create = &requests[3];
    assert_eq!(
        create.field("architecture").as_deref(),
        Some("amd64/generic")
    );
    assert_eq!(create.field("commission").as_deref(), Some("true"));
    let macs: Vec<String> = create
        .parts()
        .into_iter()
        .filter(|p| p.name == "mac_addresses")
        .map(|p| String::from_utf8(p.content).unwrap())
        .collect();
    assert_eq!(macs, ["52:54:00:12:34:56"]);
    assert_eq!(
        requests.last().unwrap().path(),
        "/MAAS/metadata/status/abc123"
    );
}

#[test]
fn registered_machine_stops_before_enlisting() {
    let peer = Peer::start(|request| {
        let base = request
            .header("Host")
            .map(|h| format!("http://{h}"))
            .unwrap_or_default();
        match request.path() {
            "/MAAS/metadata/latest/enlist-preseed/" => Reply::ok(format!(
                "datasource: {{MAAS: {{metadata_url: '{base}/MAAS/metadata/'}}}}"
            )),
            "/MAAS/api/2.0/machines/" if request.method == "GET" => Reply::ok("true"),
            _ => Reply::status(500),
        }
    });
    let work = tempfile::tempdir().unwrap();
    let config = config(
        &peer,
        "/MAAS/metadata/latest/enlist-preseed/?op=get_enlist_preseed",
        work.path(),
        work.path(),
    );
    assert_eq!(agent::run(&config).unwrap(), Ending::PowerOff);
    assert_eq!(peer.requests().len(), 2);
}

#[test]
fn bad_orders_are_errors_not_panics() {
    let peer = Peer::start(|request| match request.path() {
        "/yaml" => Reply::ok("datasource: [unclosed"),
        "/nourl" => Reply::ok("datasource: {MAAS: {}}"),
        "/html" => Reply::ok("<html>nope</html>"),
        _ => Reply::status(404),
    });
    let work = tempfile::tempdir().unwrap();
    for path in ["/yaml", "/nourl", "/html", "/missing"] {
        let config = config(&peer, path, work.path(), work.path());
        let error = agent::run(&config).unwrap_err();
        assert!(!agent::error_chain(&error).is_empty());
    }
    let mut config = config(&peer, "/yaml", work.path(), work.path());
    config.cmdline = "console=ttyS0 quiet".into();
    assert!(matches!(
        agent::run(&config),
        Err(agent::AgentError::NoPreseedUrl)
    ));
    config.cmdline = "cloud-config-url=https://10.0.0.1/x".into();
    assert!(agent::run(&config).is_err());
}

#[test]
fn bad_tarball_is_reported_as_failure() {
    let peer = Peer::start(|request| {
        let base = request
            .header("Host")
            .map(|h| format!("http://{h}"))
            .unwrap_or_default();
        match request.target.as_str() {
            "/p" => Reply::ok(node_preseed(&base, false)),
            "/MAAS/metadata/latest/meta-data/instance-id" => Reply::ok(SYSTEM_ID),
            "/MAAS/metadata/latest/maas-scripts" => {
                Reply::ok(b"this is not a tar archive at all".repeat(40))
            }
            "/MAAS/metadata/latest/" => Reply::ok("OK"),
            _ => Reply::status(204),
        }
    });
    let work = tempfile::tempdir().unwrap();
    let config = config(&peer, "/p", work.path(), work.path());
    assert_eq!(agent::run(&config).unwrap(), Ending::PowerOff);
    let requests = peer.requests();
    let failed = requests
        .iter()
        .find(|r| r.field("status").as_deref() == Some("FAILED"))
        .unwrap();
    assert!(
        failed
            .field("error")
            .unwrap()
            .starts_with("the maas-scripts tarball is unusable")
    );
}

#[test]
fn release_quick_erases_every_disk() {
    let tar = tarball(&[(
        "index.json",
        0o644,
        &index(serde_json::json!({"release_scripts": [
            {"name": "wipe-disks", "path": "release/wipe-disks", "script_result_id": 31, "default": true,
             "parameters": {"quick_erase": {"type": "boolean", "value": true},
                            "secure_erase": {"type": "boolean", "value": false}}}
        ]})),
    )]);
    let peer = Peer::start(move |request| {
        let base = request
            .header("Host")
            .map(|h| format!("http://{h}"))
            .unwrap_or_default();
        match request.target.as_str() {
            "/p" => Reply::ok(node_preseed(&base, false)),
            "/MAAS/metadata/latest/meta-data/instance-id" => Reply::ok(SYSTEM_ID),
            "/MAAS/metadata/latest/maas-scripts" => Reply::ok(tar.clone()),
            "/MAAS/metadata/latest/" => Reply::ok("OK"),
            _ => Reply::status(204),
        }
    });
    let work = tempfile::tempdir().unwrap();
    let dev = tempfile::tempdir().unwrap();
    // The fixture machine's disk is vda; here it is a 6 MiB file of 0xAA.
    let disk = dev.path().join("vda");
    std::fs::write(&disk, vec![0xAAu8; 6 << 20]).unwrap();
    let config = config(&peer, "/p", work.path(), dev.path());
    assert_eq!(agent::run(&config).unwrap(), Ending::PowerOff);
    let content = std::fs::read(&disk).unwrap();
    assert!(content[..2 << 20].iter().all(|b| *b == 0));
    assert!(content[4 << 20..].iter().all(|b| *b == 0));
    assert!(content[2 << 20..4 << 20].iter().all(|b| *b == 0xAA));
    let requests = peer.requests();
    let signal = "POST /MAAS/metadata/latest/ signal";
    assert_eq!(
        calls(&requests)[3..],
        [
            format!("{signal} RELEASING"),
            format!("{signal} WORKING wipe-disks"),
            format!("{signal} WORKING wipe-disks"),
            format!("{signal} OK"),
        ]
    );
    let events = events(&requests);
    assert!(
        events
            .iter()
            .any(|e| e["name"] == "maas-agent/erase/vda" && e["event_type"] == "start")
    );
    let last = events.last().unwrap();
    assert_eq!(
        (last["name"].as_str(), last["result"].as_str()),
        (Some("modules-final"), Some("SUCCESS"))
    );
}

fn deploy_peer(
    image: Vec<u8>,
    config_yaml: impl Fn(&str) -> String + Send + Sync + 'static,
    claimed: Option<usize>,
) -> Peer {
    Peer::start(move |request| {
        let base = request
            .header("Host")
            .map(|h| format!("http://{h}"))
            .unwrap_or_default();
        match request.target.as_str() {
            "/p" => Reply::ok(node_preseed(&base, true)),
            "/MAAS/metadata/curtin/latest/meta-data/instance-id" => Reply::ok(SYSTEM_ID),
            "/MAAS/metadata/curtin/latest/maas-scripts" => Reply::status(204),
            "/MAAS/metadata/curtin/latest/curtin-config" => Reply::ok(config_yaml(&base)),
            "/images/root-dd.gz" => {
                let mut reply = Reply::ok(image.clone());
                reply.claimed_length = claimed;
                reply
            }
            "/MAAS/metadata/curtin/latest/"
            | "/MAAS/metadata/latest/by-id/abc123/?op=netboot_off" => Reply::ok("OK"),
            "/MAAS/metadata/status/abc123" => Reply::status(204),
            _ => Reply::status(404),
        }
    })
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn deploy_writes_a_dd_image_and_reboots() {
    let raw: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
    let image = gzip(&raw);
    let sha = sha256_hex(&image);
    let size = image.len();
    let peer = deploy_peer(
        image,
        move |base| {
            format!(
                "sources:\n  00_image:\n    uri: {base}/images/root-dd.gz\n    type: dd-gz\n    sha256: {sha}\n    size: {size}\n\
                 storage:\n  config:\n  - {{id: vda, type: disk, serial: maas-disk-0, grub_device: true}}\n"
            )
        },
        None,
    );
    let work = tempfile::tempdir().unwrap();
    let dev = tempfile::tempdir().unwrap();
    std::fs::write(dev.path().join("vda"), vec![0u8; 4 << 20]).unwrap();
    let config = config(&peer, "/p", work.path(), dev.path());
    assert_eq!(agent::run(&config).unwrap(), Ending::Reboot);
    let written = std::fs::read(dev.path().join("vda")).unwrap();
    assert_eq!(&written[..raw.len()], &raw[..]);
    let requests = peer.requests();
    let signal = "POST /MAAS/metadata/curtin/latest/ signal";
    assert_eq!(
        calls(&requests),
        [
            "GET /p".to_owned(),
            "GET /MAAS/metadata/curtin/latest/meta-data/instance-id".into(),
            "GET /MAAS/metadata/curtin/latest/maas-scripts".into(),
            format!("{signal} DEPLOYING"),
            "GET /MAAS/metadata/curtin/latest/curtin-config".into(),
            "GET /images/root-dd.gz".into(),
            "POST /MAAS/metadata/latest/by-id/abc123/?op=netboot_off".into(),
            format!("{signal} OK"),
        ]
    );
    let image_request = requests
        .iter()
        .find(|r| r.path() == "/images/root-dd.gz")
        .unwrap();
    assert!(image_request.header("Authorization").is_none());
    let events = events(&requests);
    let curtin: Vec<String> = events
        .iter()
        .filter(|e| e["origin"] == "curtin")
        .map(|e| {
            format!(
                "{} {}",
                e["event_type"].as_str().unwrap(),
                e["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        curtin,
        [
            "start cmd-install",
            "start cmd-install/stage-extract",
            "finish cmd-install/stage-extract",
            "start cmd-install/stage-curthooks",
            "finish cmd-install/stage-curthooks",
            "finish cmd-install",
        ]
    );
    let install = events
        .iter()
        .find(|e| e["name"] == "cmd-install" && e["event_type"] == "finish")
        .unwrap();
    assert_eq!(install["result"], "SUCCESS");
    assert_eq!(install["files"][0]["path"], "/tmp/install.log");
    assert_eq!(install["files"][0]["encoding"], "base64");
    assert_eq!(events.last().unwrap()["name"], "modules-final");
}

#[test]
fn deploy_with_a_wrong_checksum_fails_and_leaves_no_bootable_disk() {
    let raw = vec![0x55u8; 2 << 20];
    let peer = deploy_peer(
        gzip(&raw),
        |base| {
            format!(
                "sources:\n  00: {{uri: '{base}/images/root-dd.gz', type: dd-gz, sha256: '{}'}}\n",
                "0".repeat(64)
            )
        },
        None,
    );
    let work = tempfile::tempdir().unwrap();
    let dev = tempfile::tempdir().unwrap();
    std::fs::write(dev.path().join("vda"), vec![0u8; 4 << 20]).unwrap();
    let config = config(&peer, "/p", work.path(), dev.path());
    assert_eq!(agent::run(&config).unwrap(), Ending::PowerOff);
    let written = std::fs::read(dev.path().join("vda")).unwrap();
    assert!(
        written[..1 << 20].iter().all(|b| *b == 0),
        "the first MiB must be wiped"
    );
    let requests = peer.requests();
    let failed = requests
        .iter()
        .find(|r| r.field("status").as_deref() == Some("FAILED"))
        .unwrap();
    let error = failed.field("error").unwrap();
    assert!(
        error.starts_with("Installation failed: image SHA-256 is "),
        "{error}"
    );
    assert!(!requests.iter().any(|r| r.target.contains("netboot_off")));
    let install = events(&requests)
        .into_iter()
        .find(|e| e["name"] == "cmd-install" && e["event_type"] == "finish")
        .unwrap();
    assert_eq!(install["result"], "FAIL");
}

#[test]
fn deploy_of_a_short_image_fails() {
    let image = gzip(&vec![7u8; 1 << 20]);
    let claimed = image.len() + 1000;
    let peer = deploy_peer(
        image,
        |base| format!("sources: ['dd-gz:{base}/images/root-dd.gz']\n"),
        Some(claimed),
    );
    let work = tempfile::tempdir().unwrap();
    let dev = tempfile::tempdir().unwrap();
    std::fs::write(dev.path().join("vda"), vec![0u8; 2 << 20]).unwrap();
    let config = config(&peer, "/p", work.path(), dev.path());
    assert_eq!(agent::run(&config).unwrap(), Ending::PowerOff);
    let failed = peer
        .requests()
        .into_iter()
        .find(|r| r.field("status").as_deref() == Some("FAILED"))
        .unwrap();
    assert!(
        failed
            .field("error")
            .unwrap()
            .contains("body bytes missing"),
        "{:?}",
        failed.field("error")
    );
}
