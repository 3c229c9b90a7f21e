//! portal's error example: a resource whose message hook fails on purpose,
//! and an `on_error` hook that sends the error back instead of stopping.
//!
//!     cargo run --example hooks -- 127.0.0.1:9002
//!
//! Connect to ws://127.0.0.1:9002/err and send anything: a number is doubled,
//! anything else makes the hook panic, and the error text comes back.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/signals.rs"]
mod signals;

use wsportal::{Config, Resource, Server};

/// The command line (anything else: this line, and exit status 2).
const USAGE: &str = "hooks [ADDR] [--seconds N]";

fn main() -> std::process::ExitCode {
    cli::init_logs();
    cli::finish(USAGE, run(&cli::args()))
}

/// Serves on `args[0]` (default 127.0.0.1:9002); `--seconds N` stops it cleanly after N seconds.
pub fn run(argv: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let args = cli::Args::parse(argv, 1, &["--seconds"])?;
    let seconds = args.seconds()?;
    let addr = args.positional(0).unwrap_or("127.0.0.1:9002");

    // Like `(setq pws:debug-on-error nil)`: a panic goes to on_error and the
    // connection carries on, instead of being closed with 1011.
    let mut server = Server::with_config(Config::default().debug_on_error(false));
    server.define_resource(
        "/err",
        Resource::new()
            .on_open(|ws| {
                let _ = ws.send_text("Welcome to error server.");
            })
            .on_message(|ws, msg| {
                // Panics unless the message is a number: the deliberate bug.
                let n: i64 = msg.as_text().unwrap_or("").trim().parse().unwrap();
                let _ = ws.send_text(&(n * 2).to_string());
            })
            .on_error(|ws, err| {
                // Echo the error to the client.
                let _ = ws.send_text(&format!("error: {err}"));
            })
            .on_close(|ws, code, _reason| {
                println!("socket {} leaving error server ({code})", ws.peer_addr());
            }),
    );

    let handle = server.start(addr)?;
    // From now on (before anyone learns where it listens), SIGINT (Ctrl-C)
    // or SIGTERM (systemd, docker stop) asks it to close.
    let _signals = signals::close_on_signals(handle.closer())?;
    println!("listening on ws://{}/err", handle.local_addr());
    // Serve until SIGINT (Ctrl-C) or SIGTERM (systemd, docker stop), or for
    // `--seconds N`; then stop cleanly: 1001 to every client, threads joined.
    match seconds {
        Some(d) => _ = handle.wait_timeout(d),
        None => handle.wait(),
    }
    handle.close();
    Ok(())
}
