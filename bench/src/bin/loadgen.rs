//! `loadgen SCENARIO --addr HOST:PORT [options]`: single-threaded,
//! non-blocking WebSocket load generator (see bench/README.md).
//!
//! Every echoed byte and every relayed message is checked. The last line on
//! stdout is machine-readable: `RESULT key=value ...` on success, or
//! `RESULT error=...` (exit code 1) when the server misbehaved.

use std::cell::Cell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsportal_bench::deflate::compressed_frame;
use wsportal_bench::frame::{client_frame, close_frame, OP_BINARY, OP_CLOSE, OP_TEXT};
use wsportal_bench::net::{Ev, Net};
use wsportal_bench::{content, procfs, socketio};

const USAGE: &str = "usage: loadgen echo|connect|idle|broadcast --addr HOST:PORT [--pid PID]
  [--path /] [--raw] [--clients N] [--inflight N] [--size BYTES] [--binary]
  [--warmup SECS] [--duration SECS] [--hold SECS] [--rate MSG_PER_S]
  [--offered MSG_PER_S] [--stalled N] [--drain SECS] [--concurrency N]
  [--deflate] [--content json|log] [--variants N] [--socketio] [--aux-pid PID] [--tls-ca CERT.pem]
--deflate offers permessage-deflate (and fails if the server declines it),
sends compressed messages and inflates what comes back; --content picks
realistic bodies of --size bytes (--variants distinct ones, sent in turn)
instead of the default pattern (echo, idle; broadcast pads with it).
broadcast: --addr A,B,C spreads the members over several instances in turn
  (the publisher is the last); --pid P,Q,R sums their CPU time; --aux-pid
  reports another process's CPU while publishing (aux_cpu_pct); --socketio
  speaks Socket.IO (Engine.IO v4 over WebSocket; messages are \"chat\" events)
--tls-ca CERT.pem speaks TLS, trusting that certificate (server name localhost)
echo --offered N: an open loop at N messages/s in all (spread over the
  clients in turn, at most --inflight outstanding each; what that cap
  holds back is reported as not_sent), for CPU per message at a load
  neither side saturates";

/// Command-line options (one set for all scenarios).
struct Opts {
    scenario: String,
    addr: SocketAddr,
    /// Every `--addr` given (`addr` is the first).
    addrs: Vec<SocketAddr>,
    pid: Option<u32>,
    /// Every `--pid` given (`pid` is the first): server CPU is their sum.
    pids: Vec<u32>,
    /// Socket.IO instead of plain WebSocket messages (broadcast).
    socketio: bool,
    /// Another process whose CPU use while publishing is reported
    /// (`aux_cpu_pct`; the `redis` group's redis-server).
    aux_pid: Option<u32>,
    path: String,
    raw: bool,
    clients: usize,
    inflight: usize,
    size: usize,
    binary: bool,
    warmup: f64,
    duration: f64,
    hold: f64,
    rate: f64,
    /// echo: messages/s offered in all (open loop); 0 = closed loop.
    offered: f64,
    stalled: usize,
    drain: f64,
    concurrency: usize,
    deflate: bool,
    content: Option<String>,
    variants: usize,
    /// `--tls-ca`: speak TLS, trusting this certificate (server name
    /// `localhost`, the `ring` provider, no session resumption).
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// Key/value pairs printed on the `RESULT` line.
type Report = Vec<(&'static str, String)>;

fn main() {
    wsportal_bench::raise_nofile_limit();
    let opts = parse_opts().unwrap_or_else(|e| {
        eprintln!("{e}\n{USAGE}");
        std::process::exit(2)
    });
    let result = match opts.scenario.as_str() {
        "echo" => echo(&opts),
        "connect" => connect(&opts),
        "idle" => idle(&opts),
        "broadcast" => broadcast(&opts),
        other => Err(format!("unknown scenario {other:?}")),
    };
    match result {
        Ok(report) => {
            let fields: Vec<String> = report.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!("RESULT {}", fields.join(" "));
        }
        Err(e) => {
            // Keep the line parseable: the error text is the rest of the line.
            println!("RESULT error={}", e.replace('\n', " "));
            std::process::exit(1);
        }
    }
}

fn parse_opts() -> Result<Opts, String> {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().ok_or("missing SCENARIO")?;
    if scenario == "--help" || scenario == "-h" {
        println!("{USAGE}");
        std::process::exit(0);
    }
    let mut o = Opts {
        scenario,
        addr: "127.0.0.1:9001".parse().unwrap(),
        addrs: Vec::new(),
        pid: None,
        pids: Vec::new(),
        socketio: false,
        aux_pid: None,
        path: "/".into(),
        raw: false,
        clients: 100,
        inflight: 8,
        size: 64,
        binary: false,
        warmup: 1.0,
        duration: 5.0,
        hold: 10.0,
        rate: 50.0,
        offered: 0.0,
        stalled: 5,
        drain: 5.0,
        concurrency: 100,
        deflate: false,
        content: None,
        variants: 16,
        tls: None,
    };
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--raw" => o.raw = true,
            "--binary" => o.binary = true,
            "--deflate" => o.deflate = true,
            "--socketio" => o.socketio = true,
            _ => {
                let v = args.next().ok_or(format!("{flag} needs a value"))?;
                match flag.as_str() {
                    "--addr" => {
                        o.addrs = list(&flag, &v)?;
                        o.addr = o.addrs[0];
                    }
                    "--pid" => {
                        o.pids = list(&flag, &v)?;
                        o.pid = o.pids.first().copied();
                    }
                    "--aux-pid" => o.aux_pid = Some(num(&flag, &v)?),
                    "--path" => o.path = v.clone(),
                    "--clients" => o.clients = num(&flag, &v)?,
                    "--inflight" => o.inflight = num(&flag, &v)?,
                    "--size" => o.size = num(&flag, &v)?,
                    "--warmup" => o.warmup = num(&flag, &v)?,
                    "--duration" => o.duration = num(&flag, &v)?,
                    "--hold" => o.hold = num(&flag, &v)?,
                    "--rate" => o.rate = num(&flag, &v)?,
                    "--offered" => o.offered = num(&flag, &v)?,
                    "--stalled" => o.stalled = num(&flag, &v)?,
                    "--drain" => o.drain = num(&flag, &v)?,
                    "--concurrency" => o.concurrency = num(&flag, &v)?,
                    "--content" => {
                        content::make(&v, 200, 0).ok_or(format!("unknown --content {v:?}"))?;
                        o.content = Some(v.clone());
                    }
                    "--variants" => o.variants = num::<usize>(&flag, &v)?.max(1),
                    "--tls-ca" => o.tls = Some(tls_config(&v)?),
                    _ => return Err(format!("unknown option {flag}")),
                }
            }
        }
    }
    if o.raw && o.deflate {
        return Err("--raw and --deflate do not mix".into());
    }
    if o.deflate && o.socketio {
        return Err("--deflate and --socketio do not mix".into());
    }
    if o.addrs.is_empty() {
        o.addrs.push(o.addr);
    }
    if o.addrs.iter().any(|a| !a.ip().is_loopback()) {
        return Err("refusing a non-loopback --addr: this tool only loads local servers".into());
    }
    if o.raw && o.tls.is_some() {
        return Err("--raw and --tls-ca do not go together".into());
    }
    Ok(o)
}

/// The client's TLS configuration: trusts the certificate(s) in `ca` only,
/// offers ALPN `http/1.1`, and resumes no sessions (every connection makes
/// a full handshake, so `connect` measures the same work on every server).
fn tls_config(ca: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca)
        .map_err(|e| format!("--tls-ca {ca}: {e}"))?
    {
        roots
            .add(cert.map_err(|e| format!("--tls-ca {ca}: {e}"))?)
            .map_err(|e| format!("--tls-ca {ca}: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// Parses a numeric option value.
fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("bad value for {flag}: {v:?}"))
}

/// Parses a comma-separated option value (at least one item).
fn list<T: std::str::FromStr>(flag: &str, v: &str) -> Result<Vec<T>, String> {
    v.split(',').map(|x| num(flag, x)).collect()
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// Server CPU time so far, summed over every `--pid` (zero without one).
fn server_cpu(o: &Opts) -> Duration {
    o.pids.iter().filter_map(|&p| procfs::cpu_time(p)).sum()
}

/// This process's own CPU time so far.
fn own_cpu() -> Duration {
    procfs::cpu_time(std::process::id()).unwrap_or_default()
}

/// Server CPU use over a wall-clock span, in percent of one core.
fn cpu_pct(cpu: Duration, wall: Duration) -> String {
    format!(
        "{:.1}",
        cpu.as_secs_f64() * 100.0 / wall.as_secs_f64().max(1e-9)
    )
}

/// Server CPU time per item (message, connection, delivery) in µs: the
/// cost of one item to the server, whatever the load generator managed.
/// `/proc` counts CPU time in clock ticks (10 ms), so a window needs a few
/// hundred milliseconds of server CPU for this to be precise.
fn per_item_us(cpu: Duration, items: u64) -> String {
    if items == 0 {
        return "-".into();
    }
    format!("{:.2}", cpu.as_secs_f64() * 1e6 / items as f64)
}

/// Deterministic payload of `size` bytes: printable ASCII (valid UTF-8, so
/// usable as text), with a varying pattern so shifted or mixed data is caught.
fn payload(size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| b'!' + ((i * 7 + i / 95) % 94) as u8)
        .collect()
}

/// Message body number `variant`: `--content` of `--size` bytes, or the
/// default pattern (one variant only).
fn body(o: &Opts, variant: usize) -> Vec<u8> {
    match &o.content {
        Some(kind) => content::make(kind, o.size, variant as u64).unwrap_or_default(),
        None => payload(o.size),
    }
}

/// The distinct messages a run sends in turn: `--variants` of them with
/// `--content`, else one.
fn variant_count(o: &Opts) -> usize {
    if o.content.is_some() {
        o.variants
    } else {
        1
    }
}

/// With `--deflate`: the window loadgen may compress with, the smallest
/// any open connection agreed to; an error if one did not agree.
/// `Ok(None)` without `--deflate`.
fn client_bits<S>(net: &Net<S>, o: &Opts) -> Result<Option<u8>, String> {
    if !o.deflate {
        return Ok(None);
    }
    let mut bits = 15;
    for id in net.ids() {
        let a = net
            .agreement(id)
            .ok_or("the server did not agree to permessage-deflate")?;
        bits = bits.min(a.client_bits);
    }
    Ok(Some(bits))
}

/// A masked client frame of `data`: compressed with `bits` if given.
fn frame_of(op: u8, data: &[u8], bits: Option<u8>) -> Vec<u8> {
    match bits {
        Some(bits) => compressed_frame(op, data, bits, MASK),
        None => client_frame(op, data, MASK),
    }
}

/// With `--deflate`, RESULT fields on what the server sent: the share of
/// messages that came compressed, and inflated / compressed bytes.
fn deflate_report<S>(net: &Net<S>, o: &Opts, report: &mut Report) {
    if !o.deflate {
        return;
    }
    let (mut z, mut plain, mut wire, mut inflated) = (0u64, 0u64, 0u64, 0u64);
    for id in net.ids() {
        if let Some(s) = net.deflate_session(id) {
            (z, plain) = (z + s.compressed, plain + s.plain);
            (wire, inflated) = (wire + s.wire_bytes, inflated + s.inflated_bytes);
        }
    }
    let pct = if z + plain == 0 {
        "-".into()
    } else {
        format!("{:.0}", z as f64 * 100.0 / (z + plain) as f64)
    };
    report.push(("compressed_pct", pct));
    report.push((
        "ratio",
        if wire == 0 {
            "-".into()
        } else {
            format!("{:.2}", inflated as f64 / wire as f64)
        },
    ));
}

/// A client masking key; fixed per run, which servers cannot tell apart
/// from random keys.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Percentile (0..=100) of sorted samples.
fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p / 100.0).round() as usize;
    sorted[i]
}

