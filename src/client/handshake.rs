//! The client's side of the opening handshake (RFC 6455, section 4.1): the
//! URL, the request we write, and the checks on the server's answer.
//!
//! Everything here works on bytes and strings, so it is tested without sockets.

use tungstenite::http::Uri;

use crate::http::{check_header, has_token, header_text, header_value, is_token, pairs};
use crate::Error;

/// Where a `ws://` URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The host to connect to (without IPv6 brackets).
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The `Host` header: the URL's authority without user information.
    pub(crate) host_header: String,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    /// `wss://`: over TLS.
    pub(crate) secure: bool,
}

impl Target {
    /// The request target: path and query.
    pub(crate) fn resource(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

/// Parses `ws://host[:port][/path][?query]`.
///
/// # Errors
/// [`Error::InvalidInput`] for anything else, a fragment included (RFC 6455
/// section 3: fragment identifiers must not be used; browsers throw).
pub(crate) fn parse_url(url: &str) -> Result<Target, Error> {
    if url.contains('#') {
        return Err(Error::InvalidInput(
            "the url has a fragment (#...), which a websocket url must not have",
        ));
    }
    let uri: Uri = url
        .parse()
        .map_err(|_| Error::InvalidInput("the url is not a valid ws:// url"))?;
    let secure = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("ws") => false,
        Some(s) if s.eq_ignore_ascii_case("wss") => true,
        _ => {
            return Err(Error::InvalidInput(
                "the url must start with ws:// or wss://",
            ))
        }
    };
    let authority = uri
        .authority()
        .ok_or(Error::InvalidInput("the url has no host"))?;
    let host = authority.host();
    if host.is_empty() {
        return Err(Error::InvalidInput("the url has no host"));
    }
    let host_header = match authority.as_str().rsplit_once('@') {
        Some((_, h)) => h.to_owned(),
        None => authority.as_str().to_owned(),
    };
    let path = match uri.path() {
        "" => "/".to_owned(),
        p => p.to_owned(),
    };
    Ok(Target {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port: port(&host_header, secure)?,
        host_header,
        path,
        query: uri.query().map(str::to_owned),
        secure,
    })
}

/// The port of an authority (`host`, `host:port`, `[v6]:port`): 80 when
/// there is none or it is empty (RFC 3986 section 3.2.3).
///
/// # Errors
/// [`Error::InvalidInput`] unless it is a number from 1 to 65535.
fn port(authority: &str, secure: bool) -> Result<u16, Error> {
    let after_host = match authority.rfind(']') {
        Some(i) => &authority[i + 1..],
        None => authority,
    };
    match after_host.rsplit_once(':') {
        None | Some((_, "")) => Ok(if secure { 443 } else { 80 }),
        Some((_, p)) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
            _ => Err(Error::InvalidInput(
                "the url's port is not a number from 1 to 65535",
            )),
        },
    }
}

/// Headers the handshake writes itself; a caller may not set them.
const RESERVED: [&str; 6] = [
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

/// The headers of the opening request, in the order they are written:
/// `Host` (unless `extra` has one), the handshake headers, the offered
/// subprotocols, then `extra`.
pub(crate) fn request_headers(
    target: &Target,
    key: &str,
    protocols: &[String],
    extra: &[(String, String)],
) -> Result<Vec<(String, String)>, Error> {
    for p in protocols {
        if !is_token(p) {
            return Err(Error::InvalidInput(
                "a subprotocol name is not an http token",
            ));
        }
    }
    for (name, value) in extra {
        if !is_token(name) {
            return Err(Error::InvalidInput("a header name is not an http token"));
        }
        if check_header(name, value).is_err() {
            return Err(Error::InvalidInput(
                "a header value contains CR, LF, NUL or another control character",
            ));
        }
        if RESERVED.iter().any(|r| name.eq_ignore_ascii_case(r)) {
            return Err(Error::InvalidInput(
                "this header is written by the handshake (use protocols() for subprotocols)",
            ));
        }
    }
    let mut headers = Vec::with_capacity(6 + extra.len());
    if !extra.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        headers.push(("Host".to_owned(), target.host_header.clone()));
    }
    headers.push(("Upgrade".to_owned(), "websocket".to_owned()));
    headers.push(("Connection".to_owned(), "Upgrade".to_owned()));
    headers.push(("Sec-WebSocket-Key".to_owned(), key.to_owned()));
    headers.push(("Sec-WebSocket-Version".to_owned(), "13".to_owned()));
    if !protocols.is_empty() {
        headers.push(("Sec-WebSocket-Protocol".to_owned(), protocols.join(", ")));
    }
    headers.extend(extra.iter().cloned());
    Ok(headers)
}

