//! IP networks in CIDR form.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::values::ValueError;

/// A network: its address with host bits cleared, and its prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

fn to_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn width(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn mask(width: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let all: u128 = if width == 32 {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    };
    all & !((1u128 << (width - prefix)) - 1).min(all)
}

fn from_bits(bits: u128, v4: bool) -> IpAddr {
    if v4 {
        // The value came from a 32-bit address masked within 32 bits.
        IpAddr::V4(std::net::Ipv4Addr::from(
            (bits & u128::from(u32::MAX)) as u32,
        ))
    } else {
        IpAddr::V6(std::net::Ipv6Addr::from(bits))
    }
}

impl Cidr {
    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn is_ipv4(&self) -> bool {
        self.network.is_ipv4()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        if ip.is_ipv4() != self.network.is_ipv4() {
            return false;
        }
        let m = mask(width(ip), self.prefix);
        to_bits(ip) & m == to_bits(self.network) & m
    }

    /// The last address of the network (the broadcast address for IPv4).
    pub fn last(&self) -> IpAddr {
        let w = width(self.network);
        let m = mask(w, self.prefix);
        let all: u128 = if w == 32 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        from_bits((to_bits(self.network) & m) | (!m & all), self.is_ipv4())
    }
}

impl FromStr for Cidr {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Cidr, ValueError> {
        let bad = || ValueError::Cidr(text.to_owned());
        let (addr, prefix) = text.trim().split_once('/').ok_or_else(bad)?;
        let ip: IpAddr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > width(ip) {
            return Err(bad());
        }
        let network = from_bits(to_bits(ip) & mask(width(ip), prefix), ip.is_ipv4());
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Orders addresses of one family numerically.
pub fn ip_bits(ip: IpAddr) -> u128 {
    to_bits(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_contain() {
        let net: Cidr = "10.0.0.5/24".parse().unwrap();
        assert_eq!(net.to_string(), "10.0.0.0/24");
        assert!(net.contains("10.0.0.200".parse().unwrap()));
        assert!(!net.contains("10.0.1.1".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
        assert_eq!(net.last().to_string(), "10.0.0.255");
        let v6: Cidr = "2001:db8::1/64".parse().unwrap();
        assert_eq!(v6.to_string(), "2001:db8::/64");
        assert!(v6.contains("2001:db8::ffff".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert_eq!(all.last().to_string(), "255.255.255.255");
        let host: Cidr = "10.1.2.3/32".parse().unwrap();
        assert_eq!(host.last().to_string(), "10.1.2.3");
        for bad in ["10.0.0.0", "10.0.0.0/33", "x/8", "10.0.0.0/-1", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
