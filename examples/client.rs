//! An interactive client: connects, sends each line typed on stdin as a text
//! message, and prints whatever arrives. Try it against the echo example:
//!
//!     cargo run --example echo &
//!     cargo run --example client -- ws://127.0.0.1:9001/echo
//!
//! With the `tls` feature it speaks `wss://` too; `--ca PATH` trusts the PEM
//! certificate(s) in PATH besides the bundled roots (a self-signed server):
//!
//!     cargo run --features tls --example client -- wss://localhost:9443/echo --ca cert.pem
//!
//! `--proxy http://[user:password@]host:port` goes through an HTTP CONNECT
//! proxy (or `socks5://`, `socks5h://` a SOCKS5 one; TLS inside the tunnel
//! for `wss://`); `--proxy-env` takes it from
//! `https_proxy`/`http_proxy`/`all_proxy` and `no_proxy`, as curl does.
//!
//! `--reconnect` keeps the connection: when the server goes away the client
//! connects again with backoff (lines typed meanwhile fail with a message),
//! and says when it is back.
//!
//! Two lines are commands: `/ping` sends a ping and reports its pong, and
//! `/close [CODE [REASON]]` closes the connection. End of input closes with 1000.

#[path = "support/cli.rs"]
mod cli;

use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wsportal::{Client, ClientHandle, Error, Message, Reconnect, Resource};

const USAGE: &str = "client [URL] [--ca PATH] [--reconnect] [--proxy URL | --proxy-env]";

/// The command line, parsed.
pub(crate) struct Options {
    pub(crate) url: String,
    pub(crate) ca: Option<String>,
    pub(crate) reconnect: bool,
    pub(crate) proxy: Option<String>,
    pub(crate) proxy_env: bool,
}

/// Parses the command line; `Err` says what is wrong (empty for `--help`).
pub(crate) fn parse(args: &[String]) -> Result<Options, String> {
    let flags = ["--reconnect", "--proxy-env"];
    let args =
        cli::Args::parse_with_flags(args, 1, &["--ca", "--proxy"], &flags).map_err(|u| u.0)?;
    let options = Options {
        url: args
            .positional(0)
            .unwrap_or("ws://127.0.0.1:9001/echo")
            .to_owned(),
        ca: args.value("--ca").map(str::to_owned),
        reconnect: args.flag("--reconnect"),
        proxy: args.value("--proxy").map(str::to_owned),
        proxy_env: args.flag("--proxy-env"),
    };
    if options.ca.is_some() && !options.url.starts_with("wss://") {
        return Err("--ca PATH is for wss:// URLs".into());
    }
    Ok(options)
}

fn main() -> std::process::ExitCode {
    env_logger::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match parse(&args) {
        Err(why) => Err(cli::Usage(why).into()),
        // Errors are printed with their Display text, and a hint for the usual ones.
        Ok(options) => run(&options).map_err(|e| match hint(&e, &options.url) {
            Some(hint) => format!("{e}\nhint: {hint}").into(),
            None => e.into(),
        }),
    };
    cli::finish(USAGE, result)
}

/// One line on what to do about the usual first-run errors.
fn hint(e: &Error, url: &str) -> Option<String> {
    match e {
        Error::Http { status, body, .. } => {
            let body = String::from_utf8_lossy(body);
            Some(format!(
                "the server answered {status} ({}) instead of accepting the WebSocket: \
                 is the path in {url} one of its resources?",
                body.trim()
            ))
        }
        Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => Some(format!(
            "nothing is listening at {url}; start a server first, e.g. `cargo run --example echo`"
        )),
        Error::Timeout("connect") => Some(format!("no answer from {url}: is the address right?")),
        Error::Proxy { status: 407 } => {
            Some("the proxy wants credentials: --proxy http://user:password@host:port".into())
        }
        _ => None,
    }
}

/// The hooks: they run on the client's own reader thread while this one
/// reads stdin.
fn hooks() -> Resource {
    Resource::new()
        .on_message(|_, msg| match msg {
            Message::Text(text) => println!("< {text}"),
            Message::Binary(data) => println!("< {} bytes of binary", data.len()),
        })
        .on_close(|_, code, reason| println!("closed: {code} {reason}"))
        .on_error(|_, err| eprintln!("error: {err}"))
}

