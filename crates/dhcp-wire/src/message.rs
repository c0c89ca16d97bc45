//! The DHCPv4 message (RFC 2131 section 2): fixed BOOTP header, magic cookie, options.

use std::net::Ipv4Addr;

use maas_domain::MacAddress;

use crate::options::{DhcpOption, MessageType, chunks_or_empty, code, len_u8};
use crate::{DecodeError, EncodeError};

/// Bytes before the magic cookie: op .. file.
pub const HEADER_LEN: usize = 236;
/// RFC 2131 magic cookie 99.130.83.99.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// BOOTP's minimum message size; some PXE ROMs drop shorter replies.
pub const MIN_MESSAGE_LEN: usize = 300;
/// The `flags` bit asking for broadcast replies.
pub const FLAG_BROADCAST: u16 = 0x8000;

/// BOOTP `op`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    BootRequest,
    BootReply,
}

/// A decoded DHCPv4 message.
///
/// `options` keeps the order of first appearance; instances of one code were concatenated
/// (RFC 3396) before parsing, and options carried in `sname`/`file` through option 52
/// (overload) are merged in, with those fields then left empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub op: Op,
    pub htype: u8,
    pub hlen: u8,
    pub hops: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 16],
    /// Server host name, without trailing NULs; at most 63 bytes when encoding.
    pub sname: Vec<u8>,
    /// Boot file name, without trailing NULs; at most 127 bytes when encoding.
    pub file: Vec<u8>,
    pub options: Vec<DhcpOption>,
}

impl Message {
    /// A blank message with the given op and xid (Ethernet hardware type, no options).
    pub fn new(op: Op, xid: u32) -> Message {
        Message {
            op,
            htype: 1,
            hlen: 6,
            hops: 0,
            xid,
            secs: 0,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: [0; 16],
            sname: Vec::new(),
            file: Vec::new(),
            options: Vec::new(),
        }
    }

