//! Validated value types and the parsers of MAAS's loose input conventions
//! (booleans as `true`/`1`/`yes`, sizes with `K`/`M`/`G`/`T` suffixes).

use std::fmt;
use std::str::FromStr;

/// A value that failed its checked constructor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("'{0}' is not a valid system_id")]
    SystemId(String),
    #[error("'{0}' is not a valid MAC address")]
    MacAddress(String),
    #[error("invalid hostname: {0}")]
    Hostname(String),
    #[error("'{0}' is not a valid boolean")]
    Bool(String),
    #[error("'{0}' is not a valid size")]
    Size(String),
    #[error("'{0}' is not a valid CIDR")]
    Cidr(String),
}

/// A host name of one or more DNS labels: letters, digits and hyphens, no
/// label longer than 63 characters or starting or ending with a hyphen.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hostname(String);

impl Hostname {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first label: what MAAS stores as `hostname` when given an FQDN.
    pub fn short(&self) -> &str {
        self.0.split('.').next().unwrap_or(&self.0)
    }
}

impl FromStr for Hostname {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Hostname, ValueError> {
        let err = |why: &str| ValueError::Hostname(format!("'{text}' {why}"));
        if text.is_empty() {
            return Err(err("is empty"));
        }
        if text.len() > 255 {
            return Err(err("is longer than 255 characters"));
        }
        for label in text.split('.') {
            if label.is_empty() {
                return Err(err("has an empty label"));
            }
            if label.len() > 63 {
                return Err(err("has a label longer than 63 characters"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(err("may contain only letters, digits and hyphens"));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(err("has a label that starts or ends with a hyphen"));
            }
        }
        Ok(Hostname(text.to_owned()))
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hostname({})", self.0)
    }
}

/// Parses a boolean as MAAS's forms accept it: `true`/`false`, `1`/`0`,
/// `yes`/`no`, `on`/`off`, `t`/`f`, `y`/`n`, in any case.
pub fn parse_bool(text: &str) -> Result<bool, ValueError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Ok(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Ok(false),
        _ => Err(ValueError::Bool(text.to_owned())),
    }
}

/// Parses a size: bytes, or a number with a `K`, `M`, `G` or `T` suffix
/// (powers of 1000, as MAAS's `human_readable_to_bytes` does).
/// Fractions are allowed with a suffix (`1.5G`).
pub fn parse_size(text: &str) -> Result<u64, ValueError> {
    let bad = || ValueError::Size(text.to_owned());
    let trimmed = text.trim();
    let (number, multiplier) = match trimmed.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let multiplier: u64 = match c.to_ascii_uppercase() {
                'K' => 1_000,
                'M' => 1_000_000,
                'G' => 1_000_000_000,
                'T' => 1_000_000_000_000,
                _ => return Err(bad()),
            };
            (&trimmed[..i], multiplier)
        }
        Some(_) => (trimmed, 1),
        None => return Err(bad()),
    };
    if let Ok(whole) = number.parse::<u64>() {
        return whole.checked_mul(multiplier).ok_or_else(bad);
    }
    let value: f64 = number.parse().map_err(|_| bad())?;
    let bytes = value * multiplier as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    // The range check above keeps the cast in bounds.
    Ok(bytes.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        for good in ["node2", "kind-dory", "a.b.c", "n0de-1.maas"] {
            assert!(good.parse::<Hostname>().is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", "a..b", "a_b", "a b", &"x".repeat(64)] {
            assert!(bad.parse::<Hostname>().is_err(), "{bad}");
        }
        assert_eq!("node2.maas".parse::<Hostname>().unwrap().short(), "node2");
    }

    #[test]
    fn booleans() {
        for t in ["true", "True", "1", "yes", "on", "T", "y"] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for f in ["false", "FALSE", "0", "no", "off", "f", "N"] {
            assert_eq!(parse_bool(f), Ok(false), "{f}");
        }
        assert!(parse_bool("maybe").is_err());
        assert!(parse_bool("").is_err());
    }

    fn check_size(input: &str, expected: Option<u64>) {
        assert_eq!(parse_size(input).ok(), expected, "input {input:?}");
    }

    #[test]
    fn sizes() {
        check_size("1024", Some(1024));
        check_size("4G", Some(4_000_000_000));
        check_size("1.5M", Some(1_500_000));
        check_size("2t", Some(2_000_000_000_000));
        check_size("10X", None);
        check_size("", None);
        check_size("-5", None);
        check_size("-5K", None);
        check_size("99999999999999999999T", None);
        check_size("G", None);
    }
}
