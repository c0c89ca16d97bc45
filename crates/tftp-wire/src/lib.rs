//! TFTP on the wire and one read transfer as a state machine.
//!
//! [`Packet`] decodes and encodes RFC 1350 packets with RFC 2347 options; [`negotiate`]
//! applies blksize (RFC 2348), timeout and tsize (RFC 2349) and windowsize (RFC 7440);
//! [`ReadTransfer`] takes an incoming packet or a timeout plus the current time and says what
//! to send next and when to wake up, including retransmission.
//!
//! No I/O here: no sockets, files or clock. Only read transfers are modelled, because a rack
//! serves files and never accepts uploads. Decoding never panics (see `fuzz/`).
#![forbid(unsafe_code)]

pub mod packet;
pub mod transfer;

use thiserror::Error;

pub use packet::{
    ErrorCode, Mode, Packet, Request, data_header, encode_data, encode_error, encode_oack,
};
pub use transfer::{
    BlockRange, Failure, Limits, Negotiated, ReadTransfer, Status, Step, Transmit, negotiate,
};

/// Why bytes are not a TFTP packet.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("packet is {len} bytes, too short for its opcode")]
    TooShort { len: usize },
    #[error("opcode {opcode} is not a TFTP opcode")]
    UnknownOpcode { opcode: u16 },
    #[error("packet with opcode {opcode} has length {len}")]
    BadLength { opcode: u16, len: usize },
    #[error("{field} is not terminated by a NUL byte")]
    Unterminated { field: &'static str },
    #[error("{field} is not valid UTF-8")]
    NotUtf8 { field: &'static str },
    #[error("request has an empty file name")]
    EmptyFilename,
    #[error("transfer mode {mode:?} is not netascii, octet or mail")]
    UnknownMode { mode: String },
}
