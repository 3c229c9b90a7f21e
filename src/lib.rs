//! # wsportal
//!
//! A blocking, thread-per-connection WebSocket server (and client) on
//! `std::net`, in the spirit of Common Lisp's `portal`: register resources by
//! path with hooks, start the server, get a handle that stops it. No async
//! runtime.
//!
//! ## Quick start
//!
//! ```no_run
//! use wsportal::{Resource, Server};
//!
//! let mut server = Server::new();
//! server.define_resource(
//!     "/echo",
//!     Resource::new()
//!         .on_open(|ws| println!("{} joined", ws.peer_addr()))
//!         .on_message(|ws, msg| {
//!             let _ = ws.send(msg);
//!         }),
//! );
//! let handle = server.start("127.0.0.1:9001")?;
//! println!("ws://{}/echo", handle.local_addr());
//! # handle.close();
//! # Ok::<(), wsportal::Error>(())
//! ```
//!
//! ## Resources and hooks
//!
//! A [`Resource`] holds `on_handshake`, `on_open`, `on_message`, `on_close`
//! and `on_error` hooks. They run on the connection's own thread; `on_open`
//! comes before any `on_message`, and `on_close` runs exactly once however
//! the connection ends (with 1006 when no close frame was exchanged). Paths
//! are exact (`/echo`) or have named segments (`/chat/:room`, read with
//! [`Connection::param`]). An unknown path is answered `404`, a plain GET on
//! a resource `426`, a malformed upgrade `400`.
//!
//! The handshake hook sees the [`Request`] and answers [`Accept`] (with extra
//! headers and typed per-connection data) or [`Reject`] (a status, headers
//! and body), for authentication. Before it, a handshake from a web page of
//! another origin is refused with `403` unless [`Resource::origins`] (or
//! [`Resource::any_origin`]) allows it; clients that send no `Origin` pass.
//! A header that cannot be written as given (CR, LF, NUL, a name that is
//! not a token) or a `Reject` status outside 200-599 makes the handshake
//! answer `500` instead, logged at error level:
//!
//! ```
//! use wsportal::{Accept, Reject, Resource};
//! struct User(String);
//! let private = Resource::new()
//!     .protocols(["chat.v2", "chat.v1"])
//!     .on_handshake(|req| match req.header("authorization") {
//!         Some(token) => Ok(Accept::new().data(User(token.to_owned()))),
//!         None => Err(Reject::new(401).header("WWW-Authenticate", "Bearer")),
//!     })
//!     .on_open(|ws| {
//!         let user = ws.data::<User>().map(|u| u.0.as_str());
//!         let _ = ws.send_text(&format!("hello {user:?}, you speak {:?}", ws.protocol()));
//!     });
//! # let _ = private;
//! ```
//!
//! A panic in a hook is caught and given to `on_error` as
//! [`Error::HandlerPanic`]. With [`Config::debug_on_error`] on (the default,
//! as in portal) the panic is then logged at error level with its location
//! and the connection is closed with 1011; with it off, the connection
//! carries on. A panicking hook never takes down the server. (To know where a
//! hook panicked, the first hook call installs a process-wide panic hook: it
//! records the location of panics inside wsportal hooks, keeps them off
//! stderr when `debug_on_error` is off, and hands every other panic to the
//! hook that was installed before.)
//!
//! ## Sending from other threads
//!
//! [`Connection`] is a cheap `Clone + Send + Sync` handle. Any thread may send
//! at any time, even while the connection's thread is blocked reading or
//! busy in a hook; the message leaves at once. Frames never interleave. Sends
//! after a close has begun return [`SendError`] with the message inside.
//!
//! Two policies, side by side:
//!
//! - **[`Connection::send`] and broadcasts never wait.** A message goes into
//!   the connection's backlog ([`Config::max_backlog`]) and is written
//!   without waiting for the socket; a client whose backlog is full is too
//!   slow and is closed with 1008. Right for a room: one slow client never
//!   holds up the others. [`Broadcaster`] and [`EventPublisher`] always work
//!   this way.
//! - **[`Connection::send_timeout`] waits for this client.** While the
//!   backlog has no room it blocks the calling thread (up to the timeout)
//!   until bytes leave, so one producer streaming to one client slows to its
//!   pace, as a blocking socket write would. A timeout gives the message back
//!   in [`SendTimeoutError::Timeout`] and leaves the connection open.
//!   [`Connection::flush`] waits until everything queued so far is written.
//!   Both also work on the connection's own thread, in a hook (they wait
//!   while other threads and the housekeeper write), and on a client's
//!   [`ClientHandle`].
//!
//! ```no_run
//! use std::time::Duration;
//! use wsportal::{Connection, SendTimeoutError};
//!
//! /// Streams a log to one client at the client's pace.
//! fn tail(ws: &Connection, lines: Vec<String>) {
//!     for line in lines {
//!         match ws.send_timeout(line, Duration::from_secs(10)) {
//!             Ok(()) => {}
//!             Err(SendTimeoutError::Timeout(_)) => {
//!                 // Ten seconds without room: this client is not reading.
//!                 ws.close(1008, "too slow");
//!                 return;
//!             }
//!             Err(SendTimeoutError::Closed(_)) => return,
//!         }
//!     }
//!     let _ = ws.flush(Duration::from_secs(10));
//! }
//! # let _ = tail;
//! ```
//!
//! A message too large to hold whole is streamed:
//! [`Connection::stream_binary`] (or [`Connection::stream_text`]) returns a
//! [`MessageWriter`], an [`std::io::Write`] that sends fragments as it goes,
//! waiting for room like `send_timeout` (up to [`Config::write_timeout`]).
//! Meanwhile other data messages to that connection queue behind it, and
//! pings and closes still go out.
//!
//! ```no_run
//! fn send_file(ws: &wsportal::Connection) -> Result<(), wsportal::Error> {
//!     let mut file = std::fs::File::open("big.bin")?;
//!     let mut message = ws.stream_binary()?;
//!     std::io::copy(&mut file, &mut message)?;
//!     message.finish()
//! }
//! # let _ = send_file;
//! ```
//!
//! ## Broadcasting
//!
//! [`Broadcaster`] (from [`Server::broadcaster`], before the server starts,
//! [`ServerHandle::broadcaster`] or [`Connection::broadcaster`]) pushes one
//! message, encoded once, to every connection of a resource, to a named
//! group ([`Connection::join`]), to all, to a set of connections
//! ([`Broadcaster::to_connections`]), or to the connections of a resource
//! that a per-client filter keeps ([`Broadcaster::to_resource_where`]).
//! Pushing to nobody is [`Error::NoConnections`]; a background loop, where
//! nobody listening is normal, uses [`Broadcaster::allow_nobody`] to get
//! `Ok(0)` instead and keeps `?` for real failures.
//!
//! State that a connection changes (a filter the client sets by message)
//! lives in [`Connection::with_state`], one value per type, which the
//! handshake hook can seed ([`Accept::state`]); data from the handshake
//! hook ([`Accept::data`]) is read-only. An event stream's publisher picks
//! clients the same way with [`EventPublisher::send_where`].
//!
//! Order: a connection joins its resource just before its `on_open` runs,
//! so a broadcast can reach it before (and arrive before) what `on_open`
//! sends; a group push reaches it once it has joined the group. The pushes
//! of one thread reach each connection in the order they were made (each
//! is queued whole before the call returns); pushes from different threads
//! have no order between them.
//!
//! ```
//! use wsportal::{Resource, Server};
//! #[derive(Default)]
//! struct Filter(String);
//!
//! let mut server = Server::new();
//! let push = server.broadcaster().allow_nobody(); // works before start
//! server.define_resource("/logs", Resource::new().on_message(|ws, msg| {
//!     let text = msg.as_text().unwrap_or("").to_owned();
//!     ws.set_state(Filter(text)); // this client now wants lines with `text`
//! }));
//! let handle = server.start("127.0.0.1:0")?;
//! let line = "GET /index.html 200";
//! let wants = |ws: &wsportal::Connection| ws.with_state(|f: &mut Filter| line.contains(&f.0));
//! let sent = push.to_resource_where("/logs", wants, line)?; // encoded once
//! assert_eq!(sent, 0); // nobody is connected: Ok(0), not an error
//! handle.close();
//! # Ok::<(), wsportal::Error>(())
//! ```
//!
//! ## Slow clients and keepalive
//!
//! Each connection has a bounded backlog ([`Config::max_backlog`]) and a
//! write timeout: a client that stops reading is closed with 1008 and never
//! blocks a sender (writes never wait for a full socket; the housekeeper
//! retries it, less and less often while it takes nothing). The server pings connections that have been silent for
//! [`Config::ping_interval`] and drops those that do not answer within
//! [`Config::ping_timeout`]. One housekeeper thread does every timed job.
//!
//! ## Server-Sent Events
//!
//! An [`EventStream`], registered with [`Server::define_event_stream`],
//! answers `GET` with `Content-Type: text/event-stream` (plus `Cache-Control:
//! no-store` and `X-Accel-Buffering: no`) on the same listener and port as the
//! WebSockets. Its `on_handshake` hook sees the [`Request`] and answers
//! [`Accept`] (extra headers such as CORS, per-client data) or [`Reject`]
//! (`401`, `403`, or `204`, which tells an `EventSource` to stop
//! reconnecting). Events are [`Event`]s: data split into one `data:` line per
//! line, optional `event:`, `id:` and `retry:`; a newline in a name or id (or
//! an id that could not come back intact in `Last-Event-ID`) is refused with
//! [`Error::InvalidInput`] and never sent.
//!
//! Event streams have no `Origin` setting, unlike WebSocket resources: a
//! browser applies CORS to a cross-origin `EventSource`, so a page from
//! another origin can read the stream only if `on_handshake` answers with
//! `Access-Control-Allow-Origin` (and, for cookies,
//! `Access-Control-Allow-Credentials: true`). Without those headers, only
//! same-origin pages read it.
//!
//! Events come from a `writer` callback running on the client's own thread
//! and writing to an [`EventSink`] until it returns or the client goes, or
//! from an [`EventPublisher`] (from [`EventStream::publisher`] or
//! [`ServerHandle::event_stream`]) that sends, from any thread, to every
//! client of the stream, to a group, or to one client; pushing to nobody is
//! [`Error::NoConnections`]. With [`EventStream::history`], a client that
//! reconnects with `Last-Event-ID` first gets what it missed; when its id is
//! too old or unknown, it gets the event [`EventStream::on_unknown_id`]
//! chooses.
//!
//! ```
//! use wsportal::{Accept, Event, EventStream, Reject, Server};
//!
//! let events = EventStream::new()
//!     .history(100) // replay missed events to clients that reconnect
//!     .on_handshake(|req| match req.query_param("token") {
//!         Some(t) if t == "secret" => Ok(Accept::new().header("Access-Control-Allow-Origin", "*")),
//!         _ => Err(Reject::new(204)), // an EventSource stops reconnecting
//!     })
//!     .on_open(|client| {
//!         let _ = client.send(&Event::new("welcome").name("hello"));
//!     });
//! let publisher = events.publisher();
//! let mut server = Server::new();
//! server.define_event_stream("/events", events);
//! server.define_page(
//!     "/",
//!     "text/html; charset=utf-8",
//!     "<script>new EventSource('/events?token=secret')</script>",
//! );
//! let handle = server.start("127.0.0.1:0")?;
//! // From any thread, as often as you like:
//! match publisher.send(&Event::new("12:00:00").name("tick").id("1")) {
//!     Ok(n) => println!("sent to {n} clients"),
//!     Err(wsportal::Error::NoConnections(_)) => {} // nobody is listening (yet)
//!     Err(e) => return Err(e),
//! }
//! handle.close();
//! # Ok::<(), wsportal::Error>(())
//! ```
//!
//! A client with nothing to write costs no CPU: its thread blocks reading
//! the socket, so a client that hangs up is noticed at once and its
//! `on_close` hook runs. Event clients follow the WebSocket rules for slow
//! peers ([`Config::max_backlog`], [`Config::write_timeout`]), and the
//! housekeeper sends a comment line to streams silent for
//! [`Config::sse_keepalive`] so proxies keep them open.
//!
//! [`EventStream::filter`] picks, per client, which events it gets, for
//! live events and a resuming client's replay alike.
//!
//! [`Server::define_page`] serves a fixed page (`GET` and `HEAD`) on the same
//! port, and [`Server::define_handler`] a fresh [`Response`] computed from
//! the [`Request`] (a `/stats` page). [`Server::define_handler_for`] answers
//! the methods you name (`POST`, `PUT`, `DELETE`...) with the request's
//! body read ([`Request::body`], at most [`Config::max_body_size`]): a
//! webhook that pushes to clients. Enough for a demo, a small dashboard or
//! a webhook, not a web framework (no body parsing, no middleware).
//!
//! ## Statistics
//!
//! [`ServerHandle::stats`] (and [`Broadcaster::stats`], from any thread)
//! returns a [`Stats`] snapshot: open connections per resource, event
//! clients per stream, the largest groups, messages and bytes received and
//! sent, handshakes accepted, requests refused by status, closes by code,
//! hook panics, backlogs, and busy and idle pool threads.
//! [`Server::define_metrics`] serves the same numbers in the Prometheus text
//! format ([`Stats::to_prometheus`]):
//!
//! ```
//! use wsportal::{Resource, Server};
//! let mut server = Server::new();
//! server
//!     .define_resource("/echo", Resource::new())
//!     .define_metrics("/metrics"); // for a Prometheus server to scrape
//! let handle = server.start("127.0.0.1:0")?;
//! let stats = handle.stats();
//! println!("{} open, {} messages in", stats.connections, stats.messages_received);
//! # Ok::<(), wsportal::Error>(())
//! ```
//!
//! ## Client
//!
//! [`Client`] connects to a `ws://` URL with the same [`Config`] limits, the
//! same [`Resource`] hooks and the same [`Connection`] send path as the
//! server. [`ClientHandle`] dereferences to the [`Connection`], and without an
//! `on_message` hook it queues messages for [`ClientHandle::recv`], so a
//! script needs a few lines:
//!
//! ```
//! use std::time::Duration;
//! use wsportal::{Client, Message, Resource, Server};
//! # let mut server = Server::new();
//! # server.define_resource("/echo", Resource::new().on_message(|ws, msg| {
//! #     let _ = ws.send(msg);
//! # }));
//! # let handle = server.start("127.0.0.1:0")?;
//! # let url = format!("ws://{}/echo", handle.local_addr());
//! let ws = Client::new(url.as_str())
//!     .header("Authorization", "Bearer 123")
//!     .timeout(Duration::from_secs(5))
//!     .connect()?;
//! ws.send_text("hello").expect("open");
//! assert_eq!(ws.recv_timeout(Duration::from_secs(5))?, Message::Text("hello".into()));
//! ws.disconnect(1000, "done"); // or drop it: both close and join its threads
//!
//! // Or with hooks, run on the client's own reader thread:
//! let ws = Client::new(url.as_str()).connect_with(
//!     Resource::new()
//!         .on_open(|ws| { let _ = ws.send_text("hi"); })
//!         .on_message(|ws, msg| println!("{}: {msg:?}", ws.path()))
//!         .on_close(|_, code, reason| println!("closed: {code} {reason}")),
//! )?;
//! ws.ping(b"1", |_| println!("pong")).expect("open");
//! # drop(ws);
//! # handle.close();
//! # Ok::<(), wsportal::Error>(())
//! ```
//!
//! Keepalive pings, the backlog limit and the close timeout apply as on the
//! server. A refused handshake is [`Error::Http`] with the status, headers
//! and body. Dropping the last handle (or [`ClientHandle::disconnect`])
//! closes the connection and joins the client's two threads.
//!
//! [`Client::reconnecting`] keeps a connection: after a loss it connects
//! again with backoff and full jitter ([`Reconnect`]), and the hooks'
//! `on_open` runs on each new connection, the place to subscribe again.
//! While it is away, sends fail at once with [`Error::NotConnected`].
//! [`Client::proxy`] (or `proxy_from_env`) goes through an HTTP `CONNECT`
//! proxy; a refusal is [`Error::Proxy`] with its status.
//!
//! ```no_run
//! use std::time::Duration;
//! use wsportal::{Client, Reconnect, Resource};
//!
//! let ws = Client::new("ws://127.0.0.1:9001/feed")
//!     .reconnect(Reconnect::new().max_delay(Duration::from_secs(30)))
//!     .reconnecting(Resource::new().on_open(|ws| {
//!         let _ = ws.send_text("subscribe prices");
//!     }))?;
//! while let Ok(msg) = ws.recv() {
//!     println!("{msg:?}");
//! }
//! # Ok::<(), wsportal::Error>(())
//! ```
//!
//! [`EventSource`] reads an event stream (SSE) the way a browser's
//! `EventSource` does, on the calling thread: it reconnects after the
//! server's `retry:`, sending `Last-Event-ID`, and stops on a `204`.
//!
//! ```no_run
//! use wsportal::EventSource;
//!
//! for event in EventSource::new("http://127.0.0.1:8080/events").connect()? {
//!     let event = event?;
//!     println!("{}: {}", event.event, event.data);
//! }
//! # Ok::<(), wsportal::Error>(())
//! ```
//!
//! ## TLS
//!
//! With the `tls` feature (off by default; rustls with the `ring` provider),
//! `Server::start_tls(addr, TlsConfig::from_pem_files(cert, key)?)` serves
//! everything above over TLS (`wss://`, `https://`), and the client speaks
//! `wss://`, trusting Mozilla's roots (bundled by `webpki-roots`) plus any
//! `Client::add_root_certificate`, or a whole `Client::tls_config`. A
//! certificate it does not trust is [`Error::Tls`] with the reason.
//!
//! ## Several instances
//!
//! With the `redis` feature (off by default; the blocking `redis` client),
//! `Server::backplane(Backplane::redis(url)?)` links server instances
//! through Redis: broadcasts, group pushes and event-stream events reach the
//! clients of every instance (at most once through Redis; local clients at
//! once), group presence counts across them, and an event stream's history
//! is one history in Redis, served alike by every instance (see
//! `EventStream::history`).
#![cfg_attr(feature = "redis", doc = "See [`Backplane`].")]
#![cfg_attr(
    not(feature = "redis"),
    doc = "See `Backplane` (documented with the `redis` feature)."
)]
//!
//! ## Compression
//!
//! With the `deflate` feature (off by default; flate2 on the pure-Rust
//! `zlib-rs` backend), a server accepts `permessage-deflate` (RFC 7692) and
//! a client offers it, with the settings of `Config::deflate` (12-bit
//! windows by default; `None` turns it off); `Resource::compression(false)`
//! refuses it for one resource. Messages sent with `send` are compressed
//! and received ones inflated, with `max_message_size` applied to the
//! inflated size; broadcasts and streamed messages go out uncompressed.
//!
//! ## Behind a reverse proxy
//!
//! List the proxy in [`Config::trusted_proxies`] (nobody is trusted by
//! default). From that peer only, [`Request::peer_addr`] is the client's
//! address from `Forwarded` or `X-Forwarded-For`, [`Request::scheme`] comes
//! from `X-Forwarded-Proto`, and the WebSocket `Origin` check compares with
//! the host the browser used (`X-Forwarded-Host`, `Forwarded: host=`, else
//! the host name of a `Host` without a port, as nginx's `$host` sends it).
//! On the same machine, `Server::start_unix` (Unix) listens on a socket
//! file instead of a port; its peers have the address `0.0.0.0`.
//!
//! ```
//! use wsportal::{Config, Resource, Server};
//! let config = Config::default().trusted_proxies(["127.0.0.1"]);
//! let mut server = Server::with_config(config);
//! server.define_resource("/chat", Resource::new().on_open(|ws| {
//!     println!("{} from {}", ws.request().scheme(), ws.peer_addr()); // the browser's
//! }));
//! # let handle = server.start("127.0.0.1:0")?;
//! # handle.close();
//! # Ok::<(), wsportal::Error>(())
//! ```
//!
//! ## Shutdown
//!
//! [`ServerHandle::close`] (or dropping the handle) closes the listener at
//! once, sends 1001 Going Away to every open connection and ends every event
//! stream (after its queued events), waits up to
//! [`Config::shutdown_grace`] for their close handshakes, then cuts off the
//! rest and joins every thread it started. Called from one of the server's
//! own hooks, it cannot join the thread that hook runs on: it cuts that
//! hook's client off with 1001, does everything else, and returns; that
//! thread ends when the hook returns.
//!
//! To stop on a signal or from a hook, block the main thread in
//! [`ServerHandle::wait`] and ask from elsewhere with a [`Closer`] (from
//! [`ServerHandle::closer`]). wsportal installs no signal handler (signal
//! dispositions are the whole process's, the application's to choose);
//! with the `signal-hook` crate in your application's `Cargo.toml`, SIGINT
//! (Ctrl-C) and SIGTERM (`systemctl stop`, `docker stop`) are a thread of
//! your own:
//!
//! ```no_run
//! # mod signal_hook { // a stand-in, so that this example compiles without the crate
//! #     pub mod consts { pub const SIGINT: i32 = 2; pub const SIGTERM: i32 = 15; }
//! #     pub mod iterator {
//! #         pub struct Signals;
//! #         #[derive(Clone)]
//! #         pub struct Handle;
//! #         impl Signals {
//! #             pub fn new(_: [i32; 2]) -> std::io::Result<Signals> { Ok(Signals) }
//! #             pub fn handle(&self) -> Handle { Handle }
//! #             pub fn forever(&mut self) -> std::iter::Empty<i32> { std::iter::empty() }
//! #         }
//! #         impl Handle { pub fn close(&self) {} }
//! #     }
//! # }
//! # let server = wsportal::Server::new();
//! use signal_hook::{consts::{SIGINT, SIGTERM}, iterator::Signals};
//!
//! let handle = server.start("127.0.0.1:9001")?;
//! let mut signals = Signals::new([SIGINT, SIGTERM])?;
//! let (stop, closer) = (signals.handle(), handle.closer());
//! let watcher = std::thread::spawn(move || {
//!     if signals.forever().next().is_some() {
//!         closer.close(); // only asks: safe from any thread
//!     }
//! });
//! handle.wait(); // serve until a signal (or any other `closer.close()`)
//! handle.close(); // 1001 to every client, then every thread is joined
//! stop.close(); // ends the watcher's `forever`
//! watcher.join().expect("the watcher does not panic");
//! # Ok::<(), wsportal::Error>(())
//! ```
//!
//! A background thread that pushes in a loop pauses with
//! [`Closer::wait_timeout`] rather than `thread::sleep`, so it ends as soon
//! as the server closes and can be joined.
//!
//! ## Errors
//!
//! One enum, [`Error`]. Starting fails with [`Error::Bind`] naming the address,
//! [`Error::Config`] naming the setting, or [`Error::Route`].
//!
//! ## Log levels
//!
//! Only the `log` facade: `debug!` for the connection lifecycle and HTTP
//! refusals, `trace!` for frames, `warn!` for configuration problems and
//! failed accepts, `error!` for hook panics under `debug_on_error` and for
//! hook answers that cannot be sent (naming the header, not its value).
//! Payloads and headers are never logged, but for the `Origin` and `Host` of
//! a handshake refused for its origin (at debug level).
//!
//! ## Limits
//!
//! [`Config`] bounds messages and frames (1009), request heads (`431`), a
//! handler's request body (`413`), the handshake time (head and body), the number of connections (`503` with `Retry-After`), the
//! read buffer (small, growing with the data) and the outbound backlog.

