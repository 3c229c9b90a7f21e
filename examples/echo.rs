//! A pure echo server: every text or binary message sent to `/` or `/echo`
//! comes straight back. This is what the Autobahn conformance suite drives.
//!
//!     cargo run --example echo -- 127.0.0.1:9001
//!     cargo run --example echo -- 127.0.0.1:9001 --seconds 60   # then stops cleanly
//!     cargo run --features tls --example echo -- 127.0.0.1:9443 --cert cert.pem --key key.pem
//!
//! `--yield-after MICROS` (or `off`) sets `Config::yield_after` (the
//! benchmarks' turns between busy connections; DEPLOYING.md).
//!
//! `RUST_LOG=debug` shows each connection open and close.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/signals.rs"]
mod signals;

use std::time::Duration;

use wsportal::{Config, Resource, Server, ServerHandle};

/// The command line (anything else: this line, and exit status 2).
const USAGE: &str = "echo [ADDR] [--seconds N] [--cert PATH --key PATH] [--yield-after MICROS|off]";

fn main() -> std::process::ExitCode {
    cli::init_logs();
    cli::finish(USAGE, run(&cli::args()))
}

/// Serves on `args[0]` (default 127.0.0.1:9001); `--seconds N` stops it
/// cleanly after N seconds; `--cert PATH --key PATH` serve wss:// instead.
pub fn run(argv: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let args = cli::Args::parse(argv, 1, &["--seconds", "--cert", "--key", "--yield-after"])?;
    let seconds = args.seconds()?;
    let addr = args.positional(0).unwrap_or("127.0.0.1:9001");
    // Keepalive pings would be noise to a conformance suite; switch them off.
    let mut config = Config::default().ping_interval(None);
    if args.value("--yield-after") == Some("off") {
        config = config.yield_after(None);
    } else if let Some(micros) = args.parsed("--yield-after")? {
        config = config.yield_after(Some(Duration::from_micros(micros)));
    }
    let mut server = Server::with_config(config);
    for path in ["/", "/echo"] {
        // Send each message back as it came: text as text, binary as binary.
        server.define_resource(
            path,
            Resource::new().on_message(|ws, msg| {
                let _ = ws.send(msg);
            }),
        );
    }

    let (handle, scheme) = start(&server, addr, &args)?;
    // From now on (before anyone learns where it listens), SIGINT (Ctrl-C)
    // or SIGTERM (systemd, docker stop) asks it to close.
    let _signals = signals::close_on_signals(handle.closer())?;
    println!("listening on {scheme}://{}", handle.local_addr());
    // Serve until SIGINT (Ctrl-C) or SIGTERM (systemd, docker stop), or for
    // `--seconds N`; then stop cleanly: 1001 to every client, threads joined.
    match seconds {
        Some(d) => _ = handle.wait_timeout(d),
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
    args: &cli::Args,
) -> Result<(ServerHandle, &'static str), Box<dyn std::error::Error>> {
    match (args.value("--cert"), args.value("--key")) {
        (None, None) => Ok((server.start(addr)?, "ws")),
        #[cfg(feature = "tls")]
        (Some(cert), Some(key)) => {
            let tls = wsportal::TlsConfig::from_pem_files(cert, key)?;
            Ok((server.start_tls(addr, tls)?, "wss"))
        }
        #[cfg(not(feature = "tls"))]
        (Some(_), Some(_)) => Err(wsportal::Error::InvalidInput(
            "--cert and --key need the tls feature: cargo run --features tls --example ...",
        )
        .into()),
        _ => Err(cli::Usage("give both --cert PATH and --key PATH".into()).into()),
    }
}
