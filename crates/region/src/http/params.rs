//! Request parameters as MAAS clients send them: query strings with
//! repeated keys, `multipart/form-data` with quoted boundaries and base64
//! parts (Python's `email` package), and urlencoded forms.

use base64::Engine;

/// Ordered multimap of parameter names to values; repeated keys are lists.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn new() -> Params {
        Params::default()
    }

    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.pairs.push((name.into(), value.into()));
    }

    pub fn extend(&mut self, other: Params) {
        self.pairs.extend(other.pairs);
    }

    /// The last value given for `name`, as Django's `QueryDict.get` returns it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value given for `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| n == name)
    }

    /// Distinct names, in first-seen order.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for (name, _) in &self.pairs {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        names
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &str) {
        self.pairs.retain(|(n, _)| n != name);
    }
}

/// A file part of a multipart body (`name@=path` on the CLI).
#[derive(Clone, Debug, PartialEq)]
pub struct FilePart {
    pub name: String,
    pub filename: String,
    pub content: Vec<u8>,
}

/// What a body held: fields, and the parts that came with a filename.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Form {
    pub fields: Params,
    pub files: Vec<FilePart>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("multipart body has no boundary parameter in its content type")]
    MissingBoundary,
    #[error("multipart body does not start with its boundary")]
    NoOpeningBoundary,
    #[error("multipart body ends without its closing boundary")]
    Unterminated,
    #[error("multipart part has a malformed header line")]
    BadHeader,
    #[error("multipart part '{name}' is not valid base64")]
    BadBase64 { name: String },
}

pub fn parse_query(query: &str) -> Params {
    let mut params = Params::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        params.push(name.into_owned(), value.into_owned());
    }
    params
}

/// The boundary named in a `multipart/form-data` content type, unquoted.
pub fn multipart_boundary(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (key, value) = param.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        (!value.is_empty()).then(|| value.to_owned())
    })
}

/// Parses a request body by its content type. A missing or unknown content
/// type with an empty body is an empty form (maascli sends bare POSTs).
pub fn parse_body(content_type: Option<&str>, body: &[u8]) -> Result<Form, BodyError> {
    let Some(content_type) = content_type else {
        return Ok(Form::default());
    };
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "multipart/form-data" => {
            let boundary = multipart_boundary(content_type).ok_or(BodyError::MissingBoundary)?;
            parse_multipart(&boundary, body)
        }
        "application/x-www-form-urlencoded" => {
            let mut fields = Params::new();
            for (name, value) in form_urlencoded::parse(body) {
                fields.push(name.into_owned(), value.into_owned());
            }
            Ok(Form {
                fields,
                files: Vec::new(),
            })
        }
        // JSON bodies and raw bytes are not form data; the handlers that
        // accept them (chunk uploads) read the raw body themselves.
        _ => Ok(Form::default()),
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > haystack.len() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Skips one line ending (CRLF or LF) at `at`, if there is one.
fn skip_newline(body: &[u8], at: usize) -> usize {
    if body.get(at..at + 2) == Some(b"\r\n") {
        at + 2
    } else if body.get(at) == Some(&b'\n') {
        at + 1
    } else {
        at
    }
}

pub fn parse_multipart(boundary: &str, body: &[u8]) -> Result<Form, BodyError> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut form = Form::default();
    let first = find(body, delimiter, 0).ok_or(BodyError::NoOpeningBoundary)?;
    // Only whitespace (a preamble is allowed by RFC 2046, but clients send none) before it.
    let mut cursor = first + delimiter.len();
    loop {
        if body.get(cursor..cursor + 2) == Some(b"--") {
            return Ok(form);
        }
        // Transport padding after a delimiter is allowed, then a line break.
        while matches!(body.get(cursor), Some(b' ' | b'\t')) {
            cursor += 1;
        }
        let part_start = skip_newline(body, cursor);
        let next = find(body, delimiter, part_start).ok_or(BodyError::Unterminated)?;
        // The line break before the delimiter belongs to the delimiter.
        let mut part_end = next;
        if part_end >= part_start + 2 && &body[part_end - 2..part_end] == b"\r\n" {
            part_end -= 2;
        } else if part_end > part_start && body[part_end - 1] == b'\n' {
            part_end -= 1;
        }
        parse_part(&body[part_start..part_end.max(part_start)], &mut form)?;
        cursor = next + delimiter.len();
    }
}

struct PartHeaders {
    name: Option<String>,
    filename: Option<String>,
    base64: bool,
}