/// Opens `n` connections, at most `o.concurrency` handshakes at a time;
/// fails if any is refused or closed, or if all are not open within
/// `timeout`. `make` builds each connection's state.
fn open_all<S>(
    net: &mut Net<S>,
    o: &Opts,
    n: usize,
    timeout: Duration,
    mut make: impl FnMut(usize) -> S,
) -> Result<Duration, String> {
    let start = Instant::now();
    let (mut started, mut opened) = (0, 0);
    while opened < n {
        if start.elapsed() > timeout {
            return Err(format!(
                "only {opened}/{n} connections opened in {timeout:?}"
            ));
        }
        while started < n && started - opened < o.concurrency.max(1) {
            net.connect(make(started))?;
            started += 1;
        }
        net.poll(
            Duration::from_millis(10),
            &mut |_, _: &mut S, out: &mut Vec<u8>, ev: Ev| match ev {
                Ev::Open if !o.socketio => {
                    opened += 1;
                    Ok(())
                }
                // Socket.IO: Engine.IO's open packet, then the namespace's.
                Ev::Open => Ok(()),
                Ev::Msg(OP_TEXT, m) if o.socketio && socketio::is_open(m) => {
                    out.extend_from_slice(&client_frame(OP_TEXT, socketio::CONNECT, MASK));
                    Ok(())
                }
                Ev::Msg(OP_TEXT, m) if o.socketio && socketio::is_connected(m) => {
                    opened += 1;
                    Ok(())
                }
                Ev::Msg(OP_TEXT, m) if pong(o, m, out) => Ok(()),
                Ev::Msg(op, _) => Err(format!(
                    "unexpected frame (opcode {op}) before any was sent"
                )),
                Ev::Closed(why) => Err(format!("connection closed while opening: {why}")),
            },
        )?;
    }
    Ok(start.elapsed())
}

