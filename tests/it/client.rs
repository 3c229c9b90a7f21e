//! The client against our own server (and a few scripted fake servers):
//! hooks, the blocking receive style, pings, closing, refusals, subprotocols,
//! headers, timeouts, keepalive and the receive queue bound.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use wsportal::{
    Accept, Client, ClientHandle, Config, Error, Message, Reject, Resource, Server, ServerHandle,
};

use crate::support::*;

fn start(config: Config, path: &str, res: Resource) -> ServerHandle {
    init_logs();
    let mut server = Server::with_config(config);
    server.define_resource(path, res);
    server.start("127.0.0.1:0").expect("server starts")
}

/// An echo server whose `on_close` reports the code and reason it saw.
fn echo_server(closes: &Events<(u16, String)>) -> ServerHandle {
    let tx = closes.tx.clone();
    let res = Resource::new()
        .on_message(|ws, msg| {
            let _ = ws.send(msg);
        })
        .on_close(move |_, code, reason| tx.send((code, reason.to_owned())).unwrap());
    start(Config::default(), "/echo", res)
}

fn url(h: &ServerHandle, path: &str) -> String {
    format!("ws://{}{path}", h.local_addr())
}

#[derive(Debug, PartialEq)]
enum Seen {
    Open(Option<String>),
    Message(Message),
    Close(u16, String),
    Error(String),
}

/// Client hooks that record every call.
fn recording(ev: &Events<Seen>) -> Resource {
    let (a, b, c, d) = (ev.tx.clone(), ev.tx.clone(), ev.tx.clone(), ev.tx.clone());
    Resource::new()
        .on_open(move |ws| {
            a.send(Seen::Open(ws.protocol().map(str::to_owned)))
                .unwrap()
        })
        .on_message(move |_, msg| b.send(Seen::Message(msg)).unwrap())
        .on_close(move |_, code, reason| c.send(Seen::Close(code, reason.to_owned())).unwrap())
        .on_error(move |_, err| {
            let text = match err {
                Error::Protocol(_) => "protocol".to_owned(),
                Error::Io(_) => "io".to_owned(),
                other => other.to_string(),
            };
            d.send(Seen::Error(text)).unwrap();
        })
}

#[test]
fn hooks_run_in_order_and_close_from_another_thread() {
    let closes = Events::new();
    let h = echo_server(&closes);
    let ev = Events::new();
    let ws = Client::new(url(&h, "/echo"))
        .connect_with(recording(&ev))
        .unwrap();
    // on_open has run before connect returned.
    assert_eq!(ev.rx.try_recv().ok(), Some(Seen::Open(None)));
    ws.send_text("héllo").unwrap();
    ws.send_binary(&[0, 1, 2, 255]).unwrap();
    assert_eq!(ev.next(), Seen::Message(Message::Text("héllo".into())));
    assert_eq!(
        ev.next(),
        Seen::Message(Message::Binary(vec![0, 1, 2, 255]))
    );

    let other = ws.clone();
    std::thread::spawn(move || other.close(4001, "from another thread"))
        .join()
        .unwrap();
    assert_eq!(ev.next(), Seen::Close(4001, "from another thread".into()));
    assert_eq!(closes.next(), (4001, "from another thread".into()));
    assert_eq!(
        ws.wait_closed(WAIT),
        Some((4001, "from another thread".into()))
    );
    assert!(ws.send_text("late").is_err(), "sends after the close fail");
    assert!(
        ev.rx.try_recv().is_err(),
        "on_close ran once and nothing followed"
    );
}

#[test]
fn blocking_style_receives_text_and_big_binary() {
    let res = Resource::new()
        .on_open(|ws| {
            // Sent with the 101 answer: the client must find it in the leftover.
            let _ = ws.send_text("welcome");
        })
        .on_message(|ws, msg| {
            if msg.as_text() == Some("bye") {
                ws.close(4000, "as you wish");
            } else {
                let _ = ws.send(msg);
            }
        });
    let h = start(Config::default(), "/", res);
    let ws = Client::new(url(&h, "/")).connect().unwrap();
    assert_eq!(
        ws.recv_timeout(WAIT).unwrap(),
        Message::Text("welcome".into())
    );
    let big: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
    ws.send_binary(&big).unwrap();
    ws.send_text("small").unwrap();
    assert_eq!(ws.recv_timeout(WAIT).unwrap(), Message::Binary(big));
    assert_eq!(ws.recv().unwrap(), Message::Text("small".into()));
    assert!(matches!(
        ws.recv_timeout(Duration::from_millis(10)),
        Err(Error::Timeout(_))
    ));
    ws.send_text("one").unwrap();
    ws.send_text("bye").unwrap();
    // The iterator ends when the server has closed.
    let rest: Vec<Message> = ws.messages().collect();
    assert_eq!(rest, vec![Message::Text("one".into())]);
    assert_eq!(ws.close_status(), Some((4000, "as you wish".into())));
    assert!(matches!(ws.recv(), Err(Error::Closed)));
}

