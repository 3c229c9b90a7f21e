//! A pure echo server: every text or binary message sent to `/` or `/echo`
//! comes straight back. This is what the Autobahn conformance suite drives.
//!
//!     cargo run --example echo -- 127.0.0.1:9001
//!
//! `RUST_LOG=debug` shows each connection open and close.

use wsportal::{Config, Resource, Server};

fn main() -> Result<(), wsportal::Error> {
    env_logger::init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());

    // Keepalive pings would be noise to a conformance suite; switch them off.
    let mut server = Server::with_config(Config::default().ping_interval(None));
    for path in ["/", "/echo"] {
        // Send each message back as it came: text as text, binary as binary.
        server.define_resource(
            path,
            Resource::new().on_message(|ws, msg| {
                let _ = ws.send(msg);
            }),
        );
    }

    let handle = server.start(&addr)?;
    println!("listening on ws://{}", handle.local_addr());
    // Serve until the process is stopped (Ctrl-C).
    loop {
        std::thread::park();
    }
}
