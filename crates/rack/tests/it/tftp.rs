//! The TFTP server against curl, tftp-hpa and atftp on loopback.

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use maas_rack::{FileBackend, TftpConfig, TftpServer, TftpStats};

use crate::support::{
    BootTree, InNetns, pattern, read, require_programs, run_with_timeout, shutdown_signal, wait_for,
};

const BACKEND: &str = r#"
[boot]
unknown_purpose = "commissioning"

[[machine]]
mac = "52:54:00:00:00:02"
hostname = "node2"
purpose = "xinstall"
system_id = "xyz234"
"#;

const BIG: usize = 50 * 1024 * 1024;

struct Running {
    _server: InNetns,
    address: SocketAddr,
    stats: Arc<TftpStats>,
    tree: BootTree,
}

fn start(tree: BootTree) -> Running {
    let backend = Arc::new(FileBackend::from_toml(BACKEND).expect("backend"));
    let files = tree.boot_files(backend, 5248);
    let (tx, rx) = mpsc::channel();
    let server = InNetns::spawn(None, move |stopped| async move {
        let config = TftpConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            ..TftpConfig::default()
        };
        let server = TftpServer::bind(config, files).await.expect("bind TFTP");
        tx.send((server.local_addrs()[0], server.stats()))
            .expect("report");
        server
            .run(shutdown_signal(stopped))
            .await
            .expect("TFTP run");
    });
    let (address, stats) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("TFTP started");
    Running {
        _server: server,
        address,
        stats,
        tree,
    }
}

fn big_tree() -> (BootTree, Vec<u8>) {
    let tree = BootTree::new();
    let big = pattern(BIG, 7);
    tree.write("root/big.bin", &big);
    (tree, big)
}

