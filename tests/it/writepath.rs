//! Issue 27: the write path's two promises, that a send never waits for
//! anyone and that what `flush` confirms has left, where several locks meet
//! (the outbox, a TLS session's locks, the compressor), and a slow reader
//! that is still reading is not taken for a dead one.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use wsportal::{Config, Connection, Error, Resource, Server, ServerHandle};

use crate::support::*;

fn start(config: Config, res: Resource) -> ServerHandle {
    init_logs();
    let mut server = Server::with_config(config);
    server.define_resource("/", res);
    server.start("127.0.0.1:0").expect("server starts")
}

/// A resource that reports each opened connection and each close.
fn reporting(opened: &Events<Connection>, closed: &Events<(u16, String)>) -> Resource {
    let (o, c) = (opened.tx.clone(), closed.tx.clone());
    Resource::new()
        .on_open(move |ws| o.send(ws.clone()).unwrap())
        .on_close(move |_, code, reason| c.send((code, reason.to_owned())).unwrap())
}

/// Settings for a connection the tests stall on purpose: no keepalive, no
/// write timeout within the test, a short shutdown.
fn patient() -> Config {
    Config::default()
        .ping_interval(None)
        .write_timeout(Duration::from_secs(120))
        .shutdown_grace(Duration::from_millis(100))
}

/// Reads one unmasked server frame from any reader: (first byte, payload).
fn read_frame_from(s: &mut impl Read) -> io::Result<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h)?;
    let len = match h[1] & 0x7F {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b)?;
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b)?;
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload)?;
    Ok((h[0], payload))
}

// 1. With permessage-deflate, the compressor's lock was held through a push
// that waits for room, so every other sender on the connection waited for
// the waiting one's `send_timeout`.
#[cfg(feature = "deflate")]
#[test]
fn with_deflate_a_send_does_not_wait_for_another_threads_send_timeout() {
    const BACKLOG: usize = 256 << 10;
    let (opened, closed) = (Events::new(), Events::new());
    // Level 0: "compressing" is a cheap copy, and zeros keep their size.
    let config = patient()
        .max_backlog(BACKLOG)
        .deflate(Some(wsportal::Deflate::default().level(0)));
    let h = start(config, reporting(&opened, &closed));
    // A peer that agreed permessage-deflate and never reads.
    let mut stalled = TcpStream::connect(h.local_addr()).unwrap();
    stalled.set_read_timeout(Some(WAIT)).unwrap();
    let offer = "Sec-WebSocket-Extensions: permessage-deflate\r\n";
    stalled
        .write_all(upgrade_request("/", offer).as_bytes())
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stalled.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.contains("permessage-deflate"), "{head}");
    let conn: Connection = opened.next();
    // Into the empty backlog, one message far larger than the kernel's
    // buffers and the backlog limit (admitted because the backlog was
    // empty): the backlog stays over its limit for good.
    conn.send_timeout(vec![0u8; 12 << 20], WAIT).unwrap();
    assert!(conn.backlog() > BACKLOG, "the kernel took {} MiB", 12);
    let (done, finished) = crossbeam_channel::unbounded::<(&str, String)>();
    let (started, a_started) = crossbeam_channel::unbounded::<()>();
    // A: compressed, then waiting for room, which never comes.
    let a = {
        let (conn, done) = (conn.clone(), done.clone());
        thread::spawn(move || {
            started.send(()).unwrap();
            let r = conn.send_timeout(vec![1u8; 64 << 10], Duration::from_secs(6));
            done.send(("A", format!("{:?}", r.map_err(|e| e.to_string()))))
                .unwrap();
        })
    };
    a_started.recv_timeout(WAIT).unwrap();
    // B, while A waits: for half a second, sends that do not wait (a zero
    // timeout: refused at once, the connection kept), then a `send`
    // (refused: the backlog is full, so the client is closed, which wakes
    // A). None of them may wait for A.
    let b = {
        let conn = conn.clone();
        thread::spawn(move || {
            let begun = Instant::now();
            let mut tries = 0;
            while tries < 20 || begun.elapsed() < Duration::from_millis(500) {
                match conn.send_timeout("x", Duration::ZERO) {
                    Err(e) if e.is_timeout() => {}
                    other => {
                        let what = format!("try {tries}: {other:?}");
                        done.send(("B", what)).unwrap();
                        return;
                    }
                }
                tries += 1;
                thread::sleep(Duration::from_millis(10)); // pacing, not sync
            }
            let sent = conn.send("x").map_err(|e| e.to_string());
            done.send(("B", format!("{tries} tries, then send: {sent:?}")))
                .unwrap();
        })
    };
    // Which of the two returns first is a race once B's send closed the
    // connection; what each returned is not. Had B waited for A, A would
    // have timed out (its room never comes) and B returned after it.
    let mut results = std::collections::HashMap::new();
    for _ in 0..2 {
        let (who, what) = finished.recv_timeout(WAIT).expect("both return");
        results.insert(who, what);
    }
    assert!(
        results["B"].contains("then send: Err"),
        "B: {}",
        results["B"]
    );
    // B's refusal closed the connection (1008), which ended A's wait.
    assert!(
        results["A"].contains("closed"),
        "a send waited for another thread's send_timeout: A ended with {}",
        results["A"]
    );
    assert_eq!(closed.next().0, 1008);
    a.join().unwrap();
    b.join().unwrap();
    drop(stalled);
}

