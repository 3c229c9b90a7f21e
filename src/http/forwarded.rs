//! Behind a reverse proxy: what a *trusted* proxy says about the client
//! (`Forwarded`, RFC 7239, or the `X-Forwarded-For` / `-Proto` / `-Host`
//! trio). From any other peer those headers are ignored: a client could
//! write them itself.
//!
//! The client is found by walking the proxy chain from the right (the hop
//! nearest to us) past every trusted proxy: the first address that is not
//! one is the client. A hop that is not an address (`unknown`, an
//! obfuscated `_name`) ends the walk with no client address: the proxy's
//! own address stays `peer_addr()`.

use std::net::{IpAddr, SocketAddr};

use super::Request;

/// What a trusted proxy said, kept on the request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Forwarded {
    /// The proxy's own address (the socket's peer).
    pub(crate) proxy: Option<SocketAddr>,
    /// The scheme the client used (`http` or `https`), lowercase.
    pub(crate) proto: Option<String>,
    /// The `host[:port]` the client addressed, when the proxy says.
    pub(crate) host: Option<String>,
}

/// A trusted proxy's address, or a range of them: `10.0.0.1` (that one
/// address), `10.0.0.0/8`, `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    addr: IpAddr,
    prefix: u8,
}

impl Range {
    /// One address.
    pub(crate) fn host(addr: IpAddr) -> Range {
        let addr = addr.to_canonical();
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Range { addr, prefix }
    }

    /// `ADDR` or `ADDR/PREFIX`; `None` when it is neither.
    pub(crate) fn parse(text: &str) -> Option<Range> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                (a, Some(p.parse::<u8>().ok()?))
            }
            Some(_) => return None,
            None => (text.trim(), None),
        };
        let whole = Range::host(addr.parse().ok()?);
        match prefix {
            None => Some(whole),
            Some(p) if p <= whole.prefix => Some(Range {
                addr: whole.addr,
                prefix: p,
            }),
            Some(_) => None,
        }
    }

    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address is its
    /// IPv4 address).
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let bits = |a: IpAddr| -> u128 {
            match a {
                IpAddr::V4(v4) => u128::from(u32::from(v4)) << 96,
                IpAddr::V6(v6) => u128::from(v6),
            }
        };
        let ip = ip.to_canonical();
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let mask = u128::MAX
            .checked_shl(128 - u32::from(self.prefix))
            .unwrap_or(0);
        bits(ip) & mask == bits(self.addr) & mask
    }
}

/// Whether `ip` is in one of the `trusted` ranges.
pub(crate) fn is_trusted(trusted: &[Range], ip: IpAddr) -> bool {
    trusted.iter().any(|r| r.contains(ip))
}

/// Applies what the proxy says when the socket's peer is a trusted proxy:
/// `peer_addr()` becomes the client's, the scheme and host are recorded
/// for the `Origin` check. Does nothing for any other peer.
pub(crate) fn apply(req: &mut Request, trusted: &[Range]) {
    if !is_trusted(trusted, req.peer.ip()) {
        return;
    }
    let proxy = req.peer;
    let mut fwd = Forwarded {
        proxy: Some(proxy),
        ..Forwarded::default()
    };
    let elements = forwarded_elements(req);
    if !elements.is_empty() {
        // RFC 7239: each element is one hop; the client's describes the
        // request the client made (its proto and host).
        let hops: Vec<Option<SocketAddr>> = elements
            .iter()
            .map(|e| param(e, "for").and_then(parse_node))
            .collect();
        if let Some(i) = client_hop(&hops, trusted) {
            if let Some(addr) = hops[i] {
                req.peer = addr;
            }
            fwd.proto = param(&elements[i], "proto").map(|p| p.to_ascii_lowercase());
            fwd.host = param(&elements[i], "host").map(str::to_owned);
        }
    } else {
        let hops: Vec<Option<SocketAddr>> =
            req.header_list("x-forwarded-for").map(parse_node).collect();
        if let Some(i) = client_hop(&hops, trusted) {
            if let Some(addr) = hops[i] {
                req.peer = addr;
            }
        }
        // Set (not appended) by the proxy next to us: its last value.
        fwd.proto = req
            .header_list("x-forwarded-proto")
            .last()
            .map(|p| p.to_ascii_lowercase());
        fwd.host = req
            .header_list("x-forwarded-host")
            .last()
            .map(|h| (*h).to_owned());
    }
    fwd.proto = fwd.proto.filter(|p| p == "http" || p == "https");
    fwd.host = fwd
        .host
        .filter(|h| super::site::split_authority(h).is_some());
    req.extra.forwarded = Some(fwd);
}

/// The index of the client in the chain `hops` (walked from the right,
/// past trusted proxies); `None` for an empty chain. An unreadable hop is
/// the client (with no address).
fn client_hop(hops: &[Option<SocketAddr>], trusted: &[Range]) -> Option<usize> {
    let mut i = hops.len().checked_sub(1)?;
    loop {
        match hops[i] {
            Some(a) if is_trusted(trusted, a.ip()) && i > 0 => i -= 1,
            _ => return Some(i),
        }
    }
}

/// The elements of every `Forwarded` header, in order (commas inside
/// quoted strings do not split).
fn forwarded_elements(req: &Request) -> Vec<String> {
    let mut out = Vec::new();
    for (_, v) in req
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("forwarded"))
    {
        let mut cur = String::new();
        let mut quoted = false;
        for c in v.chars() {
            match c {
                '"' => {
                    quoted = !quoted;
                    cur.push(c);
                }
                ',' if !quoted => out.push(std::mem::take(&mut cur)),
                _ => cur.push(c),
            }
        }
        out.push(cur);
    }
    out.retain(|e| !e.trim().is_empty());
    out
}

