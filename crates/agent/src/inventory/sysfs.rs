//! Reading small text files under a root, tolerating absence.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A view of `/proc`, `/sys` and `/dev` under some root.
#[derive(Clone, Debug)]
pub struct Sysfs {
    root: PathBuf,
}

impl Sysfs {
    pub fn new(root: &Path) -> Self {
        Sysfs {
            root: root.to_path_buf(),
        }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative.trim_start_matches('/'))
    }

    pub fn exists(&self, relative: &str) -> bool {
        self.path(relative).exists() || self.path(relative).is_symlink()
    }

    /// The file's text, trimmed; `None` if absent, unreadable or empty.
    pub fn text(&self, relative: &str) -> Option<String> {
        let bytes = std::fs::read(self.path(relative)).ok()?;
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
        (!text.is_empty()).then(|| text.to_owned())
    }

    pub fn number(&self, relative: &str) -> Option<u64> {
        self.text(relative)?.parse().ok()
    }

    /// A signed number where sysfs uses -1 for "none" (`numa_node`).
    pub fn signed(&self, relative: &str) -> Option<i64> {
        self.text(relative)?.parse().ok()
    }

    /// A hexadecimal value like `0x8086` or `8000000`.
    pub fn hex(&self, relative: &str) -> Option<u64> {
        let text = self.text(relative)?;
        u64::from_str_radix(text.trim_start_matches("0x"), 16).ok()
    }

    /// The target of a symlink, even a dangling one.
    pub fn link(&self, relative: &str) -> Option<PathBuf> {
        std::fs::read_link(self.path(relative)).ok()
    }

    /// The real path of a file under the root, following every symlink.
    pub fn resolve(&self, relative: &str) -> Option<PathBuf> {
        std::fs::canonicalize(self.path(relative)).ok()
    }

    /// The last component of a symlink's target (`driver` -> `virtio_net`).
    pub fn link_name(&self, relative: &str) -> Option<String> {
        self.link(relative)?
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
    }

    /// Entry names of a directory, sorted; empty if absent.
    pub fn entries(&self, relative: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(relative))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort_by(|a, b| natural_cmp(a, b));
        names
    }

    /// `KEY=value` (or `key: value`) lines, quotes stripped from values.
    pub fn key_values(&self, relative: &str, separator: char) -> BTreeMap<String, String> {
        let Some(text) = self.text(relative) else {
            return BTreeMap::new();
        };
        text.lines()
            .filter_map(|line| line.split_once(separator))
            .map(|(key, value)| {
                (
                    key.trim().to_owned(),
                    value.trim().trim_matches(['"', '\'']).to_owned(),
                )
            })
            .collect()
    }
}

/// Orders `cpu2` before `cpu10` and `sda` before `sdb`.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn split(s: &str) -> (&str, Option<u64>) {
        let digits = s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (head, tail) = s.split_at(s.len() - digits);
        (head, tail.parse().ok())
    }
    let (head_a, number_a) = split(a);
    let (head_b, number_b) = split(b);
    head_a
        .cmp(head_b)
        .then(number_a.cmp(&number_b))
        .then(a.cmp(b))
}

/// Parses a kernel CPU list (`0-3,8,10-11`); malformed pieces are skipped.
pub fn parse_cpulist(text: &str) -> Vec<u64> {
    let mut cpus = Vec::new();
    for piece in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match piece.split_once('-') {
            Some((start, end)) => {
                if let (Ok(start), Ok(end)) = (start.parse::<u64>(), end.parse::<u64>())
                    && end >= start
                    && end - start < 65_536
                {
                    cpus.extend(start..=end);
                }
            }
            None => {
                if let Ok(cpu) = piece.parse() {
                    cpus.push(cpu);
                }
            }
        }
    }
    cpus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpulists() {
        assert_eq!(parse_cpulist("0-3,8,10-11\n"), [0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpulist("x,5-2,7"), [7]);
        assert!(parse_cpulist("").is_empty());
    }

    #[test]
    fn natural_order() {
        let mut names = vec!["cpu10", "cpu2", "sdb", "sda", "nvme0n1"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, ["cpu2", "cpu10", "nvme0n1", "sda", "sdb"]);
    }
}
