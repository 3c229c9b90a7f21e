//! The soak load: waves of mixed, partly hostile clients against
//! `examples/soak.rs`, with the server's RSS, threads and open fds sampled
//! every 2 s. Run by `scripts/soak.sh`.
//!
//!     soak ADDR PID [--minutes M] [--wave SECS]
//!
//! Each wave (default 30 s) has a load phase (12 s) and a quiet phase (the
//! rest, at least 12 s: idle pool threads exit after 10 s). Its load:
//! - a chat room of 500 members on `/chat` (one mio thread; a member is in
//!   once the server has welcomed it), 5 of which never
//!   read; 10 members send numbered messages, and every reading member must
//!   get every message of every sender, in order;
//! - 8 echo clients (1 B to 100 KiB, text and binary, every echo checked);
//! - 6 SSE clients that leave after 0.3-1.5 s and come back with
//!   `Last-Event-ID`: the ids they see must have no gap and no repeat;
//! - churn: connections that upgrade, echo once and close (half with a close
//!   frame, half by dropping the socket), and bare TCP connects;
//! - silent clients (upgrade, then never write): keepalive must close them
//!   within 12 s (1 s ping interval + 5 s to answer, and slack);
//! - clients killed mid-frame and mid-head; slowloris heads (a byte every
//!   500 ms): dropped within 6 s;
//! - an oversized frame header and an oversized fragmented message (close
//!   1009); a text message that is not UTF-8 (close 1007).
//!
//! Pass: no check above failed; the quiet readings after the first wave and
//! after the last agree on threads and fds (no higher); RSS after a warm-up
//! (the highest quiet reading of the last third of the waves against the
//! middle third's, or the last wave against the first when there are fewer
//! than three) grew by at most 10% or 8 MiB; and the server still answers
//! `GET /` at the end.
//! Everything connects to 127.0.0.1 only, and every count and wait is bounded.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use wsportal_bench::frame::{
    client_frame, FrameReader, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,
};
use wsportal_bench::net::{Ev, Net};
use wsportal_bench::procfs;

const CHAT_MEMBERS: usize = 500;
const CHAT_DEAF: usize = 5;
const CHAT_SENDERS: usize = 10;
const ECHO_CLIENTS: usize = 8;
const SSE_CLIENTS: usize = 6;
const LOAD: Duration = Duration::from_secs(12);
const MIN_QUIET: Duration = Duration::from_secs(12);
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Counters shared by every load thread.
#[derive(Default)]
struct Tally {
    /// Messages and events received and checked by reading clients.
    messages: AtomicU64,
    /// Hostile clients that were refused or cut off as they should be.
    refused: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        eprintln!("soak: FAIL: {what}");
        let mut f = self.failures.lock().unwrap();
        if f.len() < 100 {
            f.push(what);
        }
    }
    fn refused_ok(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }
    fn got(&self, n: u64) {
        self.messages.fetch_add(n, Ordering::Relaxed);
    }
}

/// One reading of the server process.
#[derive(Clone, Copy)]
struct Sample {
    secs: u64,
    rss_kib: u64,
    threads: u64,
    fds: u64,
    messages: u64,
}

