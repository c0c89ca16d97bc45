//! The persisted lease log: one text line per [`LeaseEvent`], appended before the reply that
//! depends on it goes out, replayed on start, and compacted to the live leases.
//! The file keeps a tail of zeros ahead of its text (replay stops at the first NUL), so that
//! appending overwrites allocated blocks and a sync has only data to flush.
//!
//! Line format (fields separated by one space, hostnames percent-escaped):
//! `commit <start> <mac> <ip> <lease_time> <hostname|->`, `release <at> <mac> <ip>`,
//! `expire <at> <mac> <ip>`, `decline <at> <mac> <ip> <until>`.

use std::fs::{File, OpenOptions};
use std::net::Ipv4Addr;
use std::os::unix::fs::FileExt;
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

/// Bytes of zeros kept ahead of the log's end. Writes then overwrite blocks that are already
/// allocated, so a sync flushes data only, not the inode's size and block map (on ext4 without
/// a journal that halves the writes per sync; with a journal it avoids a journal commit).
const PREALLOCATE: u64 = 1 << 20;

pub struct LeaseStore {
    path: PathBuf,
    file: File,
    fsync: bool,
    pending: Vec<u8>,
    appended: usize,
    /// Where the next line goes: the end of the text, before the zeros.
    end: u64,
    /// The file's length (text plus zeros).
    allocated: u64,
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
        match std::fs::read(&path) {
            Ok(bytes) => replay(&path, &bytes, engine),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(open_error(error)),
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(open_error)?;
        let mut store = LeaseStore {
            path,
            file,
            fsync,
            pending: Vec::new(),
            appended: 0,
            end: 0,
            allocated: 0,
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
            encode_line_into(event, &mut self.pending);
            self.appended += 1;
        }
    }

    /// Writes queued events and, when configured, syncs them to disk: one sync per batch.
    pub fn commit(&mut self) -> Result<(), LeaseStoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let result = self.write_lines(&pending);
        self.pending = pending;
        self.pending.clear();
        result
    }

    /// Appends already encoded lines at the end of the log and syncs them when configured.
    pub fn write_lines(&mut self, lines: &[u8]) -> Result<(), LeaseStoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        let write_error = |source| LeaseStoreError::Write {
            path: self.path.clone(),
            source,
        };
        self.file
            .write_all_at(lines, self.end)
            .map_err(write_error)?;
        self.end += lines.len() as u64;
        if self.end > self.allocated {
            let allocated = self.end + PREALLOCATE;
            write_zeros(&self.file, self.end, allocated).map_err(write_error)?;
            self.allocated = allocated;
        }
        if self.fsync {
            self.file.sync_data().map_err(write_error)?;
        }
        Ok(())
    }

    /// Whether enough has been appended since the last compaction to rewrite the log.
    pub fn wants_compaction(&self, live_leases: usize) -> bool {
        wants_compaction(self.appended, live_leases)
    }

    /// Atomically replaces the log with the engine's live leases.
    pub fn compact(&mut self, engine: &Engine, now: u64) -> Result<(), LeaseStoreError> {
        self.commit()?;
        let mut text = Vec::new();
        for event in engine.snapshot(now) {
            encode_line_into(&event, &mut text);
        }
        self.replace(&text)
    }

    /// Atomically replaces the log with `lines` (a snapshot and what followed it).
    pub fn replace(&mut self, lines: &[u8]) -> Result<(), LeaseStoreError> {
        let write_error = |source| LeaseStoreError::Write {
            path: self.path.clone(),
            source,
        };
        let temporary = self.path.with_extension("log.new");
        let allocated = lines.len() as u64 + PREALLOCATE;
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&temporary)
            .map_err(write_error)?;
        file.write_all_at(lines, 0).map_err(write_error)?;
        write_zeros(&file, lines.len() as u64, allocated).map_err(write_error)?;
        file.sync_all().map_err(write_error)?;
        std::fs::rename(&temporary, &self.path).map_err(write_error)?;
        self.file = file;
        self.end = lines.len() as u64;
        self.allocated = allocated;
        self.appended = 0;
        Ok(())
    }
}

/// Whether a log with `appended` lines since its last rewrite should be compacted.
pub fn wants_compaction(appended: usize, live_leases: usize) -> bool {
    appended > 10_000 && appended > 4 * live_leases
}

