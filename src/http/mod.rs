//! Just enough HTTP/1.1: reading one request head with a size limit and a
//! deadline, and writing one response. wsportal answers exactly one request
//! per TCP connection (then upgrades, streams events, or closes).
//!
//! The http layer: one request (head, body, query, route, a trusted
//! proxy's headers) and one response, as bytes. May use `transport` and
//! the base types; knows nothing of connections, hooks or the server.

pub(crate) mod body;
pub(crate) mod forwarded;
pub(crate) mod headers;
pub(crate) mod query;
pub(crate) mod route;
pub(crate) mod site;

use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::Instant;

pub(crate) use headers::{has_token, header_count, header_text, header_value, pairs, Headers};

/// The HTTP request that opened a connection, as hooks see it.
#[derive(Debug, Clone)]
pub struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) headers: Headers,
    pub(crate) peer: SocketAddr,
    pub(crate) params: Vec<(String, String)>,
    /// What the server learned besides the head (default for the
    /// client's own request).
    pub(crate) extra: Extra,
}

/// What a server knows of a request besides its head.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extra {
    /// An HTTP/1.0 request (which cannot upgrade).
    pub(crate) http10: bool,
    /// The body, read for a handler (empty for anything else).
    pub(crate) body: Vec<u8>,
    /// Served over TLS (`Server::start_tls`).
    pub(crate) tls: bool,
    /// What a trusted proxy said (`Config::trusted_proxies`).
    pub(crate) forwarded: Option<forwarded::Forwarded>,
}

impl Request {
    /// The method, e.g. `GET`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The path, without the query string (not percent-decoded). For a
    /// request whose target is a whole URL (`GET http://host/a?b`), the
    /// URL's path (`/a`).
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

