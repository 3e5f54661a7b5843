//! Who the end user is, network-wise: the connection's peer, or — only when
//! the peer is a trusted proxy — the first untrusted `x-forwarded-for`
//! address walking from the right. Anyone can write `x-forwarded-for`, so it
//! is believed only as far as the chain of trusted proxies reaches.

use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

/// An IP network in CIDR notation (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// A CIDR string that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("not an IP network in CIDR notation (e.g. 10.0.0.0/8)")]
pub struct CidrError;

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, CidrError> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix.parse::<u8>().map_err(|_| CidrError)?)),
            None => (s.trim(), None),
        };
        let network = canonical(addr.parse::<IpAddr>().map_err(|_| CidrError)?);
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(CidrError);
        }
        Ok(Self {
            network: mask(network, prefix),
            prefix,
        })
    }
}

impl Cidr {
    /// Whether `addr` is inside this network.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        addr.is_ipv4() == self.network.is_ipv4() && mask(addr, self.prefix) == self.network
    }
}

/// IPv4-mapped IPv6 addresses count as IPv4.
pub fn canonical(addr: IpAddr) -> IpAddr {
    addr.to_canonical()
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & keep).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & keep))
        }
    }
}

/// The rate-limit key of an address: IPv4 as is, IPv6 by its /64 (one
/// subscriber usually holds a whole /64).
pub fn rate_key(addr: IpAddr) -> IpAddr {
    let addr = canonical(addr);
    if addr.is_ipv6() { mask(addr, 64) } else { addr }
}

/// The end user's address, set on each request by the guard layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// Picks the end user's address from the peer and the `x-forwarded-for`
/// values (in header order).
pub fn end_user<'a>(
    peer: IpAddr,
    forwarded: impl IntoIterator<Item = &'a str>,
    trusted: &[Cidr],
) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |a: IpAddr| trusted.iter().any(|c| c.contains(a));
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut leftmost = None;
    for hop in hops.iter().rev() {
        let Ok(addr) = hop.parse::<IpAddr>().map(canonical) else {
            // A hop that is not an address cannot be keyed on; the peer is
            // the safest key left (every such call shares it).
            return peer;
        };
        if !is_trusted(addr) {
            return addr;
        }
        leftmost = Some(addr);
    }
    leftmost.unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(0.into()))
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().filter_map(|s| s.parse().ok()).collect()
    }

    #[test]
    fn untrusted_peers_are_believed_and_headers_ignored() {
        assert_eq!(
            end_user(ip("203.0.113.9"), ["1.2.3.4"], &cidrs(&["10.0.0.0/8"])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn walks_right_to_left_past_trusted_hops() {
        let trusted = cidrs(&["10.0.0.0/8", "192.168.1.1"]);
        let got = end_user(
            ip("10.1.1.1"),
            ["6.6.6.6, 203.0.113.7", "192.168.1.1"],
            &trusted,
        );
        assert_eq!(got, ip("203.0.113.7"));
    }

    #[test]
    fn all_trusted_means_the_leftmost_and_no_header_means_the_peer() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        assert_eq!(
            end_user(ip("10.0.0.1"), ["10.0.0.5, 10.0.0.6"], &trusted),
            ip("10.0.0.5")
        );
        assert_eq!(end_user(ip("10.0.0.1"), [], &trusted), ip("10.0.0.1"));
    }

    #[test]
    fn ipv6_is_keyed_by_its_slash_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(
            rate_key(ip("2001:db8:1:2:aaaa::1")),
            rate_key(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            rate_key(ip("2001:db8:1:2::1")),
            rate_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(rate_key(ip("::ffff:198.51.100.4")), ip("198.51.100.4"));
        assert!(cidrs(&["198.51.100.0/24"])[0].contains(ip("::ffff:198.51.100.4")));
    }

    #[test]
    fn parses_cidrs_strictly() {
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("fd00::/8".parse::<Cidr>().is_ok());
        assert!("nonsense".parse::<Cidr>().is_err());
    }
}
