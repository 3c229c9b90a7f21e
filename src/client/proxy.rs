//! Proxies: the proxy URL, the proxy for a target from the environment as
//! curl reads it, and the tunnel: HTTP `CONNECT` (RFC 9110 section 9.3.6)
//! here, SOCKS5 in `socks.rs`. TLS for `wss://` runs inside the tunnel,
//! end to end with the server; the proxy sees only the host and port.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::Instant;

use super::handshake::{self, Target};
use crate::http::forwarded::Range;
use crate::Error;

/// A proxy to tunnel through: `http://`, `socks5://` or `socks5h://`,
/// then `[user[:password]@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proxy {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) kind: Kind,
    /// The user name and password, percent-decoded.
    pub(crate) credentials: Option<(String, String)>,
}

/// How a proxy is asked for a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// HTTP `CONNECT`.
    Http,
    /// SOCKS5 (RFC 1928); `remote_dns` (`socks5h://`) lets the proxy
    /// resolve the host name, else we resolve it (`socks5://`), as curl.
    Socks5 { remote_dns: bool },
}

/// Where the client's proxy comes from.
#[derive(Debug, Clone)]
pub(crate) enum ProxySetting {
    /// A proxy URL given to `Client::proxy`.
    Url(String),
    /// The environment, read when connecting (`Client::proxy_from_env`).
    Env,
}

impl ProxySetting {
    /// The proxy to use for `target`, if any.
    pub(crate) fn for_target(&self, target: &Target) -> Result<Option<Proxy>, Error> {
        match self {
            ProxySetting::Url(url) => parse(url).map(Some),
            ProxySetting::Env => from_env(target, |name| std::env::var(name).ok()),
        }
    }
}

/// Parses a proxy URL: `http://` (or no scheme), `socks5://` or
/// `socks5h://`, optional `user:password@` (percent-encoded, as curl takes
/// them), a host and a port (1080 when there is none, as curl).
///
/// # Errors
/// [`Error::InvalidInput`] for another scheme (`https://`, `socks4://`) or
/// a missing host or bad port.
pub(crate) fn parse(url: &str) -> Result<Proxy, Error> {
    let (kind, rest) = match url.split_once("://") {
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "http" => (Kind::Http, rest),
            "socks5" => (Kind::Socks5 { remote_dns: false }, rest),
            "socks5h" => (Kind::Socks5 { remote_dns: true }, rest),
            _ => {
                return Err(Error::InvalidInput(
                    "a proxy url must be http://, socks5:// or socks5h://",
                ))
            }
        },
        None => (Kind::Http, url),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6
                .split_once(']')
                .ok_or(Error::InvalidInput("the proxy url's host is malformed"))?;
            (host, after.strip_prefix(':'))
        }
        None => match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        },
    };
    if host.is_empty() {
        return Err(Error::InvalidInput("the proxy url has no host"));
    }
    let port = match port {
        None | Some("") => 1080,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                return Err(Error::InvalidInput(
                    "the proxy url's port is not a number from 1 to 65535",
                ))
            }
        },
    };
    let credentials = userinfo.map(|u| {
        let (user, password) = u.split_once(':').unwrap_or((u, ""));
        (
            crate::http::percent_decode(user),
            crate::http::percent_decode(password),
        )
    });
    Ok(Proxy {
        host: host.to_owned(),
        port,
        kind,
        credentials,
    })
}

