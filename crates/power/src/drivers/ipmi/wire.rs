//! IPMI over LAN on the wire: RMCP framing, IPMI v1.5 session headers,
//! IPMI v2.0 RMCP+ session headers with integrity and confidentiality,
//! the RMCP+ open-session and RAKP messages, and IPMI request/response
//! messages. Bytes in, typed values out and back; no sockets, no clock.
//! Randomness (session ids, RAKP randoms, AES IVs) comes in as arguments.
//!
//! References: IPMI v2.0 rev 1.1 §13 (LAN interface), §22 (App commands),
//! §28 (chassis commands). All multi-byte session fields are little endian.

use aes::Aes128;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;
use sha2::Sha256;

/// RMCP header: version 6, reserved, sequence 0xff (no RMCP ack), class IPMI.
pub const RMCP_HEADER: [u8; 4] = [0x06, 0x00, 0xff, 0x07];
/// Responder address of the BMC, and the software id we send as requester.
const BMC_ADDRESS: u8 = 0x20;
const REMOTE_CONSOLE_SWID: u8 = 0x81;

pub const NETFN_CHASSIS: u8 = 0x00;
pub const NETFN_APP: u8 = 0x06;

pub const CMD_GET_CHASSIS_STATUS: u8 = 0x01;
pub const CMD_CHASSIS_CONTROL: u8 = 0x02;
pub const CMD_SET_SYSTEM_BOOT_OPTIONS: u8 = 0x08;
pub const CMD_GET_SYSTEM_BOOT_OPTIONS: u8 = 0x09;
pub const CMD_GET_CHANNEL_AUTH_CAPABILITIES: u8 = 0x38;
pub const CMD_GET_SESSION_CHALLENGE: u8 = 0x39;
pub const CMD_ACTIVATE_SESSION: u8 = 0x3a;
pub const CMD_SET_SESSION_PRIVILEGE: u8 = 0x3b;
pub const CMD_CLOSE_SESSION: u8 = 0x3c;

/// Chassis Control (§28.3) data byte.
pub const CHASSIS_POWER_DOWN: u8 = 0x00;
pub const CHASSIS_POWER_UP: u8 = 0x01;
pub const CHASSIS_POWER_CYCLE: u8 = 0x02;

/// Why received bytes were not a valid message. Packets that fail to decode
/// are dropped by the session, never trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("packet too short: {len} bytes, need {need}")]
    TooShort { len: usize, need: usize },
    #[error("not an RMCP IPMI packet")]
    NotRmcp,
    #[error("bad checksum in IPMI message")]
    Checksum,
    #[error("integrity check value does not match")]
    Integrity,
    #[error("cannot decrypt payload: {0}")]
    Decrypt(&'static str),
    #[error("unexpected authentication type {0:#04x}")]
    AuthType(u8),
}

fn need(bytes: &[u8], len: usize) -> Result<(), WireError> {
    if bytes.len() < len {
        Err(WireError::TooShort {
            len: bytes.len(),
            need: len,
        })
    } else {
        Ok(())
    }
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

/// IPMI's 8-bit two's complement checksum: the bytes plus it sum to zero.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |sum, byte| sum.wrapping_add(*byte))
        .wrapping_neg()
}

/// A request to the BMC (LUN 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub netfn: u8,
    pub cmd: u8,
    pub data: Vec<u8>,
}

/// A reply from the BMC: completion code and data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub netfn: u8,
    pub cmd: u8,
    pub rq_seq: u8,
    pub completion: u8,
    pub data: Vec<u8>,
}

/// The IPMI LAN message of a request (§13.8): rsAddr, netFn/rsLUN,
/// checksum, rqAddr, rqSeq/rqLUN, cmd, data, checksum. `rq_seq` is 6 bits.
pub fn encode_request(request: &Request, rq_seq: u8) -> Vec<u8> {
    let mut message = vec![BMC_ADDRESS, request.netfn << 2];
    message.push(checksum(&message));
    let body_start = message.len();
    message.extend_from_slice(&[REMOTE_CONSOLE_SWID, (rq_seq & 0x3f) << 2, request.cmd]);
    message.extend_from_slice(&request.data);
    let sum = checksum(&message[body_start..]);
    message.push(sum);
    message
}

