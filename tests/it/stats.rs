//! Statistics: `ServerHandle::stats`, `Broadcaster::stats` and the
//! Prometheus page of `Server::define_metrics`.

use std::io::{Read, Write};
use std::net::TcpStream;

use tungstenite::Message as WsMessage;
use wsportal::{EventStream, Message, Resource, Server, ServerHandle, Stats};

use crate::support::*;

/// `/echo` echoes (and joins the group `room` on "join", panics on
/// "panic"); `/quiet` only says when it is open (0 on `closes`); `/events`
/// is an event stream. Every `/echo` close code is reported on `closes`.
fn server(closes: &Events<u16>) -> ServerHandle {
    init_logs();
    let closed = closes.tx.clone();
    let opened = closes.tx.clone();
    let mut server = Server::new();
    server
        .define_resource(
            "/echo",
            Resource::new()
                .on_message(|ws, msg| {
                    match &msg {
                        Message::Text(t) if t == "panic" => panic!("asked to panic"),
                        Message::Text(t) if t == "join" => ws.join("room"),
                        _ => {}
                    }
                    let _ = ws.send(msg);
                })
                .on_close(move |_, code, _| {
                    let _ = closed.send(code);
                }),
        )
        .define_resource(
            "/quiet",
            Resource::new().on_open(move |_| {
                let _ = opened.send(0);
            }),
        )
        .define_event_stream("/events", EventStream::new())
        .define_metrics("/metrics");
    server.start("127.0.0.1:0").expect("server starts")
}

fn echo(ws: &mut tungstenite::WebSocket<TcpStream>, text: &str) {
    ws.send(WsMessage::text(text)).unwrap();
    assert_eq!(recv(ws), WsMessage::text(text));
}

/// A ping round trip: the connection's thread answers it only after the
/// hooks of every earlier message have returned (and counted their sends).
fn sync(ws: &mut tungstenite::WebSocket<TcpStream>) {
    ws.send(WsMessage::Ping(b"sync".to_vec().into())).unwrap();
    loop {
        match ws.read().expect("read failed") {
            WsMessage::Pong(p) if &p[..] == b"sync" => return,
            WsMessage::Ping(_) | WsMessage::Pong(_) => {}
            m => panic!("unexpected {m:?}"),
        }
    }
}

/// Opens an event stream and reads its response head: the client is then
/// in its stream's list.
fn event_client(h: &ServerHandle) -> TcpStream {
    let mut s = TcpStream::connect(h.local_addr()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "stream head cut short");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200 "));
    s
}

fn count<K: PartialEq>(pairs: &[(K, u64)], key: K) -> u64 {
    pairs.iter().find(|(k, _)| *k == key).map_or(0, |(_, v)| *v)
}

