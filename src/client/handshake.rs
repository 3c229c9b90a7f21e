//! The client's side of the opening handshake (RFC 6455, section 4.1): the
//! URL, the request we write, and the checks on the server's answer.
//!
//! Everything here works on bytes and strings, so it is tested without sockets.

use tungstenite::http::Uri;

use crate::http::{has_token, header_value, is_token, parse_header_lines};
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
pub(crate) fn parse_url(url: &str) -> Result<Target, Error> {
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
        port: authority
            .port_u16()
            .unwrap_or(if secure { 443 } else { 80 }),
        host_header,
        path,
        query: uri.query().map(str::to_owned),
        secure,
    })
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
        if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(Error::InvalidInput("a header value contains CR, LF or NUL"));
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
        header_value(&self.headers, name)
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        has_token(&self.headers, name, token)
    }

    /// The `Content-Length`, if there is a valid one.
    pub(crate) fn content_length(&self) -> Option<usize> {
        self.header("content-length")?.trim().parse().ok()
    }
}

/// Parses a response head (status line and headers, up to the blank line).
pub(crate) fn parse_response(head: &[u8]) -> Result<Response, Error> {
    let bad = Error::Protocol("handshake: malformed http response");
    let text = std::str::from_utf8(head)
        .map_err(|_| Error::Protocol("handshake: response head is not utf-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(bad);
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(bad);
    }
    let status: u16 = match code.parse() {
        Ok(s) if (100..1000).contains(&s) && code.len() == 3 => s,
        _ => return Err(bad),
    };
    let headers = parse_header_lines(lines).ok_or(bad)?;
    Ok(Response { status, headers })
}

/// Checks a `101` answer; returns the agreed subprotocol.
pub(crate) fn verify(
    response: &Response,
    key: &str,
    offered: &[String],
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
    if response
        .header("sec-websocket-extensions")
        .is_some_and(|v| !v.trim().is_empty())
    {
        return Err(Error::Protocol(
            "handshake: the server chose an extension we did not offer",
        ));
    }
    match response.header("sec-websocket-protocol").map(str::trim) {
        None | Some("") => Ok(None),
        Some(p) if offered.iter().any(|o| o == p) => Ok(Some(p.to_owned())),
        Some(_) => Err(Error::Protocol(
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
        for bad in ["http://h/", "h:80/x", "ws://", "not a url"] {
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

    fn answer(extra: &str) -> Response {
        let head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nConnection: keep-alive, upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n{extra}\r\n"
        );
        parse_response(head.as_bytes()).unwrap()
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
        let no_upgrade = parse_response(b"HTTP/1.1 101 OK\r\nConnection: upgrade\r\n\r\n").unwrap();
        assert!(verify(&no_upgrade, KEY, &[]).is_err());
    }

    #[test]
    fn parses_refusals() {
        let r = parse_response(
            b"HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Length: 3\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.status, 401);
        assert_eq!(
            r.headers[0],
            ("WWW-Authenticate".to_owned(), "Bearer".to_owned())
        );
        assert_eq!(r.content_length(), Some(3));
        for bad in [
            &b"HTTP/2 200\r\n\r\n"[..],
            b"HTTP/1.1 abc\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nnocolon\r\n\r\n",
        ] {
            assert!(parse_response(bad).is_err());
        }
        assert_eq!(
            crate::http::find_head_end(b"HTTP/1.1 200 OK\r\n\r\nbody"),
            Some(19)
        );
    }
}