/// Parses a response message (rqAddr, netFn/rqLUN, checksum, rsAddr,
/// rqSeq/rsLUN, cmd, completion code, data, checksum).
pub fn decode_response(message: &[u8]) -> Result<Response, WireError> {
    need(message, 8)?;
    if checksum(&message[..2]) != message[2] {
        return Err(WireError::Checksum);
    }
    let last = message.len() - 1;
    if checksum(&message[3..last]) != message[last] {
        return Err(WireError::Checksum);
    }
    Ok(Response {
        netfn: message[1] >> 2,
        rq_seq: message[4] >> 2,
        cmd: message[5],
        completion: message[6],
        data: message[7..last].to_vec(),
    })
}

// ---------------------------------------------------------------------
// IPMI v1.5 sessions (§13.6, §22.13-22.15)

/// IPMI v1.5 authentication types (§13.6), in the bit order of Get Channel
/// Authentication Capabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthType {
    None = 0,
    Md5 = 2,
    Password = 4,
}

impl AuthType {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// The 16-byte form of a v1.5 password or user name: NUL-padded, cut at 16.
pub fn pad16(text: &[u8]) -> [u8; 16] {
    let mut padded = [0u8; 16];
    let len = text.len().min(16);
    padded[..len].copy_from_slice(&text[..len]);
    padded
}

/// The v1.5 AuthCode (§22.17.1): for MD5, MD5(password, session id,
/// message, sequence, password); for straight password, the password.
pub fn v15_auth_code(
    auth_type: AuthType,
    password: &[u8; 16],
    session_id: u32,
    sequence: u32,
    message: &[u8],
) -> Option<[u8; 16]> {
    match auth_type {
        AuthType::None => None,
        AuthType::Password => Some(*password),
        AuthType::Md5 => {
            let mut digest = Md5::new();
            digest.update(password);
            digest.update(session_id.to_le_bytes());
            digest.update(message);
            digest.update(sequence.to_le_bytes());
            digest.update(password);
            Some(digest.finalize().into())
        }
    }
}

/// An IPMI v1.5 session packet around `message`.
pub fn encode_v15(
    auth_type: AuthType,
    sequence: u32,
    session_id: u32,
    auth_code: Option<[u8; 16]>,
    message: &[u8],
) -> Vec<u8> {
    let mut packet = RMCP_HEADER.to_vec();
    packet.push(auth_type.code());
    packet.extend_from_slice(&sequence.to_le_bytes());
    packet.extend_from_slice(&session_id.to_le_bytes());
    if let Some(code) = auth_code {
        packet.extend_from_slice(&code);
    }
    // The message is at most a few dozen bytes: one length byte holds it.
    packet.push(message.len().min(255) as u8);
    packet.extend_from_slice(message);
    packet
}

/// The session id and IPMI message of a v1.5 packet. The BMC's AuthCode is
/// not checked: replies carry no secret, and a forged reply can at worst
/// make one query wrong, which the next poll corrects.
pub fn decode_v15(packet: &[u8]) -> Result<(u32, &[u8]), WireError> {
    need(packet, 14)?;
    if packet[..4] != RMCP_HEADER {
        return Err(WireError::NotRmcp);
    }
    let auth_type = packet[4];
    let session_id = le32(packet, 9);
    let len_at = match auth_type {
        0 => 13,
        1 | 2 | 4 | 5 => 29,
        other => return Err(WireError::AuthType(other)),
    };
    need(packet, len_at + 1)?;
    let len = usize::from(packet[len_at]);
    need(packet, len_at + 1 + len)?;
    Ok((session_id, &packet[len_at + 1..len_at + 1 + len]))
}

/// The reply to Get Channel Authentication Capabilities (§22.13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthCapabilities {
    /// Bit n set: v1.5 authentication type n is offered.
    pub auth_types: u8,
    pub ipmi20: bool,
    pub per_message_auth_disabled: bool,
}

impl AuthCapabilities {
    pub fn parse(data: &[u8]) -> Result<AuthCapabilities, WireError> {
        need(data, 4)?;
        let extended = data[1] & 0x80 != 0;
        Ok(AuthCapabilities {
            auth_types: data[1] & 0x3f,
            ipmi20: extended && data[3] & 0x02 != 0,
            per_message_auth_disabled: data[2] & 0x10 != 0,
        })
    }

    pub fn offers(&self, auth_type: AuthType) -> bool {
        self.auth_types & (1 << auth_type.code()) != 0
    }
}

// ---------------------------------------------------------------------
// IPMI v2.0 RMCP+ (§13.6, §13.17-13.31)

pub const AUTH_TYPE_RMCP_PLUS: u8 = 0x06;