#[test]
fn counts_connections_messages_refusals_and_closes() {
    let closes = Events::new();
    let h = server(&closes);
    let fresh = h.stats();
    assert_eq!(fresh.connections, 0);
    assert_eq!(
        fresh.connections_by_resource,
        vec![("/echo".to_owned(), 0), ("/quiet".to_owned(), 0)]
    );
    assert_eq!(
        fresh.event_clients_by_stream,
        vec![("/events".to_owned(), 0)]
    );
    assert_eq!(count(&fresh.closes_by_code, 1000), 0);

    let mut ws = connect(h.local_addr(), "/echo");
    echo(&mut ws, "join");
    echo(&mut ws, "hello");
    // 1 KiB or more goes out from its own buffer, not copied: counted too.
    let big = WsMessage::binary(vec![7u8; 2000]);
    ws.send(big.clone()).unwrap();
    assert_eq!(recv(&mut ws), big);
    let _quiet = connect(h.local_addr(), "/quiet");
    assert_eq!(closes.next(), 0, "/quiet is open");
    let sent = h.broadcaster().to_group("room", "all").unwrap();
    assert_eq!(sent, 1);
    assert_eq!(recv(&mut ws), WsMessage::text("all"));
    let (status, _) = http(h.local_addr(), "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 404);
    let _events = event_client(&h);

    sync(&mut ws);
    let s = h.stats();
    assert_eq!(s.connections, 2);
    assert_eq!(
        s.connections_by_resource,
        vec![("/echo".to_owned(), 1), ("/quiet".to_owned(), 1)]
    );
    assert_eq!(s.event_clients, 1);
    assert_eq!(s.event_clients_by_stream, vec![("/events".to_owned(), 1)]);
    assert_eq!(
        (s.groups, s.largest_groups.clone()),
        (1, vec![("room".to_owned(), 1)])
    );
    assert_eq!((s.messages_received, s.bytes_received), (3, 4 + 5 + 2000));
    assert_eq!((s.messages_sent, s.bytes_sent), (4, 4 + 5 + 2000 + 3));
    assert_eq!((s.websocket_accepted, s.event_streams_accepted), (2, 1));
    assert_eq!(s.refused_by_status, vec![(404, 1)]);
    assert_eq!(s.hook_panics, 0);
    // Three clients are served, each by a pool thread of its own.
    assert!(s.threads_busy >= 3, "{s:?}");
    let b = h.broadcaster().stats();
    assert_eq!((b.connections, b.messages_received), (2, 3));

    // A hook panic (`debug_on_error` is on by default): 1011.
    let mut doomed = connect(h.local_addr(), "/echo");
    doomed.send(WsMessage::text("panic")).unwrap();
    assert_eq!(recv_close(&mut doomed).0, 1011);
    assert_eq!(closes.next(), 1011);
    // A normal close: 1000. The counts of the closed connections stay.
    ws.close(Some(tungstenite::protocol::CloseFrame {
        code: tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "".into(),
    }))
    .unwrap();
    assert_eq!(recv_close(&mut ws).0, 1000);
    assert_eq!(closes.next(), 1000);
    let s = h.stats();
    assert_eq!(s.connections, 1);
    assert_eq!(s.hook_panics, 1);
    assert_eq!(count(&s.closes_by_code, 1011), 1);
    assert_eq!(count(&s.closes_by_code, 1000), 1);
    assert_eq!(
        (s.messages_received, s.bytes_received),
        (4, 4 + 5 + 2000 + 5)
    );
    assert_eq!((s.messages_sent, s.bytes_sent), (4, 4 + 5 + 2000 + 3));
    assert!(s.groups == 0 && s.largest_groups.is_empty(), "{s:?}");
}

#[test]
fn a_slow_reader_is_counted_as_a_1008_close() {
    let closes = Events::new();
    init_logs();
    let (closed, opened) = (closes.tx.clone(), closes.tx.clone());
    let mut server = Server::with_config(wsportal::Config::default().max_backlog(64 << 10));
    server.define_resource(
        "/push",
        Resource::new()
            .on_open(move |_| {
                let _ = opened.send(0);
            })
            .on_close(move |_, code, _| {
                let _ = closed.send(code);
            }),
    );
    let h = server.start("127.0.0.1:0").unwrap();
    let _reader = raw_upgraded(h.local_addr(), "/push"); // never reads
    assert_eq!(closes.next(), 0, "open");
    let b = h.broadcaster();
    let chunk = vec![0u8; 16 << 10];
    // Bounded: the backlog fills within a few MiB (socket buffers included).
    for _ in 0..4096 {
        if b.to_resource("/push", chunk.clone()).is_err() {
            break;
        }
    }
    assert_eq!(closes.next(), 1008);
    let s = h.stats();
    assert_eq!(count(&s.closes_by_code, 1008), 1);
    assert_eq!(s.backlog_bytes, 0);
}

fn metric_lines(body: &str) -> Vec<&str> {
    body.lines().filter(|l| !l.starts_with('#')).collect()
}

#[test]
fn the_metrics_page_serves_the_prometheus_text_format() {
    let closes = Events::new();
    let h = server(&closes);
    let mut ws = connect(h.local_addr(), "/echo");
    echo(&mut ws, "join");
    sync(&mut ws);
    let (status, _) = http(h.local_addr(), "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 404);

    let (status, text) = http(h.local_addr(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200, "{text}");
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    for line in [
        "# TYPE wsportal_connections gauge",
        "wsportal_connections{resource=\"/echo\"} 1",
        "wsportal_connections{resource=\"/quiet\"} 0",
        "wsportal_event_clients{stream=\"/events\"} 0",
        "wsportal_group_members{group=\"room\"} 1",
        "# TYPE wsportal_messages_received_total counter",
        "wsportal_messages_received_total 1",
        "wsportal_received_bytes_total 4",
        "wsportal_messages_sent_total 1",
        "wsportal_handshakes_accepted_total{kind=\"websocket\"} 1",
        "wsportal_requests_refused_total{status=\"404\"} 1",
        "wsportal_closes_total{code=\"1000\"} 0",
        "wsportal_hook_panics_total 0",
        "wsportal_threads{state=\"busy\"} ",
    ] {
        assert!(
            body.lines().any(|l| l.starts_with(line)),
            "no {line:?} in:\n{body}"
        );
    }
    // Every sample belongs to the family whose TYPE came last, and every
    // family has HELP then TYPE.
    let mut family = "";
    let mut help = "";
    for l in body.lines() {
        if let Some(rest) = l.strip_prefix("# HELP ") {
            help = rest.split(' ').next().unwrap();
        } else if let Some(rest) = l.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(name, help, "TYPE without its HELP: {l}");
            assert!(kind == "gauge" || kind == "counter", "{l}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{l}");
            family = name;
        } else {
            let name = l.split(['{', ' ']).next().unwrap();
            assert_eq!(name, family, "sample outside its family: {l}");
            let value = l.rsplit(' ').next().unwrap();
            assert!(value.parse::<u64>().is_ok(), "{l}");
        }
    }
    assert!(metric_lines(body).len() > 15, "{body}");

    let (status, text) = http(h.local_addr(), "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200);
    assert!(text.ends_with("\r\n\r\n"), "no body: {text}");
    let (status, text) = http(h.local_addr(), "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 405, "{text}");
}

#[test]
fn a_broadcaster_made_before_the_start_sees_the_running_server() {
    init_logs();
    let opened = Events::new();
    let tx = opened.tx.clone();
    let mut server = Server::new();
    server.define_resource(
        "/echo",
        Resource::new().on_open(move |_| {
            let _ = tx.send(());
        }),
    );
    let b = server.broadcaster();
    let before: Stats = b.stats();
    assert!(before.connections_by_resource.is_empty(), "{before:?}");
    let h = server.start("127.0.0.1:0").unwrap();
    let _ws = connect(h.local_addr(), "/echo");
    opened.next();
    let s = b.stats();
    assert_eq!(s.connections_by_resource, vec![("/echo".to_owned(), 1)]);
}

#[test]
fn a_stream_filter_may_ask_for_stats() {
    init_logs();
    let mut server = Server::new();
    let b = server.broadcaster();
    let seen = Events::new();
    let tx = seen.tx.clone();
    // A filter runs under its stream's lock: stats must not need it.
    let events = EventStream::new().filter(move |_, _| {
        let _ = tx.send(b.stats().event_clients);
        true
    });
    let publisher = events.publisher();
    server.define_event_stream("/events", events);
    let h = server.start("127.0.0.1:0").unwrap();
    let _client = event_client(&h);
    let (done_tx, done) = crossbeam_channel::bounded(1);
    // On a thread of its own, so that a deadlock fails the test in time.
    std::thread::spawn(move || {
        let _ = done_tx.send(publisher.send(&wsportal::Event::new("x")));
    });
    let pushed = done.recv_timeout(WAIT);
    if pushed.is_err() {
        // Deadlocked: closing the server would wait for the stream's lock too.
        std::mem::forget(h);
        panic!("the push did not return: stats() waited for the stream's lock");
    }
    assert_eq!(pushed.unwrap().unwrap(), 1);
    assert_eq!(seen.next(), 1);
}

#[test]
fn totals_never_go_down_while_clients_come_and_go() {
    let closes = Events::new();
    let h = server(&closes);
    let addr = h.local_addr();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..5 {
                    let mut ws = connect(addr, "/echo");
                    for _ in 0..5 {
                        echo(&mut ws, "hi");
                    }
                    ws.close(None).unwrap();
                    recv_close(&mut ws);
                }
            })
        })
        .collect();
    // Snapshots while connections close (and fold their counts in).
    let mut last = h.stats();
    let mut snapshots = 0;
    while !clients.iter().all(|c| c.is_finished()) {
        let s = h.stats();
        for (now, before) in [
            (s.messages_received, last.messages_received),
            (s.bytes_received, last.bytes_received),
            (s.messages_sent, last.messages_sent),
            (s.bytes_sent, last.bytes_sent),
        ] {
            assert!(now >= before, "went down: {last:?} then {s:?}");
        }
        last = s;
        snapshots += 1;
        std::thread::yield_now();
    }
    for c in clients {
        c.join().expect("client thread");
    }
    for _ in 0..20 {
        assert_eq!(closes.next(), 1005);
    }
    let s = h.stats();
    assert_eq!((s.messages_received, s.bytes_received), (100, 200));
    assert_eq!((s.messages_sent, s.bytes_sent), (100, 200));
    assert_eq!(count(&s.closes_by_code, 1005), 20);
    assert_eq!(s.websocket_accepted, 20);
    assert!(snapshots > 0);
}

