//! `bench-runner`: runs every scenario against every server and prints
//! markdown tables. Normally started by `scripts/bench.sh`, which builds
//! everything first. Run from the repository root.
//!
//! Each (scenario, server) pair gets a fresh server process pinned with
//! `taskset` (server on `SERVER_CPU`, loadgen on `LOADGEN_CPU`; pingpong puts
//! both on `SERVER_CPU`). The server's total CPU time (utime+stime) and peak
//! RSS (VmHWM) are read from /proc before it is stopped. Settings come from
//! environment variables, listed in bench/README.md.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wsportal_bench::procfs;

// The deflate group lives beside this file (a directory, so cargo does not
// take it for a binary of its own).
/// The `redis` group: a room over several instances sharing one Redis.
#[path = "bench-runner/cluster.rs"]
mod cluster;
#[path = "bench-runner/deflate.rs"]
mod deflate;
#[path = "../runner/tls.rs"]
mod tls;

/// One server implementation; `None` commands mean "not available".
#[derive(Clone)]
struct Server {
    name: String,
    /// Command for echo-type scenarios (the address is appended).
    echo: Option<Vec<String>>,
    /// Command for the broadcast scenarios.
    chat: Option<Vec<String>>,
    /// Plain TCP echo: loadgen runs with `--raw`, echo scenarios only.
    raw: bool,
    /// Counted when picking the best peer for the ratio column.
    peer: bool,
    /// Built by this harness: takes `--nodelay`, and has a second row
    /// without it in the scenarios where Nagle's algorithm matters.
    ours: bool,
    /// This row is the harness-built server run without `--nodelay`.
    nagle: bool,
    /// Why the row is skipped, if it is.
    skip: Option<String>,
}

impl Server {
    /// The row's name in tables and log file names.
    fn label(&self) -> String {
        if self.nagle {
            format!("{} (no NODELAY)", self.name)
        } else {
            self.name.clone()
        }
    }
}

/// One scenario: loadgen arguments and how to present the result.
struct Scenario {
    name: String,
    /// Also selected by this name in `SCENARIOS` (e.g. `stalled`).
    group: &'static str,
    what: String,
    args: Vec<String>,
    /// Key of the headline figure, its label, and whether higher is better.
    metric: (&'static str, &'static str, bool),
    /// Further RESULT keys shown, with labels.
    extra: Vec<(&'static str, &'static str)>,
    /// Uses the chat command and the room path.
    chat: bool,
    /// Runs against the raw TCP echo too.
    raw_ok: bool,
    /// Loadgen and server share one core (latency scenario).
    same_core: bool,
    /// Loadgen is killed if it runs longer than this.
    timeout: Duration,
    /// Rounds, interleaved across servers; the median counts.
    rounds: usize,
    /// Adds the harness-built peers' rows without TCP_NODELAY.
    nagle_rows: bool,
    /// Servers run when `SERVERS` is not set (`None`: all).
    servers: Option<&'static [&'static str]>,
    /// Only run when named (or its group named) in `SCENARIOS`, or with
    /// `SCENARIOS=all`.
    opt_in: bool,
    /// Compression on: servers run as `deflate::command` says.
    deflate: bool,
    /// Over TLS: runs the servers of [`tls::servers`], with their flags.
    tls: bool,
}

impl Scenario {
    /// An idle scenario: loadgen's `head` arguments, then `conns`
    /// connections held for `hold` seconds; time enough to open them.
    fn idle(name: &str, what: &str, head: &[&str], (conns, hold): (f64, f64)) -> Scenario {
        let held = strings(&["--clients", &conns.to_string(), "--hold", &hold.to_string()]);
        let args = [strings(head), held].concat();
        Scenario::new(name, what, args, Duration::from_secs_f64(hold + 300.0))
    }

    /// A scenario with the defaults of most: one round, all servers, no
    /// raw TCP row, no Nagle rows, loadgen on its own core.
    fn new(name: &str, what: &str, args: Vec<String>, timeout: Duration) -> Scenario {
        Scenario {
            name: name.to_string(),
            group: "",
            what: what.to_string(),
            args,
            metric: ("", "", true),
            extra: Vec::new(),
            chat: false,
            raw_ok: false,
            same_core: false,
            timeout,
            rounds: 1,
            nagle_rows: false,
            servers: None,
            opt_in: false,
            deflate: false,
            tls: false,
        }
    }
}

/// Outcome of one run: RESULT fields or an error, plus server figures.
struct Run {
    fields: BTreeMap<String, String>,
    error: Option<String>,
    cpu_s: Option<f64>,
    hwm_mib: Option<f64>,
    /// CPU used by other processes during the loadgen run, % of one core.
    others_pct: Option<f64>,
    /// The headline figure of every round (shown when there are several).
    rounds: Vec<String>,
}

/// loadgen's arguments for `echo64` (and, paced, `echo64-paced`).
const ECHO64: &[&str] = &[
    "echo",
    "--size",
    "64",
    "--clients",
    "100",
    "--inflight",
    "8",
];

