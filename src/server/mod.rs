//! The server: routes, the acceptor thread, the pool of connection threads,
//! and `ServerHandle`, which stops it all.
//!
//! Architecture invariant: only the acceptor hands sockets to connection
//! threads, and every thread started here is joined by `ServerHandle::close`.
//!
//! A `Server` makes its hub and its `Closer` early, so that
//! `Server::broadcaster` and `Server::closer` work before `start`; the first
//! running start claims them. Idle pool threads wait 10 s for the next
//! socket, then exit. `handle` serves one request on the connection's
//! thread: the TLS handshake (for `start_tls`) and the request head within
//! the handshake timeout, then the route's upgrade, event stream or answer.
//!
//! Shutdown (`ServerHandle::close` or drop, on the thread that owns the
//! handle): set the closer (waking loops paused on it), the stop flag,
//! connect to ourselves to wake `accept()`, join the acceptor (the listener
//! closes), send 1001 to open connections and end event streams (queued
//! events are written), wait `shutdown_grace`, cut off the rest, join the
//! pool threads, leave the backplane (its subscriber joined), stop the
//! housekeeper. Called from a hook, it does all that but for the hook's own
//! thread, which it cuts off and which ends when the hook returns.

pub(crate) mod closer;
pub(crate) mod handler;
pub(crate) mod handshake;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::{Condvar, Mutex};

use crate::http::page::Page;
use crate::http::route::Routes;
use crate::http::{self, HeadError, Request};
use crate::server::handler::Handler;
use crate::session::connection::Parts;
use crate::session::hub::Hub;
use crate::sse::{EventPublisher, EventStream, Streams};
use crate::transport::{Stream, Transport};
use crate::wire::reader::{FrameReader, Limits, Role};
use crate::{Broadcaster, Closer, Config, Connection, Error, Reject, Resource, Response};

/// How long an idle pooled connection thread waits for the next client.
const IDLE_THREAD: Duration = Duration::from_secs(10);

thread_local! {
    /// On a pool thread: the server (its `Core`'s address) and the socket id
    /// it is serving, so that a shutdown begun by a hook knows its own thread.
    static SERVING: std::cell::Cell<Option<(usize, u64)>> = const { std::cell::Cell::new(None) };
}

/// The socket this thread is serving for `core`, if it is one of its pool
/// threads (then it runs the hook that called us).
fn serving_here(core: &Core) -> Option<u64> {
    let key = core as *const Core as usize;
    SERVING
        .with(std::cell::Cell::get)
        .and_then(|(c, id)| (c == key).then_some(id))
}

/// What a path leads to.
pub(crate) enum Endpoint {
    Socket(Arc<Resource>),
    Events(Arc<EventStream>),
    Page(Page),
    Handler(Handler),
    Metrics,
}

/// A server being set up: its settings and its routes. Start it with
/// [`Server::start`], which returns a [`ServerHandle`].
///
/// ```
/// use wsportal::{Resource, Server};
/// let mut server = Server::new();
/// server.define_resource("/echo", Resource::new().on_message(|ws, msg| {
///     let _ = ws.send(msg);
/// }));
/// let handle = server.start("127.0.0.1:0")?;
/// println!("listening on ws://{}/echo", handle.local_addr());
/// handle.close();
/// # Ok::<(), wsportal::Error>(())
/// ```
pub struct Server {
    config: Config,
    routes: Routes<Arc<Endpoint>>,
    route_error: Option<Error>,
    event_streams: Vec<Arc<EventStream>>,
    /// The hub of the first running server started from this one, made
    /// early so that [`Server::broadcaster`] works before `start`.
    hub: Arc<Hub>,
    /// The closer of that same server, for [`Server::closer`].
    closer: Closer,
    /// The routes of the WebSocket resources, for `stats()`.
    resources: Vec<String>,
    /// The backplane each running server joins.
    #[cfg(feature = "redis")]
    backplane: Option<crate::Backplane>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Default for Server {
    fn default() -> Server {
        Server::new()
    }
}

impl Server {
    /// A server with the default [`Config`].
    pub fn new() -> Server {
        Server::with_config(Config::default())
    }

    /// A server with these settings.
    pub fn with_config(config: Config) -> Server {
        Server {
            hub: Hub::idle_for_config(&config),
            closer: Closer::new(),
            config,
            routes: Routes::default(),
            route_error: None,
            event_streams: Vec::new(),
            resources: Vec::new(),
            #[cfg(feature = "redis")]
            backplane: None,
        }
    }