/// Socket.IO: answers the server's ping; says whether `msg` was one.
fn pong(o: &Opts, msg: &[u8], out: &mut Vec<u8>) -> bool {
    let ping = o.socketio && msg == socketio::PING;
    if ping {
        out.extend_from_slice(&client_frame(OP_TEXT, socketio::PONG, MASK));
    }
    ping
}

/// `echo`: `clients` connections keep `inflight` messages of `size` bytes
/// in flight each; every echo is compared with what was sent. Counts
/// messages echoed within the measured window and their round-trip times.
/// With `--raw` the same frames go over plain TCP (for `raw-echo`).
fn echo(o: &Opts) -> Result<Report, String> {
    let op = if o.binary { OP_BINARY } else { OP_TEXT };
    let mut net: Net<VecDeque<(Instant, usize)>> =
        Net::new(o.addr, &o.path, o.raw, 2 * o.size + 4096)
            .map_err(|e| e.to_string())?
            .with_tls(o.tls.clone());
    if o.deflate {
        net.offer_deflate();
    }
    open_all(&mut net, o, o.clients, secs(30.0), |_| VecDeque::new())?;
    let bits = client_bits(&net, o)?;
    // Each variant's frame (compressed once, with --deflate), and what must
    // come back: the body, or in raw mode the masked body (the frame's
    // tail), since raw frames are compared without unmasking.
    let variants: Vec<(Vec<u8>, Vec<u8>)> = (0..variant_count(o))
        .map(|v| {
            let data = body(o, v);
            let frame = frame_of(op, &data, bits);
            let expect = if o.raw {
                frame[frame.len() - data.len()..].to_vec()
            } else {
                data
            };
            (frame, expect)
        })
        .collect();
    // Variants go out in turn, across all connections.
    let next = Cell::new(0usize);
    let pick = || {
        let v = next.get();
        next.set((v + 1) % variants.len());
        v
    };

    let start = Instant::now();
    let (w0, w1) = (start + secs(o.warmup), start + secs(o.warmup + o.duration));
    let give_up = w1 + secs(5.0);
    // Open loop (`--offered`): nothing is sent in answer to an echo.
    let paced = o.offered > 0.0;
    let outstanding = Cell::new(if paced { 0 } else { o.clients * o.inflight });
    let (mut count, mut rtts) = (0u64, Vec::<u64>::new());
    let (mut cpu0, mut cpu1) = (None, None);

    let mut on_event = |_: usize,
                        sent: &mut VecDeque<(Instant, usize)>,
                        out: &mut Vec<u8>,
                        ev: Ev| {
        let Ev::Msg(got_op, got) = ev else {
            return Err(match ev {
                Ev::Closed(why) => format!("connection closed mid-run: {why}"),
                _ => "unexpected event".into(),
            });
        };
        let (sent_at, v) = sent.pop_front().ok_or("more echoes than messages sent")?;
        let data = &variants[v].1;
        if got_op != op || got != &data[..] {
            return Err(format!(
                "echo mismatch: sent opcode {op} with {} bytes, got opcode {got_op} with {} bytes{}",
                data.len(),
                got.len(),
                if got.len() == data.len() { " (content differs)" } else { "" }
            ));
        }
        let now = Instant::now();
        if now >= w0 && now < w1 {
            count += 1;
            rtts.push((now - sent_at).as_nanos() as u64);
        }
        if paced {
            outstanding.set(outstanding.get() - 1);
        } else if now < w1 {
            let v = pick();
            out.extend_from_slice(&variants[v].0);
            sent.push_back((now, v));
        } else {
            outstanding.set(outstanding.get() - 1);
        }
        Ok(())
    };
    let mut not_sent = 0u64;
    let clients = net.ids();
    if !paced {
        // Closed loop: fill the pipelines; each echo sends the next.
        for &id in &clients {
            let mut burst = Vec::new();
            for _ in 0..o.inflight {
                let v = pick();
                burst.extend_from_slice(&variants[v].0);
                net.state(id).unwrap().push_back((Instant::now(), v));
            }
            net.send(id, &burst, &mut on_event)?;
        }
    }
    // Open loop (`--offered`): each message goes out when due, to the
    // clients in turn, each with at most `inflight` outstanding, whatever
    // comes back; one write per client per turn of the loop.
    let mut bursts: Vec<Vec<u8>> = vec![Vec::new(); clients.len()];
    let (mut due_total, mut turn) = (0u64, 0usize);
    // Run until the window is over and drained.
    loop {
        let now = Instant::now();
        if now >= w0 && cpu0.is_none() {
            cpu0 = Some((server_cpu(o), own_cpu()));
        }
        if now >= w1 && cpu1.is_none() {
            cpu1 = Some((server_cpu(o), own_cpu()));
        }
        if now >= w1 && outstanding.get() == 0 {
            break;
        }
        if now >= give_up {
            return Err(format!("{} echoes never came back", outstanding.get()));
        }
        if paced && now < w1 {
            let due = ((now - start).as_secs_f64() * o.offered) as u64;
            while due_total < due {
                due_total += 1;
                let mut placed = false;
                for _ in 0..clients.len() {
                    let i = turn;
                    turn = (turn + 1) % clients.len();
                    let queue = net.state(clients[i]).ok_or("a client is gone")?;
                    if queue.len() < o.inflight {
                        let v = pick();
                        bursts[i].extend_from_slice(&variants[v].0);
                        queue.push_back((now, v));
                        outstanding.set(outstanding.get() + 1);
                        placed = true;
                        break;
                    }
                }
                not_sent += u64::from(!placed && now >= w0);
            }
            for (i, burst) in bursts.iter_mut().enumerate() {
                if !burst.is_empty() {
                    net.send(clients[i], burst, &mut on_event)?;
                    burst.clear();
                }
            }
        }
        net.poll(
            Duration::from_millis(if paced { 1 } else { 5 }),
            &mut on_event,
        )?;
    }
    rtts.sort_unstable();
    let d = o.duration;
    let ((s0, l0), (s1, l1)) = (cpu0.unwrap_or_default(), cpu1.unwrap_or_default());
    let (cpu, own) = (s1.saturating_sub(s0), l1.saturating_sub(l0));
    let mut report = vec![
        ("msgs_per_s", format!("{:.0}", count as f64 / d)),
        (
            "mb_per_s",
            format!("{:.1}", (count * o.size as u64) as f64 / d / 1e6),
        ),
        ("p50_us", format!("{:.1}", pct(&rtts, 50.0) as f64 / 1e3)),
        ("p99_us", format!("{:.1}", pct(&rtts, 99.0) as f64 / 1e3)),
        ("server_cpu_pct", cpu_pct(cpu, secs(d))),
        ("cpu_us_per_msg", per_item_us(cpu, count)),
        ("loadgen_cpu_pct", cpu_pct(own, secs(d))),
        ("messages", count.to_string()),
    ];
    if paced {
        report.push(("offered", format!("{:.0}", o.offered)));
        report.push(("not_sent", not_sent.to_string()));
    }
    deflate_report(&net, o, &mut report);
    Ok(report)
}