fn env_f(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_s(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn main() {
    wsportal_bench::raise_nofile_limit();
    let quick = env_s("QUICK", "0") == "1";
    let q = |quick_value: f64, full: f64| if quick { quick_value } else { full };
    let warmup = env_f("WARMUP", q(0.3, 0.5));
    let duration = env_f("DURATION", q(1.0, 2.0));
    // Several short rounds, interleaved: this VM's speed drifts (by up to
    // 2x for a few seconds), which one long run per server would take as
    // a difference between servers.
    let rounds = env_f("ROUNDS", q(1.0, 3.0)).max(1.0) as usize;
    let idle_conns = env_f("IDLE_CONNS", q(1000.0, 10000.0));
    let idle_hold = env_f("IDLE_HOLD", q(1.0, 10.0));
    let bc_clients = env_f("BCAST_CLIENTS", q(200.0, 1000.0));
    let bc_secs = env_f("BCAST_SECS", q(1.5, 10.0));
    let bc_idle = env_f("BCAST_IDLE", q(0.5, 3.0));
    let bc_rate = env_f("BCAST_RATE", 50.0);
    let chat_path = env_s("CHAT_PATH", "/chat");
    // `echo64-paced`'s offered rate (messages/s in all).
    let paced = env_f("PACED_RATE", 300_000.0);

    let timed = [
        "--warmup".to_string(),
        warmup.to_string(),
        "--duration".into(),
        duration.to_string(),
    ];
    let echo_timeout = Duration::from_secs_f64(warmup + duration + 60.0);
    let with = |base: &[&str], more: &[String]| [strings(base), more.to_vec()].concat();
    // Broadcast: `members` join the room, `stalled` of them never read.
    let broadcast = |size: usize, members: f64, stalled: usize, secs: f64, idle: f64| {
        strings(&[
            "broadcast",
            "--size",
            &size.to_string(),
            "--clients",
            &(members as usize + stalled).to_string(),
            "--stalled",
            &stalled.to_string(),
            "--hold",
            &idle.to_string(),
            "--duration",
            &secs.to_string(),
            "--rate",
            &bc_rate.to_string(),
            "--path",
            &chat_path,
        ])
    };
    let bc_extra = vec![
        ("p50_us", "p50 µs"),
        ("max_us", "max µs"),
        ("lost", "lost"),
        ("readers_closed", "readers closed"),
        ("stalled_closed", "stalled closed"),
        ("cpu_us_per_delivery", "CPU µs/delivery"),
        ("idle_cpu_pct", "idle CPU %"),
        ("pub_cpu_pct", "CPU % publishing"),
        ("loadgen_cpu_pct", "loadgen CPU %"),
    ];
    let bc_timeout = |secs: f64| Duration::from_secs_f64(bc_idle + secs + 200.0);
    let echo = |name: &str, what: &str, args: Vec<String>, extra| Scenario {
        metric: ("msgs_per_s", "msg/s", true),
        extra,
        raw_ok: true,
        rounds,
        nagle_rows: true,
        ..Scenario::new(name, what, args, echo_timeout)
    };
    // Binary echo of `size` bytes, 10 clients x 4 in flight.
    let ten_by_four = |size: usize| {
        with(
            &[
                "echo",
                "--size",
                &size.to_string(),
                "--binary",
                "--clients",
                "10",
                "--inflight",
                "4",
            ],
            &timed,
        )
    };
    // An echo row's columns besides messages/s.
    let echo_columns = || {
        vec![
            ("cpu_us_per_msg", "CPU µs/msg"),
            ("p50_us", "p50 µs"),
            ("p99_us", "p99 µs"),
            ("server_cpu_pct", "CPU %"),
            ("loadgen_cpu_pct", "loadgen CPU %"),
        ]
    };
    // The 64 KiB row's shape at other sizes (opt-in:
    // SCENARIOS=echo1k,echo4k,echo16k).
    let mid_echo = |size: usize, name: &str, what: &str| Scenario {
        opt_in: true,
        ..echo(
            name,
            &format!("{what} binary echo, 10 clients x 4 in flight"),
            ten_by_four(size),
            echo_columns(),
        )
    };
    let mut all_scenarios = vec![
        echo(
            "echo64",
            "64 B text echo, 100 clients x 8 in flight",
            with(ECHO64, &timed),
            echo_columns(),
        ),
        echo(
            "echo64k",
            "64 KiB binary echo, 10 clients x 4 in flight",
            ten_by_four(65536),
            vec![
                ("cpu_us_per_msg", "CPU µs/msg"),
                ("mb_per_s", "MB/s"),
                ("p50_us", "p50 µs"),
                ("p99_us", "p99 µs"),
                ("server_cpu_pct", "CPU %"),
                ("loadgen_cpu_pct", "loadgen CPU %"),
            ],
        ),
        // Medium messages, where a reply per read made one write per
        // message (wsportal before replies waited for waiting input).
        mid_echo(1024, "echo1k", "1 KiB"),
        mid_echo(4096, "echo4k", "4 KiB"),
        mid_echo(16384, "echo16k", "16 KiB"),
        // Issue 29: CPU per message at a load neither side saturates (at
        // saturation every server shows the load generator's rate).
        Scenario {
            metric: ("cpu_us_per_msg", "CPU µs/msg", false),
            extra: vec![
                ("msgs_per_s", "msg/s"),
                ("not_sent", "not sent"),
                ("p50_us", "p50 µs"),
                ("p99_us", "p99 µs"),
                ("server_cpu_pct", "CPU %"),
                ("loadgen_cpu_pct", "loadgen CPU %"),
            ],
            opt_in: true,
            ..echo(
                "echo64-paced",
                &format!("64 B text echo, 100 clients, {paced} msg/s offered (open loop, at most 8 in flight each)"),
                with(ECHO64, &[&timed[..], &["--offered".into(), paced.to_string()]].concat()),
                vec![],
            )
        },
        Scenario {
            metric: ("conns_per_s", "conn/s", true),
            extra: vec![
                ("cpu_us_per_conn", "CPU µs/conn"),
                ("server_cpu_pct", "CPU %"),
                ("loadgen_cpu_pct", "loadgen CPU %"),
                ("no_tcp_close", "no TCP close"),
            ],
            raw_ok: false,
            ..echo(
                "connect",
                "connect + upgrade + one 64 B echo + close handshake, 20 at a time",
                with(&["connect", "--size", "64", "--concurrency", "20"], &timed),
                vec![],
            )
        },
        Scenario {
            metric: ("p50_us", "p50 µs", false),
            extra: vec![
                ("p99_us", "p99 µs"),
                ("msgs_per_s", "msg/s"),
                ("cpu_us_per_msg", "CPU µs/msg"),
            ],
            same_core: true,
            ..echo(
                "pingpong",
                "one client, one 64 B message in flight, client and server on one core",
                with(
                    &["echo", "--size", "64", "--clients", "1", "--inflight", "1"],
                    &timed,
                ),
                vec![],
            )
        },
        Scenario {
            metric: ("kib_per_conn", "KiB/conn", false),
            extra: vec![
                ("hold_cpu_ms", "CPU ms in hold"),
                ("open_s", "open s"),
                ("server_threads", "threads"),
                ("echo_ok", "echo ok"),
            ],
            ..Scenario::idle(
                "idle",
                "idle connections held, then one echo each; RSS growth per connection",
                &["idle", "--size", "64", "--concurrency", "100"],
                (idle_conns, idle_hold),
            )
        },
    ];
    for (size, label) in [(64, "64 B"), (16384, "16 KiB")] {
        all_scenarios.push(Scenario {
            metric: ("p99_us", "p99 µs", false),
            extra: bc_extra.clone(),
            chat: true,
            ..Scenario::new(
                &format!("broadcast{}", if size == 64 { "64" } else { "16k" }),
                &format!("room relay of {label} text, 1 publisher, 5 stalled members"),
                broadcast(size, bc_clients - 5.0, 5, bc_secs, bc_idle),
                bc_timeout(bc_secs),
            )
        });
    }
    // Issue 29: fan-out curves. A room of N members (none stalled), one
    // publisher, `FANOUT_RATE` messages/s of `FANOUT_SIZE` bytes, for each N
    // of `FANOUT_MEMBERS`; `FANOUT_ROUNDS` interleaved rounds (single rounds
    // swing 2x on this VM). `scripts/fanout.sh` runs it and draws the PNG.
    let fo_size = env_f("FANOUT_SIZE", 1024.0) as usize;
    let fo_rate = env_f("FANOUT_RATE", 10.0);
    let fo_secs = env_f("FANOUT_SECS", q(2.0, 5.0));
    let fo_rounds = env_f("FANOUT_ROUNDS", q(1.0, 3.0)).max(1.0) as usize;
    let fo_members: Vec<usize> = env_s("FANOUT_MEMBERS", "1000,2000,5000,9000")
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    for &n in &fo_members {
        let mut args = broadcast(fo_size, n as f64, 0, fo_secs, bc_idle);
        // This group's own rate (the room scenarios' `--rate` is BCAST_RATE).
        if let Some(i) = args.iter().position(|a| a == "--rate") {
            args[i + 1] = fo_rate.to_string();
        }
        all_scenarios.push(Scenario {
            group: "fanout",
            metric: ("p99_us", "p99 µs", false),
            extra: bc_extra.clone(),
            chat: true,
            rounds: fo_rounds,
            servers: Some(&["node-ws", "tokio-tungstenite", "wsportal", "wsportal-baseline"]),
            opt_in: true,
            ..Scenario::new(
                &format!("fanout{n}"),
                &format!("room of {n} members, 1 publisher, {fo_rate} msg/s of {fo_size} B for {fo_secs} s"),
                args,
                bc_timeout(fo_secs + n as f64 / 200.0),
            )
        });
    }
    // Issue 11: a room of reading members plus N members that never read.
    let st_readers = env_f("STALLED_READERS", q(200.0, 1000.0));
    let st_secs = env_f("STALLED_SECS", q(2.0, 10.0));
    let st_size = env_f("STALLED_SIZE", 16384.0) as usize;
    let st_rounds = env_f("STALLED_ROUNDS", q(1.0, 2.0)).max(1.0) as usize;
    let st_idle = env_f("STALLED_IDLE", q(0.5, 1.0));
    let st_counts: Vec<usize> = env_s("STALLED_COUNTS", "0,40,200")
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    for &n in &st_counts {
        all_scenarios.push(Scenario {
            group: "stalled",
            metric: ("p99_us", "p99 µs", false),
            extra: bc_extra.clone(),
            chat: true,
            rounds: st_rounds,
            servers: Some(&[
                "node-ws",
                "tokio-tungstenite",
                "tokio-tungstenite-broadcast",
                "wsportal",
                "wsportal-baseline",
            ]),
            opt_in: true,
            ..Scenario::new(
                &format!("stalled{n}"),
                &format!(
                    "room of {st_readers} reading members + {n} that never read, 1 publisher, \
                     {bc_rate} msg/s of {st_size} B text for {st_secs} s"
                ),
                broadcast(st_size, st_readers, n, st_secs, st_idle),
                bc_timeout(st_secs),
            )
        });
    }
    all_scenarios.extend(deflate::scenarios(
        &timed,
        echo_timeout,
        rounds,
        [64, 16384].map(|size| broadcast(size, bc_clients - 5.0, 5, bc_secs, bc_idle)),
        &bc_extra,
        bc_timeout(bc_secs),
        (idle_conns, idle_hold),
    ));

    let wss = tls::scenarios(&all_scenarios);
    all_scenarios.extend(wss);

    let only_scen = env_s("SCENARIOS", "");
    let scenarios: Vec<Scenario> = all_scenarios
        .into_iter()
        .filter(|s| match only_scen.as_str() {
            "" => !s.opt_in,
            "all" => true,
            only => only
                .split(',')
                .any(|n| !n.is_empty() && (n == s.name || n == s.group)),
        })
        .collect();
    let servers_named = !env_s("SERVERS", "").is_empty();
    let servers = servers();
    let tls_servers = tls::servers();
    let any_tls = scenarios.iter().any(|s| s.tls);
    let server_cpu = env_s("SERVER_CPU", "0");
    let loadgen_cpu = env_s("LOADGEN_CPU", "1");
    let out_dir = Path::new("target/bench");
    fs::create_dir_all(out_dir.join("logs")).expect("create target/bench/logs");

    // Other programs' CPU use spoils figures: before each run, wait (within
    // a total budget) until the machine is quiet.
    let mut quiet_budget = Duration::from_secs_f64(env_f("QUIET_WAIT", q(15.0, 120.0)));
    let started = Instant::now();
    let mut port = env_f("BASE_PORT", 19200.0) as u16;
    let mut report = String::new();
    report += &format!(
        "# wsportal benchmark ({})\n\nserver on CPU {server_cpu}, loadgen on CPU {loadgen_cpu} \
         (pingpong: both on CPU {server_cpu}); warmup {warmup} s, measure {duration} s; \
         idle: {idle_conns} conns held {idle_hold} s; broadcast: {bc_clients} members + 1 \
         publisher, {bc_rate} msg/s for {bc_secs} s; echo, connect and pingpong: median of \
         {rounds} interleaved rounds.\n",
        if quick { "QUICK" } else { "full" }
    );
    if scenarios.iter().any(|s| s.group == "stalled") {
        report += &format!(
            "stalled: {st_readers} reading members + N never reading (N = {}) + 1 publisher, \
             {bc_rate} msg/s of {st_size} B for {st_secs} s; median of {st_rounds} interleaved \
             rounds.\n",
            st_counts
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if scenarios.iter().any(|s| s.deflate) {
        report += &deflate::header();
    }
    if any_tls {
        report += &tls::note();
    }
    for s in servers.iter().chain(tls_servers.iter().filter(|_| any_tls)) {
        if let Some(why) = &s.skip {
            eprintln!("skipping {}: {why}", s.name);
            report += &format!("\nSkipped {}: {why}\n", s.name);
        }
    }
    println!("{report}");
    // The stalled scenarios' medians, for the summary table at the end.
    let mut stalled: Vec<(&Scenario, Vec<(String, Run)>)> = Vec::new();
    for sc in &scenarios {
        let pool = if sc.tls { &tls_servers } else { &servers };
        let active: Vec<&Server> = pool
            .iter()
            .filter(|s| s.skip.is_none() && (sc.raw_ok || !s.raw) && (sc.nagle_rows || !s.nagle))
            // A harness-built server without a program for this scenario has
            // no row (wsportal's missing example gets a "skipped" row).
            .filter(|s| {
                !s.ours
                    || if sc.chat {
                        s.chat.is_some()
                    } else {
                        s.echo.is_some()
                    }
            })
            .filter(|s| servers_named || sc.servers.is_none_or(|only| only.contains(&&*s.name)))
            .filter(|s| !sc.deflate || deflate::serves(s))
            .collect();
        let rounds = sc.rounds;
        let mut all: Vec<Vec<Run>> = active.iter().map(|_| Vec::new()).collect();
        for round in 1..=rounds {
            for (server, runs) in active.iter().zip(&mut all) {
                let deflate_cmd = sc.deflate.then(|| deflate::command(server, sc.chat));
                let cmd = match &deflate_cmd {
                    Some(cmd) => cmd,
                    None if sc.chat => &server.chat,
                    None => &server.echo,
                };
                let Some(cmd) = cmd else {
                    // Shown as a "skipped" row (wsportal's chat example missing).
                    let mut run = Run::new();
                    run.error = Some("skipped: no server program for this scenario".to_string());
                    runs.push(run);
                    continue;
                };
                port = free_port(port + 1);
                quiet_budget = quiet_budget.saturating_sub(wait_for_quiet(quiet_budget));
                eprintln!(
                    "[{:>4.0}s] {} / {} (round {round}/{rounds}) ...",
                    started.elapsed().as_secs_f64(),
                    sc.name,
                    server.label()
                );
                let cpus = (
                    &server_cpu,
                    if sc.same_core {
                        &server_cpu
                    } else {
                        &loadgen_cpu
                    },
                );
                let mut extra_flags = if server.ours && !server.nagle {
                    vec!["--nodelay".to_string()]
                } else {
                    vec![]
                };
                if sc.tls {
                    extra_flags.extend(tls::server_flags());
                }
                // The stalled rooms run wsportal with `Config`'s default
                // backlog (32 MiB), not the chat example's 1 MiB, unless
                // `CHAT_ARGS` says otherwise (issue 29).
                if sc.group == "stalled"
                    && server.name.starts_with("wsportal")
                    && env_s("CHAT_ARGS", "").is_empty()
                {
                    extra_flags.extend(["--max-backlog".to_string(), (32usize << 20).to_string()]);
                }
                let run = run_one(sc, server, cmd, &extra_flags, port, cpus, out_dir);
                log_run(out_dir, sc, &server.label(), round, &run);
                match &run.error {
                    Some(e) => eprintln!("        error: {e}"),
                    None => eprintln!("        {}", fmt_fields(&run.fields)),
                }
                runs.push(run);
            }
        }
        let runs: Vec<(&Server, Run)> = active
            .into_iter()
            .zip(all)
            .map(|(server, runs)| (server, median(sc, runs)))
            .collect();
        // Print and save each table as soon as it is complete, so that even
        // an interrupted run leaves its results.
        let t = table(sc, &runs);
        println!("{t}");
        report += &t;
        if sc.group == "stalled" {
            stalled.push((sc, runs.into_iter().map(|(s, r)| (s.label(), r)).collect()));
        }
        fs::write(out_dir.join("results.md"), &report).expect("write results");
    }
    if !stalled.is_empty() {
        let t = stalled_summary(&stalled);
        println!("{t}");
        report += &t;
    }
    if cluster::wanted(&only_scen) {
        let mut ctx = cluster::Ctx {
            port: &mut port,
            quiet_budget: &mut quiet_budget,
            started,
            server_cpu: &server_cpu,
            loadgen_cpu: &loadgen_cpu,
            out_dir,
            quick,
        };
        report += &cluster::run(&mut ctx, &only_scen);
        fs::write(out_dir.join("results.md"), &report).expect("write results");
    }
    let total = format!(
        "\nTotal bench time: {:.0} s",
        started.elapsed().as_secs_f64()
    );
    println!("{total}");
    report += &total;
    let path = out_dir.join("results.md");
    fs::write(&path, &report).expect("write results");
    eprintln!("results written to {}", path.display());
}

/// Appends one line of JSON per run to `target/bench/runs.jsonl` (every
/// round, not only the medians): what `scripts/fanout.sh` plots.
fn log_run(out_dir: &Path, sc: &Scenario, server: &str, round: usize, run: &Run) {
    use std::io::Write as _;
    let quote = |s: &str| {
        format!(
            "\"{}\"",
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        )
    };
    let mut line = format!(
        "{{\"scenario\":{},\"server\":{},\"round\":{round}",
        quote(&sc.name),
        quote(server)
    );
    for (k, v) in &run.fields {
        line += &format!(",{}:{}", quote(k), quote(v));
    }
    let num = |x: Option<f64>| x.map_or("null".to_string(), |v| format!("{v}"));
    line += &format!(
        ",\"cpu_s\":{},\"hwm_mib\":{},\"others_pct\":{},\"error\":{}}}\n",
        num(run.cpu_s),
        num(run.hwm_mib),
        num(run.others_pct),
        run.error.as_deref().map_or("null".to_string(), quote)
    );
    if let Ok(mut f) = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out_dir.join("runs.jsonl"))
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Waits until other processes use under 15 % of a core (sampled over
/// 0.5 s), for at most `budget`; returns the time spent.
fn wait_for_quiet(budget: Duration) -> Duration {
    let start = Instant::now();
    let mut warned = false;
    while start.elapsed() < budget {
        let (Some(b0), t0) = (procfs::machine_busy(), Instant::now()) else {
            break;
        };
        std::thread::sleep(Duration::from_millis(500));
        let Some(b1) = procfs::machine_busy() else {
            break;
        };
        let pct = b1.saturating_sub(b0).as_secs_f64() * 100.0 / t0.elapsed().as_secs_f64();
        if pct < 15.0 {
            break;
        }
        if !warned {
            eprintln!("        machine busy ({pct:.0} % of a core used by others); waiting...");
            warned = true;
        }
    }
    start.elapsed()
}

/// The first port from `from` on that can be bound on 127.0.0.1 right now
/// (another run or program may hold some). Ports under 32768 stay clear of
/// the kernel's ephemeral range used by loadgen's own connections.
fn free_port(from: u16) -> u16 {
    (from..32000)
        .find(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        .expect("no free port")
}

fn fmt_fields(f: &BTreeMap<String, String>) -> String {
    f.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The servers, in table order. Missing optional ones are marked skipped.
fn servers() -> Vec<Server> {
    let bin = |name: &str| format!("target/release/{name}");
    let peer = |name: &str| Server {
        name: name.to_string(),
        echo: Some(vec![bin(name)]),
        chat: Some(vec![bin(name)]),
        raw: false,
        peer: true,
        ours: true,
        nagle: false,
        skip: None,
    };
    let raw = Server {
        chat: None,
        raw: true,
        peer: false,
        ..peer("raw-echo")
    };
    // Each harness-built server also without TCP_NODELAY, right after it.
    let mut list = Vec::new();
    for s in [raw, peer("tungstenite-naive"), peer("tokio-tungstenite")] {
        let nagle = Server {
            nagle: true,
            ..s.clone()
        };
        list.extend([s, nagle]);
    }
    // tokio-tungstenite's other idiomatic room (a broadcast channel), for
    // the broadcast scenarios only (its echo is the same as the row above).
    list.push(Server {
        echo: None,
        chat: Some(vec![bin("tokio-tungstenite"), "--broadcast".into()]),
        ..peer("tokio-tungstenite-broadcast")
    });
    // Optional extra peers, set up by scripts/bench.sh when possible.
    let py = "bench/.venv/bin/python";
    let py_cmd = vec![
        py.to_string(),
        "bench/peers/websockets_server.py".to_string(),
    ];
    // Its two documented forms: asyncio, and threaded (`--sync`). The
    // threaded one has no broadcast rows: with 1,000 members its handshake
    // timeout closes connections while thousands of threads share the GIL.
    let py_sync_cmd = [py_cmd.clone(), vec!["--sync".to_string()]].concat();
    for (name, cmd, chat) in [
        ("python-websockets", py_cmd.clone(), Some(py_cmd)),
        ("python-websockets-sync", py_sync_cmd, None),
    ] {
        list.push(Server {
            name: name.into(),
            echo: Some(cmd),
            chat,
            raw: false,
            peer: true,
            ours: true,
            nagle: false,
            skip: (!Path::new(py).exists()).then(|| "no bench/.venv (pip install failed?)".into()),
        });
    }
    let node_cmd = vec!["node".to_string(), "bench/node/ws_server.js".to_string()];
    list.push(Server {
        name: "node-ws".into(),
        echo: Some(node_cmd.clone()),
        chat: Some(node_cmd),
        raw: false,
        peer: true,
        ours: true,
        nagle: false,
        skip: (!Path::new("bench/node/node_modules/ws").exists())
            .then(|| "no bench/node/node_modules/ws (npm install failed?)".into()),
    });
    let echo = "target/release/examples/echo";
    let chat = "target/release/examples/chat";
    list.push(Server {
        name: "wsportal".into(),
        // `ECHO_ARGS`: extra arguments for wsportal's echo (not the
        // baseline's), e.g. `--yield-after 100`.
        echo: Some(with_args_from("ECHO_ARGS", echo)),
        // `CHAT_ARGS`: extra arguments for wsportal's chat (and the
        // baseline's), e.g. `--max-backlog 33554432` for `Config`'s default.
        chat: Path::new(chat)
            .exists()
            .then(|| with_args_from("CHAT_ARGS", chat)),
        raw: false,
        peer: false,
        ours: false,
        nagle: false,
        skip: match std::env::var("WSPORTAL_SKIP") {
            Ok(why) => Some(why),
            Err(_) => (!Path::new(echo).exists()).then(|| format!("{echo} not built")),
        },
    });
    // The same examples built from an older commit (`BASELINE=REV` in
    // scripts/bench.sh), for before/after comparisons in one run.
    if let Ok(dir) = std::env::var("WSPORTAL_BASELINE_DIR") {
        let (echo, chat) = (format!("{dir}/echo"), format!("{dir}/chat"));
        list.push(Server {
            name: "wsportal-baseline".into(),
            echo: Some(vec![echo.clone()]),
            chat: Path::new(&chat)
                .exists()
                .then(|| with_args_from("CHAT_ARGS", &chat)),
            raw: false,
            peer: false,
            ours: false,
            nagle: false,
            skip: (!Path::new(&echo).exists()).then(|| format!("{echo} not built")),
        });
    }
    let only = env_s("SERVERS", "");
    list.retain(|s| only.is_empty() || only.split(',').any(|n| n == s.name));
    list
}

/// The command `path`, with the extra arguments in environment variable
/// `var` (`ECHO_ARGS`, `CHAT_ARGS`).
pub fn with_args_from(var: &str, path: &str) -> Vec<String> {
    let extra = env_s(var, "");
    std::iter::once(path.to_string())
        .chain(extra.split_whitespace().map(String::from))
        .collect()
}

impl Run {
    fn new() -> Run {
        Run {
            fields: BTreeMap::new(),
            error: None,
            cpu_s: None,
            hwm_mib: None,
            others_pct: None,
            rounds: Vec::new(),
        }
    }

    /// The numeric value of RESULT field `key`, if it has one.
    fn figure(&self, key: &str) -> Option<f64> {
        self.fields.get(key)?.parse().ok()
    }
}

/// The run with the median headline figure (the worse middle one for an
/// even count), or the first error if no round succeeded. Its `rounds`
/// lists every round's figure, in order.
fn median(sc: &Scenario, runs: Vec<Run>) -> Run {
    let (key, _, higher) = sc.metric;
    let figures = runs
        .iter()
        .map(|r| match (&r.error, r.fields.get(key)) {
            (None, Some(v)) => v.clone(),
            _ => "error".into(),
        })
        .collect();
    let mut ok: Vec<(f64, Run)> = Vec::new();
    let mut first_error = None;
    for r in runs {
        match r.figure(key).filter(|_| r.error.is_none()) {
            Some(v) => ok.push((v, r)),
            None => first_error = first_error.or(Some(r)),
        }
    }
    // Best first, so the middle index of an even count is the worse one.
    ok.sort_by(|a, b| {
        let order = a.0.total_cmp(&b.0);
        if higher {
            order.reverse()
        } else {
            order
        }
    });
    let mut chosen = if ok.is_empty() {
        first_error.unwrap_or_else(Run::new)
    } else {
        let mid = ok.len() / 2;
        ok.swap_remove(mid).1
    };
    chosen.rounds = figures;
    chosen
}

/// Starts the server, waits for its "listening on" line, runs loadgen,
/// then reads the server's CPU time and peak RSS and stops it.
fn run_one(
    sc: &Scenario,
    server: &Server,
    cmd: &[String],
    flags: &[String],
    port: u16,
    (server_cpu, loadgen_cpu): (&String, &String),
    out_dir: &Path,
) -> Run {
    let mut run = Run::new();
    let addr = format!("127.0.0.1:{port}");
    let log_path = out_dir.join("logs").join(format!(
        "{}-{}.log",
        sc.name,
        server.label().replace(' ', "_")
    ));
    let log = File::create(&log_path).expect("create log");
    let spawned = Command::new("taskset")
        .args(["-c", server_cpu])
        .args(cmd)
        .arg(&addr)
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log.try_clone().expect("log"))
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            run.error = Some(format!("cannot start {}: {e}", cmd[0]));
            return run;
        }
    };
    let pid = child.id();
    if let Err(e) = wait_listening(&mut child, log, Duration::from_secs(15)) {
        run.error = Some(format!(
            "server not ready: {e} (see {})",
            log_path.display()
        ));
        stop(&mut child);
        return run;
    }

    let mut lg = Command::new("taskset");
    lg.args(["-c", loadgen_cpu, "target/release/loadgen"])
        .args(&sc.args)
        .args(["--addr", &addr, "--pid", &pid.to_string()]);
    if server.raw {
        lg.arg("--raw");
    }
    let stderr_log = File::options().append(true).open(&log_path).expect("log");
    // Everything else the machine does meanwhile is noise: measure it.
    let busy0 = procfs::machine_busy();
    let server0 = procfs::cpu_time(pid);
    let loadgen0 = procfs::children_cpu();
    let t0 = Instant::now();
    match run_loadgen(lg, stderr_log, sc.timeout) {
        Ok(line) => parse_result(&line, &mut run),
        Err(e) => run.error = Some(e),
    }
    if let (Some(b0), Some(b1), Some(s0), Some(s1)) = (
        busy0,
        procfs::machine_busy(),
        server0,
        procfs::cpu_time(pid),
    ) {
        let ours = (s1.saturating_sub(s0)) + procfs::children_cpu().saturating_sub(loadgen0);
        let others = b1.saturating_sub(b0).saturating_sub(ours);
        run.others_pct = Some(others.as_secs_f64() * 100.0 / t0.elapsed().as_secs_f64());
    }
    if let Ok(Some(status)) = child.try_wait() {
        run.error = Some(format!("server exited during the run ({status})"));
    }
    run.cpu_s = procfs::cpu_time(pid).map(|d| d.as_secs_f64());
    run.hwm_mib = procfs::status_kib(pid, "VmHWM").map(|k| k as f64 / 1024.0);
    stop(&mut child);
    run
}

/// Waits for a stdout line containing "listening on"; then copies the rest
/// of the server's stdout to its log in the background.
fn wait_listening(child: &mut Child, mut log: File, timeout: Duration) -> Result<(), String> {
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut ready = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(log, "{line}");
            if !ready && line.contains("listening on") {
                ready = true;
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(timeout)
        .map_err(|_| format!("no 'listening on' line within {timeout:?}"))
}

/// Runs loadgen with a time limit and returns its last RESULT line.
fn run_loadgen(mut cmd: Command, log: File, timeout: Duration) -> Result<String, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start loadgen: {e}"))?;
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.starts_with("RESULT "))
            .last()
    });
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("loadgen timed out after {timeout:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for loadgen: {e}")),
        }
    }
    reader
        .join()
        .ok()
        .flatten()
        .ok_or_else(|| "loadgen printed no RESULT line".to_string())
}

