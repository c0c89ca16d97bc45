//! TFTP packets (RFC 1350) with the option extension (RFC 2347).

use crate::DecodeError;

pub const OPCODE_RRQ: u16 = 1;
pub const OPCODE_WRQ: u16 = 2;
pub const OPCODE_DATA: u16 = 3;
pub const OPCODE_ACK: u16 = 4;
pub const OPCODE_ERROR: u16 = 5;
pub const OPCODE_OACK: u16 = 6;

/// Transfer mode of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Netascii,
    Octet,
    Mail,
}

impl Mode {
    fn parse(text: &str) -> Option<Mode> {
        if text.eq_ignore_ascii_case("octet") {
            Some(Mode::Octet)
        } else if text.eq_ignore_ascii_case("netascii") {
            Some(Mode::Netascii)
        } else if text.eq_ignore_ascii_case("mail") {
            Some(Mode::Mail)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Netascii => "netascii",
            Mode::Octet => "octet",
            Mode::Mail => "mail",
        }
    }
}

/// RFC 1350 error codes, plus 8 from RFC 2347.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    NotDefined,
    FileNotFound,
    AccessViolation,
    DiskFull,
    IllegalOperation,
    UnknownTransferId,
    FileExists,
    NoSuchUser,
    OptionRefused,
    Other(u16),
}

impl ErrorCode {
    pub fn from_u16(value: u16) -> ErrorCode {
        match value {
            0 => ErrorCode::NotDefined,
            1 => ErrorCode::FileNotFound,
            2 => ErrorCode::AccessViolation,
            3 => ErrorCode::DiskFull,
            4 => ErrorCode::IllegalOperation,
            5 => ErrorCode::UnknownTransferId,
            6 => ErrorCode::FileExists,
            7 => ErrorCode::NoSuchUser,
            8 => ErrorCode::OptionRefused,
            other => ErrorCode::Other(other),
        }
    }

    pub fn to_u16(self) -> u16 {
        match self {
            ErrorCode::NotDefined => 0,
            ErrorCode::FileNotFound => 1,
            ErrorCode::AccessViolation => 2,
            ErrorCode::DiskFull => 3,
            ErrorCode::IllegalOperation => 4,
            ErrorCode::UnknownTransferId => 5,
            ErrorCode::FileExists => 6,
            ErrorCode::NoSuchUser => 7,
            ErrorCode::OptionRefused => 8,
            ErrorCode::Other(other) => other,
        }
    }
}

/// A read or write request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub filename: String,
    pub mode: Mode,
    /// Options in the order sent; names as sent (compare case-insensitively).
    pub options: Vec<(String, String)>,
}

impl Request {
    /// The value of option `name` (case-insensitive).
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    ReadRequest(Request),
    WriteRequest(Request),
    Data { block: u16, data: Vec<u8> },
    Ack { block: u16 },
    Error { code: ErrorCode, message: String },
    OptionAck(Vec<(String, String)>),
}

