//! The ipmi driver against BMC emulators written by others: pyghmi's BMC
//! (IPMI v2.0, cipher suite 3, and 17 through a small SHA-256 extension in
//! tests/bmc/ipmi_bmc.py) and OpenIPMI's ipmi_sim (IPMI v1.5 and v2.0),
//! with ipmitool as the referee after each action.

use std::process::Command;
use std::time::{Duration, Instant};

use maas_power::{PowerError, PowerErrorKind, PowerState};

use crate::support::{self, Emulator};

struct PyghmiBmc {
    _emulator: Emulator,
    port: u16,
    address: String,
}

fn start_pyghmi(sha256: bool, address: &str) -> Option<PyghmiBmc> {
    let python = support::venv_python(&["pyghmi.ipmi.bmc"]);
    if !support::require("pyghmi in .venv", python.is_some())
        || !support::require("ipmitool", support::have_tool("ipmitool"))
    {
        return None;
    }
    let port = support::free_udp_port();
    let log = std::env::temp_dir().join(format!("maas-power-pyghmi-{port}.log"));
    let mut command = Command::new(python?);
    command.arg(support::bmc_script("ipmi_bmc.py")).args([
        "--address",
        address,
        "--port",
        &port.to_string(),
        "--user",
        "admin",
        "--password",
        "secret",
    ]);
    if sha256 {
        command.arg("--sha256");
    }
    let mut emulator = Emulator::start("pyghmi BMC", &mut command, log);
    emulator.wait_until(Duration::from_secs(15), |emulator| {
        emulator.log_text().contains("ready")
    });
    let address = if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    };
    Some(PyghmiBmc {
        _emulator: emulator,
        port,
        address,
    })
}

