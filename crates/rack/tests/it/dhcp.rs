//! The DHCP server against busybox udhcpc and ISC dhcrelay, in network namespaces.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use maas_dhcp_wire::engine::LeaseState;
use maas_rack::{DhcpServer, DhcpServerConfig, DhcpStats, FileBackend, LeaseView};

use crate::support::{
    InNetns, Netns, find_program, require_netns, require_programs, run_with_timeout,
    shutdown_signal, veth,
};

const SCRIPT: &str = "#!/bin/sh\n[ \"$1\" = bound ] || exit 0\nenv | sort > \"$OUT\"\n";

struct Running {
    server: InNetns,
    stats: Arc<DhcpStats>,
    leases: LeaseView,
}

fn start(ns: &Netns, backend: Arc<FileBackend>, state_dir: PathBuf) -> Running {
    let (tx, rx) = mpsc::channel();
    let server = InNetns::spawn(Some(ns), move |stopped| async move {
        let mut config = DhcpServerConfig::new(state_dir);
        config.http_port = 5248;
        let server = DhcpServer::bind(config, backend).await.expect("bind DHCP");
        tx.send((server.stats(), server.lease_view()))
            .expect("report");
        server
            .run(shutdown_signal(stopped))
            .await
            .expect("DHCP run");
    });
    let (stats, leases) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("DHCP server started");
    // The listening sockets open on the server's first poll; udhcpc retries anyway.
    std::thread::sleep(Duration::from_millis(100));
    Running {
        server,
        stats,
        leases,
    }
}

/// Runs udhcpc once on `iface` with `mac`; the exported variables on success.
fn udhcpc(
    ns: &Netns,
    iface: &str,
    mac: &str,
    extra: &[&str],
    dir: &Path,
    tries: &str,
) -> Option<HashMap<String, String>> {
    ns.ip(&["link", "set", iface, "down"]);
    ns.ip(&["link", "set", iface, "address", mac]);
    ns.ip(&["link", "set", iface, "up"]);
    let script = dir.join("udhcpc.sh");
    std::fs::write(&script, SCRIPT).expect("script");
    run_with_timeout(
        Command::new("chmod").args(["+x"]).arg(&script),
        Duration::from_secs(5),
    );
    let out = dir.join(format!("lease-{}.env", mac.replace(':', "")));
    let _ = std::fs::remove_file(&out);
    let mut command = ns.command("env");
    command
        .arg(format!("OUT={}", out.display()))
        .args([
            "busybox", "udhcpc", "-i", iface, "-f", "-q", "-n", "-t", tries, "-T", "1", "-A", "1",
            "-O", "mtu",
        ])
        .arg("-s")
        .arg(&script)
        .args(extra);
    let output = run_with_timeout(&mut command, Duration::from_secs(30));
    if !output.status.success() {
        eprintln!("udhcpc: {}", String::from_utf8_lossy(&output.stderr));
        return None;
    }
    let text = std::fs::read_to_string(&out).ok()?;
    Some(
        text.lines()
            .filter_map(|line| line.split_once('='))
            // udhcpc's own variables are lower case; the inherited environment is not.
            .filter(|(key, _)| key.starts_with(|c: char| c.is_ascii_lowercase()))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
}

fn prerequisites() -> bool {
    require_netns() && require_programs(&["busybox"])
}

fn backend(toml: &str) -> Arc<FileBackend> {
    Arc::new(FileBackend::from_toml(toml).expect("backend config"))
}

fn get<'a>(lease: &'a HashMap<String, String>, key: &str) -> &'a str {
    lease.get(key).map(String::as_str).unwrap_or("<unset>")
}

const DIRECT: &str = r#"
[[dhcp.interface]]
name = "s0"
address = "10.61.0.1"

[[subnet]]
cidr = "10.61.0.0/24"
router = "10.61.0.1"
dns_servers = ["10.61.0.1", "10.61.0.2"]
domain_name = "maas.test"
lease_time = 600
mtu = 1400
ranges = ["10.61.0.100-10.61.0.110"]

[[machine]]
mac = "52:54:00:61:00:aa"
hostname = "fixed-node"
ip = "10.61.0.20"
"#;

