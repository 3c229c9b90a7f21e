//! The write path: close frames past the backlog limit, the cork, masked
//! client broadcasts, writes that never wait, and producers that do
//! (`send_timeout`, `flush`).

use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use wsportal::{
    Client, Config, Connection, Error, Message, Resource, SendTimeoutError, Server, ServerHandle,
};

use crate::support::*;

fn start(config: Config, path: &str, res: Resource) -> ServerHandle {
    init_logs();
    let mut server = Server::with_config(config);
    server.define_resource(path, res);
    server.start("127.0.0.1:0").expect("server starts")
}

/// A resource that reports each opened connection and each close.
fn reporting(opened: &Events<Connection>, closed: &Events<(u16, String)>) -> Resource {
    let (o, c) = (opened.tx.clone(), closed.tx.clone());
    Resource::new()
        .on_open(move |ws| o.send(ws.clone()).unwrap())
        .on_close(move |_, code, reason| c.send((code, reason.to_owned())).unwrap())
}

#[test]
fn a_close_that_does_not_fit_the_backlog_still_goes_out_and_ends_the_sending() {
    let results = Events::new();
    let tx = results.tx.clone();
    let reason = "r".repeat(100);
    let why = reason.clone();
    let res = Resource::new().on_message(move |ws, _| {
        // 65,516 bytes queued (held by the cork), then a 104-byte close frame:
        // past the 64 KiB backlog.
        ws.send_binary(&vec![7u8; 65_512]).unwrap();
        ws.close(1000, &why);
        let after = ws.send_text("after-close");
        tx.send((after.is_err(), ws.is_open())).unwrap();
    });
    let h = start(Config::default().max_backlog(64 << 10), "/", res);
    let mut ws = connect(h.local_addr(), "/");
    ws.send(tungstenite::Message::text("go")).unwrap();
    assert_eq!(results.next(), (true, false), "a send after close() failed");
    match recv(&mut ws) {
        tungstenite::Message::Binary(b) => assert_eq!(b.len(), 65_512),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(recv_close(&mut ws), (1000, reason));
}

#[test]
fn sends_from_other_threads_and_keepalive_pings_leave_while_a_hook_runs() {
    let (in_hook, entered) = crossbeam_channel::unbounded::<()>();
    let (release, released) = crossbeam_channel::unbounded::<()>();
    let opened = Events::new();
    let o = opened.tx.clone();
    let res = Resource::new()
        .on_open(move |ws| o.send(ws.clone()).unwrap())
        .on_message(move |ws, _| {
            in_hook.send(()).unwrap();
            let answer = match released.recv_timeout(WAIT) {
                Ok(()) => "released",
                Err(_) => "timed out",
            };
            ws.send_text(answer).unwrap();
        });
    let config = Config::default()
        .ping_interval(Some(Duration::from_millis(50)))
        .ping_timeout(WAIT);
    let h = start(config, "/", res);
    let mut ws = connect(h.local_addr(), "/");
    let conn: Connection = opened.next();
    ws.send(tungstenite::Message::text("block")).unwrap();
    entered.recv_timeout(WAIT).expect("the hook did not run");
    // The hook is blocked: another thread's send, and the keepalive ping
    // (the peer is silent), must not wait for it to return.
    let pusher = thread::spawn(move || conn.send_text("pushed").unwrap());
    let (mut pushed, mut pinged) = (false, false);
    while !(pushed && pinged) {
        match ws.read().expect("read failed") {
            tungstenite::Message::Text(t) => {
                assert_eq!(t.as_str(), "pushed", "arrived before the hook returned");
                pushed = true;
            }
            tungstenite::Message::Ping(_) => pinged = true,
            other => panic!("unexpected {other:?}"),
        }
    }
    release.send(()).unwrap();
    assert_eq!(recv(&mut ws), tungstenite::Message::text("released"));
    pusher.join().unwrap();
}

#[test]
fn a_clients_broadcaster_masks_its_frames() {
    let got = Events::new();
    let closed = Events::new();
    let (g, c) = (got.tx.clone(), closed.tx.clone());
    let res = Resource::new()
        .on_message(move |_, msg| g.send(msg).unwrap())
        .on_close(move |_, code, reason| c.send((code, reason.to_owned())).unwrap());
    let h = start(Config::default(), "/", res);
    let ws = Client::new(format!("ws://{}/", h.local_addr()))
        .connect()
        .unwrap();
    assert_eq!(ws.broadcaster().to_all("hello").unwrap(), 1);
    assert_eq!(ws.broadcaster().to_all(vec![9u8; 4000]).unwrap(), 1);
    assert_eq!(got.next(), Message::Text("hello".into()));
    assert_eq!(got.next(), Message::Binary(vec![9u8; 4000]));
    // The server did not fail the connection (it would with 1002).
    ws.send_text("still open").unwrap();
    assert_eq!(got.next(), Message::Text("still open".into()));
    assert!(closed.rx.try_recv().is_err());
}

#[test]
fn sends_from_other_threads_never_wait_for_a_full_socket() {
    // The socket's send timeout is the write timeout, here an hour: a send
    // from this thread that waited for the stalled peer would hang the test.
    let (opened, closed) = (Events::new(), Events::new());
    let config = Config::default()
        .max_backlog(64 << 20)
        .write_timeout(Duration::from_secs(3600));
    let h = start(config, "/", reporting(&opened, &closed));
    let stalled = raw_upgraded(h.local_addr(), "/");
    let conn: Connection = opened.next();
    let b = h.broadcaster();
    let (done, finished) = crossbeam_channel::unbounded();
    let sender = thread::spawn(move || {
        // 16 MiB: far more than the kernel buffers of a peer that never reads.
        let chunk = vec![1u8; 64 << 10];
        for i in 0..256 {
            match i % 2 {
                0 => conn.send_binary(&chunk).unwrap(),
                _ => assert_eq!(b.to_all(chunk.clone()).unwrap(), 1),
            }
        }
        done.send(conn.backlog()).unwrap();
    });
    let backlog = finished
        .recv_timeout(WAIT)
        .expect("a send waited for the stalled peer");
    assert!(backlog > 0, "the peer never read, yet nothing is queued");
    sender.join().unwrap();
    assert!(closed.rx.try_recv().is_err());
    drop(stalled);
}

#[test]
fn a_stalled_peer_is_closed_at_the_write_timeout_despite_the_backoff() {
    let (opened, closed) = (Events::new(), Events::new());
    let write_timeout = Duration::from_millis(300);
    let config = Config::default()
        .max_backlog(1 << 30)
        .write_timeout(write_timeout);
    let h = start(config, "/", reporting(&opened, &closed));
    let mut stalled = raw_upgraded(h.local_addr(), "/");
    let conn: Connection = opened.next();
    // Fill the socket and queue 1 MiB more, from a thread that is not the
    // connection's: the housekeeper retries it, later and later.
    let chunk = vec![0u8; 256 << 10];
    let mut last_progress = Instant::now();
    while conn.backlog() < (1 << 20) {
        let before = conn.backlog();
        if conn.send_binary(&chunk).is_err() {
            break; // Already cut off (a slow machine): the checks below hold.
        }
        if conn.backlog() < before + chunk.len() {
            last_progress = Instant::now();
        }
    }
    let (code, reason) = closed.next();
    assert_eq!(code, 1008);
    assert!(reason.contains("write timeout"), "{reason}");
    assert!(
        last_progress.elapsed() >= write_timeout,
        "cut off too early"
    );
    stalled.set_read_timeout(Some(WAIT)).unwrap();
    let mut sink = [0u8; 1 << 16];
    while matches!(stalled.read(&mut sink), Ok(n) if n > 0) {}
}

#[test]
fn send_timeout_paces_a_producer_to_a_reading_client() {
    const N: usize = 300;
    let (opened, closed) = (Events::new(), Events::new());
    let h = start(
        Config::default().max_backlog(256 << 10),
        "/",
        reporting(&opened, &closed),
    );
    let mut ws = connect(h.local_addr(), "/");
    let conn: Connection = opened.next();
    let producer = thread::spawn(move || {
        for i in 0..N {
            conn.send_timeout(vec![i as u8; 64 << 10], WAIT).unwrap();
        }
        conn.flush(WAIT).unwrap();
        assert_eq!(conn.backlog(), 0);
    });
    for i in 0..N {
        recv_block(&mut ws, i);
    }
    producer.join().unwrap();
    assert!(closed.rx.try_recv().is_err());
}

#[test]
fn several_waiting_producers_are_all_served() {
    const THREADS: u8 = 4;
    const EACH: usize = 50;
    let (opened, closed) = (Events::new(), Events::new());
    let h = start(
        Config::default().max_backlog(128 << 10),
        "/",
        reporting(&opened, &closed),
    );
    let mut ws = connect(h.local_addr(), "/");
    let conn: Connection = opened.next();
    let producers: Vec<_> = (0..THREADS)
        .map(|t| {
            let conn = conn.clone();
            thread::spawn(move || {
                for i in 0..EACH {
                    let mut m = vec![t; 48 << 10];
                    m[1] = i as u8;
                    conn.send_timeout(m, WAIT).unwrap();
                }
            })
        })
        .collect();
    let mut next = [0u8; THREADS as usize];
    for _ in 0..(THREADS as usize * EACH) {
        match recv(&mut ws) {
            tungstenite::Message::Binary(d) => {
                let t = d[0] as usize;
                assert_eq!(d[1], next[t], "producer {t} in order");
                next[t] += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    for p in producers {
        p.join().unwrap();
    }
    assert!(closed.rx.try_recv().is_err());
}

#[test]
fn send_timeout_gives_the_message_back_and_keeps_the_connection() {
    let (opened, closed) = (Events::new(), Events::new());
    let h = start(
        Config::default().max_backlog(64 << 10),
        "/",
        reporting(&opened, &closed),
    );
    let stalled = raw_upgraded(h.local_addr(), "/");
    let conn: Connection = opened.next();
    let chunk = vec![5u8; 16 << 10];
    let err = loop {
        match conn.send_timeout(chunk.clone(), Duration::from_millis(20)) {
            Ok(()) => {}
            Err(e) => break e,
        }
    };
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.into_inner(), Message::Binary(chunk.clone()));
    assert!(conn.is_open(), "a timed-out send does not close");
    // The kernel's buffers may still grow a little after the peer stopped
    // reading, so room can reappear for a while: keep the backlog full.
    // A zero timeout does not wait, and is refused the same way.
    let zero = loop {
        if let Err(e) = conn.send_timeout(chunk.clone(), Duration::ZERO) {
            break e;
        }
    };
    assert!(zero.is_timeout(), "{zero}");
    // Flush times out too.
    let flushed = loop {
        while conn.send_timeout(chunk.clone(), Duration::ZERO).is_ok() {}
        if let Err(e) = conn.flush(Duration::from_millis(20)) {
            break e;
        }
    };
    assert!(matches!(flushed, Error::Timeout(_)), "{flushed}");
    assert!(closed.rx.try_recv().is_err());
    conn.close(1000, "bye");
    assert_eq!(
        conn.send_timeout("late", WAIT),
        Err(SendTimeoutError::Closed(Message::Text("late".into())))
    );
    drop(stalled);
}

#[test]
fn send_timeout_and_flush_work_on_the_connections_own_thread() {
    const N: usize = 100;
    let results = Events::new();
    let tx = results.tx.clone();
    // The hook queues 100 x 64 KiB through a 64 KiB backlog, then flushes.
    let res = Resource::new().on_message(move |ws, _| {
        let sent = (0..N).all(|i| ws.send_timeout(vec![i as u8; 64 << 10], WAIT).is_ok());
        let flushed = ws.flush(WAIT).is_ok();
        tx.send((sent, flushed, ws.backlog())).unwrap();
    });
    let h = start(Config::default().max_backlog(64 << 10), "/", res);
    let mut ws = connect(h.local_addr(), "/");
    ws.send(tungstenite::Message::text("go")).unwrap();
    for i in 0..N {
        match recv(&mut ws) {
            tungstenite::Message::Binary(d) => assert_eq!(d[0], i as u8),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(results.next(), (true, true, 0));
}

#[test]
fn a_client_handle_sends_with_back_pressure() {
    const N: usize = 100;
    let got = Events::new();
    let g = got.tx.clone();
    let res = Resource::new().on_message(move |_, msg| g.send(msg.len()).unwrap());
    let h = start(Config::default(), "/", res);
    let ws = Client::new(format!("ws://{}/", h.local_addr()))
        .config(Config::default().max_backlog(64 << 10))
        .connect()
        .unwrap();
    for _ in 0..N {
        ws.send_timeout(vec![3u8; 48 << 10], WAIT).unwrap();
    }
    ws.flush(WAIT).unwrap();
    for _ in 0..N {
        assert_eq!(got.next(), 48 << 10);
    }
}

/// Byte `i` of the streamed test message.
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

#[test]
fn a_streamed_message_arrives_whole_while_others_send_and_pings_go_out() {
    const PIECE: usize = 64 << 10;
    const PIECES: usize = 160; // 10 MiB
    const THREADS: usize = 4;
    const EACH: usize = 200;
    let (opened, closed) = (Events::new(), Events::new());
    let config = Config::default()
        .ping_interval(Some(Duration::from_millis(20)))
        .ping_timeout(WAIT);
    let h = start(config, "/", reporting(&opened, &closed));
    let mut ws = connect(h.local_addr(), "/");
    let conn: Connection = opened.next();
    let streamer = thread::spawn(move || {
        let mut w = conn.stream_binary().unwrap();
        // Opened: everything the others send from now on must follow it.
        let senders: Vec<_> = (0..THREADS)
            .map(|t| {
                let conn = conn.clone();
                thread::spawn(move || {
                    for i in 0..EACH {
                        conn.send_text(&format!("{t} {i}")).unwrap();
                    }
                })
            })
            .collect();
        for p in 0..PIECES {
            let piece: Vec<u8> = (p * PIECE..(p + 1) * PIECE).map(pattern).collect();
            w.write_all(&piece).unwrap();
            if p % 16 == 0 {
                conn.ping(b"mid-stream", |_| {}).unwrap();
            }
        }
        for s in senders {
            s.join().unwrap();
        }
        w.finish().unwrap();
    });
    let mut pings = 0;
    let mut big = None;
    let mut next = [0usize; THREADS];
    while next.iter().sum::<usize>() < THREADS * EACH {
        match ws.read().expect("read failed") {
            tungstenite::Message::Ping(_) => pings += 1,
            tungstenite::Message::Binary(b) => {
                assert!(big.is_none(), "one streamed message");
                assert_eq!(next.iter().sum::<usize>(), 0, "the stream came first");
                big = Some(b);
            }
            tungstenite::Message::Text(t) => {
                let (t, i) = t.split_once(' ').unwrap();
                let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
                assert_eq!(i, next[t], "sender {t} in order");
                next[t] += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let big = big.expect("the streamed message arrived");
    assert_eq!(big.len(), PIECE * PIECES);
    assert!(big.iter().enumerate().all(|(i, b)| *b == pattern(i)));
    assert!(pings > 0, "pings went out");
    streamer.join().unwrap();
    assert!(closed.rx.try_recv().is_err());
}

#[test]
fn a_text_stream_is_checked_as_a_whole() {
    let (opened, closed) = (Events::new(), Events::new());
    let h = start(Config::default(), "/", reporting(&opened, &closed));
    let mut ws = connect(h.local_addr(), "/");
    let conn: Connection = opened.next();
    let euro = "€".as_bytes(); // three bytes, split across writes
    let mut w = conn.stream_text().unwrap();
    w.write_all(b"price: ").unwrap();
    w.write_all(&euro[..1]).unwrap();
    w.flush().unwrap();
    let refused = w.write(b"\xff").unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::InvalidData);
    w.write_all(&euro[1..]).unwrap();
    w.write_all(&"ü".repeat(70_000).into_bytes()).unwrap();
    w.finish().unwrap();
    let expected = format!("price: €{}", "ü".repeat(70_000));
    assert_eq!(recv(&mut ws), tungstenite::Message::text(expected));
    // Ending inside a character: refused, and the message ends without it.
    let mut w = conn.stream_text().unwrap();
    w.write_all(b"cut ").unwrap();
    w.write_all(&euro[..2]).unwrap();
    assert!(matches!(w.finish(), Err(Error::InvalidUtf8)));
    assert_eq!(recv(&mut ws), tungstenite::Message::text("cut "));
    // A message of exactly one fragment ends with an empty final fragment;
    // what follows it still goes out.
    let mut w = conn.stream_binary().unwrap();
    w.write_all(&[4u8; 64 << 10]).unwrap();
    w.finish().unwrap();
    conn.send_text("next").unwrap();
    assert_eq!(
        recv(&mut ws),
        tungstenite::Message::binary(vec![4u8; 64 << 10])
    );
    assert_eq!(recv(&mut ws), tungstenite::Message::text("next"));
    // Dropping an unfinished writer ends its message too.
    let mut w = conn.stream_binary().unwrap();
    w.write_all(&[1, 2, 3]).unwrap();
    drop(w);
    assert_eq!(recv(&mut ws), tungstenite::Message::binary(vec![1u8, 2, 3]));
    assert!(closed.rx.try_recv().is_err());
}

#[test]
fn a_client_streams_a_message() {
    let got = Events::new();
    let g = got.tx.clone();
    let res = Resource::new().on_message(move |_, msg| g.send(msg).unwrap());
    let h = start(Config::default(), "/", res);
    let ws = Client::new(format!("ws://{}/", h.local_addr()))
        .connect()
        .unwrap();
    let mut w = ws.stream_binary().unwrap();
    for p in 0..20 {
        let piece: Vec<u8> = (p * 50_000..(p + 1) * 50_000).map(pattern).collect();
        w.write_all(&piece).unwrap();
    }
    ws.send_text("after").unwrap();
    w.finish().unwrap();
    match got.next() {
        Message::Binary(b) => {
            assert_eq!(b.len(), 1_000_000);
            assert!(b.iter().enumerate().all(|(i, b)| *b == pattern(i)));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(got.next(), Message::Text("after".into()));
}

/// Replies wait for the next read's only while more input already waits:
/// a message followed by the first half of another is answered at once,
/// before the second half comes (a reply held for input that is not there
/// would never leave: the client waits for it before sending more). At
/// 4 KiB and at 64 KiB, the largest reply that is ever held.
#[test]
fn replies_are_not_held_for_input_that_has_not_come() {
    let h = echo();
    let mut s = raw_upgraded(h.local_addr(), "/");
    for size in [4096, 65536] {
        answered_before_the_rest(&mut s, size, 20);
    }
}

/// Many messages sent in one burst, each read bringing one or two: every
/// reply comes, in order, whether it left with the replies of later reads
/// or alone. Small (1-6 KB, several held at once) and large (20-100 KB,
/// held one at a time or not at all).
#[test]
fn pipelined_messages_are_all_answered_in_order() {
    // Message `i`: 1,000 to 5,999 bytes of `i`, in pieces of 3,000 bytes.
    pipelined(200, 3000, |i| 1000 + (i * 37) % 5000);
    // 20,000 to 99,999 bytes, in pieces of 50,000.
    pipelined(40, 50_000, |i| 20_000 + (i * 7919) % 80_000);
}

/// Sends `count` messages of `len(i)` bytes of `i` in one burst, written
/// in pieces of `piece` bytes, and checks every reply in order.
fn pipelined(count: usize, piece: usize, len: impl Fn(usize) -> usize) {
    let h = echo();
    let mut s = raw_upgraded(h.local_addr(), "/");
    let body = |i: usize| vec![i as u8; len(i)];
    let mut burst = Vec::new();
    for i in 0..count {
        burst.extend(frame(true, 2, &body(i)));
    }
    let writer = {
        let mut s = s.try_clone().unwrap();
        thread::spawn(move || {
            // In pieces, so that reads find one message or two at a time.
            for piece in burst.chunks(piece) {
                s.write_all(piece).unwrap();
            }
        })
    };
    for i in 0..count {
        assert_eq!(read_frame(&mut s), (2, body(i)), "message {i}");
    }
    writer.join().unwrap();
}

/// An echo server on `/` whose connections take turns of a second: in a
/// debug build a large message's work outlasts the default turn, and a
/// thread whose turn is over holds nothing back (a release build holds
/// within its 50 µs).
fn echo() -> ServerHandle {
    let config = Config::default().yield_after(Some(Duration::from_secs(1)));
    start(config, "/", echo_resource())
}