fn lanplus(port: u16, suite: &str, host: &str) -> Vec<String> {
    [
        "-I",
        "lanplus",
        "-C",
        suite,
        "-H",
        host,
        "-p",
        &port.to_string(),
        "-U",
        "admin",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn referee(args: &[String], password: &str, command: &[&str]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    support::ipmitool(&args, password, command)
}

fn assert_referee_power(args: &[String], password: &str, expected: PowerState) {
    let status = referee(args, password, &["power", "status"]);
    let word = match expected {
        PowerState::On => "Chassis Power is on",
        _ => "Chassis Power is off",
    };
    assert!(
        status.contains(word),
        "ipmitool says {status:?}, expected {word:?}"
    );
}

/// on, off, query, cycle and one-time PXE boot, each checked by ipmitool.
async fn full_cycle(address: &str, port: u16, suite: &str, host: &str) {
    let driver = support::build(
        "ipmi",
        &[
            ("power_address", address),
            ("power_user", "admin"),
            ("power_pass", "secret"),
            ("cipher_suite_id", suite),
        ],
    );
    let referee_args = lanplus(port, suite, host);

    assert_eq!(driver.query().await.expect("query"), PowerState::Off);
    assert_referee_power(&referee_args, "secret", PowerState::Off);

    // The boot device starts elsewhere, so PXE is ours to set.
    referee(&referee_args, "secret", &["chassis", "bootdev", "disk"]);
    driver.on().await.expect("power on");
    assert_eq!(driver.query().await.expect("query"), PowerState::On);
    assert_referee_power(&referee_args, "secret", PowerState::On);
    let flags = referee(
        &referee_args,
        "secret",
        &["chassis", "bootparam", "get", "5"],
    );
    assert!(
        flags.contains("Force PXE"),
        "boot flags after power on: {flags}"
    );
    assert!(flags.contains("Options apply to only next boot"), "{flags}");

    driver.off().await.expect("power off");
    assert_eq!(driver.query().await.expect("query"), PowerState::Off);
    assert_referee_power(&referee_args, "secret", PowerState::Off);

    referee(&referee_args, "secret", &["chassis", "bootdev", "disk"]);
    driver.set_pxe_boot().await.expect("set PXE boot");
    let flags = referee(
        &referee_args,
        "secret",
        &["chassis", "bootparam", "get", "5"],
    );
    assert!(
        flags.contains("Force PXE"),
        "boot flags after set_pxe_boot: {flags}"
    );

    driver.cycle().await.expect("power cycle from off");
    assert_referee_power(&referee_args, "secret", PowerState::On);
    driver.cycle().await.expect("power cycle from on");
    assert_eq!(driver.query().await.expect("query"), PowerState::On);
    assert_referee_power(&referee_args, "secret", PowerState::On);
}

#[tokio::test]
async fn pyghmi_cipher_suite_3() {
    let Some(bmc) = start_pyghmi(false, "127.0.0.1") else {
        return;
    };
    full_cycle(&bmc.address, bmc.port, "3", "127.0.0.1").await;
}

#[tokio::test]
async fn pyghmi_cipher_suite_17() {
    let Some(bmc) = start_pyghmi(true, "127.0.0.1") else {
        return;
    };
    full_cycle(&bmc.address, bmc.port, "17", "127.0.0.1").await;
}

#[tokio::test]
async fn pyghmi_over_ipv6_with_port() {
    let Some(bmc) = start_pyghmi(false, "::1") else {
        return;
    };
    let driver = support::build(
        "ipmi",
        &[
            ("power_address", &bmc.address),
            ("power_user", "admin"),
            ("power_pass", "secret"),
        ],
    );
    assert_eq!(
        driver.query().await.expect("query over [::1]"),
        PowerState::Off
    );
    driver.on().await.expect("power on over [::1]");
    assert_referee_power(&lanplus(bmc.port, "3", "::1"), "secret", PowerState::On);
}

#[tokio::test]
async fn wrong_password_is_a_final_authentication_error() {
    let Some(bmc) = start_pyghmi(true, "127.0.0.1") else {
        return;
    };
    for suite in ["3", "17"] {
        let driver = support::build(
            "ipmi",
            &[
                ("power_address", &bmc.address),
                ("power_user", "admin"),
                ("power_pass", "wrong"),
                ("cipher_suite_id", suite),
            ],
        );
        let started = Instant::now();
        let error = driver.on().await.expect_err("wrong password must fail");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(error.kind(), PowerErrorKind::Authentication, "{error}");
        assert!(!error.is_retryable());
        let message = error.to_string();
        assert!(
            message.contains(&bmc.address)
                && message.contains("power on")
                && message.contains("password invalid"),
            "{message}"
        );
        assert!(
            !message.contains("wrong"),
            "the password leaked into {message}"
        );
    }
    // The BMC stays off: nothing was done with a wrong password.
    assert_referee_power(
        &lanplus(bmc.port, "3", "127.0.0.1"),
        "secret",
        PowerState::Off,
    );
}

#[tokio::test]
async fn cipher_suite_the_bmc_lacks_is_a_setting_error() {
    // Stock pyghmi offers suite 3 only and answers 17 with suite 3's algorithms.
    let Some(bmc) = start_pyghmi(false, "127.0.0.1") else {
        return;
    };
    let driver = support::build(
        "ipmi",
        &[
            ("power_address", &bmc.address),
            ("power_user", "admin"),
            ("power_pass", "secret"),
            ("cipher_suite_id", "17"),
        ],
    );
    let error = driver.query().await.expect_err("suite 17 is not offered");
    assert!(
        matches!(
            error,
            PowerError::SettingRejected {
                setting: "cipher_suite_id",
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error.to_string().contains("cipher suite id 17 unavailable"),
        "{error}"
    );
}

struct IpmiSim {
    _emulator: Emulator,
    _dir: tempfile::TempDir,
    port: u16,
}

/// OpenIPMI's ipmi_sim with one LAN channel on loopback. Power on runs a
/// `sleep` as the "machine"; power off kills it.
fn start_ipmi_sim() -> Option<IpmiSim> {
    if !support::require(
        "ipmi_sim (Debian package openipmi)",
        support::have_tool("ipmi_sim"),
    ) || !support::require("ipmitool", support::have_tool("ipmitool"))
    {
        return None;
    }
    let dir = support::tempdir();
    let port = support::free_udp_port();
    let serial = support::free_tcp_port();
    let auths = "none md2 md5 straight";
    let config = format!(
        "name \"testbmc\"\nset_working_mc 0x20\n  startlan 1\n    addr 127.0.0.1 {port}\n    priv_limit admin\n\
         \x20   allowed_auths_callback {auths}\n    allowed_auths_user {auths}\n    allowed_auths_operator {auths}\n    allowed_auths_admin {auths}\n\
         \x20   guid a123456789abcdefa123456789abcdef\n  endlan\n  serial 15 127.0.0.1 {serial} codec VM\n\
         \x20 startcmd \"sleep 3600\"\n  startnow false\n  poweroff_wait 1\n  kill_wait 1\n\
         \x20 user 2 true \"admin\" \"secret\" admin 10 {auths}\n"
    );
    let emu = "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nsel_enable 0x20 1000 0x0a\nmc_enable 0x20\n";
    std::fs::write(dir.path().join("lan.conf"), config).expect("writing lan.conf");
    std::fs::write(dir.path().join("sim.emu"), emu).expect("writing sim.emu");
    std::fs::create_dir_all(dir.path().join("state")).expect("state dir");
    let mut command = Command::new("ipmi_sim");
    command
        .arg("-c")
        .arg(dir.path().join("lan.conf"))
        .arg("-f")
        .arg(dir.path().join("sim.emu"))
        .arg("-s")
        .arg(dir.path().join("state"))
        .arg("-n");
    let mut emulator = Emulator::start("ipmi_sim", &mut command, dir.path().join("sim.log"));
    let args = lanplus(port, "3", "127.0.0.1");
    emulator.wait_until(Duration::from_secs(15), |_| {
        referee(&args, "secret", &["power", "status"]).contains("Chassis Power is")
    });
    Some(IpmiSim {
        _emulator: emulator,
        _dir: dir,
        port,
    })
}

#[tokio::test]
async fn ipmi_sim_lan_2_0() {
    let Some(sim) = start_ipmi_sim() else { return };
    let address = format!("127.0.0.1:{}", sim.port);
    let driver = support::build(
        "ipmi",
        &[
            ("power_address", &address),
            ("power_user", "admin"),
            ("power_pass", "secret"),
            ("power_driver", "LAN_2_0"),
        ],
    );
    let referee_args = lanplus(sim.port, "3", "127.0.0.1");
    assert_eq!(driver.query().await.expect("query"), PowerState::Off);
    // ipmi_sim refuses the boot flags ("invalid data field"); as MAAS does,
    // the driver warns and powers on anyway.
    driver.on().await.expect("power on");
    assert_eq!(driver.query().await.expect("query"), PowerState::On);
    assert_referee_power(&referee_args, "secret", PowerState::On);
    driver.off().await.expect("power off");
    assert_eq!(driver.query().await.expect("query"), PowerState::Off);
    assert_referee_power(&referee_args, "secret", PowerState::Off);
    let error = driver
        .set_pxe_boot()
        .await
        .expect_err("ipmi_sim lacks boot flags");
    assert!(matches!(error, PowerError::Refused { .. }), "{error}");
    assert!(error.to_string().contains("invalid data field"), "{error}");
}

#[tokio::test]
async fn ipmi_sim_lan_1_5() {
    let Some(sim) = start_ipmi_sim() else { return };
    let address = format!("127.0.0.1:{}", sim.port);
    let driver = support::build(
        "ipmi",
        &[
            ("power_address", &address),
            ("power_user", "admin"),
            ("power_pass", "secret"),
            ("power_driver", "LAN"),
        ],
    );
    let referee_args: Vec<String> = [
        "-I",
        "lan",
        "-H",
        "127.0.0.1",
        "-p",
        &sim.port.to_string(),
        "-U",
        "admin",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        driver.query().await.expect("query over IPMI 1.5"),
        PowerState::Off
    );
    driver.on().await.expect("power on over IPMI 1.5");
    assert_referee_power(&referee_args, "secret", PowerState::On);
    assert_eq!(driver.query().await.expect("query"), PowerState::On);
    driver.off().await.expect("power off over IPMI 1.5");
    assert_referee_power(&referee_args, "secret", PowerState::Off);

    for power_driver in ["LAN", "LAN_2_0"] {
        let wrong = support::build(
            "ipmi",
            &[
                ("power_address", &address),
                ("power_user", "admin"),
                ("power_pass", "wrong"),
                ("power_driver", power_driver),
            ],
        );
        let started = Instant::now();
        let error = wrong.query().await.expect_err("wrong password");
        assert_eq!(
            error.kind(),
            PowerErrorKind::Authentication,
            "{power_driver}: {error}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{power_driver} took {:?}",
            started.elapsed()
        );
    }
}
