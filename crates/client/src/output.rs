//! Printing responses as maascli does, with JSON bodies indented by four spaces the way
//! MAAS's own emitter (Python's `json.dumps(indent=4)`) lays them out.

use std::io::{self, Write};

use crate::http::Response;

/// Re-indents a JSON document with 4 spaces, `": "` after keys and `[]`/`{}` for empty
/// containers. Strings and numbers are copied exactly as they arrived. Returns `None` when
/// the input is not a single valid JSON value.
pub fn reindent_json(input: &[u8]) -> Option<Vec<u8>> {
    let mut formatter = Formatter {
        input,
        position: 0,
        output: Vec::with_capacity(input.len() + input.len() / 4),
    };
    formatter.skip_whitespace();
    formatter.value(0)?;
    formatter.skip_whitespace();
    if formatter.position != input.len() {
        return None;
    }
    Some(formatter.output)
}

/// Deeper documents are printed as they came rather than risking the stack.
const MAX_DEPTH: usize = 512;

struct Formatter<'a> {
    input: &'a [u8],
    position: usize,
    output: Vec<u8>,
}

impl Formatter<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.position).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.position += 1;
        }
    }

    fn newline(&mut self, depth: usize) {
        self.output.push(b'\n');
        self.output.extend(std::iter::repeat_n(b' ', depth * 4));
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'{' => self.container(depth, b'}', true),
            b'[' => self.container(depth, b']', false),
            b'"' => self.string(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn container(&mut self, depth: usize, close: u8, is_object: bool) -> Option<()> {
        let open = self.input[self.position];
        self.position += 1;
        self.output.push(open);
        self.skip_whitespace();
        if self.peek()? == close {
            self.position += 1;
            self.output.push(close);
            return Some(());
        }
        loop {
            self.newline(depth + 1);
            if is_object {
                if self.peek()? != b'"' {
                    return None;
                }
                self.string()?;
                self.skip_whitespace();
                if self.peek()? != b':' {
                    return None;
                }
                self.position += 1;
                self.output.extend_from_slice(b": ");
                self.skip_whitespace();
            }
            self.value(depth + 1)?;
            self.skip_whitespace();
            match self.peek()? {
                b',' => {
                    self.position += 1;
                    self.output.push(b',');
                    self.skip_whitespace();
                }
                byte if byte == close => {
                    self.position += 1;
                    self.newline(depth);
                    self.output.push(close);
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn string(&mut self) -> Option<()> {
        let start = self.position;
        self.position += 1;
        loop {
            match self.peek()? {
                b'"' => {
                    self.position += 1;
                    break;
                }
                b'\\' => {
                    self.position += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                            self.position += 1
                        }
                        b'u' => {
                            let digits = self.input.get(self.position + 1..self.position + 5)?;
                            if !digits.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.position += 5;
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => self.position += 1,
            }
        }
        let text = &self.input[start..self.position];
        std::str::from_utf8(text).ok()?;
        self.output.extend_from_slice(text);
        Some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.input.get(self.position..self.position + word.len())? != word {
            return None;
        }
        self.position += word.len();
        self.output.extend_from_slice(word);
        Some(())
    }

    fn number(&mut self) -> Option<()> {
        let start = self.position;
        if self.peek() == Some(b'-') {
            self.position += 1;
        }
        match self.peek()? {
            b'0' => self.position += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.position += 1;
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.position += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.position += 1;
            }
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        self.output
            .extend_from_slice(&self.input[start..self.position]);
        Some(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
            self.position += 1;
        }
    }
}

/// The media type of a `Content-Type` value without parameters, lower-cased, as Python's
/// `Message.get_content_type` gives it (`text/plain` when the value is not `type/subtype`).
pub fn media_type(content_type: &str) -> String {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media.matches('/').count() == 1 {
        media
    } else {
        "text/plain".to_owned()
    }
}

/// Is the body text (JSON or `text/*`)? A response without `Content-Type` is treated as
/// bytes (maascli crashes on it instead).
pub fn is_textual(response: &Response) -> bool {
    response.header("content-type").is_some_and(|value| {
        let media = media_type(value);
        media.ends_with("/json") || media.starts_with("text/")
    })
}

/// Writes the body as maascli's `print_response_content` does: on a terminal, a 2xx text
/// answer is announced with `Success.` and a trailing newline is added. JSON is re-indented.
pub fn print_response(out: &mut dyn Write, response: &Response, is_tty: bool) -> io::Result<()> {
    let textual = is_textual(response);
    let success = response.is_success();
    if is_tty && success && textual {
        out.write_all(b"Success.\nMachine-readable output follows:\n")?;
    }
    let is_json = response
        .header("content-type")
        .is_some_and(|value| media_type(value).ends_with("/json"));
    let reindented = if is_json {
        reindent_json(&response.body)
    } else {
        None
    };
    out.write_all(reindented.as_deref().unwrap_or(&response.body))?;
    if is_tty && textual {
        if !success && response.body.is_empty() {
            write!(
                out,
                "Request failed with code {}: {}",
                response.status, response.reason
            )?;
        }
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Writes the status line and headers (sorted, capitalised) for `--debug`.
pub fn print_response_summary(out: &mut dyn Write, response: &Response) -> io::Result<()> {
    writeln!(out, "{} {}", response.status, response.reason)?;
    writeln!(out)?;
    let mut headers: Vec<(String, &str)> = response
        .headers
        .iter()
        .map(|(name, value)| {
            let capitalised = name
                .split('-')
                .map(|part| {
                    let mut chars = part.chars();
                    match chars.next() {
                        Some(first) => {
                            first.to_uppercase().collect::<String>()
                                + &chars.as_str().to_lowercase()
                        }
                        None => String::new(),
                    }
                })
                .collect::<Vec<_>>()
                .join("-");
            (capitalised, value.as_str())
        })
        .collect();
    headers.sort();
    let width = headers
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0)
        + 2;
    for (name, value) in headers {
        writeln!(out, "{name:>width$}: {value}")?;
    }
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<&str>) {
        let got = reindent_json(input.as_bytes()).map(|out| String::from_utf8(out).unwrap());
        assert_eq!(got.as_deref(), expected, "{input}");
    }

    #[test]
    fn reindents_like_python_json_dumps_indent_4() {
        check(
            r#"{"a":[1,2.5e3,-0],"b":{},"c":[],"d":{"e":null,"f":"x\"y\u00e9"},"g":true}"#,
            Some(
                "{\n    \"a\": [\n        1,\n        2.5e3,\n        -0\n    ],\n    \"b\": {},\n    \
                 \"c\": [],\n    \"d\": {\n        \"e\": null,\n        \"f\": \"x\\\"y\\u00e9\"\n    },\n    \
                 \"g\": true\n}",
            ),
        );
        check(" \"jammy\" ", Some("\"jammy\""));
        check("30", Some("30"));
        check("[ ]", Some("[]"));
    }

    #[test]
    fn already_indented_json_is_unchanged() {
        let indented = "[\n    {\n        \"hostname\": \"node2\",\n        \"tags\": []\n    }\n]";
        check(indented, Some(indented));
    }

    #[test]
    fn invalid_json_is_refused() {
        for input in [
            "",
            "{",
            "[1,]",
            "{\"a\" 1}",
            "01",
            "tru",
            "\"a\nb\"",
            "1 2",
            "{1:2}",
            "\"\\x\"",
        ] {
            check(input, None);
        }
        let deep = "[".repeat(MAX_DEPTH + 2) + &"]".repeat(MAX_DEPTH + 2);
        check(&deep, None);
    }

    fn response(status: u16, content_type: Option<&str>, body: &str) -> Response {
        Response {
            status,
            reason: "Reason".to_owned(),
            headers: content_type
                .map(|value| vec![("content-type".to_owned(), value.to_owned())])
                .unwrap_or_default(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn printed(response: &Response, is_tty: bool) -> String {
        let mut out = Vec::new();
        print_response(&mut out, response, is_tty).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn printing_follows_maascli() {
        let json = response(200, Some("application/json; charset=utf-8"), "[1]");
        assert_eq!(printed(&json, false), "[\n    1\n]");
        assert_eq!(
            printed(&json, true),
            "Success.\nMachine-readable output follows:\n[\n    1\n]\n"
        );
        let error = response(
            404,
            Some("text/plain"),
            "No Machine matches the given query.",
        );
        assert_eq!(
            printed(&error, true),
            "No Machine matches the given query.\n"
        );
        assert_eq!(
            printed(&error, false),
            "No Machine matches the given query."
        );
        let empty_error = response(403, Some("text/plain"), "");
        assert_eq!(
            printed(&empty_error, true),
            "Request failed with code 403: Reason\n"
        );
        let no_content = response(204, Some("text/plain"), "");
        assert_eq!(printed(&no_content, false), "");
        let bytes = response(200, None, "raw");
        assert_eq!(printed(&bytes, true), "raw");
        let not_json = response(200, Some("application/json"), "{oops");
        assert_eq!(printed(&not_json, false), "{oops");
    }

    #[test]
    fn media_type_drops_parameters() {
        assert_eq!(
            media_type("Application/JSON; charset=utf-8"),
            "application/json"
        );
        assert_eq!(media_type("nonsense"), "text/plain");
    }

    #[test]
    fn summary_lists_sorted_capitalised_headers() {
        let mut response = response(200, Some("text/plain"), "");
        response
            .headers
            .push(("x-maas-api-hash".to_owned(), "abc".to_owned()));
        let mut out = Vec::new();
        print_response_summary(&mut out, &response).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "200 Reason\n\n     Content-Type: text/plain\n  X-Maas-Api-Hash: abc\n\n"
        );
    }
}