/// RMCP+ payload types (§13.27.3).
pub const PAYLOAD_IPMI: u8 = 0x00;
pub const PAYLOAD_OPEN_SESSION_REQUEST: u8 = 0x10;
pub const PAYLOAD_OPEN_SESSION_RESPONSE: u8 = 0x11;
pub const PAYLOAD_RAKP1: u8 = 0x12;
pub const PAYLOAD_RAKP2: u8 = 0x13;
pub const PAYLOAD_RAKP3: u8 = 0x14;
pub const PAYLOAD_RAKP4: u8 = 0x15;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthAlgorithm {
    None,
    HmacSha1,
    HmacSha256,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntegrityAlgorithm {
    None,
    HmacSha1_96,
    HmacSha256_128,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfidentialityAlgorithm {
    None,
    AesCbc128,
}

impl AuthAlgorithm {
    pub fn code(self) -> u8 {
        match self {
            AuthAlgorithm::None => 0x00,
            AuthAlgorithm::HmacSha1 => 0x01,
            AuthAlgorithm::HmacSha256 => 0x03,
        }
    }

    /// Length of the RAKP4 integrity check value: the HMAC cut to 96 bits
    /// for SHA-1 and 128 bits for SHA-256 (§13.31, IPMI 2.0 errata 4).
    pub fn icv_len(self) -> usize {
        match self {
            AuthAlgorithm::None => 0,
            AuthAlgorithm::HmacSha1 => 12,
            AuthAlgorithm::HmacSha256 => 16,
        }
    }

    pub fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        match self {
            AuthAlgorithm::None => Vec::new(),
            AuthAlgorithm::HmacSha1 => hmac_sha1(key, parts),
            AuthAlgorithm::HmacSha256 => hmac_sha256(key, parts),
        }
    }
}

impl IntegrityAlgorithm {
    pub fn code(self) -> u8 {
        match self {
            IntegrityAlgorithm::None => 0x00,
            IntegrityAlgorithm::HmacSha1_96 => 0x01,
            IntegrityAlgorithm::HmacSha256_128 => 0x04,
        }
    }

    pub fn auth_code_len(self) -> usize {
        match self {
            IntegrityAlgorithm::None => 0,
            IntegrityAlgorithm::HmacSha1_96 => 12,
            IntegrityAlgorithm::HmacSha256_128 => 16,
        }
    }

    fn auth_code(self, k1: &[u8], data: &[u8]) -> Vec<u8> {
        let mut code = match self {
            IntegrityAlgorithm::None => Vec::new(),
            IntegrityAlgorithm::HmacSha1_96 => hmac_sha1(k1, &[data]),
            IntegrityAlgorithm::HmacSha256_128 => hmac_sha256(k1, &[data]),
        };
        code.truncate(self.auth_code_len());
        code
    }
}

impl ConfidentialityAlgorithm {
    pub fn code(self) -> u8 {
        match self {
            ConfidentialityAlgorithm::None => 0x00,
            ConfidentialityAlgorithm::AesCbc128 => 0x01,
        }
    }
}

fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
        return Vec::new();
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return Vec::new();
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// An RMCP+ cipher suite (§22.15.2, table 22-20).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CipherSuite {
    pub id: u8,
    pub auth: AuthAlgorithm,
    pub integrity: IntegrityAlgorithm,
    pub confidentiality: ConfidentialityAlgorithm,
}

impl CipherSuite {
    /// The suites this client implements: 0-3 (SHA-1 family) and 15-17
    /// (SHA-256 family). MD5-based suites are not implemented.
    pub fn from_id(id: u8) -> Option<CipherSuite> {
        use AuthAlgorithm as A;
        use ConfidentialityAlgorithm as C;
        use IntegrityAlgorithm as I;
        let (auth, integrity, confidentiality) = match id {
            0 => (A::None, I::None, C::None),
            1 => (A::HmacSha1, I::None, C::None),
            2 => (A::HmacSha1, I::HmacSha1_96, C::None),
            3 => (A::HmacSha1, I::HmacSha1_96, C::AesCbc128),
            15 => (A::HmacSha256, I::None, C::None),
            16 => (A::HmacSha256, I::HmacSha256_128, C::None),
            17 => (A::HmacSha256, I::HmacSha256_128, C::AesCbc128),
            _ => return None,
        };
        Some(CipherSuite {
            id,
            auth,
            integrity,
            confidentiality,
        })
    }

    pub const SUPPORTED: [u8; 7] = [0, 1, 2, 3, 15, 16, 17];
}

/// Session keys derived after RAKP (§13.32).
#[derive(Clone)]
pub struct SessionKeys {
    pub suite: CipherSuite,
    pub k1: Vec<u8>,
    pub aes_key: [u8; 16],
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeys")
            .field("suite", &self.suite.id)
            .finish_non_exhaustive()
    }
}

