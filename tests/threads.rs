//! `ServerHandle::close` leaves no thread behind, and neither does dropping
//! or disconnecting a `ClientHandle`. This is its own test binary
//! (its own process) with one test, so that no other test's threads are counted.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use wsportal::{Config, Event, EventStream, Resource, Server};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// The thread count once it reaches `expected`, or after 5 s. The kernel
/// removes a joined thread from `/proc/self/task` a moment after `join`
/// returns, so a count taken at once can still include it.
fn settled(expected: usize) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let n = threads();
        if n == expected || std::time::Instant::now() >= deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Threads whose name starts with `prefix` (the kernel keeps 15 bytes of it).
fn named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

/// An event-stream client that has read its response head.
fn sse_client(addr: std::net::SocketAddr, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"));
    s
}

#[test]
fn close_joins_every_thread() {
    let before = threads();
    let mut server =
        Server::with_config(Config::default().shutdown_grace(Duration::from_millis(300)));
    server.define_resource(
        "/",
        Resource::new().on_message(|ws, m| {
            let _ = ws.send(m);
        }),
    );
    // Event streams: one client idle in its read, one in a writer's wait.
    server.define_event_stream("/events", EventStream::new());
    server.define_event_stream(
        "/ticks",
        EventStream::new().writer(|sink| loop {
            sink.send(&Event::new("tick"))?;
            sink.wait(Duration::from_secs(3600))?;
        }),
    );
    let h = server.start("127.0.0.1:0").unwrap();
    let addr = h.local_addr();

    // Open clients of every kind: upgraded, half-way through a request, idle.
    let mut open = Vec::new();
    for _ in 0..5 {
        let (mut ws, _) = tungstenite::connect(format!("ws://{addr}/")).unwrap();
        ws.send(tungstenite::Message::text("hi")).unwrap();
        assert_eq!(ws.read().unwrap(), tungstenite::Message::text("hi"));
        open.push(ws);
    }
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let idle = TcpStream::connect(addr).unwrap();
    let sse = [sse_client(addr, "/events"), sse_client(addr, "/ticks")];
    assert!(threads() > before + 5, "connection threads are running");

    h.close();
    assert_eq!(settled(before), before, "no thread of ours is left");
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
    half.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = half.read_to_end(&mut rest);
    drop((open, idle, sse));

    // Dropping the handle does the same.
    let h = Server::new().start("127.0.0.1:0").unwrap();
    let _c = TcpStream::connect(h.local_addr()).unwrap();
    drop(h);
    assert_eq!(settled(before), before);

    // Each client owns a reader and a housekeeper; dropping the last handle
    // or disconnecting joins both.
    let h = server.start("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", h.local_addr());
    let plain = wsportal::Client::new(&url).connect().unwrap();
    let hooked = wsportal::Client::new(&url)
        .connect_with(Resource::new().on_message(|_, _| {}))
        .unwrap();
    assert_eq!(named("wsportal-client"), 2);
    // (The server keeps its connection threads pooled, so counts only drop by ours.)
    let running = threads();
    drop(plain);
    assert_eq!(
        settled(running - 2),
        running - 2,
        "its reader and housekeeper are joined"
    );
    assert_eq!(named("wsportal-client"), 1);
    let clone = hooked.clone();
    drop(hooked);
    assert_eq!(
        settled(running - 2),
        running - 2,
        "a clone keeps the client open"
    );
    assert_eq!(clone.disconnect(4000, "done"), Some((4000, "done".into())));
    assert_eq!(settled(running - 4), running - 4);
    assert_eq!(named("wsportal-client"), 0);
    drop(clone);
    h.close();
    assert_eq!(settled(before), before);

    // A backplane adds a subscriber and a presence thread, joined by close, even while
    // Redis is unreachable (here nothing listens on port 1: it backs off).
    #[cfg(feature = "redis")]
    {
        let mut server = Server::new();
        server.backplane(wsportal::Backplane::redis("redis://127.0.0.1:1/").unwrap());
        let h = server.start("127.0.0.1:0").unwrap();
        // A new thread names itself once it runs: wait (bounded) for it.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while (named("wsportal-backpl") != 1 || named("wsportal-presen") != 1)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(named("wsportal-backpl"), 1);
        assert_eq!(named("wsportal-presen"), 1);
        assert_eq!(
            settled(before + 4),
            before + 4,
            "acceptor, housekeeper, subscriber, presence"
        );
        h.close();
        assert_eq!(settled(before), before);
        assert_eq!(named("wsportal-backpl"), 0);
        assert_eq!(named("wsportal-presen"), 0);
    }
}
