//! The redfish driver against sushy-tools' Redfish emulator (fake systems
//! driver, no libvirt), over HTTP and over HTTPS with a self-signed
//! certificate. The emulator's own REST answers are the referee.

use std::process::Command;
use std::time::Duration;

use maas_power::{PowerErrorKind, PowerState};
use serde_json::Value;

use crate::support::{self, Emulator};

struct Sushy {
    _emulator: Emulator,
    _dir: tempfile::TempDir,
    base: String,
}

fn start_sushy(tls: bool, systems: u32) -> Option<Sushy> {
    let python = support::venv_python(&["sushy_tools.emulator.main", "bcrypt"]);
    if !support::require("sushy-tools in .venv", python.is_some()) {
        return None;
    }
    if tls && !support::require("openssl", support::have_tool("openssl")) {
        return None;
    }
    let dir = support::tempdir();
    let port = support::free_tcp_port();
    let mut command = Command::new(python?);
    command
        .arg(support::bmc_script("redfish_bmc.py"))
        .args([
            "--port",
            &port.to_string(),
            "--systems",
            &systems.to_string(),
        ])
        .arg("--state-dir")
        .arg(dir.path());
    if tls {
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let made = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=bmc.invalid",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("running openssl");
        assert!(
            made.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        command.arg("--cert").arg(&cert).arg("--key").arg(&key);
    }
    let scheme = if tls { "https" } else { "http" };
    let log = dir.path().join("sushy.log");
    let mut emulator = Emulator::start("sushy-emulator", &mut command, log);
    emulator.wait_until(Duration::from_secs(20), |emulator| {
        emulator.log_text().contains("Running on")
    });
    Some(Sushy {
        _emulator: emulator,
        _dir: dir,
        base: format!("{scheme}://127.0.0.1:{port}"),
    })
}

/// Reads a system straight from the emulator (the referee).
async fn system(sushy: &Sushy, id: &str) -> Value {
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("referee client");
    client
        .get(format!("{}/redfish/v1/Systems/{id}", sushy.base))
        .basic_auth("admin", Some("secret"))
        .send()
        .await
        .expect("referee GET")
        .json()
        .await
        .expect("referee JSON")
}

const NODE1: &str = "7a5f2c1e-77aa-4b1d-9c77-000000000001";
const NODE2: &str = "7a5f2c1e-77aa-4b1d-9c77-000000000002";

async fn full_cycle(sushy: &Sushy, node_id: Option<&str>, referee_id: &str) {
    let mut pairs = vec![
        ("power_address", sushy.base.as_str()),
        ("power_user", "admin"),
        ("power_pass", "secret"),
    ];
    if let Some(id) = node_id {
        pairs.push(("node_id", id));
    }
    let driver = support::build("redfish", &pairs);
    assert_eq!(driver.query().await.expect("query"), PowerState::Off);

    driver.on().await.expect("power on");
    let seen = system(sushy, referee_id).await;
    assert_eq!(seen["PowerState"], "On", "{seen}");
    assert_eq!(seen["Boot"]["BootSourceOverrideTarget"], "Pxe", "{seen}");
    assert_eq!(driver.query().await.expect("query"), PowerState::On);

    driver.off().await.expect("power off");
    assert_eq!(system(sushy, referee_id).await["PowerState"], "Off");
    assert_eq!(driver.query().await.expect("query"), PowerState::Off);

    driver.cycle().await.expect("power cycle");
    assert_eq!(system(sushy, referee_id).await["PowerState"], "On");
    driver.set_pxe_boot().await.expect("set PXE boot");
    assert_eq!(
        system(sushy, referee_id).await["Boot"]["BootSourceOverrideTarget"],
        "Pxe"
    );
}

#[tokio::test]
async fn http_with_discovered_system() {
    let Some(sushy) = start_sushy(false, 1) else {
        return;
    };
    full_cycle(&sushy, None, NODE1).await;
}

#[tokio::test]
async fn https_self_signed_with_node_id() {
    let Some(sushy) = start_sushy(true, 2) else {
        return;
    };
    // The second of two systems, by node_id; the first stays untouched.
    full_cycle(&sushy, Some(NODE2), NODE2).await;
    assert_eq!(system(&sushy, NODE1).await["PowerState"], "Off");

    let wrong = support::build(
        "redfish",
        &[
            ("power_address", &sushy.base),
            ("power_user", "admin"),
            ("power_pass", "nope"),
        ],
    );
    let error = wrong.query().await.expect_err("wrong password");
    assert_eq!(error.kind(), PowerErrorKind::Authentication, "{error}");
    assert!(!error.is_retryable());
    assert!(error.to_string().contains(&sushy.base), "{error}");

    let missing = support::build(
        "redfish",
        &[
            ("power_address", &sushy.base),
            ("power_user", "admin"),
            ("power_pass", "secret"),
            ("node_id", "no-such-node"),
        ],
    );
    let error = missing.query().await.expect_err("unknown node_id");
    assert!(error.to_string().contains("404"), "{error}");
}
