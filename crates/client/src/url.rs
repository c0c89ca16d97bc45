//! The little URL handling the client needs: maascli's API URL normalisation, the
//! scheme://host part of a profile URL, and `urljoin` for describe and upload URLs.

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("invalid URL {url:?}: it must start with http:// or https://")]
    UnsupportedScheme { url: String },
    #[error("invalid URL {url:?}: no host")]
    NoHost { url: String },
}

/// A URL cut into the parts `urllib.parse.urlsplit` gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitUrl<'a> {
    pub scheme: &'a str,
    pub netloc: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub fragment: &'a str,
}

impl<'a> SplitUrl<'a> {
    /// Splits an absolute http(s) URL.
    pub fn parse(url: &'a str) -> Result<Self, UrlError> {
        let (scheme, rest) = url
            .split_once("://")
            .filter(|(scheme, _)| {
                scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")
            })
            .ok_or_else(|| UrlError::UnsupportedScheme {
                url: url.to_owned(),
            })?;
        let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (netloc, path) = match rest.find('/') {
            Some(index) => rest.split_at(index),
            None => (rest, ""),
        };
        if netloc.is_empty() {
            return Err(UrlError::NoHost {
                url: url.to_owned(),
            });
        }
        Ok(Self {
            scheme,
            netloc,
            path,
            query,
            fragment,
        })
    }

    /// `scheme://netloc`, the part of a profile URL maascli puts in front of a handler's `path`.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.netloc)
    }

    /// Puts the URL back together, with another path.
    fn with_path(&self, path: &str) -> String {
        let mut url = format!("{}://{}{}", self.scheme, self.netloc, path);
        if !self.query.is_empty() {
            url.push('?');
            url.push_str(self.query);
        }
        if !self.fragment.is_empty() {
            url.push('#');
            url.push_str(self.fragment);
        }
        url
    }
}

/// maascli's `api_url`: ensure a trailing `/`, then append `api/2.0/` unless the path
/// already ends in `/api/<digits and dots>/`.
///
/// `http://h:5240/MAAS` becomes `http://h:5240/MAAS/api/2.0/`.
pub fn api_url(url: &str) -> Result<String, UrlError> {
    let split = SplitUrl::parse(url)?;
    let mut path = split.path.to_owned();
    if !path.ends_with('/') {
        path.push('/');
    }
    if !ends_with_api_version(&path) {
        path.push_str("api/2.0/");
    }
    Ok(split.with_path(&path))
}

/// Does the path (which ends in `/`) end with `/api/[0-9.]+/`?
fn ends_with_api_version(path: &str) -> bool {
    let Some(trimmed) = path.strip_suffix('/') else {
        return false;
    };
    let Some(index) = trimmed.rfind('/') else {
        return false;
    };
    let version = &trimmed[index + 1..];
    !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && trimmed[..index].ends_with("/api")
}

/// `urllib.parse.urljoin` for the references MAAS hands out: absolute URLs, network paths,
/// absolute paths and relative paths (with `.` and `..` segments resolved).
pub fn join(base: &str, reference: &str) -> Result<String, UrlError> {
    if SplitUrl::parse(reference).is_ok() {
        return Ok(reference.to_owned());
    }
    let split = SplitUrl::parse(base)?;
    if let Some(network_path) = reference.strip_prefix("//") {
        return Ok(format!("{}://{network_path}", split.scheme));
    }
    if reference.is_empty() {
        return Ok(base.to_owned());
    }
    let (reference_path, reference_rest) = match reference.find(['?', '#']) {
        Some(index) => reference.split_at(index),
        None => (reference, ""),
    };
    let merged = if reference_path.starts_with('/') {
        reference_path.to_owned()
    } else if reference_path.is_empty() {
        split.path.to_owned()
    } else {
        let directory = match split.path.rfind('/') {
            Some(index) => &split.path[..=index],
            None => "/",
        };
        format!("{directory}{reference_path}")
    };
    Ok(format!(
        "{}{}{}",
        split.origin(),
        remove_dot_segments(&merged),
        reference_rest
    ))
}