/// The whole request head, ready to be written in one go.
pub(crate) fn request_bytes(target: &Target, headers: &[(String, String)]) -> Vec<u8> {
    let mut out = format!("GET {} HTTP/1.1\r\n", target.resource());
    for (k, v) in headers {
        out.push_str(k);
        out.push_str(": ");
        out.push_str(v);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) status: u16,
    /// As received: original case and order.
    pub(crate) headers: Vec<(String, String)>,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        header_value(pairs(&self.headers), name)
    }

    /// Every value of a header, by case-insensitive name.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        has_token(pairs(&self.headers), name, token)
    }

    /// How the body is delimited (RFC 9112 section 6.3; we always send `GET`).
    pub(crate) fn body_length(&self) -> BodyLength {
        if self.status < 200 || self.status == 204 || self.status == 304 {
            return BodyLength::Empty;
        }
        if let Some(codings) = self.all("transfer-encoding").last() {
            let last = codings.rsplit(',').next().unwrap_or("").trim();
            return if last.eq_ignore_ascii_case("chunked") {
                BodyLength::Chunked
            } else {
                BodyLength::UntilClose
            };
        }
        // Every Content-Length (and every item of a list) must agree.
        let mut lengths = self.all("content-length").flat_map(|v| v.split(','));
        let Some(first) = lengths.next() else {
            return BodyLength::UntilClose;
        };
        let parse = |v: &str| {
            let v = v.trim();
            v.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| v.parse::<usize>().ok())
                .flatten()
        };
        match parse(first) {
            Some(n) if lengths.all(|v| parse(v) == Some(n)) => BodyLength::Exactly(n),
            _ => BodyLength::UntilClose,
        }
    }
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyLength {
    /// No body: 1xx, 204 and 304.
    Empty,
    /// `Content-Length` bytes.
    Exactly(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes the connection.
    UntilClose,
}

/// Decodes a chunked body as its bytes arrive (RFC 9112 section 7.1);
/// chunk extensions and trailers are skipped.
#[derive(Debug, Default)]
pub(crate) struct Dechunker {
    /// Bytes received but not decoded yet (an incomplete line).
    pending: Vec<u8>,
    /// Data bytes left in the current chunk.
    data_left: u64,
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data,
    DataEnd,
    Trailers,
    Done,
}

impl Dechunker {
    /// Feeds received bytes, appending the data to `out`. `Ok(true)` once
    /// the last chunk and the trailers are through.
    ///
    /// # Errors
    /// `Err(())` when the bytes are not a chunked body.
    pub(crate) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<bool, ()> {
        self.pending.extend_from_slice(input);
        let mut at = 0;
        loop {
            let rest = &self.pending[at..];
            match self.state {
                ChunkState::Done => break,
                ChunkState::Size => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        at += used;
                        self.data_left = size;
                        self.state = if size == 0 {
                            ChunkState::Trailers
                        } else {
                            ChunkState::Data
                        };
                    }
                    Ok(httparse::Status::Partial) => break,
                    Err(_) => return Err(()),
                },
                ChunkState::Data => {
                    if rest.is_empty() {
                        break;
                    }
                    let n = rest
                        .len()
                        .min(usize::try_from(self.data_left).unwrap_or(usize::MAX));
                    out.extend_from_slice(&rest[..n]);
                    at += n;
                    self.data_left -= n as u64;
                    if self.data_left == 0 {
                        self.state = ChunkState::DataEnd;
                    }
                }
                ChunkState::DataEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        at += 2;
                        self.state = ChunkState::Size;
                    }
                    [] | [b'\r'] => break,
                    _ => return Err(()),
                },
                ChunkState::Trailers => match rest.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        at += i + 1;
                        if rest[..i] == b""[..] || rest[..i] == b"\r"[..] {
                            self.state = ChunkState::Done;
                        }
                    }
                    None => break,
                },
            }
        }
        self.pending.drain(..at);
        Ok(self.state == ChunkState::Done)
    }
}

