//! A chaos check of the Redis backplane (feature `redis`; issue 28), a
//! binary of its own because it kills processes: three server instances
//! (this binary run again as `chaos_node`, each a process of its own) on
//! one real `redis-server`; two of them publish to one event stream at
//! once; clients disconnect at random and resume on a random instance with
//! their last id; in the middle Redis restarts without its data and one
//! instance is killed with SIGKILL.
//!
//! The checker asserts that every client's events, in order, are the
//! stream's one sequence (its history in Redis: the part read just before
//! the restart, then the part after), with no duplicate and no gap, except
//! where the client was told its id was unknown (`on_unknown_id`) or across
//! the restart (that history is gone); and that group presence is the truth
//! one presence TTL after the kill. Seeded (`CHAOS_SEED`, printed), bounded
//! (about 20 s), 127.0.0.1 only. `bash scripts/chaos-cluster.sh` runs it
//! with its report.
#![cfg(feature = "redis")]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsportal::{Backplane, Config, Event, EventStream, Resource, Server};

/// Every wait is bounded by this.
const WAIT: Duration = Duration::from_secs(20);
const PREFIX: &str = "chaos";
const PRESENCE_TTL: Duration = Duration::from_secs(3);
const HISTORY: usize = 50_000;
const CLIENTS: usize = 6;

// ---------------------------------------------------------------- the node

/// One instance, when run as a child with `WSPORTAL_CHAOS_REDIS` set (a
/// no-op test otherwise). It prints `CHAOS-ADDR <addr>`, then obeys its
/// stdin: `publish NAME` publishes `NAME-0`, `NAME-1`, ... every 4 ms until
/// `stop`, which prints `CHAOS-STOPPED <n>`; EOF ends it.
#[test]
fn chaos_node() {
    let Ok(url) = std::env::var("WSPORTAL_CHAOS_REDIS") else {
        return;
    };
    let bp = Backplane::redis(&url)
        .unwrap()
        .prefix(PREFIX)
        .presence_ttl(PRESENCE_TTL)
        // Under load a Redis step may take longer than the default 250 ms
        // (a presence refresh that gives up twice would let a live
        // instance's count lapse).
        .timeout(Duration::from_secs(1));
    let mut server = Server::with_config(
        Config::default()
            .shutdown_grace(Duration::from_millis(100))
            .sse_keepalive(None),
    );
    server.define_event_stream(
        "/events",
        EventStream::new()
            .history(HISTORY)
            .on_unknown_id(|_| Some(Event::new("unknown").name("unknown"))),
    );
    server.define_resource(
        "/ws/:g",
        Resource::new().on_open(|ws| ws.join(ws.param("g").unwrap_or(""))),
    );
    server.backplane(bp);
    let h = server.start("127.0.0.1:0").unwrap();
    println!("CHAOS-ADDR {}", h.local_addr());
    let publisher = h.event_stream("/events").unwrap().allow_nobody();
    let stop = Arc::new(AtomicBool::new(false));
    let mut running: Option<std::thread::JoinHandle<usize>> = None;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if let Some(name) = line.strip_prefix("publish ") {
            let (p, stop, name) = (publisher.clone(), Arc::clone(&stop), name.to_owned());
            running = Some(std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let id = format!("{name}-{n}");
                    let _ = p.send(&Event::new(id.clone()).id(id));
                    n += 1;
                    std::thread::sleep(Duration::from_millis(4));
                }
                n
            }));
        } else if line == "stop" {
            stop.store(true, Ordering::SeqCst);
            let n = running.take().map_or(0, |t| t.join().unwrap());
            println!("CHAOS-STOPPED {n}");
        }
    }
    h.close();
}

// ---------------------------------------------------------------- helpers

