//! The standard Autobahn client driver: asks the fuzzing server how many
//! cases it has, runs each one echoing every message back, then asks it to
//! write its report. `scripts/autobahn-client.sh` runs it against
//! `kosoku -m fuzzingserver`.
//!
//!     cargo run --release --example autobahn_client -- 127.0.0.1:9001

use std::time::Duration;

use wsportal::{Client, Config, Resource};

const AGENT: &str = "wsportal";
/// The longest a single case may run before the driver gives up on it.
const CASE_LIMIT: Duration = Duration::from_secs(120);

fn main() -> std::process::ExitCode {
    env_logger::init();
    // Errors are printed with their Display text, for people.
    match main_inner() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn main_inner() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
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

    for case in 1..=n {
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

    let report = Client::new(format!("ws://{addr}/updateReports?agent={AGENT}"))
        .config(config)
        .connect()?;
    report.wait_closed(CASE_LIMIT);
    println!("report updated");
    Ok(())
}
