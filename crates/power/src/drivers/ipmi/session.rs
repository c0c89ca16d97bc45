//! One IPMI session with one BMC over UDP: establishment (v1.5 challenge /
//! activate, or v2.0 RMCP+ open session and RAKP), commands with bounded
//! retransmission, and close. Replies that fail to decode or belong to
//! something else are dropped and logged at debug level.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;
use tracing::{debug, trace};

use super::wire::{self, AuthType, Request, Response, SessionKeys, StatusClass};
use super::{IpmiSettings, IpmiVersion};
use crate::driver::Timeouts;
use crate::error::{PowerAction, PowerError};

fn random<const N: usize>() -> io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|error| io::Error::other(error.to_string()))?;
    Ok(bytes)
}

fn random_nonzero_u32() -> io::Result<u32> {
    loop {
        let value = u32::from_le_bytes(random::<4>()?);
        if value != 0 {
            return Ok(value);
        }
    }
}

enum SessionState {
    /// Before a session: sessionless v1.5 packets.
    None,
    V15 {
        auth_type: AuthType,
        session_id: u32,
        sequence: u32,
        password: [u8; 16],
        per_message_auth: bool,
    },
    V20 {
        bmc_session_id: u32,
        console_session_id: u32,
        sequence: u32,
        keys: SessionKeys,
    },
}

/// What a received datagram turned out to be.
enum Reply<T> {
    Match(T),
    Ignore(&'static str),
}

pub(crate) struct Session<'a> {
    socket: UdpSocket,
    settings: &'a IpmiSettings,
    timeouts: Timeouts,
    action: PowerAction,
    state: SessionState,
    rq_seq: u8,
}