fn sample(pid: u32, t0: Instant, tally: &Tally) -> Sample {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
    Sample {
        secs: t0.elapsed().as_secs(),
        rss_kib: procfs::status_kib(pid, "VmRSS").unwrap_or(0),
        threads: procfs::threads(pid).unwrap_or(0),
        fds,
        messages: tally.messages.load(Ordering::Relaxed),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!("usage: soak ADDR PID [--minutes M] [--wave SECS]");
        std::process::exit(2)
    };
    let addr: SocketAddr = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| usage());
    assert!(addr.ip().is_loopback(), "the soak only talks to 127.0.0.1");
    let pid: u32 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| usage());
    let flag = |name: &str, default: f64| -> f64 {
        args.iter()
            .skip_while(|a| *a != name)
            .nth(1)
            .map_or(default, |v| v.parse().unwrap_or_else(|_| usage()))
    };
    let minutes = flag("--minutes", 1.0);
    let wave = Duration::from_secs_f64(flag("--wave", 30.0).max(LOAD.as_secs_f64() + 12.0));
    let waves = ((minutes * 60.0) / wave.as_secs_f64()).floor().max(2.0) as usize;

    let t0 = Instant::now();
    let tally = Arc::new(Tally::default());
    let samples = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    println!(
        "soak: {waves} waves of {:.0} s against {addr} (server pid {pid})",
        wave.as_secs_f64()
    );
    println!(
        "{:>6} {:>9} {:>8} {:>6} {:>10}  phase",
        "time", "RSS KiB", "threads", "fds", "messages"
    );
    let phase = Arc::new(Mutex::new(String::from("start")));
    let sampler = {
        let (tally, samples, done, phase) =
            (tally.clone(), samples.clone(), done.clone(), phase.clone());
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let s = sample(pid, t0, &tally);
                let p = phase.lock().unwrap().clone();
                println!(
                    "{:>5}s {:>9} {:>8} {:>6} {:>10}  {p}",
                    s.secs, s.rss_kib, s.threads, s.fds, s.messages
                );
                samples.lock().unwrap().push(s);
                for _ in 0..20 {
                    if done.load(Ordering::Relaxed) {
                        break;
                    }
                    thread::sleep(Duration::from_millis(100));
                }
            }
        })
    };

    let baseline = sample(pid, t0, &tally);
    let mut quiet = Vec::new();
    for w in 1..=waves {
        let start = Instant::now();
        *phase.lock().unwrap() = format!("wave {w} load");
        run_wave(addr, &tally);
        let load_done = Instant::now();
        *phase.lock().unwrap() = format!("wave {w} quiet");
        let until = (start + wave).max(load_done + MIN_QUIET);
        thread::sleep(until.saturating_duration_since(Instant::now()));
        quiet.push(sample(pid, t0, &tally));
    }
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();

    let answers = get_page(addr);
    let retries = PORT_RETRIES.load(Ordering::Relaxed);
    if retries > 0 {
        println!("note: {retries} connects waited for a free local port (machine-wide shortage)");
    }
    println!("\nquiet readings (after each wave's clients left):");
    println!(
        "{:>6} {:>6} {:>9} {:>8} {:>6} {:>10}",
        "wave", "time", "RSS KiB", "threads", "fds", "messages"
    );
    println!(
        "{:>6} {:>5}s {:>9} {:>8} {:>6} {:>10}",
        "start", baseline.secs, baseline.rss_kib, baseline.threads, baseline.fds, baseline.messages
    );
    for (i, s) in quiet.iter().enumerate() {
        println!(
            "{:>6} {:>5}s {:>9} {:>8} {:>6} {:>10}",
            i + 1,
            s.secs,
            s.rss_kib,
            s.threads,
            s.fds,
            s.messages
        );
    }
    let rss: Vec<u64> = samples.lock().unwrap().iter().map(|s| s.rss_kib).collect();
    println!("RSS over the run: {}", sparkline(&rss));

    let (first, last) = (quiet[0], quiet[quiet.len() - 1]);
    // RSS settles over a few waves (allocator arenas of threads that come
    // and go): with three waves or more, the first third is the warm-up and
    // the highest reading of the last third is held against the highest of
    // the middle third; with fewer, the last against the first.
    let third = quiet.len() / 3;
    let top = |q: &[Sample]| q.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let (settled, end_rss) = if third == 0 {
        (first.rss_kib, last.rss_kib)
    } else {
        (
            top(&quiet[third..quiet.len() - third]),
            top(&quiet[quiet.len() - third..]),
        )
    };
    let mut verdict = Vec::new();
    if last.threads > first.threads {
        verdict.push(format!(
            "threads grew from {} to {}",
            first.threads, last.threads
        ));
    }
    if last.fds > first.fds {
        verdict.push(format!("fds grew from {} to {}", first.fds, last.fds));
    }
    let rss_room = (settled / 10).max(8 * 1024);
    println!(
        "RSS after warm-up: {settled} KiB, at the end: {end_rss} KiB (allowed: {rss_room} KiB more)"
    );
    if end_rss > settled + rss_room {
        verdict.push(format!("RSS grew from {settled} KiB to {end_rss} KiB"));
    }
    if !answers {
        verdict.push("the server did not answer GET / at the end".into());
    }
    let failures = tally.failures.lock().unwrap();
    for f in failures.iter().take(10) {
        verdict.push(f.clone());
    }
    if verdict.is_empty() {
        println!(
            "soak: PASS ({} messages checked, {} hostile clients refused or cut off as expected)",
            last.messages,
            tally.refused.load(Ordering::Relaxed)
        );
    } else {
        println!("soak: FAIL ({} check failures)", failures.len());
        for v in verdict {
            println!("  - {v}");
        }
        std::process::exit(1);
    }
}