    /// Links this server with the other instances sharing `backplane`
    /// (feature `redis`): from then on (each time it is started),
    /// [`Broadcaster::to_resource`], [`Broadcaster::to_group`],
    /// [`Broadcaster::to_all`], [`EventPublisher::send`] and
    /// [`EventPublisher::to_group`] reach the matching clients of every
    /// instance, and group presence counts across them. Each start joins
    /// as a new instance, with one subscriber thread that
    /// [`ServerHandle::close`] joins. Redis need not be up at the start:
    /// the server serves its own clients and connects when it can.
    #[cfg(feature = "redis")]
    pub fn backplane(&mut self, backplane: crate::Backplane) -> &mut Server {
        self.backplane = Some(backplane);
        self
    }

    /// Registers a WebSocket resource at `path`: an exact path such as
    /// `/echo`, or a pattern with named segments such as `/chat/:room`
    /// (read them with [`Connection::param`]). A malformed or repeated path
    /// (or a malformed [`Resource::origins`] entry) is reported by
    /// [`Server::start`].
    pub fn define_resource(&mut self, path: &str, resource: Resource) -> &mut Server {
        self.resources.push(path.to_owned());
        if let Some(origin) = resource.invalid_origin() {
            let reason = format!(
                "{origin:?} (for {path:?}) is not an origin: scheme://host[:port], without a path"
            );
            self.route_error.get_or_insert(Error::Config {
                setting: "origins",
                reason,
            });
            return self;
        }
        self.define(path, Endpoint::Socket(Arc::new(resource)))
    }

    /// Registers a Server-Sent Events stream at `path` (same path syntax as
    /// [`Server::define_resource`]; read named segments with
    /// [`EventClient::param`](crate::EventClient::param)). Push to its clients
    /// with [`EventStream::publisher`] or [`ServerHandle::event_stream`].
    pub fn define_event_stream(&mut self, path: &str, stream: EventStream) -> &mut Server {
        let _ = stream.shared.route.set(path.to_owned());
        let stream = Arc::new(stream);
        self.event_streams.push(Arc::clone(&stream));
        self.define(path, Endpoint::Events(stream))
    }

    /// Registers a plain page at `path`: `GET` answers `body` with this
    /// `Content-Type` (and its `Content-Length`), `HEAD` the same headers
    /// without the body, any other method `405` with `Allow: GET, HEAD`.
    /// A content type with a newline is reported by [`Server::start`].
    pub fn define_page(
        &mut self,
        path: &str,
        content_type: &str,
        body: impl Into<Vec<u8>>,
    ) -> &mut Server {
        if !Page::valid_content_type(content_type) {
            let why = format!("content type of page {path:?} is empty or has a newline");
            self.route_error.get_or_insert(Error::Route(why));
            return self;
        }
        self.define(path, Endpoint::Page(Page::new(content_type, body.into())))
    }

