//! HTTP edges over real sockets: what the request parser accepts and
//! refuses, headers and statuses from hooks, the Origin policy, answers to
//! `HEAD`, and the client reading odd answers from a server we script.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use wsportal::{Accept, Client, Error, EventStream, Reject, Resource, Server, ServerHandle};

use crate::support::*;

/// A server with a WebSocket resource at `/room/:name` and an event stream
/// at `/events/:name`; both hooks put the name in a header, as a new user
/// might, and refuse the name `no` with the same header.
fn reflecting_server() -> ServerHandle {
    init_logs();
    let mut server = Server::new();
    server
        .define_resource(
            "/room/:name",
            Resource::new().on_handshake(|req| {
                let name = req.param("name").unwrap_or("").to_owned();
                match name.as_str() {
                    "no" => Err(Reject::new(403).header("X-Room", name)),
                    "status" => Err(Reject::new(101)),
                    _ if name.starts_with("no") => Err(Reject::new(403).header("X-Room", name)),
                    _ => Ok(Accept::new().header("X-Room", name)),
                }
            }),
        )
        .define_event_stream(
            "/events/:name",
            EventStream::new().on_handshake(|req| {
                let name = req.param("name").unwrap_or("").to_owned();
                match name.as_str() {
                    "status" => Err(Reject::new(999)),
                    _ if name.starts_with("no") => Err(Reject::new(403).header("X-Room", name)),
                    _ => Ok(Accept::new().header("X-Room", name)),
                }
            }),
        )
        .define_page("/", "text/plain", "page");
    server.start("127.0.0.1:0").expect("server starts")
}

/// Sends `request` and reads the answer's head only (a `101` or an event
/// stream would not end).
fn head(addr: std::net::SocketAddr, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
        head.push(b[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let status = text[9..12].parse().unwrap();
    (status, text)
}

fn event_request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
}

#[test]
fn reflected_parameters_cannot_split_a_response() {
    let h = reflecting_server();
    let a = h.local_addr();
    let evil = "a%0d%0aSet-Cookie:%20session=evil";
    let requests = [
        upgrade_request(&format!("/room/{evil}"), ""),
        upgrade_request(&format!("/room/no{evil}"), ""),
        event_request(&format!("/events/{evil}")),
        event_request(&format!("/events/no{evil}")),
    ];
    for request in requests {
        let (status, text) = http(a, &request);
        assert_eq!(status, 500, "{request}: {text}");
        assert!(!text.contains("Set-Cookie"), "{text}");
        assert!(!text.contains("X-Room"), "{text}");
    }
    // A harmless value goes through.
    let (status, text) = http(a, &upgrade_request("/room/no%20way", ""));
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("X-Room: no way\r\n"), "{text}");
}

#[test]
fn statuses_outside_200_to_599_are_a_500() {
    let h = reflecting_server();
    let (status, text) = http(h.local_addr(), &upgrade_request("/room/status", ""));
    assert_eq!(status, 500, "{text}");
    let (status, text) = http(h.local_addr(), &event_request("/events/status"));
    assert_eq!(status, 500, "{text}");
}

