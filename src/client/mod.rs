//! The WebSocket client: [`Client`] holds the settings and connects;
//! [`ClientHandle`] is the open connection. After the handshake a client
//! connection is a server connection with the other [`Role`]: the same
//! [`Connection`] handle and send path, the same [`Resource`] hooks run by
//! `session::run` on the client's own reader thread, and its own [`Hub`]
//! whose housekeeper does keepalive, stalled writes and close timeouts.
//!
//! Architecture invariant: a client owns exactly two threads, its reader and
//! its hub's housekeeper; the reader stops the housekeeper when the
//! connection ends, and whoever drops the last handle joins the reader.
//! The client adds nothing to the protocol, session or outbox code: its
//! [`Role`] makes the same code mask what it sends and refuse masked frames.
//!
//! `connect_with` runs, within [`Client::timeout`]: for `wss://` (feature
//! `tls`) the TLS handshake (SNI and the host-name check by rustls), then
//! the upgrade request (`client/handshake.rs`: a random key, the
//! `Sec-WebSocket-Accept` checked, only offered subprotocols and
//! extensions accepted); then the reader thread, `wsportal-client`, runs
//! `session::run`.

pub(crate) mod handshake;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::{Condvar, Mutex};

use self::handshake::{BodyLength, Response, Target};
use crate::session::connection::Parts;
use crate::session::hub::Hub;
use crate::transport::{Stream, Transport};
use crate::wire::reader::{FrameReader, Limits, Role};
use crate::{Config, Connection, Error, Message, Request, Resource};

/// A WebSocket client's settings: the `ws://` URL, subprotocols to offer,
/// extra request headers, the connect timeout and the [`Config`] limits.
/// [`Client::connect`] and [`Client::connect_with`] open a connection and
/// return its [`ClientHandle`]; a `Client` can connect any number of times.
///
/// ```no_run
/// use std::time::Duration;
/// use wsportal::Client;
///
/// let ws = Client::new("ws://127.0.0.1:9001/echo")
///     .protocols(["chat.v2", "chat.v1"])
///     .header("Authorization", "Bearer 123")
///     .timeout(Duration::from_secs(5))
///     .connect()?;
/// ws.send_text("hello")?;
/// println!("{:?}", ws.recv()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Client {
    url: String,
    protocols: Vec<String>,
    headers: Vec<(String, String)>,
    timeout: Option<Duration>,
    config: Config,
    #[cfg(feature = "tls")]
    tls: ClientTls,
}

/// A client's TLS settings for `wss://` (feature `tls`).
#[cfg(feature = "tls")]
#[derive(Clone, Default)]
struct ClientTls {
    /// The caller's own configuration; else the bundled roots and `roots`.
    config: Option<Arc<rustls::ClientConfig>>,
    /// PEM root certificates to trust besides the bundled ones.
    roots: Vec<Vec<u8>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values (Authorization, cookies) are never shown.
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Client")
            .field("url", &self.url)
            .field("protocols", &self.protocols)
            .field("headers", &names)
            .field("timeout", &self.timeout)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `url` (`ws://host[:port][/path][?query]`, or `wss://` with the `tls` feature) with the
    /// default [`Config`]. The URL is checked when connecting.
    pub fn new(url: impl Into<String>) -> Client {
        Client {
            url: url.into(),
            protocols: Vec::new(),
            headers: Vec::new(),
            timeout: None,
            config: Config::default(),
            #[cfg(feature = "tls")]
            tls: ClientTls::default(),
        }
    }

    /// The TLS configuration for `wss://` URLs (feature `tls`), for a
    /// private CA, client certificates or other settings; it replaces the
    /// default (the Mozilla roots bundled by `webpki-roots`, the `ring`
    /// provider, ALPN `http/1.1`) and any [`Client::add_root_certificate`].
    /// Build it with [`rustls`] as re-exported here, and
    /// give it a crypto provider explicitly (`builder_with_provider`).
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Client {
        self.tls.config = Some(config);
        self
    }

