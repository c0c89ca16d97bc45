//! OAuth 1.0 PLAINTEXT signing as MAAS nodes do it (§2.2).
//!
//! The consumer secret is empty, so the signature is `&<token secret>`. Bodies are never
//! signed. Kept here rather than taken from `maas-client` so the static agent binary does
//! not carry that crate's HTTP stack.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A node's metadata token: consumer key, token key, token secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub consumer_key: String,
    pub token_key: String,
    pub token_secret: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("consumer_key", &self.consumer_key)
            .field("token_key", &self.token_key)
            .field("token_secret", &"****")
            .finish()
    }
}

impl Credentials {
    /// The `Authorization` header value for a given nonce and timestamp.
    pub fn authorization(&self, nonce: &str, timestamp: i64) -> String {
        let signature = format!("&{}", percent_encode(&self.token_secret));
        let timestamp = timestamp.to_string();
        let fields = [
            ("oauth_version", "1.0"),
            ("oauth_signature_method", "PLAINTEXT"),
            ("oauth_consumer_key", self.consumer_key.as_str()),
            ("oauth_token", self.token_key.as_str()),
            ("oauth_signature", signature.as_str()),
            ("oauth_nonce", nonce),
            ("oauth_timestamp", timestamp.as_str()),
        ];
        let joined: Vec<String> = fields
            .iter()
            .map(|(name, value)| format!("{name}=\"{}\"", percent_encode(value)))
            .collect();
        format!("OAuth {}", joined.join(", "))
    }

    /// Signs with a fresh nonce at `unix_now + clock_offset` seconds.
    pub fn sign(&self, clock_offset: i64) -> String {
        let timestamp = unix_now().saturating_add(clock_offset);
        self.authorization(&uuid4(), timestamp)
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Seconds since the Unix epoch; 0 if the clock is before 1970.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A random value from the standard library's randomly keyed hasher: nonces and
/// multipart boundaries need uniqueness, not secrecy.
pub fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or(0);
    RandomState::new().hash_one((count, nanos, std::process::id()))
}

/// A version-4 UUID string, as the MAAS script runner's nonces are.
pub fn uuid4() -> String {
    let high = random_u64();
    let low = random_u64();
    let time_high = ((high & 0x0fff) as u16) | 0x4000;
    let clock_seq = (((low >> 48) as u16) & 0x3fff) | 0x8000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        time_high,
        clock_seq,
        low & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_for_fixed_nonce_and_time() {
        let credentials = Credentials {
            consumer_key: "ck".into(),
            token_key: "tk".into(),
            token_secret: "s&cret".into(),
        };
        assert_eq!(
            credentials.authorization("n-1", 1_700_000_000),
            "OAuth oauth_version=\"1.0\", oauth_signature_method=\"PLAINTEXT\", \
             oauth_consumer_key=\"ck\", oauth_token=\"tk\", oauth_signature=\"%26s%2526cret\", \
             oauth_nonce=\"n-1\", oauth_timestamp=\"1700000000\""
        );
    }

    #[test]
    fn uuid_shape() {
        let id = uuid4();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert_ne!(uuid4(), uuid4());
    }

    #[test]
    fn debug_hides_secret() {
        let credentials = Credentials {
            consumer_key: "ck".into(),
            token_key: "tk".into(),
            token_secret: "topsecret".into(),
        };
        assert!(!format!("{credentials:?}").contains("topsecret"));
    }
}