/// RFC 3986 section 5.2.4, for paths that start with `/`.
fn remove_dot_segments(path: &str) -> String {
    let mut output: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (index, segment) in segments.iter().enumerate() {
        match *segment {
            "." => trailing_slash = index == last,
            ".." => {
                output.pop();
                trailing_slash = index == last;
            }
            other => {
                output.push(other);
                trailing_slash = false;
            }
        }
    }
    let mut result = format!("/{}", output.join("/"));
    if trailing_slash && !result.ends_with('/') {
        result.push('/');
    }
    result
}

/// Percent-encodes bytes that may not appear in a URL path (space, quotes, non-ASCII, …),
/// leaving `/` and the other characters MAAS identifiers use.
pub fn escape_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        let allowed = byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'/'
                    | b':'
                    | b'@'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b'%'
            );
        if allowed {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_url_normalises_as_maascli_does() {
        fn check(input: &str, expected: &str) {
            assert_eq!(api_url(input).unwrap(), expected, "{input}");
        }
        check("http://h:5240/MAAS", "http://h:5240/MAAS/api/2.0/");
        check("http://h:5240/MAAS/", "http://h:5240/MAAS/api/2.0/");
        check("http://h:5240/MAAS/api/2.0", "http://h:5240/MAAS/api/2.0/");
        check("http://h:5240/MAAS/api/2.0/", "http://h:5240/MAAS/api/2.0/");
        check("http://h:5240/MAAS/api/1.0/", "http://h:5240/MAAS/api/1.0/");
        check("http://h:5240", "http://h:5240/api/2.0/");
        check("https://h/MAAS/api/", "https://h/MAAS/api/api/2.0/");
        check("http://h/x/myapi/2.0/", "http://h/x/myapi/2.0/api/2.0/");
    }

    #[test]
    fn api_url_refuses_what_it_cannot_reach() {
        assert_eq!(
            api_url("localhost:5240/MAAS"),
            Err(UrlError::UnsupportedScheme {
                url: "localhost:5240/MAAS".to_owned()
            })
        );
        assert!(matches!(
            api_url("http:///MAAS"),
            Err(UrlError::NoHost { .. })
        ));
    }

    #[test]
    fn origin_is_scheme_and_netloc() {
        let split = SplitUrl::parse("https://user@h:5240/MAAS/api/2.0/?x=1").unwrap();
        assert_eq!(split.origin(), "https://user@h:5240");
        assert_eq!(split.path, "/MAAS/api/2.0/");
        assert_eq!(split.query, "x=1");
    }

    #[test]
    fn join_resolves_like_urljoin() {
        fn check(base: &str, reference: &str, expected: &str) {
            assert_eq!(
                join(base, reference).unwrap(),
                expected,
                "{base} + {reference}"
            );
        }
        let api = "http://h:5240/MAAS/api/2.0/";
        check(api, "describe/", "http://h:5240/MAAS/api/2.0/describe/");
        check(api, "users/", "http://h:5240/MAAS/api/2.0/users/");
        check(
            "http://h:5240/MAAS/api/2.0/boot-resources/",
            "/MAAS/api/2.0/boot-resources/7/upload/18/",
            "http://h:5240/MAAS/api/2.0/boot-resources/7/upload/18/",
        );
        check(api, "http://other/x", "http://other/x");
        check(api, "//other/x", "http://other/x");
        check(
            api,
            "../../accounts/authenticate/",
            "http://h:5240/MAAS/accounts/authenticate/",
        );
        check("http://h/a/b", "c?x=1", "http://h/a/c?x=1");
        check(api, "", api);
    }

    #[test]
    fn escape_path_keeps_maas_identifiers() {
        assert_eq!(
            escape_path("/MAAS/api/2.0/subnets/10.0.0.0/24/"),
            "/MAAS/api/2.0/subnets/10.0.0.0/24/"
        );
        assert_eq!(escape_path("/tags/a b/"), "/tags/a%20b/");
        assert_eq!(escape_path("/zones/é/"), "/zones/%C3%A9/");
    }
}