impl<'a> Session<'a> {
    /// Opens and authenticates a session at the configured privilege level.
    pub(crate) async fn open(
        settings: &'a IpmiSettings,
        timeouts: Timeouts,
        action: PowerAction,
    ) -> Result<Session<'a>, PowerError> {
        let bmc = settings.address.to_string();
        let connection = |source: io::Error| PowerError::Connection {
            bmc: bmc.clone(),
            action,
            source,
        };
        let target = resolve(settings, &timeouts, action).await?;
        let local: SocketAddr = if target.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).await.map_err(connection)?;
        socket.connect(target).await.map_err(connection)?;
        let mut session = Session {
            socket,
            settings,
            timeouts,
            action,
            state: SessionState::None,
            rq_seq: 0,
        };
        match settings.version {
            IpmiVersion::Lan20 => session.open_v20().await?,
            IpmiVersion::Lan15 => session.open_v15().await?,
        }
        let privilege = settings.privilege.code();
        let reply = session
            .request(
                wire::NETFN_APP,
                wire::CMD_SET_SESSION_PRIVILEGE,
                vec![privilege],
            )
            .await?;
        match reply.completion {
            0 => Ok(session),
            code @ (0x80 | 0x81) => Err(session.auth_error(format!(
                "privilege level {} cannot be obtained for this user ({})",
                settings.privilege.name(),
                wire::completion_text(code)
            ))),
            code => Err(session.refused(wire::CMD_SET_SESSION_PRIVILEGE, code)),
        }
    }

    fn bmc(&self) -> String {
        self.settings.address.to_string()
    }

    fn auth_error(&self, reason: String) -> PowerError {
        PowerError::Authentication {
            bmc: self.bmc(),
            action: self.action,
            reason,
        }
    }

    fn setting_error(&self, setting: &'static str, reason: String) -> PowerError {
        PowerError::SettingRejected {
            bmc: self.bmc(),
            action: self.action,
            setting,
            reason,
        }
    }

    fn bad_reply(&self, reason: String) -> PowerError {
        PowerError::BadReply {
            bmc: self.bmc(),
            action: self.action,
            reason,
        }
    }

    /// An error for a non-zero completion code of `cmd`.
    pub(crate) fn refused(&self, cmd: u8, code: u8) -> PowerError {
        let reason = format!(
            "command {cmd:#04x} failed with completion code {code:#04x} ({})",
            wire::completion_text(code)
        );
        match code {
            0xc0 | 0xc3 | 0xd2 | 0xcf => PowerError::Busy {
                bmc: self.bmc(),
                action: self.action,
                reason,
            },
            0xd4 => self.auth_error(format!("privilege level insufficient: {reason}")),
            _ => PowerError::Refused {
                bmc: self.bmc(),
                action: self.action,
                reason,
            },
        }
    }

    fn rakp_error(&self, step: &str, status: u8) -> PowerError {
        let (class, text) = wire::rakp_status(status);
        let reason = format!("{step} status {status:#04x}: {text}");
        match class {
            StatusClass::Busy => PowerError::Busy {
                bmc: self.bmc(),
                action: self.action,
                reason,
            },
            StatusClass::Authentication => self.auth_error(reason),
            StatusClass::Setting => self.setting_error("cipher_suite_id", reason),
            StatusClass::Other => PowerError::Refused {
                bmc: self.bmc(),
                action: self.action,
                reason,
            },
        }
    }

    /// Sends what `build` makes (rebuilt for each attempt, so sequence
    /// numbers stay fresh) and waits for a datagram `accept` takes. Each
    /// attempt waits `timeouts.request`; after `timeouts.attempts` the
    /// result is a retryable timeout or connection error.
    async fn exchange<T>(
        &mut self,
        what: &str,
        mut build: impl FnMut(&mut Self) -> io::Result<Vec<u8>>,
        accept: impl Fn(&Self, &[u8]) -> Result<Reply<T>, PowerError>,
    ) -> Result<T, PowerError> {
        let attempts = self.timeouts.attempts.max(1);
        let mut buffer = vec![0u8; 1024];
        let mut refused = None;
        for attempt in 1..=attempts {
            let packet = build(self).map_err(|source| PowerError::Connection {
                bmc: self.bmc(),
                action: self.action,
                source,
            })?;
            trace!(what, attempt, len = packet.len(), "send");
            if let Err(error) = self.socket.send(&packet).await {
                refused = Some(error);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let deadline = Instant::now() + self.timeouts.request;
            loop {
                let received =
                    tokio::time::timeout_at(deadline, self.socket.recv(&mut buffer)).await;
                match received {
                    Err(_) => {
                        debug!(what, attempt, "no reply in time");
                        break;
                    }
                    Ok(Err(error)) => {
                        // ICMP port unreachable shows up here on a connected
                        // socket: nothing listens at that address.
                        debug!(what, attempt, error = %error, "receive failed");
                        refused = Some(error);
                        tokio::time::sleep_until(
                            deadline.min(Instant::now() + Duration::from_millis(100)),
                        )
                        .await;
                        break;
                    }
                    Ok(Ok(len)) => {
                        let datagram = &buffer[..len.min(buffer.len())];
                        match accept(self, datagram)? {
                            Reply::Match(value) => return Ok(value),
                            Reply::Ignore(why) => debug!(what, why, len, "dropped a datagram"),
                        }
                    }
                }
            }
        }
        match refused {
            Some(source) => Err(PowerError::Connection {
                bmc: self.bmc(),
                action: self.action,
                source,
            }),
            None => Err(PowerError::Timeout {
                bmc: self.bmc(),
                action: self.action,
                waited: self.timeouts.request * attempts,
            }),
        }
    }

    fn next_rq_seq(&mut self) -> u8 {
        self.rq_seq = (self.rq_seq + 1) & 0x3f;
        self.rq_seq
    }

    /// Sends one IPMI request inside the session (or sessionless before
    /// one exists) and returns the BMC's response, whatever its completion
    /// code.
    pub(crate) async fn request(
        &mut self,
        netfn: u8,
        cmd: u8,
        data: Vec<u8>,
    ) -> Result<Response, PowerError> {
        let request = Request { netfn, cmd, data };
        let rq_seq = self.next_rq_seq();
        let message = wire::encode_request(&request, rq_seq);
        self.exchange(
            "ipmi request",
            |session| session.wrap(&message),
            |session, datagram| {
                let inner = match session.unwrap_message(datagram) {
                    Ok(inner) => inner,
                    Err(why) => return Ok(Reply::Ignore(why)),
                };
                match wire::decode_response(&inner) {
                    Ok(response)
                        if response.rq_seq == rq_seq
                            && response.cmd == cmd
                            && response.netfn == netfn + 1 =>
                    {
                        Ok(Reply::Match(response))
                    }
                    Ok(_) => Ok(Reply::Ignore("reply to another request")),
                    Err(_) => Ok(Reply::Ignore("malformed IPMI message")),
                }
            },
        )
        .await
    }

    /// Puts an IPMI message into a packet of the current session.
    fn wrap(&mut self, message: &[u8]) -> io::Result<Vec<u8>> {
        Ok(match &mut self.state {
            SessionState::None => wire::encode_v15(AuthType::None, 0, 0, None, message),
            SessionState::V15 {
                auth_type,
                session_id,
                sequence,
                password,
                per_message_auth,
            } => {
                *sequence = sequence.wrapping_add(1).max(1);
                let auth_type = if *per_message_auth {
                    *auth_type
                } else {
                    AuthType::None
                };
                let code =
                    wire::v15_auth_code(auth_type, password, *session_id, *sequence, message);
                wire::encode_v15(auth_type, *sequence, *session_id, code, message)
            }
            SessionState::V20 {
                bmc_session_id,
                sequence,
                keys,
                ..
            } => {
                *sequence = sequence.wrapping_add(1).max(1);
                wire::encode_v20(
                    wire::PAYLOAD_IPMI,
                    *bmc_session_id,
                    *sequence,
                    message,
                    Some(keys),
                    random::<16>()?,
                )
            }
        })
    }

    /// The IPMI message inside a received packet of this session.
    fn unwrap_message(&self, datagram: &[u8]) -> Result<Vec<u8>, &'static str> {
        match &self.state {
            SessionState::None | SessionState::V15 { .. } => {
                let (_, message) =
                    wire::decode_v15(datagram).map_err(|_| "not an IPMI v1.5 packet")?;
                Ok(message.to_vec())
            }
            SessionState::V20 {
                console_session_id,
                keys,
                ..
            } => {
                let packet = wire::decode_v20(datagram, Some(keys))
                    .map_err(|_| "RMCP+ packet failed to decode or authenticate")?;
                if packet.session_id != *console_session_id {
                    return Err("packet for another session");
                }
                if packet.payload_type != wire::PAYLOAD_IPMI {
                    return Err("not an IPMI payload");
                }
                Ok(packet.payload)
            }
        }
    }

    async fn channel_auth_capabilities(
        &mut self,
        ipmi20: bool,
    ) -> Result<wire::AuthCapabilities, PowerError> {
        let channel = if ipmi20 { 0x8e } else { 0x0e };
        let privilege = self.settings.privilege.code();
        let reply = self
            .request(
                wire::NETFN_APP,
                wire::CMD_GET_CHANNEL_AUTH_CAPABILITIES,
                vec![channel, privilege],
            )
            .await?;
        if reply.completion != 0 {
            return Err(self.refused(wire::CMD_GET_CHANNEL_AUTH_CAPABILITIES, reply.completion));
        }
        wire::AuthCapabilities::parse(&reply.data).map_err(|error| {
            self.bad_reply(format!("Get Channel Authentication Capabilities: {error}"))
        })
    }

    async fn open_v20(&mut self) -> Result<(), PowerError> {
        let capabilities = self.channel_auth_capabilities(true).await?;
        if !capabilities.ipmi20 {
            return Err(self.setting_error(
                "power_driver",
                "IPMI 2.0 unavailable on this channel".into(),
            ));
        }
        let settings = self.settings;
        let suite = settings.cipher_suite;
        let action = self.action;
        let io_error = |source| PowerError::Connection {
            bmc: settings.address.to_string(),
            action,
            source,
        };
        let console_session_id = random_nonzero_u32().map_err(io_error)?;
        let tag = random::<1>().map_err(io_error)?[0];
        // The maximum privilege level we ask for in RAKP1, with the
        // name-only lookup bit as ipmitool and freeipmi send it.
        let role = 0x10 | settings.privilege.code();

        let open =
            wire::open_session_request(tag, settings.privilege.code(), console_session_id, &suite);
        let response = self
            .exchange(
                "open session",
                |_| {
                    Ok(wire::encode_v20(
                        wire::PAYLOAD_OPEN_SESSION_REQUEST,
                        0,
                        0,
                        &open,
                        None,
                        [0; 16],
                    ))
                },
                |_, datagram| {
                    Ok(
                        sessionless_payload(datagram, wire::PAYLOAD_OPEN_SESSION_RESPONSE, tag)
                            .map_or(Reply::Ignore("not our open session response"), |payload| {
                                Reply::Match(wire::OpenSessionResponse::parse(&payload))
                            }),
                    )
                },
            )
            .await?
            .map_err(|error| self.bad_reply(format!("open session response: {error}")))?;
        if response.status != 0 {
            return Err(self.rakp_error("open session", response.status));
        }
        if response.console_session_id != console_session_id {
            return Err(self.bad_reply("open session response names another session".into()));
        }
        let wanted = (
            suite.auth.code(),
            suite.integrity.code(),
            suite.confidentiality.code(),
        );
        if response.algorithms != Some(wanted) {
            return Err(self.setting_error(
                "cipher_suite_id",
                format!(
                    "cipher suite id {} unavailable: asked for algorithms {wanted:?}, BMC chose {:?}",
                    suite.id, response.algorithms
                ),
            ));
        }

        let context = wire::RakpContext {
            console_session_id,
            bmc_session_id: response.bmc_session_id,
            console_random: random::<16>().map_err(io_error)?,
            role,
            user: settings.user.as_bytes().to_vec(),
        };
        let rakp1 = context.rakp1(tag);
        let rakp2 = self
            .exchange(
                "RAKP 1",
                |_| {
                    Ok(wire::encode_v20(
                        wire::PAYLOAD_RAKP1,
                        0,
                        0,
                        &rakp1,
                        None,
                        [0; 16],
                    ))
                },
                |_, datagram| {
                    Ok(sessionless_payload(datagram, wire::PAYLOAD_RAKP2, tag)
                        .map_or(Reply::Ignore("not our RAKP 2"), |payload| {
                            Reply::Match(wire::Rakp2::parse(&payload))
                        }))
                },
            )
            .await?
            .map_err(|error| self.bad_reply(format!("RAKP 2: {error}")))?;
        if rakp2.status != 0 {
            return Err(self.rakp_error("RAKP 2", rakp2.status));
        }
        let password = settings.password.expose().as_bytes();
        if suite.auth != wire::AuthAlgorithm::None
            && !context.rakp2_matches(suite.auth, password, &rakp2)
        {
            return Err(self.auth_error(format!(
                "password invalid for user {:?} (RAKP 2 key exchange code does not match)",
                settings.user
            )));
        }

        let kg = settings.k_g.as_ref().map_or(password, |key| key.as_deref());
        let (sik, keys) = context.session_keys(suite, kg, &rakp2);
        let rakp3 = context.rakp3(tag, suite.auth, password, &rakp2);
        let rakp4 = self
            .exchange(
                "RAKP 3",
                |_| {
                    Ok(wire::encode_v20(
                        wire::PAYLOAD_RAKP3,
                        0,
                        0,
                        &rakp3,
                        None,
                        [0; 16],
                    ))
                },
                |_, datagram| {
                    Ok(sessionless_payload(datagram, wire::PAYLOAD_RAKP4, tag)
                        .map_or(Reply::Ignore("not our RAKP 4"), |payload| {
                            Reply::Match(wire::Rakp4::parse(&payload))
                        }))
                },
            )
            .await
            .map_err(|error| match error {
                // The BMC answered RAKP 1 but not RAKP 3: it dropped our
                // key exchange code, which is what some BMCs do with a
                // wrong K_g.
                PowerError::Timeout { .. } if settings.k_g.is_some() => {
                    self.auth_error("k_g invalid (no reply to RAKP 3)".into())
                }
                other => other,
            })?
            .map_err(|error| self.bad_reply(format!("RAKP 4: {error}")))?;
        if rakp4.status != 0 {
            let mut error = self.rakp_error("RAKP 4", rakp4.status);
            if rakp4.status == 0x0f && settings.k_g.is_some() {
                error = self.auth_error(
                    "k_g invalid (RAKP 4 status: invalid integrity check value)".into(),
                );
            }
            return Err(error);
        }
        if suite.auth != wire::AuthAlgorithm::None
            && !context.rakp4_matches(suite.auth, &sik, &rakp2.bmc_guid, &rakp4.icv)
        {
            return Err(
                self.auth_error("k_g invalid (RAKP 4 integrity check value does not match)".into())
            );
        }
        self.state = SessionState::V20 {
            bmc_session_id: response.bmc_session_id,
            console_session_id,
            sequence: 0,
            keys,
        };
        Ok(())
    }

    async fn open_v15(&mut self) -> Result<(), PowerError> {
        let capabilities = self.channel_auth_capabilities(false).await?;
        let auth_type = [AuthType::Md5, AuthType::Password, AuthType::None]
            .into_iter()
            .find(|auth_type| capabilities.offers(*auth_type))
            .ok_or_else(|| {
                self.setting_error(
                    "power_driver",
                    format!("authentication type unavailable: BMC offers types {:#04x}, we speak none, MD5 and straight password", capabilities.auth_types),
                )
            })?;
        let settings = self.settings;
        let user = wire::pad16(settings.user.as_bytes());
        let password = wire::pad16(settings.password.expose().as_bytes());

        let mut data = vec![auth_type.code()];
        data.extend_from_slice(&user);
        let challenge = self
            .request(wire::NETFN_APP, wire::CMD_GET_SESSION_CHALLENGE, data)
            .await?;
        match challenge.completion {
            0 => {}
            0x81 => return Err(self.auth_error(format!("username invalid: {:?}", settings.user))),
            0x82 => return Err(self.auth_error("null user name is not enabled on this BMC".into())),
            code => return Err(self.refused(wire::CMD_GET_SESSION_CHALLENGE, code)),
        }
        if challenge.data.len() < 20 {
            return Err(self.bad_reply("Get Session Challenge reply too short".into()));
        }
        let temporary_id = u32::from_le_bytes([
            challenge.data[0],
            challenge.data[1],
            challenge.data[2],
            challenge.data[3],
        ]);
        let outbound_sequence = random_nonzero_u32().map_err(|source| PowerError::Connection {
            bmc: self.bmc(),
            action: self.action,
            source,
        })?;
        let mut data = vec![auth_type.code(), settings.privilege.code()];
        data.extend_from_slice(&challenge.data[4..20]);
        data.extend_from_slice(&outbound_sequence.to_le_bytes());
        let rq_seq = self.next_rq_seq();
        let message = wire::encode_request(
            &Request {
                netfn: wire::NETFN_APP,
                cmd: wire::CMD_ACTIVATE_SESSION,
                data,
            },
            rq_seq,
        );
        let code = wire::v15_auth_code(auth_type, &password, temporary_id, 0, &message);
        let packet = wire::encode_v15(auth_type, 0, temporary_id, code, &message);
        let activated = self
            .exchange(
                "activate session",
                |_| Ok(packet.clone()),
                |_, datagram| {
                    let Ok((_, inner)) = wire::decode_v15(datagram) else {
                        return Ok(Reply::Ignore("not an IPMI v1.5 packet"));
                    };
                    Ok(match wire::decode_response(inner) {
                        Ok(response)
                            if response.rq_seq == rq_seq
                                && response.cmd == wire::CMD_ACTIVATE_SESSION =>
                        {
                            Reply::Match(response)
                        }
                        _ => Reply::Ignore("not our activate session reply"),
                    })
                },
            )
            .await
            .map_err(|error| match error {
                // The BMC gave us a challenge a moment ago, so it is there:
                // BMCs drop Activate Session with a wrong AuthCode.
                PowerError::Timeout { .. } => self.auth_error(
                    "password verification timeout (no reply to Activate Session)".into(),
                ),
                other => other,
            })?;
        match activated.completion {
            0 => {}
            code @ (0x81..=0x83) => {
                return Err(PowerError::Busy {
                    bmc: self.bmc(),
                    action: self.action,
                    reason: format!("no session slot available ({code:#04x})"),
                });
            }
            0x86 => {
                return Err(self.auth_error(format!(
                    "privilege level {} exceeds the user's limit",
                    settings.privilege.name()
                )));
            }
            code => return Err(self.refused(wire::CMD_ACTIVATE_SESSION, code)),
        }
        if activated.data.len() < 10 {
            return Err(self.bad_reply("Activate Session reply too short".into()));
        }
        let d = &activated.data;
        let session_id = u32::from_le_bytes([d[1], d[2], d[3], d[4]]);
        let inbound = u32::from_le_bytes([d[5], d[6], d[7], d[8]]);
        self.state = SessionState::V15 {
            auth_type,
            session_id,
            // `wrap` adds one before each send.
            sequence: inbound.wrapping_sub(1),
            password,
            per_message_auth: !capabilities.per_message_auth_disabled,
        };
        Ok(())
    }

    /// Ends the session; failures only get logged, the action is done.
    pub(crate) async fn close(mut self) {
        let session_id = match &self.state {
            SessionState::None => return,
            SessionState::V15 { session_id, .. } => *session_id,
            SessionState::V20 { bmc_session_id, .. } => *bmc_session_id,
        };
        self.timeouts.attempts = 1;
        self.timeouts.request = self.timeouts.request.min(Duration::from_millis(500));
        match self
            .request(
                wire::NETFN_APP,
                wire::CMD_CLOSE_SESSION,
                session_id.to_le_bytes().to_vec(),
            )
            .await
        {
            Ok(reply) if reply.completion == 0 => debug!("session closed"),
            Ok(reply) => debug!(completion = reply.completion, "close session refused"),
            Err(error) => debug!(error = %error, "close session failed"),
        }
    }
}

