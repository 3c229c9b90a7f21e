//! The Redis backplane (feature `redis`) against a real Redis: each test
//! starts its own `redis-server` on a free port with persistence off, and
//! stops it. Without `redis-server` the tests say why and are skipped,
//! except under `CI=true`, where they fail.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tungstenite::Message as WsMessage;
use wsportal::{Backplane, Config, Error, Event, EventStream, Resource, Server, ServerHandle};

use crate::support::{connect, init_logs, next_event, recv, sse, WAIT};

/// A `redis-server` of our own; killed and reaped on drop.
pub(crate) struct Redis {
    child: Option<Child>,
    port: u16,
}

impl Redis {
    /// Starts one on a free port, or `None` (after saying why) when
    /// `redis-server` is not installed outside CI.
    pub(crate) fn start() -> Option<Redis> {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .unwrap();
            match Redis::start_on(port) {
                Ok(r) => return Some(r),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if std::env::var("CI").as_deref() == Ok("true") {
                        panic!(
                            "redis-server is not installed, and CI must run the backplane tests"
                        );
                    }
                    // Straight to stderr: the test harness does not capture it.
                    let _ = writeln!(
                        std::io::stderr(),
                        "SKIPPED: redis-server is not installed (apt-get install redis-server)"
                    );
                    return None;
                }
                Err(e) => {
                    eprintln!("redis-server on port {port} did not start ({e}); another port")
                }
            }
        }
        panic!("redis-server did not start on any of 5 ports");
    }

    /// Starts one on `port`; returns when it accepts connections.
    fn start_on(port: u16) -> std::io::Result<Redis> {
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let out = child.stdout.take().expect("piped");
        let (ready, ready_rx) = crossbeam_channel::bounded(1);
        // Reads (and drains) its log until it exits.
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if line.contains("Ready to accept connections") {
                    let _ = ready.try_send(());
                }
            }
        });
        let mut redis = Redis {
            child: Some(child),
            port,
        };
        match ready_rx.recv_timeout(WAIT) {
            Ok(()) => Ok(redis),
            Err(_) => {
                redis.kill();
                Err(std::io::Error::other("not ready"))
            }
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills it and starts a new, empty one on the same port.
    pub(crate) fn restart(&mut self) {
        self.kill();
        let again = Redis::start_on(self.port).expect("redis-server restarts on its port");
        *self = again;
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits (bounded) until `f` holds.
pub(crate) fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub(crate) fn backplane(redis: &Redis, prefix: &str) -> Backplane {
    Backplane::redis(&redis.url())
        .unwrap()
        .prefix(prefix)
        .presence_ttl(Duration::from_millis(900))
}

/// A chat server: `/chat/:room` joins its room and relays text to it.
pub(crate) fn chat_server(bp: &Backplane) -> ServerHandle {
    let mut server =
        Server::with_config(Config::default().shutdown_grace(Duration::from_millis(200)));
    server.define_resource(
        "/chat/:room",
        Resource::new()
            .on_open(|ws| ws.join(ws.param("room").unwrap_or("")))
            .on_message(|ws, msg| {
                let _ = ws
                    .broadcaster()
                    .to_group(ws.param("room").unwrap_or(""), msg);
            }),
    );
    server.backplane(bp.clone());
    server.start("127.0.0.1:0").unwrap()
}

pub(crate) fn text(ws: &mut tungstenite::WebSocket<TcpStream>) -> String {
    match recv(ws) {
        WsMessage::Text(t) => t.to_string(),
        m => panic!("expected text, got {m:?}"),
    }
}

#[test]
fn a_room_message_reaches_members_on_three_instances_in_order() {
    init_logs();
    let Some(redis) = Redis::start() else { return };
    let bp = backplane(&redis, "order");
    let servers: Vec<ServerHandle> = (0..3).map(|_| chat_server(&bp)).collect();
    let mut clients: Vec<_> = servers
        .iter()
        .map(|s| connect(s.local_addr(), "/chat/lobby"))
        .collect();
    // Counted only once each instance has subscribed (its liveness key is
    // written after its subscription) and its member joined.
    eventually("the room has 3 members", || {
        bp.cluster_group_size("lobby").ok() == Some(3)
    });
    for i in 0..20 {
        clients[1].send(WsMessage::text(format!("m{i}"))).unwrap();
    }
    for c in &mut clients {
        for i in 0..20 {
            assert_eq!(text(c), format!("m{i}"));
        }
    }
    // A worker process serving no clients publishes too.
    let worker = backplane(&redis, "order");
    worker.publish_to_group("lobby", "from a worker").unwrap();
    // Foreign and malformed messages on the channel are dropped.
    let mut raw = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    for junk in [&b"not ours"[..], &[0x57, 9, 1, 2], &[0x57, 1, 0], &[]] {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("order:bus")
            .arg(junk)
            .query(&mut raw)
            .unwrap();
    }
    worker
        .publish_to_resource("/chat/:room", "to the resource")
        .unwrap();
    for c in &mut clients {
        assert_eq!(text(c), "from a worker");
        assert_eq!(text(c), "to the resource");
    }
    // (Order holds per publisher: this one is local at once for `servers[2]`.)
    assert_eq!(servers[2].broadcaster().to_all("to all").unwrap(), 1);
    for c in &mut clients {
        assert_eq!(text(c), "to all");
    }
}

#[test]
fn group_presence_counts_every_instance() {
    init_logs();
    let Some(redis) = Redis::start() else { return };
    let bp = backplane(&redis, "presence");
    let (a, b, c) = (chat_server(&bp), chat_server(&bp), chat_server(&bp));
    let _a1 = connect(a.local_addr(), "/chat/g");
    let _a2 = connect(a.local_addr(), "/chat/g");
    let mut b1 = connect(b.local_addr(), "/chat/g");
    eventually("g has 3 members", || {
        c.broadcaster().cluster_group_size("g").ok() == Some(3)
    });
    // `c` has no member: Ok(0), and the others get it.
    assert_eq!(c.broadcaster().to_group("g", "hello").unwrap(), 0);
    assert_eq!(text(&mut b1), "hello");
    match c.broadcaster().to_group("nobody", "x") {
        Err(Error::NoConnections(_)) => {}
        other => panic!("expected NoConnections, got {other:?}"),
    }
    // A graceful stop takes the instance out of presence at once.
    drop(_a1);
    drop(_a2);
    a.close();
    eventually("g has 1 member", || {
        bp.cluster_group_size("g").ok() == Some(1)
    });
    b1.close(None).unwrap();
    eventually("g is empty", || bp.cluster_group_size("g").ok() == Some(0));
    match c.broadcaster().to_group("g", "x") {
        Err(Error::NoConnections(_)) => {}
        other => panic!("expected NoConnections, got {other:?}"),
    }
}

#[test]
fn redis_restarted_mid_run_local_delivery_goes_on_and_cross_instance_resumes() {
    init_logs();
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let bp = backplane(&redis, "restart");
    let (a, b) = (chat_server(&bp), chat_server(&bp));
    let mut ca = connect(a.local_addr(), "/chat/r");
    let mut cb = connect(b.local_addr(), "/chat/r");
    eventually("r has 2 members", || {
        bp.cluster_group_size("r").ok() == Some(2)
    });
    ca.send(WsMessage::text("before")).unwrap();
    assert_eq!(text(&mut ca), "before");
    assert_eq!(text(&mut cb), "before");

    redis.kill();
    // Local delivery goes on while Redis is down.
    for i in 0..5 {
        ca.send(WsMessage::text(format!("down{i}"))).unwrap();
        assert_eq!(text(&mut ca), format!("down{i}"));
    }
    assert!(bp.cluster_group_size("r").is_err());

    redis.restart();
    // Both instances resubscribe and write their presence again.
    eventually("r has 2 members again", || {
        bp.cluster_group_size("r").ok() == Some(2)
    });
    // A message published on a connection that Redis dropped can be lost
    // (at most once); one that arrives is in order.
    ca.send(WsMessage::text("after")).unwrap();
    assert_eq!(text(&mut ca), "after");
    assert_eq!(text(&mut cb), "after");
}

#[test]
fn sse_resume_against_a_different_instance() {
    init_logs();
    let Some(redis) = Redis::start() else { return };
    let bp = backplane(&redis, "sse");
    let start = |bp: &Backplane| {
        let mut server =
            Server::with_config(Config::default().shutdown_grace(Duration::from_millis(200)));
        server.define_event_stream("/events", EventStream::new().history(10));
        server.define_resource(
            "/ws/:g",
            Resource::new().on_open(|ws| ws.join(ws.param("g").unwrap_or(""))),
        );
        server.backplane(bp.clone());
        server.start("127.0.0.1:0").unwrap()
    };
    let (a, b) = (start(&bp), start(&bp));
    // Both subscribed: each has a member of its own group counted.
    let _wa = connect(a.local_addr(), "/ws/a");
    let _wb = connect(b.local_addr(), "/ws/b");
    eventually("both instances are counted", || {
        bp.cluster_group_size("a").ok() == Some(1) && bp.cluster_group_size("b").ok() == Some(1)
    });
    let publisher = a.event_stream("/events").unwrap().allow_nobody();
    let mut on_a = sse(a.local_addr(), "/events", "");
    let mut watch_b = sse(b.local_addr(), "/events", "");
    publisher.send(&Event::new("e1").id("1")).unwrap();
    assert_eq!(next_event(&mut on_a), ("1".into(), "e1".into()));
    drop(on_a); // the browser loses its connection after event 1
    publisher.send(&Event::new("e2").id("2")).unwrap();
    publisher.send(&Event::new("e3").id("3")).unwrap();
    for n in 1..=3 {
        assert_eq!(next_event(&mut watch_b), (n.to_string(), format!("e{n}")));
    }
    // ... and reconnects to the other instance.
    let mut on_b = sse(b.local_addr(), "/events", "Last-Event-ID: 1\r\n");
    assert_eq!(next_event(&mut on_b), ("2".into(), "e2".into()));
    assert_eq!(next_event(&mut on_b), ("3".into(), "e3".into()));
    // A worker's event reaches both instances, and their histories.
    let worker = backplane(&redis, "sse");
    worker
        .publish_event("/events", &Event::new("e4").id("4"))
        .unwrap();
    assert_eq!(next_event(&mut on_b), ("4".into(), "e4".into()));
    let mut late_a = sse(a.local_addr(), "/events", "Last-Event-ID: 3\r\n");
    assert_eq!(next_event(&mut late_a), ("4".into(), "e4".into()));
}

/// The chat example's binary (built by `cargo test --features redis`).
fn chat_example() -> std::path::PathBuf {
    example("chat")
}

/// An example's binary (built by `cargo test --features redis`).
pub(crate) fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/it-HASH -> target/debug/examples/chat
    let path = exe
        .parent()
        .and_then(|p| p.parent())
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo test --features redis` (which builds the examples)",
        path.display()
    );
    path
}

/// A chat example process; SIGKILLed on drop.
struct Instance {
    child: Child,
    addr: SocketAddr,
}

impl Instance {
    fn start(redis: &Redis) -> Instance {
        let mut child = Command::new(chat_example())
            .args([
                "127.0.0.1:0",
                "--redis",
                &redis.url(),
                "--presence-ttl-ms",
                "900",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "listening on ws://ADDR/chat"
        let addr = line
            .trim()
            .strip_prefix("listening on ws://")
            .and_then(|s| s.strip_suffix("/chat"))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Instance { child, addr }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn three_chat_processes_share_a_room_and_a_killed_one_drops_out_of_presence() {
    init_logs();
    let Some(redis) = Redis::start() else { return };
    let watch = backplane(&redis, "chat");
    let mut instances: Vec<Instance> = (0..3).map(|_| Instance::start(&redis)).collect();
    let mut clients: Vec<_> = instances
        .iter()
        .map(|i| connect(i.addr, "/chat/lobby"))
        .collect();
    eventually("3 members", || {
        watch.cluster_group_size("room:lobby").ok() == Some(3)
    });
    for i in 0..10 {
        clients[0].send(WsMessage::text(format!("m{i}"))).unwrap();
    }
    for c in &mut clients {
        for i in 0..10 {
            assert_eq!(text(c), format!("m{i}"));
        }
    }
    // SIGKILL: no goodbye; its presence expires with its TTL.
    let mut killed = instances.pop().unwrap();
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    eventually("2 members", || {
        watch.cluster_group_size("room:lobby").ok() == Some(2)
    });
    clients[1].send(WsMessage::text("still here")).unwrap();
    assert_eq!(text(&mut clients[0]), "still here");
    assert_eq!(text(&mut clients[1]), "still here");
}

/// Two demo processes with `--redis`: a chat message sent on one reaches
/// the other's chat and event stream, with an event id unique to its
/// sender, and each stream carries both instances' `stats`.
#[test]
fn two_demo_processes_share_chat_and_events() {
    init_logs();
    let Some(redis) = Redis::start() else { return };
    let start = || {
        let mut child = Command::new(example("demo"))
            .args(["127.0.0.1:0", "--redis", &redis.url()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let addr = out
            .lines()
            .map(Result::unwrap)
            .find_map(|l| l.strip_prefix("listening on ").map(str::to_owned))
            .expect("the demo says where it listens")
            .parse()
            .unwrap();
        Instance { child, addr }
    };
    let (a, b) = (start(), start());
    let mut on_a = connect(a.addr, "/chat");
    let mut on_b = connect(b.addr, "/chat");
    let mut events_b = sse(b.addr, "/events", "");
    // B may not be subscribed yet: send until one message gets across.
    on_b.get_mut()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let mut sent = 0;
    let got = loop {
        assert!(Instant::now() < deadline, "no chat message reached B");
        sent += 1;
        on_a.send(WsMessage::text(format!("hello {sent}"))).unwrap();
        match on_b.read() {
            Ok(WsMessage::Text(t)) => break t.to_string(),
            Ok(m) => panic!("unexpected {m:?}"),
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
    };
    assert!(got.starts_with("hello "), "{got}");
    // B is subscribed now, but it may have subscribed between A's two
    // publishes of that message (the event, then the chat message), and so
    // have missed its event. One more message reaches both.
    sent += 1;
    let last = format!("hello {sent}");
    on_a.send(WsMessage::text(last.clone())).unwrap();
    on_b.get_mut().set_read_timeout(Some(WAIT)).unwrap();
    while text(&mut on_b) != last {}
    // B's stream: that chat event, its id from A's process, and both
    // instances' stats (they come every second).
    let (mut chat_id, mut stats_from) = (None, Vec::new());
    for _ in 0..200 {
        let (id, data) = next_event(&mut events_b);
        if data == last {
            chat_id = Some(id);
        } else if let Some(rest) = data.strip_prefix("{\"server\":\"") {
            let server = rest.split('"').next().unwrap().to_owned();
            if !stats_from.contains(&server) {
                stats_from.push(server);
            }
        }
        if chat_id.is_some() && stats_from.len() == 2 {
            break;
        }
    }
    assert_eq!(chat_id, Some(format!("{}-{sent}", a.child.id())));
    stats_from.sort();
    let mut both = vec![a.addr.to_string(), b.addr.to_string()];
    both.sort();
    assert_eq!(stats_from, both);
}

#[test]
fn a_frozen_redis_holds_up_no_hook_and_local_delivery_goes_on() {
    init_logs();
    let Some(redis) = Redis::start() else { return };
    let bp = backplane(&redis, "frozen").timeout(Duration::from_millis(50));
    let (a, b) = (chat_server(&bp), chat_server(&bp));
    let mut ca = connect(a.local_addr(), "/chat/f");
    let mut cb = connect(b.local_addr(), "/chat/f");
    eventually("f has 2 members", || {
        bp.cluster_group_size("f").ok() == Some(2)
    });
    let pid = redis.child.as_ref().unwrap().id().to_string();
    let signal = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    };
    // Accepts connections (the kernel does) but answers nothing.
    signal("-STOP");
    for i in 0..3 {
        ca.send(WsMessage::text(format!("frozen{i}"))).unwrap();
        assert_eq!(text(&mut ca), format!("frozen{i}"));
    }
    assert!(bp.cluster_group_size("f").is_err());
    signal("-CONT");
    eventually("f has 2 members again", || {
        bp.cluster_group_size("f").ok() == Some(2)
    });
    // Anything published before the instances resubscribed may be lost;
    // keep sending until one crosses, then the rest arrive in order.
    let mut n = 0;
    eventually("a message crosses again", || {
        n += 1;
        ca.send(WsMessage::text(format!("after{n}"))).unwrap();
        assert_eq!(text(&mut ca), format!("after{n}"));
        cb.get_mut()
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let got = cb.read();
        cb.get_mut().set_read_timeout(Some(WAIT)).unwrap();
        matches!(got, Ok(WsMessage::Text(_)))
    });
    drop((a, b));
}

#[test]
fn bad_settings_are_refused_at_start_and_an_unreachable_redis_fails_fast() {
    init_logs();
    match Backplane::redis("http://nope") {
        Err(Error::Config { setting, .. }) => assert_eq!(setting, "backplane"),
        other => panic!("expected a Config error, got {other:?}"),
    }
    // Nothing listens on port 1.
    let bp = Backplane::redis("redis://127.0.0.1:1/").unwrap();
    for bad in [
        bp.clone().timeout(Duration::ZERO),
        bp.clone().presence_ttl(Duration::from_millis(1)),
    ] {
        let mut server = Server::new();
        server.backplane(bad);
        match server.start("127.0.0.1:0") {
            Err(Error::Config { setting, .. }) => {
                assert!(setting.starts_with("backplane"), "{setting}")
            }
            other => panic!("expected a Config error, got {other:?}"),
        }
    }
    for _ in 0..3 {
        match bp.publish_to_all("x") {
            Err(Error::Backplane(_)) => {}
            other => panic!("expected a Backplane error, got {other:?}"),
        }
    }
    // A server whose Redis is unreachable serves its own clients.
    let h = chat_server(&bp);
    let mut c = connect(h.local_addr(), "/chat/alone");
    c.send(WsMessage::text("hi")).unwrap();
    assert_eq!(text(&mut c), "hi");
    assert_eq!(h.broadcaster().to_group("alone", "local").unwrap(), 1);
    assert_eq!(text(&mut c), "local");
}

/// A field of Redis's `INFO` (`name:value` lines; `cmdstat_ping:calls=N,...`).
fn info_number(raw: &mut redis::Connection, section: &str, field: &str) -> u64 {
    let text: String = redis::cmd("INFO").arg(section).query(raw).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map_or(0, |v| {
            let v = v.strip_prefix("calls=").unwrap_or(v);
            v.split(',').next().unwrap().trim().parse().unwrap()
        })
}

/// Regression: the subscriber's idle ping (every second of silence) was
/// read as a string, which a subscribed connection's `pong` is not, so an
/// idle instance dropped and remade its subscription every second.
#[test]
fn an_idle_subscription_is_kept() {
    init_logs();
    let Some(redis) = Redis::start() else { return };
    let bp = backplane(&redis, "idle").presence_ttl(Duration::from_secs(600));
    let h = chat_server(&bp);
    let _c = connect(h.local_addr(), "/chat/i");
    eventually("subscribed", || bp.cluster_group_size("i").ok() == Some(1));
    let mut raw = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let connections = info_number(&mut raw, "stats", "total_connections_received");
    // Two idle pings went out (and came back) ...
    eventually("two idle pings", || {
        info_number(&mut raw, "commandstats", "cmdstat_ping") >= 2
    });
    // ... and nobody connected again.
    assert_eq!(
        info_number(&mut raw, "stats", "total_connections_received"),
        connections
    );
}