    /// Registers a dynamic page at `path` (same path syntax as
    /// [`Server::define_resource`]; read named segments with
    /// [`Request::param`]): `GET` answers what `handler` returns for the
    /// request, `HEAD` the same head without the body, any other method
    /// `405` with `Allow: GET, HEAD`. The handler runs on the connection's
    /// thread; a panic in it is answered `500` (and logged at error level
    /// under [`Config::debug_on_error`], at debug level otherwise).
    ///
    /// ```
    /// use wsportal::{Response, Server};
    /// let mut server = Server::new();
    /// let counts = server.broadcaster();
    /// server.define_handler("/stats", move |_req| {
    ///     Response::json(format!("{{\"clients\":{}}}", counts.connection_count()))
    /// });
    /// ```
    pub fn define_handler(
        &mut self,
        path: &str,
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> &mut Server {
        self.define(path, Endpoint::Handler(Handler::new(handler)))
    }

    /// Serves the server's [`Stats`](crate::Stats) at `path` in the
    /// Prometheus text exposition format
    /// ([`Stats::to_prometheus`](crate::Stats::to_prometheus)), for a
    /// Prometheus server to scrape: `GET` answers them (`Content-Type:
    /// text/plain; version=0.0.4`), `HEAD` the same head, any other method
    /// `405`. The page is not protected: serve it on an address only your
    /// monitoring reaches, or put a proxy in front, if the counts are private.
    ///
    /// ```
    /// use wsportal::{Resource, Server};
    /// let mut server = Server::new();
    /// server
    ///     .define_resource("/echo", Resource::new())
    ///     .define_metrics("/metrics");
    /// ```
    pub fn define_metrics(&mut self, path: &str) -> &mut Server {
        self.define(path, Endpoint::Metrics)
    }

    /// A handle for pushing to this server's WebSocket connections from any
    /// thread, to hand to hooks and threads set up before [`Server::start`].
    /// It reaches the server once it runs (until then, and after it closes,
    /// every push finds nobody). If this `Server` is started more than once
    /// at a time, it reaches the first of those that is running.
    pub fn broadcaster(&self) -> Broadcaster {
        Broadcaster::new(Arc::clone(&self.hub))
    }

    /// A [`Closer`] for this server, to hand to hooks set up before
    /// [`Server::start`] (an "admin: stop" message, say): it asks the server
    /// to close once it runs, as [`ServerHandle::closer`] does. (A close
    /// asked before the start is forgotten by it; as for
    /// [`Server::broadcaster`], it is the first running server's.)
    pub fn closer(&self) -> Closer {
        self.closer.clone()
    }

    fn define(&mut self, path: &str, endpoint: Endpoint) -> &mut Server {
        if let Err(e) = self.routes.add(path, Arc::new(endpoint)) {
            self.route_error.get_or_insert(e);
        }
        self
    }

    /// Listens on `addr` and starts serving on a new acceptor thread.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad setting (or a bad
    /// [`Resource::origins`] entry), [`Error::Route`] for a bad path
    /// (or an event stream another running server serves),
    /// [`Error::Bind`] (naming the address) when it cannot listen there.
    pub fn start<A: ToSocketAddrs + fmt::Display>(&self, addr: A) -> Result<ServerHandle, Error> {
        self.start_with(addr, None)
    }

    /// Listens on `addr` and serves every connection over TLS (feature
    /// `tls`): `wss://` for resources, `https://` for event streams, pages
    /// and handlers, all as [`Server::start`] serves them. Each TLS handshake
    /// runs on its connection's thread and counts against
    /// [`Config::handshake_timeout`]; a client that sends anything but TLS
    /// (plain HTTP, garbage) is dropped with a `debug!` line.
    ///
    /// # Errors
    /// As [`Server::start`].
    #[cfg(feature = "tls")]
    pub fn start_tls<A: ToSocketAddrs + fmt::Display>(
        &self,
        addr: A,
        tls: crate::TlsConfig,
    ) -> Result<ServerHandle, Error> {
        self.start_with(addr, Some(tls))
    }

    fn start_with<A: ToSocketAddrs + fmt::Display>(
        &self,
        addr: A,
        tls: Option<TlsSetting>,
    ) -> Result<ServerHandle, Error> {
        self.config.validate()?;
        #[cfg(feature = "redis")]
        if let Some(bp) = &self.backplane {
            bp.validate()?;
        }
        match &self.route_error {
            Some(Error::Config { setting, reason }) => {
                return Err(Error::Config {
                    setting,
                    reason: reason.clone(),
                })
            }
            Some(e) => return Err(Error::Route(e.to_string())),
            None => {}
        }
        let bind_err = |source| Error::Bind {
            addr: addr.to_string(),
            source,
        };
        let listener = listen(&addr).map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        let c = &self.config;
        // Our own hub (the one `Server::broadcaster` reaches) unless another
        // running server started from this one has it.
        let (hub, closer) = match self.hub.run()? {
            true => (Arc::clone(&self.hub), self.closer.reopened()),
            false => (Hub::for_config(c)?, Closer::new()),
        };
        let sse = match Streams::claim(&self.event_streams, c.sse_keepalive, c.write_timeout) {
            Ok(sse) => Arc::new(sse),
            Err(e) => {
                hub.stop();
                return Err(e);
            }
        };
        let chores: std::sync::Weak<Streams> = Arc::downgrade(&sse);
        hub.add_chores(chores);
        let core = Arc::new(Core {
            config: self.config.clone(),
            routes: self.routes.clone(),
            hub,
            sse,
            sockets: Mutex::new(HashMap::new()),
            sockets_empty: Condvar::new(),
            upgrading: Mutex::new(HashSet::new()),
            next_id: AtomicU64::new(1),
            active: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            pool: Mutex::new(Pool::default()),
            resources: self.resources.clone(),
            tls,
        });
        let gauges: std::sync::Weak<Core> = Arc::downgrade(&core);
        core.hub.stats.attach(gauges);
        let (jobs, job_rx) = crossbeam_channel::unbounded();
        let acceptor_core = Arc::clone(&core);
        let acceptor = std::thread::Builder::new()
            .name("wsportal-acceptor".into())
            .stack_size(128 << 10)
            .spawn(move || accept_loop(&acceptor_core, &listener, &jobs, &job_rx));
        let acceptor = match acceptor {
            Ok(t) => t,
            Err(e) => {
                core.hub.stop();
                core.sse.release();
                return Err(Error::Io(e));
            }
        };
        #[cfg_attr(not(feature = "redis"), allow(unused_mut))]
        // because only joining a backplane changes it.
        let mut handle = ServerHandle {
            core,
            acceptor: Some(acceptor),
            local_addr,
            closer,
            #[cfg(feature = "redis")]
            cluster: None,
        };
        #[cfg(feature = "redis")]
        if let Some(bp) = &self.backplane {
            // On an error the handle's drop stops what started.
            handle.join_cluster(bp)?;
        }
        log::debug!("listening on {local_addr}");
        Ok(handle)
    }
}

/// The backplane (feature `redis`).
#[cfg(feature = "redis")]
impl ServerHandle {
    fn join_cluster(&mut self, bp: &crate::Backplane) -> Result<(), Error> {
        let node = Arc::new(crate::backplane::Node::new(bp.clone()));
        let core = &self.core;
        let cluster: Arc<dyn crate::session::cluster::Cluster> = node.clone();
        core.hub.set_cluster(Some(Arc::clone(&cluster)));
        core.sse.set_cluster(Some(&cluster));
        let sub = crate::backplane::Subscriber::start(
            node,
            Arc::clone(&core.hub),
            Arc::clone(&core.sse),
        )?;
        self.cluster = Some(sub);
        Ok(())
    }

