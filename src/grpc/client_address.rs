//! Who the end user is, network-wise: the connection's peer, or — only when
//! the peer is a trusted proxy — the first untrusted `x-forwarded-for`
//! address walking from the right. Anyone can write `x-forwarded-for`, so it
//! is believed only as far as the chain of trusted proxies reaches.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use sha2::{Digest as _, Sha256};

use crate::net::{Cidr, canonical, mask};

/// The rate-limit key of an address: IPv4 as is, IPv6 by its /64 (one
/// subscriber usually holds a whole /64).
pub fn rate_key(addr: IpAddr) -> IpAddr {
    let addr = canonical(addr);
    if addr.is_ipv6() { mask(addr, 64) } else { addr }
}

/// The end user's address, set on each request by the trace layer when it
/// is known (session rows and audit record it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// Who the end user is, as far as the connection and trusted proxies say;
/// set on each request by the trace layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndUser {
    /// A known address.
    Address(IpAddr),
    /// The first untrusted forwarded hop was not an address (a format no
    /// parser here knows, or junk). It is still a distinct caller: keyed by
    /// a digest of its text, never by the proxy (which would put every such
    /// caller, and the proxy's own traffic, into one bucket).
    Opaque([u8; 16]),
}

/// The key a caller's rate-limit buckets are kept under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// IPv4 as is, IPv6 by its /64.
    Address(IpAddr),
    /// A digest of an unparsable forwarded hop.
    Opaque([u8; 16]),
}

impl EndUser {
    /// The address, when known.
    pub fn address(self) -> Option<IpAddr> {
        match self {
            Self::Address(addr) => Some(addr),
            Self::Opaque(_) => None,
        }
    }

    /// The rate-limit key.
    pub fn rate_key(self) -> RateKey {
        match self {
            Self::Address(addr) => RateKey::Address(rate_key(addr)),
            Self::Opaque(digest) => RateKey::Opaque(digest),
        }
    }

    fn opaque(hop: &str) -> Self {
        let digest = Sha256::digest(hop.as_bytes());
        let mut key = [0u8; 16];
        for (k, d) in key.iter_mut().zip(digest.iter()) {
            *k = *d;
        }
        Self::Opaque(key)
    }
}

/// One `x-forwarded-for` entry as an address: bare (`198.51.100.7`,
/// `2001:db8::1`), with a port (`198.51.100.7:4711`, `[2001:db8::1]:443`),
/// or bracketed without one (`[2001:db8::1]`). The port is dropped: the
/// host is the caller.
pub fn parse_hop(hop: &str) -> Option<IpAddr> {
    let addr = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            hop.strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<Ipv6Addr>()
                .ok()
                .map(IpAddr::V6)
        })?;
    Some(canonical(addr))
}