/// Per-connection progress in the `connect` scenario.
#[derive(Default)]
struct Cycle {
    /// 0 opening, 1 echo sent, 2 close sent, 3 server close frame received.
    stage: u8,
    since: Option<Instant>,
}

/// `connect`: keeps `concurrency` connections cycling through connect,
/// upgrade, one echo, and a client-initiated close handshake (the server's
/// close frame, then its TCP close). Counts cycles completed in the window.
fn connect(o: &Opts) -> Result<Report, String> {
    let data = payload(o.size);
    let frame = client_frame(OP_TEXT, &data, MASK);
    let close = close_frame(MASK);
    let mut net: Net<Cycle> = Net::new(o.addr, &o.path, false, 4096)
        .map_err(|e| e.to_string())?
        .with_tls(o.tls.clone());
    let start = Instant::now();
    let (w0, w1) = (start + secs(o.warmup), start + secs(o.warmup + o.duration));
    let give_up = w1 + secs(5.0);
    let (mut active, mut count, mut no_tcp_close) = (0usize, 0u64, 0u64);
    let (mut cpu0, mut cpu1) = (None, None);
    loop {
        let now = Instant::now();
        if now >= w0 && cpu0.is_none() {
            cpu0 = Some((server_cpu(o), own_cpu()));
        }
        if now >= w1 && cpu1.is_none() {
            cpu1 = Some((server_cpu(o), own_cpu()));
        }
        if now >= w1 && active == 0 {
            break;
        }
        if now >= give_up {
            // Where they stand, to tell a stalled server from a slow one.
            let mut at = std::collections::BTreeMap::new();
            for id in net.ids() {
                let stage = net.state(id).map_or(0, |c| c.stage);
                *at.entry((net.phase(id), stage)).or_insert(0) += 1;
            }
            return Err(format!(
                "{active} connections did not finish their close handshake \
                 ((phase, stage): count: {at:?})"
            ));
        }
        while now < w1 && active < o.concurrency {
            net.connect(Cycle::default())?;
            active += 1;
        }
        // A server that sent its close frame but keeps the TCP connection
        // open for over a second: count it, and close from our side.
        for id in net.ids() {
            let c = net.state(id).unwrap();
            if c.stage == 3 && c.since.is_some_and(|t| t.elapsed() > secs(1.0)) {
                net.drop_conn(id);
                (active, no_tcp_close) = (active - 1, no_tcp_close + 1);
                if now >= w0 && now < w1 {
                    count += 1;
                }
            }
        }
        net.poll(
            Duration::from_millis(5),
            &mut |_, c: &mut Cycle, out: &mut Vec<u8>, ev: Ev| {
                match (c.stage, ev) {
                    (0, Ev::Open) => {
                        out.extend_from_slice(&frame);
                        c.stage = 1;
                    }
                    (1, Ev::Msg(op, got)) if op == OP_TEXT && got == &data[..] => {
                        out.extend_from_slice(&close);
                        c.stage = 2;
                    }
                    (2, Ev::Msg(OP_CLOSE, _)) => {
                        c.stage = 3;
                        c.since = Some(Instant::now());
                    }
                    (3, Ev::Closed(_)) => {
                        active -= 1;
                        let now = Instant::now();
                        if now >= w0 && now < w1 {
                            count += 1;
                        }
                    }
                    (stage, Ev::Msg(op, got)) => {
                        return Err(format!(
                            "unexpected frame at stage {stage}: opcode {op}, {} bytes",
                            got.len()
                        ))
                    }
                    (stage, Ev::Closed(why)) => {
                        return Err(format!("closed at stage {stage}: {why}"))
                    }
                    (stage, Ev::Open) => return Err(format!("unexpected open at stage {stage}")),
                }
                Ok(())
            },
        )?;
    }
    let ((s0, l0), (s1, l1)) = (cpu0.unwrap_or_default(), cpu1.unwrap_or_default());
    let (cpu, own) = (s1.saturating_sub(s0), l1.saturating_sub(l0));
    Ok(vec![
        ("conns_per_s", format!("{:.0}", count as f64 / o.duration)),
        ("server_cpu_pct", cpu_pct(cpu, secs(o.duration))),
        ("cpu_us_per_conn", per_item_us(cpu, count)),
        ("loadgen_cpu_pct", cpu_pct(own, secs(o.duration))),
        ("no_tcp_close", no_tcp_close.to_string()),
        ("cycles", count.to_string()),
    ])
}

