//! Disk erasure on release (§9.2): quick (signatures, partition tables and the first and
//! last 2 MiB of the disk and of every partition), full (zeros over everything), and
//! secure (NVMe format, ATA security erase, or secure discard) where the disk and the
//! environment's tools support it, falling back as MAAS's `wipe-disks` does.

use std::fs::OpenOptions;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::process::Command;

use crate::image::is_block_device;

/// The erase options of a release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EraseOptions {
    pub secure: bool,
    pub quick: bool,
}

/// How a disk ended up erased.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Quick,
    Full,
    SecureNvme,
    SecureAta,
    SecureDiscard,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Quick => "quick erase",
            Method::Full => "full erase (zeros)",
            Method::SecureNvme => "secure erase (nvme format)",
            Method::SecureAta => "secure erase (ATA security erase)",
            Method::SecureDiscard => "secure erase (blkdiscard --secure)",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error("cannot open {path}")]
    Open {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("writing zeros to {path} at byte {offset} failed")]
    Write {
        path: String,
        offset: u64,
        #[source]
        source: io::Error,
    },
}

/// A disk to erase: the device (or a file, in tests) and its kernel name for sysfs.
#[derive(Clone, Debug)]
pub struct Target {
    pub path: PathBuf,
    /// `sda`, `nvme0n1`; partitions are found under `<sys>/block/<name>`.
    pub name: String,
    pub sys_root: PathBuf,
}

/// Erases one disk; `report` receives one line per step (also the reasons a secure
/// erase was not possible).
pub fn erase(
    target: &Target,
    options: EraseOptions,
    report: &mut dyn FnMut(String),
) -> Result<Method, EraseError> {
    if options.secure {
        match secure_erase(target, report) {
            Ok(method) => return Ok(method),
            Err(reason) => {
                let fallback = if options.quick { "quick" } else { "full" };
                report(format!(
                    "{}: secure erase not supported: {reason}; falling back to {fallback} erase",
                    target.path.display()
                ));
            }
        }
    }
    if options.quick {
        quick_erase(target, report)?;
        Ok(Method::Quick)
    } else {
        full_erase(target, report)?;
        Ok(Method::Full)
    }
}

const WIPE: u64 = 2 * 1024 * 1024;

/// Zeroes the first and last 2 MiB of the disk and of each partition: partition tables
/// (MBR, both GPT headers), and the superblocks and signatures `wipefs` would remove.
pub fn quick_erase(target: &Target, report: &mut dyn FnMut(String)) -> Result<(), EraseError> {
    let path = target.path.display().to_string();
    let mut file = OpenOptions::new()
        .write(true)
        .open(&target.path)
        .map_err(|source| EraseError::Open {
            path: path.clone(),
            source,
        })?;
    let size = file
        .seek(SeekFrom::End(0))
        .map_err(|source| EraseError::Open {
            path: path.clone(),
            source,
        })?;
    let mut ranges = vec![(0, size)];
    let block = target.sys_root.join("sys/block").join(&target.name);
    if let Ok(entries) = std::fs::read_dir(&block) {
        for entry in entries.filter_map(Result::ok) {
            let read = |file: &str| {
                std::fs::read_to_string(entry.path().join(file))
                    .ok()
                    .and_then(|text| text.trim().parse::<u64>().ok())
            };
            if let (Some(start), Some(sectors)) = (read("start"), read("size")) {
                ranges.push((start * 512, sectors * 512));
            }
        }
    }
    for (start, length) in &ranges {
        let head = WIPE.min(*length);
        zero(&mut file, &path, *start, head)?;
        if *length > head {
            let tail = WIPE.min(*length - head);
            zero(&mut file, &path, start + length - tail, tail)?;
        }
    }
    file.sync_all().map_err(|source| EraseError::Write {
        path: path.clone(),
        offset: 0,
        source,
    })?;
    report(format!(
        "{path}: quick erase: zeroed the first and last 2 MiB of the disk and of {} partitions",
        ranges.len() - 1
    ));
    Ok(())
}

