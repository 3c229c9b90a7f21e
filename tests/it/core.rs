//! The core server: hooks, HTTP answers, close paths, limits, start-up errors.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use wsportal::{Accept, Config, Error, Message, Reject, Resource, Server, ServerHandle};

use crate::support::*;

/// What the hooks of [`recording`] saw.
#[derive(Debug, PartialEq)]
enum Seen {
    Open(String),
    Message(Message),
    Close(u16, String),
    Error(String),
}

/// A resource that records every hook call, echoing messages back.
fn recording(ev: &Events<Seen>) -> Resource {
    let (a, b, c, d) = (ev.tx.clone(), ev.tx.clone(), ev.tx.clone(), ev.tx.clone());
    Resource::new()
        .on_open(move |ws| a.send(Seen::Open(ws.path().to_owned())).unwrap())
        .on_message(move |ws, msg| {
            if msg.as_text() == Some("close please") {
                ws.close(4000, "as you wish");
            } else if msg.as_text() == Some("panic") {
                panic!("asked to panic");
            } else {
                let _ = ws.send(msg.clone());
            }
            b.send(Seen::Message(msg)).unwrap();
        })
        .on_close(move |_, code, reason| c.send(Seen::Close(code, reason.to_owned())).unwrap())
        .on_error(move |_, err| {
            let text = match err {
                Error::HandlerPanic(m) => format!("panic: {m}"),
                Error::Protocol(_) => "protocol".into(),
                Error::InvalidUtf8 => "utf8".into(),
                Error::TooBig { .. } => "too big".into(),
                Error::Io(_) => "io".into(),
                other => other.to_string(),
            };
            d.send(Seen::Error(text)).unwrap();
        })
}

fn start(config: Config, path: &str, res: Resource) -> ServerHandle {
    init_logs();
    let mut server = Server::with_config(config);
    server.define_resource(path, res);
    server.start("127.0.0.1:0").expect("server starts")
}

#[test]
fn echoes_text_and_binary_with_hooks_in_order() {
    let ev = Events::new();
    let h = start(Config::default(), "/echo", recording(&ev));
    let mut ws = connect(h.local_addr(), "/echo");
    assert_eq!(ev.next(), Seen::Open("/echo".into()));
    ws.send(tungstenite::Message::text("héllo")).unwrap();
    assert_eq!(recv(&mut ws), tungstenite::Message::text("héllo"));
    ws.send(tungstenite::Message::binary(vec![0u8, 1, 2, 255]))
        .unwrap();
    assert_eq!(
        recv(&mut ws),
        tungstenite::Message::binary(vec![0u8, 1, 2, 255])
    );
    assert_eq!(ev.next(), Seen::Message(Message::Text("héllo".into())));
    assert_eq!(
        ev.next(),
        Seen::Message(Message::Binary(vec![0, 1, 2, 255]))
    );
    assert_eq!(h.connection_count(), 1);
    ws.close(Some(CloseFrame {
        code: CloseCode::Library(4001),
        reason: "bye".into(),
    }))
    .unwrap();
    assert_eq!(recv_close(&mut ws).0, 4001);
    assert_eq!(ev.next(), Seen::Close(4001, "bye".into()));
}

