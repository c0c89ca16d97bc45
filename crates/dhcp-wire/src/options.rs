//! DHCPv4 options (RFC 2132 and friends) as typed values.
//!
//! Options arrive as `(code, bytes)` pairs.
//! Repeated codes are concatenated first (RFC 3396), then each known code is parsed into its
//! typed variant; codes we do not model are kept verbatim in [`DhcpOption::Unknown`], so a
//! message decoded and encoded again carries them unchanged.

use std::net::Ipv4Addr;

use crate::DecodeError;

/// Option 53 values (RFC 2132 section 9.6, RFC 4388, RFC 6926).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
    /// Any other value (FORCERENEW, LEASEQUERY, ...): carried, never answered.
    Other(u8),
}

impl MessageType {
    pub fn from_u8(value: u8) -> MessageType {
        match value {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            other => MessageType::Other(other),
        }
    }

    pub fn to_u8(self) -> u8 {
        match self {
            MessageType::Discover => 1,
            MessageType::Offer => 2,
            MessageType::Request => 3,
            MessageType::Decline => 4,
            MessageType::Ack => 5,
            MessageType::Nak => 6,
            MessageType::Release => 7,
            MessageType::Inform => 8,
            MessageType::Other(other) => other,
        }
    }
}

/// Option 94, client network interface identifier (RFC 4578 section 2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkInterfaceId {
    /// 1 = UNDI.
    pub kind: u8,
    pub major: u8,
    pub minor: u8,
}

/// One sub-option of an encapsulated option (82 relay agent information, 175 iPXE).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubOption {
    pub code: u8,
    pub data: Vec<u8>,
}

/// Option codes this crate knows by name.
pub mod code {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DOMAIN_NAME_SERVER: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const INTERFACE_MTU: u8 = 26;
    pub const BROADCAST_ADDRESS: u8 = 28;
    pub const VENDOR_SPECIFIC: u8 = 43;
    pub const REQUESTED_IP_ADDRESS: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_IDENTIFIER: u8 = 54;
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const VENDOR_CLASS_IDENTIFIER: u8 = 60;
    pub const CLIENT_IDENTIFIER: u8 = 61;
    pub const TFTP_SERVER_NAME: u8 = 66;
    pub const BOOTFILE_NAME: u8 = 67;
    pub const USER_CLASS: u8 = 77;
    pub const RELAY_AGENT_INFORMATION: u8 = 82;
    pub const CLIENT_SYSTEM_ARCHITECTURE: u8 = 93;
    pub const CLIENT_NETWORK_INTERFACE: u8 = 94;
    pub const CLIENT_MACHINE_ID: u8 = 97;
    pub const IPXE_ENCAPSULATED: u8 = 175;
    pub const PXELINUX_PATH_PREFIX: u8 = 210;
    pub const END: u8 = 255;
}

