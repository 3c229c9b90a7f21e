//! The server `scripts/soak.sh` runs: the demo's endpoints with tight limits,
//! so every defence fires within seconds under the soak's load.
//!
//!     cargo run --release --example soak -- 127.0.0.1:0 [--seconds N]
//!
//! - `/echo`    WebSocket: every message comes straight back
//! - `/chat`    WebSocket: `welcome` on open, then every text message goes to
//!   every chat client
//! - `/events`  Server-Sent Events: `n` (id = a counter) every 50 ms, with a
//!   history of 1000 so a client reconnecting with `Last-Event-ID` gets what
//!   it missed
//! - `/`        a page (the soak's final "does it still answer" check)
//!
//! Limits: messages and frames up to 1 MiB (more is 1009), heads up to
//! 8 KiB within 2 s (slowloris heads are dropped), keepalive pings every
//! second with 5 s to answer (silent clients are reaped), a 256 KiB backlog
//! and 5 s write timeout (clients that never read are closed with 1008).
//! (The 5 s leave room for a load generator starved of CPU on a shared
//! machine: its reading clients must not be taken for silent ones.)
//! It prints `listening on ADDR` once it listens.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/signals.rs"]
mod signals;

use std::time::Duration;

use wsportal::{Config, Event, EventStream, Message, Resource, Server};

/// The command line (anything else: this line, and exit status 2).
const USAGE: &str = "soak [ADDR] [--seconds N]";

fn main() -> std::process::ExitCode {
    cli::init_logs();
    cli::finish(USAGE, run(&cli::args()))
}

/// Serves on `args[0]` (default 127.0.0.1:0); `--seconds N` stops it cleanly after N seconds.
pub fn run(argv: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let args = cli::Args::parse(argv, 1, &["--seconds"])?;
    let seconds = args.seconds()?;
    let addr = args.positional(0).unwrap_or("127.0.0.1:0");
    let config = Config::default()
        .max_message_size(1 << 20)
        .max_frame_size(1 << 20)
        .handshake_timeout(Duration::from_secs(2))
        .ping_interval(Some(Duration::from_secs(1)))
        .ping_timeout(Duration::from_secs(5))
        .max_backlog(256 << 10)
        .write_timeout(Duration::from_secs(5))
        .close_timeout(Duration::from_secs(2));

    let events = EventStream::new().history(1000);
    let publisher = events.publisher().allow_nobody();
    let mut server = Server::with_config(config);
    server.define_page("/", "text/plain", "soak\n");
    server.define_event_stream("/events", events);
    server.define_resource(
        "/echo",
        Resource::new().on_message(|ws, msg| {
            let _ = ws.send(msg);
        }),
    );
    server.define_resource(
        "/chat",
        // The welcome says "you are in the room": broadcasts reach a
        // connection from `on_open` on, which a client cannot see in the 101.
        Resource::new()
            .on_open(|ws| {
                let _ = ws.send(Message::Text("welcome".into()));
            })
            .on_message(|ws, msg| {
                if let Message::Text(_) = &msg {
                    let _ = ws.broadcaster().to_resource("/chat", msg);
                }
            }),
    );
    let handle = server.start(addr)?;
    // From now on (before anyone learns where it listens), SIGINT (Ctrl-C)
    // or SIGTERM (systemd, docker stop) asks it to close.
    let _signals = signals::close_on_signals(handle.closer())?;
    println!("listening on {}", handle.local_addr());

    let closer = handle.closer();
    let ticker = std::thread::spawn(move || {
        let mut n: u64 = 0;
        while !closer.wait_timeout(Duration::from_millis(50)) {
            n += 1;
            let _ = publisher.send(&Event::new(n.to_string()).name("n").id(n.to_string()));
        }
    });
    match seconds {
        Some(d) => _ = handle.wait_timeout(d),
        None => handle.wait(),
    }
    handle.close();
    ticker.join().expect("the ticker does not panic");
    Ok(())
}
