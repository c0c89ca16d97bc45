//! DHCPv4 on the wire, and the lease engine that answers it.
//!
//! [`Message::decode`] turns a UDP payload into a typed [`Message`] and [`Message::encode`]
//! turns it back; every option the rack uses has a typed [`DhcpOption`] variant and any other
//! code is preserved as bytes. [`engine::Engine`] decides addresses and builds replies.
//!
//! This crate does no I/O: no sockets, files, clock or environment. Time comes in as an
//! argument. Decoding never panics, whatever the input (see `fuzz/`).
#![forbid(unsafe_code)]

pub mod engine;
pub mod message;
pub mod net;
pub mod options;

use thiserror::Error;

pub use message::{Message, Op};
pub use net::{IpRange, Ipv4Net, NetError};
pub use options::{DhcpOption, MessageType, NetworkInterfaceId, SubOption};

/// Why bytes are not a DHCPv4 message.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("message is {len} bytes, shorter than the 240-byte header and cookie")]
    TooShort { len: usize },
    #[error("op {op} is neither BOOTREQUEST (1) nor BOOTREPLY (2)")]
    UnknownOp { op: u8 },
    #[error("magic cookie is {found:?}, not 99.130.83.99")]
    BadMagicCookie { found: [u8; 4] },
    #[error("options field has no END option")]
    MissingEnd,
    #[error("option {code} claims {len} bytes, past the end of the {field} field")]
    OptionOverrun {
        code: u8,
        len: usize,
        field: &'static str,
    },
    #[error("option {code} has {len} bytes, expected {expected}")]
    OptionLength {
        code: u8,
        len: usize,
        expected: &'static str,
    },
    #[error("option {code} is not valid UTF-8 text")]
    OptionNotUtf8 { code: u8 },
    #[error("sub-option {sub_code} of option {code} claims {len} bytes, past its end")]
    SubOptionOverrun { code: u8, sub_code: u8, len: usize },
    #[error("option 52 (overload) has value {value:?}, expected 1, 2 or 3")]
    BadOverload { value: Vec<u8> },
    #[error("option code {code} is reserved (pad, end or overload) and has no value")]
    ReservedOptionCode { code: u8 },
}

/// Why a [`Message`] cannot be encoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error("{field} is {len} bytes, at most {max} fit")]
    FieldTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("option code {code} is reserved and cannot be sent as an option")]
    ReservedOptionCode { code: u8 },
}