#[test]
fn a_request_without_host_is_a_400() {
    let h = reflecting_server();
    let (status, text) = http(h.local_addr(), "GET / HTTP/1.1\r\nX: y\r\n\r\n");
    assert_eq!(status, 400, "{text}");
    assert!(text.ends_with("missing Host header"), "{text}");
    let (status, _) = http(h.local_addr(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200);
}

#[test]
fn what_httparse_decides() {
    let h = reflecting_server();
    let a = h.local_addr();
    // obs-fold and a header line without a colon in a request: 400.
    let (status, _) = http(a, "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n");
    assert_eq!(status, 400);
    let (status, _) = http(a, "GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n");
    assert_eq!(status, 400);
    // An absolute-form target is served (RFC 9112 section 3.2.2).
    let (status, text) = http(a, "GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200, "{text}");
    // An encoded slash stays inside the parameter; `..` is just a name.
    let (status, text) = head(a, &upgrade_request("/room/a%2Fb", ""));
    assert_eq!(status, 101, "{text}");
    assert!(text.contains("X-Room: a/b\r\n"), "{text}");
    let (status, text) = head(a, &upgrade_request("/room/..", ""));
    assert_eq!(status, 101, "{text}");
    assert!(text.contains("X-Room: ..\r\n"), "{text}");
}

#[test]
fn a_parameter_that_is_not_utf8_is_a_400() {
    // %FF and %FE would both decode to U+FFFD.
    let h = reflecting_server();
    for path in ["/room/%FF", "/room/%FE"] {
        let (status, text) = http(h.local_addr(), &upgrade_request(path, ""));
        assert_eq!(status, 400, "{text}");
    }
}

#[test]
fn a_bare_lf_never_stays_inside_a_value() {
    init_logs();
    let seen = Events::new();
    let tx = seen.tx.clone();
    let mut server = Server::new();
    server.define_resource(
        "/ws",
        Resource::new().on_handshake(move |req| {
            tx.send(req.header("x-test").map(str::to_owned)).unwrap();
            Ok(Accept::new())
        }),
    );
    let h = server.start("127.0.0.1:0").unwrap();
    let request = upgrade_request("/ws", "X-Test: a\nX-Other: b\r\n");
    let (status, text) = head(h.local_addr(), &request);
    assert_eq!(status, 101, "{text}");
    assert_eq!(seen.next().as_deref(), Some("a"));
}

#[test]
fn a_latin_1_cookie_is_no_reason_to_refuse() {
    let h = reflecting_server();
    let a = h.local_addr();
    let cookie = b"Cookie: name=caf\xe9\r\n";
    let mut page = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    page.extend_from_slice(cookie);
    page.extend_from_slice(b"\r\n");
    let mut upgrade = upgrade_request("/room/a", "").into_bytes();
    upgrade.truncate(upgrade.len() - 2);
    upgrade.extend_from_slice(cookie);
    upgrade.extend_from_slice(b"\r\n");
    for (request, want) in [(page, 200), (upgrade, 101)] {
        let mut s = TcpStream::connect(a).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(&request).unwrap();
        let mut answer = [0u8; 12];
        s.read_exact(&mut answer).unwrap();
        assert_eq!(&answer[9..12], want.to_string().as_bytes());
    }
}

#[test]
fn refusals_to_head_have_no_body() {
    let h = reflecting_server();
    let a = h.local_addr();
    for (path, want) in [("/nowhere", 404), ("/events/a", 405), ("/room/a", 405)] {
        let (status, text) = http(a, &format!("HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_eq!(status, want, "{path}: {text}");
        assert!(text.ends_with("\r\n\r\n"), "{path}: {text:?}");
        let length = |t: &str| {
            t.lines()
                .find(|l| l.starts_with("Content-Length:"))
                .map(str::to_owned)
        };
        assert!(length(&text).is_some(), "{path}: {text}");
        if want == 404 {
            // (A GET to the others would open a stream or a WebSocket.)
            let (_, get) = http(a, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
            assert_eq!(length(&text), length(&get), "{path}");
        }
    }
}

#[test]
fn two_patterns_for_the_same_paths_are_refused() {
    let mut server = Server::new();
    server
        .define_resource("/a/:x", Resource::new())
        .define_resource("/a/:y", Resource::new());
    let err = server.start("127.0.0.1:0").unwrap_err();
    assert!(matches!(err, Error::Route(_)), "{err:?}");
}

#[test]
fn a_panicking_on_unknown_id_answers_500_and_skips_on_open() {
    init_logs();
    let opened = Events::new();
    let tx = opened.tx.clone();
    let events = EventStream::new()
        .history(10)
        .on_unknown_id(|_| panic!("on_unknown_id fails"))
        .on_open(move |_| tx.send(()).unwrap());
    let mut server = Server::new();
    server.define_event_stream("/events", events);
    let h = server.start("127.0.0.1:0").unwrap();
    let request =
        "GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nLast-Event-ID: 9\r\n\r\n";
    let (status, text) = http(h.local_addr(), request);
    assert_eq!(status, 500, "{text}");
    // A stream that does open runs on_open: so a missing one is seen in order.
    let (tx2, rx2) = crossbeam_channel::bounded(1);
    thread::spawn({
        let a = h.local_addr();
        move || {
            let mut s = TcpStream::connect(a).unwrap();
            s.set_read_timeout(Some(WAIT)).unwrap();
            s.write_all(event_request("/events").as_bytes()).unwrap();
            let mut b = [0u8; 12];
            let _ = s.read_exact(&mut b);
            let _ = tx2.send(b);
            // Keep the socket until the test has seen on_open.
            let _ = s.read(&mut b);
        }
    });
    assert_eq!(&rx2.recv_timeout(WAIT).unwrap()[9..12], b"200");
    opened.next();
    assert!(opened.rx.try_recv().is_err(), "on_open ran twice");
    h.close();
}

// ---------------------------------------------------------------- Origin

fn origin_server(res: Resource) -> ServerHandle {
    init_logs();
    let mut server = Server::new();
    server.define_resource("/ws", res);
    server.start("127.0.0.1:0").expect("server starts")
}

#[test]
fn cross_origin_handshakes_are_refused_by_default() {
    let h = origin_server(Resource::new());
    let a = h.local_addr();
    let same = format!("http://{a}");
    // The tungstenite client sends Host: ADDR, as a browser on the same page would.
    assert!(connect_with(a, "/ws", &[("Origin", &same)]).is_ok());
    assert!(connect_with(a, "/ws", &[]).is_ok(), "no Origin passes");
    for other in ["http://evil.example", "null", "http://127.0.0.1:1"] {
        match connect_with(a, "/ws", &[("Origin", other)]) {
            Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403, "{other}"),
            e => panic!("{other}: {e:?}"),
        }
    }
}

#[test]
fn allowed_origins_and_any_origin() {
    let h = origin_server(Resource::new().origins(["http://app.example:3000"]));
    let a = h.local_addr();
    assert!(connect_with(a, "/ws", &[("Origin", "http://app.example:3000")]).is_ok());
    assert!(connect_with(a, "/ws", &[("Origin", "http://app.example:3001")]).is_err());
    let h = origin_server(Resource::new().any_origin());
    assert!(connect_with(h.local_addr(), "/ws", &[("Origin", "http://evil.example")]).is_ok());
    let mut bad = Server::new();
    bad.define_resource("/ws", Resource::new().origins(["https://app.example/"]));
    let err = bad.start("127.0.0.1:0").unwrap_err();
    assert!(
        matches!(
            err,
            Error::Config {
                setting: "origins",
                ..
            }
        ),
        "{err:?}"
    );
}

// ---------------------------------------------------------------- client

/// A one-shot server that answers the first request with `answer` and then
/// keeps the connection open until the test ends (`hold` is dropped).
fn scripted(answer: &'static [u8]) -> (String, crossbeam_channel::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (hold, held) = crossbeam_channel::bounded::<()>(0);
    thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
            head.push(b[0]);
        }
        let key = String::from_utf8_lossy(&head)
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ").map(str::to_owned))
            .unwrap_or_default();
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        let text = String::from_utf8_lossy(answer).replace("ACCEPT", &accept);
        s.write_all(text.as_bytes()).unwrap();
        let _ = held.recv_timeout(WAIT * 2);
    });
    (format!("ws://{addr}/x"), hold)
}

/// Connects in another thread with a long timeout; the result must come
/// without waiting for it (bounded by `WAIT`).
fn connect_soon(url: String) -> Result<wsportal::ClientHandle, Error> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        let _ = tx.send(Client::new(url).timeout(WAIT * 10).connect());
    });
    rx.recv_timeout(WAIT)
        .expect("connect() waited for its timeout")
}