#[test]
fn ping_runs_the_pong_callback() {
    let closes = Events::new();
    let h = echo_server(&closes);
    let ws = Client::new(url(&h, "/echo")).connect().unwrap();
    let pongs = Events::new();
    let tx = pongs.tx.clone();
    ws.ping(b"are you there", move |conn| {
        tx.send(conn.path().to_owned()).unwrap()
    })
    .unwrap();
    assert_eq!(pongs.next(), "/echo");
    assert!(
        ws.ping(&[0; 126], |_| {}).is_err(),
        "ping payloads are at most 125 bytes"
    );
    // Dropping the handle closes with 1000 and joins.
    drop(ws);
    assert_eq!(closes.next(), (1000, String::new()));
}

#[test]
fn refused_handshake_is_an_http_error() {
    let res = Resource::new().on_handshake(|req| match req.header("authorization") {
        Some("Bearer good") => Ok(Accept::new()),
        _ => Err(Reject::new(401)
            .header("WWW-Authenticate", "Bearer")
            .body("who are you?")),
    });
    let h = start(Config::default(), "/private", res);
    let err = Client::new(url(&h, "/private")).connect().unwrap_err();
    match err {
        Error::Http {
            status,
            headers,
            body,
        } => {
            assert_eq!(status, 401);
            assert!(
                headers.contains(&("WWW-Authenticate".into(), "Bearer".into())),
                "{headers:?}"
            );
            assert_eq!(body, b"who are you?");
        }
        other => panic!("expected Error::Http, got {other:?}"),
    }
    let err = Client::new(url(&h, "/nowhere")).connect().unwrap_err();
    assert!(matches!(err, Error::Http { status: 404, .. }), "{err:?}");
    let ok = Client::new(url(&h, "/private"))
        .header("Authorization", "Bearer good")
        .connect();
    assert!(ok.is_ok());
}

#[test]
fn subprotocol_headers_and_query_reach_the_server() {
    let seen = Events::new();
    let tx = seen.tx.clone();
    let res = Resource::new()
        .protocols(["chat.v2", "chat.v1"])
        .origins(["http://example.com"])
        .on_handshake(move |req| {
            let get = |k: &str| req.header(k).unwrap_or("-").to_owned();
            tx.send((
                get("authorization"),
                get("origin"),
                req.query().map(str::to_owned),
            ))
            .unwrap();
            Ok(Accept::new().header("X-Served-By", "wsportal"))
        })
        .on_open(|ws| {
            let _ = ws.send_text(ws.protocol().unwrap_or("none"));
        });
    let h = start(Config::default(), "/chat", res);
    let ev = Events::new();
    let ws = Client::new(url(&h, "/chat?room=7"))
        .protocols(["chat.v1", "chat.v2"])
        .header("Authorization", "Bearer 123")
        .header("Origin", "http://example.com")
        .connect_with(recording(&ev))
        .unwrap();
    assert_eq!(
        seen.next(),
        (
            "Bearer 123".into(),
            "http://example.com".into(),
            Some("room=7".into())
        )
    );
    // The server's preference wins; both sides know it.
    assert_eq!(ev.next(), Seen::Open(Some("chat.v2".into())));
    assert_eq!(ev.next(), Seen::Message(Message::Text("chat.v2".into())));
    assert_eq!(ws.protocol(), Some("chat.v2"));
    assert_eq!(ws.response_header("x-served-by"), Some("wsportal"));
    assert_eq!(
        ws.header("authorization"),
        Some("Bearer 123"),
        "the request we sent"
    );
    assert_eq!(ws.request().query(), Some("room=7"));

    let none = Client::new(url(&h, "/chat"))
        .protocols(["other"])
        .connect()
        .unwrap();
    assert_eq!(none.protocol(), None);
    assert_eq!(
        none.recv_timeout(WAIT).unwrap(),
        Message::Text("none".into())
    );
}

