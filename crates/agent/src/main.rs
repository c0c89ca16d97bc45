//! `maas-agent`: runs the agent with orders from the kernel command line.
//!
//! ```text
//! maas-agent [--cmdline FILE] [--root DIR] [--dev DIR] [--work DIR] [--debug]
//! maas-agent inventory [--root DIR]      print the machine-resources JSON
//! ```
//! Exit status: 0 power off, 3 reboot, 4 stay up, 1 the agent could not work (the
//! environment's init powers off after a grace period).

use std::path::PathBuf;
use std::process::ExitCode;

use maas_agent::agent::{self, Config};
use maas_agent::inventory::MachineResources;
use maas_agent::log;

fn usage() -> ExitCode {
    eprintln!(
        "usage: maas-agent [inventory] [--cmdline FILE] [--root DIR] [--dev DIR] [--work DIR] [--debug]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut arguments = std::env::args().skip(1);
    let mut inventory = false;
    let mut cmdline_path = PathBuf::from("/proc/cmdline");
    let mut config = Config::new(String::new());
    while let Some(argument) = arguments.next() {
        let mut value = |name: &str| {
            arguments.next().map(PathBuf::from).ok_or_else(|| {
                eprintln!("maas-agent: {name} needs a value");
            })
        };
        let parsed = match argument.as_str() {
            "inventory" => {
                inventory = true;
                Ok(())
            }
            "--cmdline" => value("--cmdline").map(|v| cmdline_path = v),
            "--root" => value("--root").map(|v| config.root = v),
            "--dev" => value("--dev").map(|v| config.dev = v),
            "--work" => value("--work").map(|v| config.work = v),
            "--debug" => {
                log::enable_debug();
                Ok(())
            }
            _ => Err(()),
        };
        if parsed.is_err() {
            return usage();
        }
    }
    if inventory {
        print!(
            "{}",
            MachineResources::collect(&config.root, None).to_json()
        );
        return ExitCode::SUCCESS;
    }
    config.cmdline = match std::fs::read_to_string(&cmdline_path) {
        Ok(text) => text,
        Err(error) => {
            log::error(
                "cannot read the kernel command line",
                &[("path", &cmdline_path.display()), ("error", &error)],
            );
            return ExitCode::from(1);
        }
    };
    log::info(
        "maas-agent starting",
        &[("version", &env!("CARGO_PKG_VERSION"))],
    );
    match agent::run(&config) {
        Ok(ending) => {
            log::info("maas-agent done", &[("ending", &format!("{ending:?}"))]);
            ExitCode::from(u8::try_from(ending.exit_code()).unwrap_or(1))
        }
        Err(error) => {
            log::error(
                "maas-agent failed",
                &[("error", &agent::error_chain(&error))],
            );
            ExitCode::from(1)
        }
    }
}
