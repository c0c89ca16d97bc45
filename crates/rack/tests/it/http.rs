//! The HTTP boot server against curl on loopback.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use maas_rack::{FileBackend, HttpConfig, HttpServer};

use crate::support::{
    BootTree, InNetns, pattern, require_programs, run_with_timeout, shutdown_signal,
};

const BACKEND: &str = r#"
[boot]
unknown_purpose = "none"

[[machine]]
mac = "52:54:00:00:00:02"
hostname = "node2"
purpose = "commissioning"
system_id = "xyz234"

[[machine]]
mac = "52:54:00:00:00:03"
hostname = "node3"
purpose = "local"
"#;

struct Reply {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

fn curl(address: SocketAddr, path: &str, extra: &[&str], dir: &std::path::Path) -> Reply {
    let body_path = dir.join("body.out");
    let headers_path = dir.join("headers.out");
    let mut command = Command::new("curl");
    command
        .args(["-s", "-S", "-o"])
        .arg(&body_path)
        .arg("-D")
        .arg(&headers_path)
        .args(["-w", "%{http_code}"])
        .args(extra)
        .arg(format!("http://{address}{path}"));
    let output = run_with_timeout(&mut command, Duration::from_secs(60));
    assert!(
        output.status.success(),
        "curl {path}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Reply {
        status: String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("status code"),
        headers: std::fs::read_to_string(&headers_path)
            .unwrap_or_default()
            .to_ascii_lowercase(),
        body: std::fs::read(&body_path).unwrap_or_default(),
    }
}

#[test]
fn scripts_loaders_and_ranged_images() {
    if !require_programs(&["curl"]) {
        return;
    }
    let tree = BootTree::new();
    let kernel = pattern(8 * 1024 * 1024 + 123, 3);
    tree.write(
        "images/ubuntu/amd64/generic/noble/stable/boot-kernel",
        &kernel,
    );
    tree.write("root/bootx64.efi", b"shim");
    tree.write("secret.txt", b"outside");
    let backend = Arc::new(FileBackend::from_toml(BACKEND).expect("backend"));
    let files = tree.boot_files(backend, 5248);
    let (tx, rx) = mpsc::channel();
    let _server = InNetns::spawn(None, move |stopped| async move {
        let config = HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let server = HttpServer::bind(config, files).await.expect("bind HTTP");
        tx.send(server.local_addr().expect("address"))
            .expect("report");
        server
            .run(shutdown_signal(stopped))
            .await
            .expect("HTTP run");
    });
    let address = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("HTTP started");
    let dir = tree.dir.path();

    let preloader = curl(address, "/ipxe.cfg", &[], dir);
    assert_eq!(preloader.status, 200);
    assert!(
        String::from_utf8_lossy(&preloader.body)
            .contains("chain http://${next-server}:5248/ipxe.cfg-${mac}")
    );

    // A machine's iPXE script, by the MAC iPXE substitutes for ${mac}.
    let script = curl(address, "/ipxe.cfg-52:54:00:00:00:02", &[], dir);
    assert_eq!(script.status, 200);
    let text = String::from_utf8_lossy(&script.body);
    assert!(text.starts_with("#!ipxe\n"), "{text}");
    assert!(
        text.contains(
            "kernel http://127.0.0.1:5248/images/ubuntu/amd64/generic/noble/stable/boot-kernel"
        ),
        "{text}"
    );
    assert!(text.contains("BOOTIF=01-${mac}"), "{text}");
    let local = curl(address, "/ipxe.cfg-52:54:00:00:00:03", &[], dir);
    assert!(String::from_utf8_lossy(&local.body).contains("sanboot --no-describe --drive 0x80"));
    // Unknown machines get 404 here (unknown_purpose = "none").
    assert_eq!(
        curl(address, "/ipxe.cfg-52:54:00:99:99:99", &[], dir).status,
        404
    );
    assert_eq!(
        curl(address, "/ipxe.cfg-default-amd64", &[], dir).status,
        404
    );

    // Loaders are served from the root, also under /images/.
    assert_eq!(curl(address, "/images/bootx64.efi", &[], dir).body, b"shim");
    assert_eq!(curl(address, "/bootx64.efi", &[], dir).body, b"shim");

    // A whole image, then byte ranges of it.
    let path = "/images/ubuntu/amd64/generic/noble/stable/boot-kernel";
    let whole = curl(address, path, &[], dir);
    assert_eq!(whole.status, 200);
    assert!(whole.body == kernel, "whole body differs");
    assert!(
        whole.headers.contains("accept-ranges: bytes"),
        "{}",
        whole.headers
    );
    let part = curl(address, path, &["-r", "100-199"], dir);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &kernel[100..200]);
    assert!(
        part.headers
            .contains(&format!("content-range: bytes 100-199/{}", kernel.len())),
        "{}",
        part.headers
    );
    let tail = curl(address, path, &["-r", "-1000"], dir);
    assert_eq!(tail.body, &kernel[kernel.len() - 1000..]);
    let resumed = curl(address, path, &["-r", "5000000-"], dir);
    assert_eq!(resumed.body, &kernel[5_000_000..]);
    let beyond = curl(address, path, &["-r", "99999999-"], dir);
    assert_eq!(beyond.status, 416);
    let head = curl(address, path, &["-I"], dir);
    assert_eq!(head.status, 200);
    assert!(
        head.headers
            .contains(&format!("content-length: {}", kernel.len())),
        "{}",
        head.headers
    );

    // Escapes and unknown files.
    assert_eq!(
        curl(address, "/images/..%2F..%2Fsecret.txt", &[], dir).status,
        403
    );
    assert_eq!(curl(address, "/nothing-here", &[], dir).status, 404);
    assert_eq!(curl(address, "/ipxe.cfg", &["-X", "POST"], dir).status, 405);
}