fn run(options: &Options) -> Result<(), Error> {
    let url = &options.url;
    let mut client = Client::new(url);
    if let Some(proxy) = &options.proxy {
        client = client.proxy(proxy);
    } else if options.proxy_env {
        client = client.proxy_from_env();
    }
    #[cfg(feature = "tls")]
    let client = match &options.ca {
        Some(path) => client.add_root_certificate(std::fs::read(path)?),
        None => client,
    };
    #[cfg(not(feature = "tls"))]
    if options.ca.is_some() {
        return Err(Error::InvalidInput(
            "--ca needs the tls feature: cargo run --features tls --example client ...",
        ));
    }
    if options.reconnect {
        return run_reconnecting(client, url);
    }
    let ws = client.connect_with(hooks())?;
    println!("connected to {url}; type messages, /ping, /close or Ctrl-D");
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        match command(&ws, &line) {
            Some(Ok(())) => {}
            Some(Err(())) | None => break,
        }
        if line != "/ping" && ws.send_text(&line).is_err() {
            println!("the connection is closed");
            break;
        }
    }
    // Closes with 1000 if still open, waits for the close handshake, joins.
    ws.disconnect(1000, "bye");
    Ok(())
}

/// Runs `/ping` or `/close`: `None` after a close, `Some(Err)` when the
/// connection is gone; `Some(Ok)` for other lines.
fn command(ws: &ClientHandle, line: &str) -> Option<Result<(), ()>> {
    if line == "/ping" {
        return Some(ws.ping(b"client", |_| println!("< pong")).map_err(|_| ()));
    }
    match close_command(line) {
        Some(Ok((code, reason))) => {
            ws.close(code, reason);
            None
        }
        Some(Err(e)) => {
            println!("{e}");
            Some(Ok(()))
        }
        None => Some(Ok(())),
    }
}

/// `/close`, `/close CODE` or `/close CODE REASON` (not `/closed`): the
/// code and reason, or what is wrong with them; `None` for other lines.
pub(crate) fn close_command(line: &str) -> Option<Result<(u16, &str), &'static str>> {
    let args = match line.strip_prefix("/close")? {
        "" => return Some(Ok((1000, ""))),
        rest => rest.strip_prefix(' ')?,
    };
    let (code, reason) = args.split_once(' ').unwrap_or((args, ""));
    Some(match code.parse() {
        Ok(code) => Ok((code, reason)),
        Err(_) => Err("usage: /close [CODE [REASON]] (CODE a number, e.g. 1000)"),
    })
}

/// `--reconnect`: the same, through a [`wsportal::Reconnecting`] client.
fn run_reconnecting(client: Client, url: &str) -> Result<(), Error> {
    // When the last connection was lost, to report how long it was away.
    let lost = Arc::new(Mutex::new(None::<Instant>));
    let (on_open, on_close, name) = (lost.clone(), lost, url.to_owned());
    let hooks = hooks()
        .on_open(move |_| match on_open.lock().map(|mut l| l.take()) {
            Ok(Some(when)) => println!("reconnected to {name} after {:?}", when.elapsed()),
            _ => println!("connected to {name}; type messages, /ping, /close or Ctrl-D"),
        })
        .on_close(move |_, code, reason| {
            println!("closed: {code} {reason}");
            if let Ok(mut l) = on_close.lock() {
                *l = Some(Instant::now());
            }
        });
    let ws = client.reconnect(Reconnect::new()).reconnecting(hooks)?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        match close_command(&line) {
            // A close asked for here is final: no reconnect.
            Some(Ok((code, reason))) => {
                ws.close(code, reason);
                break;
            }
            Some(Err(e)) => {
                println!("{e}");
                continue;
            }
            None => {}
        }
        if line == "/ping" {
            match ws.current() {
                Some(current) => {
                    let _ = command(&current, &line);
                }
                None => println!("not connected (reconnecting): no ping sent"),
            }
            continue;
        }
        match ws.send_text(&line) {
            Ok(()) => {}
            Err(Error::NotConnected) => println!("not connected (reconnecting): line dropped"),
            Err(e) => {
                println!("stopped: {e}");
                break;
            }
        }
    }
    ws.close(1000, "bye");
    Ok(())
}