fn sparkline(values: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let (lo, hi) = (
        values.iter().copied().min().unwrap_or(0),
        values.iter().copied().max().unwrap_or(0),
    );
    let span = (hi - lo).max(1);
    let line: String = values
        .iter()
        .map(|v| BARS[((v - lo) * 7 / span) as usize])
        .collect();
    format!("{line} ({lo}..{hi} KiB)")
}

/// One wave's load; returns when every client of the wave is done.
fn run_wave(addr: SocketAddr, tally: &Arc<Tally>) {
    let end = Instant::now() + LOAD;
    let mut threads = Vec::new();
    let spawn =
        |threads: &mut Vec<thread::JoinHandle<()>>, name: &str, f: Box<dyn FnOnce() + Send>| {
            threads.push(
                thread::Builder::new()
                    .name(name.into())
                    .spawn(f)
                    .expect("spawn a load thread"),
            );
        };
    {
        let t = tally.clone();
        spawn(
            &mut threads,
            "chat",
            Box::new(move || chat_room(addr, end, &t)),
        );
    }
    for i in 0..ECHO_CLIENTS {
        let t = tally.clone();
        spawn(
            &mut threads,
            "echo",
            Box::new(move || echo_client(addr, end, i as u64, &t)),
        );
    }
    for _ in 0..SSE_CLIENTS {
        let t = tally.clone();
        spawn(
            &mut threads,
            "sse",
            Box::new(move || sse_client(addr, end, &t)),
        );
    }
    for i in 0..2 {
        let t = tally.clone();
        spawn(
            &mut threads,
            "churn",
            Box::new(move || churn(addr, end, i, &t)),
        );
    }
    {
        let t = tally.clone();
        spawn(&mut threads, "hostile", Box::new(move || hostile(addr, &t)));
    }
    for h in threads {
        if h.join().is_err() {
            tally.fail("a load thread panicked".into());
        }
    }
}

/// A blocking WebSocket client on a raw socket.
struct Ws {
    s: TcpStream,
    rd: FrameReader,
    queue: VecDeque<(u8, Vec<u8>)>,
}

impl Ws {
    fn connect(addr: SocketAddr, path: &str) -> io::Result<Ws> {
        let mut s = connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_nodelay(true)?;
        let key = tungstenite::handshake::client::generate_key();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )?;
        let mut rd = FrameReader::new(8192);
        let end = loop {
            if let Some(end) = rd.pending().windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            if rd.read_once(&mut s)?.is_none() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        };
        let head = String::from_utf8_lossy(&rd.pending()[..end]).to_string();
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        if !head.starts_with("HTTP/1.1 101") || !head.contains(&accept) {
            return Err(io::Error::other(format!("upgrade refused: {head:?}")));
        }
        rd.consume(end + 4);
        Ok(Ws {
            s,
            rd,
            queue: VecDeque::new(),
        })
    }

    fn send(&mut self, op: u8, payload: &[u8]) -> io::Result<()> {
        self.s.write_all(&client_frame(op, payload, MASK))
    }

    /// The next message or close frame; answers pings. `None` at EOF.
    fn recv(&mut self) -> io::Result<Option<(u8, Vec<u8>)>> {
        loop {
            while let Some((op, p)) = self.queue.pop_front() {
                if op == OP_PING {
                    self.send(OP_PONG, &p)?;
                    continue;
                }
                return Ok(Some((op, p)));
            }
            if self.rd.read_once(&mut self.s)?.is_none() {
                return Ok(None);
            }
            let q = &mut self.queue;
            self.rd
                .drain(|op, p| {
                    q.push_back((op, p.to_vec()));
                    Ok(())
                })
                .map_err(io::Error::other)?;
        }
    }

    /// Reads until the server's close frame; returns its code.
    fn close_code(&mut self) -> io::Result<Option<u16>> {
        while let Some((op, p)) = self.recv()? {
            if op == OP_CLOSE {
                return Ok(p.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]])));
            }
        }
        Ok(None)
    }
}