/// The proxy for `target` from the environment, as curl reads it: for
/// `wss://`, `https_proxy` then `HTTPS_PROXY`; for `ws://`, `http_proxy`
/// only (curl ignores `HTTP_PROXY`, which a CGI program could be handed by
/// a request's `Proxy:` header); then `all_proxy`, `ALL_PROXY`. Empty
/// values count as unset. `no_proxy` (or `NO_PROXY`) lists hosts to reach
/// directly: `*` for all, else names matched with their subdomains (a
/// leading dot is ignored), and IP addresses and CIDR ranges.
pub(crate) fn from_env(
    target: &Target,
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<Proxy>, Error> {
    let get = |names: &[&str]| {
        names
            .iter()
            .filter_map(|n| var(n))
            .find(|v| !v.trim().is_empty())
    };
    let own: &[&str] = if target.secure {
        &["https_proxy", "HTTPS_PROXY"]
    } else {
        &["http_proxy"]
    };
    let Some(url) = get(own).or_else(|| get(&["all_proxy", "ALL_PROXY"])) else {
        return Ok(None);
    };
    if let Some(list) = get(&["no_proxy", "NO_PROXY"]) {
        if bypass(&list, &target.host) {
            return Ok(None);
        }
    }
    parse(url.trim()).map(Some)
}

/// Whether `host` (without IPv6 brackets) is in a `no_proxy` list: `*`,
/// a name (with its subdomains), or for an IP address, an address or a
/// CIDR range (`10.0.0.0/8`, `fd00::/8`, as curl 7.86 and later).
fn bypass(list: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let ip: Option<IpAddr> = host.parse().ok();
    list.split(',').map(str::trim).any(|entry| {
        if entry == "*" {
            return true;
        }
        let entry = entry
            .trim_start_matches('.')
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if let (Some(ip), Some(range)) = (ip, Range::parse(&entry)) {
            return range.contains(ip);
        }
        !entry.is_empty()
            && (host == entry
                || (host.ends_with(&entry) && host[..host.len() - entry.len()].ends_with('.')))
    })
}

/// Asks the proxy on `tcp` for a tunnel to `target` and reads its answer
/// within `deadline` (an HTTP head at most `max_head` bytes).
///
/// # Errors
/// [`Error::Proxy`] with the status when the proxy refuses (407: the
/// credentials; a SOCKS5 refusal as the HTTP status an HTTP proxy would
/// answer); [`Error::Protocol`] for an answer that is not HTTP or SOCKS5;
/// [`Error::Timeout`] and [`Error::Io`] as for the handshake.
pub(crate) fn tunnel(
    tcp: &TcpStream,
    target: &Target,
    proxy: &Proxy,
    deadline: Instant,
    max_head: usize,
) -> Result<(), Error> {
    match proxy.kind {
        Kind::Http => connect(tcp, target, proxy, deadline, max_head),
        Kind::Socks5 { remote_dns } => super::socks::connect(
            tcp,
            target,
            proxy.credentials.as_ref(),
            remote_dns,
            deadline,
        ),
    }
}

/// HTTP `CONNECT`: see [`tunnel`].
fn connect(
    tcp: &TcpStream,
    target: &Target,
    proxy: &Proxy,
    deadline: Instant,
    max_head: usize,
) -> Result<(), Error> {
    let authority = match target.host.contains(':') {
        true => format!("[{}]:{}", target.host, target.port),
        false => format!("{}:{}", target.host, target.port),
    };
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some((user, password)) = &proxy.credentials {
        let basic = base64(format!("{user}:{password}").as_bytes());
        request.push_str(&format!("Proxy-Authorization: Basic {basic}\r\n"));
    }
    request.push_str("\r\n");
    let io_err = super::connect::io_error;
    tcp.set_write_timeout(Some(super::connect::left(deadline)?))?;
    (&*tcp).write_all(request.as_bytes()).map_err(io_err)?;
    // Read a byte at a time past what the head needs: whatever follows the
    // head belongs to the tunnel, and the head is short.
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    loop {
        if head.ends_with(b"\n\n") || head.ends_with(b"\r\n\r\n") {
            break;
        }
        if head.len() >= max_head {
            return Err(Error::Protocol("proxy: response head too large"));
        }
        tcp.set_read_timeout(Some(super::connect::left(deadline)?))?;
        match (&*tcp).read(&mut byte) {
            Ok(0) => {
                return Err(Error::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the proxy closed the connection before answering",
                )))
            }
            Ok(_) => head.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(e)),
        }
    }
    match handshake::parse_response(&head)? {
        Some((r, _)) if (200..300).contains(&r.status) => Ok(()),
        Some((r, _)) => {
            log::debug!("client: the proxy refused the tunnel with {}", r.status);
            Err(Error::Proxy { status: r.status })
        }
        None => Err(Error::Protocol("proxy: malformed http response")),
    }
}