fn parse_part(part: &[u8], form: &mut Form) -> Result<(), BodyError> {
    // Headers end at the first blank line; a part that starts with a blank
    // line has no headers at all (libmaas's empty body is one such part).
    let (header_bytes, content) = if part.starts_with(b"\r\n") {
        (&part[..0], &part[2..])
    } else if part.starts_with(b"\n") {
        (&part[..0], &part[1..])
    } else if let Some(end) = find(part, b"\r\n\r\n", 0) {
        (&part[..end], &part[end + 4..])
    } else if let Some(end) = find(part, b"\n\n", 0) {
        (&part[..end], &part[end + 2..])
    } else {
        // Headers only, no blank line: an empty value.
        (part, &part[part.len()..])
    };
    let headers = parse_part_headers(header_bytes)?;
    let Some(name) = headers.name else {
        // No name: nothing to bind it to. Skip it rather than reject the body.
        return Ok(());
    };
    let content = if headers.base64 {
        let compact: Vec<u8> = content
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(&compact)
            .map_err(|_| BodyError::BadBase64 { name: name.clone() })?
    } else {
        content.to_vec()
    };
    match headers.filename {
        Some(filename) => form.files.push(FilePart {
            name,
            filename,
            content,
        }),
        None => form
            .fields
            .push(name, String::from_utf8_lossy(&content).into_owned()),
    }
    Ok(())
}

fn parse_part_headers(bytes: &[u8]) -> Result<PartHeaders, BodyError> {
    let text = String::from_utf8_lossy(bytes);
    // Unfold continuation lines (RFC 5322 folding, which Python's email uses).
    let mut lines: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match lines.last_mut() {
                Some(last) => {
                    last.push(' ');
                    last.push_str(line.trim_start());
                }
                None => return Err(BodyError::BadHeader),
            }
        } else {
            lines.push(line.to_owned());
        }
    }
    let mut headers = PartHeaders {
        name: None,
        filename: None,
        base64: false,
    };
    for line in &lines {
        let (key, value) = line.split_once(':').ok_or(BodyError::BadHeader)?;
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim();
        match key.as_str() {
            "content-disposition" => {
                headers.name = disposition_param(value, "name");
                headers.filename = disposition_param(value, "filename");
            }
            "content-transfer-encoding" => {
                headers.base64 = value.eq_ignore_ascii_case("base64");
            }
            _ => {}
        }
    }
    Ok(headers)
}

