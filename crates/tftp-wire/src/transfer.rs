//! One read transfer (server side) as a state machine.
//!
//! The transfer never reads the file itself: it says which blocks to send, and
//! [`ReadTransfer::block`] maps a block to its byte range, so the caller reads and encodes
//! them with [`crate::encode_data`]. Time is a [`Duration`] since any fixed origin the caller
//! picks; the transfer only compares instants it was given.
//!
//! Windowing follows RFC 7440: up to `windowsize` blocks go out back to back; an ACK for any
//! block in the window acknowledges everything up to it, and the next window starts right
//! after it. Duplicate ACKs are ignored (RFC 1123's fix for the Sorcerer's Apprentice bug);
//! lost packets are recovered by the retransmission timer, which resends the whole window.

use std::time::Duration;

use crate::packet::{ErrorCode, Packet, Request};

pub const DEFAULT_BLKSIZE: u16 = 512;
/// RFC 2348 bounds.
pub const MIN_BLKSIZE: u16 = 8;
pub const MAX_BLKSIZE: u16 = 65464;

/// Server-side limits on what clients may negotiate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest block size granted; 1468 fills one Ethernet frame.
    pub max_blksize: u16,
    /// Largest RFC 7440 window granted.
    pub max_windowsize: u16,
    /// Retransmission timeout when the client does not set `timeout`.
    pub default_timeout: Duration,
    /// Retransmissions of one window before giving up.
    pub max_retries: u8,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_blksize: 1468,
            max_windowsize: 64,
            default_timeout: Duration::from_secs(1),
            max_retries: 5,
        }
    }
}

/// The outcome of option negotiation (RFC 2347, 2348, 2349, 7440).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub blksize: u16,
    pub windowsize: u16,
    pub timeout: Duration,
    /// The options to acknowledge, in the client's order; empty means no OACK.
    pub acknowledged: Vec<(String, String)>,
}

/// Decides the transfer parameters of a read request for a file of `file_size` bytes.
/// Unknown options and out-of-range values are left out of the OACK, which RFC 2347 allows.
pub fn negotiate(request: &Request, file_size: u64, limits: &Limits) -> Negotiated {
    let mut negotiated = Negotiated {
        blksize: DEFAULT_BLKSIZE,
        windowsize: 1,
        timeout: limits.default_timeout,
        acknowledged: Vec::new(),
    };
    for (name, value) in &request.options {
        let value = value.trim();
        if name.eq_ignore_ascii_case("blksize") {
            let Ok(asked) = value.parse::<u32>() else {
                continue;
            };
            if asked < u32::from(MIN_BLKSIZE) {
                continue;
            }
            let granted = asked
                .min(u32::from(MAX_BLKSIZE))
                .min(u32::from(limits.max_blksize.max(MIN_BLKSIZE)));
            negotiated.blksize = u16::try_from(granted).unwrap_or(DEFAULT_BLKSIZE);
            negotiated
                .acknowledged
                .push((name.clone(), negotiated.blksize.to_string()));
        } else if name.eq_ignore_ascii_case("tsize") {
            negotiated
                .acknowledged
                .push((name.clone(), file_size.to_string()));
        } else if name.eq_ignore_ascii_case("timeout") {
            let Ok(seconds) = value.parse::<u8>() else {
                continue;
            };
            if seconds == 0 {
                continue;
            }
            negotiated.timeout = Duration::from_secs(u64::from(seconds));
            negotiated
                .acknowledged
                .push((name.clone(), seconds.to_string()));
        } else if name.eq_ignore_ascii_case("windowsize") {
            let Ok(asked) = value.parse::<u16>() else {
                continue;
            };
            if asked == 0 {
                continue;
            }
            negotiated.windowsize = asked.min(limits.max_windowsize.max(1));
            negotiated
                .acknowledged
                .push((name.clone(), negotiated.windowsize.to_string()));
        }
    }
    negotiated
}

/// What to transmit after a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    Nothing,
    /// The OACK with these options.
    OptionAck(Vec<(String, String)>),
    /// DATA blocks `first..=last` (block indexes, see [`ReadTransfer::block`]).
    Blocks {
        first: u64,
        last: u64,
    },
    /// An ERROR packet, after which the transfer is over.
    Error {
        code: ErrorCode,
        message: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    InProgress,
    Complete,
    Failed(Failure),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No acknowledgement after `max_retries` retransmissions.
    TimedOut,
    /// The client sent an ERROR packet.
    ClientError(ErrorCode),
    /// The client answered the OACK with something other than ACK 0 or ERROR.
    Protocol,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub transmit: Transmit,
    /// When to call [`ReadTransfer::on_timeout`] next; `None` once the transfer is over.
    pub wake_at: Option<Duration>,
    pub status: Status,
}

