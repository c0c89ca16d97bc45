//! DHCP decode never panics, and whatever decodes survives an encode/decode round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maas_dhcp_wire::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::decode(data)
        && let Ok(bytes) = message.encode()
    {
        let again = Message::decode(&bytes).expect("re-encoded message decodes");
        assert_eq!(again, message);
    }
});