/// Builds an RMCP+ packet. `keys` is `None` before the session exists
/// (open session and RAKP messages); afterwards the payload is encrypted
/// and authenticated as the cipher suite says. `iv` is a fresh random block.
pub fn encode_v20(
    payload_type: u8,
    session_id: u32,
    sequence: u32,
    payload: &[u8],
    keys: Option<&SessionKeys>,
    iv: [u8; 16],
) -> Vec<u8> {
    let (encrypt, authenticate) = match keys {
        Some(keys) => (
            keys.suite.confidentiality != ConfidentialityAlgorithm::None,
            keys.suite.integrity != IntegrityAlgorithm::None,
        ),
        None => (false, false),
    };
    let body = match keys {
        Some(keys) if encrypt => aes_encrypt(&keys.aes_key, iv, payload),
        _ => payload.to_vec(),
    };
    let mut packet = RMCP_HEADER.to_vec();
    let mut type_byte = payload_type & 0x3f;
    if encrypt {
        type_byte |= 0x80;
    }
    if authenticate {
        type_byte |= 0x40;
    }
    packet.push(AUTH_TYPE_RMCP_PLUS);
    packet.push(type_byte);
    packet.extend_from_slice(&session_id.to_le_bytes());
    packet.extend_from_slice(&sequence.to_le_bytes());
    // Payloads here are small: the length always fits in 16 bits.
    packet.extend_from_slice(&(body.len().min(0xffff) as u16).to_le_bytes());
    packet.extend_from_slice(&body);
    if let (Some(keys), true) = (keys, authenticate) {
        // Integrity pad: from the auth type byte through the next header
        // byte, the length must be a multiple of four (§13.28.4).
        let covered = packet.len() - 4 + 2;
        let pad = (4 - covered % 4) % 4;
        packet.extend(std::iter::repeat_n(0xffu8, pad));
        packet.push(pad as u8);
        packet.push(0x07);
        let code = keys.suite.integrity.auth_code(&keys.k1, &packet[4..]);
        packet.extend_from_slice(&code);
    }
    packet
}

/// A decoded RMCP+ packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V20Packet {
    pub payload_type: u8,
    pub session_id: u32,
    pub sequence: u32,
    pub payload: Vec<u8>,
}

