//! Regressions from the correctness review (issues 17 and 19): races between
//! threads, deadlines from huge durations, what a connection reports once it
//! has ended, and shutdown from inside a hook.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use wsportal::{Client, Config, Connection, EventStream, Resource, Server, ServerHandle};

use crate::support::*;

/// A server whose connections are handed to the test by `on_open`.
fn server_giving_connections(config: Config) -> (ServerHandle, Events<Connection>) {
    init_logs();
    let ev: Events<Connection> = Events::new();
    let tx = ev.tx.clone();
    let mut server = Server::with_config(config);
    server.define_resource(
        "/",
        Resource::new().on_open(move |ws| tx.send(ws.clone()).unwrap()),
    );
    (server.start("127.0.0.1:0").expect("server starts"), ev)
}

/// Issue 17.8: a `join` racing a `leave` of the same group must leave the
/// connection's list and the hub's map agreeing, whichever wins.
#[test]
fn concurrent_join_and_leave_agree() {
    let (h, ev) = server_giving_connections(Config::default());
    let _peer = connect(h.local_addr(), "/");
    let conn = ev.next();
    let b = h.broadcaster();
    let rounds = 20_000;
    // Keeps the hub's group map busy, so that `leave` is often held up
    // between its two updates: without that the bad order is rare.
    let stop = Arc::new(AtomicBool::new(false));
    let (s, busy) = (Arc::clone(&stop), h.broadcaster());
    let hammer = thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            let _ = busy.groups();
        }
    });
    let go = Arc::new(Barrier::new(2));
    let (c, g) = (conn.clone(), Arc::clone(&go));
    let joiner = thread::spawn(move || {
        for _ in 0..rounds {
            g.wait();
            c.join("g");
            g.wait();
        }
    });
    for round in 0..rounds {
        conn.join("g");
        go.wait();
        conn.leave("g");
        go.wait();
        let listed = conn.groups().iter().any(|g| g == "g");
        let member = b.group_members("g").contains(&conn);
        assert_eq!(
            listed, member,
            "round {round}: groups() and the hub disagree"
        );
    }
    joiner.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    hammer.join().unwrap();
}

/// Every duration setting at its largest.
fn forever() -> Config {
    Config::default()
        .handshake_timeout(Duration::MAX)
        .close_timeout(Duration::MAX)
        .ping_interval(Some(Duration::MAX))
        .ping_timeout(Duration::MAX)
        .write_timeout(Duration::MAX)
        .sse_keepalive(Some(Duration::MAX))
}

/// Issue 17.6: `Duration::MAX` settings are "never", and closing a
/// connection (either side first) still runs `on_close` and frees it.
#[test]
fn huge_duration_settings_do_not_kill_connections() {
    init_logs();
    let closes: Events<u16> = Events::new();
    let tx = closes.tx.clone();
    let mut server = Server::with_config(forever());
    server.define_resource(
        "/",
        Resource::new()
            .on_message(|ws, _| ws.close(4000, "bye"))
            .on_close(move |_, code, _| tx.send(code).unwrap()),
    );
    let h = server.start("127.0.0.1:0").expect("server starts");
    // The server closes first.
    let mut ws = connect(h.local_addr(), "/");
    ws.send(tungstenite::Message::text("close me")).unwrap();
    assert_eq!(recv_close(&mut ws).0, 4000);
    assert_eq!(closes.next(), 4000);
    // The peer closes first.
    let mut ws = connect(h.local_addr(), "/");
    ws.close(None).unwrap();
    assert_eq!(recv_close(&mut ws).0, 1005);
    assert_eq!(closes.next(), 1005);
    h.close();
}

/// Issue 19.12: a client's deadlines from huge durations saturate.
#[test]
fn client_waits_with_huge_durations() {
    let (h, ev) = server_giving_connections(Config::default());
    let ws = Client::new(format!("ws://{}/", h.local_addr()))
        .timeout(Duration::MAX)
        .config(forever())
        .connect()
        .expect("connects");
    let server_side = ev.next();
    server_side.close(4001, "done");
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let waiter = ws.clone();
    thread::spawn(move || {
        let _ = done_tx.send(waiter.wait_closed(Duration::MAX));
    });
    let status = done_rx.recv_timeout(WAIT).expect("wait_closed returned");
    assert_eq!(status, Some((4001, "done".to_owned())));
    assert_eq!(ws.disconnect(1000, ""), Some((4001, "done".to_owned())));
}

