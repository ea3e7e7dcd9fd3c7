//! The signed-in user's picture (the `picture` claim, OIDC Core §5.1), fetched here so a UI can
//! show it without loading remote content: a webview whose CSP is `img-src 'self' data:` gets a
//! `data:` URL. Only raster images, recognised by their first bytes rather than by the server's
//! `Content-Type`; SVG, which can carry script, is refused.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use url::{Host, Url};

use crate::config::is_loopback_host;
use crate::error::{Error, ErrorKind, sanitize};

/// Largest picture accepted. Profile pictures are thumbnails; anything bigger is not one.
pub const MAX_PICTURE: usize = 512 * 1024;

/// A raster image in memory.
#[derive(Clone, PartialEq, Eq)]
pub struct Picture {
    media_type: &'static str,
    bytes: Vec<u8>,
}

impl fmt::Debug for Picture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Picture")
            .field("media_type", &self.media_type)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl Picture {
    /// PNG, JPEG, GIF or WebP up to [`MAX_PICTURE`] bytes; anything else is `None`.
    pub fn from_bytes(bytes: Vec<u8>) -> Option<Self> {
        if bytes.len() > MAX_PICTURE {
            return None;
        }
        let media_type = sniff(&bytes)?;
        Some(Self { media_type, bytes })
    }

    pub fn media_type(&self) -> &'static str {
        self.media_type
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// `data:<type>;base64,...` (RFC 2397).
    pub fn data_url(&self) -> String {
        use base64::Engine as _;
        format!(
            "data:{};base64,{}",
            self.media_type,
            base64::engine::general_purpose::STANDARD.encode(&self.bytes)
        )
    }
}