/// Parses an RMCP+ packet; with `keys`, checks the integrity code and
/// decrypts. A session packet that should be authenticated but is not is
/// refused, so a forged plain reply cannot be slipped in.
pub fn decode_v20(packet: &[u8], keys: Option<&SessionKeys>) -> Result<V20Packet, WireError> {
    need(packet, 16)?;
    if packet[..4] != RMCP_HEADER {
        return Err(WireError::NotRmcp);
    }
    if packet[4] != AUTH_TYPE_RMCP_PLUS {
        return Err(WireError::AuthType(packet[4]));
    }
    let type_byte = packet[5];
    let encrypted = type_byte & 0x80 != 0;
    let authenticated = type_byte & 0x40 != 0;
    let session_id = le32(packet, 6);
    let sequence = le32(packet, 10);
    let len = usize::from(u16::from_le_bytes([packet[14], packet[15]]));
    need(packet, 16 + len)?;
    let body = &packet[16..16 + len];
    if let Some(keys) = keys {
        let integrity = keys.suite.integrity;
        if integrity != IntegrityAlgorithm::None {
            if !authenticated {
                return Err(WireError::Integrity);
            }
            let code_len = integrity.auth_code_len();
            need(packet, 16 + len + 2 + code_len)?;
            let code_at = packet.len() - code_len;
            let expected = integrity.auth_code(&keys.k1, &packet[4..code_at]);
            if !constant_time_eq(&expected, &packet[code_at..]) {
                return Err(WireError::Integrity);
            }
        }
        if keys.suite.confidentiality != ConfidentialityAlgorithm::None && !encrypted {
            return Err(WireError::Decrypt("payload not encrypted"));
        }
    }
    let payload = match keys {
        Some(keys) if encrypted => aes_decrypt(&keys.aes_key, body)?,
        _ if encrypted => return Err(WireError::Decrypt("encrypted payload outside a session")),
        _ => body.to_vec(),
    };
    Ok(V20Packet {
        payload_type: type_byte & 0x3f,
        session_id,
        sequence,
        payload,
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// AES-CBC-128 confidentiality (§13.29): IV, then the payload padded with
/// 1, 2, 3... and a pad length byte to a whole number of blocks.
fn aes_encrypt(key: &[u8; 16], iv: [u8; 16], payload: &[u8]) -> Vec<u8> {
    let pad = (16 - (payload.len() + 1) % 16) % 16;
    let mut buffer = payload.to_vec();
    buffer.extend((1..=pad).map(|n| n as u8));
    buffer.push(pad as u8);
    let len = buffer.len();
    let encryptor = cbc::Encryptor::<Aes128>::new(key.into(), &iv.into());
    // The buffer is a whole number of blocks, so NoPadding cannot fail.
    let Ok(_) = encryptor.encrypt_padded_mut::<NoPadding>(&mut buffer, len) else {
        return Vec::new();
    };
    let mut out = iv.to_vec();
    out.extend_from_slice(&buffer);
    out
}

fn aes_decrypt(key: &[u8; 16], body: &[u8]) -> Result<Vec<u8>, WireError> {
    if body.len() < 32 || !body.len().is_multiple_of(16) {
        return Err(WireError::Decrypt("length is not IV plus whole blocks"));
    }
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&body[..16]);
    let mut buffer = body[16..].to_vec();
    let decryptor = cbc::Decryptor::<Aes128>::new(key.into(), &iv.into());
    let plain = decryptor
        .decrypt_padded_mut::<NoPadding>(&mut buffer)
        .map_err(|_| WireError::Decrypt("bad block length"))?;
    let pad = usize::from(*plain.last().ok_or(WireError::Decrypt("empty"))?);
    if pad >= 16 || pad + 1 > plain.len() {
        return Err(WireError::Decrypt("bad pad length"));
    }
    Ok(plain[..plain.len() - pad - 1].to_vec())
}

/// RMCP+ Open Session Request (§13.17).
pub fn open_session_request(
    tag: u8,
    privilege: u8,
    console_session_id: u32,
    suite: &CipherSuite,
) -> Vec<u8> {
    let mut payload = vec![tag, privilege, 0, 0];
    payload.extend_from_slice(&console_session_id.to_le_bytes());
    for (kind, algorithm) in [
        (0u8, suite.auth.code()),
        (1, suite.integrity.code()),
        (2, suite.confidentiality.code()),
    ] {
        payload.extend_from_slice(&[kind, 0, 0, 8, algorithm, 0, 0, 0]);
    }
    payload
}

/// RMCP+ Open Session Response (§13.18).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenSessionResponse {
    pub tag: u8,
    pub status: u8,
    pub console_session_id: u32,
    pub bmc_session_id: u32,
    /// Auth, integrity and confidentiality algorithm codes the BMC chose.
    pub algorithms: Option<(u8, u8, u8)>,
}

impl OpenSessionResponse {
    pub fn parse(payload: &[u8]) -> Result<OpenSessionResponse, WireError> {
        need(payload, 8)?;
        let status = payload[1];
        let (bmc_session_id, algorithms) = if status == 0 {
            need(payload, 36)?;
            (
                le32(payload, 8),
                Some((payload[16], payload[24], payload[32])),
            )
        } else {
            (0, None)
        };
        Ok(OpenSessionResponse {
            tag: payload[0],
            status,
            console_session_id: le32(payload, 4),
            bmc_session_id,
            algorithms,
        })
    }
}

/// The values both ends feed into the RAKP HMACs.
#[derive(Clone, Debug)]
pub struct RakpContext {
    pub console_session_id: u32,
    pub bmc_session_id: u32,
    pub console_random: [u8; 16],
    /// Requested privilege level with the name-only lookup bit (ROLEm).
    pub role: u8,
    pub user: Vec<u8>,
}

impl RakpContext {
    /// RAKP Message 1 (§13.20).
    pub fn rakp1(&self, tag: u8) -> Vec<u8> {
        let mut payload = vec![tag, 0, 0, 0];
        payload.extend_from_slice(&self.bmc_session_id.to_le_bytes());
        payload.extend_from_slice(&self.console_random);
        payload.extend_from_slice(&[self.role, 0, 0, self.user.len() as u8]);
        payload.extend_from_slice(&self.user);
        payload
    }

    /// Checks RAKP Message 2's key exchange code, HMAC_Kuid(SIDm, SIDc, Rm,
    /// Rc, GUIDc, ROLEm, ULENGTHm, UNAMEm): a mismatch means our password is
    /// not the BMC's.
    pub fn rakp2_matches(&self, auth: AuthAlgorithm, password: &[u8], rakp2: &Rakp2) -> bool {
        let expected = auth.hmac(
            password,
            &[
                &self.console_session_id.to_le_bytes(),
                &self.bmc_session_id.to_le_bytes(),
                &self.console_random,
                &rakp2.bmc_random,
                &rakp2.bmc_guid,
                &[self.role, self.user.len() as u8],
                &self.user,
            ],
        );
        constant_time_eq(&expected, &rakp2.auth_code)
    }

    /// RAKP Message 3 (§13.22) with HMAC_Kuid(Rc, SIDm, ROLEm, ULENGTHm, UNAMEm).
    pub fn rakp3(&self, tag: u8, auth: AuthAlgorithm, password: &[u8], rakp2: &Rakp2) -> Vec<u8> {
        let mut payload = vec![tag, 0, 0, 0];
        payload.extend_from_slice(&self.bmc_session_id.to_le_bytes());
        let code = auth.hmac(
            password,
            &[
                &rakp2.bmc_random,
                &self.console_session_id.to_le_bytes(),
                &[self.role, self.user.len() as u8],
                &self.user,
            ],
        );
        payload.extend_from_slice(&code);
        payload
    }

    /// The session integrity key SIK = HMAC_KG(Rm, Rc, ROLEm, ULENGTHm,
    /// UNAMEm) and the keys derived from it (§13.31, §13.32).
    pub fn session_keys(
        &self,
        suite: CipherSuite,
        kg: &[u8],
        rakp2: &Rakp2,
    ) -> (Vec<u8>, SessionKeys) {
        let sik = suite.auth.hmac(
            kg,
            &[
                &self.console_random,
                &rakp2.bmc_random,
                &[self.role, self.user.len() as u8],
                &self.user,
            ],
        );
        let k1 = suite.auth.hmac(&sik, &[&[0x01; 20]]);
        let k2 = suite.auth.hmac(&sik, &[&[0x02; 20]]);
        let mut aes_key = [0u8; 16];
        let len = k2.len().min(16);
        aes_key[..len].copy_from_slice(&k2[..len]);
        (sik, SessionKeys { suite, k1, aes_key })
    }

    /// Checks RAKP Message 4's integrity check value, HMAC_SIK(Rm, SIDc,
    /// GUIDc) cut to the suite's length.
    pub fn rakp4_matches(
        &self,
        auth: AuthAlgorithm,
        sik: &[u8],
        bmc_guid: &[u8; 16],
        icv: &[u8],
    ) -> bool {
        let mut expected = auth.hmac(
            sik,
            &[
                &self.console_random,
                &self.bmc_session_id.to_le_bytes(),
                bmc_guid,
            ],
        );
        expected.truncate(auth.icv_len());
        constant_time_eq(&expected, icv)
    }
}

/// RAKP Message 2 (§13.21).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rakp2 {
    pub tag: u8,
    pub status: u8,
    pub console_session_id: u32,
    pub bmc_random: [u8; 16],
    pub bmc_guid: [u8; 16],
    pub auth_code: Vec<u8>,
}

