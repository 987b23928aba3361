//! Who the client is, for the limits that count per client (the rate limits, the feed's
//! connections per client): the TCP peer, or, behind a proxy the gateway is told to trust
//! (`TRUSTED_PROXIES`), the last address of `X-Forwarded-For` that no trusted proxy added. An
//! IPv6 client counts as its /64, which a single host can fill with addresses to escape a
//! per-address limit.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap};
use settings::{Lookup, SettingsError};

/// A network: an address and how many of its leading bits count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `fd00::/8`, or a bare address (the one host).
    pub fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().ok()?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        (prefix <= bits).then(|| Self {
            network: mask(network, prefix),
            prefix,
        })
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        address.is_ipv4() == self.network.is_ipv4() && mask(address, self.prefix) == self.network
    }
}

/// `address` with all but its first `prefix` bits cleared.
fn mask(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4)
                .checked_shr(32 - u32::from(prefix))
                .map_or(0, |kept| kept << (32 - u32::from(prefix)));
            IpAddr::from(bits.to_be_bytes())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6)
                .checked_shr(128 - u32::from(prefix))
                .map_or(0, |kept| kept << (128 - u32::from(prefix)));
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

/// An IPv4 client seen through an IPv6 socket is the IPv4 client.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// The proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`, comma-separated CIDRs);
/// none by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn from_lookup(lookup: &impl Lookup) -> Result<Self, SettingsError> {
        let Some(listed) = lookup.text("TRUSTED_PROXIES")? else {
            return Ok(Self::default());
        };
        listed
            .split(',')
            .map(str::trim)
            .filter(|cidr| !cidr.is_empty())
            .map(|cidr| {
                Cidr::parse(cidr).ok_or_else(|| {
                    SettingsError::new(
                        "TRUSTED_PROXIES",
                        listed.clone(),
                        format!("{cidr:?} is not an address or a CIDR (10.0.0.0/8, fd00::/8)"),
                    )
                })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|proxy| proxy.contains(address))
    }

    /// The client of a request from `peer`: `peer` itself, unless it is a trusted proxy; then
    /// the last `X-Forwarded-For` address that is not one (the first, if all are).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|address| address.trim().parse::<IpAddr>().ok())
            .map(canonical)
            .collect();
        forwarded
            .iter()
            .rev()
            .find(|address| !self.trusts(**address))
            .or(forwarded.first())
            .copied()
            .unwrap_or(peer)
    }
}

/// The key a client is counted under: its address, or its /64 for IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey(pub IpAddr);

impl ClientKey {
    pub fn of(client: IpAddr) -> Self {
        match canonical(client) {
            v6 @ IpAddr::V6(_) => Self(mask(v6, 64)),
            v4 => Self(v4),
        }
    }
}

/// The request's client, as the trusted proxies tell it; for handlers, as an extractor (the
/// state must give the proxies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client(pub ClientKey);

impl<S> FromRequestParts<S> for Client
where
    S: Send + Sync,
    TrustedProxies: axum::extract::FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let proxies = <TrustedProxies as axum::extract::FromRef<S>>::from_ref(state);
        Ok(Self(proxies.key(&parts.extensions, &parts.headers)))
    }
}

impl TrustedProxies {
    /// The key of the client of a request with these extensions and headers.
    pub fn key(&self, extensions: &Extensions, headers: &HeaderMap) -> ClientKey {
        let peer = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(peer)| peer.ip());
        ClientKey::of(self.client(peer, headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_contain_their_addresses_only() {
        let private = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(private.contains(ip("10.1.2.3")));
        assert!(!private.contains(ip("11.0.0.1")));
        assert!(private.contains(ip("::ffff:10.0.0.1")), "IPv4 through IPv6");
        let host = Cidr::parse("192.168.1.7").unwrap();
        assert!(host.contains(ip("192.168.1.7")) && !host.contains(ip("192.168.1.8")));
        assert!(Cidr::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0/8", "::/129", ""] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_last_untrusted_forwarded_address() {
        let lookup = |name: &str| (name == "TRUSTED_PROXIES").then(|| "10.0.0.0/8".to_owned());
        let proxies = TrustedProxies::from_lookup(&lookup).unwrap();
        // A client's own X-Forwarded-For is ignored when it connects directly.
        assert_eq!(
            proxies.client(ip("203.0.113.9"), &forwarded("1.2.3.4")),
            ip("203.0.113.9")
        );
        // Through the ingress: what the client claimed comes first, and is not believed.
        assert_eq!(
            proxies.client(ip("10.0.0.5"), &forwarded("1.2.3.4, 203.0.113.9")),
            ip("203.0.113.9")
        );
        assert_eq!(
            proxies.client(ip("10.0.0.5"), &forwarded("203.0.113.9, 10.0.0.6")),
            ip("203.0.113.9")
        );
        assert_eq!(
            proxies.client(ip("10.0.0.5"), &HeaderMap::new()),
            ip("10.0.0.5")
        );
        assert!(
            TrustedProxies::from_lookup(&|_: &str| Some("10.0.0.0/8, bogus".to_owned())).is_err()
        );
    }

    #[test]
    fn an_ipv6_client_counts_as_its_slash_64() {
        assert_eq!(
            ClientKey::of(ip("2001:db8:1:2:aaaa::1")),
            ClientKey::of(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:3::1"))
        );
        assert_ne!(
            ClientKey::of(ip("192.0.2.1")),
            ClientKey::of(ip("192.0.2.2"))
        );
    }
}
