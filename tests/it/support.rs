//! Helpers shared by the integration tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use tungstenite::WebSocket;

/// A resource that sends each message back as it came.
pub fn echo_resource() -> wsportal::Resource {
    wsportal::Resource::new().on_message(|ws, msg| {
        let _ = ws.send(msg);
    })
}

/// Every wait in the tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(20);

pub fn init_logs() {
    let _ = env_logger::builder().is_test(true).try_init();
}

/// A channel hooks report to, and the test reads from with a bounded wait.
pub struct Events<T> {
    pub tx: Sender<T>,
    pub rx: Receiver<T>,
}

impl<T> Events<T> {
    pub fn new() -> Events<T> {
        let (tx, rx) = crossbeam_channel::unbounded();
        Events { tx, rx }
    }

    pub fn next(&self) -> T {
        self.rx
            .recv_timeout(WAIT)
            .expect("event did not arrive in time")
    }
}

/// A tungstenite client (a peer we did not write) with bounded reads.
pub fn connect(addr: SocketAddr, path: &str) -> WebSocket<TcpStream> {
    connect_with(addr, path, &[]).expect("handshake failed")
}

pub fn connect_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<WebSocket<TcpStream>, tungstenite::Error> {
    use tungstenite::client::IntoClientRequest;
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    tungstenite::client(req, stream)
        .map(|(ws, _)| ws)
        .map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => e,
            tungstenite::HandshakeError::Interrupted(_) => panic!("interrupted handshake"),
        })
}

/// Reads the next data message (skipping pings), panicking on anything else.
pub fn recv<S: Read + Write>(ws: &mut WebSocket<S>) -> tungstenite::Message {
    loop {
        match ws.read().expect("read failed") {
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => continue,
            m => return m,
        }
    }
}

/// A ping round trip: once the pong is back, the connection's own thread
/// runs, so it is registered for broadcasts and counted in `stats()` (the
/// `101` goes out just before that).
pub fn ping_sync<S: Read + Write>(ws: &mut WebSocket<S>) {
    ws.send(tungstenite::Message::Ping(b"sync".to_vec().into()))
        .unwrap();
    while !matches!(
        ws.read().expect("read failed"),
        tungstenite::Message::Pong(_)
    ) {}
}

/// Reads until the server's close frame and sends the reply; returns the
/// frame's code and reason.
pub fn recv_close(ws: &mut WebSocket<TcpStream>) -> (u16, String) {
    loop {
        let got = match ws.read() {
            Ok(tungstenite::Message::Close(Some(f))) => (f.code.into(), f.reason.to_string()),
            Ok(tungstenite::Message::Close(None)) => (1005, String::new()),
            Ok(_) => continue,
            Err(e) => panic!("connection ended without a close frame: {e}"),
        };
        let _ = ws.flush();
        return got;
    }
}

/// A raw HTTP exchange: sends `request`, reads the whole answer until EOF.
pub fn http(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    (status, text)
}

/// An upgrade request for `path` with the usual headers.
pub fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

/// A raw socket that has completed an upgrade to `path`.
pub fn raw_upgraded(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(upgrade_request(path, "").as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// A masked client frame.
pub fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    if payload.len() < 126 {
        out.push(0x80 | payload.len() as u8);
    } else if payload.len() < 65536 {
        out.push(0x80 | 126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Reads one unmasked server frame: (opcode, payload). Over TCP or TLS.
pub fn read_frame(s: &mut impl Read) -> (u8, Vec<u8>) {
    let (b0, payload) = read_raw_frame(s);
    (b0 & 0x0F, payload)
}

/// `rounds` times over an upgraded connection to an echo on `/`: a message
/// of `size` bytes and the first half of another, then the rest. The first
/// must be answered before the rest is sent: a reply held for input that
/// has not come would never leave (the client waits for it first).
pub fn answered_before_the_rest(s: &mut (impl Read + Write), size: usize, rounds: u8) {
    let body = vec![b'x'; size];
    for round in 0..rounds {
        let one = frame(true, 2, &body);
        let two = frame(true, 2, &vec![round; size]);
        let (head, tail) = two.split_at(two.len() / 2);
        s.write_all(&one).unwrap();
        s.write_all(head).unwrap();
        assert_eq!(read_frame(s), (2, body.clone()), "{size}: round {round}");
        s.write_all(tail).unwrap();
        assert_eq!(
            read_frame(s),
            (2, vec![round; size]),
            "{size}: round {round}"
        );
    }
}

/// Reads one unmasked server frame: (first byte, with FIN and RSV bits;
/// payload).
pub fn read_raw_frame(s: &mut impl Read) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).unwrap();
    let len = match h[1] & 0x7F {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).unwrap();
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).unwrap();
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).unwrap();
    (h[0], payload)
}

