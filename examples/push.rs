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

#[path = "support/signals.rs"]
mod signals;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wsportal::{Error, Resource, Server};

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

/// Serves on `args[0]` (default 127.0.0.1:9004); `--seconds N` stops it cleanly after N seconds.
pub fn run(args: &[String]) -> Result<(), Error> {
    let addr = args.first().map_or("127.0.0.1:9004", String::as_str);

    let mut server = Server::new();
    // The resource needs no message hook: the server only pushes.
    server.define_resource("/counter", Resource::new());
    let handle = server.start(addr)?;
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
    pusher.join().expect("the pusher does not panic")
}
