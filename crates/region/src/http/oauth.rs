//! OAuth 1.0 PLAINTEXT, as MAAS checks it (api.md §2.3): parameters from the
//! `Authorization` header, the query string or a POST form; an empty consumer
//! secret, so the signature is `&<token secret>`; timestamps at most 300 s
//! old; each nonce used once.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use percent_encoding::percent_decode_str;

use super::params::Params;

/// The OAuth parameters of one request, once all six are present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthParams {
    pub consumer_key: String,
    pub token: String,
    pub signature: String,
    pub signature_method: String,
    pub timestamp: String,
    pub nonce: String,
    pub version: Option<String>,
}

const REQUIRED: [&str; 6] = [
    "oauth_consumer_key",
    "oauth_token",
    "oauth_signature",
    "oauth_signature_method",
    "oauth_timestamp",
    "oauth_nonce",
];

/// Splits an `Authorization: OAuth …` header into decoded key/value pairs.
/// The `realm` parameter is skipped, as MAAS skips it.
pub fn header_params(header: &str) -> Vec<(String, String)> {
    let Some(rest) = header
        .strip_prefix("OAuth ")
        .or_else(|| header.strip_prefix("OAuth\t"))
    else {
        return Vec::new();
    };
    rest.split(',')
        .filter_map(|piece| {
            let (key, value) = piece.trim().split_once('=')?;
            if key.trim() == "realm" {
                return None;
            }
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            let value = percent_decode_str(value).decode_utf8_lossy().into_owned();
            Some((key.trim().to_owned(), value))
        })
        .collect()
}

/// Gathers OAuth parameters from the header and the request parameters.
/// `None` means this is not an OAuth attempt (some parameter is missing),
/// so the request is anonymous.
pub fn gather(header: Option<&str>, params: &Params) -> Option<OAuthParams> {
    let from_header = header.map(header_params).unwrap_or_default();
    let lookup = |name: &str| -> Option<String> {
        from_header
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| params.get(name).map(str::to_owned))
    };
    if REQUIRED.iter().any(|name| lookup(name).is_none()) {
        return None;
    }
    Some(OAuthParams {
        consumer_key: lookup("oauth_consumer_key")?,
        token: lookup("oauth_token")?,
        signature: lookup("oauth_signature")?,
        signature_method: lookup("oauth_signature_method")?,
        timestamp: lookup("oauth_timestamp")?,
        nonce: lookup("oauth_nonce")?,
        version: lookup("oauth_version"),
    })
}

/// Why a request's OAuth parameters were refused, before the token lookup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    #[error("OAuth version {0} is not supported")]
    Version(String),
    #[error("Invalid signature method: {0}")]
    SignatureMethod(String),
    #[error("Invalid timestamp: {0}")]
    BadTimestamp(String),
    #[error(
        "Expired timestamp: given {given} and now {now} has a greater difference than threshold 300"
    )]
    Expired { given: i64, now: i64 },
    #[error("Nonce already used: {0}")]
    NonceReused(String),
    #[error("Invalid signature.")]
    Signature,
}

/// Checks everything that does not need the database: version, method and timestamp.
pub fn check_request(oauth: &OAuthParams, now_secs: i64) -> Result<(), OAuthError> {
    if let Some(version) = &oauth.version
        && version != "1.0"
    {
        return Err(OAuthError::Version(version.clone()));
    }
    if oauth.signature_method != "PLAINTEXT" {
        return Err(OAuthError::SignatureMethod(oauth.signature_method.clone()));
    }
    let given: i64 = oauth
        .timestamp
        .trim()
        .parse()
        .map_err(|_| OAuthError::BadTimestamp(oauth.timestamp.clone()))?;
    // Timestamps from the future are accepted; only stale ones are refused.
    if now_secs - given > NONCE_WINDOW_SECS {
        return Err(OAuthError::Expired {
            given,
            now: now_secs,
        });
    }
    Ok(())
}