/// A typed DHCPv4 option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DhcpOption {
    /// 1
    SubnetMask(Ipv4Addr),
    /// 3
    Router(Vec<Ipv4Addr>),
    /// 6
    DomainNameServer(Vec<Ipv4Addr>),
    /// 12
    Hostname(String),
    /// 15
    DomainName(String),
    /// 26
    InterfaceMtu(u16),
    /// 28
    BroadcastAddress(Ipv4Addr),
    /// 43, opaque vendor data.
    VendorSpecific(Vec<u8>),
    /// 50
    RequestedIpAddress(Ipv4Addr),
    /// 51, seconds.
    LeaseTime(u32),
    /// 53
    MessageType(MessageType),
    /// 54
    ServerIdentifier(Ipv4Addr),
    /// 55, the codes the client asks for, in its order.
    ParameterRequestList(Vec<u8>),
    /// 56, text accompanying a NAK.
    Message(String),
    /// 57
    MaxMessageSize(u16),
    /// 58, seconds.
    RenewalTime(u32),
    /// 59, seconds.
    RebindingTime(u32),
    /// 60, e.g. `PXEClient:Arch:00007:UNDI:003016` or `HTTPClient`; not always text.
    VendorClassIdentifier(Vec<u8>),
    /// 61
    ClientIdentifier(Vec<u8>),
    /// 66
    TftpServerName(String),
    /// 67
    BootfileName(String),
    /// 77, raw: iPXE sends a bare `iPXE`, RFC 3004 clients send length-prefixed classes.
    UserClass(Vec<u8>),
    /// 82 (RFC 3046), sub-options in order.
    RelayAgentInformation(Vec<SubOption>),
    /// 93 (RFC 4578), one or more architecture types.
    ClientSystemArchitecture(Vec<u16>),
    /// 94 (RFC 4578)
    ClientNetworkInterface(NetworkInterfaceId),
    /// 97 (RFC 4578), type byte then identifier (usually 0 and a 16-byte GUID).
    ClientMachineId(Vec<u8>),
    /// 175, iPXE's encapsulated feature options (19 http, 24 bzimage, 36 efi, ...).
    IpxeEncapsulated(Vec<SubOption>),
    /// 210 (RFC 5071), PXELINUX path prefix.
    PathPrefix(String),
    /// Any other code, bytes as received.
    Unknown { code: u8, data: Vec<u8> },
}

impl DhcpOption {
    pub fn code(&self) -> u8 {
        match self {
            DhcpOption::SubnetMask(_) => code::SUBNET_MASK,
            DhcpOption::Router(_) => code::ROUTER,
            DhcpOption::DomainNameServer(_) => code::DOMAIN_NAME_SERVER,
            DhcpOption::Hostname(_) => code::HOSTNAME,
            DhcpOption::DomainName(_) => code::DOMAIN_NAME,
            DhcpOption::InterfaceMtu(_) => code::INTERFACE_MTU,
            DhcpOption::BroadcastAddress(_) => code::BROADCAST_ADDRESS,
            DhcpOption::VendorSpecific(_) => code::VENDOR_SPECIFIC,
            DhcpOption::RequestedIpAddress(_) => code::REQUESTED_IP_ADDRESS,
            DhcpOption::LeaseTime(_) => code::LEASE_TIME,
            DhcpOption::MessageType(_) => code::MESSAGE_TYPE,
            DhcpOption::ServerIdentifier(_) => code::SERVER_IDENTIFIER,
            DhcpOption::ParameterRequestList(_) => code::PARAMETER_REQUEST_LIST,
            DhcpOption::Message(_) => code::MESSAGE,
            DhcpOption::MaxMessageSize(_) => code::MAX_MESSAGE_SIZE,
            DhcpOption::RenewalTime(_) => code::RENEWAL_TIME,
            DhcpOption::RebindingTime(_) => code::REBINDING_TIME,
            DhcpOption::VendorClassIdentifier(_) => code::VENDOR_CLASS_IDENTIFIER,
            DhcpOption::ClientIdentifier(_) => code::CLIENT_IDENTIFIER,
            DhcpOption::TftpServerName(_) => code::TFTP_SERVER_NAME,
            DhcpOption::BootfileName(_) => code::BOOTFILE_NAME,
            DhcpOption::UserClass(_) => code::USER_CLASS,
            DhcpOption::RelayAgentInformation(_) => code::RELAY_AGENT_INFORMATION,
            DhcpOption::ClientSystemArchitecture(_) => code::CLIENT_SYSTEM_ARCHITECTURE,
            DhcpOption::ClientNetworkInterface(_) => code::CLIENT_NETWORK_INTERFACE,
            DhcpOption::ClientMachineId(_) => code::CLIENT_MACHINE_ID,
            DhcpOption::IpxeEncapsulated(_) => code::IPXE_ENCAPSULATED,
            DhcpOption::PathPrefix(_) => code::PXELINUX_PATH_PREFIX,
            DhcpOption::Unknown { code, .. } => *code,
        }
    }

