//! Pushing from a background thread, like reblocks-websocket's counter
//! widget without a framework: every client of `/counter` gets the counter
//! and the time once a second, whether or not it ever sends anything.
//!
//!     cargo run --example push -- 127.0.0.1:9004
//!
//! Nobody connected is the normal case for such a loop: its broadcaster is
//! made with `allow_nobody`, so a push to nobody is `Ok(0)` and `Err` means
//! a real failure. The loop pauses on the server's `Closer`, so it ends as
//! soon as the server closes (`--seconds N` closes it after N seconds).

#[path = "support/cli.rs"]
mod cli;
#[path = "support/signals.rs"]
mod signals;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wsportal::{Error, Resource, Server};

/// The command line (anything else: this line, and exit status 2).
const USAGE: &str = "push [ADDR] [--seconds N]";

fn main() -> std::process::ExitCode {
    cli::init_logs();
    cli::finish(USAGE, run(&cli::args()))
}

/// Serves on `args[0]` (default 127.0.0.1:9004); `--seconds N` stops it cleanly after N seconds.
pub fn run(argv: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let args = cli::Args::parse(argv, 1, &["--seconds"])?;
    let seconds = args.seconds()?;
    let addr = args.positional(0).unwrap_or("127.0.0.1:9004");

    let mut server = Server::new();
    // The resource needs no message hook: the server only pushes.
    server.define_resource("/counter", Resource::new());
    let handle = server.start(addr)?;
    // From now on (before anyone learns where it listens), SIGINT (Ctrl-C)
    // or SIGTERM (systemd, docker stop) asks it to close.
    let _signals = signals::close_on_signals(handle.closer())?;
    println!("listening on ws://{}/counter", handle.local_addr());

    // A broadcaster and a closer are cheap handles that any thread may own.
    let (push, closer) = (handle.broadcaster().allow_nobody(), handle.closer());
    let pusher = std::thread::spawn(move || -> Result<(), Error> {
        // Once a second until the server closes.
        for counter in 0u64.. {
            if closer.wait_timeout(Duration::from_secs(1)) {
                break;
            }
            let secs = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let text = format!("{{\"counter\":{counter},\"unix_time\":{secs}}}");
            let n = push.to_resource("/counter", text)?; // Ok(0) when nobody listens
            log::debug!("pushed {counter} to {n} clients");
        }
        Ok(())
    });
    // Serve until SIGINT (Ctrl-C) or SIGTERM (systemd, docker stop), or for
    // `--seconds N`; then stop cleanly: 1001 to every client, threads joined.
    match seconds {
        Some(d) => _ = handle.wait_timeout(d),
        None => handle.wait(),
    }
    handle.close();
    pusher.join().expect("the pusher does not panic")?;
    Ok(())
}