/// Where a DATA block lies in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRange {
    /// Block number on the wire (wraps to 0 after 65535, as tftp-hpa and curl expect).
    pub wire_block: u16,
    pub offset: u64,
    pub len: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    AwaitingOptionAck,
    Sending,
    Over,
}

/// One read transfer. Block indexes start at 1; index 0 stands for the OACK.
#[derive(Clone, Debug)]
pub struct ReadTransfer {
    size: u64,
    blksize: u16,
    windowsize: u16,
    timeout: Duration,
    max_retries: u8,
    oack: Vec<(String, String)>,
    phase: Phase,
    /// Highest block index acknowledged.
    acked: u64,
    /// Highest block index sent in the current window.
    sent: u64,
    total_blocks: u64,
    retries: u8,
    deadline: Duration,
}

impl ReadTransfer {
    /// Starts a transfer of a `file_size`-byte file; the returned step says what to send.
    pub fn start(
        request: &Request,
        file_size: u64,
        limits: &Limits,
        now: Duration,
    ) -> (ReadTransfer, Step) {
        let negotiated = negotiate(request, file_size, limits);
        let blksize = u64::from(negotiated.blksize);
        let mut transfer = ReadTransfer {
            size: file_size,
            blksize: negotiated.blksize,
            windowsize: negotiated.windowsize,
            timeout: negotiated.timeout,
            max_retries: limits.max_retries,
            oack: negotiated.acknowledged,
            phase: Phase::Sending,
            acked: 0,
            sent: 0,
            // The last block is shorter than blksize, possibly empty.
            total_blocks: file_size / blksize + 1,
            retries: 0,
            deadline: now + negotiated.timeout,
        };
        let step = if transfer.oack.is_empty() {
            transfer.send_window(now)
        } else {
            transfer.phase = Phase::AwaitingOptionAck;
            transfer.waiting(Transmit::OptionAck(transfer.oack.clone()))
        };
        (transfer, step)
    }

    pub fn blksize(&self) -> u16 {
        self.blksize
    }

