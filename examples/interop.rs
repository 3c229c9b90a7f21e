//! Both halves of the interop checks that `scripts/interop.sh` runs against
//! other implementations (Python `websockets`, Node `ws`).
//!
//!     cargo run --example interop -- server 127.0.0.1:0
//!     cargo run --example interop -- client ws://127.0.0.1:PORT/interop
//!
//! The server echoes every message (text as text, binary as binary) and
//! obeys a few text commands, as the peer scripts in `scripts/interop/` do:
//!
//! - `cmd:protocol` answers the agreed subprotocol (or `none`);
//! - `cmd:header NAME` answers that request header (or `-`);
//! - `cmd:ping` pings the client and answers `pong ok` once the pong is back;
//! - `cmd:close CODE REASON` closes with that code and reason;
//! - `cmd:lastclose` answers `CODE REASON` of the previous connection's close;
//! - `cmd:frag N SIZE` (peer servers only: wsportal sends no fragments) sends
//!   a text and a binary message of SIZE bytes, each in N fragments.
//!
//! The server also serves its statistics at `/metrics` (Prometheus text),
//! which `scripts/interop/metrics.py` parses with `prometheus_client`.
//!
//! With `INTEROP_CERT` (and, for the server, `INTEROP_KEY`) set to PEM files
//! (feature `tls`), the server serves `wss://` with them and the client
//! trusts that certificate for `wss://` URLs.
//!
//! The server prefers the subprotocols `chat.v2`, then `chat.v1`. The client
//! runs every check against such a server and exits non-zero on the first
//! mismatch, saying what differed.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/signals.rs"]
mod signals;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use wsportal::{Client, ClientHandle, Config, Message, Resource, Server};

/// Every wait is bounded by this.
const WAIT: Duration = Duration::from_secs(10);

/// The command line (anything else: this line, and exit status 2).
const USAGE: &str = "interop server ADDR [--seconds N] | interop client URL";

fn main() -> std::process::ExitCode {
    cli::init_logs();
    let argv = cli::args();
    let result: Outcome = match argv.first().map(String::as_str) {
        Some("server") => serve(&argv[1..]),
        Some("client") => match &argv[1..] {
            [url] => check(url),
            _ => Err(cli::Usage("client takes one URL".into()).into()),
        },
        _ => Err(cli::Usage("server or client?".into()).into()),
    };
    if matches!(&result, Err(e) if !e.is::<cli::Usage>()) {
        eprint!("interop: FAIL: ");
    }
    cli::finish(USAGE, result)
}

type Outcome = Result<(), Box<dyn std::error::Error>>;

fn serve(argv: &[String]) -> Outcome {
    let args = cli::Args::parse(argv, 1, &["--seconds"])?;
    let seconds = args.seconds()?;
    let Some(addr) = args.positional(0) else {
        return Err(cli::Usage("server needs an ADDR".into()).into());
    };
    let last_close = Arc::new(Mutex::new(String::from("none")));
    let (seen, remember) = (Arc::clone(&last_close), Arc::clone(&last_close));
    let resource = Resource::new()
        .protocols(["chat.v2", "chat.v1"])
        .on_message(move |ws, msg| {
            let Some(cmd) = msg.as_text().and_then(|t| t.strip_prefix("cmd:")) else {
                let _ = ws.send(msg);
                return;
            };
            let (name, arg) = cmd.split_once(' ').unwrap_or((cmd, ""));
            match name {
                "protocol" => {
                    let _ = ws.send_text(ws.protocol().unwrap_or("none"));
                }
                "header" => {
                    let _ = ws.send_text(ws.header(arg).unwrap_or("-"));
                }
                "ping" => {
                    let _ = ws.ping(b"srv-ping", |ws| {
                        let _ = ws.send_text("pong ok");
                    });
                }
                "close" => {
                    let (code, reason) = arg.split_once(' ').unwrap_or((arg, ""));
                    ws.close(code.parse().unwrap_or(1000), reason);
                }
                "lastclose" => {
                    let text = seen.lock().clone();
                    let _ = ws.send_text(&text);
                }
                _ => {
                    let _ = ws.send_text(&format!("unknown command {name}"));
                }
            }
        })
        .on_close(move |_, code, reason| *remember.lock() = format!("{code} {reason}"));
    let mut server = Server::with_config(Config::default().ping_interval(None));
    server.define_resource("/interop", resource);
    server.define_metrics("/metrics"); // read by scripts/interop/metrics.py
    let (handle, scheme) = match (std::env::var("INTEROP_CERT"), std::env::var("INTEROP_KEY")) {
        #[cfg(feature = "tls")]
        (Ok(cert), Ok(key)) => {
            let tls = wsportal::TlsConfig::from_pem_files(cert, key)?;
            (server.start_tls(addr, tls)?, "wss")
        }
        #[cfg(not(feature = "tls"))]
        (Ok(_), Ok(_)) => return Err("INTEROP_CERT needs the tls feature".into()),
        _ => (server.start(addr)?, "ws"),
    };
    // From now on (before anyone learns where it listens), SIGINT (Ctrl-C)
    // or SIGTERM (systemd, docker stop) asks it to close.
    let _signals = signals::close_on_signals(handle.closer())?;
    println!("listening on {scheme}://{}", handle.local_addr());
    // Serve until SIGINT (Ctrl-C) or SIGTERM, or for `--seconds N`.
    match seconds {
        Some(d) => _ = handle.wait_timeout(d),
        None => handle.wait(),
    }
    handle.close();
    Ok(())
}

