//! Which addresses the server connects to on an admin's behalf (webhook URLs).
//!
//! An admin token that leaks must not become a way into the networks the server can
//! reach: destinations on loopback, private, link-local, CGNAT, multicast, broadcast,
//! unspecified or reserved addresses (and their IPv4-mapped IPv6 forms) are refused,
//! unless `webhook_allow_private_networks` is on. A URL is checked when it is registered
//! and again at every connection, since what a name resolves to can change:
//! [`PublicOnlyResolver`] drops forbidden addresses from every lookup, and
//! [`check_literal`] covers IP-literal hosts, which are never looked up.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// The setting that lifts the restriction.
pub const ALLOW_SETTING: &str = "webhook_allow_private_networks";

/// Longest wait for a name to resolve when a URL is registered.
const REGISTRATION_LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// A destination that is off limits.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{destination}, a {range} address; webhooks may only reach public addresses unless {ALLOW_SETTING} = true")]
pub struct Refused {
    /// `the host is 10.0.0.1` or `intranet.example resolves to 10.0.0.1`.
    destination: String,
    range: &'static str,
}

impl Refused {
    fn new(host: &str, address: IpAddr, range: &'static str) -> Self {
        let destination = if host == address.to_string() {
            format!("the host is {address}")
        } else {
            format!("{host} resolves to {address}")
        };
        Self { destination, range }
    }
}

/// The kind of non-public range `ip` is in, or `None` for a public address.
pub fn forbidden_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (CGNAT)")
    } else if ip.is_broadcast() {
        Some("broadcast")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if a == 0 {
        // 0.0.0.0 connects to this host on Linux; the rest of 0/8 is not routable.
        Some("unspecified")
    } else if a >= 240 {
        Some("reserved")
    } else {
        None
    }
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_unique_local() {
        Some("private (unique local)")
    } else if ip.is_unicast_link_local() || first & 0xffc0 == 0xfec0 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.segments()[..6] == [0; 6] {
        // IPv4-compatible (::a.b.c.d, deprecated): routed as the IPv4 address.
        forbidden_v4(Ipv4Addr::from_bits(ip.to_bits() as u32))
    } else {
        None
    }
}

/// Refuses a URL whose host is a forbidden IP literal. Names are left to the resolver.
pub fn check_literal(url: &url::Url) -> Result<(), Refused> {
    let address = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        _ => return Ok(()),
    };
    match forbidden_range(address) {
        Some(range) => Err(Refused::new(&address.to_string(), address, range)),
        None => Ok(()),
    }
}

/// Refuses a URL that is, or now resolves to, a forbidden address (any of them). A name
/// that does not resolve yet is accepted: every delivery checks again.
pub async fn check_url(url: &url::Url) -> Result<(), Refused> {
    check_literal(url)?;
    let Some(url::Host::Domain(host)) = url.host() else {
        return Ok(());
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let lookup = tokio::time::timeout(REGISTRATION_LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port))).await;
    let Ok(Ok(addresses)) = lookup else {
        return Ok(());
    };
    for address in addresses {
        if let Some(range) = forbidden_range(address.ip()) {
            return Err(Refused::new(host, address.ip(), range));
        }
    }
    Ok(())
}

/// The system resolver, keeping only public addresses: a name that resolves only to
/// forbidden ones fails to connect, with the reason.
#[derive(Debug, Default)]
pub struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(resolve_public(name.as_str().to_owned()))
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn resolve_public(host: String) -> Result<reqwest::dns::Addrs, BoxError> {
    // The port is replaced by the connector.
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
    let (public, refused): (Vec<SocketAddr>, Vec<SocketAddr>) =
        resolved.into_iter().partition(|address| forbidden_range(address.ip()).is_none());
    match (public.is_empty(), refused.first()) {
        (true, Some(first)) => {
            let range = forbidden_range(first.ip()).unwrap_or("non-public");
            Err(Box::new(Refused::new(&host, first.ip(), range)))
        }
        _ => Ok(Box::new(public.into_iter())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(ip: &str) -> Option<&'static str> {
        forbidden_range(ip.parse().unwrap())
    }

    #[test]
    fn non_public_ranges_are_named_and_public_addresses_pass() {
        for (ip, expected) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.254", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "shared (CGNAT)"),
            ("100.127.255.255", "shared (CGNAT)"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("0.0.0.0", "unspecified"),
            ("240.0.0.1", "reserved"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fc00::1", "private (unique local)"),
            ("fd12:3456::1", "private (unique local)"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::127.0.0.1", "loopback"),
        ] {
            assert_eq!(range(ip), Some(expected), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "100.63.255.255", "100.128.0.1", "172.32.0.1", "2606:4700::1111"] {
            assert_eq!(range(ip), None, "{ip}");
        }
    }

    #[test]
    fn ip_literal_hosts_in_any_spelling_are_checked() {
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://[::1]/hook",
            "http://[::ffff:7f00:1]/hook",
            "http://2130706433/hook",
            "http://0x7f.1/hook",
            "http://10.0.0.5/hook",
            "https://[fe80::1]/",
        ] {
            let error = check_literal(&url::Url::parse(url).unwrap()).unwrap_err();
            assert!(error.to_string().contains(ALLOW_SETTING), "{url}: {error}");
        }
        assert!(check_literal(&url::Url::parse("https://93.184.216.34/hook").unwrap()).is_ok());
        assert!(check_literal(&url::Url::parse("https://hooks.example.com/hook").unwrap()).is_ok());
    }

    #[tokio::test]
    async fn names_that_resolve_to_loopback_are_refused() {
        let error = check_url(&url::Url::parse("http://localhost:8080/hook").unwrap()).await.unwrap_err();
        assert!(error.to_string().starts_with("localhost resolves to"), "{error}");
        assert!(error.to_string().contains("loopback"), "{error}");
    }
}