/// Connects retries caused by this machine running out of local ports.
static PORT_RETRIES: AtomicU64 = AtomicU64::new(0);

/// Connects, retrying for up to 5 s while the machine has no free local port
/// (Linux says EAGAIN; other programs on a shared machine use ports too).
/// That is the load generator's shortage, not the server's, so it is
/// counted and printed, not failed.
fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let give_up = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::AddrNotAvailable
                ) && Instant::now() < give_up =>
            {
                PORT_RETRIES.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Pseudo-random numbers, enough for sizes and timings.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    t | 1
}

fn echo_client(addr: SocketAddr, end: Instant, i: u64, tally: &Tally) {
    let mut rng = Rng(seed() ^ (i << 32));
    let mut ws = match Ws::connect(addr, "/echo") {
        Ok(ws) => ws,
        Err(e) => return tally.fail(format!("echo: connect: {e}")),
    };
    while Instant::now() < end {
        let len = match rng.below(4) {
            0 => rng.below(16) as usize,
            1 => rng.below(2000) as usize,
            _ => rng.below(100 * 1024) as usize,
        };
        let text = rng.below(2) == 0;
        let payload: Vec<u8> = if text {
            (0..len).map(|k| b'a' + (k % 26) as u8).collect()
        } else {
            (0..len).map(|_| rng.next() as u8).collect()
        };
        let op = if text { OP_TEXT } else { OP_BINARY };
        if let Err(e) = ws.send(op, &payload) {
            return tally.fail(format!("echo: send: {e}"));
        }
        match ws.recv() {
            Ok(Some((o, p))) if o == op && p == payload => tally.got(1),
            Ok(other) => {
                return tally.fail(format!(
                    "echo: wrong answer for {len} bytes: {:?}",
                    other.map(|(o, p)| (o, p.len()))
                ))
            }
            Err(e) => return tally.fail(format!("echo: recv: {e}")),
        }
    }
    let _ = ws.send(OP_CLOSE, &1000u16.to_be_bytes());
    match ws.close_code() {
        Ok(Some(1000)) => {}
        other => tally.fail(format!("echo: close answered with {other:?}")),
    }
}

/// One SSE connection: reads events until `leave`, checking the ids follow
/// `last`. Returns the last id seen.
fn sse_once(
    addr: SocketAddr,
    last: Option<u64>,
    leave: Instant,
    tally: &Tally,
) -> io::Result<Option<u64>> {
    let mut s = connect(addr)?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    let resume = last.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
    write!(
        s,
        "GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{resume}\r\n"
    )?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut head_done = false;
    let mut last = last;
    let mut id: Option<u64> = None;
    while Instant::now() < leave {
        let n = match s.read(&mut chunk) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(&chunk[..n]);
        if !head_done {
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            if !buf.starts_with(b"HTTP/1.1 200") {
                return Err(io::Error::other("event stream refused"));
            }
            buf.drain(..end + 4);
            head_done = true;
        }
        while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line[..nl]).to_string();
            if let Some(v) = line.strip_prefix("id: ") {
                id = v.parse().ok();
            } else if line.is_empty() {
                if let Some(n) = id.take() {
                    if let Some(prev) = last {
                        if n != prev + 1 {
                            tally.fail(format!("sse: event {n} after {prev}"));
                        }
                    }
                    last = Some(n);
                    tally.got(1);
                }
            }
        }
    }
    Ok(last)
}