#[test]
fn a_refusal_without_a_body_does_not_wait_out_the_timeout() {
    let (url, _hold) = scripted(b"HTTP/1.1 204 No Content\r\n\r\n");
    let err = connect_soon(url).unwrap_err();
    assert!(
        matches!(&err, Error::Http { status: 204, body, .. } if body.is_empty()),
        "{err:?}"
    );
    let (url, _hold) = scripted(
        b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nno!\r\n5\r\n stop\r\n0\r\n\r\n",
    );
    let err = connect_soon(url).unwrap_err();
    assert!(
        matches!(&err, Error::Http { status: 403, body, .. } if body == b"no! stop"),
        "{err:?}"
    );
}

#[test]
fn the_client_reads_a_folded_101() {
    let (url, hold) = scripted(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection:\r\n Upgrade\r\n\
          Sec-WebSocket-Accept: ACCEPT\r\n\r\n",
    );
    let ws = connect_soon(url).expect("a folded header is read as spaces");
    // The scripted server hangs up, so the handle need not wait for a close.
    drop(hold);
    drop(ws);
}

#[test]
fn the_client_refuses_an_extension_in_a_second_header() {
    let (url, _hold) = scripted(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: ACCEPT\r\nSec-WebSocket-Extensions:\r\n\
          Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n\r\n",
    );
    let err = connect_soon(url).unwrap_err();
    assert!(matches!(err, Error::Protocol(_)), "{err:?}");
}