    /// Parses the payload of one option; `data` is the concatenation of every instance of `code`.
    pub fn parse(code: u8, data: &[u8]) -> Result<DhcpOption, DecodeError> {
        let option = match code {
            code::SUBNET_MASK => DhcpOption::SubnetMask(one_addr(code, data)?),
            code::ROUTER => DhcpOption::Router(addr_list(code, data)?),
            code::DOMAIN_NAME_SERVER => DhcpOption::DomainNameServer(addr_list(code, data)?),
            code::HOSTNAME => DhcpOption::Hostname(text(code, data)?),
            code::DOMAIN_NAME => DhcpOption::DomainName(text(code, data)?),
            code::INTERFACE_MTU => DhcpOption::InterfaceMtu(be_u16(code, data)?),
            code::BROADCAST_ADDRESS => DhcpOption::BroadcastAddress(one_addr(code, data)?),
            code::VENDOR_SPECIFIC => DhcpOption::VendorSpecific(data.to_vec()),
            code::REQUESTED_IP_ADDRESS => DhcpOption::RequestedIpAddress(one_addr(code, data)?),
            code::LEASE_TIME => DhcpOption::LeaseTime(be_u32(code, data)?),
            code::MESSAGE_TYPE => match data {
                [value] => DhcpOption::MessageType(MessageType::from_u8(*value)),
                _ => return Err(bad_length(code, data, "1")),
            },
            code::SERVER_IDENTIFIER => DhcpOption::ServerIdentifier(one_addr(code, data)?),
            code::PARAMETER_REQUEST_LIST => DhcpOption::ParameterRequestList(data.to_vec()),
            code::MESSAGE => DhcpOption::Message(text(code, data)?),
            code::MAX_MESSAGE_SIZE => DhcpOption::MaxMessageSize(be_u16(code, data)?),
            code::RENEWAL_TIME => DhcpOption::RenewalTime(be_u32(code, data)?),
            code::REBINDING_TIME => DhcpOption::RebindingTime(be_u32(code, data)?),
            code::VENDOR_CLASS_IDENTIFIER => DhcpOption::VendorClassIdentifier(data.to_vec()),
            code::CLIENT_IDENTIFIER => DhcpOption::ClientIdentifier(data.to_vec()),
            code::TFTP_SERVER_NAME => DhcpOption::TftpServerName(text(code, data)?),
            code::BOOTFILE_NAME => DhcpOption::BootfileName(text(code, data)?),
            code::USER_CLASS => DhcpOption::UserClass(data.to_vec()),
            code::RELAY_AGENT_INFORMATION => {
                DhcpOption::RelayAgentInformation(sub_options(code, data)?)
            }
            code::CLIENT_SYSTEM_ARCHITECTURE => {
                if data.is_empty() || !data.len().is_multiple_of(2) {
                    return Err(bad_length(code, data, "a non-zero multiple of 2"));
                }
                DhcpOption::ClientSystemArchitecture(
                    data.chunks_exact(2)
                        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                        .collect(),
                )
            }
            code::CLIENT_NETWORK_INTERFACE => match data {
                [kind, major, minor] => DhcpOption::ClientNetworkInterface(NetworkInterfaceId {
                    kind: *kind,
                    major: *major,
                    minor: *minor,
                }),
                _ => return Err(bad_length(code, data, "3")),
            },
            code::CLIENT_MACHINE_ID => DhcpOption::ClientMachineId(data.to_vec()),
            code::IPXE_ENCAPSULATED => DhcpOption::IpxeEncapsulated(sub_options(code, data)?),
            code::PXELINUX_PATH_PREFIX => DhcpOption::PathPrefix(text(code, data)?),
            code::PAD | code::END | code::OVERLOAD => {
                return Err(DecodeError::ReservedOptionCode { code });
            }
            other => DhcpOption::Unknown {
                code: other,
                data: data.to_vec(),
            },
        };
        Ok(option)
    }