/// The PLAINTEXT check against the token's secret (the consumer secret is empty).
pub fn check_signature(oauth: &OAuthParams, token_secret: &str) -> Result<(), OAuthError> {
    let expected = format!(
        "&{}",
        percent_encoding::utf8_percent_encode(token_secret, OAUTH_ENCODE_SET)
    );
    // The header value was decoded once already; a client that encoded the
    // secret itself leaves it encoded, so compare both forms.
    let decoded_once = percent_decode_str(&oauth.signature).decode_utf8_lossy();
    if constant_time_eq(oauth.signature.as_bytes(), expected.as_bytes())
        || constant_time_eq(
            decoded_once.as_bytes(),
            format!("&{token_secret}").as_bytes(),
        )
        || constant_time_eq(
            oauth.signature.as_bytes(),
            format!("&{token_secret}").as_bytes(),
        )
    {
        Ok(())
    } else {
        Err(OAuthError::Signature)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// RFC 5849 §3.6: everything but unreserved characters is percent-encoded.
const OAUTH_ENCODE_SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub const NONCE_WINDOW_SECS: i64 = 300;

/// Remembers (consumer, token, nonce) triples for the timestamp window.
///
/// Entries older than the window are dropped as new ones arrive; memory is
/// bounded by `capacity`: when full, the oldest entries go first (a nonce
/// that old could only be replayed with a timestamp the window refuses
/// anyway, unless the client clock runs ahead).
pub struct NonceCache {
    inner: Mutex<NonceInner>,
    capacity: usize,
}

struct NonceInner {
    seen: HashMap<(String, String, String), i64>,
    order: VecDeque<((String, String, String), i64)>,
}

impl NonceCache {
    pub fn new(capacity: usize) -> NonceCache {
        NonceCache {
            inner: Mutex::new(NonceInner {
                seen: HashMap::new(),
                order: VecDeque::new(),
            }),
            capacity,
        }
    }

    /// Records the triple; false if it was already seen within the window.
    pub fn first_use(&self, oauth: &OAuthParams, now_secs: i64) -> bool {
        let key = (
            oauth.consumer_key.clone(),
            oauth.token.clone(),
            oauth.nonce.clone(),
        );
        // A poisoned lock only means another request panicked mid-insert;
        // the map is still usable.
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((old_key, at)) = inner.order.front().cloned() {
            if now_secs - at > NONCE_WINDOW_SECS || inner.order.len() >= self.capacity {
                inner.order.pop_front();
                if inner.seen.get(&old_key) == Some(&at) {
                    inner.seen.remove(&old_key);
                }
            } else {
                break;
            }
        }
        if inner.seen.contains_key(&key) {
            return false;
        }
        inner.seen.insert(key.clone(), now_secs);
        inner.order.push_back((key, now_secs));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAASCLI: &str = r#"OAuth oauth_nonce="71783582937401295941710000000", oauth_timestamp="1710000000", oauth_version="1.0", oauth_signature_method="PLAINTEXT", oauth_consumer_key="dFTQGcQLNvhJVc2H69", oauth_token="K6bhJZXCFKWFTfQTk5", oauth_signature="%26entQ246T7KyyfkwMSWRLuSwycruNDfDG""#;

    #[test]
    fn parses_maascli_header() {
        let oauth = gather(Some(MAASCLI), &Params::new()).unwrap();
        assert_eq!(oauth.consumer_key, "dFTQGcQLNvhJVc2H69");
        assert_eq!(oauth.token, "K6bhJZXCFKWFTfQTk5");
        assert_eq!(oauth.signature, "&entQ246T7KyyfkwMSWRLuSwycruNDfDG");
        assert_eq!(oauth.version.as_deref(), Some("1.0"));
        assert!(check_signature(&oauth, "entQ246T7KyyfkwMSWRLuSwycruNDfDG").is_ok());
        assert_eq!(check_signature(&oauth, "other"), Err(OAuthError::Signature));
    }

    #[test]
    fn realm_is_optional_and_skipped() {
        let with_realm = MAASCLI.replacen("OAuth ", "OAuth realm=\"OAuth\", ", 1);
        // A value that merely mentions realm is kept.
        let nonce = MAASCLI.replace("71783582937401295941710000000", "realm-1");
        assert_eq!(
            gather(Some(&nonce), &Params::new()).unwrap().nonce,
            "realm-1"
        );
        assert_eq!(
            gather(Some(&with_realm), &Params::new()),
            gather(Some(MAASCLI), &Params::new())
        );
    }

    #[test]
    fn incomplete_parameters_mean_anonymous() {
        let header = r#"OAuth oauth_consumer_key="a", oauth_token="b""#;
        assert_eq!(gather(Some(header), &Params::new()), None);
        assert_eq!(gather(Some("Basic abc"), &Params::new()), None);
        assert_eq!(gather(None, &Params::new()), None);
    }

    #[test]
    fn parameters_from_the_query_string() {
        let mut params = Params::new();
        for (k, v) in [
            ("oauth_consumer_key", "ck"),
            ("oauth_token", "tk"),
            ("oauth_signature", "&ts"),
            ("oauth_signature_method", "PLAINTEXT"),
            ("oauth_timestamp", "100"),
            ("oauth_nonce", "1"),
        ] {
            params.push(k, v);
        }
        let oauth = gather(None, &params).unwrap();
        assert!(check_signature(&oauth, "ts").is_ok());
    }

    #[test]
    fn timestamps_methods_and_versions() {
        let mut oauth = gather(Some(MAASCLI), &Params::new()).unwrap();
        assert_eq!(check_request(&oauth, 1_710_000_300), Ok(()));
        assert!(matches!(
            check_request(&oauth, 1_710_000_301),
            Err(OAuthError::Expired { .. })
        ));
        // The future is fine.
        assert_eq!(check_request(&oauth, 1_700_000_000), Ok(()));
        oauth.timestamp = "soon".into();
        assert!(matches!(
            check_request(&oauth, 0),
            Err(OAuthError::BadTimestamp(_))
        ));
        oauth.timestamp = "1".into();
        oauth.signature_method = "HMAC-SHA1".into();
        assert!(matches!(
            check_request(&oauth, 1),
            Err(OAuthError::SignatureMethod(_))
        ));
        oauth.signature_method = "PLAINTEXT".into();
        oauth.version = Some("2.0".into());
        assert!(matches!(
            check_request(&oauth, 1),
            Err(OAuthError::Version(_))
        ));
    }

    #[test]
    fn nonces_are_single_use_within_the_window() {
        let cache = NonceCache::new(1000);
        let oauth = gather(Some(MAASCLI), &Params::new()).unwrap();
        assert!(cache.first_use(&oauth, 1000));
        assert!(!cache.first_use(&oauth, 1100));
        // After the window the old entry is forgotten.
        assert!(cache.first_use(&oauth, 1000 + NONCE_WINDOW_SECS + 1));
        let small = NonceCache::new(2);
        for nonce in ["a", "b", "c"] {
            let o = OAuthParams {
                nonce: nonce.into(),
                ..oauth.clone()
            };
            assert!(small.first_use(&o, 5));
        }
    }

    proptest::proptest! {
        #[test]
        fn header_parsing_never_panics(header in "\\PC{0,200}") {
            let _ = gather(Some(&header), &Params::new());
            let _ = header_params(&format!("OAuth {header}"));
        }

        #[test]
        fn signed_headers_verify(secret in "[A-Za-z0-9]{1,40}", nonce in "[0-9]{1,30}") {
            let header = format!(
                "OAuth oauth_nonce=\"{nonce}\", oauth_timestamp=\"10\", oauth_version=\"1.0\", \
                 oauth_signature_method=\"PLAINTEXT\", oauth_consumer_key=\"ck\", oauth_token=\"tk\", \
                 oauth_signature=\"%26{secret}\""
            );
            let oauth = gather(Some(&header), &Params::new()).unwrap();
            proptest::prop_assert!(check_signature(&oauth, &secret).is_ok());
            let wrong = format!("{}x", secret);
            proptest::prop_assert!(check_signature(&oauth, &wrong).is_err());
        }
    }
}