// 2. With TLS, the housekeeper's `trim` blocked on a session's state while
// that connection's own thread held it through a waiting write, so no other
// connection got its keepalive ping until that write gave up.
#[cfg(feature = "tls")]
#[test]
fn with_tls_a_waiting_write_does_not_hold_up_another_connections_keepalive() {
    use crate::tls::{stalled, Certs};
    init_logs();
    let certs = Certs::new();
    let write_timeout = Duration::from_secs(8);
    let config = Config::default()
        .ping_interval(Some(Duration::from_millis(250)))
        .ping_timeout(WAIT)
        .write_timeout(write_timeout)
        .shutdown_grace(Duration::from_millis(100));
    let (replying, replied) = crossbeam_channel::unbounded::<()>();
    let mut server = Server::with_config(config);
    server.define_resource(
        "/",
        Resource::new().on_message(move |ws, _| {
            replying.send(()).unwrap();
            // Held by the cork (it is under the cork's limit), then written
            // by this thread, which may wait for its peer.
            let _ = ws.send_binary(&vec![7u8; 200 << 10]);
        }),
    );
    let h = server.start_tls("127.0.0.1:0", certs.server()).unwrap();
    // The first connection (the housekeeper visits it first) asks for one
    // reply after another and reads none, until a reply no longer fits the
    // kernel's buffers: the connection's thread then waits in its write
    // (up to the write timeout), so it reads no further request.
    let mut greedy = stalled(&certs, h.local_addr());
    let mut rounds = 0;
    loop {
        greedy.write_all(&frame(true, 1, b"go")).unwrap();
        greedy.flush().unwrap();
        // No answer soon: the previous reply is what it is waiting on.
        if replied.recv_timeout(write_timeout / 8).is_err() {
            break;
        }
        rounds += 1;
        assert!(
            rounds < 500,
            "the kernel took 100 MiB from a peer that reads nothing"
        );
    }
    assert!(rounds > 0, "the hook never ran");
    // A second, quiet client: its keepalive ping is due 250 ms after it
    // opens, long before the first connection's write gives up.
    let mut ws = certs.wss(h.local_addr(), "/");
    ws.get_ref()
        .sock
        .set_read_timeout(Some(write_timeout / 2))
        .unwrap();
    match ws.read() {
        Ok(tungstenite::Message::Ping(_)) => {}
        other => panic!(
            "no keepalive ping within half the other connection's write timeout \
             (ping interval 250 ms): {other:?}"
        ),
    }
    drop(greedy);
}