    /// Appends this option's payload (without code and length) to `out`.
    pub fn write_payload(&self, out: &mut Vec<u8>) {
        match self {
            DhcpOption::SubnetMask(addr)
            | DhcpOption::BroadcastAddress(addr)
            | DhcpOption::RequestedIpAddress(addr)
            | DhcpOption::ServerIdentifier(addr) => out.extend_from_slice(&addr.octets()),
            DhcpOption::Router(addrs) | DhcpOption::DomainNameServer(addrs) => {
                for addr in addrs {
                    out.extend_from_slice(&addr.octets());
                }
            }
            DhcpOption::Hostname(text)
            | DhcpOption::DomainName(text)
            | DhcpOption::Message(text)
            | DhcpOption::TftpServerName(text)
            | DhcpOption::BootfileName(text)
            | DhcpOption::PathPrefix(text) => out.extend_from_slice(text.as_bytes()),
            DhcpOption::InterfaceMtu(value) | DhcpOption::MaxMessageSize(value) => {
                out.extend_from_slice(&value.to_be_bytes());
            }
            DhcpOption::LeaseTime(value)
            | DhcpOption::RenewalTime(value)
            | DhcpOption::RebindingTime(value) => out.extend_from_slice(&value.to_be_bytes()),
            DhcpOption::MessageType(kind) => out.push(kind.to_u8()),
            DhcpOption::VendorSpecific(data)
            | DhcpOption::ParameterRequestList(data)
            | DhcpOption::VendorClassIdentifier(data)
            | DhcpOption::ClientIdentifier(data)
            | DhcpOption::UserClass(data)
            | DhcpOption::ClientMachineId(data)
            | DhcpOption::Unknown { data, .. } => out.extend_from_slice(data),
            DhcpOption::RelayAgentInformation(subs) | DhcpOption::IpxeEncapsulated(subs) => {
                for sub in subs {
                    // Sub-options longer than 255 bytes cannot be expressed; the decoder never
                    // produces them, and a caller building one gets it split like an option.
                    for chunk in chunks_or_empty(&sub.data) {
                        out.push(sub.code);
                        out.push(len_u8(chunk));
                        out.extend_from_slice(chunk);
                    }
                }
            }
            DhcpOption::ClientSystemArchitecture(types) => {
                for kind in types {
                    out.extend_from_slice(&kind.to_be_bytes());
                }
            }
            DhcpOption::ClientNetworkInterface(id) => {
                out.extend_from_slice(&[id.kind, id.major, id.minor]);
            }
        }
    }
}

/// Splits `data` into pieces of at most 255 bytes; an empty payload is one empty piece.
pub(crate) fn chunks_or_empty(data: &[u8]) -> Vec<&[u8]> {
    if data.is_empty() {
        vec![data]
    } else {
        data.chunks(255).collect()
    }
}

/// Length of a chunk produced by [`chunks_or_empty`], which never exceeds 255.
pub(crate) fn len_u8(chunk: &[u8]) -> u8 {
    u8::try_from(chunk.len()).unwrap_or(u8::MAX)
}

fn bad_length(code: u8, data: &[u8], expected: &'static str) -> DecodeError {
    DecodeError::OptionLength {
        code,
        len: data.len(),
        expected,
    }
}

fn one_addr(code: u8, data: &[u8]) -> Result<Ipv4Addr, DecodeError> {
    match data {
        [a, b, c, d] => Ok(Ipv4Addr::new(*a, *b, *c, *d)),
        _ => Err(bad_length(code, data, "4")),
    }
}

fn addr_list(code: u8, data: &[u8]) -> Result<Vec<Ipv4Addr>, DecodeError> {
    if data.is_empty() || !data.len().is_multiple_of(4) {
        return Err(bad_length(code, data, "a non-zero multiple of 4"));
    }
    Ok(data
        .chunks_exact(4)
        .map(|quad| Ipv4Addr::new(quad[0], quad[1], quad[2], quad[3]))
        .collect())
}

