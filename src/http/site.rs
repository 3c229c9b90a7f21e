//! Where a request was addressed, for the same-origin check of a
//! WebSocket handshake: the `Host` header, or what a trusted reverse proxy
//! says the client asked for.

/// Where a request was addressed, as the same-origin check sees it: the
/// `Host` header, or what a trusted proxy says the client asked for.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Site<'a> {
    /// `host[:port]` as the client addressed it.
    pub(crate) authority: Option<&'a str>,
    /// The scheme the client used, when known (`https` from a trusted
    /// proxy's `X-Forwarded-Proto`); `None` for a direct connection.
    pub(crate) scheme: Option<&'a str>,
    /// The port is unknown (the host a trusted proxy gives, forwarded or
    /// its `Host`, has none): host names alone are compared.
    pub(crate) any_port: bool,
}

impl Site<'_> {
    /// Whether `origin` is this site: the same host name (ASCII case
    /// ignored) and the same port, a missing port being the scheme's
    /// default (80 for `http`/`ws`, 443 for `https`/`wss`), as browsers
    /// write origins (RFC 6454 section 4). A `Host` without a port takes
    /// the port of the scheme the client used when known, else the
    /// origin's own default: `Host: h` is `http://h` and `https://h`.
    pub(crate) fn is_origin(&self, origin: &str) -> bool {
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false;
        };
        let (Some((o_host, o_port)), Some((host, port))) = (
            split_authority(authority),
            self.authority.and_then(split_authority),
        ) else {
            return false;
        };
        if o_host.is_empty() || !o_host.eq_ignore_ascii_case(host) {
            return false;
        }
        let Some(o_port) = o_port.or_else(|| default_port(scheme)) else {
            return false;
        };
        if self.any_port {
            return true;
        }
        match port.or_else(|| self.scheme.and_then(default_port)) {
            Some(port) => port == o_port,
            None => Some(o_port) == default_port(scheme),
        }
    }
}

/// The default port of a scheme an `Origin` or a proxy may name.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// `host[:port]` (IPv6 in brackets, kept) into the host and the port;
/// `None` when the port is not a number.
pub(crate) fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let close = v6.find(']')? + 1;
            let (host, after) = authority.split_at(close + 1);
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':')?)),
            }
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    match port {
        None => Some((host, None)),
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some((host, Some(p.parse().ok()?)))
        }
        Some(_) => None,
    }
}