#[test]
fn udhcpc_gets_lease_options_boot_files_and_reservation() {
    if !prerequisites() {
        return;
    }
    let srv = Netns::new("dsrv");
    let cli = Netns::new("dcli");
    veth(&srv, "s0", "10.61.0.1/24", &cli, "c0", "");
    let state = tempfile::tempdir().expect("tempdir");
    let running = start(&srv, backend(DIRECT), state.path().to_owned());
    let dir = state.path();

    let lease = udhcpc(&cli, "c0", "52:54:00:61:00:01", &[], dir, "5").expect("udhcpc got a lease");
    let address: std::net::Ipv4Addr = get(&lease, "ip").parse().expect("ip exported");
    assert!((100..=110).contains(&address.octets()[3]), "{lease:?}");
    let expected = [
        ("subnet", "255.255.255.0"),
        ("router", "10.61.0.1"),
        ("dns", "10.61.0.1 10.61.0.2"),
        ("domain", "maas.test"),
        ("lease", "600"),
        ("mtu", "1400"),
        ("serverid", "10.61.0.1"),
        ("siaddr", "10.61.0.1"),
        ("boot_file", "lpxelinux.0"),
        ("broadcast", "10.61.0.255"),
    ];
    for (key, value) in expected {
        assert_eq!(get(&lease, key), value, "{key} in {lease:?}");
    }

    // The reserved MAC gets its fixed address and host name.
    let fixed = udhcpc(&cli, "c0", "52:54:00:61:00:aa", &[], dir, "5").expect("reserved lease");
    assert_eq!(get(&fixed, "ip"), "10.61.0.20", "{fixed:?}");
    assert_eq!(get(&fixed, "hostname"), "fixed-node", "{fixed:?}");

    // Boot files by client architecture (option 93) and iPXE user class (option 77).
    let cases = [
        (
            "52:54:00:61:00:02",
            vec!["-V", "PXEClient:Arch:00007:UNDI:003016", "-x", "0x5d:0007"],
            "bootx64.efi",
            "30",
        ),
        (
            "52:54:00:61:00:03",
            vec!["-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000"],
            "lpxelinux.0",
            "30",
        ),
        (
            "52:54:00:61:00:04",
            vec!["-V", "HTTPClient:Arch:00016:UNDI:003016", "-x", "0x5d:0010"],
            "http://10.61.0.1:5248/images/bootx64.efi",
            "600",
        ),
        (
            "52:54:00:61:00:05",
            vec!["-V", "PXEClient:Arch:00011:UNDI:003016", "-x", "0x5d:000b"],
            "bootaa64.efi",
            "30",
        ),
        (
            "52:54:00:61:00:06",
            vec!["-x", "0x4d:69505845"],
            "http://10.61.0.1:5248/ipxe.cfg",
            "600",
        ),
    ];
    for (mac, extra, boot_file, lease_time) in cases {
        let lease =
            udhcpc(&cli, "c0", mac, &extra, dir, "5").unwrap_or_else(|| panic!("{mac}: no lease"));
        assert_eq!(get(&lease, "boot_file"), boot_file, "{mac}: {lease:?}");
        assert_eq!(get(&lease, "lease"), lease_time, "{mac}: {lease:?}");
        if boot_file.contains("images/bootx64.efi") {
            // Option 60 HTTPClient comes back for UEFI HTTP boot.
            assert_eq!(get(&lease, "vendor"), "HTTPClient", "{lease:?}");
        }
    }

    // A malformed packet is dropped and counted; the server keeps serving.
    let before = running.stats.malformed();
    cli.ip(&["addr", "add", "10.61.0.250/24", "dev", "c0"]);
    let garbage = cli
        .command("bash")
        .args(["-c", "printf 'not dhcp at all' > /dev/udp/10.61.0.1/67"])
        .status()
        .expect("send garbage");
    assert!(garbage.success());
    cli.ip(&["addr", "del", "10.61.0.250/24", "dev", "c0"]);
    crate::support::wait_for("malformed counter", Duration::from_secs(5), || {
        running.stats.malformed() > before
    });
    let again =
        udhcpc(&cli, "c0", "52:54:00:61:00:07", &[], dir, "5").expect("lease after garbage");
    assert!(get(&again, "ip").starts_with("10.61.0.1"), "{again:?}");

    let bound = running
        .leases
        .leases()
        .iter()
        .filter(|l| l.state == LeaseState::Bound)
        .count();
    assert!(
        bound >= 7,
        "expected the bound leases in the table, got {bound}"
    );
    running.server.stop();
}

