//! The shared-secret handshake: each side proves it knows the secret with an HMAC-SHA256
//! over both sides' fresh nonces, so neither a replayed nor a reflected proof passes.
//! Region and rack proofs carry different labels, so one cannot stand in for the other.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

/// Nonce length in bytes.
pub const NONCE_LEN: usize = 16;

const REGION_LABEL: &[u8] = b"maas-rack-link region\0";
const RACK_LABEL: &[u8] = b"maas-rack-link rack\0";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("the shared secret is not hexadecimal")]
    NotHex,
    #[error("the shared secret has {len} bytes; at least 16 are needed")]
    TooShort { len: usize },
}

/// The region's shared secret (MAAS keeps it hex-encoded in `<data dir>/secret`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn from_hex(text: &str) -> Result<Secret, SecretError> {
        let bytes = hex::decode(text.trim()).map_err(|_| SecretError::NotHex)?;
        if bytes.len() < 16 {
            return Err(SecretError::TooShort { len: bytes.len() });
        }
        Ok(Secret(bytes))
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Secret {
        Secret(bytes.to_vec())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    fn mac(&self, label: &[u8], first: &[u8], second: &[u8]) -> HmacSha256 {
        // HMAC takes a key of any length.
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(label);
        mac.update(first);
        mac.update(second);
        mac
    }

    /// What the region sends to prove itself.
    pub fn region_proof(&self, rack_nonce: &[u8], region_nonce: &[u8]) -> String {
        hex::encode(
            self.mac(REGION_LABEL, rack_nonce, region_nonce)
                .finalize()
                .into_bytes(),
        )
    }

    /// What the rack sends to prove itself.
    pub fn rack_proof(&self, rack_nonce: &[u8], region_nonce: &[u8]) -> String {
        hex::encode(
            self.mac(RACK_LABEL, region_nonce, rack_nonce)
                .finalize()
                .into_bytes(),
        )
    }

    /// Checks a region proof in constant time.
    pub fn check_region_proof(&self, rack_nonce: &[u8], region_nonce: &[u8], proof: &str) -> bool {
        check(self.mac(REGION_LABEL, rack_nonce, region_nonce), proof)
    }

    /// Checks a rack proof in constant time.
    pub fn check_rack_proof(&self, rack_nonce: &[u8], region_nonce: &[u8], proof: &str) -> bool {
        check(self.mac(RACK_LABEL, region_nonce, rack_nonce), proof)
    }
}

fn check(mac: HmacSha256, proof: &str) -> bool {
    match hex::decode(proof) {
        Ok(bytes) => mac.verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

/// Decodes a peer's nonce; `None` unless it is exactly [`NONCE_LEN`] bytes of hex.
pub fn parse_nonce(text: &str) -> Option<Vec<u8>> {
    hex::decode(text).ok().filter(|n| n.len() == NONCE_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::from_hex("00112233445566778899aabbccddeeff").unwrap()
    }

    #[test]
    fn proofs_check_and_differ_by_role() {
        let s = secret();
        let (rack, region) = ([1u8; 16], [2u8; 16]);
        let region_proof = s.region_proof(&rack, &region);
        let rack_proof = s.rack_proof(&rack, &region);
        assert!(s.check_region_proof(&rack, &region, &region_proof));
        assert!(s.check_rack_proof(&rack, &region, &rack_proof));
        // A region proof reflected back as the rack's is refused.
        assert!(!s.check_rack_proof(&rack, &region, &region_proof));
        // Other nonces, another secret or garbage fail.
        assert!(!s.check_region_proof(&region, &rack, &region_proof));
        let other = Secret::from_hex("ffeeddccbbaa99887766554433221100").unwrap();
        assert!(!other.check_region_proof(&rack, &region, &region_proof));
        assert!(!s.check_region_proof(&rack, &region, "zz"));
        assert!(!s.check_region_proof(&rack, &region, ""));
    }

    #[test]
    fn secrets_parse_and_redact() {
        assert_eq!(Secret::from_hex("xyz"), Err(SecretError::NotHex));
        assert_eq!(
            Secret::from_hex("0011"),
            Err(SecretError::TooShort { len: 2 })
        );
        let s = Secret::from_hex(" 00112233445566778899aabbccddeeff\n").unwrap();
        assert_eq!(s.to_hex(), "00112233445566778899aabbccddeeff");
        assert_eq!(format!("{s:?}"), "Secret(****)");
        assert_eq!(parse_nonce(&"ab".repeat(16)).map(|n| n.len()), Some(16));
        assert_eq!(parse_nonce("abab"), None);
    }
}
