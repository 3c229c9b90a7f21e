//! The server side of the RFC 6455 opening handshake: checks an upgrade
//! request, runs the resource's handshake hook, and builds the `101` answer.

use crate::session::resource::{Data, Resource};
use crate::{Reject, Request};

/// An accepted upgrade: what to write, and what the connection keeps.
pub(crate) struct Upgrade {
    pub(crate) response: Vec<u8>,
    pub(crate) protocol: Option<String>,
    pub(crate) data: Option<Data>,
    /// First `with_state` values, from the hook's `Accept::state`.
    pub(crate) states: crate::session::state::Seeds,
    /// The permessage-deflate agreement, if any (see [`negotiate`]).
    #[cfg(feature = "deflate")]
    pub(crate) deflate: Option<crate::wire::extension::Agreed>,
}

/// Whether a `Sec-WebSocket-Key` is base64 of 16 bytes, as RFC 6455 asks.
fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    b.len() == 24
        && b.ends_with(b"==")
        && b[..22]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

/// Checks the request and runs the hook. `Err` is the refusal to send.
pub(crate) fn upgrade(req: &Request, res: &Resource) -> Result<Upgrade, Reject> {
    let (accept, key) = admit(req, res)?;
    let offered: Vec<&str> = req.header_list("sec-websocket-protocol").collect();
    let protocol = res.choose_protocol(&offered);

    let mut headers = vec![
        ("Upgrade".to_owned(), "websocket".to_owned()),
        ("Connection".to_owned(), "Upgrade".to_owned()),
        (
            "Sec-WebSocket-Accept".to_owned(),
            tungstenite::handshake::derive_accept_key(key.as_bytes()),
        ),
    ];
    if let Some(p) = &protocol {
        headers.push(("Sec-WebSocket-Protocol".to_owned(), p.clone()));
    }
    headers.extend(accept.headers);
    Ok(Upgrade {
        response: crate::http::response_bytes(101, &headers, &[]),
        protocol,
        data: accept.data,
        states: accept.states,
        #[cfg(feature = "deflate")]
        deflate: None,
    })
}

/// The request's checks (RFC 6455 section 4.2.1, the origin) and the
/// `on_handshake` hook: its `Accept` and the client's key. Out of line: its
/// frame (refusals, log lines) is gone before the `101` is built, which
/// is the deepest point of every connection thread's stack (see
/// `server/request.rs`, `handle`).
#[inline(never)]
fn admit<'a>(req: &'a Request, res: &Resource) -> Result<(crate::Accept, &'a str), Reject> {
    if req.method != "GET" {
        return Err(Reject::new(405)
            .header("Allow", "GET")
            .body("method not allowed"));
    }
    // An HTTP/1.0 request cannot upgrade (RFC 6455 section 4.2.1 asks for
    // 1.1, RFC 9110 section 7.8 has a server ignore `Upgrade` in 1.0): it is
    // a plain GET to a WebSocket-only resource, so 426, with a reason that
    // names the usual cause (a proxy speaking 1.0 to us).
    if req.extra.http10 {
        return Err(Reject::new(426)
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .body("websocket needs http/1.1 (behind nginx: proxy_http_version 1.1)"));
    }
    if !req.header_has_token("upgrade", "websocket")
        || !req.header_has_token("connection", "upgrade")
    {
        return Err(Reject::new(426)
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .body("this resource speaks websocket only"));
    }
    // Each of these may appear once in a request (RFC 6455 section 11.3).
    for name in ["sec-websocket-key", "sec-websocket-version"] {
        if crate::http::header_count(req.headers.iter(), name) > 1 {
            return Err(Reject::new(400).body(format!("more than one {name} header")));
        }
    }
    if req.header("sec-websocket-version") != Some("13") {
        return Err(Reject::new(400)
            .header("Sec-WebSocket-Version", "13")
            .body("unsupported websocket version"));
    }
    let key = match req.header("sec-websocket-key") {
        Some(k) if valid_key(k) => k,
        _ => return Err(Reject::new(400).body("missing or malformed Sec-WebSocket-Key")),
    };
    let site = req.site();
    let host = req.header("host");
    for origin in req
        .headers()
        .filter(|(k, _)| k.eq_ignore_ascii_case("origin"))
    {
        if !res.origin_allowed(origin.1, &site) {
            log::debug!(
                "{}: origin {:?} refused for {} (Host {:?}; see Resource::origins)",
                req.peer_addr(),
                origin.1,
                req.path(),
                host.unwrap_or("")
            );
            return Err(Reject::new(403).body("origin not allowed"));
        }
    }
    let accept = match &res.on_handshake {
        // A panicking hook refuses the upgrade; it never takes the thread down.
        Some(hook) => match crate::session::guard::run(false, || hook(req)) {
            Ok(answer) => crate::session::resource::checked("on_handshake", req, answer)?,
            Err(p) => {
                log::error!(
                    "on_handshake hook panicked at {}: {}",
                    p.location,
                    p.message
                );
                return Err(Reject::new(500).body("internal error"));
            }
        },
        None => crate::Accept::new(),
    };
    Ok((accept, key))
}

