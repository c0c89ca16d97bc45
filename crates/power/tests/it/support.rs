//! Shared test plumbing: finding prerequisites, starting emulators written
//! by others on loopback ports, and running `ipmitool` as the referee.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maas_power::{DriverOptions, PowerDriver, PowerParameters, Timeouts};

/// Says loudly that a prerequisite is missing and returns false, so the
/// test can skip; under `CI=true` a missing prerequisite fails the test.
pub fn require(what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    let hint = "run scripts/deps/power.sh to install it";
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("prerequisite missing under CI=true: {what} ({hint})");
    }
    eprintln!("\n*** SKIPPING: prerequisite missing: {what} ({hint}) ***\n");
    false
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn bmc_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/bmc")
        .join(name)
}

/// The shared venv's Python with the given modules importable.
pub fn venv_python(modules: &[&str]) -> Option<PathBuf> {
    let python = repo_root().join(".venv/bin/python");
    let imports = modules
        .iter()
        .map(|m| format!("import {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    let ok = Command::new(&python)
        .args(["-c", &imports])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    ok.then_some(python)
}

pub fn have_tool(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .map(|address| address.port())
        .expect("a free UDP port on loopback")
}

pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free TCP port on loopback")
}

/// A process the test started; killed (by its own handle) when dropped.
pub struct Emulator {
    pub name: &'static str,
    child: Child,
    pub log: PathBuf,
}

impl Emulator {
    pub fn start(name: &'static str, command: &mut Command, log: PathBuf) -> Emulator {
        let out = std::fs::File::create(&log).expect("emulator log file");
        let err = out.try_clone().expect("emulator log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|error| panic!("starting {name}: {error}"));
        Emulator { name, child, log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `ready` returns true, failing with the emulator's log.
    pub fn wait_until(&mut self, within: Duration, mut ready: impl FnMut(&Emulator) -> bool) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited early ({status}):\n{}",
                    self.name,
                    self.log_text()
                );
            }
            if ready(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{} not ready within {within:?}:\n{}",
            self.name,
            self.log_text()
        );
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Short timeouts: emulators on loopback answer in milliseconds.
pub fn quick_options() -> DriverOptions {
    DriverOptions {
        system_id: None,
        timeouts: Timeouts {
            request: Duration::from_millis(700),
            attempts: 3,
            transition: Duration::from_secs(10),
            poll_interval: Duration::from_millis(200),
        },
    }
}

pub fn params(pairs: &[(&str, &str)]) -> PowerParameters {
    pairs.iter().copied().collect()
}

pub fn build(power_type: &str, pairs: &[(&str, &str)]) -> Arc<dyn PowerDriver> {
    maas_power::driver(power_type, &params(pairs), &quick_options())
        .unwrap_or_else(|error| panic!("building {power_type} driver: {error}"))
}

/// Runs ipmitool (an independent IPMI implementation) against a BMC; the
/// password goes through the environment (`-E`), not the command line.
pub fn ipmitool(interface_args: &[&str], password: &str, command: &[&str]) -> String {
    let output = Command::new("ipmitool")
        .args(interface_args)
        .arg("-E")
        .args(command)
        .env("IPMI_PASSWORD", password)
        .output()
        .expect("running ipmitool");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    text
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("maas-power-test-")
        .tempdir()
        .expect("a temporary directory")
}