/// Parses `RESULT k=v k=v ...` or `RESULT error=text`.
fn parse_result(line: &str, run: &mut Run) {
    let body = line.trim_start_matches("RESULT ").trim();
    if let Some(err) = body.strip_prefix("error=") {
        run.error = Some(err.to_string());
        return;
    }
    for pair in body.split_whitespace() {
        if let Some((k, v)) = pair.split_once('=') {
            run.fields.insert(k.to_string(), v.to_string());
        }
    }
}

/// SIGTERM, then SIGKILL after 2 s.
fn stop(child: &mut Child) {
    // SAFETY: kill(2) on the pid of our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// One markdown table for a scenario, with the headline figure's ratio to
/// the best peer (raw-echo and wsportal are not peers).
fn table(sc: &Scenario, runs: &[(&Server, Run)]) -> String {
    let (key, label, higher) = sc.metric;
    let best = runs
        .iter()
        .filter(|(s, r)| s.peer && r.error.is_none())
        .filter_map(|(_, r)| r.figure(key))
        .reduce(|a, b| if (a > b) == higher { a } else { b });
    let arrow = if higher { "↑" } else { "↓" };
    let mut t = format!(
        "\n### {}: {}\n\n| server | {label} {arrow} | vs best peer |",
        sc.name, sc.what
    );
    for (_, l) in &sc.extra {
        t += &format!(" {l} |");
    }
    let several = runs.iter().any(|(_, r)| r.rounds.len() > 1);
    if several {
        t += " every round |";
    }
    // With a wsportal-baseline row: wsportal's headline and CPU cost as a
    // ratio to the baseline's (before/after in one run).
    let baseline = runs
        .iter()
        .find(|(s, r)| s.name == "wsportal-baseline" && r.error.is_none())
        .map(|(_, r)| r);
    let cost = sc
        .extra
        .iter()
        .map(|(k, _)| *k)
        .find(|k| k.starts_with("cpu_us_per"));
    if baseline.is_some() {
        t += " wsportal vs baseline |";
    }
    t += " server CPU s | peak RSS MiB | other load % |\n|---|---:|---:|";
    t += &"---:|"
        .repeat(sc.extra.len() + 3 + usize::from(several) + usize::from(baseline.is_some()));
    t += "\n";
    for (server, r) in runs {
        let mut name = server.label();
        if server.raw {
            name += " (TCP ceiling)";
        }
        if let Some(e) = &r.error {
            let e = e.replace('|', "/");
            let label = if e.starts_with("skipped") {
                ""
            } else {
                "ERROR: "
            };
            t += &format!("| {name} | {label}{e} |\n");
            continue;
        }
        let v = r.figure(key);
        let ratio = match (v, best) {
            (Some(v), Some(b)) if b > 0.0 => format!("{:.2}x", v / b),
            _ => "-".into(),
        };
        let show = |k: &str| r.fields.get(k).cloned().unwrap_or_else(|| "-".into());
        t += &format!("| {name} | {} | {ratio} |", show(key));
        for (k, _) in &sc.extra {
            t += &format!(" {} |", show(k));
        }
        if several {
            t += &format!(" {} |", r.rounds.join(" / "));
        }
        if let Some(b) = baseline {
            let mut cell = String::new();
            if server.name == "wsportal" {
                let ratio = |k: &str| match (r.figure(k), b.figure(k)) {
                    (Some(x), Some(y)) if y > 0.0 => format!("{:.2}x", x / y),
                    _ => "-".into(),
                };
                cell = format!("{} {arrow}", ratio(key));
                if let Some(k) = cost {
                    cell += &format!(", CPU/item {} ↓", ratio(k));
                }
            }
            t += &format!(" {cell} |");
        }
        let num = |x: Option<f64>| x.map_or("-".into(), |x| format!("{x:.2}"));
        let others = r.others_pct.map_or("-".into(), |x| format!("{x:.0}"));
        t += &format!(" {} | {} | {others} |\n", num(r.cpu_s), num(r.hwm_mib));
    }
    t
}

/// The stalled scenarios side by side: one row per number of never-reading
/// members, one column per server; p99 to the reading members (and its
/// ratio to the same server's row with the fewest stalled members), then
/// the server's CPU per delivered message and how many stalled members it
/// closed.
fn stalled_summary(rows: &[(&Scenario, Vec<(String, Run)>)]) -> String {
    fn find<'a>(row: &'a [(String, Run)], server: &str) -> Option<&'a Run> {
        row.iter()
            .find(|(l, r)| l == server && r.error.is_none())
            .map(|(_, r)| r)
    }
    let mut servers: Vec<&str> = Vec::new();
    for (_, runs) in rows {
        for (label, _) in runs {
            if !servers.contains(&label.as_str()) {
                servers.push(label);
            }
        }
    }
    let base = |server: &str| {
        rows.first()
            .and_then(|(_, row)| find(row, server))
            .and_then(|r| r.figure("p99_us"))
    };
    let header = |what: &str| {
        let mut t = format!("\n| {what} |");
        for s in &servers {
            t += &format!(" {s} |");
        }
        t += "\n|---|";
        t += &"---:|".repeat(servers.len());
        t + "\n"
    };
    let mut t = String::from(
        "\n### stalled: summary\n\np99 delivery latency to the reading members (x the \
         same server's first row); `lost N` marks messages a reading member never got.\n",
    );
    t += &header("never-reading members");
    for (sc, row) in rows {
        t += &format!("| {} |", sc.name.trim_start_matches("stalled"));
        for s in &servers {
            let cell = match (find(row, s), row.iter().any(|(l, _)| l == s)) {
                (Some(r), _) => {
                    let p99 = r.figure("p99_us").unwrap_or(f64::NAN);
                    let mut c = format!("{:.1} ms", p99 / 1e3);
                    if let Some(b) = base(s).filter(|b| *b > 0.0) {
                        c += &format!(" ({:.2}x)", p99 / b);
                    }
                    match r.figure("lost") {
                        Some(lost) if lost > 0.0 => c += &format!(" lost {lost}"),
                        _ => {}
                    }
                    c
                }
                (None, true) => "ERROR".into(),
                (None, false) => "-".into(),
            };
            t += &format!(" {cell} |");
        }
        t += "\n";
    }
    t += "\nServer CPU µs per delivered message; stalled members the server closed.\n";
    t += &header("never-reading members");
    for (sc, row) in rows {
        t += &format!("| {} |", sc.name.trim_start_matches("stalled"));
        for s in &servers {
            let cell = find(row, s).map_or("-".into(), |r| {
                let get = |k: &str| r.fields.get(k).map_or("-", String::as_str);
                format!(
                    "{} µs; closed {}",
                    get("cpu_us_per_delivery"),
                    get("stalled_closed")
                )
            });
            t += &format!(" {cell} |");
        }
        t += "\n";
    }
    t
}