/// The payload of a sessionless RMCP+ packet of `payload_type` whose first
/// byte is our message tag.
fn sessionless_payload(datagram: &[u8], payload_type: u8, tag: u8) -> Option<Vec<u8>> {
    let packet = wire::decode_v20(datagram, None).ok()?;
    (packet.payload_type == payload_type && packet.payload.first() == Some(&tag))
        .then_some(packet.payload)
}

async fn resolve(
    settings: &IpmiSettings,
    timeouts: &Timeouts,
    action: PowerAction,
) -> Result<SocketAddr, PowerError> {
    let address = &settings.address;
    if let Ok(ip) = address.host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, address.port));
    }
    let lookup = tokio::net::lookup_host((address.host.as_str(), address.port));
    let error = |source| PowerError::Connection {
        bmc: address.to_string(),
        action,
        source,
    };
    match tokio::time::timeout(timeouts.request, lookup).await {
        Err(_) => Err(PowerError::Timeout {
            bmc: address.to_string(),
            action,
            waited: timeouts.request,
        }),
        Ok(Err(source)) => Err(error(source)),
        Ok(Ok(mut addresses)) => addresses.next().ok_or_else(|| {
            error(io::Error::new(
                io::ErrorKind::NotFound,
                "host name has no address",
            ))
        }),
    }
}
