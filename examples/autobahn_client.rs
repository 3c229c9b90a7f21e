//! The standard Autobahn client driver: asks the fuzzing server how many
//! cases it has, runs each one echoing every message back, then asks it to
//! write its report. `scripts/autobahn-client.sh` runs it against
//! `kosoku -m fuzzingserver`.
//!
//!     cargo run --release --example autobahn_client -- 127.0.0.1:9001
//!
//! `--parallel N` runs N cases at a time (the suite's cases are
//! independent; the compression sections go about twice as fast).

#[path = "support/cli.rs"]
mod cli;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use wsportal::{Client, Config, Resource};

const AGENT: &str = "wsportal";
/// The longest a single case may run before the driver gives up on it.
const CASE_LIMIT: Duration = Duration::from_secs(120);

/// The command line (anything else: this line, and exit status 2).
const USAGE: &str = "autobahn_client [ADDR] [--parallel N]";

fn main() -> std::process::ExitCode {
    cli::init_logs();
    cli::finish(USAGE, main_inner(&cli::args()))
}

fn main_inner(argv: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let args = cli::Args::parse(argv, 1, &["--parallel"])?;
    let addr = args.positional(0).unwrap_or("127.0.0.1:9001");
    let parallel: u32 = args.parsed("--parallel")?.unwrap_or(1);
    if parallel == 0 {
        return Err(cli::Usage("--parallel needs at least 1".into()).into());
    }
    // Keepalive pings would be noise to a conformance suite; switch them off.
    let config = Config::default().ping_interval(None);

    let count = Client::new(format!("ws://{addr}/getCaseCount"))
        .config(config.clone())
        .connect()?;
    let n: u32 = count
        .recv_timeout(CASE_LIMIT)?
        .as_text()
        .unwrap_or("")
        .trim()
        .parse()?;
    drop(count);
    println!("{n} cases");

    // Each worker takes the next case until none is left.
    let next = AtomicU32::new(1);
    let worker = || loop {
        let case = next.fetch_add(1, Ordering::Relaxed);
        if case > n {
            return;
        }
        run_case(addr, case, n, &config);
    };
    std::thread::scope(|s| {
        for _ in 0..parallel {
            s.spawn(worker);
        }
    });

    let report = Client::new(format!("ws://{addr}/updateReports?agent={AGENT}"))
        .config(config)
        .connect()?;
    report.wait_closed(CASE_LIMIT);
    println!("report updated");
    Ok(())
}

/// Runs case `case` of `n`: connects, echoes until the server closes.
fn run_case(addr: &str, case: u32, n: u32, config: &Config) {
    let url = format!("ws://{addr}/runCase?case={case}&agent={AGENT}");
    // Send each message back as it came: text as text, binary as binary.
    let echo = Resource::new().on_message(|ws, msg| {
        let _ = ws.send(msg);
    });
    match Client::new(url).config(config.clone()).connect_with(echo) {
        Ok(ws) => match ws.wait_closed(CASE_LIMIT) {
            Some((code, _)) => println!("case {case}/{n}: closed with {code}"),
            None => println!("case {case}/{n}: still open after {CASE_LIMIT:?}; dropping it"),
        },
        Err(e) => println!("case {case}/{n}: {e}"),
    }
}