#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations, unreachable_pub)]
#![doc(test(attr(deny(warnings))))]

#[cfg(feature = "redis")]
mod backplane;
mod client;
mod config;
mod deadline;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod message;
mod server;
mod session;
mod sse;
mod sync;
mod transport;
mod wire;

pub use crate::client::{
    Client, ClientHandle, EventReader, EventReaderCloser, EventSource, MessageEvent, Reconnect,
    Reconnecting,
};
pub use crate::config::Config;
pub use crate::error::{Error, SendError, SendTimeoutError};
pub use crate::http::Request;
pub use crate::message::Message;
pub use crate::server::closer::Closer;
pub use crate::server::handler::Response;
pub use crate::server::{Server, ServerHandle};
pub use crate::session::broadcast::Broadcaster;
pub use crate::session::connection::Connection;
pub use crate::session::resource::{Accept, Reject, Resource};
pub use crate::session::stats::Stats;
pub use crate::session::writer::MessageWriter;
pub use crate::sse::{EventClient, EventPublisher, EventSink, EventStream};
pub use crate::wire::event::Event;

#[cfg(feature = "tls")]
pub use crate::transport::tls::TlsConfig;
#[cfg(feature = "deflate")]
pub use crate::wire::extension::Deflate;

#[cfg(feature = "redis")]
pub use crate::backplane::Backplane;
/// The rustls this crate is built with (feature `tls`), for
/// [`TlsConfig::from_server_config`] and `Client::tls_config`.
#[cfg(feature = "tls")]
pub use rustls;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