/// The image type from its signature bytes.
fn sniff(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if b.starts_with(b"\xff\xd8\xff") {
        Some("image/jpeg")
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if b.len() >= 12 && b.starts_with(b"RIFF") && &b[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// The claim as a URL worth fetching, with no credentials in it. A release build
/// (`allow_loopback` false) takes only https to a host that is a name or a public address; a
/// debug build also takes loopback hosts, over http too, for the dev provider. A name is checked
/// once resolved ([`resolve`]): the claim comes from the provider, and must not aim this
/// machine's own requests at local services (server-side request forgery).
pub(crate) fn picture_url(claim: &str, allow_loopback: bool) -> Result<Url, String> {
    let url = Url::parse(claim).map_err(|e| format!("not a URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_loopback && is_loopback_host(&url) => {}
        other => return Err(format!("{other}: URLs are not fetched; only https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("it carries credentials".into());
    }
    let literal = match url.host() {
        Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(Host::Domain(_)) => None,
        None => return Err("it has no host".into()),
    };
    if let Some(ip) = literal
        && !address_allowed(ip, allow_loopback)
    {
        return Err(format!("{ip} is not a public address"));
    }
    Ok(url)
}

/// How long resolving the picture's host may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves the host of a URL that [`picture_url`] accepted, and checks **every** address: one
/// private address among public ones is enough to refuse, since the connection may pick any.
/// The caller connects only to the addresses returned (no second lookup that DNS rebinding could
/// answer differently), or through the proxy when `HTTPS_PROXY` applies: the proxy resolves the
/// name itself, and this check still refuses a name that resolves to a private address here.
pub(crate) async fn resolve(url: &Url, allow_loopback: bool) -> Result<Vec<SocketAddr>, Error> {
    let refused = |why: String| Error::new(ErrorKind::ProviderInvalid, format!("picture: {why}"));
    let port = url
        .port_or_known_default()
        .ok_or_else(|| refused("the URL has no port".into()))?;
    let addrs: Vec<SocketAddr> = match url.host() {
        Some(Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Some(Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        Some(Host::Domain(name)) => {
            let lookup = tokio::net::lookup_host((name, port));
            match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                Ok(Ok(found)) => found.collect(),
                Ok(Err(e)) => {
                    return Err(Error::new(
                        ErrorKind::ProviderUnreachable,
                        format!("picture: cannot resolve {}: {e}", sanitize(name)),
                    ));
                }
                Err(_) => {
                    return Err(Error::new(
                        ErrorKind::ProviderUnreachable,
                        format!(
                            "picture: resolving {} took longer than {} s",
                            sanitize(name),
                            RESOLVE_TIMEOUT.as_secs()
                        ),
                    ));
                }
            }
        }
        None => return Err(refused("the URL has no host".into())),
    };
    if addrs.is_empty() {
        return Err(refused("the host has no address".into()));
    }
    check_addrs(&addrs, allow_loopback).map_err(refused)?;
    Ok(addrs)
}

/// Every address must be allowed; the error names the first that is not.
pub(crate) fn check_addrs(addrs: &[SocketAddr], allow_loopback: bool) -> Result<(), String> {
    match addrs
        .iter()
        .find(|a| !address_allowed(a.ip(), allow_loopback))
    {
        Some(bad) => Err(format!(
            "the host resolves to {}, which is not a public address; it is not fetched",
            bad.ip()
        )),
        None => Ok(()),
    }
}

/// A public unicast address, or a loopback one when `allow_loopback` (debug builds).
pub(crate) fn address_allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    is_public(ip) || (allow_loopback && is_loopback(ip))
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Whether `ip` is a globally reachable unicast address: not loopback, private, link-local,
/// shared (CGNAT), unspecified, multicast, broadcast, reserved or documentation space (the IANA
/// special-purpose registries, RFC 6890), including IPv6 forms that embed such an IPv4 address.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = a == 0 // "this network", including 0.0.0.0 (RFC 1122 §3.2.1.3)
        || a == 10 // private (RFC 1918)
        || (a == 100 && (64..128).contains(&b)) // shared address space, CGNAT (RFC 6598)
        || a == 127 // loopback (RFC 1122)
        || (a == 169 && b == 254) // link-local (RFC 3927)
        || (a == 172 && (16..32).contains(&b)) // private (RFC 1918)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments (RFC 6890)
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1 (RFC 5737)
        || (a == 192 && b == 168) // private (RFC 1918)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking (RFC 2544)
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2 (RFC 5737)
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3 (RFC 5737)
        || a >= 224; // multicast 224/4 (RFC 5771), reserved 240/4, broadcast (RFC 919)
    !special
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    // IPv4-mapped ::ffff:0:0/96 (RFC 4291 §2.5.5.2) is the IPv4 address itself.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    let low_v4 = || Ipv4Addr::from(u32::from(s[6]) << 16 | u32::from(s[7]));
    // ::/96: unspecified, loopback and the deprecated IPv4-compatible form (RFC 4291 §2.5.5.1).
    if s[..6] == [0; 6] {
        return false;
    }
    // NAT64 64:ff9b::/96 (RFC 6052) reaches the embedded IPv4 address.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(low_v4());
    }
    // 6to4 2002::/16 (RFC 3056) embeds an IPv4 address in bits 16..48.
    if s[0] == 0x2002 {
        return is_public_v4(Ipv4Addr::from(u32::from(s[1]) << 16 | u32::from(s[2])));
    }
    let special = (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7 (RFC 4193)
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10 (RFC 4291)
        || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10, deprecated (RFC 3879)
        || (s[0] & 0xff00) == 0xff00 // multicast ff00::/8 (RFC 4291)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation 2001:db8::/32 (RFC 3849)
        || (s[0] & 0xfff0) == 0x3ff0 // documentation 3fff::/20 (RFC 9637)
        || (s[0] == 0x2001 && s[1] == 0) // Teredo 2001::/32 (RFC 4380)
        || (s[0] == 0x2001 && s[1] == 2 && s[2] == 0) // benchmarking 2001:2::/48 (RFC 5180)
        || (s[0] & 0xe000) != 0x2000; // outside global unicast 2000::/3 (RFC 4291 §2.4), which
    // also covers discard-only 100::/64 (RFC 6666) and local-use NAT64 64:ff9b:1::/48 (RFC 8215)
    !special
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn recognises_raster_images_by_their_bytes() {
        assert_eq!(
            Picture::from_bytes(PNG.to_vec()).map(|p| p.media_type()),
            Some("image/png")
        );
        assert_eq!(sniff(b"\xff\xd8\xff\xe0\0\x10JFIF"), Some("image/jpeg"));
        assert_eq!(sniff(b"GIF89a\x01\0"), Some("image/gif"));
        assert_eq!(sniff(b"RIFF\x24\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"RIFF\x24\0\0\0WAVEfmt "), None);
        assert_eq!(sniff(b"<svg xmlns='http://www.w3.org/2000/svg'>"), None);
        assert_eq!(sniff(b"<html>"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn refuses_oversized_pictures() {
        let mut big = PNG.to_vec();
        big.resize(MAX_PICTURE + 1, 0);
        assert!(Picture::from_bytes(big).is_none());
    }

    #[test]
    fn data_url_and_debug() {
        let p = Picture::from_bytes(PNG.to_vec()).expect("png");
        assert_eq!(
            p.data_url(),
            "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="
        );
        assert_eq!(
            format!("{p:?}"),
            r#"Picture { media_type: "image/png", len: 16 }"#
        );
    }

    #[test]
    fn debug_policy_takes_https_or_loopback_http_without_credentials() {
        let debug = |c: &str| picture_url(c, true);
        assert!(debug("https://cdn.example.com/a.png").is_ok());
        assert!(debug("http://127.0.0.1:8080/a.png").is_ok());
        assert!(debug("http://localhost:8080/a.png").is_ok());
        assert!(debug("https://127.0.0.1:8443/a.png").is_ok());
        let refused = |c: &str| debug(c).expect_err(c);
        assert_eq!(
            refused("http://example.com/a.png"),
            "http: URLs are not fetched; only https"
        );
        assert_eq!(
            refused("https://10.0.0.1/a.png"),
            "10.0.0.1 is not a public address",
            "private even in debug"
        );
        assert_eq!(
            refused("file:///etc/passwd"),
            "file: URLs are not fetched; only https"
        );
        assert_eq!(
            refused("data:image/png;base64,AAAA"),
            "data: URLs are not fetched; only https"
        );
        assert_eq!(
            refused("https://user:pw@example.com/a.png"),
            "it carries credentials"
        );
        assert!(refused("not a url").starts_with("not a URL"));
    }

    #[test]
    fn release_policy_takes_only_https_to_public_hosts() {
        let release = |c: &str| picture_url(c, false);
        assert!(release("https://cdn.example.com/a.png").is_ok());
        assert!(release("https://93.184.215.14/a.png").is_ok());
        assert!(release("https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/a.png").is_ok());
        let not_https = "http: URLs are not fetched; only https";
        for (refused, why) in [
            ("http://127.0.0.1:8080/a.png", not_https),
            ("http://localhost/a.png", not_https),
            ("http://cdn.example.com/a.png", not_https),
            (
                "https://127.0.0.1/a.png",
                "127.0.0.1 is not a public address",
            ),
            (
                "https://127.1.2.3/a.png",
                "127.1.2.3 is not a public address",
            ),
            ("https://[::1]/a.png", "::1 is not a public address"),
            (
                "https://[::ffff:127.0.0.1]/a.png",
                "::ffff:127.0.0.1 is not a public address",
            ),
            ("https://10.1.2.3/a.png", "10.1.2.3 is not a public address"),
            (
                "https://169.254.169.254/latest/meta-data",
                "169.254.169.254 is not a public address",
            ),
            ("https://[fe80::1]/a.png", "fe80::1 is not a public address"),
            ("https://0.0.0.0/a.png", "0.0.0.0 is not a public address"),
            (
                "https://user:pw@cdn.example.com/a.png",
                "it carries credentials",
            ),
        ] {
            assert_eq!(release(refused).expect_err(refused), why, "{refused}");
        }
    }

    fn v4(s: &str) -> IpAddr {
        IpAddr::V4(s.parse().expect("v4"))
    }

    fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse().expect("v6"))
    }

    #[test]
    fn ipv4_special_ranges_are_not_public() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_public(v4(ip)), "{ip}");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.215.14",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "169.253.0.1",
            "192.0.1.1",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.254",
        ] {
            assert!(is_public(v4(ip)), "{ip}");
        }
    }

    #[test]
    fn ipv6_special_ranges_and_embedded_ipv4_are_not_public() {
        for ip in [
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:192.168.0.1",
            "::ffff:100.64.0.1",
            "::ffff:0.0.0.0",
            "64:ff9b::10.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "fc00::1",
            "fdff:ffff::1",
            "ff02::1",
            "ff0e::1",
            "2001:db8::1",
            "3fff::1",
            "100::1",
            "2001::1",
            "2001:2::1",
            "fe00::1",
        ] {
            assert!(!is_public(v6(ip)), "{ip}");
        }
        for ip in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
            "2001:db9::1",
        ] {
            assert!(is_public(v6(ip)), "{ip}");
        }
    }

    #[test]
    fn loopback_is_allowed_only_when_asked() {
        for ip in [v4("127.0.0.1"), v6("::1"), v6("::ffff:127.0.0.1")] {
            assert!(address_allowed(ip, true), "{ip}");
            assert!(!address_allowed(ip, false), "{ip}");
        }
        assert!(!address_allowed(v4("10.0.0.1"), true));
        assert!(!address_allowed(v6("fe80::1"), true));
        let port = |ip| SocketAddr::new(ip, 443);
        let mixed = [port(v4("8.8.8.8")), port(v4("192.168.0.10"))];
        let e = check_addrs(&mixed, false).expect_err("one private address");
        assert!(e.contains("192.168.0.10"), "{e}");
        assert!(check_addrs(&mixed[..1], false).is_ok());
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_in_release() {
        let url = picture_url("https://localhost/a.png", false).expect("a name passes the policy");
        let e = resolve(&url, false).await.expect_err("localhost");
        assert_eq!(e.kind(), ErrorKind::ProviderInvalid);
        assert!(e.message().contains("not a public address"), "{e}");
        let addrs = resolve(&url, true).await.expect("debug allows loopback");
        assert!(
            addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 443)
        );
    }
}