    /// Trusts the PEM certificate(s) in `pem` as roots for `wss://` URLs
    /// (feature `tls`), besides the bundled Mozilla roots: a private CA or
    /// a self-signed server. A bad PEM is reported by
    /// [`Client::connect`] as [`Error::Tls`].
    #[cfg(feature = "tls")]
    pub fn add_root_certificate(mut self, pem: impl AsRef<[u8]>) -> Client {
        self.tls.roots.push(pem.as_ref().to_vec());
        self
    }

    /// The subprotocols to offer, most preferred first
    /// (`Sec-WebSocket-Protocol`). Read the agreed one with
    /// [`Connection::protocol`].
    pub fn protocols<I, S>(mut self, names: I) -> Client
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.protocols = names.into_iter().map(Into::into).collect();
        self
    }

    /// Adds a request header, such as `Authorization`, `Origin` or `Cookie`.
    /// A `Host` header replaces the one taken from the URL; the handshake's
    /// own headers (`Upgrade`, `Sec-WebSocket-*`, ...) are refused when
    /// connecting.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Client {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// How long connecting and the opening handshake may take together
    /// (default: the config's [`Config::handshake_timeout`], 10 s). Name
    /// resolution is not covered: it uses the system resolver.
    pub fn timeout(mut self, timeout: Duration) -> Client {
        self.timeout = Some(timeout);
        self
    }

    /// The limits and timings, as for a server: message and frame sizes,
    /// response head size, read buffer, backlog, write timeout, keepalive,
    /// close timeout, `debug_on_error` and the reader thread's stack size.
    /// `max_connections`, `shutdown_grace` and `sse_keepalive` do not apply.
    pub fn config(mut self, config: Config) -> Client {
        self.config = config;
        self
    }

    /// Connects without hooks: messages are queued for
    /// [`ClientHandle::recv`] and the other receiving methods.
    ///
    /// # Errors
    /// As [`Client::connect_with`].
    pub fn connect(&self) -> Result<ClientHandle, Error> {
        self.connect_with(Resource::new())
    }

    /// Connects, then runs `hooks` on the client's reader thread: `on_open`
    /// (before this returns), `on_message`, `on_close` exactly once, and
    /// `on_error`, as for a server resource. Without an `on_message` hook,
    /// messages are queued for [`ClientHandle::recv`] instead. A resource's
    /// handshake hook and subprotocol list are server-side only and ignored.
    ///
    /// # Errors
    /// - [`Error::InvalidInput`] for a URL that is not `ws://` or `wss://`
    ///   (`wss://` needs the `tls` feature), or a bad header or subprotocol
    ///   name;
    /// - [`Error::Tls`] when the TLS handshake fails (the server's
    ///   certificate is not trusted, expired or for another name; a bad PEM
    ///   given to `Client::add_root_certificate`), with the reason;
    /// - [`Error::Config`] for a bad setting;
    /// - [`Error::Io`] when the host cannot be resolved or refuses the
    ///   connection;
    /// - [`Error::Timeout`] when connecting and the handshake take longer
    ///   than [`Client::timeout`];
    /// - [`Error::Http`] with the status, headers and body when the server
    ///   answers other than `101 Switching Protocols`;
    /// - [`Error::Protocol`] when its `101` answer is not a valid WebSocket
    ///   handshake (wrong `Sec-WebSocket-Accept`, a subprotocol or extension
    ///   that was not offered, ...).
    pub fn connect_with(&self, hooks: Resource) -> Result<ClientHandle, Error> {
        let c = &self.config;
        c.validate()?;
        let target = handshake::parse_url(&self.url)?;
        #[cfg(not(feature = "tls"))]
        if target.secure {
            return Err(Error::InvalidInput("wss:// needs wsportal's `tls` feature"));
        }
        let key = tungstenite::handshake::client::generate_key();
        #[allow(unused_mut)] // because only the deflate feature changes it.
        let mut headers =
            handshake::request_headers(&target, &key, &self.protocols, &self.headers)?;
        #[cfg(feature = "deflate")]
        if let Some(ours) = &c.deflate {
            let offer = crate::wire::extension::offer(ours);
            headers.push(("Sec-WebSocket-Extensions".to_owned(), offer));
        }
        let deadline = crate::deadline::after(self.timeout.unwrap_or(c.handshake_timeout));

        let (tcp, peer) = open_socket(&target, deadline)?;
        let _ = tcp.set_nodelay(c.nodelay);
        let stream = self.secure(tcp, &target, deadline)?;
        let (response, leftover) = exchange(&stream, &target, &headers, deadline, c)?;
        if response.status != 101 {
            let body = read_body(&stream, &response, leftover, deadline, c.max_message_size);
            log::debug!(
                "client: {peer} refused the upgrade with {}",
                response.status
            );
            return Err(Error::Http {
                status: response.status,
                headers: response.headers,
                body,
            });
        }
        #[cfg(feature = "deflate")]
        let offered = c.deflate.is_some();
        #[cfg(not(feature = "deflate"))]
        let offered = false;
        let protocol = handshake::verify_offering(&response, &key, &self.protocols, offered)?;
        // A `101` whose permessage-deflate answer breaks our offer fails
        // the connection before it opens (RFC 7692, section 7.1).
        #[cfg(feature = "deflate")]
        let deflate = match &c.deflate {
            Some(ours) => {
                let answer = response.all("sec-websocket-extensions");
                crate::wire::extension::verify(answer, ours)
                    .map_err(Error::Protocol)?
                    .map(|agreed| (agreed, *ours))
            }
            None => None,
        };
        stream.set_read_timeout(None)?;
        stream.set_write_timeout(Some(c.write_timeout))?;

        let request = Request {
            method: "GET".to_owned(),
            path: target.path.clone(),
            query: target.query.clone(),
            headers,
            peer,
            params: Vec::new(),
            extra: Default::default(),
        };
        let limits = Limits {
            max_frame: c.max_frame_size,
            max_message: c.max_message_size,
        };
        let reader = FrameReader::new(Role::Client, limits, c.read_buffer_size, &leftover);
        #[cfg(feature = "deflate")]
        let reader = reader
            .with_inflater(deflate.map(|(a, _)| crate::wire::deflate::Inflater::new(a.server())));
        let hub = Hub::for_config(c)?;
        let parts = Parts {
            stream: Arc::new(stream),
            request,
            route: target.path.clone(),
            protocol,
            data: None,
            role: Role::Client,
            #[cfg(feature = "deflate")]
            deflate,
        };
        let conn = Connection::new(1, parts, hub);
        log::debug!("client: connected to {peer}{}", target.path);
        start(conn, reader, hooks, response.headers, c)
    }

    /// The socket as the URL asks: plain for `ws://`, TLS (handshake done,
    /// the server's certificate verified for the URL's host) for `wss://`.
    fn secure(&self, tcp: TcpStream, target: &Target, deadline: Instant) -> Result<Stream, Error> {
        if !target.secure {
            return Ok(Stream::plain(tcp));
        }
        #[cfg(feature = "tls")]
        {
            let config = match &self.tls.config {
                Some(config) => Arc::clone(config),
                None => {
                    let mut roots = Vec::new();
                    for pem in &self.tls.roots {
                        roots.extend(crate::transport::tls::parse_roots(pem)?);
                    }
                    crate::transport::tls::client_config(&roots)?
                }
            };
            let session = crate::transport::tls::client_session(&config, &target.host)?;
            let stream = Stream::tls(tcp, session);
            if let Err(e) = stream.handshake(deadline) {
                log::debug!("client: TLS handshake with {} failed: {e}", target.host);
                return Err(match crate::transport::tls::reason(&e) {
                    Some(reason) => Error::Tls(reason),
                    None if timed_out(&e) => Error::Timeout("handshake"),
                    None => Error::Io(e),
                });
            }
            Ok(stream)
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = deadline;
            Err(Error::InvalidInput("wss:// needs wsportal's `tls` feature"))
        }
    }
}