/// Fails with `what` unless `got == want`.
fn expect<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Outcome {
    if got != want {
        return Err(format!("{what}: expected {want:?}, got {got:?}").into());
    }
    println!("ok: {what}");
    Ok(())
}

fn text(ws: &ClientHandle) -> Result<String, Box<dyn std::error::Error>> {
    match ws.recv_timeout(WAIT)? {
        Message::Text(t) => Ok(t),
        Message::Binary(b) => Err(format!("expected text, got {} bytes of binary", b.len()).into()),
    }
}

fn connect(url: &str) -> Result<ClientHandle, wsportal::Error> {
    let client = Client::new(url);
    #[cfg(feature = "tls")]
    let client = match std::env::var("INTEROP_CERT") {
        Ok(cert) => client.add_root_certificate(std::fs::read(cert)?),
        Err(_) => client,
    };
    client
        .protocols(["nope", "chat.v1"])
        .header("X-Interop", "yes")
        .timeout(WAIT)
        .config(Config::default().ping_interval(None))
        .connect()
}

fn check(url: &str) -> Outcome {
    let ws = connect(url)?;
    expect("subprotocol agreed", ws.protocol(), Some("chat.v1"))?;
    ws.send_text("cmd:protocol")?;
    expect(
        "the server agrees on the subprotocol",
        text(&ws)?,
        "chat.v1".into(),
    )?;
    ws.send_text("cmd:header X-Interop")?;
    expect("the server saw our extra header", text(&ws)?, "yes".into())?;

    for msg in [
        Message::Text("héllo wörld ✓".into()),
        Message::Text(String::new()),
        Message::Binary(Vec::new()),
        Message::Binary((0..=255).collect()),
        Message::Text("x".repeat(70_000)),
        Message::Binary((0..4 << 20).map(|i: u32| (i % 253) as u8).collect()),
    ] {
        let what = format!("echo of a {} message of {} bytes", kind(&msg), msg.len());
        ws.send(msg.clone()).map_err(|_| "send failed")?;
        expect(&what, ws.recv_timeout(WAIT)?, msg)?;
    }

    ws.send_text("cmd:frag 10 100000")?;
    let want: String = (0..100_000u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    expect("a text message in 10 fragments", text(&ws)?, want)?;
    let want: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    expect(
        "a binary message in 10 fragments",
        ws.recv_timeout(WAIT)?,
        Message::Binary(want),
    )?;

    let (tx, rx) = crossbeam_channel::bounded(1);
    ws.ping(b"client-ping", move |_| {
        let _ = tx.send(());
    })?;
    expect(
        "our ping's pong callback ran",
        rx.recv_timeout(WAIT).is_ok(),
        true,
    )?;
    ws.send_text("cmd:ping")?;
    expect(
        "we answered the server's ping",
        text(&ws)?,
        "pong ok".into(),
    )?;

    let ended = ws.disconnect(4001, "interop bye");
    expect(
        "our close handshake",
        ended,
        Some((4001, "interop bye".into())),
    )?;
    let ws = connect(url)?;
    ws.send_text("cmd:lastclose")?;
    expect(
        "the server saw our close code and reason",
        text(&ws)?,
        "4001 interop bye".into(),
    )?;
    ws.send_text("cmd:close 4002 server bye")?;
    let ended = ws.wait_closed(WAIT);
    expect(
        "the server's close code and reason",
        ended,
        Some((4002, "server bye".into())),
    )?;
    println!("interop: all client checks passed against {url}");
    Ok(())
}

fn kind(msg: &Message) -> &'static str {
    match msg {
        Message::Text(_) => "text",
        Message::Binary(_) => "binary",
    }
}
