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
//! Two lines are commands: `/ping` sends a ping and reports its pong, and
//! `/close [CODE [REASON]]` closes the connection. End of input closes with 1000.

use std::io::BufRead;

use wsportal::{Client, Error, Message, Resource};

fn main() -> std::process::ExitCode {
    env_logger::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args
        .first()
        .cloned()
        .unwrap_or_else(|| "ws://127.0.0.1:9001/echo".into());
    // Errors are printed with their Display text, and a hint for the usual ones.
    match run(&url, &args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(hint) = hint(&e, &url) {
                eprintln!("hint: {hint}");
            }
            std::process::ExitCode::FAILURE
        }
    }
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
        _ => None,
    }
}

fn run(url: &str, args: &[String]) -> Result<(), Error> {
    let client = Client::new(url);
    let ca = args.iter().skip_while(|a| *a != "--ca").nth(1);
    #[cfg(feature = "tls")]
    let client = match ca {
        Some(path) => client.add_root_certificate(std::fs::read(path)?),
        None => client,
    };
    #[cfg(not(feature = "tls"))]
    if ca.is_some() {
        return Err(Error::InvalidInput(
            "--ca needs the tls feature: cargo run --features tls --example client ...",
        ));
    }
    // The hooks run on the client's own reader thread while this one reads stdin.
    let ws = client.connect_with(
        Resource::new()
            .on_message(|_, msg| match msg {
                Message::Text(text) => println!("< {text}"),
                Message::Binary(data) => println!("< {} bytes of binary", data.len()),
            })
            .on_close(|_, code, reason| println!("closed: {code} {reason}"))
            .on_error(|_, err| eprintln!("error: {err}")),
    )?;
    println!("connected to {url}; type messages, /ping, /close or Ctrl-D");

    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line == "/ping" {
            let sent = ws.ping(b"client", |_| println!("< pong"));
            if sent.is_err() {
                break;
            }
        } else if let Some(args) = line.strip_prefix("/close") {
            let mut args = args.trim().splitn(2, ' ');
            let code = args.next().and_then(|c| c.parse().ok()).unwrap_or(1000);
            ws.close(code, args.next().unwrap_or(""));
            break;
        } else if ws.send_text(&line).is_err() {
            println!("the connection is closed");
            break;
        }
    }
    // Closes with 1000 if still open, waits for the close handshake, joins.
    ws.disconnect(1000, "bye");
    Ok(())
}
