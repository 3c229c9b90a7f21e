//! A producer streaming to one client at the client's pace. Each client of
//! `/log` gets a generated log of 100,000 lines, sent with `send_timeout`
//! (the producer waits while the client's backlog is full, instead of the
//! client being closed as too slow), then one 8 MiB report written piece by
//! piece with a `MessageWriter` (one message, sent in fragments).
//!
//!     cargo run --example stream -- 127.0.0.1:9005
//!     cargo run --example stream -- 127.0.0.1:9005 --seconds 60   # then stops cleanly
//!
//! Try it with a slow reader: the producer slows down, nobody is dropped.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/signals.rs"]
mod signals;

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use wsportal::{Connection, Error, Resource, SendTimeoutError, Server};

/// How long a producer waits for room before giving up on its client.
const PATIENCE: Duration = Duration::from_secs(30);

fn produce(ws: &Connection) -> Result<(), Error> {
    for n in 0..100_000u32 {
        let line = format!("{n:06} INFO request served in {} µs", n % 997);
        match ws.send_timeout(line, PATIENCE) {
            Ok(()) => {}
            Err(SendTimeoutError::Timeout(_)) => {
                ws.close(1008, "not reading");
                return Ok(());
            }
            // The client left: nothing more to do.
            Err(SendTimeoutError::Closed(_)) => return Ok(()),
        }
    }
    // One large message, never whole in memory: 128 pieces of 64 KiB.
    let mut report = ws.stream_binary()?;
    for piece in 0..128u8 {
        report.write_all(&[piece; 64 << 10])?;
    }
    report.finish()?;
    // Wait until everything is handed to the kernel before saying goodbye.
    ws.flush(PATIENCE)?;
    ws.close(1000, "done");
    Ok(())
}

/// The command line (anything else: this line, and exit status 2).
const USAGE: &str = "stream [ADDR] [--seconds N]";

fn main() -> std::process::ExitCode {
    cli::init_logs();
    cli::finish(USAGE, run(&cli::args()))
}

/// Serves on `args[0]` (default 127.0.0.1:9005); `--seconds N` stops it
/// cleanly after N seconds.
pub fn run(argv: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let args = cli::Args::parse(argv, 1, &["--seconds"])?;
    let seconds = args.seconds()?;
    let addr = args.positional(0).unwrap_or("127.0.0.1:9005");
    // The producers' threads, joined once the server has closed (its 1001
    // ends every `send_timeout`, so they finish).
    let producers: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
    let spawned = Arc::clone(&producers);
    let mut server = Server::new();
    server.define_resource(
        "/log",
        Resource::new().on_open(move |ws| {
            // Hooks run on the connection's thread: produce on another one.
            let ws = ws.clone();
            let producer = std::thread::spawn(move || {
                if let Err(e) = produce(&ws) {
                    log::debug!("producer for connection {} ended: {e}", ws.id());
                }
            });
            let mut all = spawned.lock().unwrap_or_else(PoisonError::into_inner);
            all.retain(|t| !t.is_finished());
            all.push(producer);
        }),
    );
    let handle = server.start(addr)?;
    // From now on (before anyone learns where it listens), SIGINT (Ctrl-C)
    // or SIGTERM (systemd, docker stop) asks it to close.
    let _signals = signals::close_on_signals(handle.closer())?;
    println!("listening on ws://{}/log", handle.local_addr());
    // Serve until SIGINT (Ctrl-C) or SIGTERM, or for `--seconds N`; then
    // stop cleanly: 1001 to every client, every thread joined.
    match seconds {
        Some(d) => _ = handle.wait_timeout(d),
        None => handle.wait(),
    }
    handle.close();
    let finished = std::mem::take(&mut *producers.lock().unwrap_or_else(PoisonError::into_inner));
    for t in finished {
        let _ = t.join();
    }
    Ok(())
}