    /// Leaves the cluster: subscriber and presence threads joined, then
    /// presence removed (so no refresh writes it back).
    fn leave_cluster(&mut self) {
        let Some(mut sub) = self.cluster.take() else {
            return;
        };
        sub.stop();
        let core = &self.core;
        if let Some(node) = core.hub.cluster() {
            let groups: Vec<String> = core.hub.group_names().into_iter().map(|(g, _)| g).collect();
            node.retire(&groups);
        }
        core.hub.set_cluster(None);
        core.sse.set_cluster(None);
    }
}

#[derive(Default)]
struct Pool {
    idle: usize,
    threads: Vec<JoinHandle<()>>,
}

struct Core {
    config: Config,
    routes: Routes<Arc<Endpoint>>,
    hub: Arc<Hub>,
    /// Event streams and their open clients.
    sse: Arc<Streams>,
    /// Every socket being served, handshaking or open, for shutdown.
    sockets: Mutex<HashMap<u64, Arc<Stream>>>,
    /// Notified whenever a socket leaves `sockets`.
    sockets_empty: Condvar,
    /// Sockets whose `101` is being written or was written: a shutdown
    /// does not cut them but leaves them the 1001 `Hub::register` sends.
    upgrading: Mutex<HashSet<u64>>,
    next_id: AtomicU64,
    active: AtomicUsize,
    stopping: AtomicBool,
    pool: Mutex<Pool>,
    /// The routes of the WebSocket resources, for `stats()`.
    resources: Vec<String>,
    /// Set when every connection is TLS.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))] // because it is read with TLS only.
    tls: Option<TlsSetting>,
}

impl crate::session::stats::Gauges for Core {
    fn resources(&self) -> Vec<String> {
        self.resources.clone()
    }

    fn event_clients(&self) -> Vec<(String, usize)> {
        self.sse.clients_per_stream()
    }

    fn event_backlogs(&self) -> Vec<usize> {
        self.sse.backlogs()
    }