#[test]
fn relayed_request_is_answered_for_its_subnet() {
    if !prerequisites() || !require_programs(&["dhcrelay"]) {
        return;
    }
    let srv = Netns::new("rsrv");
    let relay = Netns::new("rrly");
    let cli = Netns::new("rcli");
    veth(&srv, "s0", "10.62.0.1/24", &relay, "r0", "10.62.0.2/24");
    veth(&relay, "r1", "10.63.0.1/24", &cli, "c0", "");
    srv.ip(&["route", "add", "10.63.0.0/24", "via", "10.62.0.2"]);
    let toml = r#"
[[dhcp.interface]]
name = "s0"
address = "10.62.0.1"

[[subnet]]
cidr = "10.62.0.0/24"
ranges = ["10.62.0.100-10.62.0.110"]

[[subnet]]
cidr = "10.63.0.0/24"
router = "10.63.0.1"
dns_servers = ["10.62.0.1"]
lease_time = 900
ranges = ["10.63.0.50-10.63.0.60"]
"#;
    let state = tempfile::tempdir().expect("tempdir");
    let running = start(&srv, backend(toml), state.path().to_owned());
    let dhcrelay = find_program("dhcrelay").expect("dhcrelay");
    let mut relay_process = relay
        .command(dhcrelay.to_str().expect("utf-8 path"))
        .args([
            "-4",
            "-d",
            "-q",
            "--no-pid",
            "-iu",
            "r0",
            "-id",
            "r1",
            "10.62.0.1",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start dhcrelay");
    std::thread::sleep(Duration::from_millis(300));
    let lease = udhcpc(&cli, "c0", "52:54:00:63:00:01", &[], state.path(), "8");
    let _ = relay_process.kill();
    let _ = relay_process.wait();
    let lease = lease.expect("relayed client got a lease");
    let address: std::net::Ipv4Addr = get(&lease, "ip").parse().expect("ip");
    assert!(
        (50..=60).contains(&address.octets()[3]) && address.octets()[1] == 63,
        "address from the relayed subnet's range: {lease:?}"
    );
    assert_eq!(get(&lease, "router"), "10.63.0.1");
    assert_eq!(get(&lease, "lease"), "900");
    assert_eq!(get(&lease, "serverid"), "10.62.0.1");
    assert_eq!(get(&lease, "siaddr"), "10.62.0.1");
    running.server.stop();
}

#[test]
fn lease_survives_a_server_restart() {
    if !prerequisites() {
        return;
    }
    let srv = Netns::new("lsrv");
    let cli = Netns::new("lcli");
    veth(&srv, "s0", "10.64.0.1/24", &cli, "c0", "");
    let toml = r#"
[[dhcp.interface]]
name = "s0"
address = "10.64.0.1"

[[subnet]]
cidr = "10.64.0.0/24"
lease_time = 3600
ranges = ["10.64.0.100-10.64.0.101"]
"#;
    let state = tempfile::tempdir().expect("tempdir");
    let dir = state.path().join("state");
    let first = start(&srv, backend(toml), dir.clone());
    let a = udhcpc(&cli, "c0", "52:54:00:64:00:01", &[], state.path(), "5").expect("first lease");
    let a_ip = get(&a, "ip").to_owned();
    first.server.stop();

    let second = start(&srv, backend(toml), dir.clone());
    assert!(
        second
            .leases
            .leases()
            .iter()
            .any(|l| l.ip.to_string() == a_ip && l.state == LeaseState::Bound),
        "lease reloaded from the log"
    );
    let b = udhcpc(&cli, "c0", "52:54:00:64:00:02", &[], state.path(), "5")
        .expect("second client lease");
    assert_ne!(
        get(&b, "ip"),
        a_ip,
        "the restarted server must not hand out a held address"
    );
    let a_again = udhcpc(&cli, "c0", "52:54:00:64:00:01", &[], state.path(), "5")
        .expect("first client again");
    assert_eq!(get(&a_again, "ip"), a_ip);
    second.server.stop();
}

#[test]
fn unconfigured_server_answers_nobody() {
    if !prerequisites() {
        return;
    }
    let srv = Netns::new("usrv");
    let cli = Netns::new("ucli");
    veth(&srv, "s0", "10.65.0.1/24", &cli, "c0", "");
    let state = tempfile::tempdir().expect("tempdir");
    // Listening on the interface but with no subnet for it: every request is ignored.
    let toml = "[[dhcp.interface]]\nname = \"s0\"\naddress = \"10.65.0.1\"\n";
    let running = start(&srv, backend(toml), state.path().join("a"));
    assert!(udhcpc(&cli, "c0", "52:54:00:65:00:01", &[], state.path(), "2").is_none());
    assert!(
        running
            .stats
            .received
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0,
        "requests reached the server"
    );
    assert_eq!(running.stats.replies(), 0);
    running.server.stop();
    // With the default (empty) configuration it does not even listen.
    let running = start(&srv, backend(""), state.path().join("b"));
    assert!(udhcpc(&cli, "c0", "52:54:00:65:00:02", &[], state.path(), "2").is_none());
    assert_eq!(
        running
            .stats
            .received
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    running.server.stop();
}
