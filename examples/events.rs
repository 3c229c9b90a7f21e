//! A blocking `EventSource`: prints each event of a `text/event-stream` as
//! it arrives, reconnecting after the server's `retry:` (with jitter) and
//! resuming with `Last-Event-ID`. Try it against the demo:
//!
//!     cargo run --example demo &
//!     cargo run --example events -- http://127.0.0.1:8080/events
//!
//! Kill and restart the demo to see it reconnect. `--proxy URL` goes through
//! an HTTP CONNECT proxy, `--proxy-env` takes it from the environment as curl
//! does; with the `tls` feature, `https://` works and `--ca PATH` trusts a
//! PEM certificate.

#[path = "support/cli.rs"]
mod cli;

use wsportal::{Error, EventSource};

const USAGE: &str = "events URL [--proxy URL | --proxy-env] [--ca PATH]";

fn main() -> std::process::ExitCode {
    env_logger::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match parse(&args) {
        Err(why) => Err(cli::Usage(why).into()),
        Ok(source) => run(&source).map_err(Into::into),
    };
    cli::finish(USAGE, result)
}

/// Parses the command line; `Err` says what is wrong (empty for `--help`).
fn parse(args: &[String]) -> Result<EventSource, String> {
    let args = cli::Args::parse_with_flags(args, 1, &["--proxy", "--ca"], &["--proxy-env"])
        .map_err(|u| u.0)?;
    let url = args.positional(0).ok_or("the URL is missing")?;
    let mut source = EventSource::new(url);
    if let Some(proxy) = args.value("--proxy") {
        source = source.proxy(proxy);
    }
    if args.flag("--proxy-env") {
        source = source.proxy_from_env();
    }
    if let Some(path) = args.value("--ca") {
        #[cfg(feature = "tls")]
        {
            let pem = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
            source = source.add_root_certificate(pem);
        }
        #[cfg(not(feature = "tls"))]
        return Err(format!("--ca {path} needs the tls feature"));
    }
    Ok(source)
}

fn run(source: &EventSource) -> Result<(), Error> {
    let events = source.connect()?;
    println!("connected; Ctrl-C stops");
    // Another thread could stop it with `events.closer().close()`.
    for event in events {
        let event = event?;
        let id = match event.last_event_id.as_str() {
            "" => String::new(),
            id => format!(" (id {id})"),
        };
        println!("{}{id}: {}", event.event, event.data);
    }
    println!("stopped: the server answered 204");
    Ok(())
}
