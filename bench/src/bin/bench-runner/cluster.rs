//! The `redis` group (issue 14, opt-in): one chat room spread over several
//! server instances that share one Redis, against the same load on one
//! instance; then bounded ramps of the publish rate.
//!
//! The runner starts its own `redis-server` (free port, persistence off,
//! on the server CPU), then for each setup fresh server instances (all on
//! the server CPU: the figures are "one server core", Redis included).
//! Loadgen spreads the members over the instances in turn (`--addr A,B,C`;
//! the publisher is the last member) and sums their CPU time (`--pid`).
//!
//! - `redis64`, `redis16k`: `REDIS_MEMBERS` members, `REDIS_RATE` msg/s of
//!   64 B or 16 KiB for `REDIS_SECS`; every member must get every message.
//! - `redis-ramp`: 64 B messages, the rate doubled from `REDIS_RATE` for
//!   `REDIS_RAMP_SECS` each step until p99 passes `REDIS_P99_MS` (or a
//!   message is lost, or `REDIS_RAMP_CAP` is passed); the last good rate is
//!   the answer. `REDIS_RAMP_MEMBERS` (default `REDIS_MEMBERS`) sets its
//!   room's size.
//! - `redis-hop`: the same ramp from 8 x `REDIS_RATE` up to `REDIS_HOP_CAP`
//!   with one member per instance (the publisher included), so that the
//!   fan-out costs nothing and the publishing path is what is measured
//!   (wsportal: a synchronous PUBLISH round trip per message, under the
//!   backplane's lock); against wsportal on one instance without Redis.
//!   A ramp's instances (and Redis) stay up across its steps.
//!
//! Setups: wsportal's `chat` example built with `--features redis` (in
//! `target/bench/redis/`, so the plain rows keep the plain build), with no
//! backplane (1 instance, the same binary without `--redis`), and with
//! `--redis URL` on 1 and on `REDIS_INSTANCES` instances; Socket.IO
//! (`bench/socketio/chat_server.js`) alone and with its Redis adapter.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wsportal_bench::procfs;

use super::{env_f, env_s, free_port, parse_result, run_loadgen, stop, wait_for_quiet, Run};

/// wsportal's chat example with the `redis` feature (scripts/bench.sh).
const WSPORTAL_CHAT: &str = "target/bench/redis/release/examples/chat";
const SOCKETIO: &str = "bench/socketio/chat_server.js";

/// Whether `SCENARIOS` asks for any of this group.
pub fn wanted(only: &str) -> bool {
    only == "all"
        || only
            .split(',')
            .any(|n| n == "redis" || n.starts_with("redis"))
}

fn named(only: &str, name: &str) -> bool {
    only == "all" || only.split(',').any(|n| n == "redis" || n == name)
}

/// A server program, run as one or several instances.
struct Family {
    name: &'static str,
    cmd: Vec<String>,
    path: String,
    socketio: bool,
    /// What its instances share the room through (for row labels).
    via: &'static str,
    skip: Option<String>,
}

/// One row: a family on `instances` instances, with Redis or not.
struct Setup<'a> {
    family: &'a Family,
    instances: usize,
    redis: bool,
}

impl Setup<'_> {
    fn label(&self) -> String {
        let n = self.instances;
        let s = if n == 1 { "" } else { "s" };
        match self.redis {
            true => format!(
                "{}, {n} instance{s} + {}",
                self.family.name, self.family.via
            ),
            false => format!("{}, {n} instance{s}, no Redis", self.family.name),
        }
    }
}

/// Running instances of a setup.
struct Instances {
    children: Vec<Child>,
    addrs: Vec<String>,
}

impl Instances {
    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    fn stop(mut self) {
        for c in &mut self.children {
            stop(c);
        }
    }

    fn exited(&mut self) -> Option<String> {
        self.children.iter_mut().find_map(|c| match c.try_wait() {
            Ok(Some(status)) => Some(format!("a server instance exited ({status})")),
            _ => None,
        })
    }
}

/// Settings and shared state of the group's runs.
pub struct Ctx<'a> {
    pub port: &'a mut u16,
    pub quiet_budget: &'a mut Duration,
    pub started: Instant,
    pub server_cpu: &'a str,
    pub loadgen_cpu: &'a str,
    pub out_dir: &'a Path,
    pub quick: bool,
}