/// Parses the start of `buf` as a response head: `Ok(None)` while it is
/// incomplete, else the response and the index just past the head.
///
/// `httparse` decides the syntax, as for requests, with one leniency RFC
/// 9112 section 5.2 asks of a user agent: an obs-fold (a line starting with
/// a space or tab) continues the previous value, and is read as spaces.
pub(crate) fn parse_response(buf: &[u8]) -> Result<Option<(Response, usize)>, Error> {
    let mut config = httparse::ParserConfig::default();
    config.allow_obsolete_multiline_headers_in_responses(true);
    let parsed = crate::http::with_headers(buf, |headers| {
        let mut res = httparse::Response::new(headers);
        Ok(match config.parse_response(&mut res, buf)? {
            httparse::Status::Partial => None,
            // Complete means the status is there, because httparse reads it
            // before any header.
            httparse::Status::Complete(end) => Some((
                res.code.unwrap_or_default(),
                res.headers
                    .iter()
                    .map(|h| (h.name.to_owned(), unfold(h.value)))
                    .collect(),
                end,
            )),
        })
    });
    match parsed {
        // httparse takes any three digits; RFC 9110 section 15 has 100-599.
        Ok(Some((status, _, _))) if !(100..=599).contains(&status) => Err(Error::Protocol(
            "handshake: the status code is not between 100 and 599",
        )),
        Ok(Some((status, headers, end))) => Ok(Some((Response { status, headers }, end))),
        Ok(None) => Ok(None),
        Err(httparse::Error::Version) => Err(Error::Protocol(
            "handshake: the answer is not HTTP/1.0 or HTTP/1.1",
        )),
        Err(_) => Err(Error::Protocol("handshake: malformed http response")),
    }
}

/// A response header value with obs-folds (CR, LF and the following
/// whitespace) replaced by spaces.
fn unfold(value: &[u8]) -> String {
    let flat: Vec<u8> = value
        .iter()
        .map(|&b| if matches!(b, b'\r' | b'\n') { b' ' } else { b })
        .collect();
    header_text(&flat).into_owned()
}

/// Checks a `101` answer; returns the agreed subprotocol.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn verify(
    response: &Response,
    key: &str,
    offered: &[String],
) -> Result<Option<String>, Error> {
    verify_offering(response, key, offered, false)
}

