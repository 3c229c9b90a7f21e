//! A live log viewer: a thread tails a file and pushes each new line to
//!
//! - WebSocket clients of `/logs`, each with its own filter (`?filter=TEXT`
//!   to start with; send a text message to change it: only lines
//!   containing it come through);
//! - the event stream `/sse`, with ids, so a browser that reconnects gets
//!   the lines it missed (`/sse?filter=TEXT` filters, replay included);
//!
//! both behind a token (`?token=` or `Authorization: Bearer`), with a page at
//! `/` and counts at `/stats`.
//!
//!     cargo run --example logtail -- 127.0.0.1:8090 /var/log/syslog secret
//!     cargo run --example logtail -- 127.0.0.1:8090 app.log secret --seconds 60
//!
//! Then open http://127.0.0.1:8090/?token=secret. It stops cleanly after
//! `--seconds N`, or on SIGINT (Ctrl-C) or SIGTERM.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/signals.rs"]
mod signals;

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use wsportal::{Accept, Event, EventStream, Reject, Request, Resource, Response, Server};
use wsportal::{Closer, ServerHandle};

/// The command line (anything else: this line, and exit status 2).
const USAGE: &str = "logtail ADDR FILE TOKEN [--seconds N]";

fn main() -> std::process::ExitCode {
    cli::init_logs();
    cli::finish(USAGE, main_inner(&cli::args()))
}

fn main_inner(argv: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let args = cli::Args::parse(argv, 3, &["--seconds"])?;
    let seconds = args.seconds()?;
    let (Some(addr), Some(file), Some(token)) =
        (args.positional(0), args.positional(1), args.positional(2))
    else {
        return Err(cli::Usage("ADDR, FILE and TOKEN are required".into()).into());
    };
    let (handle, tail) = serve(addr, file.into(), token)?;
    // From now on (before anyone learns where it listens), SIGINT (Ctrl-C)
    // or SIGTERM (systemd, docker stop) asks it to close.
    let _signals = signals::close_on_signals(handle.closer())?;
    println!("listening on http://{}/?token={token}", handle.local_addr());
    // Serve for `--seconds N`, or until SIGINT (Ctrl-C) or SIGTERM.
    match seconds {
        Some(d) => _ = handle.wait_timeout(d),
        None => handle.wait(),
    }
    handle.close(); // 1001 to every client; the tail thread sees it too
    tail.join().expect("the tail thread does not panic");
    Ok(())
}

/// A WebSocket client's filter, changed by the messages it sends.
#[derive(Default)]
struct Filter(String);

/// Starts the server and the thread that tails `file` (from its current
/// end); both stop when the server closes.
pub fn serve(
    addr: &str,
    file: PathBuf,
    token: &str,
) -> Result<(ServerHandle, JoinHandle<()>), Box<dyn std::error::Error>> {
    let mut server = Server::new();
    let push = server.broadcaster().allow_nobody(); // usable before start
    let (t1, t2) = (token.to_owned(), token.to_owned());

    server.define_resource(
        "/logs",
        Resource::new()
            // `/logs?filter=TEXT` starts with that filter (as `/sse` does).
            .on_handshake(move |req| {
                let first = Filter(req.query_param("filter").unwrap_or_default());
                authorize(req, &t1).map(|accept| accept.state(first))
            })
            .on_message(|ws, msg| {
                let filter = msg.as_text().unwrap_or("").to_owned();
                let _ = ws.send_text(&format!("filter: {filter:?}"));
                ws.set_state(Filter(filter));
            }),
    );
    let events = EventStream::new()
        .history(1000) // a reconnecting browser resumes from Last-Event-ID
        .on_handshake(move |req| authorize(req, &t2))
        .filter(
            |client, event| match client.request().query_param("filter") {
                Some(f) => event.data().contains(&f),
                None => true,
            },
        );
    let publisher = events.publisher().allow_nobody();
    server.define_event_stream("/sse", events);

    let lines = Arc::new(AtomicU64::new(0));
    let (count, stats_push, stats_sse) = (lines.clone(), push.clone(), publisher.clone());
    server.define_handler("/stats", move |_req| {
        Response::json(format!(
            r#"{{"lines":{},"websocket_clients":{},"sse_clients":{}}}"#,
            count.load(Ordering::Relaxed),
            stats_push.resource_count("/logs"),
            stats_sse.client_count(),
        ))
    });
    server.define_page("/", "text/html; charset=utf-8", PAGE);

    let mut reader = BufReader::new(File::open(&file)?);
    reader.seek(SeekFrom::End(0))?;
    let handle = server.start(addr)?;
    let closer = handle.closer();
    let tail = std::thread::spawn(move || {
        for line in tail(reader, &closer) {
            let n = lines.fetch_add(1, Ordering::Relaxed) + 1;
            // To the WebSocket clients whose filter matches, encoded once.
            let wants =
                |ws: &wsportal::Connection| ws.with_state(|f: &mut Filter| line.contains(&f.0));
            if let Err(e) = push.to_resource_where("/logs", wants, line.as_str()) {
                log::warn!("line {n} not pushed: {e}"); // a real failure: nobody is Ok(0)
            }
            // To the event stream, kept in its history under the line's number.
            if let Err(e) = publisher.send(&Event::new(line).id(n.to_string())) {
                log::warn!("line {n} not published: {e}");
            }
        }
    });
    Ok((handle, tail))
}

