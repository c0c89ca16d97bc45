//! Boots the in-memory environment under QEMU (TCG, direct kernel boot, slirp) and checks
//! that the agent inside commissioned the VM against a recording peer on the host.
//!
//! Needs qemu-system-x86_64, the static busybox and the kernel package that
//! scripts/deps/agent.sh provides; outside CI a missing prerequisite skips loudly, under
//! `CI=true` it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::peer::{Peer, Reply, tarball};

const BUSYBOX: &str = "/var/cache/maas-agent-deps/busybox/bin/busybox";

fn prerequisite(ok: bool, what: &str) -> bool {
    if ok {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("boot test prerequisite missing under CI: {what} (run scripts/deps/agent.sh)");
    }
    eprintln!("SKIPPED boot test: {what} (run scripts/deps/agent.sh)");
    false
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn environment_boots_and_commissions_the_vm() {
    if !prerequisite(which("qemu-system-x86_64"), "qemu-system-x86_64 not found")
        || !prerequisite(Path::new(BUSYBOX).exists(), "static busybox not unpacked")
        || !prerequisite(which("depmod") && which("cpio"), "depmod or cpio not found")
    {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let agent = std::env::var("MAAS_AGENT_BINARY")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_maas-agent").to_owned());
    let build = Instant::now();
    let status = Command::new(repo().join("scripts/build-ephemeral.sh"))
        .arg(out.path())
        .args(["--agent", &agent])
        .status()
        .unwrap();
    assert!(status.success(), "build-ephemeral.sh failed");
    eprintln!(
        "boot test: environment built in {:.1} s",
        build.elapsed().as_secs_f64()
    );

    let index = serde_json::to_vec(&serde_json::json!({"1.0": {"commissioning_scripts": [
        {"name": "50-maas-01-commissioning", "path": "commissioning/50-maas-01-commissioning",
         "script_result_id": 1, "default": true},
        {"name": "uname", "path": "commissioning/uname", "script_result_id": 2, "timeout_seconds": 30}
    ]}}))
    .unwrap();
    let tar = tarball(&[
        ("index.json", 0o644, &index),
        (
            "commissioning/50-maas-01-commissioning",
            0o755,
            b"#!/usr/bin/python3\n",
        ),
        ("commissioning/uname", 0o755, b"#!/bin/sh\nuname -r\n"),
    ]);
    let peer = Peer::start(move |request| {
        let base = request
            .header("Host")
            .map(|h| format!("http://{h}"))
            .unwrap_or_default();
        match request.target.as_str() {
            "/MAAS/metadata/latest/by-id/vm0001/?op=get_preseed" => Reply::ok(format!(
                "#cloud-config\ndatasource:\n  MAAS:\n    metadata_url: {base}/MAAS/metadata/\n    consumer_key: ck\n    token_key: tk\n    token_secret: ts\npower_state: {{mode: poweroff}}\n"
            )),
            "/MAAS/metadata/latest/meta-data/instance-id" => Reply::ok("vm0001"),
            "/MAAS/metadata/latest/maas-scripts" => Reply::ok(tar.clone()),
            "/MAAS/metadata/latest/" => Reply::ok("OK"),
            "/MAAS/metadata/status/vm0001" => Reply::status(204),
            _ => Reply::status(404),
        }
    });
    let port = peer.base.rsplit(':').next().unwrap().to_owned();
    let disk = out.path().join("disk.raw");
    std::fs::write(&disk, vec![0u8; 64 << 20]).unwrap();
    let console = out.path().join("console.log");
    let started = Instant::now();
    let mut qemu = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-m", "512", "-smp", "2", "-nographic", "-monitor", "none", "-no-reboot"])
        .args(["-serial", &format!("file:{}", console.display())])
        .arg("-kernel")
        .arg(out.path().join("vmlinuz"))
        .arg("-initrd")
        .arg(out.path().join("initrd.gz"))
        .args([
            "-append",
            "console=ttyS0 panic=-1 cloud-config-url=http://10.0.2.100:8000/MAAS/metadata/latest/by-id/vm0001/?op=get_preseed BOOTIF=01-52-54-00-12-34-56",
        ])
        .args([
            "-netdev",
            &format!("user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:8000-cmd:{BUSYBOX} nc 127.0.0.1 {port}"),
            "-device",
            "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56",
        ])
        .args([
            "-drive",
            &format!("file={},if=none,id=d0,format=raw", disk.display()),
            "-device",
            "virtio-blk-pci,drive=d0,serial=maas-vm-disk",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = started + Duration::from_secs(120);
    let mut inventory_at = None;
    let exited = loop {
        if inventory_at.is_none()
            && peer.requests().iter().any(|r| {
                r.field("name").as_deref() == Some("50-maas-01-commissioning")
                    && r.field("exit_status").is_some()
            })
        {
            inventory_at = Some(started.elapsed());
        }
        if let Some(status) = qemu.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = qemu.kill();
            let _ = qemu.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(&console).unwrap_or_default();
    let tail: String = log
        .lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        exited.is_some(),
        "the VM did not power off within 120 s; console:\n{tail}"
    );
    eprintln!(
        "boot test: inventory posted {:.1} s after qemu started, VM off after {:.1} s",
        inventory_at.map_or(f64::NAN, |d| d.as_secs_f64()),
        started.elapsed().as_secs_f64()
    );
    let requests = peer.requests();
    let result = requests
        .iter()
        .find(|r| {
            r.field("name").as_deref() == Some("50-maas-01-commissioning")
                && r.field("exit_status").is_some()
        })
        .unwrap_or_else(|| panic!("no inventory posted; console:\n{tail}"));
    let out_part = result
        .parts()
        .into_iter()
        .find(|p| p.name == "50-maas-01-commissioning.out")
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out_part.content).unwrap();
    let resources = &json["resources"];
    assert_eq!(resources["cpu"]["total"], 2, "{tail}");
    assert_eq!(resources["memory"]["total"], 512u64 << 20);
    let disk = &resources["storage"]["disks"][0];
    assert_eq!(disk["id"], "vda");
    assert_eq!(disk["size"], 64u64 << 20);
    assert_eq!(disk["serial"], "maas-vm-disk");
    let port = &resources["network"]["cards"][0];
    assert_eq!(port["driver"], "virtio_net");
    assert_eq!(port["ports"][0]["address"], "52:54:00:12:34:56");
    assert_eq!(json["machine-extra"]["firmware"], "bios");
    assert_eq!(json["environment"]["kernel_architecture"], "x86_64");
    assert_eq!(
        json["networks"]["eth0"]["addresses"][0]["address"],
        "10.0.2.15"
    );
    let uname = requests
        .iter()
        .find(|r| r.field("name").as_deref() == Some("uname") && r.field("exit_status").is_some())
        .unwrap();
    assert_eq!(uname.field("exit_status").as_deref(), Some("0"));
    let last = requests
        .iter()
        .rfind(|r| r.field("status").is_some())
        .unwrap();
    assert_eq!(last.field("status").as_deref(), Some("OK"), "{tail}");
    assert!(log.contains("agent exited with 0"), "{tail}");
}
