//! The virsh driver against libvirt's test driver served by a libvirtd the
//! test starts on a private socket (the test driver keeps domain state as
//! long as one connection stays open, so the test holds one). `virsh`
//! itself, run by the test, is the referee.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use maas_power::{PowerError, PowerErrorKind, PowerState};

use crate::support::{self, Emulator};

struct Holder(Child);

impl Drop for Holder {
    fn drop(&mut self) {
        if let Some(stdin) = self.0.stdin.as_mut() {
            let _ = stdin.write_all(b"quit\n");
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn referee(uri: &str, domain: &str) -> String {
    let output = Command::new("virsh")
        .args(["--connect", uri, "domstate", "--domain", domain])
        .output()
        .expect("running virsh");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test]
async fn libvirt_test_driver() {
    let root = nix_is_root();
    if !support::require(
        "virsh and libvirtd (libvirt-clients, libvirt-daemon-system)",
        support::have_tool("virsh") && support::have_tool("libvirtd"),
    ) || !support::require("root, to run libvirtd", root)
    {
        return;
    }
    let dir = support::tempdir();
    let sockets = dir.path().join("sock");
    std::fs::create_dir_all(&sockets).expect("socket dir");
    let config = format!(
        "unix_sock_dir = \"{}\"\nunix_sock_rw_perms = \"0700\"\nauth_unix_rw = \"none\"\nauth_unix_ro = \"none\"\n",
        sockets.display()
    );
    std::fs::write(dir.path().join("libvirtd.conf"), config).expect("libvirtd.conf");
    let mut command = Command::new("libvirtd");
    command
        .arg("-f")
        .arg(dir.path().join("libvirtd.conf"))
        .arg("-p")
        .arg(dir.path().join("libvirtd.pid"));
    let mut daemon = Emulator::start("libvirtd", &mut command, dir.path().join("libvirtd.log"));
    let socket = sockets.join("libvirt-sock");
    let uri = format!("test+unix:///default?socket={}", socket.display());
    daemon.wait_until(Duration::from_secs(20), |_| {
        socket.exists() && referee(&uri, "test") == "running"
    });
    let _holder = Holder(
        Command::new("virsh")
            .args(["--connect", &uri])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("holding a libvirt connection"),
    );
    std::thread::sleep(Duration::from_millis(300));

    let driver = support::build("virsh", &[("power_address", &uri), ("power_id", "test")]);
    assert_eq!(driver.query().await.expect("query"), PowerState::On);
    driver.off().await.expect("power off");
    assert_eq!(referee(&uri, "test"), "shut off");
    assert_eq!(driver.query().await.expect("query"), PowerState::Off);
    driver.on().await.expect("power on");
    assert_eq!(referee(&uri, "test"), "running");
    driver.cycle().await.expect("power cycle");
    assert_eq!(referee(&uri, "test"), "running");
    assert_eq!(
        driver.set_pxe_boot().await.err().map(|e| e.kind()),
        Some(PowerErrorKind::Unsupported)
    );

    let missing = support::build(
        "virsh",
        &[("power_address", &uri), ("power_id", "no-such-vm")],
    );
    let error = missing.query().await.expect_err("unknown domain");
    assert!(matches!(error, PowerError::Refused { .. }), "{error}");

    let nowhere = format!(
        "test+unix:///default?socket={}",
        dir.path().join("missing-sock").display()
    );
    let dead = support::build(
        "virsh",
        &[("power_address", &nowhere), ("power_id", "test")],
    );
    let error = dead.query().await.expect_err("no libvirtd there");
    assert!(error.is_retryable(), "{error}");
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}
