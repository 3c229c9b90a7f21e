//! What a first real app needed (issue 20): handlers, a broadcaster and a
//! closer before start, filtered sends and resource membership, pushing to
//! nobody as `Ok(0)`, per-connection state, per-client event filters, and
//! waiting for a close asked for elsewhere.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wsportal::{Error, Event, EventStream, Message, Resource, Response, Server};

use crate::support::*;

fn text(ws: &mut tungstenite::WebSocket<std::net::TcpStream>) -> String {
    recv(ws).into_text().unwrap().to_string()
}

#[test]
fn a_handler_answers_fresh_values_to_get_and_head() {
    let mut server = Server::new();
    let hits = AtomicU64::new(0);
    server.define_handler("/stats/:name", move |req| {
        let n = hits.fetch_add(1, Ordering::Relaxed) + 1;
        let name = req.param("name").unwrap_or("?");
        let who = req.query_param("who").unwrap_or_default();
        Response::json(format!(r#"{{"{name}":{n},"who":"{who}"}}"#)).header("X-Hits", n.to_string())
    });
    server.define_handler("/boom", |_| panic!("a handler bug"));
    let h = server.start("127.0.0.1:0").unwrap();
    let get = |path: &str| {
        http(
            h.local_addr(),
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"),
        )
    };

    let (status, first) = get("/stats/a?who=J%C3%BCrgen+B");
    assert_eq!(status, 200);
    assert!(
        first.contains("Content-Type: application/json\r\n"),
        "{first}"
    );
    assert!(first.ends_with(r#"{"a":1,"who":"Jürgen B"}"#), "{first}");
    assert!(get("/stats/a").1.ends_with(r#"{"a":2,"who":""}"#));

    let (status, head) = http(h.local_addr(), "HEAD /stats/b HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200);
    assert!(head.contains("X-Hits: 3\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");

    let (status, post) = http(h.local_addr(), "POST /stats/a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 405);
    assert!(post.contains("Allow: GET, HEAD\r\n"), "{post}");
    assert_eq!(get("/boom").0, 500);
    h.close();
}

#[test]
fn the_servers_broadcaster_and_closer_work_from_before_the_start() {
    let mut server = Server::new();
    let push = server.broadcaster();
    let stop = server.closer();
    server.define_resource(
        "/r",
        Resource::new().on_message(move |ws, msg| {
            if msg.as_text() == Some("stop") {
                stop.close(); // from a hook: only asks
            } else {
                let _ = ws.send(msg);
            }
        }),
    );
    assert!(matches!(push.to_all("x"), Err(Error::NoConnections(_))));
    assert_eq!(push.clone().allow_nobody().to_all("x").unwrap(), 0);

    for _run in 0..2 {
        let h = server.start("127.0.0.1:0").unwrap();
        let mut ws = connect(h.local_addr(), "/r");
        ws.send("ready".into()).unwrap();
        assert_eq!(text(&mut ws), "ready"); // registered
        assert_eq!(push.to_resource("/r", "pushed").unwrap(), 1);
        assert_eq!(text(&mut ws), "pushed");

        // A second server started from the same definition has hubs of its
        // own; the early broadcaster stays with the first.
        let other = server.start("127.0.0.1:0").unwrap();
        let mut ws2 = connect(other.local_addr(), "/r");
        ws2.send("ready".into()).unwrap();
        assert_eq!(text(&mut ws2), "ready");
        assert_eq!(push.to_all("first only").unwrap(), 1);
        drop(ws2);
        other.close();

        ws.send("stop".into()).unwrap();
        h.wait(); // returns because the hook asked
        let closed = std::thread::spawn(move || recv_close(&mut ws).0);
        h.close();
        assert_eq!(closed.join().unwrap(), 1001);
        assert_eq!(push.connection_count(), 0);
    }
}

#[test]
fn closing_wakes_loops_paused_on_a_closer() {
    let mut server = Server::new();
    server.define_resource("/r", Resource::new());
    let h = server.start("127.0.0.1:0").unwrap();
    let closer = h.closer();
    assert!(!h.wait_timeout(Duration::from_millis(1)));
    let looper = std::thread::spawn(move || {
        let mut rounds = 0u64;
        while !closer.wait_timeout(Duration::from_secs(3600)) {
            rounds += 1;
        }
        rounds
    });
    h.close(); // not via the closer: the loop ends all the same
    assert_eq!(looper.join().unwrap(), 0);
}

#[test]
fn filtered_sends_and_resource_membership() {
    #[derive(Default)]
    struct Topic(String);
    let mut server = Server::new();
    let push = server.broadcaster();
    server.define_resource(
        "/feed",
        Resource::new().on_message(|ws, msg| {
            let topic = msg.as_text().unwrap_or("").to_owned();
            ws.set_state(Topic(topic.clone()));
            // State is per connection and per type: another type is another value.
            let changes = ws.with_state(|n: &mut u32| {
                *n += 1;
                *n
            });
            let _ = ws.send_text(&format!("{topic} {changes}"));
        }),
    );
    server.define_resource(
        "/other",
        Resource::new().on_open(|ws| {
            let _ = ws.send_text("open");
        }),
    );
    let h = server.start("127.0.0.1:0").unwrap();
    let addr = h.local_addr();
    let mut clients: Vec<_> = ["rust", "lisp", "rust"]
        .iter()
        .map(|topic| {
            let mut ws = connect(addr, "/feed");
            ws.send((*topic).into()).unwrap();
            assert_eq!(text(&mut ws), format!("{topic} 1"));
            ws
        })
        .collect();
    clients[1].send("lisp".into()).unwrap();
    assert_eq!(text(&mut clients[1]), "lisp 2");
    let mut other = connect(addr, "/other");
    assert_eq!(text(&mut other), "open");

    assert_eq!(push.resource_count("/feed"), 3);
    assert_eq!(push.resource_count("/other"), 1);
    assert_eq!(push.resource_count("/nothing"), 0);
    let feed = push.resource_connections("/feed");
    assert_eq!(feed.len(), 3);

    let rust = |ws: &wsportal::Connection| ws.with_state(|t: &mut Topic| t.0 == "rust");
    assert_eq!(
        push.to_resource_where("/feed", rust, "about rust").unwrap(),
        2
    );
    assert_eq!(text(&mut clients[0]), "about rust");
    assert_eq!(text(&mut clients[2]), "about rust");
    let nobody = |_: &wsportal::Connection| false;
    assert!(matches!(
        push.to_resource_where("/feed", nobody, "x"),
        Err(Error::NoConnections(_))
    ));
    assert_eq!(
        push.clone()
            .allow_nobody()
            .to_resource_where("/feed", nobody, "x")
            .unwrap(),
        0
    );

    // An explicit set: repeats count once, a connection of another server not at all.
    let mut elsewhere = Server::new();
    elsewhere.define_resource(
        "/feed",
        Resource::new().on_open(|ws| {
            let _ = ws.send_text("open");
        }),
    );
    let e = elsewhere.start("127.0.0.1:0").unwrap();
    let mut stranger = connect(e.local_addr(), "/feed");
    assert_eq!(text(&mut stranger), "open");
    let strangers = elsewhere.broadcaster().connections();
    let set = [&feed[1], &feed[1], &strangers[0]];
    assert_eq!(
        push.to_connections(set, Message::from("just you")).unwrap(),
        1
    );
    assert_eq!(text(&mut clients[1]), "just you");
    assert!(matches!(
        push.to_connections([&strangers[0]], "x"),
        Err(Error::NoConnections(_))
    ));
    e.close();
    h.close();
}

#[test]
fn an_event_filter_applies_to_replay_and_live_events() {
    // `?parity=even` wants even-numbered events; other clients get all.
    let stream = EventStream::new()
        .history(10)
        .filter(
            |client, event: &Event| match client.request().query_param("parity") {
                Some(p) if p == "even" => event.data().parse::<u32>().is_ok_and(|n| n % 2 == 0),
                _ => true,
            },
        );
    let publisher = stream.publisher();
    let mut server = Server::new();
    server.define_event_stream("/events", stream);
    let h = server.start("127.0.0.1:0").unwrap();
    let quiet = publisher.clone().allow_nobody();
    for n in 1..=5 {
        let e = Event::new(n.to_string()).id(n.to_string());
        assert_eq!(quiet.send(&e).unwrap(), 0); // nobody yet: Ok(0), kept anyway
    }
    let mut even = sse(
        h.local_addr(),
        "/events?parity=even",
        "Last-Event-ID: 1\r\n",
    );
    let mut all = sse(h.local_addr(), "/events", "Last-Event-ID: 3\r\n");
    assert_eq!(next_event(&mut even).1, "2");
    assert_eq!(next_event(&mut even).1, "4");
    assert_eq!(next_event(&mut all).1, "4");
    assert_eq!(next_event(&mut all).1, "5");
    for n in 6..=7 {
        let e = Event::new(n.to_string()).id(n.to_string());
        assert_eq!(publisher.send(&e).unwrap(), if n == 6 { 2 } else { 1 });
    }
    assert_eq!(next_event(&mut even).1, "6");
    assert_eq!(next_event(&mut all).1, "6");
    assert_eq!(next_event(&mut all).1, "7");
    // A filter that keeps nobody: an error unless asked for Ok(0).
    let seven = Event::new("7");
    assert_eq!(publisher.to_group("nobody", &seven).ok(), None);
    assert_eq!(quiet.to_group("nobody", &seven).unwrap(), 0);
    drop((even, all));
    h.close();
}

// ------------------------------------------------ issue 31's workarounds

#[test]
fn accept_seeds_the_first_state_value() {
    init_logs();
    #[derive(Default)]
    struct Filter(String);
    let mut server = Server::new();
    server.define_resource(
        "/logs",
        Resource::new()
            .on_handshake(|req| {
                let wanted = req.query_param("filter").unwrap_or_default();
                Ok(wsportal::Accept::new().state(Filter(wanted)).state(7u32))
            })
            .on_open(|ws| {
                let filter = ws.with_state(|f: &mut Filter| f.0.clone());
                let n = ws.with_state(|n: &mut u32| *n);
                let _ = ws.send_text(&format!("{filter} {n}"));
            }),
    );
    let h = server.start("127.0.0.1:0").unwrap();
    let mut ws = connect(h.local_addr(), "/logs?filter=error");
    assert_eq!(text(&mut ws), "error 7");
    let mut ws = connect(h.local_addr(), "/logs");
    assert_eq!(text(&mut ws), " 7");
}

#[test]
fn a_publisher_sends_to_the_clients_a_predicate_keeps() {
    init_logs();
    #[derive(PartialEq, PartialOrd)]
    enum Level {
        Info,
        Error,
    }
    let events = EventStream::new().history(10).on_handshake(|req| {
        let least = match req.query_param("errors") {
            Some(_) => Level::Error,
            None => Level::Info,
        };
        Ok(wsportal::Accept::new().data(least))
    });
    let publisher = events.publisher();
    let mut server = Server::new();
    server.define_event_stream("/logs", events);
    let h = server.start("127.0.0.1:0").unwrap();
    let mut all = sse(h.local_addr(), "/logs", "");
    let mut errors = sse(h.local_addr(), "/logs?errors", "");
    let send = |level: Level, text: &str| {
        let wants = |c: &wsportal::EventClient| c.data::<Level>().is_none_or(|l| level >= *l);
        publisher.send_where(wants, &Event::new(text).id(text))
    };
    assert_eq!(send(Level::Info, "started").unwrap(), 1);
    assert_eq!(send(Level::Error, "disk full").unwrap(), 2);
    assert_eq!(next_event(&mut all).1, "started");
    assert_eq!(next_event(&mut all).1, "disk full");
    assert_eq!(next_event(&mut errors).1, "disk full");
    // Nobody kept: NoConnections, as for a broadcast; and no history.
    assert!(matches!(
        publisher.send_where(|_| false, &Event::new("x")),
        Err(Error::NoConnections(_))
    ));
    let mut resumed = sse(h.local_addr(), "/logs", "Last-Event-ID: started\r\n");
    publisher.send(&Event::new("live")).unwrap();
    assert_eq!(
        next_event(&mut resumed).1,
        "live",
        "send_where is not replayed"
    );
}

#[test]
fn stats_render_as_json_for_a_stats_handler() {
    init_logs();
    let mut server = Server::new();
    let b = server.broadcaster();
    server
        .define_resource("/echo", Resource::new())
        .define_handler("/stats", move |_| Response::json(b.stats().to_json()));
    let h = server.start("127.0.0.1:0").unwrap();
    let mut ws = connect(h.local_addr(), "/echo");
    ping_sync(&mut ws);
    let (status, body) = http(h.local_addr(), "GET /stats HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("Content-Type: application/json\r\n"),
        "{body}"
    );
    let json = body.split("\r\n\r\n").nth(1).unwrap();
    assert!(
        json.starts_with(r#"{"connections":1,"connections_by_resource":{"/echo":1},"#),
        "{json}"
    );
    assert!(json.contains(r#""websocket_accepted":1,"#), "{json}");
    assert!(json.ends_with('}'), "{json}");
}