/// The value of `name` in one `Forwarded` element (`for=a;proto=https`),
/// unquoted.
fn param<'e>(element: &'e str, name: &str) -> Option<&'e str> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case(name) {
            return None;
        }
        let v = v.trim();
        Some(
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v),
        )
    })
}

/// A hop's address: `1.2.3.4`, `1.2.3.4:5`, `2001:db8::1`, `[2001:db8::1]`
/// or `[2001:db8::1]:5` (port 0 when not given).
fn parse_node(node: &str) -> Option<SocketAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 0));
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr);
    }
    let v6 = node.strip_prefix('[')?.strip_suffix(']')?;
    v6.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(peer: &str, extra: &str) -> Request {
        let head = format!("GET /x HTTP/1.1\r\nHost: h\r\n{extra}\r\n");
        crate::http::parse_head(head.as_bytes(), peer.parse().unwrap()).unwrap()
    }

    fn ips(list: &[&str]) -> Vec<Range> {
        list.iter().map(|a| Range::parse(a).unwrap()).collect()
    }

    #[test]
    fn ranges() {
        let r = |t: &str| Range::parse(t);
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        assert!(r("10.0.0.0/8").unwrap().contains(ip("10.200.3.4")));
        assert!(!r("10.0.0.0/8").unwrap().contains(ip("11.0.0.1")));
        assert!(r("10.0.0.0/8").unwrap().contains(ip("::ffff:10.1.2.3")));
        assert!(r("10.0.0.1").unwrap().contains(ip("10.0.0.1")));
        assert!(!r("10.0.0.1").unwrap().contains(ip("10.0.0.2")));
        assert!(r("0.0.0.0").unwrap().contains(ip("0.0.0.0")));
        assert!(!r("0.0.0.0").unwrap().contains(ip("10.0.0.2")));
        assert!(r("0.0.0.0/0").unwrap().contains(ip("10.0.0.2")));
        assert!(!r("0.0.0.0/0").unwrap().contains(ip("::1")));
        assert!(r("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(!r("fd00::/8").unwrap().contains(ip("fe80::1")));
        assert!(r("::1/128").unwrap().contains(ip("::1")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "x",
            "10.0.0.0/-1",
            "10.0.0.0/8/8",
        ] {
            assert_eq!(r(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_a_trusted_peer_is_believed() {
        let headers = "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n";
        let mut r = req("10.0.0.2:5000", headers);
        apply(&mut r, &ips(&["10.0.0.1"]));
        assert_eq!(r.peer_addr(), "10.0.0.2:5000".parse().unwrap());
        assert!(r.extra.forwarded.is_none());
        apply(&mut r, &[]);
        assert!(r.extra.forwarded.is_none());
        let mut r = req("10.0.0.1:5000", headers);
        apply(&mut r, &ips(&["10.0.0.1"]));
        assert_eq!(r.peer_addr(), "203.0.113.9:0".parse().unwrap());
        let f = r.extra.forwarded.unwrap();
        assert_eq!(f.proxy, Some("10.0.0.1:5000".parse().unwrap()));
        assert_eq!(f.proto.as_deref(), Some("https"));
        let mut mapped = req("[::ffff:10.0.0.1]:5000", headers);
        apply(&mut mapped, &ips(&["10.0.0.1"]));
        assert_eq!(mapped.peer_addr(), "203.0.113.9:0".parse().unwrap());
    }

    #[test]
    fn the_chain_is_walked_past_trusted_proxies_only() {
        let trusted = ips(&["10.0.0.1", "10.0.0.2"]);
        let spoofed = "X-Forwarded-For: 1.1.1.1, 203.0.113.9, 10.0.0.2\r\n";
        let mut r = req("10.0.0.1:1", spoofed);
        apply(&mut r, &trusted);
        assert_eq!(r.peer_addr().ip(), "203.0.113.9".parse::<IpAddr>().unwrap());
        let mut r = req("10.0.0.1:1", "X-Forwarded-For: unknown, 10.0.0.2\r\n");
        apply(&mut r, &trusted);
        assert_eq!(r.peer_addr(), "10.0.0.1:1".parse().unwrap());
    }

    #[test]
    fn forwarded_wins_and_carries_proto_and_host() {
        let trusted = ips(&["10.0.0.1"]);
        let h = "Forwarded: for=1.1.1.1;proto=http, for=\"[2001:db8::17]:4711\";proto=HTTPS;host=\"example.com\"\r\n\
                 X-Forwarded-For: 9.9.9.9\r\n";
        let mut r = req("10.0.0.1:1", h);
        apply(&mut r, &trusted);
        assert_eq!(r.peer_addr(), "[2001:db8::17]:4711".parse().unwrap());
        let f = r.extra.forwarded.unwrap();
        assert_eq!(f.proto.as_deref(), Some("https"));
        assert_eq!(f.host.as_deref(), Some("example.com"));
        let mut r = req(
            "10.0.0.1:1",
            "X-Forwarded-Host: a.example:8443\r\nX-Forwarded-Proto: gopher\r\n",
        );
        apply(&mut r, &trusted);
        let f = r.extra.forwarded.unwrap();
        assert_eq!((f.proto, f.host.as_deref()), (None, Some("a.example:8443")));
    }
}