impl Rakp2 {
    pub fn parse(payload: &[u8]) -> Result<Rakp2, WireError> {
        need(payload, 8)?;
        let status = payload[1];
        let mut rakp2 = Rakp2 {
            tag: payload[0],
            status,
            console_session_id: le32(payload, 4),
            bmc_random: [0; 16],
            bmc_guid: [0; 16],
            auth_code: Vec::new(),
        };
        if status == 0 {
            need(payload, 40)?;
            rakp2.bmc_random.copy_from_slice(&payload[8..24]);
            rakp2.bmc_guid.copy_from_slice(&payload[24..40]);
            rakp2.auth_code = payload[40..].to_vec();
        }
        Ok(rakp2)
    }
}

/// RAKP Message 4 (§13.23).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rakp4 {
    pub tag: u8,
    pub status: u8,
    pub console_session_id: u32,
    pub icv: Vec<u8>,
}

impl Rakp4 {
    pub fn parse(payload: &[u8]) -> Result<Rakp4, WireError> {
        need(payload, 8)?;
        Ok(Rakp4 {
            tag: payload[0],
            status: payload[1],
            console_session_id: le32(payload, 4),
            icv: payload[8..].to_vec(),
        })
    }
}

/// What an RMCP+ / RAKP status code (§13.24) means for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusClass {
    Busy,
    Authentication,
    Setting,
    Other,
}