/// `idle`: opens `clients` connections, holds them for `hold` seconds
/// measuring the server's RSS growth and CPU time, then checks that every
/// one still answers an echo.
fn idle(o: &Opts) -> Result<Report, String> {
    let pid = o.pid.ok_or("idle needs --pid")?;
    let rss = |field| procfs::status_kib(pid, field).ok_or("cannot read server /proc status");
    let data = body(o, 0);
    let mut net: Net<bool> = Net::new(o.addr, &o.path, false, 1024 + 2 * o.size)
        .map_err(|e| e.to_string())?
        .with_tls(o.tls.clone());
    if o.deflate {
        net.offer_deflate();
    }
    let rss0 = rss("VmRSS")?;
    let open_time = open_all(&mut net, o, o.clients, secs(60.0), |_| false)?;
    let frame = frame_of(OP_TEXT, &data, client_bits(&net, o)?);

    // Hold: nothing but (possibly) server pings, answered by `Net`.
    let cpu0 = server_cpu(o);
    let held = Instant::now();
    while held.elapsed() < secs(o.hold) {
        net.poll(
            Duration::from_millis(100),
            &mut |_, _: &mut bool, _: &mut Vec<u8>, ev: Ev| match ev {
                Ev::Closed(why) => Err(format!("idle connection closed by server: {why}")),
                Ev::Msg(op, got) => Err(format!(
                    "unexpected frame on an idle connection: opcode {op}, {} bytes",
                    got.len()
                )),
                Ev::Open => Ok(()),
            },
        )?;
    }
    let hold_cpu = server_cpu(o).saturating_sub(cpu0);
    let rss1 = rss("VmRSS")?;
    let threads = procfs::threads(pid).unwrap_or(0);

    // Every connection must still work: one echo each.
    let answered = Cell::new(0usize);
    let mut on_event = |_: usize, done: &mut bool, _: &mut Vec<u8>, ev: Ev| match ev {
        Ev::Msg(OP_TEXT, got) if got == &data[..] && !*done => {
            *done = true;
            answered.set(answered.get() + 1);
            Ok(())
        }
        Ev::Closed(why) => Err(format!("connection closed during the final echo: {why}")),
        Ev::Msg(op, got) => Err(format!(
            "bad or duplicate echo after the idle hold: opcode {op}, {} bytes: {:?}",
            got.len(),
            String::from_utf8_lossy(&got[..got.len().min(80)])
        )),
        Ev::Open => Ok(()),
    };
    for id in net.ids() {
        net.send(id, &frame, &mut on_event)?;
    }
    let deadline = Instant::now() + secs(60.0);
    while answered.get() < o.clients && Instant::now() < deadline {
        net.poll(Duration::from_millis(10), &mut on_event)?;
    }
    if answered.get() < o.clients {
        return Err(format!(
            "only {}/{} idle connections answered the echo",
            answered.get(),
            o.clients
        ));
    }
    // Every connection has now sent and received one message (with
    // --deflate, both compressed: the server's zlib state is allocated).
    let rss2 = rss("VmRSS")?;
    let per_conn = |rss: u64| format!("{:.1}", (rss as f64 - rss0 as f64) / o.clients as f64);
    let mut report = vec![
        ("kib_per_conn", per_conn(rss1)),
        ("kib_per_conn_after_echo", per_conn(rss2)),
        (
            "hold_cpu_ms",
            format!("{:.0}", hold_cpu.as_secs_f64() * 1e3),
        ),
        ("open_s", format!("{:.2}", open_time.as_secs_f64())),
        ("rss_before_kib", rss0.to_string()),
        ("rss_after_kib", rss1.to_string()),
        ("server_threads", threads.to_string()),
        ("echo_ok", answered.get().to_string()),
    ];
    deflate_report(&net, o, &mut report);
    Ok(report)
}