    fn threads(&self) -> (usize, usize) {
        let idle = self.pool.lock().idle;
        (self.active.load(Ordering::SeqCst), idle)
    }
}

/// A server's TLS settings (with feature `tls`; a type without values otherwise).
#[cfg(feature = "tls")]
type TlsSetting = crate::TlsConfig;
#[cfg(not(feature = "tls"))]
type TlsSetting = std::convert::Infallible;

type Job = (TcpStream, SocketAddr);

/// Connections the kernel completes before the acceptor takes them. std's
/// `TcpListener::bind` asks for 128, which a burst of clients overflows
/// while the acceptor starts their threads (SYN cookies, dropped
/// handshakes); the kernel caps this at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 1024;

/// `TcpListener::bind` (the first address that binds, `SO_REUSEADDR` on
/// Unix as std sets it), with a backlog of [`LISTEN_BACKLOG`].
fn listen(addr: impl ToSocketAddrs) -> std::io::Result<TcpListener> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        let bound = (|| {
            let s =
                socket2::Socket::new(socket2::Domain::for_address(a), socket2::Type::STREAM, None)?;
            #[cfg(unix)]
            s.set_reuse_address(true)?;
            s.bind(&a.into())?;
            s.listen(LISTEN_BACKLOG)?;
            Ok(TcpListener::from(s))
        })();
        match bound {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

fn accept_loop(
    core: &Arc<Core>,
    listener: &TcpListener,
    jobs: &Sender<Job>,
    job_rx: &Receiver<Job>,
) {
    // Accepts failed in a row: out of file descriptors and the like.
    let mut failed = 0u64;
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(pair) => pair,
            Err(e) => {
                if core.stopping.load(Ordering::SeqCst) {
                    return;
                }
                // Said once, not a hundred times a second.
                if failed == 0 {
                    log::warn!("accept failed: {e}; retrying every 10 ms");
                } else {
                    log::debug!("accept failed again: {e}");
                }
                failed += 1;
                // Do not spin.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if failed > 0 {
            log::info!("accepting again after {failed} failed attempts");
            failed = 0;
        }
        if core.stopping.load(Ordering::SeqCst) {
            return;
        }
        if core.active.load(Ordering::SeqCst) >= core.config.max_connections {
            log::debug!(
                "refusing {peer}: {} connections open",
                core.config.max_connections
            );
            core.hub.stats.refused(503);
            match core.tls {
                // A TLS client could not read a plain answer.
                Some(_) => drop(stream),
                None => refuse_busy(stream),
            }
            continue;
        }
        core.active.fetch_add(1, Ordering::SeqCst);
        let mut pool = core.pool.lock();
        if pool.idle > 0 {
            pool.idle -= 1;
            // The channel is unbounded and its receivers live as long as the pool.
            let _ = jobs.send((stream, peer));
            continue;
        }
        pool.threads.retain(|t| !t.is_finished());
        let (c, rx) = (Arc::clone(core), job_rx.clone());
        let spawned = std::thread::Builder::new()
            .name("wsportal-conn".into())
            .stack_size(core.config.thread_stack_size)
            .spawn(move || worker(&c, &rx, (stream, peer)));
        match spawned {
            Ok(t) => pool.threads.push(t),
            Err(e) => {
                log::warn!("cannot start a connection thread: {e}");
                core.active.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// Answers 503 without a thread: whatever request bytes already arrived are
/// read first, so that closing does not reset the connection before the answer.
fn refuse_busy(mut stream: TcpStream) {
    let _ = stream.set_nonblocking(true);
    let mut scratch = [0u8; 4096];
    let _ = stream.read(&mut scratch);
    let reject = Reject::new(503)
        .header("Retry-After", "1")
        .body("too many connections");
    let _ = stream.write_all(&reject.to_bytes());
    let _ = stream.shutdown(Shutdown::Write);
}

fn worker(core: &Arc<Core>, jobs: &Receiver<Job>, first: Job) {
    let mut job = Some(first);
    loop {
        if let Some((stream, peer)) = job.take() {
            serve(core, stream, peer);
            core.active.fetch_sub(1, Ordering::SeqCst);
        }
        core.pool.lock().idle += 1;
        match jobs.recv_timeout(IDLE_THREAD) {
            Ok(j) => job = Some(j),
            Err(RecvTimeoutError::Timeout) => {
                // Under the pool lock: either the acceptor already counted on
                // this thread (and its job is waiting), or no one will.
                let mut pool = core.pool.lock();
                match jobs.try_recv() {
                    Ok(j) => job = Some(j),
                    Err(_) => {
                        pool.idle -= 1;
                        return;
                    }
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                core.pool.lock().idle -= 1;
                return;
            }
        }
    }
}

/// Serves one socket from its first byte to its close.
fn serve(core: &Core, tcp: TcpStream, peer: SocketAddr) {
    let id = core.next_id.fetch_add(1, Ordering::Relaxed);
    let Some(stream) = wrap(core, tcp, peer) else {
        return;
    };
    let stream = Arc::new(stream);
    core.sockets.lock().insert(id, Arc::clone(&stream));
    if !core.stopping.load(Ordering::SeqCst) {
        SERVING.with(|s| s.set(Some((core as *const Core as usize, id))));
        crate::session::stats::serving(Some(Arc::clone(&core.hub.stats)));
        handle(core, id, &stream, peer);
        crate::session::stats::serving(None);
        SERVING.with(|s| s.set(None));
    }
    core.sockets.lock().remove(&id);
    core.upgrading.lock().remove(&id);
    // Every departure: a shutdown begun by a hook waits for all but one.
    core.sockets_empty.notify_all();
}

/// The socket as this server speaks on it: plain, or a TLS session not yet
/// shaken hands.
fn wrap(core: &Core, tcp: TcpStream, peer: SocketAddr) -> Option<Stream> {
    #[cfg(feature = "tls")]
    if let Some(tls) = &core.tls {
        return match tls.session() {
            Ok(session) => Some(Stream::tls(tcp, session)),
            Err(e) => {
                log::debug!("{peer}: cannot start a TLS session: {e}");
                None
            }
        };
    }
    let _ = (core, peer);
    Some(Stream::plain(tcp))
}

fn handle(core: &Core, id: u64, stream: &Arc<Stream>, peer: SocketAddr) {
    let c = &core.config;
    let _ = stream.set_nodelay(c.nodelay);
    let _ = stream.set_write_timeout(Some(c.handshake_timeout));
    let deadline = crate::deadline::after(c.handshake_timeout);
    #[cfg(feature = "tls")]
    if let Err(e) = stream.handshake(deadline) {
        log::debug!("{peer}: TLS handshake failed: {e}; dropped");
        return;
    }
    let mut set_timeout = |d: Duration| stream.set_read_timeout(Some(d));
    let head = http::read_head(
        &mut Transport::waiting(stream),
        &mut set_timeout,
        peer,
        c.max_header_size,
        deadline,
    );
    let (mut req, leftover) = match head {
        Ok(r) => r,
        Err(HeadError::TooLarge) => {
            return refuse(
                stream,
                peer,
                None,
                &Reject::new(431).body("request head too large"),
            )
        }
        Err(HeadError::Malformed(why)) => {
            return refuse(stream, peer, None, &Reject::new(400).body(why));
        }
        Err(HeadError::Timeout) => {
            log::debug!("{peer}: no complete request within the handshake timeout; dropped");
            return;
        }
        Err(HeadError::Io(e)) => {
            log::debug!("{peer}: connection ended before a complete request: {e}");
            return;
        }
    };
    let Some((endpoint, params, route)) = core.routes.find(&req.path) else {
        return refuse(
            stream,
            peer,
            Some(&req),
            &Reject::new(404).body("not found"),
        );
    };
    let Some(params) = crate::http::route::decode_params(params) else {
        let why = "a path parameter is not utf-8 once percent-decoded";
        return refuse(stream, peer, Some(&req), &Reject::new(400).body(why));
    };
    req.params = params;
    let route = route.to_owned();
    match &**endpoint {
        Endpoint::Socket(resource) => {
            #[allow(unused_mut)] // because only the deflate feature changes it.
            let mut up = match crate::server::handshake::upgrade(&req, resource) {
                Ok(up) => up,
                Err(reject) => return refuse(stream, peer, Some(&req), &reject),
            };
            #[cfg(feature = "deflate")]
            crate::server::handshake::negotiate(&req, resource, c.deflate.as_ref(), &mut up);
            // SeqCst, after the set's lock: either a shutdown sees this
            // socket upgrading (and leaves it its 1001), or this load sees
            // the shutdown and no 101 goes out.
            core.upgrading.lock().insert(id);
            if core.stopping.load(Ordering::SeqCst) {
                let reject = Reject::new(503).body("server shutting down");
                return refuse(stream, peer, Some(&req), &reject);
            }
            core.hub.stats.websocket_accepted();
            let mut t = Transport::waiting(stream);
            if let Err(e) = t.write_all(&up.response).and_then(|()| t.flush()) {
                log::debug!("{peer}: could not send the upgrade response: {e}");
                return;
            }
            let _ = stream.set_read_timeout(None);
            let _ = stream.set_write_timeout(Some(c.write_timeout));
            let parts = Parts {
                stream: Arc::clone(stream),
                request: req,
                route,
                protocol: up.protocol,
                data: up.data,
                role: Role::Server,
                #[cfg(feature = "deflate")]
                deflate: up.deflate.map(|a| (a, c.deflate.unwrap_or_default())),
            };
            let conn = Connection::new(id, parts, Arc::clone(&core.hub));
            let limits = Limits {
                max_frame: c.max_frame_size,
                max_message: c.max_message_size,
            };
            let reader = FrameReader::new(Role::Server, limits, c.read_buffer_size, &leftover);
            #[cfg(feature = "deflate")]
            let reader = reader.with_inflater(
                up.deflate
                    .map(|a| crate::wire::deflate::Inflater::new(a.client())),
            );
            crate::session::run(&conn, reader, resource, c.debug_on_error);
        }
        Endpoint::Events(events) => match crate::sse::admit(events, &req, c.debug_on_error) {
            Ok(accept) => {
                core.hub.stats.event_stream_accepted();
                let path = req.path.clone();
                let opened = crate::sse::Opened {
                    id,
                    stream: Arc::clone(stream),
                    request: req,
                    accept,
                    hub: Arc::clone(&core.hub),
                    debug_on_error: c.debug_on_error,
                };
                if let Err(reject) = crate::sse::run(events, &core.sse, opened) {
                    log::debug!("{peer}: answered {} for {path}", reject.status());
                    answer(stream, &reject.to_bytes());
                }
            }
            Err(reject) => refuse(stream, peer, Some(&req), &reject),
        },
        Endpoint::Page(page) => {
            log::debug!("{peer}: {} {}", req.method(), req.path);
            answer(stream, &page.response(&req));
        }
        Endpoint::Handler(handler) => {
            log::debug!("{peer}: {} {}", req.method(), req.path);
            answer(stream, &handler.respond(&req, c.debug_on_error));
        }
        Endpoint::Metrics => {
            log::debug!("{peer}: {} {}", req.method(), req.path);
            let page = crate::session::stats::metrics_response(&req, &core.hub, c.debug_on_error);
            answer(stream, &page);
        }
    }
}

/// Answers a refusal (without its body to `HEAD`) and closes; `req` is
/// `None` when the request could not be read.
fn refuse(stream: &Stream, peer: SocketAddr, req: Option<&Request>, reject: &Reject) {
    let path = req.map_or("-", |r| r.path());
    log::debug!("{peer}: answered {} for {path}", reject.status());
    crate::session::stats::refused_here(reject.status());
    let head_only = req.is_some_and(|r| r.method() == "HEAD");
    answer(stream, &reject.response(head_only));
}

/// Writes a whole response, then closes the connection gently.
fn answer(stream: &Stream, response: &[u8]) {
    let mut s = Transport::waiting(stream);
    let _ = s.write_all(response);
    let _ = s.flush();
    stream.close_notify();
    let _ = stream.shutdown(Shutdown::Write);
    // Read what the client still sends (bounded), so closing does not reset
    // the connection before it has read the answer.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut scratch = [0u8; 1024];
    for _ in 0..16 {
        match s.read(&mut scratch) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

/// A running server. [`ServerHandle::close`] (or dropping the handle) stops
/// it: the listener closes at once, open connections get 1001 Going Away and
/// `shutdown_grace` to finish their close handshakes, and every thread is joined.
pub struct ServerHandle {
    core: Arc<Core>,
    acceptor: Option<JoinHandle<()>>,
    local_addr: SocketAddr,
    closer: Closer,
    /// The backplane subscriber, when the server has a backplane.
    #[cfg(feature = "redis")]
    cluster: Option<crate::backplane::Subscriber>,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .field("connections", &self.connection_count())
            .finish()
    }
}

impl ServerHandle {
    /// The address the server listens on (with the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How many WebSocket connections are open.
    pub fn connection_count(&self) -> usize {
        self.core.hub.count()
    }

    /// A snapshot of what the server is doing: connections per resource,
    /// event clients per stream, groups, message and byte totals,
    /// handshakes, refusals, closes, hook panics, backlogs and threads.
    /// Taking one visits every open connection (briefly, under the lock
    /// a closing connection takes); the counting itself costs the message
    /// path no lock.
    pub fn stats(&self) -> crate::Stats {
        crate::session::stats::snapshot(&self.core.hub)
    }

    /// A handle for pushing to connections and groups from any thread.
    pub fn broadcaster(&self) -> Broadcaster {
        Broadcaster::new(Arc::clone(&self.core.hub))
    }

    /// A handle for pushing events, from any thread, to the clients of the
    /// event stream defined at `route` (the path as given to
    /// [`Server::define_event_stream`]); `None` if there is none.
    pub fn event_stream(&self, route: &str) -> Option<EventPublisher> {
        self.core.sse.publisher(route)
    }

    /// How many event-stream (SSE) clients are connected, counting every
    /// stream of this server; one stream's count is
    /// [`EventPublisher::client_count`].
    pub fn event_client_count(&self) -> usize {
        self.core.sse.count()
    }

    /// Stops the server and waits until every thread it started has ended.
    ///
    /// Called (or the handle dropped) from one of this server's own hooks,
    /// it cannot wait for the thread that hook runs on: it does everything
    /// else (the listener closes, every other client gets its grace period,
    /// every other thread is joined), cuts the hook's own client off with
    /// 1001, and returns; that thread ends as soon as the hook returns.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        // Loops pausing on a `Closer` end now, not after the grace period.
        self.closer.close();
        let core = &self.core;
        core.stopping.store(true, Ordering::SeqCst);
        core.hub.go_away();
        // Wake the blocked accept() by connecting to ourselves.
        let _ = TcpStream::connect_timeout(&wake_addr(self.local_addr), Duration::from_secs(1));
        let _ = acceptor.join();
        log::debug!("listener on {} closed", self.local_addr);

        // Going Away to open connections, the end of the stream to event
        // clients; a socket still reading its request is cut (one whose 101
        // is on the way gets its 1001 as it registers). From a hook, the hook's
        // own connection is cut off below instead: its thread cannot read
        // the answer until the hook returns.
        let own = serving_here(core);
        let sockets: Vec<(u64, Arc<Stream>)> = core
            .sockets
            .lock()
            .iter()
            .map(|(k, v)| (*k, Arc::clone(v)))
            .collect();
        for (id, stream) in &sockets {
            match core.hub.connection(*id) {
                Some(_) if Some(*id) == own => {}
                Some(conn) => conn.inner.send_close(1001, "server shutting down"),
                None if core.sse.close_client(*id) => {}
                // Its 101 is on the way; it gets its 1001 as it registers.
                None if core.upgrading.lock().contains(id) => {}
                None => {
                    let _ = stream.shutdown(Shutdown::Both);
                }
            }
        }
        // From a hook, the hook's own socket stays open until it returns.
        let deadline = crate::deadline::after(core.config.shutdown_grace);
        let mut open = core.sockets.lock();
        while open.keys().any(|id| Some(*id) != own)
            && !core
                .sockets_empty
                .wait_until(&mut open, deadline)
                .timed_out()
        {}
        let left: Vec<(u64, Arc<Stream>)> = open.iter().map(|(k, v)| (*k, Arc::clone(v))).collect();
        drop(open);
        for (id, stream) in left {
            match core.hub.connection(id) {
                Some(conn) => conn.inner.force_end(1001, "server shutting down"),
                None => {
                    let _ = stream.shutdown(Shutdown::Both);
                }
            }
        }
        let threads = std::mem::take(&mut core.pool.lock().threads);
        let me = std::thread::current().id();
        for t in threads {
            // Our own thread (`own` above) cannot be joined; it is cut off
            // and ends when its hook returns.
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
        #[cfg(feature = "redis")]
        self.leave_cluster();
        let core = &self.core;
        core.hub.stop();
        core.sse.release();
        log::debug!("server on {} stopped", self.local_addr);
    }
}

/// Waiting for a close asked for elsewhere (see [`Closer`]).
impl ServerHandle {
    /// A handle that asks this server to close, from any thread (a Ctrl-C
    /// handler, a hook, a timer); the thread in [`ServerHandle::wait`] then
    /// closes it.
    pub fn closer(&self) -> Closer {
        self.closer.clone()
    }

    /// Blocks until a [`Closer`] of this server asks it to close. Then
    /// call [`ServerHandle::close`] (or drop the handle), which does the
    /// closing on this thread:
    ///
    /// ```no_run
    /// # let server = wsportal::Server::new();
    /// let handle = server.start("127.0.0.1:9001")?;
    /// let closer = handle.closer();
    /// // Elsewhere: a hook, a timer, or a Ctrl-C handler (see the crate docs).
    /// std::thread::spawn(move || closer.close());
    /// handle.wait(); // serves until then
    /// handle.close(); // 1001 to every client, then every thread is joined
    /// # Ok::<(), wsportal::Error>(())
    /// ```
    pub fn wait(&self) {
        self.closer.wait();
    }

    /// Blocks until a [`Closer`] asks this server to close or `timeout`
    /// has passed; returns whether a close was asked for. The server keeps
    /// running either way until [`ServerHandle::close`].
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.closer.wait_timeout(timeout)
    }
}

/// Where to connect to wake our own `accept()`: a wildcard address means loopback.
fn wake_addr(addr: SocketAddr) -> SocketAddr {
    let mut a = addr;
    if a.ip().is_unspecified() {
        a.set_ip(match a {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    a
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[allow(dead_code)] // because this only checks at compile time.
fn assert_traits() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ServerHandle>();
    send_sync::<Request>();
}