    pub fn windowsize(&self) -> u16 {
        self.windowsize
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn total_blocks(&self) -> u64 {
        self.total_blocks
    }

    /// Bytes acknowledged so far.
    pub fn bytes_acked(&self) -> u64 {
        (self.acked * u64::from(self.blksize)).min(self.size)
    }

    /// The byte range of block `index` (1-based).
    pub fn block(&self, index: u64) -> BlockRange {
        let blksize = u64::from(self.blksize);
        let offset = index
            .saturating_sub(1)
            .saturating_mul(blksize)
            .min(self.size);
        let len = (self.size - offset).min(blksize);
        BlockRange {
            // Truncation is the point: wire block numbers wrap.
            wire_block: (index % 65536) as u16,
            offset,
            len: usize::try_from(len).unwrap_or(0),
        }
    }

    /// Feeds a packet that arrived from the client's transfer id.
    pub fn on_packet(&mut self, packet: &Packet, now: Duration) -> Step {
        match (self.phase, packet) {
            (Phase::Over, _) => self.finished(),
            (_, Packet::Error { code, .. }) => {
                self.phase = Phase::Over;
                Step {
                    transmit: Transmit::Nothing,
                    wake_at: None,
                    status: Status::Failed(Failure::ClientError(*code)),
                }
            }
            (Phase::AwaitingOptionAck, Packet::Ack { block: 0 }) => {
                self.retries = 0;
                self.send_window(now)
            }
            (Phase::AwaitingOptionAck, _) => {
                self.phase = Phase::Over;
                Step {
                    transmit: Transmit::Error {
                        code: ErrorCode::IllegalOperation,
                        message: "expected ACK of block 0".into(),
                    },
                    wake_at: None,
                    status: Status::Failed(Failure::Protocol),
                }
            }
            (Phase::Sending, Packet::Ack { block }) => self.on_ack(*block, now),
            // Anything else from the client (a stray DATA, a repeated request) is ignored.
            (Phase::Sending, _) => self.waiting(Transmit::Nothing),
        }
    }

    /// Call when `wake_at` has passed; early calls change nothing.
    pub fn on_timeout(&mut self, now: Duration) -> Step {
        if self.phase == Phase::Over {
            return self.finished();
        }
        if now < self.deadline {
            return self.waiting(Transmit::Nothing);
        }
        if self.retries >= self.max_retries {
            self.phase = Phase::Over;
            return Step {
                transmit: Transmit::Nothing,
                wake_at: None,
                status: Status::Failed(Failure::TimedOut),
            };
        }
        self.retries += 1;
        self.deadline = now + self.timeout;
        match self.phase {
            Phase::AwaitingOptionAck => self.waiting(Transmit::OptionAck(self.oack.clone())),
            Phase::Sending => self.waiting(Transmit::Blocks {
                first: self.acked + 1,
                last: self.sent,
            }),
            Phase::Over => self.finished(),
        }
    }

    fn on_ack(&mut self, block: u16, now: Duration) -> Step {
        // The acknowledged index is the one in [acked, sent] whose low 16 bits are `block`.
        let ahead = u64::from(block.wrapping_sub((self.acked % 65536) as u16));
        let index = self.acked + ahead;
        if ahead == 0 || index > self.sent {
            // Duplicate or stale: wait for more, or for the timer.
            return self.waiting(Transmit::Nothing);
        }
        self.acked = index;
        self.retries = 0;
        if self.acked >= self.total_blocks {
            self.phase = Phase::Over;
            return Step {
                transmit: Transmit::Nothing,
                wake_at: None,
                status: Status::Complete,
            };
        }
        self.send_window(now)
    }

    fn send_window(&mut self, now: Duration) -> Step {
        self.phase = Phase::Sending;
        let first = self.acked + 1;
        let last = (self.acked + u64::from(self.windowsize)).min(self.total_blocks);
        self.sent = last;
        self.deadline = now + self.timeout;
        self.waiting(Transmit::Blocks { first, last })
    }

    fn waiting(&self, transmit: Transmit) -> Step {
        Step {
            transmit,
            wake_at: Some(self.deadline),
            status: Status::InProgress,
        }
    }

    fn finished(&self) -> Step {
        Step {
            transmit: Transmit::Nothing,
            wake_at: None,
            status: Status::Complete,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Mode;

    fn request(options: &[(&str, &str)]) -> Request {
        Request {
            filename: "f".into(),
            mode: Mode::Octet,
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn secs(value: u64) -> Duration {
        Duration::from_secs(value)
    }

    #[test]
    fn negotiation_table() {
        let limits = Limits::default();
        let pairs = |items: &[(&str, &str)]| -> Vec<(String, String)> {
            items
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        type Expected = (u16, u16, u64, Vec<(String, String)>);
        let cases: Vec<(Vec<(&str, &str)>, Expected)> = vec![
            (vec![], (512, 1, 1, vec![])),
            (
                vec![("blksize", "1468")],
                (1468, 1, 1, pairs(&[("blksize", "1468")])),
            ),
            (
                vec![("BLKSIZE", "65464")],
                (1468, 1, 1, pairs(&[("BLKSIZE", "1468")])),
            ),
            (vec![("blksize", "4")], (512, 1, 1, vec![])),
            (vec![("blksize", "x")], (512, 1, 1, vec![])),
            (
                vec![("tsize", "0")],
                (512, 1, 1, pairs(&[("tsize", "5000")])),
            ),
            (
                vec![("timeout", "3")],
                (512, 1, 3, pairs(&[("timeout", "3")])),
            ),
            (vec![("timeout", "0")], (512, 1, 1, vec![])),
            (vec![("timeout", "300")], (512, 1, 1, vec![])),
            (
                vec![("windowsize", "16")],
                (512, 16, 1, pairs(&[("windowsize", "16")])),
            ),
            (
                vec![("windowsize", "500")],
                (512, 64, 1, pairs(&[("windowsize", "64")])),
            ),
            (vec![("windowsize", "0")], (512, 1, 1, vec![])),
            (vec![("multicast", "")], (512, 1, 1, vec![])),
        ];
        for (options, (blksize, windowsize, timeout, acknowledged)) in cases {
            let negotiated = negotiate(&request(&options), 5000, &limits);
            assert_eq!(
                negotiated,
                Negotiated {
                    blksize,
                    windowsize,
                    timeout: secs(timeout),
                    acknowledged
                },
                "{options:?}"
            );
        }
    }

    fn blocks(first: u64, last: u64) -> Transmit {
        Transmit::Blocks { first, last }
    }

    /// Drives a transfer with `inputs`, checking each step's transmit and status.
    fn check(
        options: &[(&str, &str)],
        size: u64,
        first: Transmit,
        inputs: Vec<(Option<Packet>, u64, Transmit, Status)>,
    ) -> ReadTransfer {
        let (mut transfer, step) =
            ReadTransfer::start(&request(options), size, &Limits::default(), secs(0));
        assert_eq!(step.transmit, first);
        for (index, (packet, now, transmit, status)) in inputs.into_iter().enumerate() {
            let step = match packet {
                Some(packet) => transfer.on_packet(&packet, secs(now)),
                None => transfer.on_timeout(secs(now)),
            };
            assert_eq!(
                (step.transmit, step.status),
                (transmit, status),
                "input {index}"
            );
            assert_eq!(
                step.wake_at.is_none(),
                status != Status::InProgress,
                "input {index}"
            );
        }
        transfer
    }

    fn ack(block: u16) -> Option<Packet> {
        Some(Packet::Ack { block })
    }

    use Status::{Complete, InProgress};

    #[test]
    fn lock_step_without_options() {
        // 1024 bytes at 512: blocks 1, 2 and an empty block 3.
        let transfer = check(
            &[],
            1024,
            blocks(1, 1),
            vec![
                (ack(1), 0, blocks(2, 2), InProgress),
                (ack(1), 0, Transmit::Nothing, InProgress),
                (ack(2), 0, blocks(3, 3), InProgress),
                (ack(3), 0, Transmit::Nothing, Complete),
            ],
        );
        assert_eq!(
            transfer.block(3),
            BlockRange {
                wire_block: 3,
                offset: 1024,
                len: 0
            }
        );
        assert_eq!(transfer.bytes_acked(), 1024);
    }

    #[test]
    fn oack_then_windows() {
        let oack = Transmit::OptionAck(vec![
            ("blksize".into(), "1000".into()),
            ("tsize".into(), "10500".into()),
            ("windowsize".into(), "4".into()),
        ]);
        // 10500 bytes at 1000: 11 blocks (the last one 500 bytes).
        check(
            &[("blksize", "1000"), ("tsize", "0"), ("windowsize", "4")],
            10500,
            oack,
            vec![
                (ack(0), 0, blocks(1, 4), InProgress),
                // A partial ACK: block 3 was lost, restart after block 2.
                (ack(2), 0, blocks(3, 6), InProgress),
                (ack(6), 0, blocks(7, 10), InProgress),
                // Stale ACK from before this window.
                (ack(5), 0, Transmit::Nothing, InProgress),
                (ack(10), 0, blocks(11, 11), InProgress),
                (ack(11), 0, Transmit::Nothing, Complete),
            ],
        );
    }

    #[test]
    fn retransmits_then_gives_up() {
        check(
            &[("windowsize", "2")],
            2000,
            Transmit::OptionAck(vec![("windowsize".into(), "2".into())]),
            vec![
                (None, 0, Transmit::Nothing, InProgress),
                (
                    None,
                    1,
                    Transmit::OptionAck(vec![("windowsize".into(), "2".into())]),
                    InProgress,
                ),
                (ack(0), 1, blocks(1, 2), InProgress),
                (None, 2, blocks(1, 2), InProgress),
                (ack(1), 2, blocks(2, 3), InProgress),
                (None, 3, blocks(2, 3), InProgress),
                (None, 4, blocks(2, 3), InProgress),
                (None, 5, blocks(2, 3), InProgress),
                (None, 6, blocks(2, 3), InProgress),
                (None, 7, blocks(2, 3), InProgress),
                (
                    None,
                    8,
                    Transmit::Nothing,
                    Status::Failed(Failure::TimedOut),
                ),
            ],
        );
    }

    #[test]
    fn client_errors_and_protocol_violations() {
        check(
            &[("tsize", "0")],
            10,
            Transmit::OptionAck(vec![("tsize".into(), "10".into())]),
            vec![(
                Some(Packet::Error {
                    code: ErrorCode::OptionRefused,
                    message: String::new(),
                }),
                0,
                Transmit::Nothing,
                Status::Failed(Failure::ClientError(ErrorCode::OptionRefused)),
            )],
        );
        check(
            &[("tsize", "0")],
            10,
            Transmit::OptionAck(vec![("tsize".into(), "10".into())]),
            vec![(
                ack(1),
                0,
                Transmit::Error {
                    code: ErrorCode::IllegalOperation,
                    message: "expected ACK of block 0".into(),
                },
                Status::Failed(Failure::Protocol),
            )],
        );
    }

    #[test]
    fn block_numbers_wrap() {
        // 70000 blocks of 8 bytes: acknowledging across the 65535 -> 0 boundary.
        let size = 8 * 70_000;
        let (mut transfer, _) = ReadTransfer::start(
            &request(&[("blksize", "8"), ("windowsize", "64")]),
            size,
            &Limits::default(),
            secs(0),
        );
        let mut step = transfer.on_packet(&Packet::Ack { block: 0 }, secs(0));
        let mut acks = 0;
        while step.status == Status::InProgress {
            let Transmit::Blocks { last, .. } = step.transmit else {
                panic!("expected blocks, got {step:?}");
            };
            let range = transfer.block(last);
            assert_eq!(u64::from(range.wire_block), last % 65536);
            step = transfer.on_packet(
                &Packet::Ack {
                    block: range.wire_block,
                },
                secs(0),
            );
            acks += 1;
        }
        assert_eq!(step.status, Status::Complete);
        assert_eq!(transfer.total_blocks(), 70_001);
        assert_eq!(acks, 70_001_u64.div_ceil(64));
    }
}