/// xorshift64*: enough randomness, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(port: u16) -> Redis {
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        let out = BufReader::new(child.stdout.take().unwrap());
        let (ready, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { break };
                if line.contains("Ready to accept connections") {
                    let _ = ready.send(());
                }
            }
        });
        ready_rx.recv_timeout(WAIT).expect("redis-server ready");
        Redis { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn conn(&self) -> redis::Connection {
        let c = redis::Client::open(self.url()).unwrap();
        let conn = c.get_connection_with_timeout(WAIT).unwrap();
        conn.set_read_timeout(Some(WAIT)).unwrap();
        conn
    }

    /// The stream's history: its events' ids, oldest first.
    fn history(&self) -> Vec<String> {
        let entries: Vec<(String, HashMap<String, Vec<u8>>)> = redis::cmd("XRANGE")
            .arg(format!("{PREFIX}:history:/events"))
            .arg("-")
            .arg("+")
            .query(&mut self.conn())
            .unwrap();
        entries
            .into_iter()
            .map(|(_, f)| {
                // The event as the wire format's kind 3 payload: flags, then
                // the id (u16 length + bytes).
                let e = &f["e"];
                assert_eq!(e[0] & 1, 1, "kept events have an id");
                let n = usize::from(u16::from_be_bytes([e[1], e[2]]));
                String::from_utf8(e[3..3 + n].to_vec()).unwrap()
            })
            .collect()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A node process; SIGKILLed on drop.
struct Node {
    child: Child,
    stdin: Option<ChildStdin>,
    out: BufReader<std::process::ChildStdout>,
    addr: SocketAddr,
    alive: Arc<AtomicBool>,
}

impl Node {
    fn start(redis: &Redis) -> Node {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "chaos_node", "--nocapture", "--test-threads=1"])
            .env("WSPORTAL_CHAOS_REDIS", redis.url())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let addr = Node::expect(&mut out, "CHAOS-ADDR ").parse().unwrap();
        Node {
            child,
            stdin,
            out,
            addr,
            alive: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Reads lines until one holds `tag`; returns what follows it.
    fn expect(out: &mut BufReader<std::process::ChildStdout>, tag: &str) -> String {
        loop {
            let mut line = String::new();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "node ended before {tag}"
            );
            if let Some(i) = line.find(tag) {
                return line[i + tag.len()..].trim().to_owned();
            }
        }
    }

    fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One connection of a client: where, the id it resumed with, and what it got.
#[derive(Debug, Default)]
struct Conn {
    node: usize,
    resumed_from: Option<String>,
    told_unknown: bool,
    ids: Vec<String>,
}

/// Opens an event stream on `addr`, resuming after `last`.
fn open(addr: SocketAddr, last: Option<&str>) -> Option<BufReader<TcpStream>> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let resume = last.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
    let req = format!("GET /events HTTP/1.1\r\nHost: x\r\n{resume}\r\n");
    (&s).write_all(req.as_bytes()).ok()?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    if !line.starts_with("HTTP/1.1 200") {
        return None;
    }
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            return Some(r);
        }
    }
}

/// The next event: `Some((id, name))` (either may be empty); `None` when
/// the connection ended or nothing came for 2 s.
fn next(r: &mut BufReader<TcpStream>) -> Option<(String, String)> {
    let (mut id, mut name, mut data) = (String::new(), String::new(), false);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        match line.trim_end_matches('\n').split_once(": ") {
            Some(("id", v)) => v.clone_into(&mut id),
            Some(("event", v)) => v.clone_into(&mut name),
            Some(("data", _)) => data = true,
            _ if line == "\n" && data => return Some((id, name)),
            _ => {}
        }
    }
}

/// Reads one connection's events into `conn` until `enough` says so or
/// it ends; returns the client's last id.
fn read(
    r: &mut BufReader<TcpStream>,
    conn: &mut Conn,
    mut last: Option<String>,
    mut enough: impl FnMut(&Conn) -> bool,
) -> Option<String> {
    while !enough(conn) {
        let Some((id, name)) = next(r) else { break };
        if name == "unknown" {
            conn.told_unknown = true;
        } else if !id.is_empty() {
            conn.ids.push(id.clone());
            last = Some(id);
        }
    }
    last
}

// ---------------------------------------------------------------- the check

