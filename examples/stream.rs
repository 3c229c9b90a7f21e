//! A producer streaming to one client at the client's pace. Each client of
//! `/log` gets a generated log of 100,000 lines, sent with `send_timeout`
//! (the producer waits while the client's backlog is full, instead of the
//! client being closed as too slow), then one 8 MiB report written piece by
//! piece with a `MessageWriter` (one message, sent in fragments).
//!
//!     cargo run --example stream -- 127.0.0.1:9005
//!
//! Try it with a slow reader: the producer slows down, nobody is dropped.

use std::io::Write;
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

fn main() -> Result<(), Error> {
    env_logger::init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9005".into());
    let mut server = Server::new();
    server.define_resource(
        "/log",
        Resource::new().on_open(|ws| {
            // Hooks run on the connection's thread: produce on another one.
            let ws = ws.clone();
            std::thread::spawn(move || {
                if let Err(e) = produce(&ws) {
                    log::debug!("producer for connection {} ended: {e}", ws.id());
                }
            });
        }),
    );
    let handle = server.start(&addr)?;
    println!("listening on ws://{}/log", handle.local_addr());
    // Serve until the process is stopped.
    loop {
        std::thread::park();
    }
}