fn sse_client(addr: SocketAddr, end: Instant, tally: &Tally) {
    let mut rng = Rng(seed());
    let mut last = None;
    while Instant::now() < end {
        let leave = Instant::now() + Duration::from_millis(300 + rng.below(1200));
        match sse_once(addr, last, leave, tally) {
            Ok(l) => last = l,
            Err(e) => return tally.fail(format!("sse: {e}")),
        }
    }
}

fn churn(addr: SocketAddr, end: Instant, i: usize, tally: &Tally) {
    let mut n = 0u64;
    while Instant::now() < end {
        n += 1;
        // About 100 connections a second per thread: churn, not a port flood.
        thread::sleep(Duration::from_millis(10));
        if n.is_multiple_of(5) {
            // A bare connect: the server sees EOF before any request.
            drop(connect(addr));
            continue;
        }
        let mut ws = match Ws::connect(addr, "/echo") {
            Ok(ws) => ws,
            Err(e) => return tally.fail(format!("churn: connect: {e}")),
        };
        let msg = format!("churn {i} {n}");
        if ws.send(OP_TEXT, msg.as_bytes()).is_err() {
            return tally.fail("churn: send".into());
        }
        match ws.recv() {
            Ok(Some((OP_TEXT, p))) if p == msg.as_bytes() => tally.got(1),
            other => return tally.fail(format!("churn: echo {:?}", other.map(|o| o.map(|m| m.0)))),
        }
        if n.is_multiple_of(2) {
            let _ = ws.send(OP_CLOSE, &1000u16.to_be_bytes());
            let _ = ws.close_code();
        }
    }
}

