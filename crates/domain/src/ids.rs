//! Identifiers: MAAS system ids and MAC addresses.

use std::fmt;
use std::str::FromStr;

use crate::values::ValueError;

/// The 24 characters MAAS writes system ids with, digit 0 first.
const SYSTEM_ID_ALPHABET: &[u8; 24] = b"34678abcdefghkmnpqrstwxy";
const SYSTEM_ID_LEN: usize = 6;
/// 24^5: the smallest six-digit number in base 24.
const SYSTEM_ID_MIN: u64 = 7_962_624;
/// 24^6: one past the largest six-digit number in base 24.
const SYSTEM_ID_END: u64 = 191_102_976;

/// A node's system id: six characters of MAAS's base-24 alphabet, e.g. `4y3h7n`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SystemId(String);

impl SystemId {
    /// Makes a system id from a random number, as MAAS does: an integer in
    /// [24^5, 24^6) written in base 24. The caller retries on collision.
    pub fn from_random(random: u64) -> SystemId {
        let mut n = SYSTEM_ID_MIN + random % (SYSTEM_ID_END - SYSTEM_ID_MIN);
        let mut digits = [b'3'; SYSTEM_ID_LEN];
        for slot in digits.iter_mut().rev() {
            // `n % 24` is below 24, so the index is in range.
            *slot = SYSTEM_ID_ALPHABET[(n % 24) as usize];
            n /= 24;
        }
        SystemId(digits.iter().map(|&b| b as char).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl FromStr for SystemId {
    type Err = ValueError;

    /// Accepts ids of MAAS's shape. Ids are opaque to clients, so any short
    /// run of lower-case letters and digits is accepted, not only the
    /// alphabet above (MAAS itself accepts ids made by older versions).
    fn from_str(text: &str) -> Result<SystemId, ValueError> {
        let ok = !text.is_empty()
            && text.len() <= 41
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(SystemId(text.to_owned()))
        } else {
            Err(ValueError::SystemId(text.to_owned()))
        }
    }
}

impl fmt::Display for SystemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SystemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SystemId({})", self.0)
    }
}

/// A 48-bit Ethernet MAC address, shown as `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddress([u8; 6]);

impl MacAddress {
    pub const fn new(octets: [u8; 6]) -> MacAddress {
        MacAddress(octets)
    }

    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl FromStr for MacAddress {
    type Err = ValueError;

    /// Accepts `aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff`, either case, and the
    /// twelve-digit form `aabbccddeeff`.
    fn from_str(text: &str) -> Result<MacAddress, ValueError> {
        let bad = || ValueError::MacAddress(text.to_owned());
        let trimmed = text.trim();
        let hex: String = if trimmed.len() == 12 {
            trimmed.to_owned()
        } else {
            let parts: Vec<&str> = trimmed.split([':', '-']).collect();
            if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
                return Err(bad());
            }
            parts.concat()
        };
        let mut octets = [0u8; 6];
        for (i, slot) in octets.iter_mut().enumerate() {
            let pair = hex.get(2 * i..2 * i + 2).ok_or_else(bad)?;
            *slot = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(MacAddress(octets))
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            o[0], o[1], o[2], o[3], o[4], o[5]
        )
    }
}

impl fmt::Debug for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddress({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_ids_have_six_alphabet_characters() {
        for random in [0, 1, 23, 24, u64::MAX, 183_140_351, 12_345_678_901] {
            let id = SystemId::from_random(random);
            assert_eq!(id.as_str().len(), 6, "{id}");
            assert!(id.as_str().bytes().all(|b| SYSTEM_ID_ALPHABET.contains(&b)));
        }
        // The smallest id is 24^5 written in base 24: a one then five zeros.
        assert_eq!(SystemId::from_random(0).as_str(), "433333");
        assert_eq!(
            SystemId::from_random(SYSTEM_ID_END - SYSTEM_ID_MIN - 1).as_str(),
            "yyyyyy"
        );
    }

    #[test]
    fn system_id_parse() {
        assert!("4y3h7n".parse::<SystemId>().is_ok());
        assert!("".parse::<SystemId>().is_err());
        assert!("ABC".parse::<SystemId>().is_err());
        assert!("a/b".parse::<SystemId>().is_err());
    }

    fn check_mac(input: &str, expected: Option<&str>) {
        let got = input.parse::<MacAddress>().ok().map(|m| m.to_string());
        assert_eq!(got.as_deref(), expected, "input {input:?}");
    }

    #[test]
    fn mac_forms() {
        check_mac("52:54:00:12:34:56", Some("52:54:00:12:34:56"));
        check_mac("52-54-00-AB-CD-EF", Some("52:54:00:ab:cd:ef"));
        check_mac("525400abcdef", Some("52:54:00:ab:cd:ef"));
        check_mac("52:54:00:12:34", None);
        check_mac("52:54:00:12:34:5g", None);
        check_mac("5:254:00:12:34:56", None);
        check_mac("", None);
        check_mac("ééééééééééé", None);
    }
}
