//! Pushing from a background thread, like reblocks-websocket's counter
//! widget without a framework: every client of `/counter` gets the counter
//! and the time once a second, whether or not it ever sends anything.
//!
//!     cargo run --example push -- 127.0.0.1:9004
//!
//! When nobody is connected the push fails with `Error::NoConnections`,
//! which the loop simply notes and ignores.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wsportal::{Error, Resource, Server};

fn main() -> Result<(), Error> {
    env_logger::init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9004".into());

    let mut server = Server::new();
    // The resource needs no message hook: the server only pushes.
    server.define_resource("/counter", Resource::new());
    let handle = server.start(&addr)?;
    println!("listening on ws://{}/counter", handle.local_addr());

    // A broadcaster is a cheap handle that any thread may own.
    let push = handle.broadcaster();
    for counter in 0u64.. {
        std::thread::sleep(Duration::from_secs(1));
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let text = format!("{{\"counter\":{counter},\"unix_time\":{secs}}}");
        match push.to_resource("/counter", text) {
            Ok(n) => log::debug!("pushed {counter} to {n} clients"),
            Err(Error::NoConnections(_)) => log::debug!("nobody to push {counter} to"),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
