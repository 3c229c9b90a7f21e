//! Server-Sent Events over real sockets: the on-connect hook, headers,
//! keep-alive, resume with Last-Event-ID, pushes, writers, departures,
//! slow clients and shutdown.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use wsportal::{Accept, Config, Error, Event, EventStream, Reject, Server, ServerHandle};

use crate::support::*;

/// One parsed event (or comment block) as a browser would see its fields.
#[derive(Debug, Default, PartialEq)]
struct Got {
    name: Option<String>,
    id: Option<String>,
    data: Vec<String>,
    comments: Vec<String>,
}

impl Got {
    fn data(&self) -> String {
        self.data.join("\n")
    }
}

/// A raw event-stream client with bounded reads.
struct SseClient {
    reader: BufReader<TcpStream>,
    head: String,
}

impl SseClient {
    /// Connects and reads the response head. Panics unless it is a 200 stream.
    fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> SseClient {
        let c = SseClient::request(addr, path, headers);
        assert!(c.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", c.head);
        c
    }

    fn request(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> SseClient {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut reader = BufReader::new(s);
        let mut head = String::new();
        while !head.ends_with("\r\n\r\n") {
            let n = reader.read_line(&mut head).expect("response head in time");
            assert!(n > 0, "connection closed in the head: {head:?}");
        }
        SseClient { reader, head }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The next block up to a blank line, events and comments alike.
    fn next_block(&mut self) -> Got {
        let mut got = Got::default();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("event in time");
            assert!(n > 0, "stream ended while waiting for an event: {got:?}");
            let line = line.strip_suffix('\n').expect("lines end with \\n");
            if line.is_empty() {
                return got;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
            match field {
                "" => got.comments.push(value),
                "event" => got.name = Some(value),
                "id" => got.id = Some(value),
                "data" => got.data.push(value),
                "retry" => {}
                other => panic!("unexpected field {other:?}"),
            }
        }
    }

    /// The next event, skipping comment-only blocks (keep-alives).
    fn next_event(&mut self) -> Got {
        loop {
            let got = self.next_block();
            if !got.data.is_empty() || got.name.is_some() || got.id.is_some() {
                return got;
            }
        }
    }

    /// Reads to the end of the stream (skipping keep-alives); panics on an event.
    fn expect_end(&mut self) {
        let mut rest = String::new();
        let _ = self.reader.read_to_string(&mut rest);
        let events: Vec<&str> = rest
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with(':'))
            .collect();
        assert!(
            events.is_empty(),
            "unexpected events before the end: {events:?}"
        );
    }
}

fn start(config: Config, path: &str, stream: EventStream) -> ServerHandle {
    init_logs();
    let mut server = Server::with_config(config);
    server.define_event_stream(path, stream);
    server.start("127.0.0.1:0").expect("server starts")
}

/// A stream that reports each client's id when it opens and when it closes.
fn reporting(opens: &Events<u64>, closes: &Events<u64>) -> EventStream {
    let (o, c) = (opens.tx.clone(), closes.tx.clone());
    EventStream::new()
        .on_open(move |client| o.send(client.id()).unwrap())
        .on_close(move |client| c.send(client.id()).unwrap())
}

#[test]
fn hook_refuses_with_status_headers_and_body() {
    let stream = EventStream::new().on_handshake(|req| match req.query() {
        Some("who=nobody") => Err(Reject::new(401).header("WWW-Authenticate", "Bearer")),
        Some("who=banned") => Err(Reject::new(403).body("banned")),
        Some("who=done") => Err(Reject::new(204).header("X-Reason", "finished")),
        _ => Ok(Accept::new()),
    });
    let h = start(Config::default(), "/events", stream);
    let get = |q: &str| {
        http(
            h.local_addr(),
            &format!("GET /events?{q} HTTP/1.1\r\nHost: x\r\n\r\n"),
        )
    };

    let (status, text) = get("who=nobody");
    assert_eq!(status, 401);
    assert!(text.contains("WWW-Authenticate: Bearer\r\n"), "{text}");
    let (status, text) = get("who=banned");
    assert_eq!(status, 403);
    assert!(text.ends_with("\r\n\r\nbanned"), "{text}");
    let (status, text) = get("who=done");
    assert_eq!(status, 204);
    assert!(text.contains("X-Reason: finished\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "a 204 has no body: {text}");
    assert_eq!(h.event_client_count(), 0);

    // Only GET opens a stream.
    let (status, text) = http(
        h.local_addr(),
        "POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status, 405);
    assert!(text.contains("Allow: GET\r\n"), "{text}");
}

#[test]
fn accepts_with_extra_headers_and_per_client_data() {
    struct User(String);
    let stream = EventStream::new()
        .on_handshake(|req| {
            let name = req.query().unwrap_or("anonymous").to_owned();
            Ok(Accept::new()
                .header("Access-Control-Allow-Origin", "https://example.com")
                .data(User(name)))
        })
        .on_open(|client| {
            let name = client.data::<User>().map_or("?", |u| u.0.as_str());
            let hello = Event::new(format!("hello {name}\nsecond line"))
                .name("hello")
                .id("0");
            client.send(&hello).unwrap();
        });
    let h = start(Config::default(), "/events", stream);
    let mut c = SseClient::open(h.local_addr(), "/events?ada", &[]);
    assert_eq!(c.header("content-type"), Some("text/event-stream"));
    assert_eq!(c.header("cache-control"), Some("no-store"));
    assert_eq!(c.header("x-accel-buffering"), Some("no"));
    assert_eq!(
        c.header("access-control-allow-origin"),
        Some("https://example.com")
    );
    let got = c.next_event();
    assert_eq!(got.name.as_deref(), Some("hello"));
    assert_eq!(got.id.as_deref(), Some("0"));
    assert_eq!(got.data(), "hello ada\nsecond line");
}

#[test]
fn keepalive_comment_arrives_on_a_quiet_stream() {
    let config = Config::default().sse_keepalive(Some(Duration::from_millis(50)));
    let h = start(config, "/events", EventStream::new());
    let mut c = SseClient::open(h.local_addr(), "/events", &[]);
    let got = c.next_block();
    assert_eq!(got.comments, vec!["keep-alive".to_owned()], "{got:?}");
    assert!(got.data.is_empty());
    // And it keeps coming.
    assert_eq!(c.next_block().comments, vec!["keep-alive".to_owned()]);
}

#[test]
fn resume_replays_missed_events_then_live_ones() {
    let opens = Events::new();
    let o = opens.tx.clone();
    let stream = EventStream::new()
        .history(3)
        .on_unknown_id(|req| {
            let id = req.header("last-event-id").unwrap_or("");
            Some(Event::new(format!("cannot resume after {id}")).name("reset"))
        })
        .on_open(move |client| o.send(client.id()).unwrap());
    let publisher = stream.publisher();
    let h = start(Config::default(), "/events", stream);

    // Sent while nobody listens: kept anyway (the last 3).
    for i in 1..=5 {
        let e = Event::new(format!("event {i}")).id(i.to_string());
        assert!(matches!(publisher.send(&e), Err(Error::NoConnections(_))));
    }
    // Without an id, an event is live only: never replayed.
    assert!(publisher.send(&Event::new("live only")).is_err());
    let mut resumed = SseClient::open(h.local_addr(), "/events", &[("Last-Event-ID", "3")]);
    opens.next();
    let mut too_old = SseClient::open(h.local_addr(), "/events", &[("Last-Event-ID", "1")]);
    opens.next();
    let mut up_to_date = SseClient::open(h.local_addr(), "/events", &[("Last-Event-ID", "5")]);
    opens.next();
    let mut fresh = SseClient::open(h.local_addr(), "/events", &[]);
    opens.next();
    assert_eq!(publisher.send(&Event::new("event 6").id("6")).unwrap(), 4);

    assert_eq!(resumed.next_event().id.as_deref(), Some("4"));
    assert_eq!(resumed.next_event().data(), "event 5");
    assert_eq!(resumed.next_event().data(), "event 6");

    let reset = too_old.next_event();
    assert_eq!(reset.name.as_deref(), Some("reset"));
    assert_eq!(reset.data(), "cannot resume after 1");
    assert_eq!(too_old.next_event().data(), "event 6");

    assert_eq!(up_to_date.next_event().data(), "event 6");
    assert_eq!(fresh.next_event().data(), "event 6");
}

#[test]
fn push_to_many_to_a_group_and_to_one() {
    let opens = Events::new();
    let o = opens.tx.clone();
    let stream = EventStream::new().on_open(move |client| {
        if let Some(room) = client.param("room") {
            client.join(&format!("room:{room}"));
        }
        o.send(client.id()).unwrap();
    });
    let h = start(Config::default(), "/feed/:room", stream);
    let publisher = h
        .event_stream("/feed/:room")
        .expect("the stream is defined");
    assert!(h.event_stream("/nope").is_none());

    let rooms = ["a", "a", "b"];
    let mut clients: Vec<SseClient> = Vec::new();
    let mut ids = Vec::new();
    for room in rooms {
        clients.push(SseClient::open(
            h.local_addr(),
            &format!("/feed/{room}"),
            &[],
        ));
        ids.push(opens.next());
    }
    assert_eq!(h.event_client_count(), 3);
    assert_eq!(publisher.client_count(), 3);

    assert_eq!(
        publisher.send(&Event::new("to all").name("news")).unwrap(),
        3
    );
    for c in &mut clients {
        let got = c.next_event();
        assert_eq!(
            (got.name.as_deref(), got.data().as_str()),
            (Some("news"), "to all")
        );
    }
    assert_eq!(
        publisher
            .to_group("room:a", &Event::new("to room a"))
            .unwrap(),
        2
    );
    publisher
        .to_client(ids[2], &Event::new("to b alone"))
        .unwrap();
    assert_eq!(clients[0].next_event().data(), "to room a");
    assert_eq!(clients[1].next_event().data(), "to room a");
    assert_eq!(clients[2].next_event().data(), "to b alone");
}

#[test]
fn push_to_nobody_is_no_connections_and_bad_events_are_refused() {
    let (opens, closes) = (Events::new(), Events::new());
    let stream = reporting(&opens, &closes);
    let publisher = stream.publisher();
    let h = start(Config::default(), "/events", stream);
    let err = publisher.send(&Event::new("x")).unwrap_err();
    assert!(
        matches!(&err, Error::NoConnections(t) if t.contains("/events")),
        "{err}"
    );
    assert!(matches!(
        publisher.to_group("g", &Event::new("x")),
        Err(Error::NoConnections(_))
    ));
    assert!(matches!(
        publisher.to_client(12345, &Event::new("x")),
        Err(Error::NoConnections(_))
    ));

    let mut c = SseClient::open(h.local_addr(), "/events", &[]);
    let id = opens.next();
    for bad in [Event::new("x").name("a\nb"), Event::new("x").id("1\r")] {
        assert!(matches!(publisher.send(&bad), Err(Error::InvalidInput(_))));
        assert!(matches!(
            publisher.to_client(id, &bad),
            Err(Error::InvalidInput(_))
        ));
        let client = publisher.client(id).expect("connected");
        assert!(matches!(client.send(&bad), Err(Error::InvalidInput(_))));
    }
    // Nothing of the bad events reached the wire.
    publisher.send(&Event::new("good")).unwrap();
    assert_eq!(
        c.next_event(),
        Got {
            data: vec!["good".into()],
            ..Got::default()
        }
    );
}

#[test]
fn a_client_going_away_runs_the_close_hook() {
    let (opens, closes) = (Events::new(), Events::new());
    let stream = reporting(&opens, &closes);
    let publisher = stream.publisher();
    let h = start(Config::default(), "/events", stream);
    let c = SseClient::open(h.local_addr(), "/events", &[]);
    let id = opens.next();
    assert_eq!(h.event_client_count(), 1);
    drop(c);
    assert_eq!(closes.next(), id);
    assert_eq!(h.event_client_count(), 0);
    assert_eq!(publisher.client_count(), 0);
    assert!(matches!(
        publisher.send(&Event::new("x")),
        Err(Error::NoConnections(_))
    ));
}

#[test]
fn close_ends_the_stream_after_queued_events() {
    let (opens, closes) = (Events::new(), Events::new());
    let stream = reporting(&opens, &closes);
    let publisher = stream.publisher();
    let h = start(Config::default(), "/events", stream);
    let mut c = SseClient::open(h.local_addr(), "/events", &[]);
    let id = opens.next();
    let client = publisher.client(id).unwrap();
    client.send(&Event::new("last words")).unwrap();
    client.close();
    assert!(matches!(
        client.send(&Event::new("too late")),
        Err(Error::Closed)
    ));
    assert_eq!(c.next_event().data(), "last words");
    c.expect_end();
    assert_eq!(closes.next(), id);
    drop(h);
}

#[test]
fn writer_runs_until_the_client_leaves() {
    let results = Events::new();
    let (closes, r) = (Events::new(), results.tx.clone());
    let c_tx = closes.tx.clone();
    let stream = EventStream::new()
        .writer(move |sink| {
            let result = (|| {
                for n in 0.. {
                    sink.send(&Event::new(n.to_string()).name("count"))?;
                    sink.wait(Duration::from_millis(5))?;
                }
                Ok(())
            })();
            r.send(format!("{result:?}")).unwrap();
            result
        })
        .on_close(move |_| c_tx.send(()).unwrap());
    let h = start(Config::default(), "/count", stream);
    let mut c = SseClient::open(h.local_addr(), "/count", &[]);
    for n in 0..3 {
        assert_eq!(c.next_event().data(), n.to_string());
    }
    drop(c);
    assert_eq!(results.next(), "Err(Closed)");
    closes.next();
    assert_eq!(h.event_client_count(), 0);
}

#[test]
fn writer_returning_ends_the_stream() {
    let stream = EventStream::new().writer(|sink| {
        sink.send(&Event::new("one"))?;
        sink.comment("between")?;
        sink.send(&Event::new("two"))
    });
    let h = start(Config::default(), "/short", stream);
    let mut c = SseClient::open(h.local_addr(), "/short", &[]);
    assert_eq!(c.next_event().data(), "one");
    let between = Got {
        comments: vec!["between".into()],
        ..Got::default()
    };
    assert_eq!(c.next_block(), between);
    assert_eq!(c.next_event().data(), "two");
    c.expect_end();
}

#[test]
fn a_slow_client_is_cut_off_and_never_blocks_the_publisher() {
    let (opens, closes) = (Events::new(), Events::new());
    let config = Config::default().max_backlog(64 << 10);
    let stream = reporting(&opens, &closes);
    let publisher = stream.publisher();
    let h = start(config, "/events", stream);
    // A client that never reads, and one that does.
    let _stuck = SseClient::open(h.local_addr(), "/events", &[]);
    let stuck_id = opens.next();
    let mut reader = SseClient::open(h.local_addr(), "/events", &[]);
    opens.next();
    let big = Event::new("x".repeat(16 << 10));
    let mut sent = 0;
    // Kernel buffers take a few MB at most; the backlog limit must trip long before this bound.
    while publisher.client(stuck_id).is_some() && sent < 4000 {
        let _ = publisher.send(&big);
        sent += 1;
        // Keep the good client drained so only the stuck one is slow.
        assert_eq!(reader.next_event().data().len(), 16 << 10);
    }
    assert_eq!(closes.next(), stuck_id, "the stuck client was cut off");
    assert_eq!(publisher.send(&Event::new("still here")).unwrap(), 1);
    assert_eq!(reader.next_event().data(), "still here");
}

#[test]
fn shutdown_ends_event_clients_and_writers() {
    let closes = Events::new();
    let opens = Events::new();
    let (c1, c2, o1, o2) = (
        closes.tx.clone(),
        closes.tx.clone(),
        opens.tx.clone(),
        opens.tx.clone(),
    );
    let mut server = Server::with_config(Config::default().shutdown_grace(Duration::from_secs(5)));
    server.define_event_stream(
        "/idle",
        EventStream::new()
            .on_open(move |_| o1.send(()).unwrap())
            .on_close(move |_| c1.send("idle").unwrap()),
    );
    server.define_event_stream(
        "/writer",
        EventStream::new()
            .on_open(move |_| o2.send(()).unwrap())
            .writer(|sink| loop {
                sink.wait(Duration::from_secs(3600))?;
            })
            .on_close(move |_| c2.send("writer").unwrap()),
    );
    init_logs();
    let h = server.start("127.0.0.1:0").unwrap();
    let mut idle = SseClient::open(h.local_addr(), "/idle", &[]);
    let mut writer = SseClient::open(h.local_addr(), "/writer", &[]);
    opens.next();
    opens.next();
    let publisher = h.event_stream("/idle").unwrap();
    publisher.send(&Event::new("bye")).unwrap();

    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        h.close();
        done_tx.send(()).unwrap();
    });
    done_rx.recv_timeout(WAIT).expect("close returned in time");
    let mut seen = vec![closes.next(), closes.next()];
    seen.sort();
    assert_eq!(seen, ["idle", "writer"]);
    assert_eq!(idle.next_event().data(), "bye");
    idle.expect_end();
    writer.expect_end();
    assert!(matches!(
        publisher.send(&Event::new("x")),
        Err(Error::NoConnections(_))
    ));
}

#[test]
fn an_event_stream_is_served_by_one_server_at_a_time() {
    init_logs();
    let mut server = Server::new();
    server.define_event_stream("/events", EventStream::new());
    let first = server.start("127.0.0.1:0").unwrap();
    assert!(matches!(server.start("127.0.0.1:0"), Err(Error::Route(_))));
    first.close();
    let again = server
        .start("127.0.0.1:0")
        .expect("free again once the first has stopped");
    again.close();
}