/// A parameter of a `Content-Disposition` value, unquoted and unescaped.
fn disposition_param(value: &str, wanted: &str) -> Option<String> {
    let mut rest = value;
    // Skip the disposition type (`form-data`).
    rest = rest.split_once(';').map(|(_, r)| r).unwrap_or("");
    while !rest.trim().is_empty() {
        let trimmed = rest.trim_start();
        let (key, after_eq) = trimmed.split_once('=')?;
        let key = key.trim();
        let after_eq = after_eq.trim_start();
        let (val, remainder) = if let Some(quoted) = after_eq.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            out.push(escaped);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    other => out.push(other),
                }
            }
            let end = end?;
            (out, &quoted[end..])
        } else {
            match after_eq.split_once(';') {
                Some((v, r)) => (v.trim().to_owned(), r),
                None => (after_eq.trim().to_owned(), ""),
            }
        };
        if key.eq_ignore_ascii_case(wanted) {
            return Some(val);
        }
        rest = remainder
            .trim_start()
            .strip_prefix(';')
            .unwrap_or(remainder);
        if rest.len() == remainder.len()
            && !remainder.trim().is_empty()
            && !remainder.trim_start().starts_with(';')
        {
            // Garbage after a value; stop rather than loop.
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body built the way Python's email package builds maascli's.
    fn python_style(boundary: &str, fields: &[(&str, &str)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (name, value) in fields {
            let encoded = base64::engine::general_purpose::STANDARD.encode(value.as_bytes());
            body.extend_from_slice(format!(
                "--{boundary}\r\nContent-Type: text/plain; charset=\"utf-8\"\r\nMIME-Version: 1.0\r\n\
                 Content-Transfer-Encoding: base64\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{encoded}\r\n"
            ).as_bytes());
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        body
    }

    #[test]
    fn quoted_boundary_and_base64_parts() {
        let boundary = "===============8364590201212519404==";
        let body = python_style(
            boundary,
            &[
                ("username", "u"),
                ("email", "e@x"),
                ("tags", "a"),
                ("tags", "b"),
            ],
        );
        let content_type = format!("multipart/form-data; boundary=\"{boundary}\"");
        let form = parse_body(Some(&content_type), &body).unwrap();
        assert_eq!(form.fields.get("username"), Some("u"));
        assert_eq!(form.fields.get("email"), Some("e@x"));
        assert_eq!(form.fields.all("tags"), ["a", "b"]);
        assert!(form.files.is_empty());
    }

    #[test]
    fn libmaas_empty_body_is_one_headerless_part() {
        let body = b"--B\r\n\r\n--B--";
        let form = parse_body(Some("multipart/form-data; boundary=B"), body).unwrap();
        assert!(form.fields.is_empty());
    }

    #[test]
    fn wrapped_base64_file_part_and_plain_part() {
        let content: Vec<u8> = (0..=255u8).cycle().take(300).collect();
        let encoded = base64::engine::general_purpose::STANDARD.encode(&content);
        let wrapped: Vec<String> = encoded
            .as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        let body = format!(
            "--xyz\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\
             Content-Disposition: form-data; name=\"content\"; filename=\"content\"\r\n\r\n{}\r\n\
             --xyz\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nplain text\r\n--xyz--\r\n",
            wrapped.join("\r\n")
        );
        let form = parse_body(Some("multipart/form-data; boundary=xyz"), body.as_bytes()).unwrap();
        assert_eq!(form.files.len(), 1);
        assert_eq!(form.files[0].name, "content");
        assert_eq!(form.files[0].content, content);
        assert_eq!(form.fields.get("title"), Some("plain text"));
    }

    #[test]
    fn curl_style_part_with_lf_endings() {
        let body = "--b\nContent-Disposition: form-data; name=\"a\"\n\n1\n--b\nContent-Disposition: form-data; name=\"b\"\n\n\n--b--\n";
        let form = parse_body(Some("multipart/form-data; boundary=b"), body.as_bytes()).unwrap();
        assert_eq!(form.fields.get("a"), Some("1"));
        assert_eq!(form.fields.get("b"), Some(""));
    }

    #[test]
    fn folded_disposition_header() {
        let body =
            "--b\r\nContent-Disposition: form-data;\r\n name=\"long_name\"\r\n\r\nv\r\n--b--";
        let form = parse_body(Some("multipart/form-data; boundary=b"), body.as_bytes()).unwrap();
        assert_eq!(form.fields.get("long_name"), Some("v"));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        let ct = Some("multipart/form-data; boundary=b");
        assert_eq!(
            parse_body(Some("multipart/form-data"), b"--b--"),
            Err(BodyError::MissingBoundary)
        );
        assert_eq!(
            parse_body(ct, b"no boundary here"),
            Err(BodyError::NoOpeningBoundary)
        );
        assert_eq!(
            parse_body(
                ct,
                b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx"
            ),
            Err(BodyError::Unterminated)
        );
        assert_eq!(
            parse_body(ct, b"--b\r\nno colon here\r\n\r\nx\r\n--b--"),
            Err(BodyError::BadHeader)
        );
        let bad64 = b"--b\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n!!!\r\n--b--";
        assert_eq!(
            parse_body(ct, bad64),
            Err(BodyError::BadBase64 { name: "a".into() })
        );
    }

    #[test]
    fn urlencoded_and_query() {
        let form = parse_body(
            Some("application/x-www-form-urlencoded"),
            b"username=admin&password=p%40ss+word&consumer=u%40h",
        )
        .unwrap();
        assert_eq!(form.fields.get("password"), Some("p@ss word"));
        let query = parse_query("op=query&hostname=a&hostname=b&empty=");
        assert_eq!(query.get("op"), Some("query"));
        assert_eq!(query.all("hostname"), ["a", "b"]);
        assert_eq!(query.get("empty"), Some(""));
        assert_eq!(query.names(), ["op", "hostname", "empty"]);
    }

    #[test]
    fn no_content_type_is_an_empty_form() {
        assert_eq!(parse_body(None, b""), Ok(Form::default()));
        assert_eq!(
            parse_body(Some("application/json"), b"{}"),
            Ok(Form::default())
        );
    }

    #[test]
    fn boundary_forms() {
        assert_eq!(
            multipart_boundary("multipart/form-data; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            multipart_boundary("multipart/form-data; BOUNDARY=\"a=b\"").as_deref(),
            Some("a=b")
        );
        assert_eq!(multipart_boundary("multipart/form-data; charset=x"), None);
        assert_eq!(
            multipart_boundary("multipart/form-data; boundary=\"\""),
            None
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_body(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512), boundary in "[A-Za-z0-9=_-]{1,20}") {
            let _ = parse_multipart(&boundary, &body);
        }

        #[test]
        fn python_style_round_trip(
            fields in proptest::collection::vec(("[a-z_]{1,12}", "\\PC{0,40}"), 0..8),
            boundary in "={5,15}[0-9]{5,19}={2}",
        ) {
            let pairs: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let body = python_style(&boundary, &pairs);
            let form = parse_multipart(&boundary, &body).unwrap();
            let got: Vec<(String, String)> = form.fields.pairs().to_vec();
            let want: Vec<(String, String)> = fields.clone();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