/// Replays the log's lines up to the first NUL (the preallocated tail).
fn replay(path: &Path, bytes: &[u8], engine: &mut Engine) {
    let text = match bytes.iter().position(|&b| b == 0) {
        Some(end) => &bytes[..end],
        None => bytes,
    };
    for (number, line) in text.split(|&b| b == b'\n').enumerate() {
        let Ok(line) = std::str::from_utf8(line) else {
            tracing::warn!(path = %path.display(), line = number + 1, "skipping lease log line that is not UTF-8");
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        match decode_line(line) {
            Ok(event) => engine.apply(&event),
            // A torn last line after a crash is the expected case here.
            Err(error) => {
                tracing::warn!(path = %path.display(), line = number + 1, %error, "skipping lease log line")
            }
        }
    }
}

fn write_zeros(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    const CHUNK: usize = 64 * 1024;
    let zeros = [0u8; CHUNK];
    let mut at = from;
    while at < to {
        let len = usize::try_from(to - at).unwrap_or(CHUNK).min(CHUNK);
        file.write_all_at(&zeros[..len], at)?;
        at += len as u64;
    }
    Ok(())
}

/// Appends `event`'s line and a newline to `out`.
pub fn encode_line_into(event: &LeaseEvent, out: &mut Vec<u8>) {
    use std::io::Write as _;
    // Writing into a Vec cannot fail.
    let _ = match event {
        LeaseEvent::Commit {
            mac,
            ip,
            hostname,
            start,
            lease_time,
        } => {
            let _ = write!(out, "commit {start} {mac} {ip} {lease_time} ");
            match hostname {
                Some(name) => escape_into(name, out),
                None => out.push(b'-'),
            }
            Ok(())
        }
        LeaseEvent::Release { mac, ip, at } => write!(out, "release {at} {mac} {ip}"),
        LeaseEvent::Expire { mac, ip, at } => write!(out, "expire {at} {mac} {ip}"),
        LeaseEvent::Decline { mac, ip, at, until } => {
            write!(out, "decline {at} {mac} {ip} {until}")
        }
    };
    out.push(b'\n');
}

pub fn encode_line(event: &LeaseEvent) -> String {
    let mut out = Vec::new();
    encode_line_into(event, &mut out);
    out.pop();
    // Every part is ASCII: numbers, addresses and the percent-escaped hostname.
    String::from_utf8_lossy(&out).into_owned()
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
fn escape_into(text: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_') {
            out.push(byte);
        } else {
            out.extend_from_slice(&[
                b'%',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 15)],
            ]);
        }
    }
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

    #[test]
    fn preallocated_log_survives_reopen_and_a_torn_line() {
        use maas_dhcp_wire::engine::EngineConfig;
        let dir = tempfile::tempdir().expect("tempdir");
        let ip: Ipv4Addr = "10.0.0.5".parse().expect("ip");
        let commit = LeaseEvent::Commit {
            mac: mac(),
            ip,
            hostname: Some("node 1".into()),
            start: 1000,
            lease_time: 600,
        };
        {
            let mut engine = Engine::new(EngineConfig::default());
            let mut store = LeaseStore::open(dir.path(), true, &mut engine, 1000).expect("open");
            store.append(std::slice::from_ref(&commit));
            store.commit().expect("commit");
            let bytes = std::fs::read(store.path()).expect("read");
            assert!(
                bytes.len() as u64 >= PREALLOCATE,
                "the log keeps zeros ahead"
            );
            assert!(bytes.ends_with(&[0; 16]));
            // A crash in the middle of the next line leaves part of it before the zeros.
            store.write_lines(b"commit 1001 52:54").expect("torn write");
        }
        let mut engine = Engine::new(EngineConfig::default());
        let store = LeaseStore::open(dir.path(), true, &mut engine, 1100).expect("reopen");
        let leases: Vec<_> = engine.leases().collect();
        assert_eq!(leases.len(), 1);
        assert_eq!((leases[0].ip, leases[0].expires), (ip, 1600));
        assert_eq!(leases[0].hostname.as_deref(), Some("node 1"));
        // Reopening compacted the log: the torn line is gone.
        let text = std::fs::read(store.path()).expect("read");
        let text = &text[..text.iter().position(|&b| b == 0).unwrap_or(text.len())];
        assert_eq!(
            text,
            b"commit 1100 52:54:00:00:00:01 10.0.0.5 500 node%201\n"
        );
    }
}
