//! The DHCPv4 lease engine: a decoded request and the current time in, a reply and lease
//! events out.
//!
//! The engine owns the lease table and decides addresses (RFC 2131 sections 4.3 and 4.4).
//! It never touches sockets, files or clocks: the caller passes `now` (Unix seconds), sends
//! the reply to where [`ReplyTo`] says, and persists the [`LeaseEvent`]s before sending, so
//! that replaying them after a restart rebuilds the same table.
//! Which boot file a client gets is asked of a [`BootFileChooser`], so boot policy stays out.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;

use maas_domain::MacAddress;

use crate::message::{FLAG_BROADCAST, Message, Op};
use crate::net::{IpRange, Ipv4Net};
use crate::options::{DhcpOption, MessageType, code};

/// One subnet the server hands addresses on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetConfig {
    pub cidr: Ipv4Net,
    pub router: Option<Ipv4Addr>,
    pub dns_servers: Vec<Ipv4Addr>,
    pub domain_name: Option<String>,
    /// Seconds.
    pub lease_time: u32,
    /// Sent as option 26 when set.
    pub mtu: Option<u16>,
    /// Dynamic ranges; reserved (static) addresses may lie outside them.
    pub ranges: Vec<IpRange>,
    /// Server identifier and next-server on this subnet; `None` means the address that
    /// received the request.
    pub server_ip: Option<Ipv4Addr>,
}

/// A per-MAC fixed address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    pub mac: MacAddress,
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    pub subnets: Vec<SubnetConfig>,
    pub reservations: Vec<Reservation>,
    /// Lease time for clients whose option 60 starts with `PXEClient` (MAAS uses 30 s), so
    /// firmware leases do not hold addresses for the OS that boots next.
    pub pxe_lease_time: Option<u32>,
    /// How long an OFFER holds its address, seconds.
    pub offer_hold: u32,
    /// How long a DECLINEd address stays unused, seconds.
    pub decline_hold: u32,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            subnets: Vec::new(),
            reservations: Vec::new(),
            pxe_lease_time: Some(30),
            offer_hold: 30,
            decline_hold: 600,
        }
    }
}

/// What the boot policy needs to know about a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientBootInfo {
    pub mac: MacAddress,
    /// First value of option 93.
    pub arch: Option<u16>,
    /// Option 77 says iPXE, or option 175 is present.
    pub is_ipxe: bool,
    /// Option 60 as sent.
    pub vendor_class: Option<Vec<u8>>,
}

impl ClientBootInfo {
    pub fn from_message(message: &Message, mac: MacAddress) -> ClientBootInfo {
        ClientBootInfo {
            mac,
            arch: message.client_architecture(),
            is_ipxe: message.is_ipxe(),
            vendor_class: message.vendor_class().map(<[u8]>::to_vec),
        }
    }
}

/// Network boot fields of a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootFile {
    /// `siaddr`.
    pub next_server: Ipv4Addr,
    /// `file` (and nothing else: option 67 is only used when the field is overloaded).
    pub filename: String,
    /// Option 60 in the reply (`HTTPClient` for UEFI HTTP boot).
    pub vendor_class: Option<String>,
    /// Option 210 (PXELINUX path prefix).
    pub path_prefix: Option<String>,
}

/// Chooses the boot file for a client; `server_ip` is this server's address on the client's
/// subnet.
pub trait BootFileChooser {
    fn boot_file(&self, client: &ClientBootInfo, server_ip: Ipv4Addr) -> Option<BootFile>;
}

/// A chooser that never offers a boot file.
pub struct NoBootFile;

impl BootFileChooser for NoBootFile {
    fn boot_file(&self, _client: &ClientBootInfo, _server_ip: Ipv4Addr) -> Option<BootFile> {
        None
    }
}

/// Where a request arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ingress {
    /// This server's address on the interface that received the request. Direct (not
    /// relayed) requests are served from the subnet containing it.
    pub local_ip: Ipv4Addr,
}

/// Where to send a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyTo {
    /// The relay agent at `giaddr`, on the server port.
    Relay(Ipv4Addr),
    /// The client's current address, on the client port.
    Unicast(Ipv4Addr),
    /// 255.255.255.255 on the client port, out of the receiving interface.
    Broadcast,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub message: Message,
    pub to: ReplyTo,
}

/// A change to the lease table, to persist and to report to the region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseEvent {
    Commit {
        mac: MacAddress,
        ip: Ipv4Addr,
        hostname: Option<String>,
        /// Unix seconds.
        start: u64,
        /// Seconds.
        lease_time: u32,
    },
    Release {
        mac: MacAddress,
        ip: Ipv4Addr,
        at: u64,
    },
    Expire {
        mac: MacAddress,
        ip: Ipv4Addr,
        at: u64,
    },
    Decline {
        mac: MacAddress,
        ip: Ipv4Addr,
        at: u64,
        until: u64,
    },
}

/// Why a request got no reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    NotARequest,
    NoMessageType,
    UnsupportedMessageType(u8),
    NotEthernet,
    /// Neither `giaddr` nor the receiving address is in a served subnet.
    NoSubnet,
    PoolExhausted,
    /// SELECTING with another server's identifier: the client chose someone else.
    OtherServerChosen,
    /// A DECLINE or RELEASE for an address this client does not hold.
    NoSuchLease,
    /// DECLINE or RELEASE handled; they have no reply by design.
    NoReplyExpected,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub reply: Option<Reply>,
    pub events: Vec<LeaseEvent>,
    pub ignored: Option<Ignored>,
}