#[test]
fn connect_errors() {
    init_logs();
    // Nobody listens on a port we just released.
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = Client::new(format!("ws://{free}/")).connect().unwrap_err();
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "{err:?}"
    );
    // A listener that never answers: the handshake times out.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let err = Client::new(format!("ws://{}/", silent.local_addr().unwrap()))
        .timeout(Duration::from_millis(200))
        .connect()
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    // wss:// is refused without the `tls` feature, and without a host with it.
    let wss = if cfg!(feature = "tls") {
        "wss://"
    } else {
        "wss://127.0.0.1/"
    };
    for bad in [wss, "http://127.0.0.1/", "ws://"] {
        let err = Client::new(bad).connect().unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{bad}: {err:?}");
    }
    let err = Client::new(format!("ws://{free}/"))
        .header("Sec-WebSocket-Key", "x")
        .connect()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    let err = Client::new(format!("ws://{free}/"))
        .config(Config::default().read_buffer_size(1))
        .connect()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Config {
                setting: "read_buffer_size",
                ..
            }
        ),
        "{err:?}"
    );
}

/// A one-connection fake server: answers the handshake correctly, then
/// hands the socket to `script`.
fn fake_server(script: impl FnOnce(TcpStream) + Send + 'static) -> (SocketAddr, JoinHandle<()>) {
    init_logs();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap();
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        s.write_all(answer.as_bytes()).unwrap();
        script(s);
    });
    (addr, t)
}

#[test]
fn keepalive_pings_are_masked_and_a_silent_server_is_dropped() {
    let frames = Events::new();
    let tx = frames.tx.clone();
    let (addr, server) = fake_server(move |mut s| {
        // Read the client's keepalive ping, never answer, wait for the end.
        let mut h = [0u8; 2];
        s.read_exact(&mut h).unwrap();
        tx.send((h[0] & 0x0F, h[1] & 0x80 != 0)).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    });
    let config = Config::default()
        .ping_interval(Some(Duration::from_millis(50)))
        .ping_timeout(Duration::from_millis(100));
    let ev = Events::new();
    let ws = Client::new(format!("ws://{addr}/"))
        .config(config)
        .connect_with(recording(&ev))
        .unwrap();
    assert_eq!(ev.next(), Seen::Open(None));
    assert_eq!(frames.next(), (0x9, true), "a masked ping");
    match ev.next() {
        Seen::Close(1006, reason) => assert!(reason.contains("keepalive"), "{reason}"),
        other => panic!("expected a keepalive close, got {other:?}"),
    }
    drop(ws);
    server.join().unwrap();
}

#[test]
fn a_masked_server_frame_is_a_protocol_error() {
    let (addr, server) = fake_server(|mut s| {
        s.write_all(&frame(true, 0x1, b"masked")).unwrap();
        // Expect the client's close frame, then its end.
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        assert_eq!(rest[0], 0x88, "a close frame first");
    });
    let ev = Events::new();
    let ws = Client::new(format!("ws://{addr}/"))
        .connect_with(recording(&ev))
        .unwrap();
    assert_eq!(ev.next(), Seen::Open(None));
    assert_eq!(ev.next(), Seen::Error("protocol".into()));
    assert!(matches!(ev.next(), Seen::Close(1002, _)));
    drop(ws);
    server.join().unwrap();
}

#[test]
fn unread_messages_are_bounded() {
    let res = Resource::new().on_open(|ws| {
        for _ in 0..8 {
            let _ = ws.send_binary(&[7; 20 << 10]);
        }
    });
    let h = start(Config::default(), "/", res);
    let ws: ClientHandle = Client::new(url(&h, "/"))
        .config(Config::default().max_backlog(64 << 10))
        .connect()
        .unwrap();
    assert_eq!(
        ws.wait_closed(WAIT),
        Some((1008, "receive queue full".into()))
    );
    // What was queued before the limit is still there to read.
    let got: Vec<Message> = ws.messages().collect();
    assert!((3..8).contains(&got.len()), "{} messages", got.len());
}
