//! `multipart/form-data` bodies laid out as the MAAS script runner sends them: plain
//! fields first, then one part per file whose field name is also its file name.

use crate::oauth::random_u64;

/// A body being built.
#[derive(Debug)]
pub struct Multipart {
    boundary: String,
    body: Vec<u8>,
}

impl Default for Multipart {
    fn default() -> Self {
        Self::new()
    }
}

impl Multipart {
    pub fn new() -> Self {
        Self::with_boundary(format!(
            "maas-agent-{:016x}{:016x}",
            random_u64(),
            random_u64()
        ))
    }

    /// A fixed boundary, for tests that compare bytes.
    pub fn with_boundary(boundary: String) -> Self {
        Multipart {
            boundary,
            body: Vec::new(),
        }
    }

    pub fn field(&mut self, name: &str, value: &str) -> &mut Self {
        self.body.extend_from_slice(
            format!(
                "--{}\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n",
                self.boundary,
                escape(name)
            )
            .as_bytes(),
        );
        self.body.extend_from_slice(value.as_bytes());
        self.body.extend_from_slice(b"\r\n");
        self
    }

    pub fn file(&mut self, name: &str, content: &[u8]) -> &mut Self {
        self.body.extend_from_slice(
            format!(
                "--{}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                self.boundary,
                name = escape(name)
            )
            .as_bytes(),
        );
        self.body.extend_from_slice(content);
        self.body.extend_from_slice(b"\r\n");
        self
    }

    /// The `Content-Type` value and the finished body.
    pub fn finish(mut self) -> (String, Vec<u8>) {
        self.body
            .extend_from_slice(format!("--{}--\r\n", self.boundary).as_bytes());
        (
            format!("multipart/form-data; boundary={}", self.boundary),
            self.body,
        )
    }
}

/// Field names are script names, which MAAS restricts, but a quote or line break must never
/// break the part header.
fn escape(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '"' | '\r' | '\n' => '_',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let mut form = Multipart::with_boundary("B".into());
        form.field("op", "signal").file("x.out", b"hi\n");
        let (content_type, body) = form.finish();
        assert_eq!(content_type, "multipart/form-data; boundary=B");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "--B\r\nContent-Disposition: form-data; name=\"op\"\r\n\r\nsignal\r\n\
             --B\r\nContent-Disposition: form-data; name=\"x.out\"; filename=\"x.out\"\r\n\
             Content-Type: application/octet-stream\r\n\r\nhi\n\r\n--B--\r\n"
        );
    }

    #[test]
    fn hostile_names_cannot_break_headers() {
        let mut form = Multipart::with_boundary("B".into());
        form.field("a\"\r\nX: y", "v");
        let (_, body) = form.finish();
        assert!(
            String::from_utf8(body)
                .unwrap()
                .contains("name=\"a___X: y\"")
        );
    }
}