#[test]
fn http_refusals() {
    let h = start(Config::default(), "/ws", Resource::new());
    let a = h.local_addr();
    assert_eq!(http(a, &upgrade_request("/nope", "")).0, 404);
    let (status, text) = http(a, "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 426);
    assert!(text.contains("Upgrade: websocket"), "{text}");
    let no_key = upgrade_request("/ws", "").replace("Sec-WebSocket-Key", "X-Key");
    assert_eq!(http(a, &no_key).0, 400);
    let v8 = upgrade_request("/ws", "").replace("Version: 13", "Version: 8");
    let (status, text) = http(a, &v8);
    assert_eq!(status, 400);
    assert!(text.contains("Sec-WebSocket-Version: 13"), "{text}");
    assert_eq!(http(a, "POST /ws HTTP/1.1\r\nHost: x\r\n\r\n").0, 405);
    assert_eq!(http(a, "garbage\r\n\r\n").0, 400);
}

#[test]
fn handshake_hook_refuses_and_accepts_with_data_and_headers() {
    struct Token(String);
    let res = Resource::new()
        .on_handshake(|req| match req.header("authorization") {
            Some(t) if req.query() == Some("room=1") => Ok(Accept::new()
                .header("X-Hello", "yes")
                .data(Token(t.to_owned()))),
            _ => Err(Reject::new(401)
                .header("WWW-Authenticate", "Bearer")
                .body("who are you?")),
        })
        .on_open(|ws| {
            let token = ws.data::<Token>().map(|t| t.0.clone()).unwrap_or_default();
            let _ = ws.send_text(&token);
        });
    let h = start(Config::default(), "/private", res);
    let (status, text) = http(h.local_addr(), &upgrade_request("/private", ""));
    assert_eq!(status, 401);
    assert!(text.contains("WWW-Authenticate: Bearer") && text.ends_with("who are you?"));
    let err = connect_with(h.local_addr(), "/private", &[]).unwrap_err();
    assert!(matches!(err, tungstenite::Error::Http(r) if r.status() == 401));
    let mut ws = connect_with(
        h.local_addr(),
        "/private?room=1",
        &[("Authorization", "abc")],
    )
    .unwrap();
    assert_eq!(recv(&mut ws), tungstenite::Message::text("abc"));
}

#[test]
fn subprotocols_and_path_params() {
    let res = Resource::new().protocols(["v2", "v1"]).on_open(|ws| {
        let text = format!(
            "{:?} {:?} {}",
            ws.protocol(),
            ws.param("room"),
            ws.version()
        );
        let _ = ws.send_text(&text);
    });
    let h = start(Config::default(), "/chat/:room", res);
    let mut ws = connect_with(
        h.local_addr(),
        "/chat/a%20b",
        &[("Sec-WebSocket-Protocol", "v1, v2")],
    )
    .unwrap();
    assert_eq!(
        recv(&mut ws),
        tungstenite::Message::text(r#"Some("v2") Some("a b") 13"#)
    );
    let mut ws = connect(h.local_addr(), "/chat/x");
    assert_eq!(
        recv(&mut ws),
        tungstenite::Message::text(r#"None Some("x") 13"#)
    );
    assert_eq!(http(h.local_addr(), &upgrade_request("/chat/", "")).0, 404);
}

#[test]
fn server_initiated_close() {
    let ev = Events::new();
    let h = start(Config::default(), "/", recording(&ev));
    let mut ws = connect(h.local_addr(), "/");
    ws.send(tungstenite::Message::text("close please")).unwrap();
    assert_eq!(recv_close(&mut ws), (4000, "as you wish".into()));
    ev.next();
    ev.next();
    assert_eq!(ev.next(), Seen::Close(4000, "as you wish".into()));
}

#[test]
fn sends_after_close_give_the_message_back() {
    let ev = Events::new();
    let tx = ev.tx.clone();
    let res = Resource::new().on_message(move |ws, _| {
        ws.close(1000, "done");
        let err = ws.send_text("late").unwrap_err();
        tx.send((ws.is_open(), err.0)).unwrap();
    });
    let h = start(Config::default(), "/", res);
    let mut ws = connect(h.local_addr(), "/");
    ws.send(tungstenite::Message::text("x")).unwrap();
    assert_eq!(ev.next(), (false, Message::Text("late".into())));
    assert_eq!(recv_close(&mut ws).0, 1000);
}

#[test]
fn protocol_errors_get_their_close_codes() {
    let cases: [(Vec<u8>, u16, &str); 4] = [
        // Unmasked frame from a client.
        (vec![0x81, 0x01, b'a'], 1002, "protocol"),
        // Reserved opcode.
        (frame(true, 0x3, b""), 1002, "protocol"),
        // Invalid UTF-8 in a text message.
        (frame(true, 0x1, &[0xC3, 0x28]), 1007, "utf8"),
        // Bigger than max_message_size (1 KiB here).
        (frame(true, 0x2, &[0; 2000]), 1009, "too big"),
    ];
    for (bytes, code, error) in cases {
        let ev = Events::new();
        let config = Config::default()
            .max_message_size(1024)
            .max_frame_size(1024);
        let h = start(config, "/", recording(&ev));
        let mut s = raw_upgraded(h.local_addr(), "/");
        assert_eq!(ev.next(), Seen::Open("/".into()));
        s.write_all(&bytes).unwrap();
        assert_eq!(read_close_code(&mut s), code);
        assert_eq!(ev.next(), Seen::Error(error.into()));
        match ev.next() {
            Seen::Close(c, _) => assert_eq!(c, code),
            other => panic!("expected close, got {other:?}"),
        }
    }
}

#[test]
fn peer_vanishing_mid_frame_is_1006() {
    let ev = Events::new();
    let h = start(Config::default(), "/", recording(&ev));
    let mut s = raw_upgraded(h.local_addr(), "/");
    ev.next();
    let f = frame(true, 0x2, &[7; 100]);
    s.write_all(&f[..50]).unwrap();
    drop(s);
    assert_eq!(ev.next(), Seen::Error("io".into()));
    assert!(matches!(ev.next(), Seen::Close(1006, _)));
}

#[test]
fn panics_with_debug_on_error_close_with_1011() {
    let ev = Events::new();
    let h = start(Config::default().debug_on_error(true), "/", recording(&ev));
    let mut ws = connect(h.local_addr(), "/");
    ev.next();
    ws.send(tungstenite::Message::text("panic")).unwrap();
    assert_eq!(ev.next(), Seen::Error("panic: asked to panic".into()));
    assert_eq!(recv_close(&mut ws).0, 1011);
    assert!(matches!(ev.next(), Seen::Close(1011, _)));
}

#[test]
fn panics_without_debug_on_error_carry_on() {
    let ev = Events::new();
    let h = start(Config::default().debug_on_error(false), "/", recording(&ev));
    let mut ws = connect(h.local_addr(), "/");
    ev.next();
    ws.send(tungstenite::Message::text("panic")).unwrap();
    assert_eq!(ev.next(), Seen::Error("panic: asked to panic".into()));
    ws.send(tungstenite::Message::text("still here")).unwrap();
    assert_eq!(recv(&mut ws), tungstenite::Message::text("still here"));
    // A second client is not disturbed by the first one's panic either.
    let mut other = connect(h.local_addr(), "/");
    other.send(tungstenite::Message::text("hi")).unwrap();
    assert_eq!(recv(&mut other), tungstenite::Message::text("hi"));
}

#[test]
fn ping_with_pong_callback() {
    let ev = Events::new();
    let tx = ev.tx.clone();
    let res = Resource::new().on_open(move |ws| {
        let tx = tx.clone();
        ws.ping(b"are you there", move |ws| tx.send(ws.id()).unwrap())
            .unwrap();
    });
    let h = start(Config::default(), "/", res);
    let mut ws = connect(h.local_addr(), "/");
    // tungstenite answers pings while it reads; keep it reading.
    let reader = std::thread::spawn(move || while ws.read().is_ok() {});
    assert!(ev.next() > 0);
    drop(h);
    let _ = reader.join();
}

#[test]
fn keepalive_closes_a_silent_peer() {
    let ev = Events::new();
    let config = Config::default()
        .ping_interval(Some(Duration::from_millis(100)))
        .ping_timeout(Duration::from_millis(200));
    let h = start(config, "/", recording(&ev));
    // A raw client that never answers the ping.
    let mut s = raw_upgraded(h.local_addr(), "/");
    ev.next();
    let (op, payload) = read_frame(&mut s);
    assert_eq!(op, 0x9, "a keepalive ping arrives");
    assert!(!payload.is_empty());
    match ev.next() {
        Seen::Close(1006, reason) => assert!(reason.contains("keepalive"), "{reason}"),
        other => panic!("expected a keepalive close, got {other:?}"),
    }
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
}

#[test]
fn keepalive_spares_a_peer_that_answers() {
    let ev = Events::new();
    let config = Config::default()
        .ping_interval(Some(Duration::from_millis(50)))
        .ping_timeout(Duration::from_millis(2000));
    let h = start(config, "/", recording(&ev));
    let mut s = raw_upgraded(h.local_addr(), "/");
    ev.next();
    for _ in 0..3 {
        let (op, payload) = read_frame(&mut s);
        assert_eq!(op, 0x9);
        s.write_all(&frame(true, 0xA, &payload)).unwrap();
    }
    s.write_all(&frame(true, 0x1, b"alive")).unwrap();
    loop {
        let (op, payload) = read_frame(&mut s);
        if op == 0x1 {
            assert_eq!(payload, b"alive");
            break;
        }
    }
}

#[test]
fn limits_header_size_and_handshake_timeout() {
    let config = Config::default()
        .max_header_size(512)
        .handshake_timeout(Duration::from_millis(300));
    let h = start(config, "/", Resource::new());
    let big = upgrade_request("/", &format!("X-Big: {}\r\n", "a".repeat(1000)));
    assert_eq!(http(h.local_addr(), &big).0, 431);
    // A client that never finishes its request is dropped.
    let mut s = TcpStream::connect(h.local_addr()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut buf = Vec::new();
    assert_eq!(
        s.read_to_end(&mut buf).unwrap(),
        0,
        "dropped without an answer"
    );
}

#[test]
fn max_connections_answers_503_and_leaves_others_alone() {
    let h = start(
        Config::default().max_connections(2),
        "/",
        Resource::new().on_message(|ws, m| {
            let _ = ws.send(m);
        }),
    );
    let mut a = connect(h.local_addr(), "/");
    let mut b = connect(h.local_addr(), "/");
    let (status, text) = http(h.local_addr(), &upgrade_request("/", ""));
    assert_eq!(status, 503);
    assert!(text.contains("Retry-After: 1"), "{text}");
    for ws in [&mut a, &mut b] {
        ws.send(tungstenite::Message::text("ok")).unwrap();
        assert_eq!(recv(ws), tungstenite::Message::text("ok"));
    }
}

#[test]
fn start_up_errors_name_the_culprit() {
    let h = start(Config::default(), "/", Resource::new());
    let taken = h.local_addr().to_string();
    let err = Server::new().start(taken.as_str()).unwrap_err();
    assert!(
        matches!(err, Error::Bind { .. }) && err.to_string().contains(&taken),
        "{err}"
    );
    let err = Server::new().start("not an address").unwrap_err();
    assert!(err.to_string().contains("not an address"), "{err}");
    let err = Server::with_config(Config::default().max_connections(0))
        .start("127.0.0.1:0")
        .unwrap_err();
    assert!(err.to_string().contains("max_connections"), "{err}");
    let mut s = Server::new();
    s.define_resource("no-slash", Resource::new());
    assert!(matches!(s.start("127.0.0.1:0"), Err(Error::Route(_))));
}

#[test]
fn close_sends_going_away_and_runs_on_close() {
    let ev = Events::new();
    let h = start(Config::default(), "/", recording(&ev));
    let addr = h.local_addr();
    let mut ws = connect(addr, "/");
    ev.next();
    let closer = std::thread::spawn(move || h.close());
    assert_eq!(recv_close(&mut ws).0, 1001);
    let _ = ws.flush();
    closer.join().unwrap();
    assert!(matches!(ev.next(), Seen::Close(1001, _)));
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
}

#[test]
fn shutdown_cuts_off_clients_that_ignore_going_away() {
    let ev = Events::new();
    let config = Config::default().shutdown_grace(Duration::from_millis(200));
    let h = start(config, "/", recording(&ev));
    let s = raw_upgraded(h.local_addr(), "/");
    ev.next();
    h.close();
    assert!(matches!(ev.next(), Seen::Close(1001, _)));
    drop(s);
}

#[test]
fn many_clients_at_once() {
    let h = Arc::new(start(
        Config::default(),
        "/",
        Resource::new().on_message(|ws, m| {
            let _ = ws.send(m);
        }),
    ));
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let addr = h.local_addr();
            std::thread::spawn(move || {
                let mut ws = connect(addr, "/");
                for j in 0..20 {
                    let text = format!("{i}-{j}");
                    ws.send(tungstenite::Message::text(text.clone())).unwrap();
                    assert_eq!(recv(&mut ws), tungstenite::Message::text(text));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// `Config::yield_after(Some(ZERO))`: every connection thread yields before
/// every read. Busy clients sending large messages still get every echo,
/// in order.
#[test]
fn threads_that_yield_before_every_read_still_echo_everything() {
    let h = Arc::new(start(
        Config::default().yield_after(Some(Duration::ZERO)),
        "/",
        Resource::new().on_message(|ws, m| {
            let _ = ws.send(m);
        }),
    ));
    let threads: Vec<_> = (0..4u8)
        .map(|i| {
            let addr = h.local_addr();
            std::thread::spawn(move || {
                let mut ws = connect(addr, "/");
                for j in 0..30u8 {
                    let body = vec![i ^ j; 40_000 + usize::from(j) * 997];
                    ws.send(tungstenite::Message::binary(body.clone())).unwrap();
                    assert_eq!(recv(&mut ws), tungstenite::Message::binary(body));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