/// The token may come as `?token=` (browsers cannot set headers on a
/// WebSocket or an EventSource) or as `Authorization: Bearer`.
fn authorize(req: &Request, token: &str) -> Result<Accept, Reject> {
    let bearer = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "));
    if req.query_param("token").as_deref() == Some(token) || bearer == Some(token) {
        Ok(Accept::new())
    } else {
        Err(Reject::new(401).header("WWW-Authenticate", "Bearer"))
    }
}

/// The complete lines appended to the file, polled every 100 ms until the
/// server closes. A file that shrinks (rotated, truncated) is read again
/// from its start.
fn tail<'a>(mut file: BufReader<File>, closer: &'a Closer) -> impl Iterator<Item = String> + 'a {
    let mut partial = String::new();
    std::iter::from_fn(move || loop {
        match file.read_line(&mut partial) {
            Ok(_) if partial.ends_with('\n') => {
                let line = partial.trim_end_matches(['\r', '\n']).to_owned();
                partial.clear();
                return Some(line);
            }
            Ok(_) => {
                // At the end: wait for more, unless the server is closing.
                if closer.wait_timeout(Duration::from_millis(100)) {
                    return None;
                }
                let len = file.get_ref().metadata().map_or(0, |m| m.len());
                if file.stream_position().is_ok_and(|pos| len < pos) {
                    partial.clear();
                    let _ = file.seek(SeekFrom::Start(0));
                }
            }
            Err(e) => {
                log::warn!("cannot read the log: {e}");
                return None;
            }
        }
    })
}

/// The page: a filter box over a WebSocket, and the same lines from the
/// event stream. It passes its own `?token=` on.
const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8"><title>logtail</title>
<style>body{font:14px system-ui;margin:20px} pre{background:#f4f5f8;height:40vh;overflow:auto}</style>
<h1>logtail</h1>
<p>Filter: <input id="filter" placeholder="only lines containing..."> <span id="stats"></span></p>
<h2>WebSocket <code>/logs</code></h2><pre id="ws"></pre>
<h2>Server-Sent Events <code>/sse</code></h2><pre id="sse"></pre>
<script>
const token = new URLSearchParams(location.search).get("token") || "";
const q = "?token=" + encodeURIComponent(token);
const show = (id, text) => { const p = document.getElementById(id); p.textContent += text + "\n"; p.scrollTop = p.scrollHeight; };
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/logs" + q);
ws.onmessage = (m) => show("ws", m.data);
document.getElementById("filter").onchange = (e) => ws.send(e.target.value);
new EventSource("/sse" + q).onmessage = (m) => show("sse", m.lastEventId + ": " + m.data);
setInterval(() => fetch("/stats").then((r) => r.text()).then((t) => document.getElementById("stats").textContent = t), 2000);
</script>
"#;