/// Writes zeros over the whole device in 1 MiB blocks, reporting every 25 %.
pub fn full_erase(target: &Target, report: &mut dyn FnMut(String)) -> Result<(), EraseError> {
    let path = target.path.display().to_string();
    let mut file = OpenOptions::new()
        .write(true)
        .open(&target.path)
        .map_err(|source| EraseError::Open {
            path: path.clone(),
            source,
        })?;
    let size = file
        .seek(SeekFrom::End(0))
        .map_err(|source| EraseError::Open {
            path: path.clone(),
            source,
        })?;
    report(format!("{path}: full erase of {size} bytes started"));
    let mut next_report = 25;
    let mut offset = 0;
    while offset < size {
        let length = (size - offset).min(1024 * 1024);
        zero(&mut file, &path, offset, length)?;
        offset += length;
        let percent = offset * 100 / size.max(1);
        if percent >= next_report && offset < size {
            report(format!("{path}: full erase {percent}% done"));
            next_report += 25;
        }
    }
    file.sync_all().map_err(|source| EraseError::Write {
        path: path.clone(),
        offset,
        source,
    })?;
    report(format!("{path}: full erase done"));
    Ok(())
}

fn zero(file: &mut std::fs::File, path: &str, offset: u64, length: u64) -> Result<(), EraseError> {
    let error = |source| EraseError::Write {
        path: path.to_owned(),
        offset,
        source,
    };
    file.seek(SeekFrom::Start(offset)).map_err(error)?;
    let zeros = vec![0u8; 1024 * 1024];
    let mut left = length;
    while left > 0 {
        let chunk = left.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..chunk]).map_err(error)?;
        left -= chunk as u64;
    }
    Ok(())
}

/// Runs a tool; `Err` carries a reason when it is missing or fails.
fn tool(program: &str, arguments: &[&str]) -> Result<String, String> {
    match Command::new(program).args(arguments).output() {
        Ok(output) if output.status.success() => {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        }
        Ok(output) => Err(format!(
            "`{program} {}` failed: {}",
            arguments.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(error) => Err(format!("{program} is not available: {error}")),
    }
}

fn secure_erase(target: &Target, report: &mut dyn FnMut(String)) -> Result<Method, String> {
    if !is_block_device(&target.path) {
        return Err("not a block device".into());
    }
    let device = target.path.to_string_lossy().into_owned();
    let sysfs = target.sys_root.join("sys/block").join(&target.name);
    if target.name.starts_with("nvme") {
        // `fna` bit 2 of Identify Controller: cryptographic erase supported.
        let identify = tool("nvme", &["id-ctrl", &device])?;
        let fna = identify
            .lines()
            .find(|line| line.trim_start().starts_with("fna"))
            .and_then(|line| line.split(':').nth(1))
            .map(str::trim)
            .and_then(|value| u64::from_str_radix(value.trim_start_matches("0x"), 16).ok())
            .unwrap_or(0);
        let setting = if fna & 0x4 != 0 { "2" } else { "1" };
        report(format!("{device}: nvme format -s {setting}"));
        tool("nvme", &["format", "-f", "-s", setting, &device])?;
        return Ok(Method::SecureNvme);
    }
    let is_ata = std::fs::canonicalize(sysfs.join("device"))
        .map(|path| path.to_string_lossy().contains("/ata"))
        .unwrap_or(false);
    if is_ata {
        let identify = tool("hdparm", &["-I", &device])?;
        let security: Vec<&str> = identify
            .split("Security:")
            .nth(1)
            .unwrap_or("")
            .lines()
            .take(10)
            .collect();
        let supported = security.iter().any(|l| l.trim() == "supported");
        let frozen = security
            .iter()
            .any(|l| l.trim() == "frozen" && !l.contains("not"));
        if !supported {
            return Err("the drive has no ATA security feature set".into());
        }
        if frozen {
            return Err("the drive's security is frozen".into());
        }
        report(format!("{device}: ATA security erase"));
        tool(
            "hdparm",
            &["--user-master", "u", "--security-set-pass", "maas", &device],
        )?;
        if let Err(reason) = tool(
            "hdparm",
            &["--user-master", "u", "--security-erase", "maas", &device],
        ) {
            let _ = tool(
                "hdparm",
                &["--user-master", "u", "--security-disable", "maas", &device],
            );
            return Err(reason);
        }
        return Ok(Method::SecureAta);
    }
    let discard = std::fs::read_to_string(sysfs.join("queue/discard_max_bytes"))
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if discard == 0 {
        return Err(
            "the device supports neither NVMe format, ATA security erase nor discard".into(),
        );
    }
    report(format!("{device}: blkdiscard --secure"));
    tool("blkdiscard", &["--secure", &device])?;
    Ok(Method::SecureDiscard)
}