    /// Decodes one message from a UDP payload.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        if bytes.len() < HEADER_LEN + MAGIC_COOKIE.len() {
            return Err(DecodeError::TooShort { len: bytes.len() });
        }
        let op = match bytes[0] {
            1 => Op::BootRequest,
            2 => Op::BootReply,
            other => return Err(DecodeError::UnknownOp { op: other }),
        };
        let cookie = &bytes[HEADER_LEN..HEADER_LEN + 4];
        if cookie != MAGIC_COOKIE {
            return Err(DecodeError::BadMagicCookie {
                found: [cookie[0], cookie[1], cookie[2], cookie[3]],
            });
        }
        let addr =
            |at: usize| Ipv4Addr::new(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);
        let mut chaddr = [0u8; 16];
        chaddr.copy_from_slice(&bytes[28..44]);
        let sname_field = &bytes[44..108];
        let file_field = &bytes[108..236];

        let mut raw = RawOptions::default();
        raw.scan(&bytes[HEADER_LEN + 4..], Field::Options)?;
        let overload = raw.take(code::OVERLOAD);
        let (file_overloaded, sname_overloaded) = match overload.as_deref() {
            None => (false, false),
            Some([1]) => (true, false),
            Some([2]) => (false, true),
            Some([3]) => (true, true),
            Some(other) => {
                return Err(DecodeError::BadOverload {
                    value: other.to_vec(),
                });
            }
        };
        // RFC 2131 section 4.1: options, then file, then sname.
        if file_overloaded {
            raw.scan(file_field, Field::File)?;
        }
        if sname_overloaded {
            raw.scan(sname_field, Field::Sname)?;
        }
        let options = raw
            .entries
            .into_iter()
            .map(|(code, data)| DhcpOption::parse(code, &data))
            .collect::<Result<Vec<_>, _>>()?;

        Ok(Message {
            op,
            htype: bytes[1],
            hlen: bytes[2],
            hops: bytes[3],
            xid: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            secs: u16::from_be_bytes([bytes[8], bytes[9]]),
            flags: u16::from_be_bytes([bytes[10], bytes[11]]),
            ciaddr: addr(12),
            yiaddr: addr(16),
            siaddr: addr(20),
            giaddr: addr(24),
            chaddr,
            sname: if sname_overloaded {
                Vec::new()
            } else {
                trim_nul(sname_field)
            },
            file: if file_overloaded {
                Vec::new()
            } else {
                trim_nul(file_field)
            },
            options,
        })
    }

    /// Encodes into `out` (cleared first), padded to [`MIN_MESSAGE_LEN`].
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if self.sname.len() > 63 {
            return Err(EncodeError::FieldTooLong {
                field: "sname",
                len: self.sname.len(),
                max: 63,
            });
        }
        if self.file.len() > 127 {
            return Err(EncodeError::FieldTooLong {
                field: "file",
                len: self.file.len(),
                max: 127,
            });
        }
        out.clear();
        out.push(match self.op {
            Op::BootRequest => 1,
            Op::BootReply => 2,
        });
        out.extend_from_slice(&[self.htype, self.hlen, self.hops]);
        out.extend_from_slice(&self.xid.to_be_bytes());
        out.extend_from_slice(&self.secs.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        for addr in [self.ciaddr, self.yiaddr, self.siaddr, self.giaddr] {
            out.extend_from_slice(&addr.octets());
        }
        out.extend_from_slice(&self.chaddr);
        out.extend_from_slice(&self.sname);
        out.resize(44 + 64, 0);
        out.extend_from_slice(&self.file);
        out.resize(HEADER_LEN, 0);
        out.extend_from_slice(&MAGIC_COOKIE);
        let mut payload = Vec::with_capacity(64);
        for option in &self.options {
            let code = option.code();
            if matches!(code, code::PAD | code::END | code::OVERLOAD) {
                return Err(EncodeError::ReservedOptionCode { code });
            }
            payload.clear();
            option.write_payload(&mut payload);
            // RFC 3396: a payload over 255 bytes goes out as consecutive instances.
            for chunk in chunks_or_empty(&payload) {
                out.push(code);
                out.push(len_u8(chunk));
                out.extend_from_slice(chunk);
            }
        }
        out.push(code::END);
        if out.len() < MIN_MESSAGE_LEN {
            out.resize(MIN_MESSAGE_LEN, 0);
        }
        Ok(())
    }

    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(MIN_MESSAGE_LEN);
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// The first option with `code`.
    pub fn option(&self, code: u8) -> Option<&DhcpOption> {
        self.options.iter().find(|option| option.code() == code)
    }

    /// Replaces any option with the same code, or appends.
    pub fn set_option(&mut self, option: DhcpOption) {
        let code = option.code();
        match self
            .options
            .iter_mut()
            .find(|existing| existing.code() == code)
        {
            Some(slot) => *slot = option,
            None => self.options.push(option),
        }
    }

    pub fn message_type(&self) -> Option<MessageType> {
        self.options.iter().find_map(|option| match option {
            DhcpOption::MessageType(kind) => Some(*kind),
            _ => None,
        })
    }

    /// The client's Ethernet address, when `htype`/`hlen` say it is one.
    pub fn client_mac(&self) -> Option<MacAddress> {
        if self.htype != 1 || self.hlen != 6 {
            return None;
        }
        let mut octets = [0u8; 6];
        octets.copy_from_slice(&self.chaddr[..6]);
        Some(MacAddress::new(octets))
    }

    pub fn set_client_mac(&mut self, mac: MacAddress) {
        self.htype = 1;
        self.hlen = 6;
        self.chaddr = [0; 16];
        self.chaddr[..6].copy_from_slice(&mac.octets());
    }

    pub fn requested_ip(&self) -> Option<Ipv4Addr> {
        self.options.iter().find_map(|option| match option {
            DhcpOption::RequestedIpAddress(addr) => Some(*addr),
            _ => None,
        })
    }

    pub fn server_identifier(&self) -> Option<Ipv4Addr> {
        self.options.iter().find_map(|option| match option {
            DhcpOption::ServerIdentifier(addr) => Some(*addr),
            _ => None,
        })
    }

    pub fn hostname(&self) -> Option<&str> {
        self.options.iter().find_map(|option| match option {
            DhcpOption::Hostname(name) => Some(name.as_str()),
            _ => None,
        })
    }

    pub fn vendor_class(&self) -> Option<&[u8]> {
        self.options.iter().find_map(|option| match option {
            DhcpOption::VendorClassIdentifier(data) => Some(data.as_slice()),
            _ => None,
        })
    }

    pub fn parameter_request_list(&self) -> Option<&[u8]> {
        self.options.iter().find_map(|option| match option {
            DhcpOption::ParameterRequestList(codes) => Some(codes.as_slice()),
            _ => None,
        })
    }

    /// The first architecture type of option 93.
    pub fn client_architecture(&self) -> Option<u16> {
        self.options.iter().find_map(|option| match option {
            DhcpOption::ClientSystemArchitecture(types) => types.first().copied(),
            _ => None,
        })
    }

    /// Whether the client is iPXE: option 77 says `iPXE` (bare, as iPXE sends it, or as an
    /// RFC 3004 class), or option 175 is present.
    pub fn is_ipxe(&self) -> bool {
        self.options.iter().any(|option| match option {
            DhcpOption::UserClass(data) => user_class_contains(data, b"iPXE"),
            DhcpOption::IpxeEncapsulated(_) => true,
            _ => false,
        })
    }

    pub fn is_broadcast(&self) -> bool {
        self.flags & FLAG_BROADCAST != 0
    }
}