/// Standard base64 with padding (RFC 4648 section 4).
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_base64() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn parses_proxy_urls() {
        let p = parse("http://user:p%40ss@proxy.example:3128/").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.example", 3128));
        let creds = Some(("user".to_owned(), "p@ss".to_owned()));
        assert_eq!((p.kind, &p.credentials), (Kind::Http, &creds));
        let p = parse("10.0.0.1").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("10.0.0.1", 1080));
        assert_eq!((p.kind, p.credentials), (Kind::Http, None));
        let p = parse("HTTP://[::1]:8080").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("::1", 8080));
        let p = parse("socks5h://u@s").unwrap();
        assert_eq!(p.kind, Kind::Socks5 { remote_dns: true });
        assert_eq!(p.credentials, Some(("u".to_owned(), String::new())));
        let p = parse("SOCKS5://s:9050").unwrap();
        assert_eq!((p.kind, p.port), (Kind::Socks5 { remote_dns: false }, 9050));
        for bad in [
            "socks4://h:1",
            "https://h:1",
            "http://",
            "http://h:0",
            "http://h:x",
        ] {
            assert!(matches!(parse(bad), Err(Error::InvalidInput(_))), "{bad}");
        }
    }

    #[test]
    fn reads_the_environment_as_curl() {
        let ws = handshake::parse_url("ws://api.example.com/x").unwrap();
        let wss = handshake::parse_url("wss://api.example.com/x").unwrap();
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let host = |p: Result<Option<Proxy>, Error>| p.unwrap().map(|p| p.host);
        let vars = env(&[("HTTPS_PROXY", "s:1"), ("HTTP_PROXY", "upper:1")]);
        assert_eq!(host(from_env(&wss, vars)), Some("s".into()));
        // curl ignores HTTP_PROXY in capitals.
        let vars = env(&[("HTTPS_PROXY", "s:1"), ("HTTP_PROXY", "upper:1")]);
        assert_eq!(host(from_env(&ws, vars)), None);
        let vars = env(&[("http_proxy", "h:1"), ("ALL_PROXY", "all:1")]);
        assert_eq!(host(from_env(&ws, vars)), Some("h".into()));
        let vars = env(&[("http_proxy", ""), ("ALL_PROXY", "all:1")]);
        assert_eq!(host(from_env(&ws, vars)), Some("all".into()));
        for no in ["example.com", ".example.com", "other, api.example.com", "*"] {
            let vars = move |name: &str| match name {
                "ALL_PROXY" => Some("all:1".to_owned()),
                "NO_PROXY" => Some(no.to_owned()),
                _ => None,
            };
            assert_eq!(host(from_env(&ws, vars)), None, "{no}");
        }
        let vars = env(&[("ALL_PROXY", "all:1"), ("no_proxy", "ample.com,other")]);
        assert_eq!(host(from_env(&ws, vars)), Some("all".into()));
    }

    #[test]
    fn no_proxy_takes_addresses_and_cidr_ranges() {
        assert!(bypass("10.0.0.0/8", "10.1.2.3"));
        assert!(bypass("example.com, 192.168.0.0/16", "192.168.7.1"));
        assert!(!bypass("192.168.0.0/16", "192.169.0.1"));
        assert!(bypass("127.0.0.1", "127.0.0.1"));
        assert!(!bypass("127.0.0.1", "127.0.0.2"));
        assert!(bypass("[::1]", "::1"));
        assert!(bypass("fd00::/8", "fd12::5"));
        assert!(!bypass("fd00::/8", "fe80::1"));
        // A range says nothing of names, and a name nothing of addresses.
        assert!(!bypass("10.0.0.0/8", "ten.example"));
        assert!(!bypass("example.com", "10.0.0.1"));
    }
}