/// Sends 16 KiB messages (message `i` starts with `i`), each followed by
/// `flush(ZERO)`, to a peer that reads nothing, until a flush cannot
/// confirm; then cuts the connection off (a send over the backlog limit),
/// so that the peer can read exactly what had reached the kernel. Returns
/// the last message `flush` confirmed.
fn flush_until_full(conn: &Connection) -> u32 {
    let mut confirmed = None;
    for i in 0u32.. {
        let mut m = vec![(i % 251) as u8; 16 << 10];
        m[..4].copy_from_slice(&i.to_be_bytes());
        conn.send_binary(&m).unwrap();
        match conn.flush(Duration::ZERO) {
            Ok(()) => confirmed = Some(i),
            Err(Error::Timeout(_)) => break,
            Err(e) => panic!("flush after message {i}: {e}"),
        }
        assert!(i < 1 << 16, "the peer never read, yet 1 GiB was taken");
    }
    // Over the backlog limit: cut off at once (1008), the queue dropped and
    // the socket shut; what the kernel holds still reaches the peer.
    assert!(conn.send_binary(&vec![0u8; 4 << 20]).is_err());
    confirmed.expect("not even the first message was confirmed")
}

/// Reads messages until the stream ends; returns the last one (each checked).
fn last_readable<S: Read + Write>(mut ws: tungstenite::WebSocket<S>) -> Option<u32> {
    let mut last = None;
    while let Ok(m) = ws.read() {
        if let tungstenite::Message::Binary(d) = m {
            let i = u32::from_be_bytes(d[..4].try_into().unwrap());
            assert_eq!(Some(i), last.map_or(Some(0), |l: u32| l.checked_add(1)));
            assert_eq!(d.len(), 16 << 10);
            assert!(d[4..].iter().all(|&b| b == (i % 251) as u8));
            last = Some(i);
        }
    }
    last
}

/// What `flush` confirmed has left: over plain TCP (passes today, the
/// control for the TLS case).
#[test]
fn flush_confirms_only_what_the_peer_can_read() {
    let (opened, closed) = (Events::new(), Events::new());
    let h = start(patient().max_backlog(1 << 20), reporting(&opened, &closed));
    let peer = raw_upgraded(h.local_addr(), "/");
    let conn: Connection = opened.next();
    let confirmed = flush_until_full(&conn);
    assert_eq!(closed.next().0, 1008);
    let ws =
        tungstenite::WebSocket::from_raw_socket(peer, tungstenite::protocol::Role::Client, None);
    let read = last_readable(ws);
    assert!(
        read >= Some(confirmed),
        "flush confirmed message {confirmed}, the peer could read up to {read:?}"
    );
}

// 3. With TLS, `flush` counted the plaintext rustls took, not the records
// the socket took: it confirmed bytes still held in the session.
#[cfg(feature = "tls")]
#[test]
fn with_tls_flush_confirms_only_what_the_peer_can_read() {
    use crate::tls::{stalled, Certs};
    init_logs();
    let certs = Certs::new();
    let (opened, closed) = (Events::new(), Events::new());
    let mut server = Server::with_config(patient().max_backlog(1 << 20));
    server.define_resource("/", reporting(&opened, &closed));
    let h = server.start_tls("127.0.0.1:0", certs.server()).unwrap();
    let peer = stalled(&certs, h.local_addr());
    let conn: Connection = opened.next();
    let confirmed = flush_until_full(&conn);
    assert_eq!(closed.next().0, 1008);
    let ws =
        tungstenite::WebSocket::from_raw_socket(peer, tungstenite::protocol::Role::Client, None);
    let read = last_readable(ws);
    assert!(
        read >= Some(confirmed),
        "flush confirmed message {confirmed}, the peer could read up to {read:?}"
    );
}

/// A reader that takes at most `chunk` bytes at a time and pauses before
/// each read: a slow link, but one that keeps taking bytes.
struct Slow<R> {
    inner: R,
    chunk: usize,
    pause: Duration,
}

impl<R: Read> Read for Slow<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        thread::sleep(self.pause); // pacing the reader, not synchronisation
        let n = buf.len().min(self.chunk);
        self.inner.read(&mut buf[..n])
    }
}

