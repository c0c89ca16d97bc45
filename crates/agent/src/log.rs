//! Console logging: one line per event on stderr, `key=value` fields after the message.
//!
//! The agent runs as (a child of) PID 1 on a serial console, so lines are short and carry
//! the time since the agent started; the same steps also go to the region (see `report`).

use std::sync::OnceLock;
use std::time::Instant;

fn started() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Severity of a console line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

/// Whether debug lines are printed (`maas.agent.debug` on the command line, or `--debug`).
static DEBUG: OnceLock<bool> = OnceLock::new();

pub fn enable_debug() {
    let _ = DEBUG.set(true);
}

/// Prints one line: `[maas-agent 1.234s] INFO message key=value ...`.
pub fn line(level: Level, message: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
    if level == Level::Debug && !DEBUG.get().copied().unwrap_or(false) {
        return;
    }
    let elapsed = started().elapsed().as_secs_f64();
    let mut text = format!("[maas-agent {elapsed:.3}s] {} {message}", level.as_str());
    for (key, value) in fields {
        let value = value.to_string();
        if value.contains(' ') || value.is_empty() {
            text.push_str(&format!(" {key}={value:?}"));
        } else {
            text.push_str(&format!(" {key}={value}"));
        }
    }
    eprintln!("{text}");
}

pub fn debug(message: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
    line(Level::Debug, message, fields);
}

pub fn info(message: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
    line(Level::Info, message, fields);
}

pub fn warn(message: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
    line(Level::Warn, message, fields);
}

pub fn error(message: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
    line(Level::Error, message, fields);
}