pub fn rakp_status(status: u8) -> (StatusClass, &'static str) {
    match status {
        0x01 => (
            StatusClass::Busy,
            "insufficient resources to create a session",
        ),
        0x02 => (StatusClass::Other, "invalid session id"),
        0x03 => (StatusClass::Setting, "invalid payload type"),
        0x04 => (StatusClass::Setting, "invalid authentication algorithm"),
        0x05 => (StatusClass::Setting, "invalid integrity algorithm"),
        0x06 => (StatusClass::Setting, "no matching authentication payload"),
        0x07 => (StatusClass::Setting, "no matching integrity payload"),
        0x08 => (StatusClass::Other, "inactive session id"),
        0x09 => (StatusClass::Authentication, "invalid role"),
        0x0a => (
            StatusClass::Authentication,
            "unauthorized role or privilege level requested",
        ),
        0x0b => (
            StatusClass::Busy,
            "insufficient resources to create a session at the requested role",
        ),
        0x0c => (StatusClass::Authentication, "invalid name length"),
        0x0d => (StatusClass::Authentication, "unauthorized name"),
        0x0e => (StatusClass::Authentication, "unauthorized GUID"),
        0x0f => (StatusClass::Authentication, "invalid integrity check value"),
        0x10 => (StatusClass::Setting, "invalid confidentiality algorithm"),
        0x11 => (
            StatusClass::Setting,
            "no cipher suite match with proposed security algorithms",
        ),
        0x12 => (
            StatusClass::Authentication,
            "illegal or unrecognized parameter",
        ),
        _ => (StatusClass::Other, "unknown status code"),
    }
}

/// A human reading of an IPMI completion code (§5.2).
pub fn completion_text(code: u8) -> &'static str {
    match code {
        0x00 => "ok",
        0x81 => "requested privilege level exceeds the user's limit",
        0x80 => "requested privilege level is not available for this user",
        0xc0 => "node busy",
        0xc1 => "invalid command",
        0xc2 => "command invalid for given LUN",
        0xc3 => "timeout while processing command",
        0xc4 => "out of space",
        0xc5 => "reservation cancelled or invalid",
        0xc6 => "request data truncated",
        0xc7 => "request data length invalid",
        0xc8 => "request data field length limit exceeded",
        0xc9 => "parameter out of range",
        0xcc => "invalid data field in request",
        0xcd => "command illegal for specified sensor or record type",
        0xce => "command response could not be provided",
        0xcf => "cannot execute duplicated request",
        0xd0 => "SDR repository in update mode",
        0xd1 => "device in firmware update mode",
        0xd2 => "BMC initialization in progress",
        0xd3 => "destination unavailable",
        0xd4 => "insufficient privilege level",
        0xd5 => "command not supported in present state",
        0xff => "unspecified error",
        _ => "unknown completion code",
    }
}

