//! Regressions from the correctness review (issues 17 and 19): races between
//! threads, deadlines from huge durations, what a connection reports once it
//! has ended, and shutdown from inside a hook.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use wsportal::{Config, Connection, Resource, Server, ServerHandle};

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