/// Resolves the target and connects to the first address that answers.
fn open_socket(target: &Target, deadline: Instant) -> Result<(TcpStream, SocketAddr), Error> {
    let addrs: Vec<SocketAddr> = (target.host.as_str(), target.port)
        .to_socket_addrs()?
        .collect();
    let mut last = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout("connect"));
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => return Ok((s, addr)),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e)
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            Error::Timeout("connect")
        }
        Some(e) => Error::Io(e),
        None => Error::Io(io::Error::new(
            io::ErrorKind::NotFound,
            "the host name resolved to no address",
        )),
    })
}

/// Whether an I/O error means a socket timeout expired.
fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// The time left before `deadline`, or the handshake timeout error.
fn left(deadline: Instant) -> Result<Duration, Error> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Error::Timeout("handshake"));
    }
    Ok(left)
}

/// Writes the request and reads the response head; returns the response and
/// the bytes that followed it (the first frames, or the start of a body).
fn exchange(
    stream: &Stream,
    target: &Target,
    headers: &[(String, String)],
    deadline: Instant,
    c: &Config,
) -> Result<(Response, Vec<u8>), Error> {
    let io_err = |e: io::Error| {
        if timed_out(&e) {
            Error::Timeout("handshake")
        } else {
            Error::Io(e)
        }
    };
    stream.set_write_timeout(Some(left(deadline)?))?;
    let mut s = Transport::waiting(stream);
    s.write_all(&handshake::request_bytes(target, headers))
        .and_then(|()| s.flush())
        .map_err(io_err)?;
    let max = c.max_header_size;
    let mut buf = vec![0u8; 1024];
    let mut len = 0;
    loop {
        if let Some((response, end)) = handshake::parse_response(&buf[..len])? {
            return Ok((response, buf[end..len].to_vec()));
        }
        if len >= max {
            return Err(Error::Protocol("handshake: response head too large"));
        }
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        stream.set_read_timeout(Some(left(deadline)?))?;
        match s.read(&mut buf[len..]) {
            Ok(0) => {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection during the handshake",
                )))
            }
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(e)),
        }
    }
}