/// Runs the group's scenarios named in `only`; returns their tables.
pub fn run(ctx: &mut Ctx<'_>, only: &str) -> String {
    let q = |quick_value: f64, full: f64| if ctx.quick { quick_value } else { full };
    let members = env_f("REDIS_MEMBERS", q(200.0, 1000.0)) as usize;
    let secs = env_f("REDIS_SECS", q(1.5, 10.0));
    let idle = env_f("REDIS_IDLE", q(0.3, 1.0));
    let rate = env_f("REDIS_RATE", 50.0);
    let instances = env_f("REDIS_INSTANCES", 3.0).max(1.0) as usize;
    let ramp_secs = env_f("REDIS_RAMP_SECS", q(1.0, 5.0));
    // Loadgen keeps every latency sample: 6,400 msg/s x 5 s x 1,001 members
    // is 256 MB of them.
    let ramp_cap = env_f("REDIS_RAMP_CAP", q(200.0, 6400.0));
    let ramp_members = env_f("REDIS_RAMP_MEMBERS", members as f64) as usize;
    let hop_cap = env_f("REDIS_HOP_CAP", q(1600.0, 51200.0));
    let limit_ms = env_f("REDIS_P99_MS", 50.0);
    let mut t = format!(
        "\n## redis: one room over {instances} instances sharing one Redis (issue 14)\n\n\
         {members} members + 1 publisher spread over the instances in turn; instances and \
         redis-server on CPU {}, loadgen on CPU {}. `CPU µs/delivery` and `CPU % publishing` \
         are the instances' (summed); `Redis CPU %` is redis-server's, while publishing.\n",
        ctx.server_cpu, ctx.loadgen_cpu
    );
    let families = families();
    for f in &families {
        if let Some(why) = &f.skip {
            eprintln!("skipping {} (redis group): {why}", f.name);
            t += &format!("\nSkipped {}: {why}\n", f.name);
        }
    }
    println!("{t}");
    let ready: Vec<&Family> = families.iter().filter(|f| f.skip.is_none()).collect();
    let mut redis = match start_redis(ctx) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("redis group skipped: {e}");
            return t + &format!("\nredis group skipped: {e}\n");
        }
    };
    let url = format!("redis://127.0.0.1:{}/", redis.1);
    let mut setups = Vec::new();
    for f in &ready {
        setups.push(Setup {
            family: f,
            instances: 1,
            redis: false,
        });
        if f.name == "wsportal" && instances > 1 {
            setups.push(Setup {
                family: f,
                instances: 1,
                redis: true,
            });
        }
        setups.push(Setup {
            family: f,
            instances,
            redis: true,
        });
    }
    for (name, size, label) in [("redis64", 64, "64 B"), ("redis16k", 16384, "16 KiB")] {
        if !named(only, name) {
            continue;
        }
        let table = t.len();
        t += &format!(
            "\n### {name}: room relay of {label} text, {rate} msg/s for {secs} s\n\n\
             | setup | p99 µs ↓ | vs 1 instance | p50 µs | max µs | lost | readers closed | \
             CPU µs/delivery | CPU % publishing | Redis CPU % | loadgen CPU % | \
             other load % |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        );
        let mut alone: BTreeMap<&str, f64> = BTreeMap::new();
        for setup in &setups {
            let args = broadcast_args(setup.family, size, members, secs, idle, rate);
            let log = format!("{name}-{}", setup.label());
            let run = match start_instances(ctx, setup, &url, &log) {
                Ok(inst) => {
                    let run = measure(ctx, &args, inst, redis.0.id(), &log, secs + idle);
                    run.1.stop();
                    run.0
                }
                Err(e) => error_run(e),
            };
            let p99 = run.figure("p99_us").filter(|_| run.error.is_none());
            if let (false, Some(p)) = (setup.redis, p99) {
                alone.insert(setup.family.name, p);
            }
            let ratio = match (p99, alone.get(setup.family.name)) {
                (Some(p), Some(a)) if *a > 0.0 && setup.redis => format!("{:.2}x", p / a),
                _ => "-".into(),
            };
            t += &row(
                &setup.label(),
                &run,
                &ratio,
                &[
                    "p99_us",
                    "",
                    "p50_us",
                    "max_us",
                    "lost",
                    "readers_closed",
                    "cpu_us_per_delivery",
                    "pub_cpu_pct",
                    "aux_cpu_pct",
                    "loadgen_cpu_pct",
                ],
            );
            eprintln!("        {}", t.lines().last().unwrap_or(""));
        }
        println!("{}", &t[table..]);
    }
    let ramp = |name, what, members, from| Ramp {
        name,
        what,
        members,
        from,
        cap: ramp_cap,
        secs: ramp_secs,
        idle,
        limit_ms,
    };
    if named(only, "redis-ramp") {
        let setups: Vec<&Setup> = setups
            .iter()
            .filter(|s| s.redis && s.instances == instances)
            .collect();
        let r = ramp("redis-ramp", "the room", ramp_members, rate);
        t += &run_ramp(ctx, &r, &setups, redis.0.id(), &url);
    }
    if named(only, "redis-hop") {
        // One member per instance: what is left is the publishing path
        // (wsportal: one synchronous PUBLISH per message) and the hop.
        let setups: Vec<&Setup> = setups
            .iter()
            .filter(|s| (s.redis && s.instances == instances) || (!s.redis && !s.family.socketio))
            .collect();
        let r = Ramp {
            cap: hop_cap,
            ..ramp(
                "redis-hop",
                "one publisher, one member per instance",
                instances - 1,
                8.0 * rate,
            )
        };
        t += &run_ramp(ctx, &r, &setups, redis.0.id(), &url);
    }
    stop(&mut redis.0);
    t
}