    /// The first value of a header, by case-insensitive name, without
    /// leading and trailing spaces. Bytes of a value that are not UTF-8
    /// (obs-text, such as a Latin-1 cookie) read as U+FFFD. `Host` is the
    /// target's authority when the target is a whole URL (RFC 9112 section
    /// 3.2.2).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(self.headers.iter(), name)
    }

    /// All headers, in the order received (values as [`Request::header`]
    /// gives them; for a whole-URL target, `Host` comes first and is the
    /// URL's authority).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter()
    }

    /// The request's body, for a handler
    /// ([`Server::define_handler_for`](crate::Server::define_handler_for)):
    /// read whole before the handler runs, as `Content-Length` or
    /// `chunked` framed it, at most
    /// [`Config::max_body_size`](crate::Config::max_body_size) bytes.
    /// Empty for a request without one, and for WebSocket handshakes,
    /// event streams and pages (they never read a body).
    pub fn body(&self) -> &[u8] {
        &self.extra.body
    }

    /// The client's address. Behind a trusted proxy
    /// ([`Config::trusted_proxies`](crate::Config::trusted_proxies)), the
    /// one the proxy names in `Forwarded` or `X-Forwarded-For` (port 0 when
    /// it gives none); otherwise the socket's peer.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The trusted proxy this request came through (the socket's peer),
    /// when it came through one
    /// ([`Config::trusted_proxies`](crate::Config::trusted_proxies)).
    pub fn proxy_addr(&self) -> Option<SocketAddr> {
        self.extra.forwarded.as_ref().and_then(|f| f.proxy)
    }

    /// The scheme the client used: `https` over TLS
    /// (`Server::start_tls`, feature `tls`) or when a trusted
    /// proxy says so in `X-Forwarded-Proto` or `Forwarded: proto=`, else
    /// `http`.
    pub fn scheme(&self) -> &str {
        match self
            .extra
            .forwarded
            .as_ref()
            .and_then(|f| f.proto.as_deref())
        {
            Some(proto) => proto,
            None if self.extra.tls => "https",
            None => "http",
        }
    }

    /// Where the client addressed this request, for the same-origin check:
    /// its `Host`; from a trusted proxy, the forwarded host and scheme, and
    /// host names alone when the host it gives has no port (nginx's
    /// `proxy_set_header Host $host` drops it; cookies, what the check
    /// protects, are shared between a host's ports anyway).
    pub(crate) fn site(&self) -> site::Site<'_> {
        let Some(fwd) = &self.extra.forwarded else {
            return site::Site {
                authority: self.header("host"),
                ..site::Site::default()
            };
        };
        let authority = fwd.host.as_deref().or_else(|| self.header("host"));
        let any_port = authority
            .and_then(site::split_authority)
            .is_some_and(|(_, port)| port.is_none());
        site::Site {
            authority,
            scheme: fwd.proto.as_deref(),
            any_port,
        }
    }

    /// Every element of a comma-separated header (RFC 9110 section 5.6.1),
    /// over all its occurrences, trimmed; empty elements skipped.
    pub(crate) fn header_list<'r>(&'r self, name: &'r str) -> impl Iterator<Item = &'r str> + 'r {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    /// Whether a comma-separated header contains `token` (case-insensitive),
    /// looking at every occurrence of the header.
    pub(crate) fn header_has_token(&self, name: &str, token: &str) -> bool {
        has_token(self.headers.iter(), name, token)
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
///
/// The head is parsed by `httparse` as it arrives, so a malformed one is
/// refused as soon as the line with its first bad byte is in, without
/// waiting for the rest.
pub(crate) fn read_head(
    stream: &mut (impl Read + ?Sized),
    set_timeout: &mut dyn FnMut(std::time::Duration) -> io::Result<()>,
    peer: SocketAddr,
    max: usize,
    deadline: Instant,
) -> Result<(Request, Vec<u8>), HeadError> {
    // 2 KiB: a browser's head (user agent, cookies) is often over 512
    // bytes, and a buffer above glibc's per-thread cache limit (1,032
    // bytes) goes back to the shared heap when freed, not into a cache
    // that this thread keeps for the connection's whole life.
    let mut buf = vec![0u8; FIRST_READ.min(max)];
    let mut len = 0;
    // Parsed up to here: the head is parsed again only once a line has
    // ended since, so a client sending a byte at a time costs a parse per
    // line, not per byte.
    let mut parsed = 0;
    loop {
        if buf[parsed..len].contains(&b'\n') {
            parsed = len;
            if let Some((req, end)) = parse_partial(&buf[..len], peer)? {
                return Ok((req, buf[end..len].to_vec()));
            }
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

/// Whether `s` is an HTTP token (RFC 9110): method names, header names...
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Checks a header that application code wants written (RFC 9110 section
/// 5.5): the name a token, the value without CR, LF, NUL or any other
/// control character but HTAB. `Err` says what is wrong.
pub(crate) fn check_header(name: &str, value: &str) -> Result<(), &'static str> {
    if !is_token(name) {
        return Err("the name is not an http token");
    }
    if value.chars().any(|c| c.is_ascii_control() && c != '\t') {
        return Err("the value contains CR, LF, NUL or another control character");
    }
    Ok(())
}

/// Why `httparse` refused a head, as the reason of a 400.
fn httparse_reason(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "bad header line",
        httparse::Error::HeaderValue => "bad header value",
        httparse::Error::NewLine => "bad line ending",
        httparse::Error::Token | httparse::Error::Status => "bad request line",
        httparse::Error::Version => "unsupported http version",
        httparse::Error::TooManyHeaders => "too many headers",
    }
}

/// The first read of a request head, in bytes.
const FIRST_READ: usize = 2048;

/// Runs `parse` with a header array large enough for `buf`: it starts at
/// 64 headers (fewer for a head too short to hold them) and doubles on
/// `TooManyHeaders` (a head of `n` bytes has at most `n / 3` headers, `a:`
/// and a line end).
///
/// 64 headers are 2 KiB, like [`read_head`]'s first buffer: above glibc's
/// per-thread cache limit (1,032 bytes), so the array goes back to the
/// shared heap when freed instead of staying in the cache of a thread
/// that then idles for the connection's life (about 1 KiB per idle
/// connection).
pub(crate) fn with_headers<'b, T>(
    buf: &'b [u8],
    mut parse: impl FnMut(&mut [httparse::Header<'b>]) -> Result<T, httparse::Error>,
) -> Result<T, httparse::Error> {
    let most = buf.len() / 3 + 1;
    let mut n = 64.min(most);
    loop {
        let mut headers = vec![httparse::EMPTY_HEADER; n];
        match parse(&mut headers) {
            Err(httparse::Error::TooManyHeaders) if n < most => n = (n * 2).min(most),
            other => return other,
        }
    }
}

/// Parses a complete request head (tests build requests with it).
#[cfg(test)]
pub(crate) fn parse_head(head: &[u8], peer: SocketAddr) -> Result<Request, HeadError> {
    match parse_partial(head, peer)? {
        Some((req, _)) => Ok(req),
        None => Err(HeadError::Malformed("incomplete head")),
    }
}

/// Parses the start of `buf` as a request head: `Ok(None)` while it is
/// incomplete, else the request and the index just past the head.
///
/// `httparse` decides the syntax: a line may end in CRLF or a bare LF (RFC
/// 9112 section 2.2), so a bare LF never stays inside a value; obs-fold, a
/// header line without a colon, a control character in a value and a
/// request line that is not `METHOD TARGET HTTP/1.x` are refused. Header
/// values may carry obs-text (bytes 0x80-0xFF). Then: an HTTP/1.1 request
/// needs exactly one `Host`, and the target is a path (origin-form) or an
/// `http://` / `https://` URL (absolute-form, RFC 9112 section 3.2.2), whose
/// authority replaces the `Host` header.
pub(crate) fn parse_partial(
    buf: &[u8],
    peer: SocketAddr,
) -> Result<Option<(Request, usize)>, HeadError> {
    let parsed = with_headers(buf, |headers| {
        let mut req = httparse::Request::new(headers);
        Ok(match req.parse(buf)? {
            httparse::Status::Partial => None,
            httparse::Status::Complete(end) => Some((
                // Complete means every part below is there, because httparse
                // fills them all before it reports the end of the head.
                req.method.unwrap_or_default().to_owned(),
                req.path.unwrap_or_default().to_owned(),
                req.version.unwrap_or_default(),
                compact(req.headers),
                end,
            )),
        })
    });
    let Some((method, target, version, mut headers, end)) =
        parsed.map_err(|e| HeadError::Malformed(httparse_reason(e)))?
    else {
        return Ok(None);
    };
    let hosts = header_count(headers.iter(), "host");
    if version == 1 && hosts == 0 {
        return Err(HeadError::Malformed("missing Host header"));
    }
    if hosts > 1 {
        return Err(HeadError::Malformed("more than one Host header"));
    }
    let origin_form = match absolute_form(&target) {
        Some(Ok((authority, rest))) => {
            let others = headers
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("host"));
            headers = std::iter::once(("Host", authority)).chain(others).collect();
            rest.to_owned()
        }
        Some(Err(why)) => return Err(HeadError::Malformed(why)),
        None if target.starts_with('/') => target,
        None => return Err(HeadError::Malformed("request target is not a path")),
    };
    let (path, query) = match origin_form.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (origin_form, None),
    };
    let req = Request {
        method,
        path,
        query,
        headers,
        peer,
        params: Vec::new(),
        extra: Extra {
            http10: version == 0,
            ..Extra::default()
        },
    };
    Ok(Some((req, end)))
}

/// httparse's fields as a request keeps them: values as [`header_text`]
/// gives them, in one buffer sized once.
fn compact(fields: &[httparse::Header<'_>]) -> Headers {
    let bytes = fields.iter().map(|h| h.name.len() + h.value.len()).sum();
    let mut headers = Headers::with_capacity(fields.len(), bytes);
    for h in fields {
        headers.push(h.name, &header_text(h.value));
    }
    headers
}

/// Splits an absolute-form target `http://authority/path?query` into its
/// authority and origin-form rest (`/` when the path is empty); `None` when
/// the target is not an `http` or `https` URL.
fn absolute_form(target: &str) -> Option<Result<(&str, String), &'static str>> {
    let (scheme, rest) = target.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() || authority.contains('@') {
        return Some(Err("bad authority in the request target"));
    }
    Some(Ok((
        authority,
        match path.strip_prefix('?') {
            Some(q) => format!("/?{q}"),
            None if path.is_empty() => "/".to_owned(),
            None => path.to_owned(),
        },
    )))
}

/// The reason phrase for the statuses wsportal writes.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
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
    let size: usize = headers.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
    let mut out = Vec::with_capacity(48 + size + body.len());
    // Pieces, not `write!`: the formatting machinery's frames would be the
    // deepest point of every connection thread's stack (see
    // `server/request.rs`, `handle`).
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status_digits(status).as_slice());
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (k, v) in headers {
        for piece in [k.as_bytes(), b": ", v.as_bytes(), b"\r\n"] {
            out.extend_from_slice(piece);
        }
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// A status code's three digits (100-999; others are refused when a
/// `Reject` is made).
fn status_digits(status: u16) -> [u8; 3] {
    let s = status.min(999);
    [
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ]
}

/// Decodes `%XX` escapes (exactly two hex digits); invalid escapes stay
/// as they are, and bytes that do not form UTF-8 become U+FFFD (query
/// values; path parameters use [`percent_decode_utf8`]).
pub(crate) fn percent_decode(s: &str) -> String {
    String::from_utf8_lossy(&percent_bytes(s)).into_owned()
}

/// Decodes `%XX` escapes as [`percent_decode`] does, but `None` when the
/// result is not UTF-8 (so `%FF` and `%FE` cannot both become U+FFFD).
pub(crate) fn percent_decode_utf8(s: &str) -> Option<String> {
    String::from_utf8(percent_bytes(s)).ok()
}

fn percent_bytes(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let [b'%', hi, lo, ..] = bytes[i..] {
            if let (Some(hi), Some(lo)) = (hex(hi), hex(lo)) {
                out.push((hi << 4) | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The value of one hex digit.
fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
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

    fn malformed(head: &[u8]) -> &'static str {
        match parse_head(head, peer()) {
            Err(HeadError::Malformed(why)) => why,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(head)),
        }
    }

    #[test]
    fn refuses_malformed_heads() {
        for head in [
            &b"GET /\r\n\r\n"[..],
            b"GET / HTTP/2\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nbad header\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nbad name: x\r\n\r\n",
            b"GET * HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET ws://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
        ] {
            malformed(head);
        }
    }

    #[test]
    fn obs_fold_is_refused() {
        let head = b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n";
        assert_eq!(malformed(head), "bad header line");
    }

    #[test]
    fn a_bare_lf_ends_a_line_and_never_stays_in_a_value() {
        let head = b"GET / HTTP/1.1\r\nHost: h\r\nX-Test: a\nUpgrade: websocket\r\n\r\n";
        let r = parse_head(head, peer()).unwrap();
        assert_eq!(r.header("x-test"), Some("a"));
        assert_eq!(r.header("upgrade"), Some("websocket"));
        assert!(r.headers().all(|(_, v)| !v.contains(['\r', '\n'])));
    }

    #[test]
    fn non_ascii_in_a_value_is_read_lossily() {
        let head = b"GET / HTTP/1.1\r\nHost: h\r\nCookie: name=caf\xe9\r\nX: caf\xc3\xa9 \r\n\r\n";
        let r = parse_head(head, peer()).unwrap();
        assert_eq!(r.header("cookie"), Some("name=caf\u{FFFD}"));
        assert_eq!(r.header("x"), Some("caf\u{e9}"));
    }

    #[test]
    fn host_is_required_once_in_http_1_1() {
        assert_eq!(
            malformed(b"GET / HTTP/1.1\r\nX: y\r\n\r\n"),
            "missing Host header"
        );
        assert_eq!(
            malformed(b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"),
            "more than one Host header"
        );
        assert!(parse_head(b"GET / HTTP/1.0\r\n\r\n", peer()).is_ok());
    }

    #[test]
    fn accepts_an_absolute_form_target() {
        let head = b"GET http://example.com:81/chat/a?x=1 HTTP/1.1\r\nHost: other\r\nX: y\r\n\r\n";
        let r = parse_head(head, peer()).unwrap();
        assert_eq!((r.path(), r.query()), ("/chat/a", Some("x=1")));
        assert_eq!(r.header("host"), Some("example.com:81"));
        assert_eq!(r.headers().filter(|(k, _)| *k == "Host").count(), 1);
        let r = parse_head(b"GET HTTPS://h?q HTTP/1.1\r\nHost: h\r\n\r\n", peer()).unwrap();
        assert_eq!((r.path(), r.query()), ("/", Some("q")));
    }

    #[test]
    fn keeps_dot_segments_and_encoded_slashes_as_sent() {
        let r = parse_head(b"GET /a/../b%2Fc HTTP/1.1\r\nHost: h\r\n\r\n", peer()).unwrap();
        assert_eq!(r.path(), "/a/../b%2Fc");
    }

    #[test]
    fn many_headers_fit_and_a_partial_head_waits() {
        let mut head = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
        for i in 0..500 {
            head.push_str(&format!("X-{i}: {i}\r\n"));
        }
        head.push_str("\r\n");
        let r = parse_head(head.as_bytes(), peer()).unwrap();
        assert_eq!(r.headers().count(), 501);
        let cut = &head.as_bytes()[..head.len() - 1];
        assert!(parse_partial(cut, peer()).unwrap().is_none());
    }

    #[test]
    fn reads_with_leftover_and_limit() {
        let mut src: &[u8] = b"GET / HTTP/1.1\r\nHost: h\r\n\r\nabc";
        let far = Instant::now() + std::time::Duration::from_secs(5);
        let (r, rest) = read_head(&mut src, &mut |_| Ok(()), peer(), 1024, far).unwrap();
        assert_eq!(r.path(), "/");
        assert_eq!(rest, b"abc");
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(600));
        let mut src = long.as_bytes();
        let err = read_head(&mut src, &mut |_| Ok(()), peer(), 512, far).unwrap_err();
        assert!(matches!(err, HeadError::TooLarge));
    }

    /// Hands out one byte per read.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            match self.0.split_first() {
                Some((b, rest)) if !out.is_empty() => {
                    out[0] = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn reads_a_trickled_head_and_refuses_a_bad_line_before_the_end() {
        let far = Instant::now() + std::time::Duration::from_secs(5);
        let mut src = Trickle(b"GET /x HTTP/1.1\nHost: h\n\nrest");
        let (r, rest) = read_head(&mut src, &mut |_| Ok(()), peer(), 1024, far).unwrap();
        assert_eq!((r.path(), rest.as_slice()), ("/x", &b""[..]));
        // Refused at the bad line: the head never ends, yet no 431 or EOF.
        let mut src = Trickle(b"GET / HTTP/1.1\r\nHost: h\r\nno colon\r\nX: y\r\n");
        let err = read_head(&mut src, &mut |_| Ok(()), peer(), 1024, far).unwrap_err();
        assert!(
            matches!(err, HeadError::Malformed("bad header line")),
            "{err:?}"
        );
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("a%20b%zz%4"), "a b%zz%4");
        assert_eq!(percent_decode("a%+41%-1%4"), "a%+41%-1%4");
        assert_eq!(percent_decode("%c3%A9"), "\u{e9}");
        assert_eq!(percent_decode_utf8("%c3%A9").as_deref(), Some("\u{e9}"));
        assert_eq!(percent_decode_utf8("%FF"), None);
        assert_eq!(percent_decode_utf8("%FE"), None);
    }

    #[test]
    fn checks_headers_to_write() {
        assert!(check_header("X-Room", "a b\tc \u{e9}").is_ok());
        for (k, v) in [
            ("X", "a\r\nSet-Cookie: x"),
            ("X", "a\nb"),
            ("X", "a\0"),
            ("X", "\x7f"),
            ("X Y", "a"),
            ("", "a"),
            ("X:", "a"),
        ] {
            assert!(check_header(k, v).is_err(), "{k:?} {v:?}");
        }
    }
}