/// A raw client upgraded to `/` whose receive buffer is small and fixed
/// (no autotuning): what the server queues for it stays mostly in the
/// server's backlog, as behind a slow link.
fn small_window_client(addr: SocketAddr) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(64 << 10).unwrap();
    sock.connect(&addr.into()).unwrap();
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(upgrade_request("/", "").as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    s
}

// 4. A slow client that is still reading was closed as dead (1006
// "keepalive timeout"): the keepalive ping waited behind everything queued
// for it, and its pong could not come back within `ping_timeout`.
#[test]
fn a_slow_client_that_keeps_reading_is_pinged_ahead_of_its_backlog_and_kept() {
    const N: usize = 160; // 64 KiB each: 10 MiB
    let (opened, closed) = (Events::new(), Events::new());
    let config = Config::default()
        .ping_interval(Some(Duration::from_millis(200)))
        .ping_timeout(Duration::from_millis(400))
        .max_backlog(64 << 20)
        .write_timeout(Duration::from_secs(10))
        .shutdown_grace(Duration::from_millis(100));
    let h = start(config, reporting(&opened, &closed));
    let sock = small_window_client(h.local_addr());
    let conn: Connection = opened.next();
    // Everything is queued at once: the keepalive ping that falls due
    // meanwhile finds seconds of data ahead of it.
    for i in 0..N {
        conn.send_binary(&vec![i as u8; 64 << 10]).unwrap();
    }
    // About 5 MB/s at most: 10 MiB take two seconds, several pings'
    // timeouts; the reader answers each ping at once.
    let mut pong = sock.try_clone().unwrap();
    let mut r = Slow {
        inner: sock,
        chunk: 16 << 10,
        pause: Duration::from_millis(3),
    };
    let begun = Instant::now();
    let (mut got, mut pings_before_last) = (0usize, 0usize);
    while got < N {
        assert!(begun.elapsed() < WAIT, "the reader took too long");
        let (b0, payload) = match read_frame_from(&mut r) {
            Ok(f) => f,
            Err(e) => panic!(
                "closed as dead while still reading, after {got} of {N} messages ({e}); \
                 on_close: {:?}",
                closed.rx.recv_timeout(WAIT).ok()
            ),
        };
        match b0 & 0x0F {
            0x2 => {
                assert_eq!(payload, vec![got as u8; 64 << 10], "message {got}");
                got += 1;
            }
            0x9 => {
                pings_before_last += 1;
                pong.write_all(&frame(true, 0xA, &payload)).unwrap();
            }
            0x8 => panic!(
                "closed after {got} of {N} messages: {:?}",
                String::from_utf8_lossy(&payload)
            ),
            op => panic!("unexpected opcode {op}"),
        }
    }
    assert!(
        pings_before_last > 0,
        "no keepalive ping went out ahead of the queued data"
    );
    assert!(conn.is_open());
    assert!(closed.rx.try_recv().is_err());
}

// Suspected 1: a peer may answer only the latest of several pings (RFC
// 6455, 5.5.3); the hooks of the earlier ones were kept until the
// connection ended.
#[test]
fn a_pong_for_the_latest_ping_leaves_no_earlier_hook_behind() {
    let (opened, closed) = (Events::new(), Events::new());
    let h = start(patient(), reporting(&opened, &closed));
    let mut s = raw_upgraded(h.local_addr(), "/");
    let conn: Connection = opened.next();
    let token = Arc::new(());
    let ponged = Events::new();
    for p in [&b"a"[..], b"b", b"c"] {
        let (t, tx) = (Arc::clone(&token), ponged.tx.clone());
        conn.ping(p, move |_| {
            drop(t);
            tx.send(p).unwrap();
        })
        .unwrap();
    }
    for p in [&b"a"[..], b"b", b"c"] {
        assert_eq!(read_frame(&mut s), (0x9, p.to_vec()));
    }
    // Only the latest is answered: it answers the earlier two as well,
    // whose hooks run first, in the order the pings went out.
    s.write_all(&frame(true, 0xA, b"c")).unwrap();
    assert_eq!(ponged.next(), b"a");
    assert_eq!(ponged.next(), b"b");
    assert_eq!(ponged.next(), b"c");
    // One more round trip: by its end, every earlier hook has run or gone.
    let (t, tx) = (Arc::clone(&token), ponged.tx.clone());
    conn.ping(b"d", move |_| {
        drop(t);
        tx.send(b"d").unwrap();
    })
    .unwrap();
    assert_eq!(read_frame(&mut s), (0x9, b"d".to_vec()));
    s.write_all(&frame(true, 0xA, b"d")).unwrap();
    while ponged.next() != b"d" {}
    assert_eq!(
        Arc::strong_count(&token),
        1,
        "hooks of pings answered by a later pong are still held"
    );
    assert!(closed.rx.try_recv().is_err());
}