impl Packet {
    pub fn decode(bytes: &[u8]) -> Result<Packet, DecodeError> {
        let [hi, lo, body @ ..] = bytes else {
            return Err(DecodeError::TooShort { len: bytes.len() });
        };
        let opcode = u16::from_be_bytes([*hi, *lo]);
        match opcode {
            OPCODE_RRQ | OPCODE_WRQ => {
                let mut fields = Strings::new(body);
                let filename = fields.next_field("filename")?;
                if filename.is_empty() {
                    return Err(DecodeError::EmptyFilename);
                }
                let mode_text = fields.next_field("mode")?;
                let mode =
                    Mode::parse(&mode_text).ok_or(DecodeError::UnknownMode { mode: mode_text })?;
                let options = fields.pairs()?;
                let request = Request {
                    filename,
                    mode,
                    options,
                };
                Ok(if opcode == OPCODE_RRQ {
                    Packet::ReadRequest(request)
                } else {
                    Packet::WriteRequest(request)
                })
            }
            OPCODE_DATA => match body {
                [hi, lo, data @ ..] => Ok(Packet::Data {
                    block: u16::from_be_bytes([*hi, *lo]),
                    data: data.to_vec(),
                }),
                _ => Err(DecodeError::TooShort { len: bytes.len() }),
            },
            OPCODE_ACK => match body {
                [hi, lo] => Ok(Packet::Ack {
                    block: u16::from_be_bytes([*hi, *lo]),
                }),
                _ => Err(DecodeError::BadLength {
                    opcode,
                    len: bytes.len(),
                }),
            },
            OPCODE_ERROR => match body {
                [hi, lo, rest @ ..] => {
                    // Some clients omit the final NUL; the text ends at the first NUL or
                    // at the end of the packet.
                    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
                    let text = &rest[..end];
                    let message = String::from_utf8_lossy(text).into_owned();
                    Ok(Packet::Error {
                        code: ErrorCode::from_u16(u16::from_be_bytes([*hi, *lo])),
                        message,
                    })
                }
                _ => Err(DecodeError::TooShort { len: bytes.len() }),
            },
            OPCODE_OACK => Ok(Packet::OptionAck(Strings::new(body).pairs()?)),
            other => Err(DecodeError::UnknownOpcode { opcode: other }),
        }
    }

    /// Encodes into `out` (cleared first).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.clear();
        match self {
            Packet::ReadRequest(request) | Packet::WriteRequest(request) => {
                let opcode = if matches!(self, Packet::ReadRequest(_)) {
                    OPCODE_RRQ
                } else {
                    OPCODE_WRQ
                };
                out.extend_from_slice(&opcode.to_be_bytes());
                push_string(out, &request.filename);
                push_string(out, request.mode.as_str());
                for (name, value) in &request.options {
                    push_string(out, name);
                    push_string(out, value);
                }
            }
            Packet::Data { block, data } => encode_data(*block, data, out),
            Packet::Ack { block } => {
                out.extend_from_slice(&OPCODE_ACK.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
            }
            Packet::Error { code, message } => encode_error(*code, message, out),
            Packet::OptionAck(options) => encode_oack(options, out),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

/// Encodes a DATA packet without building a [`Packet`] (the hot path of a transfer).
pub fn encode_data(block: u16, data: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&data_header(block));
    out.extend_from_slice(data);
}

/// The 4 bytes that precede a DATA packet's payload, for callers that lay several packets
/// out back to back (one UDP segmentation-offload send per window).
pub fn data_header(block: u16) -> [u8; 4] {
    let [op_high, op_low] = OPCODE_DATA.to_be_bytes();
    let [block_high, block_low] = block.to_be_bytes();
    [op_high, op_low, block_high, block_low]
}

pub fn encode_error(code: ErrorCode, message: &str, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&OPCODE_ERROR.to_be_bytes());
    out.extend_from_slice(&code.to_u16().to_be_bytes());
    push_string(out, message);
}

pub fn encode_oack(options: &[(String, String)], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&OPCODE_OACK.to_be_bytes());
    for (name, value) in options {
        push_string(out, name);
        push_string(out, value);
    }
}

fn push_string(out: &mut Vec<u8>, text: &str) {
    // Text with an embedded NUL would end early on the wire; cut it there.
    let bytes = text.as_bytes();
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    out.extend_from_slice(&bytes[..end]);
    out.push(0);
}

/// NUL-terminated strings of a request or OACK body.
struct Strings<'a> {
    rest: &'a [u8],
}

