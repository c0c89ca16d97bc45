//! IPv4 networks and address ranges, checked when built.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NetError {
    #[error("{text:?} is not an IPv4 CIDR like 10.0.0.0/24")]
    BadCidr { text: String },
    #[error("prefix length {prefix} is over 32")]
    BadPrefix { prefix: u8 },
    #[error("range start {start} is after its end {end}")]
    RangeReversed { start: Ipv4Addr, end: Ipv4Addr },
    #[error("{text:?} is not an IPv4 range like 10.0.0.100-10.0.0.200")]
    BadRange { text: String },
}

/// An IPv4 network: the address is stored with the host bits cleared.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Ipv4Net {
    network: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Ipv4Net, NetError> {
        if prefix > 32 {
            return Err(NetError::BadPrefix { prefix });
        }
        let mask = mask_bits(prefix);
        Ok(Ipv4Net {
            network: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }

    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask_bits(self.prefix))
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask_bits(self.prefix))
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask_bits(self.prefix) == u32::from(self.network)
    }
}

fn mask_bits(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

impl FromStr for Ipv4Net {
    type Err = NetError;

    fn from_str(text: &str) -> Result<Ipv4Net, NetError> {
        let bad = || NetError::BadCidr {
            text: text.to_owned(),
        };
        let (addr, prefix) = text.trim().split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        Ipv4Net::new(addr, prefix)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// An inclusive range of IPv4 addresses, `start <= end`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct IpRange {
    start: Ipv4Addr,
    end: Ipv4Addr,
}

impl IpRange {
    pub fn new(start: Ipv4Addr, end: Ipv4Addr) -> Result<IpRange, NetError> {
        if u32::from(start) > u32::from(end) {
            return Err(NetError::RangeReversed { start, end });
        }
        Ok(IpRange { start, end })
    }

    pub fn start(&self) -> Ipv4Addr {
        self.start
    }

    pub fn end(&self) -> Ipv4Addr {
        self.end
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        (u32::from(self.start)..=u32::from(self.end)).contains(&u32::from(addr))
    }

    /// Number of addresses in the range (at least 1).
    pub fn len(&self) -> u64 {
        u64::from(u32::from(self.end) - u32::from(self.start)) + 1
    }

    /// Never true: a range holds at least its start address.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl FromStr for IpRange {
    type Err = NetError;

    /// `10.0.0.100-10.0.0.200`.
    fn from_str(text: &str) -> Result<IpRange, NetError> {
        let bad = || NetError::BadRange {
            text: text.to_owned(),
        };
        let (start, end) = text.trim().split_once('-').ok_or_else(bad)?;
        let start: Ipv4Addr = start.trim().parse().map_err(|_| bad())?;
        let end: Ipv4Addr = end.trim().parse().map_err(|_| bad())?;
        IpRange::new(start, end)
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_table() {
        let cases = [
            (
                "10.0.0.7/24",
                Ok(("10.0.0.0", "255.255.255.0", "10.0.0.255")),
            ),
            (
                "10.88.3.4/16",
                Ok(("10.88.0.0", "255.255.0.0", "10.88.255.255")),
            ),
            ("0.0.0.0/0", Ok(("0.0.0.0", "0.0.0.0", "255.255.255.255"))),
            (
                "10.0.0.1/32",
                Ok(("10.0.0.1", "255.255.255.255", "10.0.0.1")),
            ),
            ("10.0.0.0/33", Err(NetError::BadPrefix { prefix: 33 })),
            (
                "10.0.0.0",
                Err(NetError::BadCidr {
                    text: "10.0.0.0".into(),
                }),
            ),
        ];
        for (text, expected) in cases {
            let parsed = text.parse::<Ipv4Net>().map(|net| {
                (
                    net.network().to_string(),
                    net.netmask().to_string(),
                    net.broadcast().to_string(),
                )
            });
            let expected = expected.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
            assert_eq!(parsed, expected, "{text}");
        }
        let net: Ipv4Net = "10.0.0.0/24".parse().expect("valid");
        assert!(net.contains(Ipv4Addr::new(10, 0, 0, 200)));
        assert!(!net.contains(Ipv4Addr::new(10, 0, 1, 1)));
    }

    #[test]
    fn range_table() {
        let range: IpRange = "10.0.0.100-10.0.0.199".parse().expect("valid");
        assert_eq!(range.len(), 100);
        assert!(range.contains(Ipv4Addr::new(10, 0, 0, 150)));
        assert!(!range.contains(Ipv4Addr::new(10, 0, 0, 200)));
        assert_eq!(
            "10.0.0.9-10.0.0.1".parse::<IpRange>(),
            Err(NetError::RangeReversed {
                start: Ipv4Addr::new(10, 0, 0, 9),
                end: Ipv4Addr::new(10, 0, 0, 1)
            })
        );
    }
}