/// Reads until EOF; the time it took, or `None` past `limit`.
fn time_to_eof(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let mut b = [0u8; 1024];
    while t.elapsed() < limit {
        match s.read(&mut b) {
            Ok(0) => return Some(t.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(t.elapsed()),
        }
    }
    None
}

/// The hostile clients, several of each per wave, in parallel.
fn hostile(addr: SocketAddr, tally: &Arc<Tally>) {
    let mut threads = Vec::new();
    let mut go = |f: Box<dyn FnOnce(&Tally) + Send>| {
        let t = tally.clone();
        threads.push(thread::spawn(move || f(&t)));
    };
    for _ in 0..4 {
        // Silent: upgrade, then never write (pings unanswered).
        go(Box::new(move |t| match Ws::connect(addr, "/echo") {
            Ok(mut ws) => {
                if time_to_eof(&mut ws.s, Duration::from_secs(12)).is_none() {
                    t.fail("silent client not reaped within 12 s".into());
                } else {
                    t.refused_ok();
                }
            }
            Err(e) => t.fail(format!("silent: connect: {e}")),
        }));
        // Slowloris: a head that never ends, a byte every 500 ms.
        go(Box::new(move |t| {
            let Ok(mut s) = connect(addr) else {
                return t.fail("slowloris: connect".into());
            };
            let _ = s.write_all(b"GET /echo HTTP/1.1\r\n");
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let start = Instant::now();
            let mut b = [0u8; 256];
            loop {
                if start.elapsed() > Duration::from_secs(6) {
                    return t.fail("slowloris head not dropped within 6 s".into());
                }
                if s.write_all(b"X").is_err() {
                    return t.refused_ok();
                }
                match s.read(&mut b) {
                    Ok(_) => return t.refused_ok(), // an answer or EOF: dropped
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => return t.refused_ok(),
                }
            }
        }));
        // Killed mid-frame: half of a 100 KiB frame, then gone.
        go(Box::new(move |t| match Ws::connect(addr, "/echo") {
            Ok(mut ws) => {
                let frame = client_frame(OP_BINARY, &vec![7u8; 100 * 1024], MASK);
                let _ = ws.s.write_all(&frame[..frame.len() / 2]);
            }
            Err(e) => t.fail(format!("killed: connect: {e}")),
        }));
        // Killed mid-head.
        go(Box::new(move |_| {
            if let Ok(mut s) = connect(addr) {
                let _ = s.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgr");
            }
        }));
    }
    // Refusals with a close code.
    type Case = (&'static str, u16, fn(&mut Ws) -> io::Result<()>);
    let cases: [Case; 3] = [
        ("oversized frame", 1009, |ws| {
            // A header announcing 2 MiB (the limit is 1 MiB), then a little.
            let mut f = vec![0x82, 0xFF];
            f.extend_from_slice(&(2u64 << 20).to_be_bytes());
            f.extend_from_slice(&MASK);
            f.extend_from_slice(&[0; 1024]);
            ws.s.write_all(&f)
        }),
        ("oversized message", 1009, |ws| {
            let part = vec![1u8; 600 * 1024];
            let mut first = client_frame(OP_BINARY, &part, MASK);
            first[0] &= 0x7F; // not final
            ws.s.write_all(&first)?;
            ws.s.write_all(&client_frame(OP_CONT, &part, MASK))
        }),
        ("invalid utf-8", 1007, |ws| ws.send(OP_TEXT, b"ok \xff\xfe")),
    ];
    for (name, code, send) in cases {
        for _ in 0..2 {
            go(Box::new(move |t| match Ws::connect(addr, "/echo") {
                Ok(mut ws) => {
                    let got = send(&mut ws).and_then(|()| ws.close_code());
                    if matches!(got, Ok(Some(c)) if c == code) {
                        t.refused_ok();
                    } else {
                        t.fail(format!("{name}: expected close {code}, got {got:?}"));
                    }
                }
                Err(e) => t.fail(format!("{name}: connect: {e}")),
            }));
        }
    }
    for h in threads {
        if h.join().is_err() {
            tally.fail("a hostile client panicked".into());
        }
    }
}

/// Per-member state of the chat room.
#[derive(Default)]
struct Member {
    deaf: bool,
    open: bool,
    got: u64,
    /// The close code the server sent, if it did.
    close: Option<u16>,
    /// The last sequence number seen from each sender.
    seen: [u64; CHAT_SENDERS],
}

fn chat_room(addr: SocketAddr, end: Instant, tally: &Tally) {
    let mut net: Net<Member> = match Net::new(addr, "/chat", false, 16 * 1024) {
        Ok(n) => n,
        Err(e) => return tally.fail(format!("chat: {e}")),
    };
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut handler =
        |_id: usize, m: &mut Member, _out: &mut Vec<u8>, ev: Ev| -> Result<(), String> {
            match ev {
                Ev::Open => {}
                // In the room (registered for broadcasts) from the welcome on.
                Ev::Msg(OP_TEXT, b"welcome") => m.open = true,
                Ev::Msg(OP_TEXT, p) => {
                    let text = std::str::from_utf8(p).map_err(|e| e.to_string())?;
                    let (s, n) = text
                        .strip_prefix('s')
                        .and_then(|t| t.split_once('-'))
                        .ok_or_else(|| format!("chat: odd message {text:?}"))?;
                    let (s, n): (usize, u64) = (
                        s.parse().map_err(|_| "sender")?,
                        n.parse().map_err(|_| "seq")?,
                    );
                    if n != m.seen[s] + 1 {
                        errors
                            .lock()
                            .unwrap()
                            .push(format!("chat: from {s} got {n} after {}", m.seen[s]));
                    }
                    m.seen[s] = n;
                    m.got += 1;
                }
                Ev::Msg(OP_CLOSE, p) => {
                    m.close = p.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]))
                }
                Ev::Msg(..) => {}
                Ev::Closed(why) => {
                    if !m.deaf {
                        errors.lock().unwrap().push(format!(
                            "chat: a reading member was closed ({why}, close code {:?})",
                            m.close
                        ));
                    }
                    m.open = false;
                }
            }
            Ok(())
        };
    let fail_fast = |r: Result<(), String>| r.map_err(|e| tally.fail(format!("chat: {e}"))).is_ok();
    // Join in batches (the listen backlog is finite).
    let join_by = Instant::now() + Duration::from_secs(20);
    let mut ids = Vec::new();
    for i in 0..CHAT_MEMBERS {
        let m = Member {
            deaf: i < CHAT_DEAF,
            ..Member::default()
        };
        match net.connect(m) {
            Ok(id) => ids.push(id),
            Err(e) => return tally.fail(format!("chat: {e}")),
        }
        if i % 50 == 49 && !fail_fast(net.poll(Duration::from_millis(20), &mut handler)) {
            return;
        }
    }
    loop {
        let open = ids
            .iter()
            .filter(|&&id| net.state(id).is_some_and(|m| m.open))
            .count();
        if open == CHAT_MEMBERS {
            break;
        }
        if Instant::now() > join_by {
            let gone = ids.iter().filter(|&&id| net.state(id).is_none()).count();
            for e in errors.lock().unwrap().iter().take(3) {
                tally.fail(e.clone());
            }
            return tally.fail(format!(
                "chat: only {open} of {CHAT_MEMBERS} members joined in 20 s ({gone} closed before)"
            ));
        }
        if !fail_fast(net.poll(Duration::from_millis(50), &mut handler)) {
            return;
        }
    }
    for &id in &ids[..CHAT_DEAF] {
        let _ = net.set_reading(id, false, &mut handler);
    }
    // Senders are reading members; one message every 50 ms, round robin.
    let senders: Vec<usize> = ids[CHAT_DEAF..CHAT_DEAF + CHAT_SENDERS].to_vec();
    let mut sent = 0u64;
    let mut next = Instant::now();
    while Instant::now() < end {
        if Instant::now() >= next {
            let s = (sent as usize) % CHAT_SENDERS;
            let seq = sent / CHAT_SENDERS as u64 + 1;
            let frame = client_frame(OP_TEXT, format!("s{s}-{seq}").as_bytes(), MASK);
            if !fail_fast(net.send(senders[s], &frame, &mut handler)) {
                return;
            }
            sent += 1;
            next += Duration::from_millis(50);
        }
        if !fail_fast(net.poll(Duration::from_millis(5), &mut handler)) {
            return;
        }
    }
    // Every reading member gets every message (bounded wait).
    let by = Instant::now() + Duration::from_secs(15);
    loop {
        let behind = ids[CHAT_DEAF..]
            .iter()
            .filter(|&&id| net.state(id).is_none_or(|m| m.got < sent))
            .count();
        if behind == 0 {
            break;
        }
        if Instant::now() > by {
            tally.fail(format!(
                "chat: {behind} reading members missed messages ({sent} sent)"
            ));
            break;
        }
        if !fail_fast(net.poll(Duration::from_millis(20), &mut handler)) {
            return;
        }
    }
    for e in errors.lock().unwrap().iter().take(5) {
        tally.fail(e.clone());
    }
    let delivered: u64 = ids
        .iter()
        .filter_map(|&id| net.state(id).map(|m| m.got))
        .sum();
    tally.got(delivered);
    // Leave: half with a close frame, half by dropping the socket.
    for (k, &id) in ids.iter().enumerate() {
        if k % 2 == 0 {
            let _ = net.send(
                id,
                &client_frame(OP_CLOSE, &1000u16.to_be_bytes(), MASK),
                &mut |_, _: &mut Member, _: &mut Vec<u8>, _: Ev| Ok(()),
            );
        }
    }
    let _ = net.poll(
        Duration::from_millis(100),
        &mut |_, _: &mut Member, _: &mut Vec<u8>, _: Ev| Ok(()),
    );
    for id in ids {
        net.drop_conn(id);
    }
}

/// Whether `GET /` still gets its page.
fn get_page(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out.starts_with(b"HTTP/1.1 200") && out.ends_with(b"soak\n")
}
