//! The SSRF guard: earshot fetches audio URLs that clients give it, so it refuses to connect to
//! loopback, private, link-local (cloud metadata lives at 169.254.169.254), unique-local,
//! multicast, unspecified and other special-purpose addresses, judged by the resolved IP, unless
//! the configuration allows private networks.
//!
//! The check runs at ingest time (so a bad URL is refused with a precise error before anything
//! is stored) and again inside the HTTP client's resolver at fetch time, for every connection
//! including redirects, so DNS rebinding between the two does not get through.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Whether earshot may connect to `ip`. Public unicast only, unless `allow_private`.
pub fn is_allowed(ip: IpAddr, allow_private: bool) -> Result<(), &'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let reason = match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    };
    match reason {
        Some(reason) if !(allow_private && matches!(reason, PRIVATE | LOOPBACK | LINK_LOCAL)) => {
            Err(reason)
        }
        _ => Ok(()),
    }
}

const LOOPBACK: &str = "a loopback address";
const PRIVATE: &str = "a private network address";
const LINK_LOCAL: &str = "a link-local address (cloud metadata services live there)";
const SPECIAL: &str = "a special-purpose address";

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Some(LOOPBACK)
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        // 10/8, 172.16/12, 192.168/16, and carrier-grade NAT 100.64/10.
        Some(PRIVATE)
    } else if ip.is_link_local() {
        Some(LINK_LOCAL)
    } else if ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
    {
        Some(SPECIAL)
    } else {
        None
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    let first = segments[0];
    if ip.is_loopback() {
        Some(LOOPBACK)
    } else if first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfec0 {
        // Unique-local fc00::/7, and the deprecated site-local fec0::/10.
        Some(PRIVATE)
    } else if first & 0xffc0 == 0xfe80 {
        Some(LINK_LOCAL)
    } else if ip.is_unspecified()
        || ip.is_multicast()
        || first == 0x2001 && segments[1] == 0x0db8
        || first == 0x0064
        // Addresses that carry an IPv4 address a relay or translator would reach: IPv4-compatible
        // ::a.b.c.d (deprecated), 6to4 2002::/16, Teredo 2001::/32.
        || segments[..6] == [0; 6]
        || first == 0x2002
        || first == 0x2001 && segments[1] == 0
    {
        Some(SPECIAL)
    } else {
        None
    }
}

/// Resolves the host of an http(s) URL and checks every address. The error says why, for the
/// caller (`resolves to a loopback address (127.0.0.1), which earshot does not fetch`).
pub async fn check_url(url: &str, allow_private: bool) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|_| "is not a valid URL".to_owned())?;
    let host = uri.host().ok_or_else(|| "has no host".to_owned())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    // `Uri` reads a port that is not a u16 as no port at all; the fetch would then fail.
    let written = uri
        .authority()
        .and_then(|authority| authority.as_str().rsplit_once(':'))
        .map(|(_, port)| port)
        .filter(|port| !port.is_empty() && port.bytes().all(|byte| byte.is_ascii_digit()));
    let default_port = if uri.scheme_str() == Some("https") { 443 } else { 80 };
    let port = match written.map(str::parse::<u16>) {
        None => default_port,
        Some(Ok(port)) if port > 0 => port,
        Some(_) => return Err(format!("has an invalid port {}", written.unwrap_or_default())),
    };
    let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((host, port)))
                .await
                .map_err(|_| format!("host {host} did not resolve within 5 s"))?
                .map_err(|error| format!("host {host} does not resolve: {error}"))?
                .collect()
        }
    };
    if addresses.is_empty() {
        return Err(format!("host {host} has no addresses"));
    }
    addresses.iter().try_for_each(|address| check_ip(address.ip(), allow_private))
}

fn check_ip(ip: IpAddr, allow_private: bool) -> Result<(), String> {
    is_allowed(ip, allow_private)
        .map_err(|reason| format!("resolves to {reason} ({ip}), which earshot does not fetch"))
}

/// Checks a URL host (as `host_str` gives it, IPv6 in brackets) when it is a literal address,
/// without DNS: hostnames are left to `GuardedResolver`, which checks every address it returns at
/// connect time, while literal addresses never reach a resolver.
pub fn check_literal_host(host: &str, allow_private: bool) -> Result<(), String> {
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(ip) => check_ip(ip, allow_private),
        Err(_) => Ok(()),
    }
}

/// A reqwest resolver that refuses disallowed addresses, so the guard holds at connect time.
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addresses
                .into_iter()
                .filter(|address| is_allowed(address.ip(), allow_private).is_ok())
                .collect();
            if allowed.is_empty() {
                let error: Box<dyn std::error::Error + Send + Sync> =
                    format!("{host} resolves only to addresses earshot does not fetch").into();
                return Err(error);
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

pub fn resolver(allow_private: bool) -> Arc<GuardedResolver> {
    Arc::new(GuardedResolver { allow_private })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(ip: &str) -> bool {
        is_allowed(ip.parse().unwrap(), false).is_err()
    }

    #[test]
    fn special_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::",
            "::127.0.0.1",
            "::10.0.0.1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "fec0::1",
            "2001:0:4136:e378::1",
        ] {
            assert!(denied(ip), "{ip} must be refused");
        }
        for ip in ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(!denied(ip), "{ip} must be allowed");
        }
    }

    #[test]
    fn allow_private_opens_private_loopback_and_link_local_only() {
        for ip in ["127.0.0.1", "10.0.0.1", "169.254.169.254", "::1"] {
            assert!(is_allowed(ip.parse().unwrap(), true).is_ok(), "{ip}");
        }
        assert!(is_allowed("0.0.0.0".parse().unwrap(), true).is_err());
    }

    #[test]
    fn literal_hosts_are_checked_without_dns() {
        assert!(check_literal_host("127.0.0.1", false).unwrap_err().contains("loopback"));
        assert!(check_literal_host("[::1]", false).unwrap_err().contains("loopback"));
        assert!(check_literal_host("169.254.169.254", false).unwrap_err().contains("link-local"));
        assert!(check_literal_host("8.8.8.8", false).is_ok());
        assert!(check_literal_host("localhost", false).is_ok(), "hostnames are the resolver's");
        assert!(check_literal_host("127.0.0.1", true).is_ok());
    }

    #[tokio::test]
    async fn urls_are_checked_by_resolved_address() {
        let error = check_url("http://127.0.0.1:9/a.wav", false).await.unwrap_err();
        assert!(error.contains("loopback") && error.contains("127.0.0.1"), "{error}");
        let error = check_url("http://localhost/a.wav", false).await.unwrap_err();
        assert!(error.contains("loopback"), "{error}");
        let error = check_url("http://169.254.169.254/latest/meta-data", false).await.unwrap_err();
        assert!(error.contains("link-local"), "{error}");
        let error = check_url("http://10.1.2.3/a.wav", false).await.unwrap_err();
        assert!(error.contains("private"), "{error}");
        let error = check_url("http://[::1]:8080/a.wav", false).await.unwrap_err();
        assert!(error.contains("loopback"), "{error}");
        assert!(check_url("http://127.0.0.1:9/a.wav", true).await.is_ok());
        for url in ["http://8.8.8.8:99999/a.wav", "http://8.8.8.8:0/a.wav"] {
            let error = check_url(url, false).await.unwrap_err();
            assert!(error.contains("invalid port"), "{url}: {error}");
        }
    }
}