/// A bounded ramp: the rate doubles from `from` until p99 passes
/// `limit_ms`, a message is lost, a run fails or the next rate passes `cap`.
struct Ramp {
    name: &'static str,
    what: &'static str,
    members: usize,
    from: f64,
    cap: f64,
    secs: f64,
    idle: f64,
    limit_ms: f64,
}

/// Runs a ramp on each setup (its instances stay up across the steps);
/// returns the table and the verdicts.
fn run_ramp(
    ctx: &mut Ctx<'_>,
    p: &Ramp,
    setups: &[&Setup<'_>],
    redis_pid: u32,
    url: &str,
) -> String {
    let Ramp {
        name,
        members,
        limit_ms,
        ..
    } = *p;
    let mut t = format!(
        "\n### {name}: the most 64 B msg/s {} carries with p99 ≤ {limit_ms} ms\n\n\
         {members} members + 1 publisher; the rate doubles from {} msg/s ({} s per step, at \
         most {} msg/s) until p99 passes {limit_ms} ms or a message is lost. The \
         instances (and Redis) stay up across the steps.\n\n\
         | setup | msg/s | deliveries/s | p99 µs | p50 µs | lost | CPU % publishing | \
         Redis CPU % | loadgen CPU % | other load % |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        p.what, p.from, p.secs, p.cap
    );
    let mut verdicts = String::new();
    for setup in setups {
        let log = format!("{name}-{}", setup.label());
        let mut inst = match start_instances(ctx, setup, url, &log) {
            Ok(inst) => inst,
            Err(e) => {
                t += &row(&setup.label(), &error_run(e), "", &[]);
                continue;
            }
        };
        let (mut r, mut good) = (p.from, None);
        let why = loop {
            let args = broadcast_args(setup.family, 64, members, p.secs, p.idle, r);
            let (mut run, back) = measure(ctx, &args, inst, redis_pid, &log, p.secs + p.idle);
            inst = back;
            let p99 = run.figure("p99_us").filter(|_| run.error.is_none());
            let lost = run.figure("lost").unwrap_or(0.0);
            run.fields.insert("rate".into(), format!("{r}"));
            run.fields.insert(
                "deliveries_per_s".into(),
                format!("{:.0}", r * (members + 1) as f64),
            );
            t += &row(
                &setup.label(),
                &run,
                "",
                &[
                    "rate",
                    "deliveries_per_s",
                    "p99_us",
                    "p50_us",
                    "lost",
                    "pub_cpu_pct",
                    "aux_cpu_pct",
                    "loadgen_cpu_pct",
                ],
            );
            eprintln!("        {}", t.lines().last().unwrap_or(""));
            match p99 {
                Some(p99) if p99 <= limit_ms * 1e3 && lost == 0.0 => good = Some(r),
                Some(p99) if lost == 0.0 => {
                    break format!("at {r} msg/s p99 was {:.1} ms", p99 / 1e3);
                }
                Some(_) => break format!("at {r} msg/s {lost} deliveries were lost"),
                None => break format!("at {r} msg/s the run failed"),
            }
            if r * 2.0 > p.cap {
                break format!("the cap, {} msg/s, stopped the ramp", p.cap);
            }
            r *= 2.0;
        };
        inst.stop();
        verdicts += &format!(
            "- {}: **{}** ({why}).\n",
            setup.label(),
            good.map_or("none".into(), |g| format!("{g} msg/s"))
        );
    }
    t += &format!("\nMost msg/s with p99 ≤ {limit_ms} ms and nothing lost:\n\n{verdicts}");
    println!("{t}");
    t
}

/// The servers of this group; missing ones are marked skipped.
fn families() -> Vec<Family> {
    let chat_path = env_s("CHAT_PATH", "/chat");
    let node_ok = Path::new("bench/socketio/node_modules/@socket.io/redis-adapter").exists();
    let only = env_s("SERVERS", "");
    let mut list = vec![
        Family {
            name: "wsportal",
            cmd: vec![WSPORTAL_CHAT.into()],
            path: chat_path,
            socketio: false,
            via: "Redis",
            skip: (!Path::new(WSPORTAL_CHAT).exists())
                .then(|| format!("{WSPORTAL_CHAT} not built (cargo build --release --features redis --example chat --target-dir target/bench/redis)")),
        },
        Family {
            name: "socket.io",
            cmd: vec!["node".into(), SOCKETIO.into()],
            path: wsportal_bench::socketio::PATH.into(),
            socketio: true,
            via: "Redis adapter",
            skip: (!node_ok).then(|| "no bench/socketio/node_modules (npm ci failed?)".into()),
        },
    ];
    list.retain(|f| {
        only.is_empty()
            || only
                .split(',')
                .any(|n| n == f.name || (n == "socketio" && f.socketio))
    });
    list
}

fn broadcast_args(
    f: &Family,
    size: usize,
    members: usize,
    secs: f64,
    idle: f64,
    rate: f64,
) -> Vec<String> {
    let mut a: Vec<String> = [
        "broadcast",
        "--size",
        &size.to_string(),
        "--clients",
        &members.to_string(),
        "--stalled",
        "0",
        "--hold",
        &idle.to_string(),
        "--duration",
        &secs.to_string(),
        "--rate",
        &rate.to_string(),
        "--path",
        &f.path,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if f.socketio {
        a.push("--socketio".into());
    }
    a
}

fn error_run(e: String) -> Run {
    let mut run = Run::new();
    run.error = Some(e);
    run
}

/// One table row: the label, then `keys` (an empty key is `extra`).
fn row(label: &str, run: &Run, extra: &str, keys: &[&str]) -> String {
    if let Some(e) = &run.error {
        return format!("| {label} | ERROR: {} |\n", e.replace('|', "/"));
    }
    let mut r = format!("| {label} |");
    for k in keys {
        let v = match *k {
            "" => extra.to_string(),
            k => run.fields.get(k).cloned().unwrap_or_else(|| "-".into()),
        };
        r += &format!(" {v} |");
    }
    let others = run.others_pct.map_or("-".into(), |x| format!("{x:.0}"));
    r + &format!(" {others} |\n")
}

/// Makes the child die with the runner (`BENCH_TIMEOUT` kills the runner
/// only): no redis-server or instance is left behind.
fn die_with_runner(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl(2) is async-signal-safe; nothing else runs between
    // fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Starts redis-server on a free port (persistence off) on the server CPU;
/// returns it with its port once it accepts connections.
fn start_redis(ctx: &mut Ctx<'_>) -> Result<(Child, u16), String> {
    *ctx.port = free_port(*ctx.port + 1);
    let port = *ctx.port;
    let log = File::create(ctx.out_dir.join("logs").join("redis-server.log"))
        .map_err(|e| e.to_string())?;
    let mut cmd = Command::new("taskset");
    die_with_runner(&mut cmd);
    let mut child = cmd
        .args([
            "-c",
            ctx.server_cpu,
            "redis-server",
            "--port",
            &port.to_string(),
        ])
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start redis-server: {e}"))?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if line.contains("Ready to accept connections") {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(10)).is_err() {
        stop(&mut child);
        return Err(
            "redis-server is not installed or did not start (apt-get install redis-server)".into(),
        );
    }
    Ok((child, port))
}

/// Starts a setup's instances, each on a free port, and waits for them.
fn start_instances(
    ctx: &mut Ctx<'_>,
    s: &Setup<'_>,
    url: &str,
    log: &str,
) -> Result<Instances, String> {
    let mut inst = Instances {
        children: Vec::new(),
        addrs: Vec::new(),
    };
    for i in 0..s.instances {
        *ctx.port = free_port(*ctx.port + 1);
        let addr = format!("127.0.0.1:{}", ctx.port);
        let path = ctx
            .out_dir
            .join("logs")
            .join(format!("{}-{i}.log", log.replace([' ', ',', '+'], "_")));
        let file = File::create(&path).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("taskset");
        die_with_runner(&mut cmd);
        cmd.args(["-c", ctx.server_cpu])
            .args(&s.family.cmd)
            .arg(&addr);
        if s.redis {
            cmd.args(["--redis", url]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(file.try_clone().map_err(|e| e.to_string())?)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                inst.stop();
                return Err(format!("cannot start {}: {e}", s.family.cmd[0]));
            }
        };
        let ready = super::wait_listening(&mut child, file, Duration::from_secs(15));
        inst.children.push(child);
        if let Err(e) = ready {
            inst.stop();
            return Err(format!(
                "instance {i} not ready: {e} (see {})",
                path.display()
            ));
        }
        inst.addrs.push(addr);
    }
    Ok(inst)
}

/// Runs loadgen against running instances; adds Redis's CPU % and the
/// other load to the result. Gives the instances back.
fn measure(
    ctx: &mut Ctx<'_>,
    args: &[String],
    mut inst: Instances,
    redis_pid: u32,
    log: &str,
    secs: f64,
) -> (Run, Instances) {
    let mut run = Run::new();
    *ctx.quiet_budget = ctx
        .quiet_budget
        .saturating_sub(wait_for_quiet(*ctx.quiet_budget));
    eprintln!(
        "[{:>4.0}s] {log} {} ...",
        ctx.started.elapsed().as_secs_f64(),
        args.iter()
            .skip_while(|a| *a != "--rate")
            .nth(1)
            .map_or("", String::as_str),
    );
    let pids = inst.pids();
    let pid_list: Vec<String> = pids.iter().map(u32::to_string).collect();
    let mut lg = Command::new("taskset");
    lg.args(["-c", ctx.loadgen_cpu, "target/release/loadgen"])
        .args(args)
        .args([
            "--addr",
            &inst.addrs.join(","),
            "--pid",
            &pid_list.join(","),
            "--aux-pid",
            &redis_pid.to_string(),
        ]);
    let path = ctx
        .out_dir
        .join("logs")
        .join(format!("{}-loadgen.log", log.replace([' ', ',', '+'], "_")));
    let Ok(stderr_log) = File::options().create(true).append(true).open(&path) else {
        return (error_run(format!("cannot open {}", path.display())), inst);
    };
    let cpu = |pids: &[u32]| -> Duration { pids.iter().filter_map(|&p| procfs::cpu_time(p)).sum() };
    let (busy0, servers0, redis0, loadgen0) = (
        procfs::machine_busy(),
        cpu(&pids),
        cpu(&[redis_pid]),
        procfs::children_cpu(),
    );
    let t0 = Instant::now();
    match run_loadgen(lg, stderr_log, Duration::from_secs_f64(secs + 200.0)) {
        Ok(line) => parse_result(&line, &mut run),
        Err(e) => run.error = Some(e),
    }
    let wall = t0.elapsed();
    let redis_cpu = cpu(&[redis_pid]).saturating_sub(redis0);
    if let (Some(b0), Some(b1)) = (busy0, procfs::machine_busy()) {
        let ours = cpu(&pids).saturating_sub(servers0)
            + redis_cpu
            + procfs::children_cpu().saturating_sub(loadgen0);
        let others = b1.saturating_sub(b0).saturating_sub(ours);
        run.others_pct = Some(others.as_secs_f64() * 100.0 / wall.as_secs_f64());
    }
    if let Some(e) = inst.exited() {
        run.error = Some(e);
    }
    (run, inst)
}
