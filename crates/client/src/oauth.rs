//! OAuth 1.0 PLAINTEXT signing as MAAS clients do it.
//!
//! A MAAS API key is `consumer_key:token_key:token_secret`.
//! The consumer secret is always empty, so the PLAINTEXT signature is `&<pct(token_secret)>`.
//! The body is never signed, so signing needs neither the URL nor the body.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why an API key string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// The key did not have exactly three `:`-separated parts.
    #[error("malformed API key: expected 3 colon-separated parts, got {parts}")]
    WrongPartCount { parts: usize },
}

/// A MAAS API key: one OAuth consumer plus one access token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    consumer_key: String,
    token_key: String,
    token_secret: String,
}

impl Credentials {
    pub fn new(
        consumer_key: impl Into<String>,
        token_key: impl Into<String>,
        token_secret: impl Into<String>,
    ) -> Self {
        Self {
            consumer_key: consumer_key.into(),
            token_key: token_key.into(),
            token_secret: token_secret.into(),
        }
    }

    /// Parses `ck:tk:ts`. Exactly three parts, as both MAAS clients require; parts may be empty.
    pub fn parse(key: &str) -> Result<Self, CredentialsError> {
        let parts: Vec<&str> = key.split(':').collect();
        match parts.as_slice() {
            [consumer_key, token_key, token_secret] => {
                Ok(Self::new(*consumer_key, *token_key, *token_secret))
            }
            _ => Err(CredentialsError::WrongPartCount { parts: parts.len() }),
        }
    }

    pub fn consumer_key(&self) -> &str {
        &self.consumer_key
    }

    pub fn token_key(&self) -> &str {
        &self.token_key
    }

    pub fn token_secret(&self) -> &str {
        &self.token_secret
    }

    /// The key in its `ck:tk:ts` text form, secret included (for the profile file and `maas list`).
    pub fn to_key_string(&self) -> String {
        format!(
            "{}:{}:{}",
            self.consumer_key, self.token_key, self.token_secret
        )
    }

    /// The `Authorization` header value maascli sends (no realm), for a given nonce and timestamp.
    pub fn authorization_header(&self, nonce: &str, timestamp: u64) -> String {
        // The signature is `pct(consumer_secret) & pct(token_secret)` with an empty consumer
        // secret; like every other value it is percent-encoded once more in the header.
        let signature = format!("&{}", percent_encode(&self.token_secret));
        let timestamp = timestamp.to_string();
        let fields = [
            ("oauth_nonce", nonce),
            ("oauth_timestamp", timestamp.as_str()),
            ("oauth_version", "1.0"),
            ("oauth_signature_method", "PLAINTEXT"),
            ("oauth_consumer_key", self.consumer_key.as_str()),
            ("oauth_token", self.token_key.as_str()),
            ("oauth_signature", signature.as_str()),
        ];
        let joined: Vec<String> = fields
            .iter()
            .map(|(name, value)| format!("{name}=\"{}\"", percent_encode(value)))
            .collect();
        format!("OAuth {}", joined.join(", "))
    }

    /// Signs with a fresh nonce and the current time.
    pub fn sign_now(&self) -> String {
        let timestamp = unix_time_now();
        self.authorization_header(&nonce_for(timestamp), timestamp)
    }
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

/// Percent-encodes everything but RFC 3986 unreserved characters, as oauthlib's `escape` does.
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
pub fn unix_time_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// A nonce shaped like oauthlib's: a random 64-bit decimal followed by the timestamp.
pub fn nonce_for(timestamp: u64) -> String {
    format!("{}{timestamp}", random_u64())
}

/// A random 64-bit value from the standard library's randomly keyed hasher.
///
/// Nonces and multipart boundaries need uniqueness, not secrecy, so this avoids a
/// dependency on a random number crate.
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or(0);
    RandomState::new().hash_one((count, nanos, std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_matches_maascli_for_fixed_nonce_and_time() {
        let credentials = Credentials::parse(
            "dFTQGcQLNvhJVc2H69:K6bhJZXCFKWFTfQTk5:entQ246T7KyyfkwMSWRLuSwycruNDfDG",
        )
        .unwrap();
        let header = credentials.authorization_header("71783582937401295941710000000", 1710000000);
        assert_eq!(
            header,
            "OAuth oauth_nonce=\"71783582937401295941710000000\", oauth_timestamp=\"1710000000\", \
             oauth_version=\"1.0\", oauth_signature_method=\"PLAINTEXT\", \
             oauth_consumer_key=\"dFTQGcQLNvhJVc2H69\", oauth_token=\"K6bhJZXCFKWFTfQTk5\", \
             oauth_signature=\"%26entQ246T7KyyfkwMSWRLuSwycruNDfDG\""
        );
    }

    #[test]
    fn special_characters_are_encoded_twice_in_the_signature() {
        // The signature value is `&` + pct(secret), then percent-encoded again as a header value.
        let credentials = Credentials::new("c k", "t/k", "s&c");
        let header = credentials.authorization_header("1", 2);
        assert!(header.contains("oauth_consumer_key=\"c%20k\""), "{header}");
        assert!(header.contains("oauth_token=\"t%2Fk\""), "{header}");
        assert!(
            header.contains("oauth_signature=\"%26s%2526c\""),
            "{header}"
        );
    }

    #[test]
    fn parse_requires_exactly_three_parts() {
        fn check(key: &str, expected: Result<(&str, &str, &str), usize>) {
            let got = Credentials::parse(key)
                .map(|c| {
                    (
                        c.consumer_key().to_owned(),
                        c.token_key().to_owned(),
                        c.token_secret().to_owned(),
                    )
                })
                .map_err(|CredentialsError::WrongPartCount { parts }| parts);
            let expected = expected.map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()));
            assert_eq!(got, expected, "{key}");
        }
        check("a:b:c", Ok(("a", "b", "c")));
        check("a::c", Ok(("a", "", "c")));
        check("a:b", Err(2));
        check("a:b:c:d", Err(4));
        check("", Err(1));
    }

    #[test]
    fn key_string_round_trips_and_debug_hides_the_secret() {
        let credentials = Credentials::parse("ck:tk:ts").unwrap();
        assert_eq!(credentials.to_key_string(), "ck:tk:ts");
        let debug = format!("{credentials:?}");
        assert!(!debug.contains("ts\""), "{debug}");
        assert!(debug.contains("****"), "{debug}");
    }

    #[test]
    fn nonces_differ_and_end_with_the_timestamp() {
        let first = nonce_for(1710000000);
        let second = nonce_for(1710000000);
        assert_ne!(first, second);
        assert!(first.ends_with("1710000000"));
        assert!(first.bytes().all(|b| b.is_ascii_digit()));
    }
}