/// Option 77 as iPXE sends it (`iPXE`) or as RFC 3004 length-prefixed classes.
pub fn user_class_contains(data: &[u8], class: &[u8]) -> bool {
    if data == class {
        return true;
    }
    let mut rest = data;
    while let [len, tail @ ..] = rest {
        let len = usize::from(*len);
        let Some(item) = tail.get(..len) else {
            return false;
        };
        if item == class {
            return true;
        }
        rest = &tail[len..];
    }
    false
}

fn trim_nul(field: &[u8]) -> Vec<u8> {
    let end = field
        .iter()
        .position(|byte| *byte == 0)
        .unwrap_or(field.len());
    field[..end].to_vec()
}

#[derive(Clone, Copy)]
enum Field {
    Options,
    File,
    Sname,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Options => "options",
            Field::File => "file",
            Field::Sname => "sname",
        }
    }
}

/// Options as `(code, concatenated payload)` in order of first appearance.
#[derive(Default)]
struct RawOptions {
    entries: Vec<(u8, Vec<u8>)>,
}

impl RawOptions {
    fn scan(&mut self, mut area: &[u8], field: Field) -> Result<(), DecodeError> {
        loop {
            match area {
                [] => {
                    // The options field must end with END; sname/file may end by running out.
                    return match field {
                        Field::Options => Err(DecodeError::MissingEnd),
                        Field::File | Field::Sname => Ok(()),
                    };
                }
                [code::END, ..] => return Ok(()),
                [code::PAD, rest @ ..] => area = rest,
                [code, len, rest @ ..] => {
                    let len = usize::from(*len);
                    let Some(payload) = rest.get(..len) else {
                        return Err(DecodeError::OptionOverrun {
                            code: *code,
                            len,
                            field: field.name(),
                        });
                    };
                    self.push(*code, payload);
                    area = &rest[len..];
                }
                [code] => {
                    return Err(DecodeError::OptionOverrun {
                        code: *code,
                        len: 0,
                        field: field.name(),
                    });
                }
            }
        }
    }

    fn push(&mut self, code: u8, payload: &[u8]) {
        match self
            .entries
            .iter_mut()
            .find(|(existing, _)| *existing == code)
        {
            Some((_, data)) => data.extend_from_slice(payload),
            None => self.entries.push((code, payload.to_vec())),
        }
    }