fn be_u16(code: u8, data: &[u8]) -> Result<u16, DecodeError> {
    match data {
        [a, b] => Ok(u16::from_be_bytes([*a, *b])),
        _ => Err(bad_length(code, data, "2")),
    }
}

fn be_u32(code: u8, data: &[u8]) -> Result<u32, DecodeError> {
    match data {
        [a, b, c, d] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => Err(bad_length(code, data, "4")),
    }
}

fn text(code: u8, data: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(data.to_vec()).map_err(|_| DecodeError::OptionNotUtf8 { code })
}

fn sub_options(code: u8, data: &[u8]) -> Result<Vec<SubOption>, DecodeError> {
    let mut subs = Vec::new();
    let mut rest = data;
    while let [sub_code, len, tail @ ..] = rest {
        let len = usize::from(*len);
        let Some(payload) = tail.get(..len) else {
            return Err(DecodeError::SubOptionOverrun {
                code,
                sub_code: *sub_code,
                len,
            });
        };
        subs.push(SubOption {
            code: *sub_code,
            data: payload.to_vec(),
        });
        rest = &tail[len..];
    }
    if !rest.is_empty() {
        return Err(DecodeError::SubOptionOverrun {
            code,
            sub_code: rest[0],
            len: 0,
        });
    }
    Ok(subs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(code: u8, bytes: &[u8], expected: Result<DhcpOption, DecodeError>) {
        let parsed = DhcpOption::parse(code, bytes);
        assert_eq!(parsed, expected, "code {code} bytes {bytes:?}");
        if let Ok(option) = parsed {
            let mut out = Vec::new();
            option.write_payload(&mut out);
            assert_eq!(out, bytes, "payload of {option:?} does not round-trip");
            assert_eq!(option.code(), code);
        }
    }

    #[test]
    fn parses_each_known_option() {
        use DhcpOption as O;
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        let cases: Vec<(u8, Vec<u8>, Result<DhcpOption, DecodeError>)> = vec![
            (
                1,
                vec![255, 255, 255, 0],
                Ok(O::SubnetMask(Ipv4Addr::new(255, 255, 255, 0))),
            ),
            (3, vec![10, 0, 0, 1], Ok(O::Router(vec![ip]))),
            (
                6,
                vec![10, 0, 0, 1, 8, 8, 8, 8],
                Ok(O::DomainNameServer(vec![ip, Ipv4Addr::new(8, 8, 8, 8)])),
            ),
            (12, b"node1".to_vec(), Ok(O::Hostname("node1".into()))),
            (15, b"maas".to_vec(), Ok(O::DomainName("maas".into()))),
            (26, vec![0x05, 0xdc], Ok(O::InterfaceMtu(1500))),
            (
                28,
                vec![10, 0, 0, 255],
                Ok(O::BroadcastAddress(Ipv4Addr::new(10, 0, 0, 255))),
            ),
            (43, vec![1, 2, 3], Ok(O::VendorSpecific(vec![1, 2, 3]))),
            (50, vec![10, 0, 0, 1], Ok(O::RequestedIpAddress(ip))),
            (51, vec![0, 0, 2, 88], Ok(O::LeaseTime(600))),
            (53, vec![1], Ok(O::MessageType(MessageType::Discover))),
            (53, vec![13], Ok(O::MessageType(MessageType::Other(13)))),
            (54, vec![10, 0, 0, 1], Ok(O::ServerIdentifier(ip))),
            (
                55,
                vec![1, 3, 6],
                Ok(O::ParameterRequestList(vec![1, 3, 6])),
            ),
            (56, b"no".to_vec(), Ok(O::Message("no".into()))),
            (57, vec![0x05, 0xc0], Ok(O::MaxMessageSize(1472))),
            (58, vec![0, 0, 1, 44], Ok(O::RenewalTime(300))),
            (59, vec![0, 0, 2, 13], Ok(O::RebindingTime(525))),
            (
                60,
                b"HTTPClient".to_vec(),
                Ok(O::VendorClassIdentifier(b"HTTPClient".to_vec())),
            ),
            (
                61,
                vec![1, 2, 3, 4, 5, 6, 7],
                Ok(O::ClientIdentifier(vec![1, 2, 3, 4, 5, 6, 7])),
            ),
            (
                66,
                b"10.0.0.1".to_vec(),
                Ok(O::TftpServerName("10.0.0.1".into())),
            ),
            (
                67,
                b"lpxelinux.0".to_vec(),
                Ok(O::BootfileName("lpxelinux.0".into())),
            ),
            (77, b"iPXE".to_vec(), Ok(O::UserClass(b"iPXE".to_vec()))),
            (
                82,
                vec![1, 2, 0xaa, 0xbb, 2, 0],
                Ok(O::RelayAgentInformation(vec![
                    SubOption {
                        code: 1,
                        data: vec![0xaa, 0xbb],
                    },
                    SubOption {
                        code: 2,
                        data: vec![],
                    },
                ])),
            ),
            (93, vec![0, 7], Ok(O::ClientSystemArchitecture(vec![7]))),
            (
                93,
                vec![0, 7, 0, 16],
                Ok(O::ClientSystemArchitecture(vec![7, 16])),
            ),
            (
                94,
                vec![1, 3, 16],
                Ok(O::ClientNetworkInterface(NetworkInterfaceId {
                    kind: 1,
                    major: 3,
                    minor: 16,
                })),
            ),
            (97, vec![0; 17], Ok(O::ClientMachineId(vec![0; 17]))),
            (
                175,
                vec![19, 1, 1, 36, 1, 1],
                Ok(O::IpxeEncapsulated(vec![
                    SubOption {
                        code: 19,
                        data: vec![1],
                    },
                    SubOption {
                        code: 36,
                        data: vec![1],
                    },
                ])),
            ),
            (
                210,
                b"http://x/".to_vec(),
                Ok(O::PathPrefix("http://x/".into())),
            ),
            (
                42,
                vec![1, 2],
                Ok(O::Unknown {
                    code: 42,
                    data: vec![1, 2],
                }),
            ),
        ];
        for (code, bytes, expected) in cases {
            check(code, &bytes, expected);
        }
    }

    #[test]
    fn rejects_bad_payloads() {
        let length = |code, len, expected| {
            Err(DecodeError::OptionLength {
                code,
                len,
                expected,
            })
        };
        check(1, &[255, 255], length(1, 2, "4"));
        check(3, &[], length(3, 0, "a non-zero multiple of 4"));
        check(
            6,
            &[1, 2, 3, 4, 5],
            length(6, 5, "a non-zero multiple of 4"),
        );
        check(26, &[1], length(26, 1, "2"));
        check(51, &[0, 0, 0], length(51, 3, "4"));
        check(53, &[], length(53, 0, "1"));
        check(53, &[1, 2], length(53, 2, "1"));
        check(93, &[0], length(93, 1, "a non-zero multiple of 2"));
        check(94, &[1, 2], length(94, 2, "3"));
        check(
            12,
            &[0xff, 0xfe],
            Err(DecodeError::OptionNotUtf8 { code: 12 }),
        );
        check(
            82,
            &[1, 5, 0],
            Err(DecodeError::SubOptionOverrun {
                code: 82,
                sub_code: 1,
                len: 5,
            }),
        );
        check(
            175,
            &[19],
            Err(DecodeError::SubOptionOverrun {
                code: 175,
                sub_code: 19,
                len: 0,
            }),
        );
        check(52, &[1], Err(DecodeError::ReservedOptionCode { code: 52 }));
    }
}
