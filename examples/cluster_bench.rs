//! The backplane's event-stream numbers (`bench/RESULTS.md`, "Event streams
//! across instances"; `scripts/cluster-bench.sh` runs it): one publisher
//! sends `RATE` events a second for `SECS` seconds to `/events` on instance
//! A; an event-stream client on A and one on B read them; then clients
//! resume on B (or A, alone) with an id `REPLAY` events from the end.
//!
//! ```text
//! cargo run --release --features redis --example cluster_bench -- REDIS_URL|none HISTORY [RATE SECS REPLAY]
//! ```
//!
//! `none` runs one instance with no backplane. It prints one line: the
//! latency (publish to read, p50/p99) on A and on B, the resume time
//! (connect to the last replayed event, p50/p99), and the CPU per event of
//! this process (both instances and the clients) and of redis-server.
//! Public API only, so that it runs on older commits too.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use wsportal::{Config, Event, EventStream, Server, ServerHandle};

fn epoch() -> Instant {
    static T0: OnceLock<Instant> = OnceLock::new();
    *T0.get_or_init(Instant::now)
}

fn cpu_secs() -> f64 {
    // utime and stime, fields 14 and 15 of /proc/self/stat, in ticks of 10 ms.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<u64>() as f64 / 100.0
}

fn start(redis: Option<&str>, history: usize) -> ServerHandle {
    let mut server = Server::with_config(Config::default().sse_keepalive(None));
    server.define_event_stream("/events", EventStream::new().history(history));
    #[cfg(feature = "redis")]
    if let Some(url) = redis {
        server.backplane(wsportal::Backplane::redis(url).expect("a Redis URL"));
    }
    #[cfg(not(feature = "redis"))]
    assert!(redis.is_none(), "a backplane needs --features redis");
    server.start("127.0.0.1:0").expect("starts")
}

fn open(addr: SocketAddr, last: Option<&str>) -> BufReader<TcpStream> {
    let s = TcpStream::connect(addr).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let resume = last.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
    write!(&s, "GET /events HTTP/1.1\r\nHost: x\r\n{resume}\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    while line != "\r\n" {
        line.clear();
        assert!(r.read_line(&mut line).expect("a head") > 0);
    }
    r
}

/// The next event's id and data.
fn next(r: &mut BufReader<TcpStream>) -> (String, String) {
    let (mut id, mut data) = (String::new(), String::new());
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).expect("an event in time") > 0);
        match line.trim_end().split_once(": ") {
            Some(("id", v)) => id = v.to_owned(),
            Some(("data", v)) => data = v.to_owned(),
            _ if line == "\n" => return (id, data),
            _ => {}
        }
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn redis_cpu(url: &str) -> f64 {
    #[cfg(feature = "redis")]
    {
        let Ok(mut c) = redis::Client::open(url).and_then(|c| c.get_connection()) else {
            return 0.0;
        };
        let info: String = redis::cmd("INFO")
            .arg("cpu")
            .query(&mut c)
            .unwrap_or_default();
        info.lines()
            .filter(|l| l.starts_with("used_cpu_sys:") || l.starts_with("used_cpu_user:"))
            .filter_map(|l| l.split_once(':')?.1.trim().parse::<f64>().ok())
            .sum()
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = url;
        0.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: u64| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(default);
    let url = args.first().filter(|u| *u != "none").map(String::as_str);
    let history = arg(1, 1000) as usize;
    let (rate, secs, replay) = (arg(2, 1000), arg(3, 5), arg(4, 100) as usize);
    epoch();
    let a = start(url, history);
    let b = url.map(|u| start(Some(u), history));
    let reader_addrs: Vec<SocketAddr> = std::iter::once(a.local_addr())
        .chain(b.as_ref().map(ServerHandle::local_addr))
        .collect();
    let total = (rate * secs) as usize;
    let publisher = a.event_stream("/events").unwrap().allow_nobody();
    // Readers first; a warm-up event shows each one is served.
    let mut readers: Vec<BufReader<TcpStream>> =
        reader_addrs.iter().map(|&addr| open(addr, None)).collect();
    loop {
        publisher.send(&Event::new("warm-up")).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        // Readers have a 10 s timeout: a warm-up reaches every one soon.
        if readers.iter_mut().all(|r| next(r).1 == "warm-up") {
            break;
        }
    }
    let threads: Vec<_> = readers
        .into_iter()
        .map(|mut r| {
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(total);
                while lat.len() < total {
                    let (id, data) = next(&mut r);
                    if id.is_empty() {
                        continue; // a late warm-up
                    }
                    let sent: u64 = data.parse().unwrap();
                    let now = epoch().elapsed().as_nanos() as u64;
                    lat.push((now - sent) as f64 / 1e6);
                }
                lat
            })
        })
        .collect();
    let (cpu0, redis0) = (cpu_secs(), url.map_or(0.0, redis_cpu));
    let every = Duration::from_nanos(1_000_000_000 / rate);
    let t0 = Instant::now();
    for n in 0..total {
        let due = t0 + every * n as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let sent = epoch().elapsed().as_nanos() as u64;
        publisher
            .send(&Event::new(sent.to_string()).id(format!("e{n}")))
            .unwrap();
    }
    let mut lats: Vec<Vec<f64>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let cpu = (cpu_secs() - cpu0) / total as f64 * 1e6;
    let redis = url.map_or(0.0, |u| (redis_cpu(u) - redis0) / total as f64 * 1e6);
    // Resumes on the other instance (or on A, alone); none without a history.
    let at = *reader_addrs.last().unwrap();
    let from = format!("e{}", total - 1 - replay.min(total - 1));
    let mut resume = vec![0.0];
    for _ in 0..if history > 0 { 200 } else { 0 } {
        let t = Instant::now();
        let mut r = open(at, Some(&from));
        for _ in 0..replay {
            next(&mut r);
        }
        resume.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mut line = format!(
        "{} history {history}, {rate}/s for {secs} s:",
        if url.is_some() {
            "2 instances + Redis"
        } else {
            "1 instance"
        }
    );
    for (name, l) in ["on A", "on B"].iter().zip(&mut lats) {
        line += &format!(
            " latency {name} p50 {:.2} ms p99 {:.2} ms;",
            pct(l, 0.5),
            pct(l, 0.99)
        );
    }
    line += &format!(
        " resume ({replay} events) p50 {:.2} ms p99 {:.2} ms; CPU per event: process {cpu:.1} us, redis-server {redis:.1} us",
        pct(&mut resume, 0.5),
        pct(&mut resume, 0.99)
    );
    println!("{line}");
    a.close();
    if let Some(b) = b {
        b.close();
    }
}
