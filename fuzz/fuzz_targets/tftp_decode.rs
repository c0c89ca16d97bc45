//! TFTP decode never panics, and whatever decodes survives an encode/decode round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maas_tftp_wire::Packet;

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = Packet::decode(data) {
        let again = Packet::decode(&packet.encode()).expect("re-encoded packet decodes");
        assert_eq!(again, packet);
    }
});
