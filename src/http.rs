//! Just enough HTTP/1.1: reading one request head with a size limit and a
//! deadline, and writing one response. wsportal answers exactly one request
//! per TCP connection (then upgrades, streams events, or closes).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

/// The HTTP request that opened a connection, as hooks see it.
#[derive(Debug, Clone)]
pub struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) peer: SocketAddr,
    pub(crate) params: Vec<(String, String)>,
}

impl Request {
    /// The method, e.g. `GET`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The path, without the query string (not percent-decoded).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The query string after `?`, if any (not decoded).
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The value of a named path segment (`/chat/:room` gives `param("room")`),
    /// percent-decoded.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }

    /// All headers, in the order received.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Whether a comma-separated header contains `token` (case-insensitive),
    /// looking at every occurrence of the header.
    pub(crate) fn header_has_token(&self, name: &str, token: &str) -> bool {
        has_token(&self.headers, name, token)
    }
}

/// Why a request head could not be read.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// Longer than the limit: answer 431.
    TooLarge,
    /// Not HTTP/1.x as we can parse it: answer 400 with this reason.
    Malformed(&'static str),
    /// The deadline passed first.
    Timeout,
    /// The client closed or the socket failed before a whole head arrived.
    Io(io::Error),
}

/// Reads one request head. Returns the request and any bytes that followed it.
pub(crate) fn read_head(
    stream: &mut (impl Read + ?Sized),
    set_timeout: &mut dyn FnMut(std::time::Duration) -> io::Result<()>,
    peer: SocketAddr,
    max: usize,
    deadline: Instant,
) -> Result<(Request, Vec<u8>), HeadError> {
    let mut buf = vec![0u8; 512.min(max)];
    let mut len = 0;
    loop {
        if let Some(end) = find_head_end(&buf[..len]) {
            let req = parse_head(&buf[..end], peer)?;
            return Ok((req, buf[end..len].to_vec()));
        }
        if len == max {
            return Err(HeadError::TooLarge);
        }
        if len == buf.len() {
            buf.resize((buf.len() * 2).min(max), 0);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeadError::Timeout);
        }
        set_timeout(left).map_err(HeadError::Io)?;
        match stream.read(&mut buf[len..]) {
            Ok(0) => return Err(HeadError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(HeadError::Timeout)
            }
            Err(e) => return Err(HeadError::Io(e)),
        }
    }
}

/// Where the blank line ending a head is (index just past it).
pub(crate) fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// The first value of a header in `headers`, by case-insensitive name.
pub(crate) fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Whether a comma-separated header contains `token` (case-insensitive),
/// looking at every occurrence of the header.
pub(crate) fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Parses `name: value` lines up to the first empty one; `None` if one is malformed.
pub(crate) fn parse_header_lines<'a>(
    lines: impl Iterator<Item = &'a str>,
) -> Option<Vec<(String, String)>> {
    let mut headers = Vec::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        // A bare CR or LF (lines end with CRLF) would land in the value.
        if line.contains(['\r', '\n']) {
            return None;
        }
        let (name, value) = line.split_once(':')?;
        if !is_token(name) {
            return None;
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    Some(headers)
}

/// Whether `s` is an HTTP token (RFC 9110): method names, header names...
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

pub(crate) fn parse_head(head: &[u8], peer: SocketAddr) -> Result<Request, HeadError> {
    let text = std::str::from_utf8(head).map_err(|_| HeadError::Malformed("head is not utf-8"))?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    if request_line.contains(['\r', '\n']) {
        return Err(HeadError::Malformed("bad request line"));
    }
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed("bad request line"));
    };
    if !is_token(method) {
        return Err(HeadError::Malformed("bad method"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(HeadError::Malformed("unsupported http version"));
    }
    if !target.starts_with('/') {
        return Err(HeadError::Malformed("request target is not a path"));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (target, None),
    };
    let headers = parse_header_lines(lines).ok_or(HeadError::Malformed("bad header line"))?;
    Ok(Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query,
        headers,
        peer,
        params: Vec::new(),
    })
}

/// The reason phrase for the statuses wsportal writes.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Formats a whole response head (and body) into one buffer, so it goes out
/// in one write.
pub(crate) fn response_bytes(status: u16, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + body.len());
    // Writing to a Vec cannot fail.
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    for (k, v) in headers {
        let _ = write!(out, "{k}: {v}\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// Decodes `%XX` escapes; invalid escapes stay as they are.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            // Two hex digits: `from_str_radix` alone would also take a sign.
            let digits = &bytes[i + 1..i + 3];
            let hex = std::str::from_utf8(digits)
                .ok()
                .filter(|_| digits.iter().all(u8::is_ascii_hexdigit));
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    #[test]
    fn parses_a_request() {
        let head =
            b"GET /chat/a?x=1 HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n\r\n";
        let r = parse_head(head, peer()).unwrap();
        assert_eq!(r.path(), "/chat/a");
        assert_eq!(r.query(), Some("x=1"));
        assert_eq!(r.header("host"), Some("h"));
        assert!(r.header_has_token("connection", "upgrade"));
    }

    #[test]
    fn refuses_malformed_heads() {
        for head in [
            &b"GET /\r\n\r\n"[..],
            b"GET / HTTP/2\r\n\r\n",
            b"GET http://x/ HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
            b"GET / HTTP/1.1\r\nbad name: x\r\n\r\n",
        ] {
            assert!(matches!(
                parse_head(head, peer()),
                Err(HeadError::Malformed(_))
            ));
        }
    }

    #[test]
    fn reads_with_leftover_and_limit() {
        let mut src: &[u8] = b"GET / HTTP/1.1\r\n\r\nabc";
        let far = Instant::now() + std::time::Duration::from_secs(5);
        let (r, rest) = read_head(&mut src, &mut |_| Ok(()), peer(), 1024, far).unwrap();
        assert_eq!(r.path(), "/");
        assert_eq!(rest, b"abc");
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(600));
        let mut src = long.as_bytes();
        let err = read_head(&mut src, &mut |_| Ok(()), peer(), 512, far).unwrap_err();
        assert!(matches!(err, HeadError::TooLarge));
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("a%20b%zz%4"), "a b%zz%4");
    }
}
