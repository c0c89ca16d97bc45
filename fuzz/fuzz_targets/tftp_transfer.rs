//! A read transfer fed arbitrary packets and timeouts never panics and only ever asks for
//! blocks inside the file.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use maas_tftp_wire::{Limits, Mode, Packet, ReadTransfer, Request, Transmit};

fuzz_target!(|data: &[u8]| {
    let [size_hi, size_lo, blk, window, rest @ ..] = data else { return };
    let size = u64::from(u16::from_be_bytes([*size_hi, *size_lo])) * 37;
    let request = Request {
        filename: "f".into(),
        mode: Mode::Octet,
        options: vec![
            ("blksize".into(), (u16::from(*blk) + 8).to_string()),
            ("windowsize".into(), (*window % 20).to_string()),
            ("tsize".into(), "0".into()),
        ],
    };
    let (mut transfer, mut step) = ReadTransfer::start(&request, size, &Limits::default(), Duration::ZERO);
    let mut now = Duration::ZERO;
    for chunk in rest.chunks(3) {
        if let Transmit::Blocks { first, last } = step.transmit {
            assert!(first >= 1 && first <= last && last <= transfer.total_blocks());
            let range = transfer.block(last);
            assert!(range.offset + range.len as u64 <= size);
        }
        now += Duration::from_millis(u64::from(chunk[0]) * 10);
        step = match chunk {
            [_, hi, lo] => transfer.on_packet(&Packet::Ack { block: u16::from_be_bytes([*hi, *lo]) }, now),
            _ => transfer.on_timeout(now),
        };
    }
});