/// Issue 19.12: `EventSink::wait(Duration::MAX)` waits until the client goes.
#[test]
fn event_sink_waits_with_a_huge_duration() {
    init_logs();
    let ends: Events<String> = Events::new();
    let (opened, ended) = (ends.tx.clone(), ends.tx.clone());
    let mut server = Server::with_config(forever());
    server.define_event_stream(
        "/events",
        EventStream::new()
            .on_open(move |_| opened.send("open".into()).unwrap())
            .writer(move |sink| {
                let got = sink.wait(Duration::MAX);
                ended.send(format!("{got:?}")).unwrap();
                got
            }),
    );
    let h = server.start("127.0.0.1:0").expect("server starts");
    let mut s = TcpStream::connect(h.local_addr()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    assert_eq!(ends.next(), "open");
    drop(s);
    assert_eq!(ends.next(), "Err(Closed)");
}

/// Issue 17.7: once a peer vanished (1006), `is_open` is false and sends
/// fail, in `on_close` and afterwards.
#[test]
fn a_vanished_peer_is_not_open() {
    init_logs();
    let seen: Events<(bool, bool, u16)> = Events::new();
    let tx = seen.tx.clone();
    let held: Events<Connection> = Events::new();
    let keep = held.tx.clone();
    let mut server = Server::new();
    server.define_resource(
        "/",
        Resource::new()
            .on_open(move |ws| keep.send(ws.clone()).unwrap())
            .on_close(move |ws, code, _| {
                tx.send((ws.is_open(), ws.send_text("late").is_ok(), code))
                    .unwrap()
            }),
    );
    let h = server.start("127.0.0.1:0").expect("server starts");
    let s = raw_upgraded(h.local_addr(), "/");
    let conn = held.next();
    drop(s);
    assert_eq!(
        seen.next(),
        (false, false, 1006),
        "(is_open, sent, code) in on_close"
    );
    assert!(!conn.is_open());
    assert!(conn.send_text("later").is_err());
    assert!(conn.send(wsportal::Message::Binary(vec![0; 4096])).is_err());
}

/// Issue 17 (suspected): two `disconnect`s at once both return how the
/// connection ended; neither waits for ever.
#[test]
fn concurrent_disconnects_both_return() {
    let (h, _ev) = server_giving_connections(Config::default());
    let ws = Client::new(format!("ws://{}/", h.local_addr()))
        .connect()
        .expect("connects");
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    for _ in 0..2 {
        let (ws, tx) = (ws.clone(), done_tx.clone());
        thread::spawn(move || tx.send(ws.disconnect(4002, "twice")).unwrap());
    }
    for _ in 0..2 {
        let status = done_rx.recv_timeout(WAIT).expect("disconnect returned");
        assert_eq!(status.map(|s| s.0), Some(4002));
    }
}

/// Issue 17 (suspected): `ServerHandle::close` from inside one of the
/// server's own hooks stops the server and returns; the hook's own client
/// gets 1001 and its `on_close` runs.
#[test]
fn close_from_inside_a_hook() {
    init_logs();
    let seen: Events<String> = Events::new();
    let (tx, closed) = (seen.tx.clone(), seen.tx.clone());
    let slot: Arc<Mutex<Option<ServerHandle>>> = Arc::new(Mutex::new(None));
    let hook_slot = Arc::clone(&slot);
    let mut server = Server::with_config(Config::default().shutdown_grace(Duration::from_secs(5)));
    server.define_resource(
        "/",
        Resource::new()
            .on_message(move |_, _| {
                let handle = hook_slot.lock().unwrap().take();
                if let Some(h) = handle {
                    h.close();
                    tx.send("closed".into()).unwrap();
                }
            })
            .on_close(move |_, code, _| closed.send(format!("on_close {code}")).unwrap()),
    );
    let h = server.start("127.0.0.1:0").expect("server starts");
    let addr = h.local_addr();
    *slot.lock().unwrap() = Some(h);
    let mut other = connect(addr, "/");
    let mut ws = connect(addr, "/");
    ws.send(tungstenite::Message::text("stop the server"))
        .unwrap();
    // The other client answers its 1001 at once; the server then returns.
    assert_eq!(recv_close(&mut other).0, 1001);
    let mut got = vec![seen.next(), seen.next(), seen.next()];
    got.sort();
    assert_eq!(got, ["closed", "on_close 1001", "on_close 1001"]);
    assert_eq!(recv_close(&mut ws).0, 1001);
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
}

/// A shutdown that comes while a connection's `101` is on its way (written,
/// not yet registered) still sends it 1001: every client that got its 101
/// gets a close frame, never a bare end of stream. Clients connect in a
/// loop while the server closes, so some land in that window.
#[test]
fn a_shutdown_during_upgrades_sends_1001_to_every_upgraded_client() {
    init_logs();
    for _ in 0..100 {
        let mut server = Server::new();
        server.define_resource("/", Resource::new());
        let h = server.start("127.0.0.1:0").expect("server starts");
        let addr = h.local_addr();
        let first = Arc::new(Barrier::new(5));
        let clients: Vec<_> = (0..4)
            .map(|_| {
                let first = Arc::clone(&first);
                thread::spawn(move || {
                    let mut upgraded = Vec::new();
                    let mut waited = false;
                    loop {
                        let Ok(tcp) = TcpStream::connect(addr) else {
                            break;
                        };
                        tcp.set_read_timeout(Some(WAIT)).unwrap();
                        let url = format!("ws://{addr}/");
                        match tungstenite::client(url.as_str(), tcp) {
                            Ok((ws, _)) => upgraded.push(ws),
                            Err(_) => break, // refused or cut while handshaking: fine
                        }
                        if !waited {
                            first.wait();
                            waited = true;
                        }
                    }
                    if !waited {
                        first.wait();
                    }
                    for mut ws in upgraded {
                        assert_eq!(recv_close(&mut ws).0, 1001);
                    }
                })
            })
            .collect();
        first.wait();
        h.close();
        for c in clients {
            c.join().expect("every upgraded client got its 1001");
        }
    }
}