impl<'a> Strings<'a> {
    fn new(rest: &'a [u8]) -> Strings<'a> {
        Strings { rest }
    }

    fn next_field(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let end = self
            .rest
            .iter()
            .position(|b| *b == 0)
            .ok_or(DecodeError::Unterminated { field })?;
        let text =
            std::str::from_utf8(&self.rest[..end]).map_err(|_| DecodeError::NotUtf8 { field })?;
        self.rest = &self.rest[end + 1..];
        Ok(text.to_owned())
    }

    fn pairs(mut self) -> Result<Vec<(String, String)>, DecodeError> {
        let mut pairs = Vec::new();
        while !self.rest.is_empty() {
            // Some clients pad the request with NULs after the last option.
            if self.rest.iter().all(|b| *b == 0) {
                break;
            }
            let name = self.next_field("option name")?;
            let value = self.next_field("option value")?;
            pairs.push((name, value));
        }
        Ok(pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bytes: &[u8], expected: Result<Packet, DecodeError>) {
        let decoded = Packet::decode(bytes);
        assert_eq!(decoded, expected, "{bytes:?}");
        if let Ok(packet) = decoded {
            assert_eq!(Packet::decode(&packet.encode()), Ok(packet), "round trip");
        }
    }

    #[test]
    fn decode_table() {
        let rrq = |name: &str, options: Vec<(&str, &str)>| {
            Packet::ReadRequest(Request {
                filename: name.into(),
                mode: Mode::Octet,
                options: options
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            })
        };
        check(
            b"\x00\x01pxelinux.0\x00octet\x00",
            Ok(rrq("pxelinux.0", vec![])),
        );
        check(
            b"\x00\x01a\x00OCTET\x00blksize\x001468\x00tsize\x000\x00",
            Ok(rrq("a", vec![("blksize", "1468"), ("tsize", "0")])),
        );
        check(
            b"\x00\x01a\x00octet\x00windowsize\x0016\x00\x00\x00",
            Ok(rrq("a", vec![("windowsize", "16")])),
        );
        check(
            b"\x00\x02up\x00netascii\x00",
            Ok(Packet::WriteRequest(Request {
                filename: "up".into(),
                mode: Mode::Netascii,
                options: vec![],
            })),
        );
        check(
            b"\x00\x03\x00\x01abc",
            Ok(Packet::Data {
                block: 1,
                data: b"abc".to_vec(),
            }),
        );
        check(b"\x00\x04\xff\xff", Ok(Packet::Ack { block: 65535 }));
        check(
            b"\x00\x05\x00\x01nope\x00",
            Ok(Packet::Error {
                code: ErrorCode::FileNotFound,
                message: "nope".into(),
            }),
        );
        check(
            b"\x00\x06blksize\x00512\x00",
            Ok(Packet::OptionAck(vec![("blksize".into(), "512".into())])),
        );
        check(b"\x00", Err(DecodeError::TooShort { len: 1 }));
        check(b"\x00\x09", Err(DecodeError::UnknownOpcode { opcode: 9 }));
        check(
            b"\x00\x04\x00",
            Err(DecodeError::BadLength { opcode: 4, len: 3 }),
        );
        check(b"\x00\x03\x00", Err(DecodeError::TooShort { len: 3 }));
        check(
            b"\x00\x01file",
            Err(DecodeError::Unterminated { field: "filename" }),
        );
        check(b"\x00\x01\x00octet\x00", Err(DecodeError::EmptyFilename));
        check(
            b"\x00\x01a\x00binary\x00",
            Err(DecodeError::UnknownMode {
                mode: "binary".into(),
            }),
        );
        check(
            b"\x00\x01\xff\x00octet\x00",
            Err(DecodeError::NotUtf8 { field: "filename" }),
        );
        check(
            b"\x00\x01a\x00octet\x00blksize\x00",
            Err(DecodeError::Unterminated {
                field: "option value",
            }),
        );
    }

    #[test]
    fn error_without_final_nul_is_accepted() {
        assert_eq!(
            Packet::decode(b"\x00\x05\x00\x08no"),
            Ok(Packet::Error {
                code: ErrorCode::OptionRefused,
                message: "no".into()
            })
        );
    }
}
