//! Hermetic stand-in for the fuzz targets: mutated packets never panic the decoder, decoded
//! packets round-trip, and arbitrary ACK streams never push a transfer outside its file.

use std::time::Duration;

use maas_tftp_wire::{Limits, Mode, Packet, ReadTransfer, Request, Transmit};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

#[test]
fn mutated_packets_never_panic() {
    let seeds: Vec<Vec<u8>> = vec![
        b"\x00\x01pxelinux.0\x00octet\x00blksize\x001468\x00tsize\x000\x00windowsize\x0016\x00"
            .to_vec(),
        b"\x00\x04\x00\x07".to_vec(),
        b"\x00\x05\x00\x01not found\x00".to_vec(),
        b"\x00\x06blksize\x00512\x00".to_vec(),
        b"\x00\x03\x00\x01data".to_vec(),
    ];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for round in 0..60_000 {
        let mut bytes = seeds[round % seeds.len()].clone();
        for _ in 0..=rng.below(4) {
            match rng.below(4) {
                0 if !bytes.is_empty() => {
                    let at = rng.below(bytes.len());
                    bytes[at] = [0, 0xff, b'a', rng.next() as u8][rng.below(4)];
                }
                1 => bytes.truncate(rng.below(bytes.len() + 1)),
                2 => {
                    let at = rng.below(bytes.len() + 1);
                    bytes.insert(at, rng.next() as u8);
                }
                _ => bytes.extend((0..rng.below(6)).map(|_| rng.next() as u8)),
            }
        }
        if let Ok(packet) = Packet::decode(&bytes) {
            assert_eq!(
                Packet::decode(&packet.encode()).as_ref(),
                Ok(&packet),
                "round {round}: {bytes:?}"
            );
        }
    }
}

#[test]
fn random_acks_keep_transfers_inside_the_file() {
    let mut rng = Rng(77);
    for _ in 0..300 {
        let size = rng.below(200_000) as u64;
        let request = Request {
            filename: "f".into(),
            mode: Mode::Octet,
            options: vec![
                ("blksize".into(), (8 + rng.below(2000)).to_string()),
                ("windowsize".into(), rng.below(20).to_string()),
            ],
        };
        let (mut transfer, mut step) =
            ReadTransfer::start(&request, size, &Limits::default(), Duration::ZERO);
        let mut now = Duration::ZERO;
        for _ in 0..500 {
            if let Transmit::Blocks { first, last } = step.transmit {
                assert!(first >= 1 && first <= last && last <= transfer.total_blocks());
                let range = transfer.block(last);
                assert!(range.offset + range.len as u64 <= size);
            }
            now += Duration::from_millis(rng.below(1500) as u64);
            step = if rng.below(4) == 0 {
                transfer.on_timeout(now)
            } else {
                transfer.on_packet(
                    &Packet::Ack {
                        block: rng.next() as u16,
                    },
                    now,
                )
            };
        }
    }
}
