//! Pushing from other threads, broadcast, groups, slow consumers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use wsportal::{Config, Connection, Error, Resource, Server, ServerHandle};

use crate::support::*;

/// A server whose resource reports each opened connection and each close.
fn server(config: Config, path: &str) -> (ServerHandle, Events<Connection>, Events<(u16, String)>) {
    init_logs();
    let opened = Events::new();
    let closed = Events::new();
    let (o, c) = (opened.tx.clone(), closed.tx.clone());
    let mut s = Server::with_config(config);
    s.define_resource(
        path,
        Resource::new()
            .on_open(move |ws| {
                if let Some(room) = ws.param("room") {
                    ws.join(room);
                }
                o.send(ws.clone()).unwrap();
            })
            .on_close(move |_, code, reason| c.send((code, reason.to_owned())).unwrap()),
    );
    (s.start("127.0.0.1:0").unwrap(), opened, closed)
}

/// Payload of message `seq` from sender `tid`: sizes from 1 byte to 4 MiB.
fn payload(tid: u8, seq: u32) -> Vec<u8> {
    let len = match seq % 250 {
        _ if seq == 1 => 4 << 20,
        0 => 1,
        1 => 64 << 10,
        n => 5 + (n as usize * 7) % 300,
    };
    let mut v = vec![tid; len];
    if len >= 5 {
        v[1..5].copy_from_slice(&seq.to_be_bytes());
        for (i, b) in v.iter_mut().enumerate().skip(5) {
            *b = (i as u32 ^ seq) as u8;
        }
    }
    v
}

#[test]
fn concurrent_senders_never_interleave() {
    let (h, opened, _closed) = server(Config::default().max_backlog(1 << 30), "/");
    let mut ws = connect(h.local_addr(), "/");
    let conn = opened.next();
    push_from_threads(&conn, &mut ws, 8, 1000, payload);
}

#[test]
fn groups_broadcast_and_automatic_leave() {
    let (h, opened, closed) = server(Config::default(), "/room/:room");
    let b = h.broadcaster();
    let mut a1 = connect(h.local_addr(), "/room/a");
    let mut a2 = connect(h.local_addr(), "/room/a");
    let mut b1 = connect(h.local_addr(), "/room/b");
    let ids: Vec<u64> = (0..3).map(|_| opened.next().id()).collect();

    assert_eq!(b.to_group("a", "to a").unwrap(), 2);
    assert_eq!(b.to_group("b", vec![1u8, 2]).unwrap(), 1);
    assert_eq!(b.to_resource("/room/:room", "to all rooms").unwrap(), 3);
    for ws in [&mut a1, &mut a2] {
        assert_eq!(recv(ws), tungstenite::Message::text("to a"));
        assert_eq!(recv(ws), tungstenite::Message::text("to all rooms"));
    }
    assert_eq!(recv(&mut b1), tungstenite::Message::binary(vec![1u8, 2]));
    assert_eq!(recv(&mut b1), tungstenite::Message::text("to all rooms"));

    assert_eq!(b.groups(), vec![("a".into(), 2), ("b".into(), 1)]);
    let mut listed: Vec<u64> = b.connections().iter().map(Connection::id).collect();
    listed.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(listed, expected);

    // Closing leaves every group; an empty group is an error to publish to.
    b1.close(None).unwrap();
    let _ = recv_close(&mut b1);
    closed.next();
    assert!(matches!(b.to_group("b", "anyone?"), Err(Error::NoConnections(g)) if g == "b"));
    assert_eq!(b.groups(), vec![("a".into(), 2)]);
    assert_eq!(h.connection_count(), 2);

    // A connection can also leave by itself.
    let a_member = b.group_members("a").remove(0);
    a_member.leave("a");
    assert_eq!(b.to_group("a", "x").unwrap(), 1);
}

#[test]
fn pushing_to_nobody_is_an_error() {
    let (h, _, _) = server(Config::default(), "/");
    let b = h.broadcaster();
    assert!(matches!(b.to_all("hello"), Err(Error::NoConnections(_))));
    assert!(matches!(
        b.to_resource("/", "hello"),
        Err(Error::NoConnections(_))
    ));
    assert!(matches!(
        b.to_group("g", "hello"),
        Err(Error::NoConnections(_))
    ));
}

/// A raw client that completes the upgrade and then never reads.
fn stalled_client(h: &ServerHandle, path: &str) -> TcpStream {
    raw_upgraded(h.local_addr(), path)
}

#[test]
fn a_client_that_stops_reading_is_closed_and_others_are_not() {
    let config = Config::default().max_backlog(256 << 10);
    let (h, opened, closed) = server(config, "/");
    let stalled = stalled_client(&h, "/");
    opened.next();
    let good = connect(h.local_addr(), "/");
    opened.next();
    // 300 x 64 KiB is far more than the kernel buffers of the stalled client.
    let good = paced_broadcast(&h.broadcaster(), 300, good);
    let (code, reason) = closed.next();
    assert_eq!(code, 1008);
    assert!(reason.contains("too slow"), "{reason}");
    assert_eq!(h.connection_count(), 1);
    drop((stalled, good));
}

#[test]
fn a_stalled_client_is_closed_after_the_write_timeout() {
    let config = Config::default()
        .max_backlog(1 << 30)
        .write_timeout(Duration::from_millis(300));
    let (h, opened, closed) = server(config, "/");
    let mut stalled = stalled_client(&h, "/");
    let conn = opened.next();
    let (code, reason) = queue_until_closed(&conn, &closed);
    assert_eq!(code, 1008);
    assert!(reason.contains("write timeout"), "{reason}");
    assert!(conn.send_text("late").is_err());
    stalled.set_read_timeout(Some(WAIT)).unwrap();
    let mut sink = [0u8; 1 << 16];
    while matches!(stalled.read(&mut sink), Ok(n) if n > 0) {}
    let _ = stalled.write_all(b"x");
}

#[test]
fn sending_while_the_reader_is_blocked() {
    let (h, opened, _) = server(Config::default(), "/");
    let mut ws = connect(h.local_addr(), "/");
    let conn = opened.next();
    // The connection's own thread is blocked reading; a push still leaves at once.
    let pusher = thread::spawn(move || conn.send_text("pushed").unwrap());
    assert_eq!(recv(&mut ws), tungstenite::Message::text("pushed"));
    pusher.join().unwrap();
}

#[test]
fn a_vanished_peer_is_dropped_by_keepalive_and_leaves_its_groups() {
    let config = Config::default()
        .ping_interval(Some(Duration::from_millis(100)))
        .ping_timeout(Duration::from_millis(200));
    let (h, opened, closed) = server(config, "/room/:room");
    // A raw client that never answers pings: like a peer whose cable was pulled.
    let silent = raw_upgraded(h.local_addr(), "/room/lost");
    opened.next();
    assert_eq!(h.broadcaster().group_members("lost").len(), 1);
    let (code, reason) = closed.next();
    assert_eq!(code, 1006);
    assert!(reason.contains("keepalive"), "{reason}");
    assert!(matches!(
        h.broadcaster().to_group("lost", "anyone?"),
        Err(Error::NoConnections(_))
    ));
    assert_eq!(h.connection_count(), 0);
    drop(silent);
}