#[test]
fn a_bad_port_in_a_url_is_invalid_input() {
    for url in ["ws://127.0.0.1:99999/x", "ws://h:abc/", "ws://h:-1/"] {
        let err = Client::new(url).connect().unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{url}: {err:?}");
    }
}

// ---------------------------------------------------------------- framing and versions

#[test]
fn a_reject_drops_the_hooks_framing_headers() {
    let h = origin_server(Resource::new().on_handshake(|_| {
        Err(Reject::new(403)
            .header("Content-Length", "0")
            .header("Transfer-Encoding", "chunked")
            .header("Connection", "keep-alive")
            .header("X-Why", "denied")
            .body("denied"))
    }));
    let (status, text) = http(h.local_addr(), &upgrade_request("/ws", ""));
    assert_eq!(status, 403, "{text}");
    let head = text.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert_eq!(head.matches("content-length").count(), 1, "{text}");
    assert!(head.contains("content-length: 6\r\n"), "{text}");
    assert!(!head.contains("transfer-encoding"), "{text}");
    assert!(!head.contains("keep-alive"), "{text}");
    assert!(head.contains("x-why: denied"), "{text}");
    assert!(text.ends_with("\r\n\r\ndenied"), "{text}");
}

#[test]
fn a_304_or_204_reject_has_no_body() {
    for status in [304, 204] {
        let h = origin_server(
            Resource::new().on_handshake(move |_| Err(Reject::new(status).body("ignored"))),
        );
        let (got, text) = http(h.local_addr(), &upgrade_request("/ws", ""));
        assert_eq!(got, status, "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
        assert!(
            !text.to_ascii_lowercase().contains("content-length"),
            "{text}"
        );
    }
}

#[test]
fn default_ports_are_the_same_origin() {
    let h = origin_server(Resource::new());
    let a = h.local_addr();
    for (host, origin) in [
        ("example.com:443", "https://example.com"),
        ("example.com:80", "http://example.com"),
        ("example.com", "http://example.com:80"),
    ] {
        let request = upgrade_request("/ws", &format!("Origin: {origin}\r\n"))
            .replace("Host: x\r\n", &format!("Host: {host}\r\n"));
        let (status, text) = head(a, &request);
        assert_eq!(status, 101, "{host} {origin}: {text}");
    }
    for (host, origin) in [
        ("example.com:443", "http://example.com"),
        ("example.com:8443", "https://example.com"),
    ] {
        let request = upgrade_request("/ws", &format!("Origin: {origin}\r\n"))
            .replace("Host: x\r\n", &format!("Host: {host}\r\n"));
        let (status, text) = http(a, &request);
        assert_eq!(status, 403, "{host} {origin}: {text}");
    }
}

#[test]
fn an_upgrade_over_http_1_0_is_a_426() {
    let h = origin_server(Resource::new());
    let request = upgrade_request("/ws", "").replace("HTTP/1.1", "HTTP/1.0");
    let (status, text) = http(h.local_addr(), &request);
    assert_eq!(status, 426, "{text}");
    assert!(text.contains("http/1.1"), "{text}");
}

// ---------------------------------------------------------------- bodies

/// `/say` answers POST and PUT with what it got; `/get` is a GET handler.
fn body_server(config: wsportal::Config) -> ServerHandle {
    init_logs();
    let mut server = Server::with_config(config);
    server
        .define_handler_for("/say", &["POST", "PUT"], |req| {
            wsportal::Response::text(format!(
                "{} {}",
                req.method(),
                String::from_utf8_lossy(req.body())
            ))
        })
        .define_handler("/get", |_| wsportal::Response::text("got"));
    server.start("127.0.0.1:0").expect("server starts")
}

fn post(path: &str, headers: &str, body: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n{body}")
}

#[test]
fn a_handler_gets_the_body_of_any_method_it_was_defined_for() {
    let h = body_server(wsportal::Config::default());
    let a = h.local_addr();
    let (status, text) = http(a, &post("/say", "Content-Length: 5\r\n", "hello"));
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("\r\n\r\nPOST hello"), "{text}");
    let chunked = "3\r\nhel\r\n2;ext=1\r\nlo\r\n0\r\nX-Trailer: 1\r\n\r\n";
    let (status, text) = http(a, &post("/say", "Transfer-Encoding: chunked\r\n", chunked));
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("\r\n\r\nPOST hello"), "{text}");
    let put = post("/say", "Content-Length: 2\r\n", "hi").replace("POST", "PUT");
    assert!(http(a, &put).1.ends_with("PUT hi"));
    let (status, text) = http(a, &post("/say", "", ""));
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("\r\n\r\nPOST "), "{text}");
}