/// Reads a refusal's body as HTTP delimits it (RFC 9112 section 6.3): none
/// for 1xx, 204 and 304, `Content-Length` bytes, a chunked body decoded, or
/// else until the server closes; at most `limit` bytes and never past the
/// deadline (a body cut short is returned as it is: the status is what
/// matters).
fn read_body(
    stream: &Stream,
    response: &Response,
    leftover: Vec<u8>,
    deadline: Instant,
    limit: usize,
) -> Vec<u8> {
    let length = response.body_length();
    let mut body = Vec::new();
    let mut dechunker = handshake::Dechunker::default();
    // Chunk sizes, extensions and trailers are bounded too.
    let mut raw_left = limit.saturating_mul(2).saturating_add(64 << 10);
    let mut s = Transport::waiting(stream);
    let mut input = leftover;
    let mut chunk = vec![0u8; 4096];
    loop {
        let done = match length {
            BodyLength::Empty => true,
            BodyLength::Exactly(n) => {
                body.extend_from_slice(&input);
                body.len() >= n
            }
            BodyLength::Chunked => dechunker.feed(&input, &mut body) != Ok(false),
            BodyLength::UntilClose => {
                body.extend_from_slice(&input);
                false
            }
        };
        raw_left = raw_left.saturating_sub(input.len());
        if done || body.len() >= limit || raw_left == 0 {
            break;
        }
        let Ok(t) = left(deadline) else { break };
        if stream.set_read_timeout(Some(t)).is_err() {
            break;
        }
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => input = chunk[..n].to_vec(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => input.clear(),
            Err(_) => break,
        }
    }
    if let BodyLength::Exactly(n) = length {
        body.truncate(n);
    }
    body.truncate(limit);
    body
}

/// How a client's connection ended, for every handle to see.
#[derive(Default)]
struct Ended {
    status: Mutex<Option<(u16, String)>>,
    cv: Condvar,
}

/// The end of a client's reader thread, however it ends (even by a panic
/// outside the hooks): stops the housekeeper, records how the connection
/// ended and wakes every handle waiting for it.
struct ReaderEnd {
    conn: Connection,
    ended: Arc<Ended>,
    status: Option<(u16, String)>,
}

impl Drop for ReaderEnd {
    fn drop(&mut self) {
        self.conn.inner.hub.stop();
        let status = self.status.take().unwrap_or_else(|| {
            self.conn.inner.force_end(1006, "client thread failed");
            (1006, "client thread failed".to_owned())
        });
        *self.ended.status.lock() = Some(status);
        self.ended.cv.notify_all();
    }
}