    fn take(&mut self, code: u8) -> Option<Vec<u8>> {
        let at = self
            .entries
            .iter()
            .position(|(existing, _)| *existing == code)?;
        Some(self.entries.remove(at).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds raw message bytes: header fields, then `options` verbatim after the cookie.
    fn raw(op: u8, options: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0u8; HEADER_LEN];
        bytes[0] = op;
        bytes[1] = 1;
        bytes[2] = 6;
        bytes[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        bytes[28..34].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        bytes.extend_from_slice(&MAGIC_COOKIE);
        bytes.extend_from_slice(options);
        bytes
    }

    fn check(bytes: &[u8], expected: Result<Vec<DhcpOption>, DecodeError>) {
        let decoded = Message::decode(bytes);
        match (&decoded, &expected) {
            (Ok(message), Ok(options)) => {
                assert_eq!(&message.options, options);
                let again = Message::decode(&message.encode().expect("encodes")).expect("decodes");
                assert_eq!(&again, message, "re-encoded message differs");
            }
            _ => assert_eq!(decoded.map(|m| m.options), expected),
        }
    }

    #[test]
    fn decodes_framing_table() {
        use DhcpOption as O;
        let discover = O::MessageType(MessageType::Discover);
        check(&[1, 2, 3], Err(DecodeError::TooShort { len: 3 }));
        check(&raw(3, &[255]), Err(DecodeError::UnknownOp { op: 3 }));
        check(&raw(1, &[53, 1, 1, 255]), Ok(vec![discover.clone()]));
        check(
            &raw(1, &[0, 0, 53, 1, 1, 255, 9, 9]),
            Ok(vec![discover.clone()]),
        );
        check(&raw(1, &[53, 1, 1]), Err(DecodeError::MissingEnd));
        check(&raw(1, &[]), Err(DecodeError::MissingEnd));
        check(
            &raw(1, &[53, 5, 1]),
            Err(DecodeError::OptionOverrun {
                code: 53,
                len: 5,
                field: "options",
            }),
        );
        check(
            &raw(1, &[53]),
            Err(DecodeError::OptionOverrun {
                code: 53,
                len: 0,
                field: "options",
            }),
        );
        // RFC 3396: two instances of option 12 are one value.
        check(
            &raw(1, &[12, 2, b'a', b'b', 53, 1, 3, 12, 1, b'c', 255]),
            Ok(vec![
                O::Hostname("abc".into()),
                O::MessageType(MessageType::Request),
            ]),
        );
        check(
            &raw(1, &[52, 1, 7, 255]),
            Err(DecodeError::BadOverload { value: vec![7] }),
        );
        check(
            &raw(1, &[250, 0, 255]),
            Ok(vec![O::Unknown {
                code: 250,
                data: vec![],
            }]),
        );
    }

    #[test]
    fn bad_cookie_is_reported() {
        let mut bytes = raw(1, &[255]);
        bytes[HEADER_LEN] = 0;
        assert_eq!(
            Message::decode(&bytes),
            Err(DecodeError::BadMagicCookie {
                found: [0, 130, 83, 99]
            })
        );
    }

    #[test]
    fn overloaded_file_field_carries_options() {
        let mut bytes = raw(1, &[52, 1, 1, 53, 1, 1, 255]);
        bytes[108..114].copy_from_slice(&[12, 3, b'p', b'x', b'e', 255]);
        let message = Message::decode(&bytes).expect("decodes");
        assert!(message.file.is_empty());
        assert_eq!(message.hostname(), Some("pxe"));
        assert_eq!(message.message_type(), Some(MessageType::Discover));
    }

    #[test]
    fn header_fields_and_accessors() {
        let mut bytes = raw(
            1,
            &[53, 1, 1, 77, 4, b'i', b'P', b'X', b'E', 93, 2, 0, 7, 255],
        );
        bytes[10] = 0x80;
        bytes[24..28].copy_from_slice(&[10, 1, 0, 1]);
        bytes[108..111].copy_from_slice(b"abc");
        let message = Message::decode(&bytes).expect("decodes");
        assert_eq!(message.xid, 0x1234_5678);
        assert!(message.is_broadcast());
        assert_eq!(message.giaddr, Ipv4Addr::new(10, 1, 0, 1));
        assert_eq!(message.file, b"abc");
        assert_eq!(
            message.client_mac().map(|m| m.to_string()).as_deref(),
            Some("52:54:00:12:34:56")
        );
        assert!(message.is_ipxe());
        assert_eq!(message.client_architecture(), Some(7));
    }

    #[test]
    fn long_options_are_split_when_encoding() {
        let mut message = Message::new(Op::BootReply, 7);
        message
            .options
            .push(DhcpOption::VendorSpecific(vec![0xab; 300]));
        let bytes = message.encode().expect("encodes");
        assert_eq!(&bytes[240..242], &[43, 255]);
        assert_eq!(&bytes[240 + 257..240 + 259], &[43, 45]);
        assert_eq!(Message::decode(&bytes).expect("decodes"), message);
    }

    #[test]
    fn encode_rejects_oversized_fields() {
        let mut message = Message::new(Op::BootReply, 7);
        message.file = vec![b'x'; 128];
        assert_eq!(
            message.encode(),
            Err(EncodeError::FieldTooLong {
                field: "file",
                len: 128,
                max: 127
            })
        );
    }

    #[test]
    fn user_class_forms() {
        assert!(user_class_contains(b"iPXE", b"iPXE"));
        assert!(user_class_contains(b"\x03foo\x04iPXE", b"iPXE"));
        assert!(!user_class_contains(b"\x09iPXE", b"iPXE"));
        assert!(!user_class_contains(b"gPXE", b"iPXE"));
    }
}
