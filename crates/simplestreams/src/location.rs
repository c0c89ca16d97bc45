//! Where a boot source's documents are: its mirror root and index path.

use thiserror::Error;

use crate::types::{StreamPath, StreamPathError};

/// A boot source URL resolved into the mirror root (ending in `/`) and the index path
/// relative to it. `http://images.maas.io/ephemeral-v3/stable/` reads
/// `streams/v1/index.sjson`; a URL that already names a `streams/v1/*.json` or `*.sjson`
/// file reads that file, with the mirror root above `streams/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamLocation {
    pub mirror: String,
    pub index: StreamPath,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum LocationError {
    #[error("boot source URL {url:?} is not http:// or https://")]
    UnsupportedScheme { url: String },
    #[error("boot source URL {url:?} has no host")]
    NoHost { url: String },
    #[error("boot source URL {url:?} has a query or fragment")]
    QueryOrFragment { url: String },
    #[error("boot source URL {url:?} names a bad index path")]
    BadIndexPath {
        url: String,
        #[source]
        source: StreamPathError,
    },
}

pub const DEFAULT_INDEX: &str = "streams/v1/index.sjson";

impl StreamLocation {
    pub fn parse(url: &str) -> Result<StreamLocation, LocationError> {
        let url = url.trim();
        let Some((_, rest)) = url
            .split_once("://")
            .filter(|(scheme, _)| matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https"))
        else {
            return Err(LocationError::UnsupportedScheme {
                url: url.to_owned(),
            });
        };
        if rest.is_empty() || rest.starts_with('/') {
            return Err(LocationError::NoHost {
                url: url.to_owned(),
            });
        }
        if url.contains(['?', '#']) {
            return Err(LocationError::QueryOrFragment {
                url: url.to_owned(),
            });
        }
        if let Some(at) = url.rfind("/streams/v1/") {
            let file = &url[at + "/streams/v1/".len()..];
            if !file.contains('/') && (file.ends_with(".json") || file.ends_with(".sjson")) {
                let index = StreamPath::parse(&url[at + 1..]).map_err(|source| {
                    LocationError::BadIndexPath {
                        url: url.to_owned(),
                        source,
                    }
                })?;
                return Ok(StreamLocation {
                    mirror: url[..=at].to_owned(),
                    index,
                });
            }
        }
        let mirror = if url.ends_with('/') {
            url.to_owned()
        } else {
            format!("{url}/")
        };
        Ok(StreamLocation {
            mirror,
            // The constant is a valid path.
            index: StreamPath::parse(DEFAULT_INDEX).map_err(|source| {
                LocationError::BadIndexPath {
                    url: url.to_owned(),
                    source,
                }
            })?,
        })
    }

    /// The URL of a mirror-relative path.
    pub fn url_of(&self, path: &StreamPath) -> String {
        format!("{}{}", self.mirror, path.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, mirror: &str, index: &str) {
        let location = StreamLocation::parse(url).expect(url);
        assert_eq!(location.mirror, mirror, "{url}");
        assert_eq!(location.index.as_str(), index, "{url}");
    }

    #[test]
    fn locations() {
        check(
            "http://images.maas.io/ephemeral-v3/stable/",
            "http://images.maas.io/ephemeral-v3/stable/",
            "streams/v1/index.sjson",
        );
        check(
            "http://images.maas.io/ephemeral-v3/stable",
            "http://images.maas.io/ephemeral-v3/stable/",
            "streams/v1/index.sjson",
        );
        check(
            "http://127.0.0.1:8080/m/streams/v1/index.json",
            "http://127.0.0.1:8080/m/",
            "streams/v1/index.json",
        );
        check(
            "https://mirror/streams/v1/com.ubuntu.maas:stable:v3:download.sjson",
            "https://mirror/",
            "streams/v1/com.ubuntu.maas:stable:v3:download.sjson",
        );
        let location = StreamLocation::parse("http://m/x").expect("ok");
        assert_eq!(
            location.url_of(&StreamPath::parse("jammy/amd64/boot-kernel").expect("ok")),
            "http://m/x/jammy/amd64/boot-kernel"
        );
    }

    #[test]
    fn refused() {
        assert!(matches!(
            StreamLocation::parse("file:///srv/mirror"),
            Err(LocationError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            StreamLocation::parse("http:///x"),
            Err(LocationError::NoHost { .. })
        ));
        assert!(matches!(
            StreamLocation::parse("http://m/x?a=1"),
            Err(LocationError::QueryOrFragment { .. })
        ));
        assert!(matches!(
            StreamLocation::parse("gopher"),
            Err(LocationError::UnsupportedScheme { .. })
        ));
    }
}