/// Per-connection state in the `broadcast` scenario.
#[derive(Default)]
struct Member {
    /// Never reads (until the final drain).
    stalled: bool,
    /// Next expected sequence number (one past the last one received).
    next: u64,
    /// Seen closed (a close frame or the end of the connection).
    closed: bool,
    /// Stalled member saw a gap in the sequence (messages dropped for it).
    gap: bool,
}

/// Builds the broadcast text `"<seq> <nanos> "` followed by the rest of
/// `filler` (`size` bytes: `x`, or `--content`), so `size` bytes in all
/// (more if the header alone is longer).
fn chat_payload(seq: u64, nanos: u64, filler: &[u8]) -> Vec<u8> {
    let mut p = format!("{seq} {nanos} ").into_bytes();
    if p.len() < filler.len() {
        p.extend_from_slice(&filler[p.len()..]);
    }
    p
}

/// Checks one relayed message and returns `(seq, send_nanos)`.
fn parse_chat(got: &[u8], filler: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(got).ok()?;
    let mut parts = text.splitn(3, ' ');
    let seq = parts.next()?.parse().ok()?;
    let nanos = parts.next()?.parse().ok()?;
    let ok = chat_payload(seq, nanos, filler) == got;
    ok.then_some((seq, nanos))
}

/// `broadcast`: `clients` members join the room (`stalled` of them never
/// read: they complete the upgrade, then leave every byte unread) plus one
/// publisher. After `hold` idle seconds (server CPU measured) the publisher
/// sends `rate` messages/s for `duration` seconds; every reading member,
/// publisher included, must get every message, in order and intact.
///
/// A message that never reaches a reading member (a gap in its sequence, or
/// the member closed by the server, or still missing 10 s after the last
/// was sent) is counted in `lost` rather than ending the run, so that a
/// lossy server still gets a row; corrupt or reordered data is an error.
/// The stalled members stay open until publishing is over; then loadgen
/// reads them (up to `drain` seconds) to find out which ones the server had
/// closed. Reports delivery latency, losses, server CPU per delivery and
/// how many stalled members the server closed.
fn broadcast(o: &Opts) -> Result<Report, String> {
    let epoch = Instant::now();
    let mut net: Net<Member> = Net::new(o.addr, &o.path, false, 2 * o.size + 4096)
        .map_err(|e| e.to_string())?
        .with_tls(o.tls.clone());
    if o.deflate {
        net.offer_deflate();
    }
    net.spread_over(&o.addrs);
    let filler = match o.content {
        Some(_) => body(o, 0),
        None => vec![b'x'; o.size],
    };
    let n = o.clients;
    let stalled_from = n.saturating_sub(o.stalled);
    // Members 0..n (the last `stalled` never read), then the publisher.
    let open_time = open_all(&mut net, o, n + 1, secs(30.0), |i| Member {
        stalled: i >= stalled_from && i < n,
        ..Member::default()
    })?;
    let ids = net.ids();
    let publisher = ids[n];
    let bits = client_bits(&net, o)?;
    let mut noop = |_: usize, _: &mut Member, _: &mut Vec<u8>, _: Ev| Ok(());
    for &id in &ids[stalled_from..n] {
        net.set_reading(id, false, &mut noop)?;
    }

    // Idle phase: everyone joined, nothing sent.
    let cpu0 = server_cpu(o);
    let t = Instant::now();
    while t.elapsed() < secs(o.hold) {
        net.poll(
            Duration::from_millis(100),
            &mut |_, _: &mut Member, out: &mut Vec<u8>, ev: Ev| match ev {
                Ev::Closed(why) => Err(format!("member closed while idle: {why}")),
                Ev::Msg(OP_TEXT, m) if pong(o, m, out) => Ok(()),
                _ => Err("unexpected message while idle".into()),
            },
        )?;
    }
    let idle_cpu = server_cpu(o).saturating_sub(cpu0);
    let idle_wall = t.elapsed();

    // Publishing phase.
    let total = (o.rate * o.duration).round() as u64;
    let readers = stalled_from + 1;
    let mut lat = Vec::<u64>::with_capacity(total as usize * readers);
    // Reading members done: got the last message, or closed.
    let finished = Cell::new(0usize);
    // Stalled members done: closed, or (while draining) got the last message.
    let settled = Cell::new(0usize);
    let (readers_closed, stalled_closed) = (Cell::new(0usize), Cell::new(0usize));
    let mut on_event = |id: usize, m: &mut Member, out: &mut Vec<u8>, ev: Ev| {
        let got = match ev {
            Ev::Msg(OP_TEXT, got) if pong(o, got, out) => return Ok(()),
            Ev::Msg(OP_TEXT, got) if o.socketio => socketio::event_data("chat", got)
                .ok_or_else(|| format!("member {id}: not a chat event ({} bytes)", got.len()))?,
            Ev::Msg(OP_TEXT, got) => got,
            Ev::Msg(OP_CLOSE, _) | Ev::Closed(_) => {
                if !m.closed {
                    m.closed = true;
                    if m.stalled {
                        stalled_closed.set(stalled_closed.get() + 1);
                        if m.next < total {
                            settled.set(settled.get() + 1);
                        }
                    } else {
                        readers_closed.set(readers_closed.get() + 1);
                        if m.next < total {
                            finished.set(finished.get() + 1);
                        }
                    }
                }
                return Ok(());
            }
            Ev::Msg(op, _) => return Err(format!("member {id}: unexpected opcode {op}")),
            Ev::Open => return Ok(()),
        };
        let (seq, nanos) = parse_chat(got, &filler)
            .ok_or_else(|| format!("member {id}: corrupt message ({} bytes)", got.len()))?;
        if seq < m.next || seq >= total {
            return Err(format!(
                "member {id}: got message {seq} after {} (duplicate, reordered or never sent)",
                m.next
            ));
        }
        // A gap: the messages in between are lost for this member.
        m.gap |= seq != m.next;
        m.next = seq + 1;
        if m.stalled {
            settled.set(settled.get() + usize::from(m.next == total));
            return Ok(());
        }
        if m.next == total {
            finished.set(finished.get() + 1);
        }
        lat.push((epoch.elapsed().as_nanos() as u64).saturating_sub(nanos));
        Ok(())
    };
    let (cpu1, own1) = (server_cpu(o), own_cpu());
    let aux_cpu = || o.aux_pid.and_then(procfs::cpu_time).unwrap_or_default();
    let aux1 = aux_cpu();
    let t0 = Instant::now();
    let mut sent = 0u64;
    // Whatever has not arrived 10 s after the last message was due is lost.
    let give_up = t0 + secs(o.duration + 10.0);
    while finished.get() < readers && Instant::now() < give_up {
        let now = Instant::now();
        // Send every message that is due (50/s -> one per 20 ms).
        while sent < total && now >= t0 + secs(sent as f64 / o.rate) {
            let mut p = chat_payload(sent, epoch.elapsed().as_nanos() as u64, &filler);
            if o.socketio {
                p = socketio::event("chat", &p);
            }
            net.send(publisher, &frame_of(OP_TEXT, &p, bits), &mut on_event)?;
            sent += 1;
        }
        net.poll(Duration::from_millis(1), &mut on_event)?;
    }
    let pub_wall = t0.elapsed();
    let pub_cpu = server_cpu(o).saturating_sub(cpu1);
    let own_pub_cpu = own_cpu().saturating_sub(own1);
    let aux_pub_cpu = aux_cpu().saturating_sub(aux1);

    // Stalled members: read what is there now, until each one has turned
    // out closed or has caught up (at most `drain` seconds).
    for &id in &ids[stalled_from..n] {
        net.set_reading(id, true, &mut on_event)?;
    }
    let t = Instant::now();
    while settled.get() < n - stalled_from && t.elapsed() < secs(o.drain) {
        net.poll(Duration::from_millis(20), &mut on_event)?;
    }
    // (Draining reads stalled members only: `lat` is final.)
    let deliveries = lat.len() as u64;
    let lost = total * readers as u64 - deliveries;
    let (mut gaps, mut min_got) = (0, u64::MAX);
    for &id in &ids[stalled_from..n] {
        // Members whose connection ended were removed from `net`; they were
        // counted as closed through `on_event`.
        if let Some(m) = net.state(id) {
            gaps += usize::from(m.gap);
            min_got = min_got.min(m.next);
        }
    }
    lat.sort_unstable();
    let mut report = vec![
        ("p50_us", format!("{:.0}", pct(&lat, 50.0) as f64 / 1e3)),
        ("p99_us", format!("{:.0}", pct(&lat, 99.0) as f64 / 1e3)),
        (
            "max_us",
            format!("{:.0}", lat.last().copied().unwrap_or(0) as f64 / 1e3),
        ),
        ("lost", lost.to_string()),
        ("readers_closed", readers_closed.get().to_string()),
        (
            "stalled_closed",
            format!("{}/{}", stalled_closed.get(), n - stalled_from),
        ),
        (
            "stalled_unsettled",
            (n - stalled_from - settled.get()).to_string(),
        ),
        ("idle_cpu_pct", cpu_pct(idle_cpu, idle_wall)),
        ("pub_cpu_pct", cpu_pct(pub_cpu, pub_wall)),
        ("cpu_us_per_delivery", per_item_us(pub_cpu, deliveries)),
        ("loadgen_cpu_pct", cpu_pct(own_pub_cpu, pub_wall)),
        ("aux_cpu_pct", cpu_pct(aux_pub_cpu, pub_wall)),
        ("readers", readers.to_string()),
        ("deliveries", deliveries.to_string()),
        ("messages", total.to_string()),
        ("stalled_gaps", gaps.to_string()),
        (
            "stalled_min_got",
            if min_got == u64::MAX {
                "-".into()
            } else {
                min_got.to_string()
            },
        ),
        ("open_s", format!("{:.2}", open_time.as_secs_f64())),
    ];
    deflate_report(&net, o, &mut report);
    Ok(report)
}
