//! The persisted lease log: one text line per [`LeaseEvent`], appended before the reply that
//! depends on it goes out, replayed on start, and compacted to the live leases.
//!
//! Line format (fields separated by one space, hostnames percent-escaped):
//! `commit <start> <mac> <ip> <lease_time> <hostname|->`, `release <at> <mac> <ip>`,
//! `expire <at> <mac> <ip>`, `decline <at> <mac> <ip> <until>`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use maas_dhcp_wire::engine::{Engine, LeaseEvent};
use maas_domain::MacAddress;
use thiserror::Error;

pub const LEASE_FILE: &str = "dhcp-leases.log";

#[derive(Debug, Error)]
pub enum LeaseStoreError {
    #[error("opening lease log {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing lease log {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum LeaseLineError {
    #[error("unknown lease action {action:?}")]
    UnknownAction { action: String },
    #[error("lease line has {found} fields, expected {expected}")]
    FieldCount { found: usize, expected: usize },
    #[error("lease line field {field} is not valid: {value:?}")]
    BadField { field: &'static str, value: String },
}

pub struct LeaseStore {
    path: PathBuf,
    file: File,
    fsync: bool,
    pending: Vec<u8>,
    appended: usize,
}

impl LeaseStore {
    /// Opens (creating) the log under `state_dir`, replays it into `engine`, and rewrites it
    /// with only the live leases.
    pub fn open(
        state_dir: &Path,
        fsync: bool,
        engine: &mut Engine,
        now: u64,
    ) -> Result<LeaseStore, LeaseStoreError> {
        let path = state_dir.join(LEASE_FILE);
        let open_error = |source| LeaseStoreError::Open {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(open_error)?;
        match File::open(&path) {
            Ok(file) => {
                for (number, line) in BufReader::new(file).lines().enumerate() {
                    let line = line.map_err(open_error)?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    match decode_line(&line) {
                        Ok(event) => engine.apply(&event),
                        // A torn last line after a crash is the expected case here.
                        Err(error) => {
                            tracing::warn!(path = %path.display(), line = number + 1, %error, "skipping lease log line")
                        }
                    }
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(open_error(error)),
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(open_error)?;
        let mut store = LeaseStore {
            path,
            file,
            fsync,
            pending: Vec::new(),
            appended: 0,
        };
        store.compact(engine, now)?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues events; [`LeaseStore::commit`] writes them.
    pub fn append(&mut self, events: &[LeaseEvent]) {
        for event in events {
            self.pending
                .extend_from_slice(encode_line(event).as_bytes());
            self.pending.push(b'\n');
            self.appended += 1;
        }
    }

    /// Writes queued events and, when configured, syncs them to disk: one sync per batch.
    pub fn commit(&mut self) -> Result<(), LeaseStoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let write_error = |source| LeaseStoreError::Write {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&self.pending).map_err(write_error)?;
        self.pending.clear();
        if self.fsync {
            self.file.sync_data().map_err(write_error)?;
        }
        Ok(())
    }

    /// Whether enough has been appended since the last compaction to rewrite the log.
    pub fn wants_compaction(&self, live_leases: usize) -> bool {
        self.appended > 10_000 && self.appended > 4 * live_leases
    }

    /// Atomically replaces the log with the engine's live leases.
    pub fn compact(&mut self, engine: &Engine, now: u64) -> Result<(), LeaseStoreError> {
        self.commit()?;
        let write_error = |source| LeaseStoreError::Write {
            path: self.path.clone(),
            source,
        };
        let temporary = self.path.with_extension("log.new");
        let mut text = String::new();
        for event in engine.snapshot(now) {
            text.push_str(&encode_line(&event));
            text.push('\n');
        }
        {
            let mut file = File::create(&temporary).map_err(write_error)?;
            file.write_all(text.as_bytes()).map_err(write_error)?;
            file.sync_all().map_err(write_error)?;
        }
        std::fs::rename(&temporary, &self.path).map_err(write_error)?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(write_error)?;
        self.appended = 0;
        Ok(())
    }
}

pub fn encode_line(event: &LeaseEvent) -> String {
    match event {
        LeaseEvent::Commit {
            mac,
            ip,
            hostname,
            start,
            lease_time,
        } => format!(
            "commit {start} {mac} {ip} {lease_time} {}",
            hostname
                .as_deref()
                .map(escape)
                .unwrap_or_else(|| "-".into())
        ),
        LeaseEvent::Release { mac, ip, at } => format!("release {at} {mac} {ip}"),
        LeaseEvent::Expire { mac, ip, at } => format!("expire {at} {mac} {ip}"),
        LeaseEvent::Decline { mac, ip, at, until } => format!("decline {at} {mac} {ip} {until}"),
    }
}

pub fn decode_line(line: &str) -> Result<LeaseEvent, LeaseLineError> {
    let fields: Vec<&str> = line.split(' ').collect();
    let expect = |expected: usize| {
        if fields.len() == expected {
            Ok(())
        } else {
            Err(LeaseLineError::FieldCount {
                found: fields.len(),
                expected,
            })
        }
    };
    let number = |field: &'static str, at: usize| -> Result<u64, LeaseLineError> {
        fields[at].parse().map_err(|_| LeaseLineError::BadField {
            field,
            value: fields[at].to_owned(),
        })
    };
    let mac = |at: usize| -> Result<MacAddress, LeaseLineError> {
        fields[at].parse().map_err(|_| LeaseLineError::BadField {
            field: "mac",
            value: fields[at].to_owned(),
        })
    };
    let ip = |at: usize| -> Result<Ipv4Addr, LeaseLineError> {
        fields[at].parse().map_err(|_| LeaseLineError::BadField {
            field: "ip",
            value: fields[at].to_owned(),
        })
    };
    match fields[0] {
        "commit" => {
            expect(6)?;
            let lease_time =
                u32::try_from(number("lease_time", 4)?).map_err(|_| LeaseLineError::BadField {
                    field: "lease_time",
                    value: fields[4].to_owned(),
                })?;
            let hostname = match fields[5] {
                "-" => None,
                text => Some(unescape(text).ok_or_else(|| LeaseLineError::BadField {
                    field: "hostname",
                    value: text.to_owned(),
                })?),
            };
            Ok(LeaseEvent::Commit {
                start: number("start", 1)?,
                mac: mac(2)?,
                ip: ip(3)?,
                lease_time,
                hostname,
            })
        }
        "release" | "expire" => {
            expect(4)?;
            let (at, mac, ip) = (number("at", 1)?, mac(2)?, ip(3)?);
            Ok(if fields[0] == "release" {
                LeaseEvent::Release { mac, ip, at }
            } else {
                LeaseEvent::Expire { mac, ip, at }
            })
        }
        "decline" => {
            expect(5)?;
            Ok(LeaseEvent::Decline {
                at: number("at", 1)?,
                mac: mac(2)?,
                ip: ip(3)?,
                until: number("until", 4)?,
            })
        }
        other => Err(LeaseLineError::UnknownAction {
            action: other.to_owned(),
        }),
    }
}

/// Percent-escapes everything but unreserved ASCII, so a hostname is one field on one line.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = std::str::from_utf8(bytes.get(index + 1..index + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac() -> MacAddress {
        "52:54:00:00:00:01".parse().expect("mac")
    }

    #[test]
    fn lines_round_trip() {
        let ip: Ipv4Addr = "10.0.0.5".parse().expect("ip");
        let events = [
            LeaseEvent::Commit {
                mac: mac(),
                ip,
                hostname: Some("my host%1".into()),
                start: 100,
                lease_time: 600,
            },
            LeaseEvent::Commit {
                mac: mac(),
                ip,
                hostname: None,
                start: 100,
                lease_time: 600,
            },
            LeaseEvent::Release {
                mac: mac(),
                ip,
                at: 5,
            },
            LeaseEvent::Expire {
                mac: mac(),
                ip,
                at: 6,
            },
            LeaseEvent::Decline {
                mac: mac(),
                ip,
                at: 7,
                until: 607,
            },
        ];
        for event in events {
            let line = encode_line(&event);
            assert!(!line.contains('\n'));
            assert_eq!(decode_line(&line), Ok(event), "{line}");
        }
        assert_eq!(
            encode_line(&LeaseEvent::Commit {
                mac: mac(),
                ip,
                hostname: Some("a b".into()),
                start: 1,
                lease_time: 2
            }),
            "commit 1 52:54:00:00:00:01 10.0.0.5 2 a%20b"
        );
    }

    #[test]
    fn bad_lines_table() {
        let cases = [
            (
                "grant 1 2 3",
                LeaseLineError::UnknownAction {
                    action: "grant".into(),
                },
            ),
            (
                "commit 1 52:54:00:00:00:01",
                LeaseLineError::FieldCount {
                    found: 3,
                    expected: 6,
                },
            ),
            (
                "release x 52:54:00:00:00:01 10.0.0.1",
                LeaseLineError::BadField {
                    field: "at",
                    value: "x".into(),
                },
            ),
            (
                "expire 1 nope 10.0.0.1",
                LeaseLineError::BadField {
                    field: "mac",
                    value: "nope".into(),
                },
            ),
            (
                "decline 1 52:54:00:00:00:01 10.0.0 9",
                LeaseLineError::BadField {
                    field: "ip",
                    value: "10.0.0".into(),
                },
            ),
            (
                "commit 1 52:54:00:00:00:01 10.0.0.1 5 %zz",
                LeaseLineError::BadField {
                    field: "hostname",
                    value: "%zz".into(),
                },
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(decode_line(line), Err(expected), "{line}");
        }
    }
}