/// Reads server frames until a close frame; returns its code.
pub fn read_close_code(s: &mut TcpStream) -> u16 {
    loop {
        let (op, payload) = read_frame(s);
        if op == 8 {
            return u16::from_be_bytes([payload[0], payload[1]]);
        }
    }
}

/// Opens an event stream (`extra`: more header lines, each ending in
/// `\r\n`) and returns the reader past the response head.
pub fn sse(addr: SocketAddr, path_and_query: &str, extra: &str) -> BufReader<TcpStream> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let req = format!("GET {path_and_query} HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
    (&s).write_all(req.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        assert!(r.read_line(&mut head).expect("head in time") > 0, "{head}");
    }
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    r
}

/// The next event's `(id, data)`, skipping comments.
pub fn next_event(r: &mut BufReader<TcpStream>) -> (String, String) {
    let (mut id, mut data) = (String::new(), String::new());
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).expect("event in time") > 0);
        match line.trim_end_matches('\n').split_once(": ") {
            Some(("id", v)) => id = v.to_owned(),
            Some(("data", v)) => data = v.to_owned(),
            _ if line == "\n" && !data.is_empty() => return (id, data),
            _ => {}
        }
    }
}

/// Reads message `i` of a series of 64 KiB binary messages, each `i` (as a
/// byte) throughout, and checks its size and place.
pub fn recv_block<S: Read + Write>(ws: &mut WebSocket<S>, i: usize) {
    match recv(ws) {
        tungstenite::Message::Binary(d) => {
            assert_eq!(d.len(), 64 << 10);
            assert_eq!(d[0], i as u8, "message {i} in order");
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Broadcasts `n` messages of 64 KiB (message `i` is `i` in every byte)
/// while another thread reads them from `ws`, checking their order. The
/// reader reports each message it took, and at most two are ever on their
/// way to it: a broadcast never waits for anyone, so an unpaced burst would
/// (rightly) close the reader too. Returns `ws` once all have arrived.
pub fn paced_broadcast<S>(b: &wsportal::Broadcaster, n: usize, mut ws: WebSocket<S>) -> WebSocket<S>
where
    S: Read + Write + Send + 'static,
{
    let (got, taken) = crossbeam_channel::unbounded();
    let reader = std::thread::spawn(move || {
        for i in 0..n {
            recv_block(&mut ws, i);
            got.send(i).unwrap();
        }
        ws
    });
    for i in 0..n {
        if i >= 2 {
            assert_eq!(taken.recv_timeout(WAIT).expect("reader fell silent"), i - 2);
        }
        b.to_all(vec![i as u8; 64 << 10]).unwrap();
    }
    reader.join().unwrap()
}

/// Sends `each` messages from each of `threads` threads on `conn`
/// (`payload(tid, seq)`: sender `tid` in its first byte) and reads them all
/// from `ws`, checking that none is torn and each sender's are in order.
pub fn push_from_threads<S: Read + Write>(
    conn: &wsportal::Connection,
    ws: &mut WebSocket<S>,
    threads: u8,
    each: u32,
    payload: fn(u8, u32) -> Vec<u8>,
) {
    let senders: Vec<_> = (0..threads)
        .map(|tid| {
            let conn = conn.clone();
            std::thread::spawn(move || {
                for seq in 0..each {
                    conn.send_binary(&payload(tid, seq)).unwrap();
                }
            })
        })
        .collect();
    let mut next = vec![0u32; threads as usize];
    for _ in 0..(threads as u32 * each) {
        let data = match recv(ws) {
            tungstenite::Message::Binary(b) => b,
            other => panic!("unexpected {other:?}"),
        };
        let tid = data[0];
        let seq = next[tid as usize];
        assert_eq!(
            &data[..],
            &payload(tid, seq)[..],
            "sender {tid} message {seq}"
        );
        next[tid as usize] += 1;
    }
    assert!(next.iter().all(|&n| n == each));
    for s in senders {
        s.join().unwrap();
    }
}

/// Keeps about 1 MiB queued on `conn` (more than the kernel buffers hold),
/// whose peer reads nothing, until the server closes it; returns the code
/// and reason `closed` reports.
pub fn queue_until_closed(
    conn: &wsportal::Connection,
    closed: &Events<(u16, String)>,
) -> (u16, String) {
    let chunk = vec![0u8; 256 << 10];
    while conn.backlog() < (1 << 20) && conn.send_binary(&chunk).is_ok() {}
    closed.next()
}