#[test]
fn expect_100_continue_is_answered() {
    let h = body_server(wsportal::Config::default());
    let mut s = TcpStream::connect(h.local_addr()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(post("/say", "Content-Length: 2\r\nExpect: 100-continue\r\n", "").as_bytes())
        .unwrap();
    let mut first = [0u8; 25];
    s.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"ok").unwrap();
    let mut rest = String::new();
    let _ = s.read_to_string(&mut rest);
    assert!(rest.starts_with("HTTP/1.1 200 "), "{rest}");
    assert!(rest.ends_with("POST ok"), "{rest}");
}

#[test]
fn bodies_past_the_limit_are_413_and_bad_framing_400() {
    let h = body_server(wsportal::Config::default().max_body_size(4));
    let a = h.local_addr();
    let (status, text) = http(a, &post("/say", "Content-Length: 5\r\n", "hello"));
    assert_eq!(status, 413, "{text}");
    let (status, text) = http(a, &post("/say", "Content-Length: 4\r\n", "four"));
    assert_eq!(status, 200, "{text}");
    let chunked = "3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n";
    let (status, text) = http(a, &post("/say", "Transfer-Encoding: chunked\r\n", chunked));
    assert_eq!(status, 413, "{text}");
    for (headers, body) in [
        (
            "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
            "0\r\n\r\n",
        ),
        ("Transfer-Encoding: gzip\r\n", ""),
        ("Content-Length: 1\r\nContent-Length: 2\r\n", "ab"),
        ("Content-Length: x\r\n", ""),
        ("Transfer-Encoding: chunked\r\n", "zz\r\n"),
    ] {
        let (status, text) = http(a, &post("/say", headers, body));
        assert_eq!(status, 400, "{headers}: {text}");
    }
    let s = h.stats();
    assert_eq!(
        s.refused_by_status,
        vec![(400, 5), (413, 2)],
        "refusals are counted"
    );
}

#[test]
fn a_body_late_past_the_deadline_is_408() {
    let config =
        wsportal::Config::default().handshake_timeout(std::time::Duration::from_millis(300));
    let h = body_server(config);
    let (status, text) = http(
        h.local_addr(),
        &post("/say", "Content-Length: 10\r\n", "abc"),
    );
    assert_eq!(status, 408, "{text}");
}