/// Signals connect() when dropped: after `on_open` has run, or if it panicked.
struct Opened(Sender<()>);

impl Drop for Opened {
    fn drop(&mut self) {
        let _ = self.0.try_send(());
    }
}

/// Installs the client's wrappers around `hooks` and starts the reader thread.
fn start(
    conn: Connection,
    reader: FrameReader,
    mut hooks: Resource,
    response: Vec<(String, String)>,
    c: &Config,
) -> Result<ClientHandle, Error> {
    let (tx, rx) = crossbeam_channel::unbounded::<Message>();
    let queued = Arc::new(AtomicUsize::new(0));
    if hooks.on_message.is_none() {
        let (tx, queued, limit) = (tx.clone(), Arc::clone(&queued), c.max_backlog);
        hooks.on_message = Some(Box::new(move |ws, msg| {
            let len = msg.len();
            let held = queued.load(Ordering::Acquire);
            if held > 0 && held + len > limit {
                // Unread messages are bounded like a server's backlog.
                if ws.is_open() {
                    log::debug!("client: {held} bytes unread; closing with 1008");
                    ws.close(1008, "receive queue full");
                }
                return;
            }
            queued.fetch_add(len, Ordering::AcqRel);
            let _ = tx.send(msg);
        }));
    }
    let (opened_tx, opened_rx) = crossbeam_channel::bounded(1);
    let user_open = hooks.on_open.take();
    hooks.on_open = Some(Box::new(move |ws| {
        let _signal = Opened(opened_tx.clone());
        if let Some(hook) = &user_open {
            hook(ws);
        }
    }));

    let ended = Arc::new(Ended::default());
    let (thread_conn, thread_ended, debug_on_error) =
        (conn.clone(), Arc::clone(&ended), c.debug_on_error);
    let spawned = std::thread::Builder::new()
        .name("wsportal-client".into())
        .stack_size(c.thread_stack_size)
        .spawn(move || {
            let mut end = ReaderEnd {
                conn: thread_conn,
                ended: thread_ended,
                status: None,
            };
            end.status = Some(crate::session::run(
                &end.conn,
                reader,
                &hooks,
                debug_on_error,
            ));
            drop(end);
            // Dropping the hooks and the sender now ends every recv().
            drop((hooks, tx));
        });
    let thread = match spawned {
        Ok(t) => t,
        Err(e) => {
            conn.inner.force_end(1006, "client thread not started");
            conn.inner.hub.stop();
            return Err(Error::Io(e));
        }
    };
    // Returns once on_open has run (or the thread ended without it).
    let _ = opened_rx.recv();
    Ok(ClientHandle {
        shared: Arc::new(Shared {
            reader_id: thread.thread().id(),
            reader: Mutex::new(Some(thread)),
            conn,
            ended,
            rx,
            queued,
            response,
        }),
    })
}

/// An open client connection. Cheap to clone, `Send + Sync`; it dereferences
/// to the shared [`Connection`], so it sends, pings and closes from any
/// thread just as a server-side handle does.
///
/// Without an `on_message` hook, messages wait in a queue for
/// [`recv`](ClientHandle::recv), [`recv_timeout`](ClientHandle::recv_timeout)
/// or [`messages`](ClientHandle::messages). The queue holds at most
/// [`Config::max_backlog`] bytes of unread messages; past that the client
/// closes the connection with 1008, as a server does with a slow peer.
///
/// Dropping the last handle closes the connection (1000) if it is open,
/// waits for the close handshake (bounded by [`Config::close_timeout`]) and
/// joins the client's threads; so does [`disconnect`](ClientHandle::disconnect).
/// A handle captured by the client's own hooks keeps the client alive until
/// the connection ends: hooks should use the `&Connection` they are given.
#[derive(Clone)]
pub struct ClientHandle {
    shared: Arc<Shared>,
}

struct Shared {
    conn: Connection,
    reader: Mutex<Option<JoinHandle<()>>>,
    reader_id: ThreadId,
    ended: Arc<Ended>,
    rx: Receiver<Message>,
    queued: Arc<AtomicUsize>,
    response: Vec<(String, String)>,
}

