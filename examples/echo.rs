//! A pure echo server: every text or binary message sent to `/` or `/echo`
//! comes straight back. This is what the Autobahn conformance suite drives.
//!
//!     cargo run --example echo -- 127.0.0.1:9001
//!     cargo run --example echo -- 127.0.0.1:9001 --seconds 60   # then stops cleanly
//!     cargo run --features tls --example echo -- 127.0.0.1:9443 --cert cert.pem --key key.pem
//!
//! `RUST_LOG=debug` shows each connection open and close.

#[path = "support/signals.rs"]
mod signals;

use std::time::Duration;

use wsportal::{Config, Resource, Server, ServerHandle};

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

/// Serves on `args[0]` (default 127.0.0.1:9001); `--seconds N` stops it
/// cleanly after N seconds; `--cert PATH --key PATH` serve wss:// instead.
pub fn run(args: &[String]) -> Result<(), wsportal::Error> {
    let addr = args.first().map_or("127.0.0.1:9001", String::as_str);

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

    let (handle, scheme) = start(&server, addr, args)?;
    println!("listening on {scheme}://{}", handle.local_addr());
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

/// Starts `server` on `addr`: over TLS when `args` hold `--cert PATH --key
/// PATH` (PEM files; the `tls` feature), plain otherwise. Returns the handle
/// and the scheme clients use (`ws` or `wss`).
fn start(
    server: &Server,
    addr: &str,
    args: &[String],
) -> Result<(ServerHandle, &'static str), wsportal::Error> {
    let flag = |name: &str| args.iter().skip_while(|a| *a != name).nth(1);
    match (flag("--cert"), flag("--key")) {
        (None, None) => Ok((server.start(addr)?, "ws")),
        #[cfg(feature = "tls")]
        (Some(cert), Some(key)) => {
            let tls = wsportal::TlsConfig::from_pem_files(cert, key)?;
            Ok((server.start_tls(addr, tls)?, "wss"))
        }
        #[cfg(not(feature = "tls"))]
        (Some(_), Some(_)) => Err(wsportal::Error::InvalidInput(
            "--cert and --key need the tls feature: cargo run --features tls --example ...",
        )),
        _ => Err(wsportal::Error::InvalidInput(
            "give both --cert PATH and --key PATH",
        )),
    }
}