impl Outcome {
    fn ignored(reason: Ignored) -> Outcome {
        Outcome {
            reply: None,
            events: Vec::new(),
            ignored: Some(reason),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseState {
    Offered,
    Bound,
    Released,
    Expired,
    Declined,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub mac: MacAddress,
    pub ip: Ipv4Addr,
    pub state: LeaseState,
    /// Unix seconds: end of the lease, offer hold or decline hold.
    pub expires: u64,
    pub hostname: Option<String>,
}

impl Lease {
    /// Whether the address is taken at `now` (by this lease's MAC, or blocked).
    fn holds(&self, now: u64) -> bool {
        match self.state {
            LeaseState::Offered | LeaseState::Bound | LeaseState::Declined => self.expires > now,
            LeaseState::Released | LeaseState::Expired => false,
        }
    }
}

/// The engine: configuration plus the lease table.
pub struct Engine {
    config: EngineConfig,
    /// `config.subnets`, shared so a request borrows its subnet without copying it.
    subnets: Arc<[SubnetConfig]>,
    reservation_by_mac: HashMap<MacAddress, Reservation>,
    reserved_ips: HashMap<Ipv4Addr, MacAddress>,
    by_ip: BTreeMap<Ipv4Addr, Lease>,
    by_mac: HashMap<MacAddress, Ipv4Addr>,
    /// Per subnet (by network address): where the next free-address scan starts.
    cursors: HashMap<Ipv4Addr, u32>,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Engine {
        let mut engine = Engine {
            config: EngineConfig::default(),
            subnets: Arc::from(Vec::new()),
            reservation_by_mac: HashMap::new(),
            reserved_ips: HashMap::new(),
            by_ip: BTreeMap::new(),
            by_mac: HashMap::new(),
            cursors: HashMap::new(),
        };
        engine.set_config(config);
        engine
    }

    /// Replaces subnets and reservations; the lease table is kept.
    pub fn set_config(&mut self, config: EngineConfig) {
        self.reservation_by_mac = config
            .reservations
            .iter()
            .map(|r| (r.mac, r.clone()))
            .collect();
        self.reserved_ips = config.reservations.iter().map(|r| (r.ip, r.mac)).collect();
        self.subnets = Arc::from(config.subnets.clone());
        self.config = config;
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn lease_for(&self, mac: MacAddress) -> Option<&Lease> {
        self.by_mac.get(&mac).and_then(|ip| self.by_ip.get(ip))
    }

    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.by_ip.values()
    }

    /// Applies a persisted event (replay after restart).
    pub fn apply(&mut self, event: &LeaseEvent) {
        match event {
            LeaseEvent::Commit {
                mac,
                ip,
                hostname,
                start,
                lease_time,
            } => self.insert(Lease {
                mac: *mac,
                ip: *ip,
                state: LeaseState::Bound,
                expires: start.saturating_add(u64::from(*lease_time)),
                hostname: hostname.clone(),
            }),
            LeaseEvent::Release { mac, ip, at } | LeaseEvent::Expire { mac, ip, at } => {
                if let Some(lease) = self.by_ip.get_mut(ip)
                    && lease.mac == *mac
                {
                    lease.state = match event {
                        LeaseEvent::Release { .. } => LeaseState::Released,
                        _ => LeaseState::Expired,
                    };
                    lease.expires = *at;
                }
            }
            LeaseEvent::Decline { mac, ip, until, .. } => {
                self.insert(Lease {
                    mac: *mac,
                    ip: *ip,
                    state: LeaseState::Declined,
                    expires: *until,
                    hostname: None,
                });
                self.by_mac.remove(mac);
            }
        }
    }

    /// Events that rebuild the table's live part (bound and declined addresses), for
    /// compacting the persisted log.
    pub fn snapshot(&self, now: u64) -> Vec<LeaseEvent> {
        self.by_ip
            .values()
            .filter(|lease| lease.expires > now)
            .filter_map(|lease| match lease.state {
                LeaseState::Bound => Some(LeaseEvent::Commit {
                    mac: lease.mac,
                    ip: lease.ip,
                    hostname: lease.hostname.clone(),
                    start: now,
                    lease_time: u32::try_from(lease.expires - now).unwrap_or(u32::MAX),
                }),
                LeaseState::Declined => Some(LeaseEvent::Decline {
                    mac: lease.mac,
                    ip: lease.ip,
                    at: now,
                    until: lease.expires,
                }),
                LeaseState::Offered | LeaseState::Released | LeaseState::Expired => None,
            })
            .collect()
    }

    /// Marks bound leases past their end as expired and returns the events.
    pub fn expire(&mut self, now: u64) -> Vec<LeaseEvent> {
        let mut events = Vec::new();
        for lease in self.by_ip.values_mut() {
            if lease.state == LeaseState::Bound && lease.expires <= now {
                lease.state = LeaseState::Expired;
                events.push(LeaseEvent::Expire {
                    mac: lease.mac,
                    ip: lease.ip,
                    at: lease.expires,
                });
            }
        }
        events
    }

    /// Handles one decoded request.
    pub fn handle(
        &mut self,
        request: &Message,
        ingress: Ingress,
        now: u64,
        boot: &dyn BootFileChooser,
    ) -> Outcome {
        if request.op != Op::BootRequest {
            return Outcome::ignored(Ignored::NotARequest);
        }
        let Some(kind) = request.message_type() else {
            return Outcome::ignored(Ignored::NoMessageType);
        };
        let Some(mac) = request.client_mac() else {
            return Outcome::ignored(Ignored::NotEthernet);
        };
        let subnets = Arc::clone(&self.subnets);
        let Some(subnet) = select_subnet(&subnets, request, ingress) else {
            return Outcome::ignored(Ignored::NoSubnet);
        };
        let server_ip = subnet.server_ip.unwrap_or(ingress.local_ip);
        let ctx = Context {
            request,
            mac,
            subnet,
            server_ip,
            now,
        };
        match kind {
            MessageType::Discover => self.discover(&ctx, boot),
            MessageType::Request => self.request(&ctx, boot),
            MessageType::Decline => self.decline(&ctx),
            MessageType::Release => self.release(&ctx),
            MessageType::Inform => self.inform(&ctx, boot),
            MessageType::Offer | MessageType::Ack | MessageType::Nak | MessageType::Other(_) => {
                Outcome::ignored(Ignored::UnsupportedMessageType(kind.to_u8()))
            }
        }
    }

    fn discover(&mut self, ctx: &Context<'_>, boot: &dyn BootFileChooser) -> Outcome {
        let Some(ip) = self.choose_address(ctx) else {
            return Outcome::ignored(Ignored::PoolExhausted);
        };
        let already_bound = self
            .by_ip
            .get(&ip)
            .is_some_and(|l| l.mac == ctx.mac && l.state == LeaseState::Bound && l.holds(ctx.now));
        if !already_bound {
            self.insert(Lease {
                mac: ctx.mac,
                ip,
                state: LeaseState::Offered,
                expires: ctx.now + u64::from(self.config.offer_hold),
                hostname: ctx.request.hostname().map(str::to_owned),
            });
        }
        let lease_time = self.lease_time(ctx);
        let reply = self.reply(ctx, MessageType::Offer, ip, Some(lease_time), boot);
        Outcome {
            reply: Some(reply),
            events: Vec::new(),
            ignored: None,
        }
    }

    fn request(&mut self, ctx: &Context<'_>, boot: &dyn BootFileChooser) -> Outcome {
        let request = ctx.request;
        let (wanted, state) = match (request.server_identifier(), request.requested_ip()) {
            (Some(server), _) if server != ctx.server_ip => {
                // SELECTING another server's offer: release what we offered.
                if let Some(ip) = self.by_mac.get(&ctx.mac).copied()
                    && self
                        .by_ip
                        .get(&ip)
                        .is_some_and(|l| l.state == LeaseState::Offered)
                {
                    self.by_ip.remove(&ip);
                    self.by_mac.remove(&ctx.mac);
                }
                return Outcome::ignored(Ignored::OtherServerChosen);
            }
            (Some(_), Some(ip)) => (ip, RequestState::Selecting),
            (Some(_), None) => (request.ciaddr, RequestState::Selecting),
            (None, Some(ip)) => (ip, RequestState::InitReboot),
            (None, None) => (request.ciaddr, RequestState::Renewing),
        };
        if wanted.is_unspecified() || !self.can_assign(ctx, wanted) {
            return self.nak(ctx, state);
        }
        let lease_time = self.lease_time(ctx);
        let hostname = request.hostname().map(str::to_owned).or_else(|| {
            self.reservation_by_mac
                .get(&ctx.mac)
                .and_then(|r| r.hostname.clone())
        });
        let previous = self.by_ip.get(&wanted).cloned();
        self.insert(Lease {
            mac: ctx.mac,
            ip: wanted,
            state: LeaseState::Bound,
            expires: ctx.now + u64::from(lease_time),
            hostname: hostname.clone(),
        });
        let mut events = Vec::new();
        if let Some(old) = previous
            && old.mac != ctx.mac
            && old.state == LeaseState::Bound
        {
            // Only reached for an expired lease of another client being reclaimed.
            events.push(LeaseEvent::Expire {
                mac: old.mac,
                ip: old.ip,
                at: old.expires,
            });
        }
        events.push(LeaseEvent::Commit {
            mac: ctx.mac,
            ip: wanted,
            hostname,
            start: ctx.now,
            lease_time,
        });
        let reply = self.reply(ctx, MessageType::Ack, wanted, Some(lease_time), boot);
        Outcome {
            reply: Some(reply),
            events,
            ignored: None,
        }
    }

    fn decline(&mut self, ctx: &Context<'_>) -> Outcome {
        let Some(ip) = ctx.request.requested_ip() else {
            return Outcome::ignored(Ignored::NoSuchLease);
        };
        if self.by_ip.get(&ip).is_none_or(|l| l.mac != ctx.mac) {
            return Outcome::ignored(Ignored::NoSuchLease);
        }
        let event = LeaseEvent::Decline {
            mac: ctx.mac,
            ip,
            at: ctx.now,
            until: ctx.now + u64::from(self.config.decline_hold),
        };
        self.apply(&event);
        Outcome {
            reply: None,
            events: vec![event],
            ignored: Some(Ignored::NoReplyExpected),
        }
    }

    fn release(&mut self, ctx: &Context<'_>) -> Outcome {
        let ip = ctx.request.ciaddr;
        let held = self
            .by_ip
            .get(&ip)
            .is_some_and(|l| l.mac == ctx.mac && l.state == LeaseState::Bound);
        if !held {
            return Outcome::ignored(Ignored::NoSuchLease);
        }
        let event = LeaseEvent::Release {
            mac: ctx.mac,
            ip,
            at: ctx.now,
        };
        self.apply(&event);
        Outcome {
            reply: None,
            events: vec![event],
            ignored: Some(Ignored::NoReplyExpected),
        }
    }

    fn inform(&mut self, ctx: &Context<'_>, boot: &dyn BootFileChooser) -> Outcome {
        let mut reply = self.reply(ctx, MessageType::Ack, Ipv4Addr::UNSPECIFIED, None, boot);
        if ctx.request.giaddr.is_unspecified() && !ctx.request.ciaddr.is_unspecified() {
            reply.to = ReplyTo::Unicast(ctx.request.ciaddr);
        }
        Outcome {
            reply: Some(reply),
            events: Vec::new(),
            ignored: None,
        }
    }

    fn nak(&self, ctx: &Context<'_>, state: RequestState) -> Outcome {
        let request = ctx.request;
        let mut message = Message::new(Op::BootReply, request.xid);
        message.htype = request.htype;
        message.hlen = request.hlen;
        message.chaddr = request.chaddr;
        message.giaddr = request.giaddr;
        message.options = vec![
            DhcpOption::MessageType(MessageType::Nak),
            DhcpOption::ServerIdentifier(ctx.server_ip),
            DhcpOption::Message(
                match state {
                    RequestState::Selecting => "requested address not offered",
                    RequestState::InitReboot => "requested address not available",
                    RequestState::Renewing => "lease not renewable",
                }
                .to_owned(),
            ),
        ];
        if let Some(agent) = request.option(code::RELAY_AGENT_INFORMATION) {
            message.options.push(agent.clone());
        }
        // RFC 2131 4.3.2: a NAK through a relay is broadcast by the relay.
        let to = if request.giaddr.is_unspecified() {
            ReplyTo::Broadcast
        } else {
            message.flags |= FLAG_BROADCAST;
            ReplyTo::Relay(request.giaddr)
        };
        Outcome {
            reply: Some(Reply { message, to }),
            events: Vec::new(),
            ignored: None,
        }
    }

    fn lease_time(&self, ctx: &Context<'_>) -> u32 {
        let is_pxe_firmware = ctx
            .request
            .vendor_class()
            .is_some_and(|class| class.starts_with(b"PXEClient"));
        match (is_pxe_firmware, self.config.pxe_lease_time) {
            (true, Some(pxe)) => pxe.min(ctx.subnet.lease_time),
            _ => ctx.subnet.lease_time,
        }
    }

    fn reply(
        &self,
        ctx: &Context<'_>,
        kind: MessageType,
        yiaddr: Ipv4Addr,
        lease_time: Option<u32>,
        boot: &dyn BootFileChooser,
    ) -> Reply {
        let request = ctx.request;
        let subnet = ctx.subnet;
        let mut message = Message::new(Op::BootReply, request.xid);
        message.htype = request.htype;
        message.hlen = request.hlen;
        message.chaddr = request.chaddr;
        message.flags = request.flags;
        message.giaddr = request.giaddr;
        message.ciaddr = if kind == MessageType::Ack {
            request.ciaddr
        } else {
            Ipv4Addr::UNSPECIFIED
        };
        message.yiaddr = yiaddr;
        let mut options = vec![
            DhcpOption::MessageType(kind),
            DhcpOption::ServerIdentifier(ctx.server_ip),
        ];
        if let Some(lease_time) = lease_time {
            options.push(DhcpOption::LeaseTime(lease_time));
            options.push(DhcpOption::RenewalTime(lease_time / 2));
            options.push(DhcpOption::RebindingTime(
                u32::try_from(u64::from(lease_time) * 7 / 8).unwrap_or(lease_time),
            ));
        }
        options.push(DhcpOption::SubnetMask(subnet.cidr.netmask()));
        options.push(DhcpOption::BroadcastAddress(subnet.cidr.broadcast()));
        if let Some(router) = subnet.router {
            options.push(DhcpOption::Router(vec![router]));
        }
        if !subnet.dns_servers.is_empty() {
            options.push(DhcpOption::DomainNameServer(subnet.dns_servers.clone()));
        }
        if let Some(domain) = &subnet.domain_name {
            options.push(DhcpOption::DomainName(domain.clone()));
        }
        if let Some(name) = self
            .reservation_by_mac
            .get(&ctx.mac)
            .filter(|r| r.ip == yiaddr)
            .and_then(|r| r.hostname.clone())
        {
            options.push(DhcpOption::Hostname(name));
        }
        if let Some(mtu) = subnet.mtu {
            options.push(DhcpOption::InterfaceMtu(mtu));
        }
        let client = ClientBootInfo::from_message(request, ctx.mac);
        if let Some(boot_file) = boot.boot_file(&client, ctx.server_ip) {
            message.siaddr = boot_file.next_server;
            message.file = boot_file.filename.into_bytes();
            if message.file.len() > 127 {
                // Too long for the field: carry it in option 67 instead.
                let name = String::from_utf8_lossy(&message.file).into_owned();
                message.file.clear();
                options.push(DhcpOption::BootfileName(name));
            }
            if let Some(class) = boot_file.vendor_class {
                options.push(DhcpOption::VendorClassIdentifier(class.into_bytes()));
            }
            if let Some(prefix) = boot_file.path_prefix {
                options.push(DhcpOption::PathPrefix(prefix));
            }
        }
        if let Some(agent) = request.option(code::RELAY_AGENT_INFORMATION) {
            // RFC 3046 2.2: echo the relay agent information back.
            options.push(agent.clone());
        }
        message.options = options;
        let to = if !request.giaddr.is_unspecified() {
            ReplyTo::Relay(request.giaddr)
        } else if !request.ciaddr.is_unspecified() && !request.is_broadcast() {
            ReplyTo::Unicast(request.ciaddr)
        } else {
            ReplyTo::Broadcast
        };
        Reply { message, to }
    }

    /// The address to offer: the reservation, else the client's previous address, else the
    /// requested one, else the next free one in the subnet's ranges.
    fn choose_address(&mut self, ctx: &Context<'_>) -> Option<Ipv4Addr> {
        if let Some(reservation) = self.reservation_for(ctx) {
            return Some(reservation.ip);
        }
        if let Some(previous) = self.by_mac.get(&ctx.mac).copied()
            && self.can_assign(ctx, previous)
        {
            return Some(previous);
        }
        if let Some(requested) = ctx.request.requested_ip()
            && self.can_assign(ctx, requested)
        {
            return Some(requested);
        }
        self.scan(ctx, |engine, ip| !engine.by_ip.contains_key(&ip))
            .or_else(|| self.scan(ctx, |engine, ip| engine.can_assign(ctx, ip)))
    }

    /// Walks the subnet's ranges from its cursor, returning the first address that is
    /// assignable and passes `fresh`.
    fn scan(
        &mut self,
        ctx: &Context<'_>,
        fresh: impl Fn(&Engine, Ipv4Addr) -> bool,
    ) -> Option<Ipv4Addr> {
        let ranges = &ctx.subnet.ranges;
        let total: u64 = ranges.iter().map(IpRange::len).sum();
        if total == 0 {
            return None;
        }
        let key = ctx.subnet.cidr.network();
        let start = u64::from(self.cursors.get(&key).copied().unwrap_or(0)) % total;
        for step in 0..total {
            let index = (start + step) % total;
            let Some(ip) = nth_address(ranges, index) else {
                continue;
            };
            if fresh(self, ip) && self.can_assign(ctx, ip) {
                let next = u32::try_from((index + 1) % total).unwrap_or(0);
                self.cursors.insert(key, next);
                return Some(ip);
            }
        }
        None
    }

    /// Whether `ip` may be given to this client now.
    fn can_assign(&self, ctx: &Context<'_>, ip: Ipv4Addr) -> bool {
        let subnet = ctx.subnet;
        if !subnet.cidr.contains(ip)
            || ip == subnet.cidr.network()
            || ip == subnet.cidr.broadcast()
            || Some(ip) == subnet.router
            || ip == ctx.server_ip
        {
            return false;
        }
        match self.reservation_for(ctx) {
            Some(reservation) => {
                if reservation.ip != ip {
                    return false;
                }
            }
            None => {
                if self.reserved_ips.contains_key(&ip) {
                    return false;
                }
                if !subnet.ranges.iter().any(|range| range.contains(ip)) {
                    return false;
                }
            }
        }
        match self.by_ip.get(&ip) {
            None => true,
            Some(lease) if lease.state == LeaseState::Declined => !lease.holds(ctx.now),
            Some(lease) => lease.mac == ctx.mac || !lease.holds(ctx.now),
        }
    }

    /// The client's reservation when it lies in the subnet being served; a reservation on
    /// another subnet leaves the client to the dynamic ranges here.
    fn reservation_for(&self, ctx: &Context<'_>) -> Option<&Reservation> {
        self.reservation_by_mac
            .get(&ctx.mac)
            .filter(|reservation| ctx.subnet.cidr.contains(reservation.ip))
    }

    fn insert(&mut self, lease: Lease) {
        if let Some(old_ip) = self.by_mac.get(&lease.mac).copied()
            && old_ip != lease.ip
            && self
                .by_ip
                .get(&old_ip)
                .is_some_and(|old| old.mac == lease.mac)
        {
            // One address per client: the old one goes back to the pool.
            self.by_ip.remove(&old_ip);
        }
        if let Some(displaced) = self.by_ip.get(&lease.ip)
            && displaced.mac != lease.mac
            && self.by_mac.get(&displaced.mac) == Some(&lease.ip)
        {
            self.by_mac.remove(&displaced.mac);
        }
        self.by_mac.insert(lease.mac, lease.ip);
        self.by_ip.insert(lease.ip, lease);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RequestState {
    Selecting,
    InitReboot,
    Renewing,
}

struct Context<'a> {
    request: &'a Message,
    mac: MacAddress,
    subnet: &'a SubnetConfig,
    server_ip: Ipv4Addr,
    now: u64,
}

fn select_subnet<'a>(
    subnets: &'a [SubnetConfig],
    request: &Message,
    ingress: Ingress,
) -> Option<&'a SubnetConfig> {
    let anchor = if request.giaddr.is_unspecified() {
        ingress.local_ip
    } else {
        request.giaddr
    };
    subnets.iter().find(|s| s.cidr.contains(anchor))
}

fn nth_address(ranges: &[IpRange], mut index: u64) -> Option<Ipv4Addr> {
    for range in ranges {
        if index < range.len() {
            let offset = u32::try_from(index).ok()?;
            return u32::from(range.start())
                .checked_add(offset)
                .map(Ipv4Addr::from);
        }
        index -= range.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const RELAY: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
    const DIRECT: Ingress = Ingress { local_ip: SERVER };

    fn mac(last: u8) -> MacAddress {
        MacAddress::new([0x52, 0x54, 0, 0, 0, last])
    }

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().expect("test address")
    }

    fn config() -> EngineConfig {
        EngineConfig {
            subnets: vec![
                SubnetConfig {
                    cidr: "10.0.0.0/24".parse().expect("cidr"),
                    router: Some(SERVER),
                    dns_servers: vec![SERVER, ip("10.0.0.2")],
                    domain_name: Some("maas".into()),
                    lease_time: 600,
                    mtu: Some(9000),
                    ranges: vec!["10.0.0.100-10.0.0.102".parse().expect("range")],
                    server_ip: None,
                },
                SubnetConfig {
                    cidr: "10.1.0.0/24".parse().expect("cidr"),
                    router: Some(RELAY),
                    dns_servers: vec![],
                    domain_name: None,
                    lease_time: 3600,
                    mtu: None,
                    ranges: vec!["10.1.0.50-10.1.0.60".parse().expect("range")],
                    server_ip: Some(SERVER),
                },
            ],
            reservations: vec![Reservation {
                mac: mac(0xaa),
                ip: ip("10.0.0.20"),
                hostname: Some("node-aa".into()),
            }],
            ..EngineConfig::default()
        }
    }

    fn request(kind: MessageType, client: MacAddress, options: Vec<DhcpOption>) -> Message {
        let mut message = Message::new(Op::BootRequest, 0xdead_beef);
        message.set_client_mac(client);
        message.options.push(DhcpOption::MessageType(kind));
        message.options.extend(options);
        message
    }

    struct PxeFiles;

    impl BootFileChooser for PxeFiles {
        fn boot_file(&self, client: &ClientBootInfo, server_ip: Ipv4Addr) -> Option<BootFile> {
            let filename = match (client.is_ipxe, client.arch) {
                (true, _) => format!("http://{server_ip}:5248/ipxe.cfg"),
                (false, Some(7)) => "bootx64.efi".into(),
                _ => "lpxelinux.0".into(),
            };
            Some(BootFile {
                next_server: server_ip,
                filename,
                vendor_class: None,
                path_prefix: None,
            })
        }
    }

    /// Expected shape of one reply.
    #[derive(Debug, PartialEq)]
    struct Seen {
        kind: Option<MessageType>,
        yiaddr: Ipv4Addr,
        to: ReplyTo,
        file: String,
    }

    fn seen(outcome: &Outcome) -> Option<Seen> {
        outcome.reply.as_ref().map(|reply| Seen {
            kind: reply.message.message_type(),
            yiaddr: reply.message.yiaddr,
            to: reply.to,
            file: String::from_utf8_lossy(&reply.message.file).into_owned(),
        })
    }

    fn offer(yiaddr: &str, to: ReplyTo, file: &str) -> Option<Seen> {
        Some(Seen {
            kind: Some(MessageType::Offer),
            yiaddr: ip(yiaddr),
            to,
            file: file.into(),
        })
    }

    fn ack(yiaddr: &str, to: ReplyTo) -> Option<Seen> {
        Some(Seen {
            kind: Some(MessageType::Ack),
            yiaddr: ip(yiaddr),
            to,
            file: "lpxelinux.0".into(),
        })
    }

    fn nak(to: ReplyTo) -> Option<Seen> {
        Some(Seen {
            kind: Some(MessageType::Nak),
            yiaddr: Ipv4Addr::UNSPECIFIED,
            to,
            file: String::new(),
        })
    }

    /// Runs `steps` in order against one engine; each step is (request, ingress, now, expected).
    fn check(steps: Vec<(Message, Ingress, u64, Option<Seen>)>) -> Engine {
        let mut engine = Engine::new(config());
        for (index, (message, ingress, now, expected)) in steps.into_iter().enumerate() {
            let outcome = engine.handle(&message, ingress, now, &PxeFiles);
            assert_eq!(seen(&outcome), expected, "step {index}: {outcome:?}");
        }
        engine
    }

    #[test]
    fn dora_and_lease_options() {
        let mut engine = Engine::new(config());
        let discover = request(MessageType::Discover, mac(1), vec![]);
        let outcome = engine.handle(&discover, DIRECT, 1000, &PxeFiles);
        assert_eq!(
            seen(&outcome),
            offer("10.0.0.100", ReplyTo::Broadcast, "lpxelinux.0")
        );
        assert!(outcome.events.is_empty(), "offers are not persisted");
        let options = &outcome.reply.expect("offer").message.options;
        let expected = vec![
            DhcpOption::MessageType(MessageType::Offer),
            DhcpOption::ServerIdentifier(SERVER),
            DhcpOption::LeaseTime(600),
            DhcpOption::RenewalTime(300),
            DhcpOption::RebindingTime(525),
            DhcpOption::SubnetMask(ip("255.255.255.0")),
            DhcpOption::BroadcastAddress(ip("10.0.0.255")),
            DhcpOption::Router(vec![SERVER]),
            DhcpOption::DomainNameServer(vec![SERVER, ip("10.0.0.2")]),
            DhcpOption::DomainName("maas".into()),
            DhcpOption::InterfaceMtu(9000),
        ];
        assert_eq!(options, &expected);

        let req = request(
            MessageType::Request,
            mac(1),
            vec![
                DhcpOption::ServerIdentifier(SERVER),
                DhcpOption::RequestedIpAddress(ip("10.0.0.100")),
                DhcpOption::Hostname("client1".into()),
            ],
        );
        let outcome = engine.handle(&req, DIRECT, 1001, &PxeFiles);
        assert_eq!(seen(&outcome), ack("10.0.0.100", ReplyTo::Broadcast));
        assert_eq!(
            outcome.events,
            vec![LeaseEvent::Commit {
                mac: mac(1),
                ip: ip("10.0.0.100"),
                hostname: Some("client1".into()),
                start: 1001,
                lease_time: 600
            }]
        );
        let lease = engine.lease_for(mac(1)).expect("bound");
        assert_eq!((lease.state, lease.expires), (LeaseState::Bound, 1601));
    }

    #[test]
    fn request_table() {
        let sid = DhcpOption::ServerIdentifier(SERVER);
        let want = |a: &str| DhcpOption::RequestedIpAddress(ip(a));
        let mut renew = request(MessageType::Request, mac(1), vec![]);
        renew.ciaddr = ip("10.0.0.100");
        let mut renew_other = request(MessageType::Request, mac(2), vec![]);
        renew_other.ciaddr = ip("10.0.0.100");
        check(vec![
            // SELECTING an address we never offered.
            (
                request(
                    MessageType::Request,
                    mac(1),
                    vec![sid.clone(), want("10.0.0.101")],
                ),
                DIRECT,
                10,
                ack("10.0.0.101", ReplyTo::Broadcast),
            ),
            // INIT-REBOOT outside the subnet.
            (
                request(MessageType::Request, mac(3), vec![want("192.168.1.5")]),
                DIRECT,
                11,
                nak(ReplyTo::Broadcast),
            ),
            // INIT-REBOOT for an address another client holds.
            (
                request(MessageType::Request, mac(2), vec![want("10.0.0.101")]),
                DIRECT,
                12,
                nak(ReplyTo::Broadcast),
            ),
            // INIT-REBOOT for a free address in the range (authoritative).
            (
                request(MessageType::Request, mac(2), vec![want("10.0.0.100")]),
                DIRECT,
                13,
                ack("10.0.0.100", ReplyTo::Broadcast),
            ),
            // SELECTING another server: silence.
            (
                request(
                    MessageType::Request,
                    mac(4),
                    vec![
                        DhcpOption::ServerIdentifier(ip("10.0.0.9")),
                        want("10.0.0.102"),
                    ],
                ),
                DIRECT,
                14,
                None,
            ),
            // RENEWING someone else's address.
            (renew, DIRECT, 15, nak(ReplyTo::Broadcast)),
            // RENEWING its own address: unicast.
            (
                renew_other,
                DIRECT,
                16,
                ack("10.0.0.100", ReplyTo::Unicast(ip("10.0.0.100"))),
            ),
            // The router and server addresses are never handed out.
            (
                request(MessageType::Request, mac(5), vec![want("10.0.0.1")]),
                DIRECT,
                17,
                nak(ReplyTo::Broadcast),
            ),
        ]);
    }

    #[test]
    fn reservations_table() {
        check(vec![
            // The reserved MAC gets its fixed address, outside the dynamic range.
            (
                request(MessageType::Discover, mac(0xaa), vec![]),
                DIRECT,
                10,
                offer("10.0.0.20", ReplyTo::Broadcast, "lpxelinux.0"),
            ),
            // It cannot take a dynamic address instead.
            (
                request(
                    MessageType::Request,
                    mac(0xaa),
                    vec![DhcpOption::RequestedIpAddress(ip("10.0.0.100"))],
                ),
                DIRECT,
                11,
                nak(ReplyTo::Broadcast),
            ),
            // Nobody else can take the reserved address.
            (
                request(
                    MessageType::Request,
                    mac(1),
                    vec![DhcpOption::RequestedIpAddress(ip("10.0.0.20"))],
                ),
                DIRECT,
                12,
                nak(ReplyTo::Broadcast),
            ),
            (
                request(
                    MessageType::Request,
                    mac(0xaa),
                    vec![DhcpOption::RequestedIpAddress(ip("10.0.0.20"))],
                ),
                DIRECT,
                13,
                ack("10.0.0.20", ReplyTo::Broadcast),
            ),
        ]);
    }

    #[test]
    fn reserved_hostname_is_sent() {
        let mut engine = Engine::new(config());
        let outcome = engine.handle(
            &request(MessageType::Discover, mac(0xaa), vec![]),
            DIRECT,
            1,
            &NoBootFile,
        );
        let message = outcome.reply.expect("offer").message;
        assert_eq!(message.hostname(), Some("node-aa"));
        assert!(message.file.is_empty());
    }

    #[test]
    fn relayed_requests_use_the_relay_subnet() {
        let mut relayed = request(
            MessageType::Discover,
            mac(1),
            vec![DhcpOption::RelayAgentInformation(vec![crate::SubOption {
                code: 1,
                data: b"port7".to_vec(),
            }])],
        );
        relayed.giaddr = RELAY;
        relayed.hops = 1;
        let mut unknown_relay = request(MessageType::Discover, mac(2), vec![]);
        unknown_relay.giaddr = ip("172.16.0.1");
        let engine = check(vec![
            (
                relayed.clone(),
                DIRECT,
                5,
                offer("10.1.0.50", ReplyTo::Relay(RELAY), "lpxelinux.0"),
            ),
            (unknown_relay, DIRECT, 5, None),
        ]);
        drop(engine);
        let mut engine = Engine::new(config());
        let reply = engine
            .handle(&relayed, DIRECT, 5, &PxeFiles)
            .reply
            .expect("offer");
        assert_eq!(reply.message.giaddr, RELAY);
        assert_eq!(reply.message.siaddr, SERVER);
        assert_eq!(reply.message.server_identifier(), Some(SERVER));
        assert!(
            reply
                .message
                .option(code::RELAY_AGENT_INFORMATION)
                .is_some()
        );
        assert_eq!(
            reply.message.option(code::LEASE_TIME),
            Some(&DhcpOption::LeaseTime(3600))
        );
    }

    #[test]
    fn requests_on_unserved_interfaces_are_ignored() {
        let mut engine = Engine::new(config());
        let elsewhere = Ingress {
            local_ip: ip("192.168.7.1"),
        };
        let outcome = engine.handle(
            &request(MessageType::Discover, mac(1), vec![]),
            elsewhere,
            1,
            &PxeFiles,
        );
        assert_eq!(outcome.ignored, Some(Ignored::NoSubnet));
        let mut empty = Engine::new(EngineConfig::default());
        let outcome = empty.handle(
            &request(MessageType::Discover, mac(1), vec![]),
            DIRECT,
            1,
            &PxeFiles,
        );
        assert_eq!(outcome.ignored, Some(Ignored::NoSubnet));
    }

    #[test]
    fn pool_exhaustion_and_reuse_after_expiry() {
        let mut engine = Engine::new(config());
        for (last, now) in [(1u8, 10u64), (2, 11), (3, 12)] {
            let outcome = engine.handle(
                &request(
                    MessageType::Request,
                    mac(last),
                    vec![DhcpOption::RequestedIpAddress(ip(&format!(
                        "10.0.0.{}",
                        99 + last
                    )))],
                ),
                DIRECT,
                now,
                &PxeFiles,
            );
            assert!(
                outcome
                    .reply
                    .is_some_and(|r| r.message.message_type() == Some(MessageType::Ack))
            );
        }
        let outcome = engine.handle(
            &request(MessageType::Discover, mac(9), vec![]),
            DIRECT,
            20,
            &PxeFiles,
        );
        assert_eq!(outcome.ignored, Some(Ignored::PoolExhausted));
        // After 600 s the first lease has expired and its address can be reused.
        let expired = engine.expire(610);
        assert_eq!(
            expired,
            vec![LeaseEvent::Expire {
                mac: mac(1),
                ip: ip("10.0.0.100"),
                at: 610
            }]
        );
        let outcome = engine.handle(
            &request(MessageType::Discover, mac(9), vec![]),
            DIRECT,
            610,
            &PxeFiles,
        );
        assert_eq!(
            seen(&outcome),
            offer("10.0.0.100", ReplyTo::Broadcast, "lpxelinux.0")
        );
    }

    #[test]
    fn offers_hold_addresses_briefly() {
        let engine = check(vec![
            (
                request(MessageType::Discover, mac(1), vec![]),
                DIRECT,
                100,
                offer("10.0.0.100", ReplyTo::Broadcast, "lpxelinux.0"),
            ),
            (
                request(MessageType::Discover, mac(2), vec![]),
                DIRECT,
                101,
                offer("10.0.0.101", ReplyTo::Broadcast, "lpxelinux.0"),
            ),
            // The same client asking again gets the same offer.
            (
                request(MessageType::Discover, mac(1), vec![]),
                DIRECT,
                102,
                offer("10.0.0.100", ReplyTo::Broadcast, "lpxelinux.0"),
            ),
        ]);
        assert_eq!(
            engine.lease_for(mac(2)).map(|l| l.state),
            Some(LeaseState::Offered)
        );
    }

    #[test]
    fn release_decline_and_inform() {
        let mut engine = Engine::new(config());
        let want = DhcpOption::RequestedIpAddress(ip("10.0.0.100"));
        engine.handle(
            &request(MessageType::Request, mac(1), vec![want.clone()]),
            DIRECT,
            10,
            &PxeFiles,
        );

        let mut release = request(MessageType::Release, mac(1), vec![]);
        release.ciaddr = ip("10.0.0.100");
        let outcome = engine.handle(&release, DIRECT, 20, &PxeFiles);
        assert_eq!(
            outcome.events,
            vec![LeaseEvent::Release {
                mac: mac(1),
                ip: ip("10.0.0.100"),
                at: 20
            }]
        );
        assert!(outcome.reply.is_none());
        assert_eq!(
            engine.lease_for(mac(1)).map(|l| l.state),
            Some(LeaseState::Released)
        );
        // A release for an address it does not hold changes nothing.
        let outcome = engine.handle(&release, DIRECT, 21, &PxeFiles);
        assert_eq!(outcome.ignored, Some(Ignored::NoSuchLease));

        engine.handle(
            &request(MessageType::Request, mac(1), vec![want.clone()]),
            DIRECT,
            30,
            &PxeFiles,
        );
        let outcome = engine.handle(
            &request(MessageType::Decline, mac(1), vec![want.clone()]),
            DIRECT,
            31,
            &PxeFiles,
        );
        assert_eq!(
            outcome.events,
            vec![LeaseEvent::Decline {
                mac: mac(1),
                ip: ip("10.0.0.100"),
                at: 31,
                until: 631
            }]
        );
        // The declined address is skipped for the next client, even the one that declined it.
        let outcome = engine.handle(
            &request(MessageType::Discover, mac(1), vec![]),
            DIRECT,
            32,
            &PxeFiles,
        );
        assert_eq!(
            seen(&outcome),
            offer("10.0.0.101", ReplyTo::Broadcast, "lpxelinux.0")
        );

        let mut inform = request(MessageType::Inform, mac(7), vec![]);
        inform.ciaddr = ip("10.0.0.77");
        let outcome = engine.handle(&inform, DIRECT, 40, &PxeFiles);
        let reply = outcome.reply.expect("ack");
        assert_eq!(reply.to, ReplyTo::Unicast(ip("10.0.0.77")));
        assert_eq!(reply.message.yiaddr, Ipv4Addr::UNSPECIFIED);
        assert_eq!(reply.message.option(code::LEASE_TIME), None);
        assert!(outcome.events.is_empty());
    }

    #[test]
    fn pxe_firmware_gets_short_leases_and_boot_files() {
        let mut engine = Engine::new(config());
        let uefi = request(
            MessageType::Discover,
            mac(1),
            vec![
                DhcpOption::VendorClassIdentifier(b"PXEClient:Arch:00007:UNDI:003016".to_vec()),
                DhcpOption::ClientSystemArchitecture(vec![7]),
            ],
        );
        let reply = engine
            .handle(&uefi, DIRECT, 1, &PxeFiles)
            .reply
            .expect("offer");
        assert_eq!(
            reply.message.option(code::LEASE_TIME),
            Some(&DhcpOption::LeaseTime(30))
        );
        assert_eq!(reply.message.file, b"bootx64.efi");
        assert_eq!(reply.message.siaddr, SERVER);
        let ipxe = request(
            MessageType::Discover,
            mac(2),
            vec![DhcpOption::UserClass(b"iPXE".to_vec())],
        );
        let reply = engine
            .handle(&ipxe, DIRECT, 1, &PxeFiles)
            .reply
            .expect("offer");
        assert_eq!(reply.message.file, b"http://10.0.0.1:5248/ipxe.cfg");
    }

    #[test]
    fn replay_rebuilds_the_table() {
        let mut engine = Engine::new(config());
        let mut log = Vec::new();
        for last in 1..=2u8 {
            let want = DhcpOption::RequestedIpAddress(ip(&format!("10.0.0.{}", 99 + last)));
            log.extend(
                engine
                    .handle(
                        &request(MessageType::Request, mac(last), vec![want]),
                        DIRECT,
                        50,
                        &PxeFiles,
                    )
                    .events,
            );
        }
        let mut restarted = Engine::new(config());
        for event in &log {
            restarted.apply(event);
        }
        assert_eq!(
            restarted.lease_for(mac(2)).map(|l| l.ip),
            Some(ip("10.0.0.101"))
        );
        // A new client after the restart is not handed a leased address.
        let outcome = restarted.handle(
            &request(MessageType::Discover, mac(3), vec![]),
            DIRECT,
            60,
            &PxeFiles,
        );
        assert_eq!(
            seen(&outcome),
            offer("10.0.0.102", ReplyTo::Broadcast, "lpxelinux.0")
        );
        // The snapshot rebuilds the same bound leases.
        let mut compacted = Engine::new(config());
        for event in restarted.snapshot(60) {
            compacted.apply(&event);
        }
        let bound = |e: &Engine| -> Vec<(MacAddress, Ipv4Addr, u64)> {
            e.leases()
                .filter(|l| l.state == LeaseState::Bound)
                .map(|l| (l.mac, l.ip, l.expires))
                .collect()
        };
        assert_eq!(bound(&compacted), bound(&restarted));
    }
}