impl fmt::Debug for ClientHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientHandle")
            .field("peer", &self.shared.conn.peer_addr())
            .field("path", &self.shared.conn.path())
            .field("open", &self.shared.conn.is_open())
            .finish()
    }
}

impl Deref for ClientHandle {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.shared.conn
    }
}

impl ClientHandle {
    /// The shared connection handle (also reachable through `Deref`).
    pub fn connection(&self) -> &Connection {
        &self.shared.conn
    }

    /// Waits for the next queued message.
    ///
    /// # Errors
    /// [`Error::Closed`] once the connection has ended and every queued
    /// message was received ([`close_status`](ClientHandle::close_status)
    /// then says how it ended). With an `on_message` hook nothing is queued,
    /// so this waits for the end.
    pub fn recv(&self) -> Result<Message, Error> {
        let msg = self.shared.rx.recv().map_err(|_| Error::Closed)?;
        self.shared.queued.fetch_sub(msg.len(), Ordering::AcqRel);
        Ok(msg)
    }

    /// Waits at most `timeout` for the next queued message.
    ///
    /// # Errors
    /// [`Error::Timeout`] when none came in time; [`Error::Closed`] as for
    /// [`recv`](ClientHandle::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Message, Error> {
        let msg = self.shared.rx.recv_timeout(timeout).map_err(|e| match e {
            RecvTimeoutError::Timeout => Error::Timeout("no message arrived in time"),
            RecvTimeoutError::Disconnected => Error::Closed,
        })?;
        self.shared.queued.fetch_sub(msg.len(), Ordering::AcqRel);
        Ok(msg)
    }

    /// The queued messages as a blocking iterator that ends when the
    /// connection has ended and the queue is empty.
    pub fn messages(&self) -> impl Iterator<Item = Message> + '_ {
        std::iter::from_fn(move || self.recv().ok())
    }

    /// A header of the server's `101` answer, by case-insensitive name.
    pub fn response_header(&self, name: &str) -> Option<&str> {
        crate::http::header_value(&self.shared.response, name)
    }

    /// Every header of the server's `101` answer, as received.
    pub fn response_headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.shared
            .response
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How the connection ended (the code and reason `on_close` was given),
    /// or `None` while it is still running.
    pub fn close_status(&self) -> Option<(u16, String)> {
        self.shared.ended.status.lock().clone()
    }

    /// Waits at most `timeout` for the connection to end; returns how it
    /// ended, or `None` if it is still running.
    pub fn wait_closed(&self, timeout: Duration) -> Option<(u16, String)> {
        let deadline = crate::deadline::after(timeout);
        let mut status = self.shared.ended.status.lock();
        while status.is_none() {
            if self
                .shared
                .ended
                .cv
                .wait_until(&mut status, deadline)
                .timed_out()
            {
                break;
            }
        }
        status.clone()
    }

    /// Closes with `code` and `reason` (as [`Connection::close`]), waits for
    /// the connection to end (the close handshake is bounded by
    /// [`Config::close_timeout`]) and joins the client's threads. Returns
    /// how it ended.
    ///
    /// Called from one of this client's own hooks it cannot wait for its own
    /// thread: it then only begins the close and returns `None`.
    pub fn disconnect(&self, code: u16, reason: &str) -> Option<(u16, String)> {
        self.shared.finish(code, reason)
    }
}

impl Shared {
    fn finish(&self, code: u16, reason: &str) -> Option<(u16, String)> {
        if self.ended.status.lock().is_none() {
            self.conn.close(code, reason);
        }
        if std::thread::current().id() == self.reader_id {
            return None;
        }
        let thread = self.reader.lock().take();
        match thread {
            Some(t) => {
                let _ = t.join();
            }
            None => {
                // Another handle is joining it; the status comes just before the end.
                let mut status = self.ended.status.lock();
                while status.is_none() {
                    self.ended.cv.wait(&mut status);
                }
            }
        }
        self.ended.status.lock().clone()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.finish(1000, "");
    }
}

#[allow(dead_code)] // because this only checks at compile time.
fn assert_traits() {
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<ClientHandle>();
    send_sync::<Client>();
}