/// Set System Boot Options, parameter 5 (boot flags, §28.13): valid, next
/// boot only, force PXE; bit 5 of the first byte selects EFI boot.
pub fn pxe_boot_flags(efi: bool) -> Vec<u8> {
    let first = 0x80 | if efi { 0x20 } else { 0x00 };
    vec![0x05, first, 0x04, 0x00, 0x00, 0x00]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_zeroes_the_sum() {
        assert_eq!(checksum(&[0x20, 0x18]), 0xc8);
        assert_eq!(checksum(&[]), 0);
        let message = encode_request(
            &Request {
                netfn: NETFN_APP,
                cmd: CMD_GET_CHANNEL_AUTH_CAPABILITIES,
                data: vec![0x8e, 0x04],
            },
            1,
        );
        assert_eq!(
            message,
            [0x20, 0x18, 0xc8, 0x81, 0x04, 0x38, 0x8e, 0x04, 0xb1]
        );
    }

    #[test]
    fn response_round_trip_and_rejects_garbage() {
        // Get Chassis Status reply: power on.
        let mut reply = vec![0x81, 0x04, 0x00, 0x20, 0x08, 0x01, 0x00, 0x01, 0x00, 0x00];
        reply[2] = checksum(&reply[..2]);
        let sum = checksum(&reply[3..]);
        reply.push(sum);
        let response = decode_response(&reply).ok();
        assert_eq!(
            response,
            Some(Response {
                netfn: 1,
                cmd: 1,
                rq_seq: 2,
                completion: 0,
                data: vec![1, 0, 0]
            })
        );
        assert_eq!(
            decode_response(&reply[..5]),
            Err(WireError::TooShort { len: 5, need: 8 })
        );
        reply[7] ^= 1;
        assert_eq!(decode_response(&reply), Err(WireError::Checksum));
    }

    #[test]
    fn v15_md5_auth_code() {
        // MD5 over the concatenation, computed independently with Python's
        // hashlib: md5(b"pw"+b"\0"*14 + (1).to_bytes(4,"little") + b"\x01\x02"
        // + (2).to_bytes(4,"little") + b"pw"+b"\0"*14).
        let code = v15_auth_code(AuthType::Md5, &pad16(b"pw"), 1, 2, &[1, 2]);
        let hex: String = code
            .unwrap_or_default()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "f0e59fb409bdf98ba0b9857263c1bf96");
        assert_eq!(
            v15_auth_code(AuthType::Password, &pad16(b"pw"), 1, 2, &[]),
            Some(pad16(b"pw"))
        );
        assert_eq!(
            v15_auth_code(AuthType::None, &pad16(b"pw"), 1, 2, &[]),
            None
        );
    }

    #[test]
    fn v15_decode_checks_lengths() {
        let packet = encode_v15(AuthType::Md5, 7, 0x1234, Some([9; 16]), &[1, 2, 3]);
        assert_eq!(decode_v15(&packet), Ok((0x1234, &[1u8, 2, 3][..])));
        assert!(decode_v15(&packet[..packet.len() - 1]).is_err());
        assert!(decode_v15(&[0u8; 3]).is_err());
    }

    fn keys(id: u8) -> SessionKeys {
        let suite = CipherSuite::from_id(id).unwrap_or(CipherSuite {
            id,
            auth: AuthAlgorithm::None,
            integrity: IntegrityAlgorithm::None,
            confidentiality: ConfidentialityAlgorithm::None,
        });
        SessionKeys {
            suite,
            k1: vec![7; 20],
            aes_key: [3; 16],
        }
    }

    #[test]
    fn v20_round_trip_for_each_suite() {
        for id in CipherSuite::SUPPORTED {
            let keys = keys(id);
            for len in [0usize, 1, 7, 15, 16, 17, 40] {
                let payload: Vec<u8> = (0..len as u8).collect();
                let packet = encode_v20(PAYLOAD_IPMI, 0xabcd, 5, &payload, Some(&keys), [0x55; 16]);
                if keys.suite.integrity != IntegrityAlgorithm::None {
                    let covered = packet.len() - 4 - keys.suite.integrity.auth_code_len();
                    assert_eq!(covered % 4, 0, "suite {id} len {len}");
                }
                let decoded = decode_v20(&packet, Some(&keys));
                assert_eq!(
                    decoded.map(|p| (p.session_id, p.sequence, p.payload)),
                    Ok((0xabcd, 5, payload.clone())),
                    "suite {id} len {len}"
                );
            }
        }
    }

    #[test]
    fn v20_rejects_tampering() {
        let keys = keys(17);
        let mut packet = encode_v20(PAYLOAD_IPMI, 1, 1, &[1, 2, 3], Some(&keys), [1; 16]);
        let at = 20;
        packet[at] ^= 0x01;
        assert_eq!(decode_v20(&packet, Some(&keys)), Err(WireError::Integrity));
        // A plain packet inside an authenticated session is refused.
        let plain = encode_v20(PAYLOAD_IPMI, 1, 1, &[1, 2, 3], None, [0; 16]);
        assert_eq!(decode_v20(&plain, Some(&keys)), Err(WireError::Integrity));
        for cut in 0..plain.len() {
            assert!(decode_v20(&plain[..cut], Some(&keys)).is_err());
        }
    }

    #[test]
    fn cipher_suites() {
        let three = CipherSuite::from_id(3);
        assert_eq!(
            three.map(|s| (s.auth, s.integrity, s.confidentiality)),
            Some((
                AuthAlgorithm::HmacSha1,
                IntegrityAlgorithm::HmacSha1_96,
                ConfidentialityAlgorithm::AesCbc128
            ))
        );
        let seventeen = CipherSuite::from_id(17);
        assert_eq!(
            seventeen.map(|s| (s.auth.code(), s.integrity.code(), s.confidentiality.code())),
            Some((3, 4, 1))
        );
        assert_eq!(CipherSuite::from_id(8), None);
    }

    #[test]
    fn parsers_never_panic_on_short_input() {
        for len in 0..64 {
            let bytes: Vec<u8> = (0..len as u8).collect();
            let _ = OpenSessionResponse::parse(&bytes);
            let _ = Rakp2::parse(&bytes);
            let _ = Rakp4::parse(&bytes);
            let _ = AuthCapabilities::parse(&bytes);
            let _ = decode_response(&bytes);
            let _ = decode_v15(&bytes);
            let _ = decode_v20(&bytes, Some(&keys(3)));
        }
    }
}