#[test]
fn other_methods_are_405_with_allow() {
    let h = body_server(wsportal::Config::default());
    let a = h.local_addr();
    let (status, text) = http(a, "GET /say HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 405, "{text}");
    assert!(text.contains("\r\nAllow: POST, PUT\r\n"), "{text}");
    let (status, text) = http(a, &post("/get", "Content-Length: 1\r\n", "x"));
    assert_eq!(status, 405, "{text}");
    assert!(text.contains("\r\nAllow: GET, HEAD\r\n"), "{text}");
    let mut bad = Server::new();
    bad.define_handler_for("/x", &["PO ST"], |_| wsportal::Response::new(204));
    assert!(matches!(bad.start("127.0.0.1:0"), Err(Error::Route(_))));
    let mut none = Server::new();
    none.define_handler_for("/x", &[], |_| wsportal::Response::new(204));
    assert!(matches!(none.start("127.0.0.1:0"), Err(Error::Route(_))));
}

// ---------------------------------------------------------------- behind a proxy

/// `/ws` reports each handshake's `peer_addr`, `proxy_addr` and `scheme`.
fn proxied_server(trusted: &[&str], seen: &Events<String>) -> ServerHandle {
    init_logs();
    let tx = seen.tx.clone();
    let config = wsportal::Config::default().trusted_proxies(trusted);
    let mut server = Server::with_config(config);
    server.define_resource(
        "/ws",
        Resource::new().on_handshake(move |req| {
            let proxy = req.proxy_addr().map(|a| a.to_string());
            let _ = tx.send(format!("{} {proxy:?} {}", req.peer_addr(), req.scheme()));
            Ok(Accept::new())
        }),
    );
    server.start("127.0.0.1:0").expect("server starts")
}

fn proxied(host: &str, headers: &str) -> String {
    upgrade_request("/ws", headers).replace("Host: x\r\n", &format!("Host: {host}\r\n"))
}

#[test]
fn a_trusted_proxy_names_the_client_and_its_scheme() {
    let seen = Events::new();
    let h = proxied_server(&["127.0.0.1"], &seen);
    let fwd = "X-Forwarded-For: 198.51.100.1, 203.0.113.9\r\nX-Forwarded-Proto: https\r\n";
    let (status, text) = head(h.local_addr(), &proxied("x", fwd));
    assert_eq!(status, 101, "{text}");
    let proxy = seen.next();
    assert!(
        proxy.starts_with("203.0.113.9:0 Some(\"127.0.0.1:"),
        "{proxy}"
    );
    assert!(proxy.ends_with(" https"), "{proxy}");
    let rfc = "Forwarded: for=\"[2001:db8::17]:4711\";proto=http\r\n";
    assert_eq!(head(h.local_addr(), &proxied("x", rfc)).0, 101);
    let proxy = seen.next();
    assert!(proxy.starts_with("[2001:db8::17]:4711 Some("), "{proxy}");
    assert!(proxy.ends_with(" http"), "{proxy}");
}

#[test]
fn forwarded_headers_from_anyone_else_are_ignored() {
    let seen = Events::new();
    for trusted in [&[][..], &["127.0.0.2"][..]] {
        let h = proxied_server(trusted, &seen);
        let fwd = "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: a.example\r\n";
        assert_eq!(head(h.local_addr(), &proxied("x", fwd)).0, 101);
        let direct = seen.next();
        assert!(direct.starts_with("127.0.0.1:"), "{direct}");
        assert!(direct.ends_with(" None http"), "{direct}");
        // The Origin check uses the Host header, not what the client claims.
        let origin = format!("{fwd}Origin: https://a.example\r\n");
        assert_eq!(http(h.local_addr(), &proxied("x", &origin)).0, 403);
        let origin = "Origin: http://127.0.0.1:8080\r\n";
        assert_eq!(http(h.local_addr(), &proxied("127.0.0.1", origin)).0, 403);
    }
}

#[test]
fn trusted_proxies_are_addresses_or_ranges_checked_at_start() {
    let seen = Events::new();
    let h = proxied_server(&["10.0.0.0/8", "127.0.0.0/8"], &seen);
    let fwd = "X-Forwarded-For: 203.0.113.9\r\n";
    assert_eq!(head(h.local_addr(), &proxied("x", fwd)).0, 101);
    assert!(seen.next().starts_with("203.0.113.9:0 Some("));
    let mut bad = Server::with_config(wsportal::Config::default().trusted_proxies(["10.0.0.0/33"]));
    bad.define_resource("/ws", Resource::new());
    match bad.start("127.0.0.1:0") {
        Err(Error::Config { setting, .. }) => assert_eq!(setting, "trusted_proxies"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn behind_a_trusted_proxy_the_origin_check_uses_what_it_says() {
    let seen = Events::new();
    let h = proxied_server(&["127.0.0.1"], &seen);
    let a = h.local_addr();
    let cases = [
        // nginx's `proxy_set_header Host $host;`: the port is gone.
        ("127.0.0.1", "Origin: http://127.0.0.1:8080\r\n", 101),
        ("127.0.0.1", "Origin: http://evil.example:8080\r\n", 403),
        // X-Forwarded-Host with a port, and the scheme.
        (
            "backend",
            "X-Forwarded-Host: app.example:8443\r\nX-Forwarded-Proto: https\r\nOrigin: https://app.example:8443\r\n",
            101,
        ),
        (
            "backend",
            "X-Forwarded-Host: app.example:8443\r\nOrigin: https://app.example\r\n",
            403,
        ),
        // RFC 7239's host= and proto=: default ports.
        (
            "backend",
            "Forwarded: for=203.0.113.9;host=app.example:443;proto=https\r\nOrigin: https://app.example\r\n",
            101,
        ),
        (
            "backend",
            "Forwarded: for=203.0.113.9;host=app.example;proto=https\r\nOrigin: https://evil.example\r\n",
            403,
        ),
        // A Host with a port is compared as it is.
        ("127.0.0.1:9000", "Origin: http://127.0.0.1:9001\r\n", 403),
    ];
    for (host, headers, want) in cases {
        let (status, text) = if want == 101 {
            head(a, &proxied(host, headers))
        } else {
            http(a, &proxied(host, headers))
        };
        assert_eq!(status, want, "{host} {headers}: {text}");
    }
}