#[test]
fn a_stream_answered_500_is_a_refusal_not_an_accepted_stream() {
    init_logs();
    let mut server = Server::new();
    server.define_event_stream(
        "/events",
        EventStream::new()
            .history(10)
            .on_unknown_id(|_| panic!("on_unknown_id fails")),
    );
    let h = server.start("127.0.0.1:0").unwrap();
    let request = "GET /events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 9\r\n\r\n";
    let (status, text) = http(h.local_addr(), request);
    assert_eq!(status, 500, "{text}");
    let s = h.stats();
    assert_eq!(s.event_streams_accepted, 0);
    assert_eq!(count(&s.refused_by_status, 500), 1);
}

#[test]
fn a_405_from_a_page_handler_or_metrics_is_a_refusal() {
    init_logs();
    let mut server = Server::new();
    server
        .define_page("/page", "text/plain", "page")
        .define_metrics("/metrics");
    let h = server.start("127.0.0.1:0").unwrap();
    for path in ["/page", "/metrics"] {
        let request = format!("PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        let (status, text) = http(h.local_addr(), &request);
        assert_eq!(status, 405, "{text}");
    }
    assert_eq!(count(&h.stats().refused_by_status, 405), 2);
}

#[test]
fn a_filter_panicking_on_a_publishers_thread_is_a_hook_panic() {
    init_logs();
    let mut server = Server::new();
    let events = EventStream::new().filter(|_, _| panic!("filter fails"));
    let publisher = events.publisher().allow_nobody();
    server.define_event_stream("/events", events);
    let h = server.start("127.0.0.1:0").unwrap();
    let _client = event_client(&h);
    assert_eq!(publisher.send(&wsportal::Event::new("x")).unwrap(), 0);
    assert_eq!(h.stats().hook_panics, 1);
}
