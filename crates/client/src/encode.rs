//! Request encoding as maascli does it: query strings with repeated keys and
//! `multipart/form-data` bodies laid out byte for byte like Python's `email` package.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// One value of a request parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A `key=value` argument: a UTF-8 text part.
    Text(String),
    /// A `key@=path` argument: a file part named after the key, with the file's bytes.
    File {
        contents: Vec<u8>,
        /// The local file name, used only to guess the part's `Content-Type`.
        local_name: Option<String>,
    },
}

impl Value {
    /// The bytes that travel in a query string.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Value::Text(text) => text.as_bytes(),
            Value::File { contents, .. } => contents,
        }
    }
}

/// Python's `urllib.parse.quote_plus`: unreserved characters stay, space becomes `+`.
pub fn quote_plus(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for &byte in value {
        match byte {
            b' ' => out.push('+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(char::from(byte))
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A query string from pairs in order; a repeated name gives a repeated key.
pub fn urlencode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> String {
    pairs
        .into_iter()
        .map(|(name, value)| format!("{}={}", quote_plus(name.as_bytes()), quote_plus(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// An encoded multipart body and the request headers that go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multipart {
    /// `multipart/form-data; boundary="…"`, quoted as Python writes it.
    pub content_type: String,
    pub body: Vec<u8>,
}

/// A boundary as Python's `email` package makes one: 15 `=`, 19 digits, `==`.
pub fn new_boundary() -> String {
    // Python draws from range(sys.maxsize) and pads to the width of sys.maxsize.
    let token = crate::oauth::random_u64() % (i64::MAX as u64);
    format!("==============={token:019}==")
}

/// Encodes fields in the given order, with a fresh boundary.
pub fn multipart(fields: &[(String, Value)]) -> Multipart {
    multipart_with_boundary(fields, &new_boundary())
}

/// Encodes fields in the given order with the given boundary.
///
/// Every part is base64 with `Content-Transfer-Encoding`, `Content-Disposition`,
/// `MIME-Version` and `Content-Type` headers in that order, lines end in CRLF, and
/// the body ends right after the closing boundary, as maascli sends it.
pub fn multipart_with_boundary(fields: &[(String, Value)], boundary: &str) -> Multipart {
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str("--");
        body.push_str(boundary);
        body.push_str("\r\n");
        body.push_str("Content-Transfer-Encoding: base64\r\n");
        let (disposition, content_type, contents) = match value {
            Value::Text(text) => (
                content_disposition(&[("name", name)]),
                "text/plain; charset=\"utf-8\"".to_owned(),
                text.as_bytes(),
            ),
            Value::File {
                contents,
                local_name,
            } => (
                content_disposition(&[("name", name), ("filename", name)]),
                guess_content_type(&[Some(name.as_str()), local_name.as_deref()]).to_owned(),
                contents.as_slice(),
            ),
        };
        body.push_str(&disposition);
        body.push_str("\r\n");
        body.push_str("MIME-Version: 1.0\r\n");
        body.push_str("Content-Type: ");
        body.push_str(&content_type);
        body.push_str("\r\n\r\n");
        // base64.encodebytes: 76-character lines, each one ended.
        for chunk in contents.chunks(57) {
            body.push_str(&STANDARD.encode(chunk));
            body.push_str("\r\n");
        }
        body.push_str("\r\n");
    }
    body.push_str("--");
    body.push_str(boundary);
    body.push_str("--");
    Multipart {
        content_type: format!("multipart/form-data; boundary=\"{boundary}\""),
        body: body.into_bytes(),
    }
}

/// The `Content-Disposition` header line, folded at 78 columns the way Python folds it.
fn content_disposition(params: &[(&str, &str)]) -> String {
    const MAX_LINE: usize = 78;
    let mut line = "Content-Disposition: form-data".to_owned();
    let mut lines = Vec::new();
    for (name, value) in params {
        let piece = format_param(name, value);
        if line.len() + 2 + piece.len() > MAX_LINE {
            line.push(';');
            lines.push(std::mem::replace(&mut line, format!(" {piece}")));
        } else {
            line.push_str("; ");
            line.push_str(&piece);
        }
    }
    lines.push(line);
    lines.join("\r\n")
}

/// `name="value"` with `\` and `"` escaped, or RFC 2231 `name*=utf-8''…` for non-ASCII.
fn format_param(name: &str, value: &str) -> String {
    if value.is_ascii() {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        format!("{name}=\"{escaped}\"")
    } else {
        let mut encoded = String::new();
        for byte in value.bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-' | b'~') {
                encoded.push(char::from(byte));
            } else {
                encoded.push_str(&format!("%{byte:02X}"));
            }
        }
        format!("{name}*=utf-8''{encoded}")
    }
}

/// The content type Python's `mimetypes` defaults give the first name that has one.
///
/// maascli asks for the parameter name first and then the local file name. Only common
/// extensions are known here; anything else is `application/octet-stream`, which is what
/// MAAS's handlers treat every file part as anyway.
pub fn guess_content_type(names: &[Option<&str>]) -> &'static str {
    for name in names.iter().flatten() {
        if let Some(found) = content_type_for(name) {
            return found;
        }
    }
    "application/octet-stream"
}

fn content_type_for(name: &str) -> Option<&'static str> {
    let mut stem = name.rsplit('/').next().unwrap_or(name).to_owned();
    // Like Python: expand suffix aliases, drop one compression suffix (both case-sensitive),
    // then look the extension up as written and then lower-cased.
    while let Some(extension) = extension_of(&stem) {
        let replacement = match extension {
            ".tgz" | ".taz" | ".tz" => ".tar.gz",
            ".tbz2" => ".tar.bz2",
            ".txz" => ".tar.xz",
            ".svgz" => ".svg.gz",
            _ => break,
        };
        stem = format!("{}{replacement}", &stem[..stem.len() - extension.len()]);
    }
    if let Some(extension) = extension_of(&stem)
        && matches!(extension, ".gz" | ".Z" | ".bz2" | ".xz" | ".br")
    {
        stem.truncate(stem.len() - extension.len());
    }
    let extension = extension_of(&stem)?;
    known_type(extension).or_else(|| known_type(&extension.to_ascii_lowercase()))
}

/// The extension as `os.path.splitext` sees it: from the last dot, ignoring leading dots.
fn extension_of(name: &str) -> Option<&str> {
    let index = name.rfind('.')?;
    if name[..index].chars().all(|c| c == '.') {
        return None;
    }
    Some(&name[index..])
}

fn known_type(extension: &str) -> Option<&'static str> {
    let found = match extension {
        ".txt" => "text/plain",
        ".json" => "application/json",
        ".tar" => "application/x-tar",
        ".sh" => "application/x-sh",
        ".py" => "text/x-python",
        ".xml" => "text/xml",
        ".html" | ".htm" => "text/html",
        ".csv" => "text/csv",
        ".zip" => "application/zip",
        ".pdf" => "application/pdf",
        ".png" => "image/png",
        ".jpg" | ".jpeg" => "image/jpeg",
        ".gif" => "image/gif",
        ".svg" => "image/svg+xml",
        _ => return None,
    };
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(name: &str, value: &str) -> (String, Value) {
        (name.to_owned(), Value::Text(value.to_owned()))
    }

    #[test]
    fn quote_plus_matches_python() {
        fn check(input: &str, expected: &str) {
            assert_eq!(quote_plus(input.as_bytes()), expected, "{input:?}");
        }
        check("node2", "node2");
        check("a b", "a+b");
        check("a+b=c&d", "a%2Bb%3Dc%26d");
        check("lp:user/x", "lp%3Auser%2Fx");
        check("~_.-", "~_.-");
        check("é", "%C3%A9");
    }

    #[test]
    fn urlencode_keeps_order_and_repeats_keys() {
        let query = urlencode([
            ("op", b"query".as_slice()),
            ("hostname", b"a".as_slice()),
            ("hostname", b"b c".as_slice()),
        ]);
        assert_eq!(query, "op=query&hostname=a&hostname=b+c");
    }

    #[test]
    fn multipart_matches_python_layout() {
        // Expected bytes as Python 3.11's email package writes them for maascli.
        let encoded = multipart_with_boundary(
            &[
                text("hostname", "héllo"),
                text("empty", ""),
                (
                    "content".to_owned(),
                    Value::File {
                        contents: vec![b'x'; 100],
                        local_name: Some("image.bin".to_owned()),
                    },
                ),
            ],
            "===============4751010819400041511==",
        );
        let expected = "--===============4751010819400041511==\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-Disposition: form-data; name=\"hostname\"\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=\"utf-8\"\r\n\
\r\n\
aMOpbGxv\r\n\
\r\n\
--===============4751010819400041511==\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-Disposition: form-data; name=\"empty\"\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=\"utf-8\"\r\n\
\r\n\
\r\n\
--===============4751010819400041511==\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-Disposition: form-data; name=\"content\"; filename=\"content\"\r\n\
MIME-Version: 1.0\r\n\
Content-Type: application/octet-stream\r\n\
\r\n\
eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4\r\n\
eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eA==\r\n\
\r\n\
--===============4751010819400041511==--";
        assert_eq!(String::from_utf8(encoded.body).unwrap(), expected);
        assert_eq!(
            encoded.content_type,
            "multipart/form-data; boundary=\"===============4751010819400041511==\""
        );
    }

    #[test]
    fn long_and_unusual_names_are_formatted_as_python_does() {
        fn check(name: &str, expected: &str) {
            let encoded = multipart_with_boundary(&[text(name, "v")], "B");
            let body = String::from_utf8(encoded.body).unwrap();
            assert!(body.contains(expected), "{name:?}: {body}");
        }
        check(
            &"x".repeat(50),
            &format!(
                "Content-Disposition: form-data;\r\n name=\"{}\"\r\n",
                "x".repeat(50)
            ),
        );
        check(
            "na me\"q",
            "Content-Disposition: form-data; name=\"na me\\\"q\"\r\n",
        );
        check(
            "né",
            "Content-Disposition: form-data; name*=utf-8''n%C3%A9\r\n",
        );
    }

    #[test]
    fn boundaries_look_like_pythons() {
        let boundary = new_boundary();
        assert_eq!(boundary.len(), 15 + 19 + 2);
        assert!(boundary.starts_with("===============") && boundary.ends_with("=="));
        assert!(boundary[15..34].bytes().all(|b| b.is_ascii_digit()));
        assert_ne!(boundary, new_boundary());
    }

    #[test]
    fn content_types_follow_the_first_name_with_a_known_extension() {
        fn check(names: &[Option<&str>], expected: &str) {
            assert_eq!(guess_content_type(names), expected, "{names:?}");
        }
        check(
            &[Some("content"), Some("/tmp/root.tgz")],
            "application/x-tar",
        );
        check(&[Some("content"), Some("root.tar.xz")], "application/x-tar");
        check(
            &[Some("content"), Some("disk.img.gz")],
            "application/octet-stream",
        );
        check(&[Some("script"), Some("hello.sh")], "application/x-sh");
        check(&[Some("notes.txt"), Some("x.json")], "text/plain");
        check(&[Some("content"), Some("A.TXT")], "text/plain");
        check(
            &[Some("content"), Some("a.JSON.GZ")],
            "application/octet-stream",
        );
        check(&[Some("content"), Some("a.tbz2")], "application/x-tar");
        check(
            &[Some("content"), Some(".json")],
            "application/octet-stream",
        );
        check(&[Some("content"), None], "application/octet-stream");
    }
}