/// One real client fetch: (label, command builder writing to `out`).
fn fetch(label: &str, mut command: Command, out: &std::path::Path, expected: &[u8]) {
    let start = Instant::now();
    let output = run_with_timeout(&mut command, Duration::from_secs(120));
    assert!(
        output.status.success(),
        "{label}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let got = read(out);
    assert!(
        got.len() == expected.len() && got == expected,
        "{label}: {} bytes, content differs",
        got.len()
    );
    let seconds = start.elapsed().as_secs_f64();
    eprintln!(
        "{label}: {:.1} MiB in {seconds:.2} s ({:.1} MiB/s)",
        expected.len() as f64 / 1048576.0,
        expected.len() as f64 / 1048576.0 / seconds
    );
}

fn curl(running: &Running, path: &str, out: &std::path::Path, blksize: Option<&str>) -> Command {
    let mut command = Command::new("curl");
    command.args(["-s", "-S", "--fail", "-o"]).arg(out);
    if let Some(blksize) = blksize {
        command.args(["--tftp-blksize", blksize]);
    }
    command.arg(format!("tftp://{}/{path}", running.address));
    command
}

#[test]
fn curl_fetches_50_mb_default_and_blksize_1468() {
    if !require_programs(&["curl"]) {
        return;
    }
    let (tree, big) = big_tree();
    let running = start(tree);
    let out = running.tree.dir.path().join("curl.out");
    fetch(
        "curl default",
        curl(&running, "big.bin", &out, None),
        &out,
        &big,
    );
    fetch(
        "curl blksize 1468",
        curl(&running, "big.bin", &out, Some("1468")),
        &out,
        &big,
    );
}

#[test]
fn tftp_hpa_fetches_50_mb() {
    if !require_programs(&["tftp"]) {
        return;
    }
    let (tree, big) = big_tree();
    let running = start(tree);
    let out = running.tree.dir.path().join("hpa.out");
    let mut command = Command::new("tftp");
    command
        .args([
            "-m",
            "binary",
            &running.address.ip().to_string(),
            &running.address.port().to_string(),
            "-c",
            "get",
            "big.bin",
        ])
        .arg(&out);
    fetch("tftp-hpa default", command, &out, &big);
}

#[test]
fn atftp_fetches_50_mb_default_blksize_and_windowsize() {
    if !require_programs(&["atftp"]) {
        return;
    }
    let (tree, big) = big_tree();
    let running = start(tree);
    let out = running.tree.dir.path().join("atftp.out");
    let atftp = |options: &[&str]| {
        let mut command = Command::new("atftp");
        for option in options {
            command.args(["--option", option]);
        }
        command.args(["-g", "-r", "big.bin", "-l"]).arg(&out);
        command.args([
            &running.address.ip().to_string(),
            &running.address.port().to_string(),
        ]);
        command
    };
    fetch("atftp default", atftp(&[]), &out, &big);
    fetch("atftp blksize 1468", atftp(&["blksize 1468"]), &out, &big);
    fetch(
        "atftp blksize 1468 windowsize 16",
        atftp(&["blksize 1468", "windowsize 16"]),
        &out,
        &big,
    );
    assert_eq!(running.stats.failed(), 0);
}

#[test]
fn hundred_concurrent_transfers_complete() {
    if !require_programs(&["curl"]) {
        return;
    }
    let tree = BootTree::new();
    let file = pattern(2 * 1024 * 1024, 11);
    tree.write("root/conc.bin", &file);
    let running = start(tree);
    let children: Vec<_> = (0..100)
        .map(|index| {
            let out = running.tree.dir.path().join(format!("conc-{index}.out"));
            let child = curl(&running, "conc.bin", &out, Some("1468"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn curl");
            (out, child)
        })
        .collect();
    let start = Instant::now();
    for (out, child) in children {
        let output = child.wait_with_output().expect("curl");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(read(&out) == file, "{} differs", out.display());
    }
    eprintln!(
        "100 x 2 MiB concurrent in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    wait_for("completion counters", Duration::from_secs(5), || {
        running.stats.completed() >= 100
    });
    assert_eq!(running.stats.failed(), 0);
}

/// Sends raw bytes to the server and returns the first reply, if any.
fn exchange(address: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("client socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    socket.send_to(bytes, address).expect("send");
    let mut buffer = [0u8; 2048];
    socket
        .recv_from(&mut buffer)
        .ok()
        .map(|(len, _)| buffer[..len].to_vec())
}

#[test]
fn malformed_escaping_and_generated_paths() {
    if !require_programs(&["curl"]) {
        return;
    }
    let tree = BootTree::new();
    tree.write("root/lpxelinux.0", b"loader");
    tree.write("secret.txt", b"outside the root");
    let running = start(tree);

    // Malformed packets are dropped without a reply and counted.
    for garbage in [
        &b"\x00"[..],
        b"\x00\x09abc",
        b"\x00\x01no-terminator",
        b"\x00\x01f\x00binary\x00",
    ] {
        assert_eq!(exchange(running.address, garbage), None);
    }
    assert_eq!(running.stats.malformed(), 4);

    // Paths leaving the root are refused with an access violation (error code 2).
    for path in [
        "../secret.txt",
        "/../secret.txt",
        "grub/../../secret.txt",
        "..\\secret.txt",
    ] {
        let mut rrq = b"\x00\x01".to_vec();
        rrq.extend_from_slice(path.as_bytes());
        rrq.extend_from_slice(b"\x00octet\x00");
        let reply = exchange(running.address, &rrq).expect("error reply");
        assert_eq!(&reply[..4], b"\x00\x05\x00\x02", "{path}: {reply:?}");
    }
    // Writes are refused.
    let reply = exchange(running.address, b"\x00\x02up.bin\x00octet\x00").expect("error reply");
    assert_eq!(&reply[..4], b"\x00\x05\x00\x02");

    let out = running.tree.dir.path().join("cfg.out");
    let get = |path: &str| {
        let output = run_with_timeout(
            &mut curl(&running, path, &out, None),
            Duration::from_secs(20),
        );
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&read(&out)).into_owned())
    };
    assert_eq!(get("lpxelinux.0").as_deref(), Some("loader"));
    // Per-machine configs are generated on request.
    let pxelinux = get("pxelinux.cfg/01-52-54-00-00-00-02").expect("pxelinux config");
    assert!(pxelinux.contains("SAY Installation"), "{pxelinux}");
    assert!(
        pxelinux.contains(
            "KERNEL http://127.0.0.1:5248/images/ubuntu/amd64/generic/noble/stable/boot-kernel"
        ),
        "{pxelinux}"
    );
    assert!(pxelinux.contains("cloud-config-url=http://127.0.0.1:5248/MAAS/metadata/latest/by-id/xyz234/?op=get_preseed"), "{pxelinux}");
    let grub = get("grub/grub.cfg-52:54:00:00:00:02").expect("grub config");
    assert!(
        grub.contains("linux (http,127.0.0.1:5248)/images/"),
        "{grub}"
    );
    assert!(grub.contains("BOOTIF=01-${net_default_mac}"), "{grub}");
    // An unknown MAC's own file is not found, so the loader falls through to the default.
    assert_eq!(get("pxelinux.cfg/01-52-54-00-99-99-99"), None);
    let default = get("pxelinux.cfg/default").expect("default config");
    assert!(default.contains("SAY Commissioning"), "{default}");
    assert!(
        get("grub/grub.cfg")
            .expect("grub preloader")
            .contains("grub.cfg-${net_default_mac}")
    );
    // Unknown GRUB module lists are an empty file: one empty DATA block.
    let reply = exchange(
        running.address,
        b"\x00\x01grub/x86_64-efi/command.lst\x00octet\x00",
    )
    .expect("data");
    assert_eq!(reply, b"\x00\x03\x00\x01");
    assert_eq!(get("missing.bin"), None);
    // The server is still healthy after all that.
    assert_eq!(get("lpxelinux.0").as_deref(), Some("loader"));
}