#[test]
fn chaos_cluster() {
    if std::env::var("WSPORTAL_CHAOS_REDIS").is_ok() {
        return; // a node runs only `chaos_node`
    }
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "redis-server is not installed, and CI must run the chaos check"
        );
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    }
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            u64::from(t.subsec_nanos()) | 1
        });
    eprintln!("chaos: CHAOS_SEED={seed}");
    let t0 = Instant::now();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = Redis::start(port);
    let mut nodes: Vec<Node> = (0..3).map(|_| Node::start(&redis)).collect();
    let addrs: Vec<(SocketAddr, Arc<AtomicBool>)> = nodes
        .iter()
        .map(|n| (n.addr, Arc::clone(&n.alive)))
        .collect();
    // A member of `room` on each instance: the truth is 3, then 2.
    let members: Vec<_> = nodes
        .iter()
        .map(|n| {
            let s = TcpStream::connect(n.addr).unwrap();
            let url = format!("ws://{}/ws/room", n.addr);
            tungstenite::client(url, s).unwrap().0
        })
        .collect();
    let watch = Backplane::redis(&redis.url()).unwrap().prefix(PREFIX);
    let eventually = |what: &str, f: &dyn Fn() -> bool| {
        let deadline = Instant::now() + WAIT;
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    eventually("3 members", &|| {
        watch.cluster_group_size("room").ok() == Some(3)
    });

    // Clients: connect, read a few events, drop, resume on a random live
    // instance with their last id, until told to finish.
    let finishing = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|k| {
            let (addrs, finishing) = (addrs.clone(), Arc::clone(&finishing));
            let mut rng = Rng(seed
                .wrapping_add(k as u64 + 1)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                | 1);
            std::thread::spawn(move || {
                let mut conns: Vec<Conn> = Vec::new();
                let mut last: Option<String> = None;
                while !finishing.load(Ordering::SeqCst) {
                    let node = rng.below(3) as usize;
                    if !addrs[node].1.load(Ordering::SeqCst) {
                        continue;
                    }
                    let Some(mut r) = open(addrs[node].0, last.as_deref()) else {
                        continue;
                    };
                    let mut conn = Conn {
                        node,
                        resumed_from: last.clone(),
                        ..Conn::default()
                    };
                    let n = 1 + rng.below(60) as usize;
                    last = read(&mut r, &mut conn, last, |c| c.ids.len() >= n);
                    conns.push(conn);
                    std::thread::sleep(Duration::from_millis(rng.below(30)));
                }
                (conns, last, rng)
            })
        })
        .collect();

    nodes[0].say("publish a");
    nodes[1].say("publish b");
    std::thread::sleep(Duration::from_secs(3));

    // Redis restarts without its data. Writes are paused first, so that
    // the history read now is the whole of its first part.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(60_000)
        .arg("WRITE")
        .query(&mut redis.conn())
        .unwrap();
    let first = redis.history();
    redis.kill();
    redis = Redis::start(port);
    eprintln!(
        "chaos: Redis restarted at {:?} after {} events",
        t0.elapsed(),
        first.len()
    );
    eventually("3 members again", &|| {
        watch.cluster_group_size("room").ok() == Some(3)
    });
    std::thread::sleep(Duration::from_secs(2));

    // SIGKILL of the third instance (no publisher): its count must be gone
    // one presence TTL later (its liveness key was written before the kill,
    // with that TTL).
    addrs[2].1.store(false, Ordering::SeqCst);
    let killed_at = Instant::now();
    nodes[2].child.kill().unwrap();
    nodes[2].child.wait().unwrap();
    std::thread::sleep(PRESENCE_TTL.saturating_sub(killed_at.elapsed()));
    let size = (0..50)
        .find_map(|_| watch.cluster_group_size("room").ok())
        .expect("Redis answers");
    assert_eq!(size, 2, "presence one TTL after the kill");
    eprintln!("chaos: instance 3 killed; presence was 2 after one TTL");
    std::thread::sleep(Duration::from_secs(2));

    for (i, name) in [(0, "a"), (1, "b")] {
        nodes[i].say("stop");
        let n = Node::expect(&mut nodes[i].out, "CHAOS-STOPPED ");
        eprintln!("chaos: publisher {name} sent {n}");
    }
    let second = redis.history();
    finishing.store(true, Ordering::SeqCst);
    let mut results: Vec<(Vec<Conn>, Option<String>, Rng)> =
        clients.into_iter().map(|c| c.join().unwrap()).collect();

    // The stream's one sequence, and where its second part starts.
    let sequence: Vec<String> = first.iter().chain(&second).cloned().collect();
    let split = first.len();
    let place: HashMap<&str, usize> = sequence
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    assert_eq!(place.len(), sequence.len(), "ids are unique in the history");
    let end = sequence.last().cloned().expect("events were kept");

    // Each client catches up, on live instances, to the end (or is told its
    // id is unknown); a read that waits 2 s for nothing resumes again.
    for (conns, last, rng) in &mut results {
        let deadline = Instant::now() + WAIT;
        while last.as_deref() != Some(end.as_str()) {
            assert!(Instant::now() < deadline, "a client never caught up");
            let node = rng.below(2) as usize;
            let Some(mut r) = open(addrs[node].0, last.as_deref()) else {
                continue;
            };
            let mut conn = Conn {
                node,
                resumed_from: last.clone(),
                ..Conn::default()
            };
            *last = read(&mut r, &mut conn, last.take(), |c| {
                c.told_unknown || c.ids.last() == Some(&end)
            });
            let told = conn.told_unknown;
            conns.push(conn);
            if told {
                break;
            }
        }
    }

    // Probes on each live instance: the first event of the lost history is
    // unknown everywhere; from the middle of the history, exactly the rest.
    let middle = split + (sequence.len() - split) / 2;
    let mut probes = 0;
    for (addr, _) in &addrs[..2] {
        let mut r = open(*addr, Some(&first[0])).expect("a live instance answers");
        let mut c = Conn::default();
        read(&mut r, &mut c, None, |c| {
            c.told_unknown || !c.ids.is_empty()
        });
        assert!(c.told_unknown, "{} is unknown on {addr}", first[0]);
        let mut r = open(*addr, Some(&sequence[middle])).expect("a live instance answers");
        let mut c = Conn::default();
        read(&mut r, &mut c, None, |c| c.ids.last() == Some(&end));
        assert_eq!(
            c.ids,
            sequence[middle + 1..],
            "the rest after the middle on {addr}"
        );
        probes += 2;
    }

    // The check.
    let (mut resumes, mut duplicates, mut gaps, mut unknown, mut local_only) = (0, 0, 0, 0, 0);
    let mut received = 0;
    for (k, (conns, _, _)) in results.iter().enumerate() {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut at: Option<usize> = None;
        let mut reached_end = false;
        for c in conns {
            resumes += usize::from(c.resumed_from.is_some());
            unknown += usize::from(c.told_unknown);
            let mut may_skip = c.told_unknown;
            for id in &c.ids {
                received += 1;
                *seen.entry(id).or_default() += 1;
                if seen[id.as_str()] > 1 {
                    duplicates += 1;
                    eprintln!("chaos: client {k} got {id} twice (on instance {})", c.node);
                    continue;
                }
                let Some(&i) = place.get(id.as_str()) else {
                    // Sent while its instance had no Redis: live only.
                    local_only += 1;
                    continue;
                };
                if let Some(prev) = at {
                    let across_restart = prev < split && i == split;
                    if i <= prev {
                        duplicates += 1;
                        eprintln!("chaos: client {k} got {id} after {}", sequence[prev]);
                    } else if i != prev + 1 && !may_skip && !across_restart {
                        gaps += 1;
                        eprintln!(
                            "chaos: client {k} skipped {} events after {} (instance {}, resumed from {:?})",
                            i - prev - 1,
                            sequence[prev],
                            c.node,
                            c.resumed_from
                        );
                    }
                }
                may_skip = false;
                at = Some(at.map_or(i, |p| p.max(i)));
                reached_end = *id == end;
            }
        }
        let last_told = conns.last().is_some_and(|c| c.told_unknown);
        assert!(
            reached_end || last_told,
            "client {k} neither reached the end nor was told its id is unknown"
        );
    }
    drop(members);
    eprintln!(
        "chaos: seed {seed}: {} events in the sequence ({} before the restart), {received} received by {CLIENTS} clients, \
         {resumes} resumes, {unknown} told unknown, {local_only} live-only (outage), {probes} probes passed, \
         duplicates {duplicates}, gaps {gaps}, in {:?}",
        sequence.len(),
        split,
        t0.elapsed()
    );
    assert_eq!((duplicates, gaps), (0, 0), "seed {seed}");
}
