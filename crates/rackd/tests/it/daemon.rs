//! The daemon on loopback, in-process and as the `maas-rack` binary.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use maas_rackd::RackConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fake_region::FakeRegion;
use crate::link::{fast_timing, secret};

const WAIT: Duration = Duration::from_secs(15);
const SECRET_HEX: &str = "00112233445566778899aabbccddeeff";

fn loopback_config(dir: &std::path::Path, url: String) -> RackConfig {
    let mut config = RackConfig::new(dir.to_owned(), vec![url]);
    config.hostname = "loopback-rack".into();
    config.dhcp_enabled = false;
    config.tftp_listen = vec!["127.0.0.1:0".parse().expect("addr")];
    config.http_listen = "127.0.0.1:0".parse().expect("addr");
    config.server_retry = Duration::from_millis(200);
    config.manifest_interval = Duration::from_millis(200);
    config.link = fast_timing();
    config
}

async fn http_get(address: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: rack\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("response");
    String::from_utf8_lossy(&response).into_owned()
}

fn service(state: &crate::fake_region::State, name: &str) -> Option<(String, String)> {
    state.last_services().and_then(|services| {
        services
            .into_iter()
            .find(|s| s.name == name)
            .map(|s| (s.status, s.status_info))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_cannot_bind_is_reported_dead_and_the_rest_keeps_running() {
    let region = FakeRegion::start(secret()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let taken_address = taken.local_addr().expect("addr");
    let mut config = loopback_config(dir.path(), region.url());
    config.tftp_listen = vec![taken_address];
    config.dhcp_enabled = true;
    // A high port: nothing is configured to be served, and nothing answers on port 67.
    config.dhcp_server_port = 0;
    let rack = maas_rackd::start(config, secret()).await.expect("start");

    let expected = format!("cannot bind UDP {taken_address}: address in use");
    region
        .wait("tftp reported dead", WAIT, |s| {
            service(s, "tftp") == Some(("dead".into(), expected.clone()))
        })
        .await;
    region
        .wait("http and rackd running, dhcpd off", WAIT, |s| {
            service(s, "http").is_some_and(|(status, _)| status == "running")
                && service(s, "rackd").is_some_and(|(status, _)| status == "running")
                && service(s, "dhcpd").is_some_and(|(status, _)| status == "off")
        })
        .await;

    // HTTP boot serves the generated pre-loader and the loaders copied from the packages.
    let http = rack.bound().http.expect("http bound");
    let ipxe = http_get(http, "/ipxe.cfg").await;
    assert!(ipxe.starts_with("HTTP/1.1 200"), "{ipxe}");
    assert!(ipxe.contains("#!ipxe"), "{ipxe}");
    if std::path::Path::new("/usr/lib/PXELINUX/lpxelinux.0").is_file() {
        let loader = http_get(http, "/lpxelinux.0").await;
        assert!(
            loader.starts_with("HTTP/1.1 200"),
            "{}",
            &loader[..loader.len().min(200)]
        );
        assert!(dir.path().join("boot-loaders/lpxelinux.0").is_file());
    }
    // The fake region has no image manifest (404): the rack carries on without one.
    let missing = http_get(
        http,
        "/images/ubuntu/amd64/ga-24.04/noble/stable/boot-kernel",
    )
    .await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");

    // Once the port is free the TFTP server is retried and comes up.
    drop(taken);
    region
        .wait("tftp running after the retry", WAIT, |s| {
            service(s, "tftp").is_some_and(|(status, _)| status == "running")
        })
        .await;
    assert_eq!(rack.bound().tftp, vec![taken_address]);
    rack.stop().await;
}

fn maas_rack() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_maas-rack"));
    command.env_remove("MAAS_RACK_DATA_DIR");
    command
}

fn output_of(command: &mut Command) -> (bool, String) {
    let output = command.output().expect("run maas-rack");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maas_rack_register_checks_the_region_and_start_runs_until_sigterm() {
    let region = FakeRegion::start(secret()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("rack");
    let data_arg = data.to_str().expect("utf-8 path").to_owned();

    let (ok, stderr) = output_of(maas_rack().args([
        "register",
        "--url",
        &region.url(),
        "--secret",
        "ffeeddccbbaa99887766554433221100",
        "--data-dir",
        &data_arg,
    ]));
    assert!(!ok);
    assert!(stderr.contains("does not accept this secret"), "{stderr}");
    assert!(!data.join("rackd.toml").exists());

    let (ok, stderr) = output_of(maas_rack().args([
        "register",
        "--url",
        "http://127.0.0.1:1/MAAS",
        "--secret",
        SECRET_HEX,
        "--data-dir",
        &data_arg,
    ]));
    assert!(!ok);
    assert!(
        stderr.contains("cannot reach the region at http://127.0.0.1:1/MAAS"),
        "{stderr}"
    );

    let (ok, stderr) =
        output_of(maas_rack().args(["register", "--url", &region.url(), "--secret", "xyz"]));
    assert!(!ok);
    assert!(stderr.contains("not hexadecimal"), "{stderr}");

    // Registering again with another URL replaces it.
    let other = FakeRegion::start(secret()).await;
    for url in [other.url(), region.url()] {
        let (ok, stderr) = output_of(
            maas_rack()
                .args(["register", "--url", &url, "--secret", SECRET_HEX])
                .env("MAAS_RACK_DATA_DIR", &data),
        );
        assert!(ok, "{stderr}");
    }
    let file = maas_rackd::config::read_file(&data)
        .expect("read")
        .expect("written");
    assert_eq!(file.maas_url, vec![region.url()]);
    let text = std::fs::read_to_string(data.join("rackd.toml")).expect("read");
    assert!(
        !text.contains(SECRET_HEX),
        "the secret stays out of rackd.toml"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("secret"))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Loopback ports for the start below.
    std::fs::write(
        data.join("rackd.toml"),
        format!(
            "{text}\n[dhcp]\nenabled = false\n[tftp]\nlisten = [\"127.0.0.1:0\"]\n[http]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )
    .expect("write");
    let mut child = maas_rack()
        .args(["start", "--data-dir", &data_arg])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start maas-rack");
    region
        .wait("the started rack registers", WAIT, |s| {
            !s.registrations().is_empty()
        })
        .await;
    assert_eq!(region.state.registrations()[0].url, region.url());
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(start.elapsed() < WAIT, "maas-rack did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut stderr = String::new();
    use std::io::Read;
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    assert!(status.success(), "{status:?}\n{stderr}");
    assert!(stderr.contains("MAAS rack started"), "{stderr}");
    assert!(data.join("system_id").is_file());

    // Without registration `start` says what to do.
    let empty = dir.path().join("empty");
    let (ok, stderr) =
        output_of(maas_rack().args(["start", "--data-dir", empty.to_str().expect("utf-8")]));
    assert!(!ok);
    assert!(stderr.contains("maas-rack register"), "{stderr}");
}
