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

use wsportal::{Error, EventSource};

const USAGE: &str = "usage: events URL [--proxy URL | --proxy-env] [--ca PATH]";

fn main() -> std::process::ExitCode {
    env_logger::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let source = match parse(&args) {
        Ok(s) => s,
        Err(why) if why.is_empty() => {
            println!("{USAGE}");
            return std::process::ExitCode::SUCCESS;
        }
        Err(why) => {
            eprintln!("error: {why}\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(&source) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn parse(args: &[String]) -> Result<EventSource, String> {
    let mut rest = args.iter();
    let url = match rest.next() {
        Some(help) if help == "-h" || help == "--help" => return Err(String::new()),
        Some(flag) if flag.starts_with('-') => {
            return Err(format!("the URL comes first, not {flag}"))
        }
        Some(url) => url,
        None => return Err("the URL is missing".into()),
    };
    let mut source = EventSource::new(url);
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--proxy" => source = source.proxy(rest.next().ok_or("--proxy needs a URL")?),
            "--proxy-env" => source = source.proxy_from_env(),
            "--ca" => {
                let path = rest.next().ok_or("--ca needs a PATH")?;
                #[cfg(feature = "tls")]
                {
                    let pem = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
                    source = source.add_root_certificate(pem);
                }
                #[cfg(not(feature = "tls"))]
                return Err(format!("--ca {path} needs the tls feature"));
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
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