/// Checks a `101` answer (as `verify` does), for a request that offered
/// extensions (`extensions`): the caller checks the answer's
/// `Sec-WebSocket-Extensions` against its offer.
pub(crate) fn verify_offering(
    response: &Response,
    key: &str,
    offered: &[String],
    extensions: bool,
) -> Result<Option<String>, Error> {
    if !response.has_token("upgrade", "websocket") {
        return Err(Error::Protocol(
            "handshake: the answer has no Upgrade: websocket",
        ));
    }
    if !response.has_token("connection", "upgrade") {
        return Err(Error::Protocol(
            "handshake: the answer has no Connection: Upgrade",
        ));
    }
    let expected = tungstenite::handshake::derive_accept_key(key.as_bytes());
    if response.header("sec-websocket-accept").map(str::trim) != Some(expected.as_str()) {
        return Err(Error::Protocol("handshake: wrong Sec-WebSocket-Accept"));
    }
    // Every occurrence counts (RFC 6455 section 4.1): an extension in a
    // second header is as much an extension we did not offer.
    if !extensions
        && response
            .all("sec-websocket-extensions")
            .any(|v| !v.trim().is_empty())
    {
        return Err(Error::Protocol(
            "handshake: the server chose an extension we did not offer",
        ));
    }
    let mut chosen = response
        .all("sec-websocket-protocol")
        .map(str::trim)
        .filter(|p| !p.is_empty());
    match (chosen.next(), chosen.next()) {
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err(Error::Protocol(
            "handshake: the server chose more than one subprotocol",
        )),
        (Some(p), None) if offered.iter().any(|o| o == p) => Ok(Some(p.to_owned())),
        (Some(_), None) => Err(Error::Protocol(
            "handshake: the server chose a subprotocol we did not offer",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let t = parse_url("ws://example.com:9001/chat/a?x=1&y").unwrap();
        assert_eq!(t.host, "example.com");
        assert_eq!(t.port, 9001);
        assert_eq!(t.host_header, "example.com:9001");
        assert_eq!(t.resource(), "/chat/a?x=1&y");
        let t = parse_url("ws://[::1]").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("::1", 80, "/"));
        assert_eq!(t.host_header, "[::1]");
        let t = parse_url("WS://user:pw@h/p").unwrap();
        assert_eq!(t.host_header, "h");
        let t = parse_url("wss://[::1]/p").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.secure), ("::1", 443, true));
        for bad in [
            "http://h/",
            "h:80/x",
            "ws://",
            "not a url",
            "ws://h/p#f",
            "ws://h/#",
        ] {
            assert!(
                matches!(parse_url(bad), Err(Error::InvalidInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn writes_the_request() {
        let t = parse_url("ws://h:1/p?q").unwrap();
        let extra = [("Authorization".to_owned(), "Bearer x".to_owned())];
        let headers = request_headers(&t, "KEY", &["a".into(), "b".into()], &extra).unwrap();
        let text = String::from_utf8(request_bytes(&t, &headers)).unwrap();
        assert_eq!(
            text,
            "GET /p?q HTTP/1.1\r\nHost: h:1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: KEY\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: a, b\r\nAuthorization: Bearer x\r\n\r\n"
        );
        let host = [("host".to_owned(), "other".to_owned())];
        let headers = request_headers(&t, "K", &[], &host).unwrap();
        assert_eq!(
            headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("host"))
                .count(),
            1
        );
        for (k, v) in [("Upgrade", "x"), ("bad name", "x"), ("X", "a\r\nb: c")] {
            let extra = [(k.to_owned(), v.to_owned())];
            assert!(request_headers(&t, "K", &[], &extra).is_err(), "{k}");
        }
        assert!(request_headers(&t, "K", &["a b".into()], &[]).is_err());
    }

    /// A complete response head, parsed.
    fn parse(head: &[u8]) -> Result<Response, Error> {
        match parse_response(head)? {
            Some((r, end)) => {
                assert_eq!(end, head.len());
                Ok(r)
            }
            None => panic!("incomplete: {:?}", String::from_utf8_lossy(head)),
        }
    }

    fn answer(extra: &str) -> Response {
        let head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nConnection: keep-alive, upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n{extra}\r\n"
        );
        parse(head.as_bytes()).unwrap()
    }

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    #[test]
    fn verifies_the_answer() {
        assert_eq!(verify(&answer(""), KEY, &[]).unwrap(), None);
        let offered = ["chat".to_owned()];
        let chosen = answer("Sec-WebSocket-Protocol: chat\r\n");
        assert_eq!(
            verify(&chosen, KEY, &offered).unwrap().as_deref(),
            Some("chat")
        );
        assert!(verify(&chosen, KEY, &[]).is_err());
        assert!(verify(&answer(""), "b3RoZXIga2V5IGF0IGFsbA==", &[]).is_err());
        assert!(verify(
            &answer("Sec-WebSocket-Extensions: permessage-deflate\r\n"),
            KEY,
            &[]
        )
        .is_err());
        let no_upgrade = parse(b"HTTP/1.1 101 OK\r\nConnection: upgrade\r\n\r\n").unwrap();
        assert!(verify(&no_upgrade, KEY, &[]).is_err());
    }

    #[test]
    fn every_extension_and_protocol_header_counts() {
        let second =
            answer("Sec-WebSocket-Extensions:\r\nSec-WebSocket-Extensions: permessage-deflate\r\n");
        assert!(verify(&second, KEY, &[]).is_err());
        let offered = ["a".to_owned(), "b".to_owned()];
        let two = answer("Sec-WebSocket-Protocol: a\r\nSec-WebSocket-Protocol: b\r\n");
        assert!(verify(&two, KEY, &offered).is_err());
        let empty_then_one = answer("Sec-WebSocket-Protocol:\r\nSec-WebSocket-Protocol: b\r\n");
        assert_eq!(
            verify(&empty_then_one, KEY, &offered).unwrap().as_deref(),
            Some("b")
        );
        let list = answer("Sec-WebSocket-Protocol: a, b\r\n");
        assert!(verify(&list, KEY, &offered).is_err());
    }

    #[test]
    fn a_folded_header_is_read_with_spaces() {
        let folded = answer("X-Long: one\r\n two\r\n");
        assert_eq!(
            folded
                .header("x-long")
                .map(|v| v.split_whitespace().collect::<Vec<_>>()),
            Some(vec!["one", "two"])
        );
        let folded = parse(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection:\r\n upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        )
        .unwrap();
        assert_eq!(verify(&folded, KEY, &[]).unwrap(), None);
    }

    #[test]
    fn obs_text_and_bare_lf_in_a_response() {
        let r = parse(b"HTTP/1.1 403 Forbidden\nSet-Cookie: a=caf\xe9\nX: y\n\n").unwrap();
        assert_eq!(r.header("set-cookie"), Some("a=caf\u{FFFD}"));
        assert_eq!(r.header("x"), Some("y"));
    }

    #[test]
    fn parses_refusals() {
        let r = parse(
            b"HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Length: 3\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.status, 401);
        assert_eq!(
            r.headers[0],
            ("WWW-Authenticate".to_owned(), "Bearer".to_owned())
        );
        assert_eq!(r.body_length(), BodyLength::Exactly(3));
        for bad in [
            &b"HTTP/2 200\r\n\r\n"[..],
            b"HTTP/1.1 abc\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nnocolon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
            // Found by the client_response fuzz target: three digits, no status.
            b"HTTP/1.0 001\r\nUpgrade: websocket\r\n\r\n",
            b"HTTP/1.1 099 Early\r\n\r\n",
            b"HTTP/1.1 600 Beyond\r\n\r\n",
        ] {
            assert!(
                parse_response(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let (r, end) = parse_response(b"HTTP/1.1 200 OK\r\n\r\nbody")
            .unwrap()
            .unwrap();
        assert_eq!((r.status, end), (200, 19));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nX: y\r\n")
            .unwrap()
            .is_none());
    }

    #[test]
    fn body_lengths() {
        let len = |head: &str| parse(head.as_bytes()).unwrap().body_length();
        assert_eq!(
            len("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"),
            BodyLength::Empty
        );
        assert_eq!(len("HTTP/1.1 304 Not Modified\r\n\r\n"), BodyLength::Empty);
        assert_eq!(len("HTTP/1.1 100 Continue\r\n\r\n"), BodyLength::Empty);
        assert_eq!(
            len("HTTP/1.1 403 Forbidden\r\n\r\n"),
            BodyLength::UntilClose
        );
        assert_eq!(
            len("HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n"),
            BodyLength::Chunked
        );
        assert_eq!(
            len("HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: gzip\r\n\r\n"),
            BodyLength::UntilClose
        );
        assert_eq!(
            len("HTTP/1.1 403 Forbidden\r\nContent-Length: 4, 4\r\n\r\n"),
            BodyLength::Exactly(4)
        );
        assert_eq!(
            len("HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n"),
            BodyLength::UntilClose
        );
        assert_eq!(
            len("HTTP/1.1 403 Forbidden\r\nContent-Length: +4\r\n\r\n"),
            BodyLength::UntilClose
        );
    }

    #[test]
    fn dechunks_in_any_pieces() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nrest";
        for cut in 1..wire.len() {
            let mut d = Dechunker::default();
            let mut out = Vec::new();
            let mut done = false;
            for piece in wire.chunks(cut) {
                done = d.feed(piece, &mut out).unwrap();
                if done {
                    break;
                }
            }
            assert!(done, "cut {cut}");
            assert_eq!(out, b"hello world", "cut {cut}");
        }
        let mut out = Vec::new();
        assert!(Dechunker::default().feed(b"zz\r\n", &mut out).is_err());
        assert!(Dechunker::default().feed(b"1\r\nab\r\n", &mut out).is_err());
    }

    #[test]
    fn bad_ports_are_invalid_input() {
        for bad in [
            "ws://127.0.0.1:99999/x",
            "ws://h:abc/",
            "ws://h:-1/",
            "ws://h:0/",
            "ws://h:+80/",
            "ws://[::1]:70000/",
        ] {
            assert!(
                matches!(parse_url(bad), Err(Error::InvalidInput(_))),
                "{bad}"
            );
        }
        assert_eq!(parse_url("ws://h:/").unwrap().port, 80);
        assert_eq!(parse_url("ws://[::1]:9/").unwrap().port, 9);
        assert_eq!(parse_url("ws://h:65535/").unwrap().port, 65535);
    }
}
