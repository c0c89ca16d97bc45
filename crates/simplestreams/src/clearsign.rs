//! OpenPGP cleartext-signed documents (RFC 4880 §7), the shape of `.sjson` files: the
//! framing only. Checking the signature is a [`crate::SignatureVerifier`]'s job; this module
//! takes the text out for sources that are configured to skip verification.

use thiserror::Error;

const BEGIN_MESSAGE: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
const BEGIN_SIGNATURE: &str = "-----BEGIN PGP SIGNATURE-----";
const END_SIGNATURE: &str = "-----END PGP SIGNATURE-----";

/// The parts of a cleartext-signed document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clearsigned<'a> {
    /// Values of the `Hash:` armor headers (`SHA512`).
    pub hashes: Vec<&'a str>,
    /// The signed text, dash-unescaped, lines joined with `\n`, without the line break
    /// that precedes the signature.
    pub text: String,
    /// The armored signature block, from its BEGIN line to its END line.
    pub signature: &'a str,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ClearsignError {
    #[error("document is not UTF-8 text")]
    NotText,
    #[error("document does not start with {BEGIN_MESSAGE}")]
    MissingBegin,
    #[error("armor header line {line:?} is not `Key: value`")]
    BadArmorHeader { line: String },
    #[error("document ends before its signature block")]
    MissingSignature,
    #[error("signature block is not terminated by {END_SIGNATURE}")]
    UnterminatedSignature,
    #[error("document has content after its signature block")]
    TrailingContent,
}

/// Whether `document` looks cleartext-signed (its first non-blank line is the BEGIN line).
pub fn is_clearsigned(document: &[u8]) -> bool {
    let start = document
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(document.len());
    document[start..].starts_with(BEGIN_MESSAGE.as_bytes())
}

pub fn parse_clearsigned(document: &[u8]) -> Result<Clearsigned<'_>, ClearsignError> {
    let document = std::str::from_utf8(document).map_err(|_| ClearsignError::NotText)?;
    let mut lines = LineCursor::new(document.trim_start());
    if lines.next().map(str::trim_end) != Some(BEGIN_MESSAGE) {
        return Err(ClearsignError::MissingBegin);
    }
    let mut hashes = Vec::new();
    loop {
        let Some(line) = lines.next() else {
            return Err(ClearsignError::MissingSignature);
        };
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let Some((key, value)) = line.split_once(": ") else {
            return Err(ClearsignError::BadArmorHeader {
                line: line.chars().take(80).collect(),
            });
        };
        if key == "Hash" {
            hashes.extend(value.split(',').map(str::trim));
        }
    }
    let mut text_lines: Vec<&str> = Vec::new();
    let signature_start = loop {
        let offset = lines.offset();
        let Some(line) = lines.next() else {
            return Err(ClearsignError::MissingSignature);
        };
        if line.trim_end() == BEGIN_SIGNATURE {
            break offset;
        }
        text_lines.push(line.strip_prefix("- ").unwrap_or(line));
    };
    let signature_end = loop {
        let Some(line) = lines.next() else {
            return Err(ClearsignError::UnterminatedSignature);
        };
        if line.trim_end() == END_SIGNATURE {
            break lines.offset();
        }
    };
    if !document.trim_start()[signature_end..].trim().is_empty() {
        return Err(ClearsignError::TrailingContent);
    }
    Ok(Clearsigned {
        hashes,
        text: text_lines.join("\n"),
        signature: document.trim_start()[signature_start..signature_end].trim_end(),
    })
}

/// Lines without their `\n` or `\r\n`, with the byte offset of the next one.
struct LineCursor<'a> {
    text: &'a str,
    offset: usize,
}

impl<'a> LineCursor<'a> {
    fn new(text: &'a str) -> LineCursor<'a> {
        LineCursor { text, offset: 0 }
    }

    fn offset(&self) -> usize {
        self.offset
    }

    fn next(&mut self) -> Option<&'a str> {
        let rest = &self.text[self.offset..];
        if rest.is_empty() {
            return None;
        }
        let (line, consumed) = match rest.find('\n') {
            Some(end) => (&rest[..end], end + 1),
            None => (rest, rest.len()),
        };
        self.offset += consumed;
        Some(line.strip_suffix('\r').unwrap_or(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNED: &str = "-----BEGIN PGP SIGNED MESSAGE-----\n\
Hash: SHA512\n\
\n\
{\"format\": \"index:1.0\",\n\
- -- dash escaped\n\
\x20\"index\": {}}\n\
-----BEGIN PGP SIGNATURE-----\n\
\n\
iQIzBAEBCgAdFiEE\n\
=abcd\n\
-----END PGP SIGNATURE-----\n";

    #[test]
    fn takes_the_text_out() {
        let parsed = parse_clearsigned(SIGNED.as_bytes()).expect("parses");
        assert_eq!(parsed.hashes, vec!["SHA512"]);
        assert_eq!(
            parsed.text,
            "{\"format\": \"index:1.0\",\n-- dash escaped\n \"index\": {}}"
        );
        assert!(parsed.signature.starts_with(BEGIN_SIGNATURE));
        assert!(parsed.signature.ends_with(END_SIGNATURE));
        assert!(is_clearsigned(SIGNED.as_bytes()));
        assert!(!is_clearsigned(b"{\"format\": \"index:1.0\"}"));
    }

    #[test]
    fn crlf_line_endings() {
        let crlf = SIGNED.replace('\n', "\r\n");
        let parsed = parse_clearsigned(crlf.as_bytes()).expect("parses");
        assert_eq!(
            parsed.text,
            "{\"format\": \"index:1.0\",\n-- dash escaped\n \"index\": {}}"
        );
    }

    #[test]
    fn refuses_broken_framing() {
        let cases: [(&str, ClearsignError); 5] = [
            ("{}", ClearsignError::MissingBegin),
            (
                "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{}\n",
                ClearsignError::MissingSignature,
            ),
            (
                "-----BEGIN PGP SIGNED MESSAGE-----\nnot a header\n\n{}\n",
                ClearsignError::BadArmorHeader {
                    line: "not a header".into(),
                },
            ),
            (
                "-----BEGIN PGP SIGNED MESSAGE-----\n\n{}\n-----BEGIN PGP SIGNATURE-----\nabc\n",
                ClearsignError::UnterminatedSignature,
            ),
            (
                "-----BEGIN PGP SIGNED MESSAGE-----\n\n{}\n-----BEGIN PGP SIGNATURE-----\n-----END PGP SIGNATURE-----\nmore",
                ClearsignError::TrailingContent,
            ),
        ];
        for (document, expected) in cases {
            assert_eq!(
                parse_clearsigned(document.as_bytes()),
                Err(expected),
                "{document:?}"
            );
        }
        assert_eq!(
            parse_clearsigned(&[0xff, 0xfe]),
            Err(ClearsignError::NotText)
        );
    }
}
