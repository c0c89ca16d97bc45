//! Framing: a 4-byte big-endian length, then that many bytes of JSON.

use thiserror::Error;

use crate::messages::Frame;

/// Largest frame either side accepts: a DHCP configuration for 10,000 hosts is about 1 MB.
pub const MAX_FRAME: usize = 32 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum CodecError {
    #[error("frame of {len} bytes is over the {max} byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("frame is not a valid message")]
    Malformed {
        #[source]
        source: serde_json::Error,
    },
}

/// The bytes of one frame, length prefix included.
pub fn encode(frame: &Frame) -> Result<Vec<u8>, CodecError> {
    let mut bytes = vec![0u8; 4];
    serde_json::to_writer(&mut bytes, frame).map_err(|source| CodecError::Malformed { source })?;
    let len = bytes.len() - 4;
    if len > MAX_FRAME {
        return Err(CodecError::TooLarge {
            len,
            max: MAX_FRAME,
        });
    }
    bytes[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(bytes)
}

/// The body length a prefix announces, refused when over [`MAX_FRAME`].
pub fn body_len(prefix: [u8; 4]) -> Result<usize, CodecError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME {
        return Err(CodecError::TooLarge {
            len,
            max: MAX_FRAME,
        });
    }
    Ok(len)
}

pub fn decode_body(body: &[u8]) -> Result<Frame, CodecError> {
    serde_json::from_slice(body).map_err(|source| CodecError::Malformed { source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{Call, Frame};
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let frame = Frame::Call {
            id: 3,
            call: Call::Ping,
        };
        let bytes = encode(&frame).unwrap();
        let len = body_len([bytes[0], bytes[1], bytes[2], bytes[3]]).unwrap();
        assert_eq!(len, bytes.len() - 4);
        assert_eq!(decode_body(&bytes[4..]).unwrap(), frame);
    }

    #[test]
    fn oversized_and_malformed_frames_are_refused() {
        assert!(matches!(
            body_len([0xff, 0xff, 0xff, 0xff]),
            Err(CodecError::TooLarge { .. })
        ));
        assert!(matches!(
            decode_body(br#"{"frame":"call","id":1,"call":{"op":"nope"}}"#),
            Err(CodecError::Malformed { .. })
        ));
        assert!(decode_body(b"\xff\x00").is_err());
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_body(&bytes);
        }
    }
}
