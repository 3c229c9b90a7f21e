//! The WebSocket client: [`Client`] holds the settings and connects;
//! [`ClientHandle`] is the open connection. After the handshake a client
//! connection is a server connection with the other [`Role`]: the same
//! [`Connection`] handle and send path, the same [`Resource`] hooks run by
//! `session::run` on the client's own reader thread, and its own [`Hub`]
//! whose housekeeper does keepalive, stalled writes and close timeouts.
//!
//! The client layer, beside the server at the top: it may use every layer
//! below (`session`, `http`, `transport`, `wire`); nothing imports it.
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
//!
//! Files: this one holds the [`Client`] builder and `connect_with`;
//! `connect.rs` opens the socket, TLS and the HTTP exchange;
//! `handshake.rs` the request and the checks on the answer (no sockets);
//! `handle.rs` the [`ClientHandle`] and its reader thread.

mod connect;
mod events;
mod handle;
pub(crate) mod handshake;
mod proxy;
mod reconnect;
mod socks;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use self::events::{EventReader, EventReaderCloser, EventSource, MessageEvent};
pub use self::handle::ClientHandle;
pub use self::reconnect::{Reconnect, Reconnecting};
use crate::session::connection::Parts;
use crate::session::hub::Hub;
use crate::wire::reader::{FrameReader, Limits, Role};
use crate::{Config, Connection, Error, Request, Resource};

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
    reconnect: Option<Reconnect>,
    proxy: Option<proxy::ProxySetting>,
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
            .field("reconnect", &self.reconnect)
            .field("proxy", &self.proxy.as_ref().map(|_| "set"))
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
            reconnect: None,
            proxy: None,
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

    /// Connects through a proxy: HTTP `CONNECT`
    /// (`http://[user:password@]host[:port]`, the credentials sent as Basic
    /// auth) or SOCKS5 (`socks5://`, the host name resolved here, or
    /// `socks5h://`, resolved by the proxy; with user and password
    /// authentication). The port is 1080 by default and the credentials are
    /// percent-encoded, as curl takes them. `wss://` runs TLS inside the
    /// tunnel, end to end with the server. The URL is checked when
    /// connecting ([`Error::InvalidInput`]); a proxy that refuses the
    /// tunnel is [`Error::Proxy`] with its status (407: the credentials; a
    /// SOCKS5 refusal as the status an HTTP proxy would give). Replaces
    /// [`Client::proxy_from_env`].
    pub fn proxy(mut self, url: impl Into<String>) -> Client {
        self.proxy = Some(proxy::ProxySetting::Url(url.into()));
        self
    }

    /// Takes the proxy from the environment when connecting, as curl does:
    /// `https_proxy` or `HTTPS_PROXY` for `wss://`, `http_proxy` (lower
    /// case only, as curl) for `ws://`, else `all_proxy` or `ALL_PROXY`;
    /// none for a host listed in `no_proxy` or `NO_PROXY` (`*`, names with
    /// their subdomains, IP addresses, CIDR ranges such as `10.0.0.0/8`).
    /// The values are proxy URLs as for [`Client::proxy`], which this
    /// replaces.
    pub fn proxy_from_env(mut self) -> Client {
        self.proxy = Some(proxy::ProxySetting::Env);
        self
    }

    /// The backoff policy of [`Client::reconnecting`] (default:
    /// [`Reconnect::default`]); [`Client::connect`] connects once and
    /// ignores it.
    pub fn reconnect(mut self, policy: Reconnect) -> Client {
        self.reconnect = Some(policy);
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
        client_settings(c).validate()?;
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

        let (stream, peer) = self.open(&target, deadline)?;
        let (response, leftover) = connect::exchange(&stream, &target, &headers, deadline, c)?;
        if response.status != 101 {
            let body =
                connect::read_body(&stream, &response, leftover, deadline, c.max_message_size);
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
            headers: crate::http::pairs(&headers).collect(),
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
            request: Box::new(request),
            route: target.path.clone(),
            protocol,
            data: None,
            role: Role::Client,
            #[cfg(feature = "deflate")]
            deflate,
        };
        let conn = Connection::new(1, parts, hub);
        log::debug!("client: connected to {peer}{}", target.path);
        handle::start(conn, reader, hooks, response.headers, c)
    }
}

/// `c` with the settings that apply only to a server (`max_connections`,
/// `shutdown_grace`, `sse_keepalive`) at their defaults, so that only what a
/// client uses is validated.
fn client_settings(c: &Config) -> Config {
    let defaults = Config::default();
    Config {
        max_connections: defaults.max_connections,
        shutdown_grace: defaults.shutdown_grace,
        sse_keepalive: defaults.sse_keepalive,
        ..c.clone()
    }
}
