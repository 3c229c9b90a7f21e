//! The server layer: a [`Server`] being set up (its settings and routes),
//! the acceptor thread and the pool of connection threads that serve its
//! sockets, the handling of one request on such a thread, and the
//! [`ServerHandle`] that stops it all.
//!
//! May use every layer below it: `session` (the hub, connections, hooks,
//! the counters), `sse`, `backplane`, `http`, `transport`, `wire`, and the
//! base types. Nothing below imports from here.
//!
//! Architecture invariant: only the acceptor hands sockets to connection
//! threads, and every thread started here is joined by `ServerHandle::close`.
//!
//! A `Server` makes its hub and its `Closer` early, so that
//! `Server::broadcaster` and `Server::closer` work before `start`; the first
//! running start claims them. The rest is by concern: `core.rs` (what a
//! running server shares), `acceptor.rs` (the listener, the acceptor thread
//! and the pool), `request.rs` (one request), `shutdown.rs`
//! (`ServerHandle`, and the order a server stops in), `handshake.rs` (the
//! WebSocket upgrade), `handler.rs` (handlers and their `Response`),
//! `metrics.rs` (the `/metrics` page and `Stats::to_prometheus`),
//! `closer.rs` (`Closer`).

mod acceptor;
pub(crate) mod closer;
mod core;
pub(crate) mod handler;
pub(crate) mod handshake;
mod metrics;
pub(crate) mod page;
mod request;
mod shutdown;

pub use self::shutdown::ServerHandle;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use self::acceptor::{accept_loop, listen, Listener};
use self::core::{Core, Pool, TlsSetting};
use crate::http::route::Routes;
use crate::http::Request;
use crate::server::handler::Handler;
use crate::server::page::Page;
use crate::session::hub::Hub;
use crate::sse::{EventStream, Streams};
use crate::{Broadcaster, Closer, Config, Error, Resource, Response};

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
    ///
    /// [`EventPublisher::send`]: crate::EventPublisher::send
    /// [`EventPublisher::to_group`]: crate::EventPublisher::to_group
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
    ///
    /// [`Connection::param`]: crate::Connection::param
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

    /// Registers a handler at `path` for these methods (`"POST"`, `"PUT"`,
    /// `"DELETE"`...; `GET` brings `HEAD` with it): the request's body is
    /// read whole before the handler runs ([`Request::body`]; `Content-Length`
    /// or `chunked`, at most [`Config::max_body_size`], else `413`; bad
    /// framing `400`; within [`Config::handshake_timeout`], else `408`;
    /// `Expect: 100-continue` is answered). Any other method is answered
    /// `405` with `Allow`. Otherwise as [`Server::define_handler`]. An
    /// empty list, or a method that is not an HTTP token, is reported by
    /// [`Server::start`].
    ///
    /// ```
    /// use wsportal::{Resource, Response, Server};
    /// let mut server = Server::new();
    /// let chat = server.broadcaster();
    /// server
    ///     .define_resource("/chat", Resource::new())
    ///     .define_handler_for("/hook", &["POST"], move |req| {
    ///         match std::str::from_utf8(req.body()) {
    ///             Ok(text) => {
    ///                 let _ = chat.to_resource("/chat", text);
    ///                 Response::new(204)
    ///             }
    ///             Err(_) => Response::new(400).text_body("not utf-8"),
    ///         }
    ///     });
    /// ```
    pub fn define_handler_for(
        &mut self,
        path: &str,
        methods: &[&str],
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> &mut Server {
        if methods.is_empty() {
            let why = format!("handler {path:?} has no methods");
            self.route_error.get_or_insert(Error::Route(why));
            return self;
        }
        if let Some(bad) = methods.iter().find(|m| !crate::http::is_token(m)) {
            let why = format!("method {bad:?} of handler {path:?} is not an http token");
            self.route_error.get_or_insert(Error::Route(why));
            return self;
        }
        let methods = methods.iter().map(|m| (*m).to_owned()).collect();
        self.define(
            path,
            Endpoint::Handler(Handler::for_methods(methods, handler)),
        )
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

    /// Listens on the Unix-domain socket `path` (Unix only) and serves as
    /// [`Server::start`] does: the usual way behind nginx on the same
    /// machine (`proxy_pass http://unix:/run/app.sock;`). The socket file
    /// is created (a stale one that nobody answers is replaced) and
    /// removed when the server closes; who may connect is up to its
    /// permissions and its directory's. There is no peer IP address: a
    /// client's [`Request::peer_addr`] is `0.0.0.0:0` unless it comes
    /// through a trusted proxy (list `0.0.0.0` in
    /// [`Config::trusted_proxies`] to trust the proxy on the socket), and
    /// [`ServerHandle::local_addr`] is `0.0.0.0:0` too
    /// ([`ServerHandle::unix_path`] names the socket).
    ///
    /// # Errors
    /// As [`Server::start`]; [`Error::Bind`] names the path when it cannot
    /// listen there (a live server on it, no such directory, no permission).
    #[cfg(unix)]
    pub fn start_unix(&self, path: impl AsRef<std::path::Path>) -> Result<ServerHandle, Error> {
        let path = path.as_ref();
        self.check()?;
        let listener = acceptor::listen_unix(path).map_err(|source| Error::Bind {
            addr: path.display().to_string(),
            source,
        })?;
        let bound = Bound {
            listener,
            local_addr: acceptor::UNIX_PEER,
            unix_path: Some(path.to_owned()),
        };
        self.serve(bound, None)
    }

    /// Reports a bad setting, route or backplane before anything binds.
    fn check(&self) -> Result<(), Error> {
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
        Ok(())
    }

    fn start_with<A: ToSocketAddrs + fmt::Display>(
        &self,
        addr: A,
        tls: Option<TlsSetting>,
    ) -> Result<ServerHandle, Error> {
        self.check()?;
        let bind_err = |source| Error::Bind {
            addr: addr.to_string(),
            source,
        };
        let listener = listen(&addr).map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        let bound = Bound {
            listener: Listener::Tcp(listener),
            local_addr,
            unix_path: None,
        };
        self.serve(bound, tls)
    }

    /// Starts serving on a bound listener.
    fn serve(&self, bound: Bound, tls: Option<TlsSetting>) -> Result<ServerHandle, Error> {
        let Bound {
            listener,
            local_addr,
            unix_path,
        } = bound;
        #[cfg(unix)]
        let unix_listener = listener.unix_clone();
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
            unix_path,
            #[cfg(unix)]
            unix_listener,
            closer,
            #[cfg(feature = "redis")]
            cluster: None,
        };
        #[cfg(feature = "redis")]
        if let Some(bp) = &self.backplane {
            // On an error the handle's drop stops what started.
            handle.join_cluster(bp)?;
        }
        match &handle.unix_path {
            Some(path) => log::debug!("listening on {}", path.display()),
            None => log::debug!("listening on {}", handle.local_addr),
        }
        Ok(handle)
    }
}

/// A listener ready to serve, and what the handle says of it.
struct Bound {
    listener: Listener,
    local_addr: std::net::SocketAddr,
    unix_path: Option<std::path::PathBuf>,
}

#[allow(dead_code)] // because this only checks at compile time.
fn assert_traits() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ServerHandle>();
    send_sync::<Request>();
}