// Suspected 4: `flush` on the thread whose stream is open waited for data
// held behind that stream, which only this thread can release.
#[test]
fn flush_on_the_streaming_thread_does_not_wait_for_what_only_it_can_release() {
    let (opened, closed) = (Events::new(), Events::new());
    let h = start(patient(), reporting(&opened, &closed));
    let mut ws = connect(h.local_addr(), "/");
    let conn: Connection = opened.next();
    let mut w = conn.stream_binary().unwrap();
    w.write_all(b"first fragment").unwrap();
    w.flush().unwrap();
    // Held behind the open stream until it ends.
    conn.send_text("after the stream").unwrap();
    // Only this thread can release what waits behind its stream: flush
    // says so at once instead of waiting out its timeout.
    let flushed = conn.flush(Duration::from_secs(2));
    assert!(
        matches!(flushed, Err(Error::BehindStream)),
        "flush on the streaming thread with data held behind it: {flushed:?}"
    );
    w.write_all(b", last").unwrap();
    w.finish().unwrap();
    assert_eq!(
        recv(&mut ws),
        tungstenite::Message::binary(b"first fragment, last".to_vec())
    );
    assert_eq!(
        recv(&mut ws),
        tungstenite::Message::text("after the stream")
    );
    assert!(closed.rx.try_recv().is_err());
}

// Suspected 5: data held behind an open stream counted against the peer's
// backlog, so a slow stream producer got a client that reads everything
// closed as too slow (1008).
#[test]
fn data_held_behind_a_slow_stream_does_not_close_a_reading_client() {
    const N: usize = 24; // 8 KiB each: three times the backlog
    let (opened, closed) = (Events::new(), Events::new());
    let h = start(patient().max_backlog(64 << 10), reporting(&opened, &closed));
    let ws = connect(h.local_addr(), "/");
    let conn: Connection = opened.next();
    let (got, taken) = crossbeam_channel::unbounded();
    let reader = thread::spawn(move || {
        let mut ws = ws;
        while let Ok(m) = ws.read() {
            if got.send(m).is_err() {
                break;
            }
        }
    });
    let mut w = conn.stream_binary().unwrap();
    w.write_all(b"slow ").unwrap();
    w.flush().unwrap();
    // The client reads as fast as anything comes; the stream is slow.
    let mut sent = Vec::new();
    for i in 0..N {
        let text = format!("{i:>8}").repeat(1 << 10);
        if conn.send(text.clone()).is_ok() {
            sent.push(text);
        }
    }
    w.write_all(b"stream").unwrap();
    let finished = w.finish();
    assert!(
        conn.is_open() && finished.is_ok(),
        "a reading client was closed for data held behind our own stream: {:?}",
        closed.rx.recv_timeout(WAIT).ok()
    );
    let next = || taken.recv_timeout(WAIT).expect("message in time");
    let first = loop {
        match next() {
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => continue,
            m => break m,
        }
    };
    assert_eq!(first, tungstenite::Message::binary(b"slow stream".to_vec()));
    for text in sent {
        assert_eq!(next(), tungstenite::Message::text(text));
    }
    assert!(closed.rx.try_recv().is_err());
    drop(h);
    reader.join().unwrap();
}
