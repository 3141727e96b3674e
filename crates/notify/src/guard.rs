//! Where tenant-supplied URLs may point: `https` only, and never at
//! loopback, private, link-local (the clouds' metadata services live at
//! 169.254.169.254 and fd00:ec2::254), carrier-grade NAT or other
//! non-public addresses — checked when a channel is saved, and again at
//! send time by a DNS resolver that refuses such answers, so a name that
//! later resolves elsewhere (DNS rebinding) cannot reach inside either.
//! `NOTIFY_ALLOW_PRIVATE_TARGETS=true` lifts this (on-prem, tests).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Host names that are internal whatever they resolve to.
const INTERNAL_NAMES: &[&str] = &["localhost", "metadata.google.internal", "metadata"];

/// Whether `ip` is a public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking 198.18/15
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7 (incl. fd00:ec2::254)
        || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)) // documentation
}

/// Checks a tenant-supplied channel URL before it is saved or used.
pub fn check_url(raw: &str, allow_private: bool) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("is not a URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err("must be an https:// URL".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials in the URL".into());
    }
    let Some(host) = url.host() else {
        return Err("has no host".into());
    };
    if allow_private {
        return Ok(url);
    }
    let refused = || Err("must not point at a loopback, private, link-local or metadata address".to_owned());
    match host {
        url::Host::Ipv4(ip) if !is_public(IpAddr::V4(ip)) => refused(),
        url::Host::Ipv6(ip) if !is_public(IpAddr::V6(ip)) => refused(),
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if INTERNAL_NAMES.contains(&d.as_str()) || d.ends_with(".localhost") || d.ends_with(".internal") {
                refused()
            } else {
                Ok(url)
            }
        }
        _ => Ok(url),
    }
}

/// Resolves `url`'s host now and refuses it if any address is not public
/// (a name that does not resolve yet is accepted: sends check again).
pub async fn check_resolves_public(url: &url::Url) -> Result<(), String> {
    let Some(url::Host::Domain(host)) = url.host() else {
        return Ok(());
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let lookup = tokio::time::timeout(std::time::Duration::from_secs(3), tokio::net::lookup_host((host, port)));
    match lookup.await {
        Ok(Ok(addrs)) => {
            for a in addrs {
                if !is_public(a.ip()) {
                    return Err(format!(
                        "resolves to {}, a loopback, private, link-local or metadata address",
                        a.ip()
                    ));
                }
            }
            Ok(())
        }
        // Not resolvable (yet): accepted; every send checks again.
        _ => Ok(()),
    }
}

/// A DNS resolver for tenant channels that only answers public addresses.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?
                .collect();
            let public: Vec<SocketAddr> = found.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn tenant_urls_must_be_public_https() {
        assert!(check_url("https://hooks.example.com/x", false).is_ok());
        for bad in [
            "http://hooks.example.com/x",
            "https://127.0.0.1/x",
            "https://[::1]/x",
            "https://169.254.169.254/latest/meta-data",
            "https://localhost:8443/",
            "https://metadata.google.internal/",
            "https://user:pw@hooks.example.com/",
            "ftp://hooks.example.com/",
            "not a url",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(
            check_url("http://127.0.0.1:9000/hook", true).is_ok(),
            "allowed for on-prem and tests"
        );
    }
}