/// Picks the end user from the peer and the `x-forwarded-for` values (in
/// header order).
pub fn end_user<'a>(
    peer: IpAddr,
    forwarded: impl IntoIterator<Item = &'a str>,
    trusted: &[Cidr],
) -> EndUser {
    let peer = canonical(peer);
    let is_trusted = |a: IpAddr| trusted.iter().any(|c| c.contains(a));
    if !is_trusted(peer) {
        return EndUser::Address(peer);
    }
    let hops: Vec<&str> = forwarded
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|hop| !hop.is_empty())
        .collect();
    let mut leftmost = None;
    for hop in hops.iter().rev() {
        let Some(addr) = parse_hop(hop) else {
            // Not an address, so not a trusted proxy either: the walk ends
            // here, at a caller we can only name by its text.
            return EndUser::opaque(hop);
        };
        if !is_trusted(addr) {
            return EndUser::Address(addr);
        }
        leftmost = Some(addr);
    }
    EndUser::Address(leftmost.unwrap_or(peer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::AddrParseError;

    type Result = std::result::Result<(), AddrParseError>;

    fn ip(s: &str) -> std::result::Result<IpAddr, AddrParseError> {
        s.parse()
    }

    fn user(s: &str) -> std::result::Result<EndUser, AddrParseError> {
        ip(s).map(EndUser::Address)
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().filter_map(|s| s.parse().ok()).collect()
    }

    #[test]
    fn untrusted_peers_are_believed_and_headers_ignored() -> Result {
        assert_eq!(
            end_user(ip("203.0.113.9")?, ["1.2.3.4"], &cidrs(&["10.0.0.0/8"])),
            user("203.0.113.9")?
        );
        Ok(())
    }

    #[test]
    fn walks_right_to_left_past_trusted_hops() -> Result {
        let trusted = cidrs(&["10.0.0.0/8", "192.168.1.1"]);
        let got = end_user(
            ip("10.1.1.1")?,
            ["6.6.6.6, 203.0.113.7", "192.168.1.1"],
            &trusted,
        );
        assert_eq!(got, user("203.0.113.7")?);
        Ok(())
    }

    #[test]
    fn all_trusted_means_the_leftmost_and_no_header_means_the_peer() -> Result {
        let trusted = cidrs(&["10.0.0.0/8"]);
        assert_eq!(
            end_user(ip("10.0.0.1")?, ["10.0.0.5, 10.0.0.6"], &trusted),
            user("10.0.0.5")?
        );
        assert_eq!(end_user(ip("10.0.0.1")?, [], &trusted), user("10.0.0.1")?);
        Ok(())
    }

    #[test]
    fn hops_with_ports_are_keyed_by_their_host() -> Result {
        let trusted = cidrs(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1")?;

        assert_eq!(parse_hop("198.51.100.7:4711"), Some(ip("198.51.100.7")?));
        assert_eq!(parse_hop("[2001:db8::1]:443"), Some(ip("2001:db8::1")?));
        assert_eq!(parse_hop("[2001:db8::1]"), Some(ip("2001:db8::1")?));
        assert_eq!(parse_hop("[::ffff:192.0.2.1]:80"), Some(ip("192.0.2.1")?));
        assert_eq!(
            end_user(peer, ["198.51.100.7:4711, 10.0.0.9:80"], &trusted),
            user("198.51.100.7")?
        );
        assert_eq!(
            end_user(peer, ["[2001:db8::1]:443"], &trusted).rate_key(),
            end_user(peer, ["2001:db8::2"], &trusted).rate_key()
        );
        Ok(())
    }

    #[test]
    fn hops_that_do_not_parse_are_opaque_keys_of_their_own() -> Result {
        let trusted = cidrs(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1")?;

        let junk = end_user(peer, ["198.51.100.1, unknown"], &trusted);
        let other = end_user(peer, ["_hidden"], &trusted);
        let again = end_user(peer, ["unknown"], &trusted);

        assert!(matches!(junk, EndUser::Opaque(_)));
        assert_eq!(junk.address(), None);
        assert_eq!(junk.rate_key(), again.rate_key());
        assert_ne!(junk.rate_key(), other.rate_key());
        assert_ne!(junk.rate_key(), EndUser::Address(peer).rate_key());
        for hop in [
            "300.1.1.1",
            "1.2.3.4:99999",
            "[2001:db8::1]:",
            "2001:db8::1:443x",
        ] {
            assert_eq!(parse_hop(hop), None, "{hop}");
        }
        Ok(())
    }

    #[test]
    fn ipv6_is_keyed_by_its_slash_64_and_mapped_ipv4_is_ipv4() -> Result {
        assert_eq!(
            rate_key(ip("2001:db8:1:2:aaaa::1")?),
            rate_key(ip("2001:db8:1:2:bbbb::2")?)
        );
        assert_ne!(
            rate_key(ip("2001:db8:1:2::1")?),
            rate_key(ip("2001:db8:1:3::1")?)
        );
        assert_eq!(rate_key(ip("::ffff:198.51.100.4")?), ip("198.51.100.4")?);
        assert!(cidrs(&["198.51.100.0/24"])[0].contains(ip("::ffff:198.51.100.4")?));
        Ok(())
    }
}