/// Takes the first `permessage-deflate` offer the server can accept
/// (unless the resource refuses compression or the server has it off) and
/// adds the answer to the `101`.
#[cfg(feature = "deflate")]
pub(crate) fn negotiate(
    req: &Request,
    res: &Resource,
    ours: Option<&crate::Deflate>,
    up: &mut Upgrade,
) {
    let Some(ours) = ours.filter(|_| !res.no_compression) else {
        return;
    };
    let offers = req
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("sec-websocket-extensions"))
        .map(|(_, v)| v);
    let Some((agreed, answer)) = crate::wire::extension::accept(offers, ours) else {
        return;
    };
    // The response ends with the blank line: the header goes before it.
    let end = up.response.len() - 2;
    let line = format!("Sec-WebSocket-Extensions: {answer}\r\n");
    up.response.splice(end..end, line.bytes());
    up.deflate = Some(agreed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(extra: &str) -> Request {
        let head = format!("GET /x HTTP/1.1\r\nHost: h\r\n{extra}\r\n");
        crate::http::parse_head(head.as_bytes(), "127.0.0.1:9".parse().unwrap()).unwrap()
    }

    const GOOD: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

    #[test]
    fn accepts_the_rfc_example() {
        let up = upgrade(&req(GOOD), &Resource::new()).unwrap();
        let text = String::from_utf8(up.response).unwrap();
        assert!(text.starts_with("HTTP/1.1 101 "));
        assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    }

    #[test]
    fn refusals() {
        assert_eq!(
            upgrade(&req(""), &Resource::new()).err().unwrap().status,
            426
        );
        let v8 = GOOD.replace("Version: 13", "Version: 8");
        let r = upgrade(&req(&v8), &Resource::new()).err().unwrap();
        assert_eq!(r.status, 400);
        assert!(r
            .headers
            .contains(&("Sec-WebSocket-Version".into(), "13".into())));
        let nokey = GOOD.replace("Sec-WebSocket-Key", "X-Key");
        assert_eq!(
            upgrade(&req(&nokey), &Resource::new())
                .err()
                .unwrap()
                .status,
            400
        );
    }

    #[test]
    fn duplicate_keys_and_versions_are_refused() {
        let twice = format!("{GOOD}Sec-WebSocket-Key: b3RoZXIga2V5IGF0IGFsbA==\r\n");
        let r = upgrade(&req(&twice), &Resource::new()).err().unwrap();
        assert_eq!(r.status, 400);
        let twice = format!("{GOOD}Sec-WebSocket-Version: 13\r\n");
        assert_eq!(
            upgrade(&req(&twice), &Resource::new())
                .err()
                .unwrap()
                .status,
            400
        );
    }

    #[test]
    fn token_lists_in_upgrade_and_connection() {
        let list = GOOD
            .replace("Upgrade: websocket", "Upgrade: websocket, foo")
            .replace("Connection: Upgrade", "Connection: keep-alive, Upgrade");
        assert!(upgrade(&req(&list), &Resource::new()).is_ok());
    }

    #[test]
    fn cross_origin_handshakes_are_refused_unless_allowed() {
        let from = |origin: &str| format!("{GOOD}Origin: {origin}\r\n");
        let same = Resource::new();
        assert!(upgrade(&req(GOOD), &same).is_ok());
        assert!(upgrade(&req(&from("http://h")), &same).is_ok());
        assert_eq!(
            upgrade(&req(&from("http://evil")), &same)
                .err()
                .unwrap()
                .status,
            403
        );
        assert_eq!(
            upgrade(&req(&from("http://h:8080")), &same)
                .err()
                .unwrap()
                .status,
            403
        );
        let listed = Resource::new().origins(["http://app:3000"]);
        assert!(upgrade(&req(&from("http://app:3000")), &listed).is_ok());
        assert!(upgrade(&req(&from("http://h")), &listed).is_ok());
        let any = Resource::new().any_origin();
        assert!(upgrade(&req(&from("http://evil")), &any).is_ok());
        let hook_runs_after = Resource::new().on_handshake(|_| panic!("not reached"));
        assert_eq!(
            upgrade(&req(&from("http://evil")), &hook_runs_after)
                .err()
                .unwrap()
                .status,
            403
        );
    }

    #[test]
    fn hook_headers_that_would_split_the_response_are_a_500() {
        let r = Resource::new()
            .on_handshake(|_| Ok(crate::Accept::new().header("X-Room", "a\r\nSet-Cookie: x")));
        assert_eq!(upgrade(&req(GOOD), &r).err().unwrap().status, 500);
        let r = Resource::new().on_handshake(|_| Err(Reject::new(101)));
        assert_eq!(upgrade(&req(GOOD), &r).err().unwrap().status, 500);
        let r = Resource::new().on_handshake(|_| Err(Reject::new(403).header("Bad Name", "x")));
        assert_eq!(upgrade(&req(GOOD), &r).err().unwrap().status, 500);
    }

    #[test]
    fn a_panicking_hook_is_a_500() {
        let r = Resource::new().on_handshake(|_| panic!("nope"));
        assert_eq!(upgrade(&req(GOOD), &r).err().unwrap().status, 500);
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn deflate_is_answered_unless_refused() {
        let offer = format!("{GOOD}Sec-WebSocket-Extensions: permessage-deflate\r\n");
        let ours = crate::Deflate::default();
        let mut up = upgrade(&req(&offer), &Resource::new()).ok().unwrap();
        negotiate(&req(&offer), &Resource::new(), Some(&ours), &mut up);
        let text = String::from_utf8(up.response).unwrap();
        assert!(
            text.ends_with(
                "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12\r\n\r\n"
            ),
            "{text}"
        );
        assert!(up.deflate.is_some());
        let refusing = Resource::new().compression(false);
        let mut up = upgrade(&req(&offer), &refusing).ok().unwrap();
        negotiate(&req(&offer), &refusing, Some(&ours), &mut up);
        assert!(up.deflate.is_none());
        let mut up = upgrade(&req(&offer), &Resource::new()).ok().unwrap();
        negotiate(&req(&offer), &Resource::new(), None, &mut up);
        assert!(!String::from_utf8(up.response)
            .unwrap()
            .contains("Extensions"));
    }

    #[test]
    fn protocol_preference() {
        let r = Resource::new().protocols(["b", "a"]);
        let offer = format!("{GOOD}Sec-WebSocket-Protocol: a, b\r\n");
        assert_eq!(
            upgrade(&req(&offer), &r).ok().unwrap().protocol.as_deref(),
            Some("b")
        );
        let none = Resource::new().protocols(["z"]);
        assert_eq!(upgrade(&req(&offer), &none).ok().unwrap().protocol, None);
    }
}
