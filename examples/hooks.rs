//! portal's error example: a resource whose message hook fails on purpose,
//! and an `on_error` hook that sends the error back instead of stopping.
//!
//!     cargo run --example hooks -- 127.0.0.1:9002
//!
//! Connect to ws://127.0.0.1:9002/err and send anything: a number is doubled,
//! anything else makes the hook panic, and the error text comes back.

#[path = "support/signals.rs"]
mod signals;

use std::time::Duration;

use wsportal::{Config, Resource, Server};

fn main() -> std::process::ExitCode {
    env_logger::init();
    // Errors are printed with their Display text, for people.
    match run(&std::env::args().skip(1).collect::<Vec<_>>()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Serves on `args[0]` (default 127.0.0.1:9002); `--seconds N` stops it cleanly after N seconds.
pub fn run(args: &[String]) -> Result<(), wsportal::Error> {
    let addr = args.first().map_or("127.0.0.1:9002", String::as_str);

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
    println!("listening on ws://{}/err", handle.local_addr());
    // Serve until the process is stopped (Ctrl-C), or for `--seconds N`;
    // then stop cleanly: 1001 to every client, every thread joined.
    // SIGINT (Ctrl-C) or SIGTERM (systemd, docker stop) closes it too.
    let _signals = signals::close_on_signals(handle.closer())?;
    let seconds = args.iter().skip_while(|a| *a != "--seconds").nth(1);
    match seconds.and_then(|n| n.parse().ok()) {
        Some(n) => _ = handle.wait_timeout(Duration::from_secs(n)),
        None => handle.wait(),
    }
    handle.close();
    Ok(())
}
