//! A chat server: one room at `/chat`, and rooms by path at `/chat/:room`.
//! Every text message a client sends in a room goes to every client of that
//! room, the sender included.
//!
//!     cargo run --example chat -- 127.0.0.1:9003
//!
//! Try it with two terminals running `cargo run --example client -- ws://127.0.0.1:9003/chat/lobby`.
//!
//! Several instances share their rooms through Redis (feature `redis`):
//!
//!     cargo run --features redis --example chat -- 127.0.0.1:9003 --redis redis://127.0.0.1:6379/
//!     cargo run --features redis --example chat -- 127.0.0.1:9004 --redis redis://127.0.0.1:6379/

#[path = "support/cli.rs"]
mod cli;
#[path = "support/signals.rs"]
mod signals;

use std::time::Duration;

use wsportal::{Config, Message, Resource, Server};

/// The command line (anything else: this line, and exit status 2).
const USAGE: &str =
    "chat [ADDR] [--seconds N] [--max-backlog BYTES] [--redis URL [--presence-ttl-ms N]]";

fn main() -> std::process::ExitCode {
    cli::init_logs();
    cli::finish(USAGE, run(&cli::args()))
}

/// Serves on `args[0]` (default 127.0.0.1:9003); `--seconds N` stops it cleanly after N seconds;
/// `--redis URL` (feature `redis`) links it with the other instances using that Redis;
/// `--max-backlog BYTES` replaces its 1 MiB backlog (the bench's rooms with
/// `Config`'s default, 32 MiB).
pub fn run(argv: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let args = cli::Args::parse(
        argv,
        1,
        &["--seconds", "--redis", "--presence-ttl-ms", "--max-backlog"],
    )?;
    let seconds = args.seconds()?;
    let addr = args.positional(0).unwrap_or("127.0.0.1:9003");

    // Chat messages are short. A client that falls 1 MiB behind (it stopped
    // reading) is closed with 1008 rather than holding the room's memory.
    let config = Config::default()
        .max_message_size(64 << 10)
        .max_backlog(args.parsed("--max-backlog")?.unwrap_or(1 << 20));
    let mut server = Server::with_config(config);
    // `/chat` is one room: relay to every connection of this resource.
    // Browsers may open it from pages of this server's own origin (and
    // clients that send no `Origin`, like the `client` example, always
    // may); `origins` also lets in a page served elsewhere, here a
    // front-end dev server on port 3000. Any other web page gets 403.
    server.define_resource(
        "/chat",
        Resource::new()
            .origins(["http://localhost:3000", "http://127.0.0.1:3000"])
            .on_message(|ws, msg| {
                if let Message::Text(_) = msg {
                    let _ = ws.broadcaster().to_resource("/chat", msg);
                }
            }),
    );
    // `/chat/:room`: each connection joins the group named after its room, and
    // leaves it automatically when it closes.
    server.define_resource(
        "/chat/:room",
        Resource::new()
            .on_open(|ws| ws.join(&room(ws.param("room"))))
            .on_message(|ws, msg| {
                if let Message::Text(_) = msg {
                    let _ = ws.broadcaster().to_group(&room(ws.param("room")), msg);
                }
            }),
    );

    // `--presence-ttl-ms N`: how soon a killed instance leaves group presence.
    let ttl = args.parsed::<u64>("--presence-ttl-ms")?.unwrap_or(15_000);
    if let Some(url) = args.value("--redis") {
        join_redis(&mut server, url, Duration::from_millis(ttl))?;
    }

    let handle = server.start(addr)?;
    // From now on (before anyone learns where it listens), SIGINT (Ctrl-C)
    // or SIGTERM (systemd, docker stop) asks it to close.
    let _signals = signals::close_on_signals(handle.closer())?;
    println!("listening on ws://{}/chat", handle.local_addr());
    // Serve until SIGINT (Ctrl-C) or SIGTERM (systemd, docker stop), or for
    // `--seconds N`; then stop cleanly: 1001 to every client, threads joined.
    match seconds {
        Some(d) => _ = handle.wait_timeout(d),
        None => handle.wait(),
    }
    handle.close();
    Ok(())
}

/// Links the server with every chat using the Redis at `url` (feature
/// `redis`): rooms are shared between them.
#[cfg(feature = "redis")]
fn join_redis(server: &mut Server, url: &str, ttl: Duration) -> Result<(), wsportal::Error> {
    let backplane = wsportal::Backplane::redis(url)?
        .prefix("chat")
        .presence_ttl(ttl);
    server.backplane(backplane);
    Ok(())
}

#[cfg(not(feature = "redis"))]
fn join_redis(_: &mut Server, url: &str, _: Duration) -> Result<(), wsportal::Error> {
    Err(wsportal::Error::Config {
        setting: "--redis",
        reason: format!("{url}: this build has no `redis` feature"),
    })
}

/// Group names get a prefix so that a room cannot collide with other groups.
fn room(name: Option<&str>) -> String {
    format!("room:{}", name.unwrap_or(""))
}
