//! A QEMU guest (SeaBIOS + iPXE option ROM, TCG) PXE-boots from the rack inside a namespace:
//! DHCP from our server, `ipxe.cfg` and the per-MAC script over our HTTP server, then the
//! kernel named in that script.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use maas_rack::{
    DhcpServer, DhcpServerConfig, FileBackend, HttpConfig, HttpServer, TftpConfig, TftpServer,
};

use crate::support::{BootTree, InNetns, Netns, pattern, require_netns, require_programs};

const MAC: &str = "52:54:00:66:00:01";

#[test]
fn qemu_ipxe_guest_boots_from_the_rack() {
    if !require_netns() || !require_programs(&["qemu-system-x86_64"]) {
        return;
    }
    if !crate::support::require(
        "iPXE option ROM for virtio-net (ipxe-qemu)",
        std::path::Path::new("/usr/lib/ipxe/qemu/pxe-virtio.rom").exists()
            || std::path::Path::new("/usr/share/qemu/pxe-virtio.rom").exists(),
    ) {
        return;
    }
    let ns = Netns::new("pxe");
    ns.ip(&[
        "link",
        "add",
        "br0",
        "type",
        "bridge",
        "stp_state",
        "0",
        "forward_delay",
        "0",
    ]);
    ns.ip(&["addr", "add", "10.66.0.1/24", "dev", "br0"]);
    ns.ip(&["link", "set", "br0", "up"]);
    ns.ip(&["tuntap", "add", "dev", "tap0", "mode", "tap"]);
    ns.ip(&["link", "set", "tap0", "master", "br0"]);
    ns.ip(&["link", "set", "tap0", "up"]);

    let tree = BootTree::new();
    tree.write(
        "images/ubuntu/amd64/generic/noble/stable/boot-kernel",
        &pattern(256 * 1024, 5),
    );
    tree.write(
        "images/ubuntu/amd64/generic/noble/stable/boot-initrd",
        &pattern(64 * 1024, 6),
    );
    let backend = Arc::new(
        FileBackend::from_toml(&format!(
            r#"
[[dhcp.interface]]
name = "br0"
address = "10.66.0.1"

[[subnet]]
cidr = "10.66.0.0/24"
router = "10.66.0.1"
ranges = ["10.66.0.100-10.66.0.120"]

[[machine]]
mac = "{MAC}"
hostname = "qemu1"
purpose = "commissioning"
system_id = "qemu01"
"#
        ))
        .expect("backend"),
    );
    let files = tree.boot_files(Arc::clone(&backend), 5248);
    let state = tree.dir.path().join("state");
    let (tx, rx) = std::sync::mpsc::channel();
    let server = InNetns::spawn(Some(&ns), move |stopped| async move {
        let dhcp = DhcpServer::bind(DhcpServerConfig::new(state), backend)
            .await
            .expect("DHCP");
        let leases = dhcp.lease_view();
        let http = HttpServer::bind(
            HttpConfig {
                listen: SocketAddr::from(([10, 66, 0, 1], 5248)),
            },
            Arc::clone(&files),
        )
        .await
        .expect("HTTP");
        let tftp = TftpServer::bind(
            TftpConfig {
                listen: vec![SocketAddr::from(([10, 66, 0, 1], 69))],
                ..TftpConfig::default()
            },
            files,
        )
        .await
        .expect("TFTP");
        let http_stats = http.stats();
        tx.send((leases, http_stats)).expect("report");
        let (stop_dhcp, stop_http, stop_tftp) = (
            tokio::sync::Notify::new(),
            tokio::sync::Notify::new(),
            tokio::sync::Notify::new(),
        );
        let stop_all = async {
            let _ = stopped.await;
            stop_dhcp.notify_one();
            stop_http.notify_one();
            stop_tftp.notify_one();
        };
        let (_, dhcp, http, tftp) = tokio::join!(
            stop_all,
            dhcp.run(stop_dhcp.notified()),
            http.run(stop_http.notified()),
            tftp.run(stop_tftp.notified()),
        );
        dhcp.expect("DHCP run");
        http.expect("HTTP run");
        tftp.expect("TFTP run");
    });
    let (leases, _http_stats) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("servers started");

    let console = tree.dir.path().join("console.log");
    let mut qemu = ns
        .command("qemu-system-x86_64")
        .args([
            "-accel",
            "tcg",
            "-m",
            "256",
            "-smp",
            "1",
            "-nographic",
            "-monitor",
            "none",
            "-no-reboot",
        ])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .args(["-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no"])
        .args([
            "-device",
            &format!("virtio-net-pci,netdev=n0,mac={MAC},bootindex=1"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start qemu");

    // iPXE prints each URL it fetches and "ok" once fetched.
    let wanted = [
        "http://10.66.0.1:5248/ipxe.cfg...".to_owned(),
        // iPXE percent-encodes the colons of ${mac}.
        format!(
            "http://10.66.0.1:5248/ipxe.cfg-{}...",
            MAC.replace(':', "%3A")
        ),
        "http://10.66.0.1:5248/images/ubuntu/amd64/generic/noble/stable/boot-kernel...".to_owned(),
    ];
    let start = Instant::now();
    let mut seen = String::new();
    let mut found = false;
    while start.elapsed() < Duration::from_secs(150) {
        seen = String::from_utf8_lossy(&std::fs::read(&console).unwrap_or_default()).into_owned();
        if wanted.iter().all(|w| seen.contains(&format!("{w} ok"))) {
            found = true;
            break;
        }
        if qemu.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let elapsed = start.elapsed();
    let _ = qemu.kill();
    let _ = qemu.wait();
    let leases = leases.leases();
    server.stop();
    assert!(
        found,
        "guest did not fetch {wanted:?} within {elapsed:?}; console:\n{seen}"
    );
    eprintln!(
        "QEMU guest: DHCP, ipxe.cfg, per-MAC script and kernel fetched in {:.1} s",
        elapsed.as_secs_f64()
    );
    assert!(
        leases.iter().any(|l| l.mac.to_string() == MAC),
        "guest's lease recorded: {leases:?}"
    );
}
