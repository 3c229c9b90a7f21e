//! Server settings: builder-lite, checked once when the server starts.
//!
//! `validate` names the bad setting in [`Error::Config`]. Timers shorter
//! than 1 ms (the housekeeper's resolution) are refused; huge durations,
//! up to `Duration::MAX`, are valid and mean "never" (see `deadline.rs`).

use std::time::Duration;

use crate::Error;

/// Settings of a [`Server`](crate::Server). Start from `Config::default()` and
/// chain the setters; values are checked when the server starts, and a bad
/// one is refused with [`Error::Config`] naming the setting.
///
/// Durations may be as long as `Duration::MAX`, which means "never" (any
/// deadline further than about a century away is never reached).
///
/// ```
/// use std::time::Duration;
/// let config = wsportal::Config::default()
///     .max_message_size(1 << 20)
///     .ping_interval(Some(Duration::from_secs(20)))
///     .debug_on_error(false);
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    pub(crate) max_message_size: usize,
    pub(crate) max_frame_size: usize,
    pub(crate) max_header_size: usize,
    pub(crate) max_body_size: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) read_buffer_size: usize,
    pub(crate) thread_stack_size: usize,
    pub(crate) debug_on_error: bool,
    pub(crate) shutdown_grace: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) ping_timeout: Duration,
    pub(crate) max_backlog: usize,
    pub(crate) write_timeout: Duration,
    pub(crate) nodelay: bool,
    pub(crate) sse_keepalive: Option<Duration>,
    /// `None`: unset, so each transport's default (`session/turn.rs`).
    pub(crate) yield_after: Option<Option<Duration>>,
    pub(crate) trusted_proxies: Vec<crate::http::forwarded::Range>,
    /// The first `trusted_proxies` entry that is not an address or range.
    pub(crate) bad_proxy: Option<String>,
    #[cfg(feature = "deflate")]
    pub(crate) deflate: Option<crate::Deflate>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_message_size: 16 << 20,
            max_frame_size: 16 << 20,
            max_header_size: 8 << 10,
            max_body_size: 1 << 20,
            handshake_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            read_buffer_size: 4 << 10,
            thread_stack_size: 256 << 10,
            debug_on_error: true,
            shutdown_grace: Duration::from_secs(2),
            close_timeout: Duration::from_secs(5),
            ping_interval: Some(Duration::from_secs(30)),
            ping_timeout: Duration::from_secs(10),
            max_backlog: 32 << 20,
            write_timeout: Duration::from_secs(10),
            nodelay: true,
            sse_keepalive: Some(Duration::from_secs(15)),
            yield_after: None,
            trusted_proxies: Vec::new(),
            bad_proxy: None,
            #[cfg(feature = "deflate")]
            deflate: Some(crate::Deflate::default()),
        }
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {
        impl Config {
            $(
                $(#[$doc])*
                pub fn $name(mut self, value: $ty) -> Config {
                    self.$name = value;
                    self
                }
            )*
        }
    };
}

setters! {
    /// Largest message accepted, in bytes, after reassembling fragments
    /// (default 16 MiB). A bigger one closes the connection with 1009.
    max_message_size: usize;
    /// Largest single frame payload accepted, in bytes (default 16 MiB).
    /// A bigger one closes the connection with 1009.
    max_frame_size: usize;
    /// Largest HTTP request head, in bytes (default 8 KiB). A longer one is
    /// answered `431 Request Header Fields Too Large`.
    max_header_size: usize;
    /// Largest request body a handler
    /// ([`Server::define_handler_for`](crate::Server::define_handler_for))
    /// gets, in bytes (default 1 MiB, as nginx's `client_max_body_size`).
    /// A longer one, declared by `Content-Length` or found while reading
    /// `chunked`, is answered `413 Content Too Large`; `0` refuses every body.
    max_body_size: usize;
    /// How long a client may take to send its whole HTTP request, head and
    /// (for a handler) body (default 10 s). A body late past it is
    /// answered `408`; a head, dropped.
    handshake_timeout: Duration;
    /// Most connections served at once (default 10,000). One more is answered
    /// `503 Service Unavailable` with `Retry-After`.
    max_connections: usize;
    /// Read buffer step per connection, in bytes (default 4 KiB). The buffer
    /// grows with the data (to 64 KiB, or a whole frame) and is dropped when
    /// the connection goes quiet: an idle connection holds none.
    read_buffer_size: usize;
    /// Stack size of each connection thread, in bytes (default 256 KiB). Hooks
    /// run on this stack.
    thread_stack_size: usize;
    /// What a panicking hook does after `on_error` has seen it (default `true`,
    /// as in portal): when on, the panic is logged at error level with its
    /// message and location and the connection is closed with 1011; when off,
    /// the connection carries on.
    debug_on_error: bool;
    /// How long `ServerHandle::close` waits for clients to finish their close
    /// handshakes before cutting them off (default 2 s).
    shutdown_grace: Duration;
    /// How long a close handshake we began may wait for the peer's reply
    /// before the socket is closed anyway (default 5 s; at least 1 ms).
    close_timeout: Duration;
    /// Send a ping when a connection has been silent this long (default 30 s;
    /// at least 1 ms); `None` disables keepalive.
    ping_interval: Option<Duration>;
    /// Close a connection whose keepalive ping has no answer (no frame at all)
    /// within this time (default 10 s; at least 1 ms).
    ping_timeout: Duration;
    /// Most bytes queued for one slow client (default 32 MiB). Past it the
    /// client is closed with 1008.
    max_backlog: usize;
    /// Close a client whose socket accepts no byte for this long (default 10 s).
    write_timeout: Duration;
    /// Set `TCP_NODELAY` on accepted sockets (default `true`); writes are
    /// coalesced so small messages still share packets under load.
    nodelay: bool;
    /// Send an SSE comment line (`: keep-alive`) to an event stream that has
    /// sent nothing for this long, so proxies keep it open (default 15 s; at
    /// least 1 ms, the housekeeper's resolution); `None` disables it.
    sse_keepalive: Option<Duration>;
}

impl Config {
    /// A connection thread that has worked this long without waiting for
    /// input yields its core before its next read, so that connections
    /// busy at once share a core message by message; `None`: it runs until
    /// the kernel preempts it at its timer tick (every 4 ms at
    /// `CONFIG_HZ=250`), so with more busy connections than cores a message
    /// can wait a tick per other busy connection. Default: about two 64
    /// KiB messages' work, 100 µs for TLS connections (over TLS it took a
    /// 64 KiB echo's p99 from 31 to 4.4 ms for a tenth of its throughput)
    /// and 50 µs for plain ones (p99 from 3.5-8 to 2-2.8 ms for about 5 %
    /// of its throughput). Measured in DEPLOYING.md, "Latency when the
    /// cores are saturated".
    pub fn yield_after(mut self, value: Option<Duration>) -> Config {
        self.yield_after = Some(value);
        self
    }

    /// The reverse proxies (nginx, Caddy, a load balancer) whose word about
    /// the client is believed (default none: never trusted unless listed),
    /// as addresses (`127.0.0.1`, `::1`) or ranges (`10.0.0.0/8`,
    /// `fd00::/8`), as nginx's `set_real_ip_from` takes them. A request
    /// whose socket peer is in the list gets, from `Forwarded` (RFC 7239)
    /// or else `X-Forwarded-For`, `X-Forwarded-Proto` and
    /// `X-Forwarded-Host`: the client's
    /// [`Request::peer_addr`](crate::Request::peer_addr) (the chain walked
    /// from the right past every listed proxy), its
    /// [`Request::scheme`](crate::Request::scheme), and the host and scheme
    /// the `Origin` check of a WebSocket handshake compares with (host
    /// names alone when the proxy gives a host without a port, as nginx's
    /// `proxy_set_header Host $host` does). From any other peer these
    /// headers are ignored, since a client can write them itself. On a
    /// Unix-domain socket ([`Server::start_unix`](crate::Server::start_unix))
    /// every peer is `0.0.0.0`: list that address to trust the proxy there.
    /// An entry that is neither an address nor a range is reported by
    /// [`Server::start`](crate::Server::start) (`Error::Config`).
    ///
    /// ```
    /// let config = wsportal::Config::default().trusted_proxies(["127.0.0.1", "10.0.0.0/8"]);
    /// # let _ = config;
    /// ```
    pub fn trusted_proxies<I, S>(mut self, proxies: I) -> Config
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.trusted_proxies.clear();
        self.bad_proxy = None;
        for p in proxies {
            match crate::http::forwarded::Range::parse(p.as_ref()) {
                Some(range) => self.trusted_proxies.push(range),
                None => {
                    self.bad_proxy.get_or_insert_with(|| p.as_ref().to_owned());
                }
            }
        }
        self
    }
}

#[cfg(feature = "deflate")]
impl Config {
    /// `permessage-deflate` (RFC 7692; feature `deflate`): a server accepts
    /// it and a client offers it with these settings (default
    /// `Some(Deflate::default())`); `None` turns it off.
    pub fn deflate(mut self, value: Option<crate::Deflate>) -> Config {
        self.deflate = value;
        self
    }
}

impl Config {
    /// Checks every value; the error names the first bad setting.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        fn bad(setting: &'static str, reason: &str) -> Result<(), Error> {
            Err(Error::Config {
                setting,
                reason: reason.to_owned(),
            })
        }
        let nonzero = |d: Duration| !d.is_zero();
        // The housekeeper's clock counts whole milliseconds: a shorter timer
        // would round to 0 and fire on every scan.
        let ms = Duration::from_millis(1);
        if self.max_frame_size == 0 {
            return bad("max_frame_size", "must be at least 1");
        }
        if self.max_message_size == 0 {
            return bad("max_message_size", "must be at least 1");
        }
        if self.max_header_size < 256 {
            return bad("max_header_size", "must be at least 256 bytes");
        }
        if !nonzero(self.handshake_timeout) {
            return bad("handshake_timeout", "must be longer than zero");
        }
        if self.max_connections == 0 {
            return bad("max_connections", "must be at least 1");
        }
        if !(64..=(16 << 20)).contains(&self.read_buffer_size) {
            return bad("read_buffer_size", "must be between 64 bytes and 16 MiB");
        }
        if self.thread_stack_size < (32 << 10) {
            return bad("thread_stack_size", "must be at least 32 KiB");
        }
        if self.close_timeout < ms {
            return bad("close_timeout", "must be at least 1 ms");
        }
        if self.ping_interval.is_some_and(|d| d < ms) {
            return bad("ping_interval", "must be at least 1 ms (None disables it)");
        }
        if self.ping_timeout < ms {
            return bad("ping_timeout", "must be at least 1 ms");
        }
        if self.max_backlog < (64 << 10) {
            return bad("max_backlog", "must be at least 64 KiB");
        }
        if !nonzero(self.write_timeout) {
            return bad("write_timeout", "must be longer than zero");
        }
        if let Some(p) = &self.bad_proxy {
            let why = format!("{p:?} is not an ip address or range (ADDR/PREFIX)");
            return bad("trusted_proxies", &why);
        }
        if self.sse_keepalive.is_some_and(|d| d < ms) {
            return bad("sse_keepalive", "must be at least 1 ms (None disables it)");
        }
        #[cfg(feature = "deflate")]
        if let Some(Err((setting, reason))) = self.deflate.as_ref().map(crate::Deflate::validate) {
            return bad(setting, reason);
        }
        if self.max_backlog <= self.max_message_size {
            log::warn!(
                "max_backlog ({}) is not above max_message_size ({}): echoing a largest \
                 message will close the connection as too slow",
                self.max_backlog,
                self.max_message_size
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_errors_name_the_setting() {
        Config::default().validate().unwrap();
        let err = Config::default()
            .read_buffer_size(1)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("read_buffer_size"), "{err}");
        let err = Config::default()
            .ping_interval(Some(Duration::ZERO))
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("ping_interval"), "{err}");
    }

    /// Issue 19: a timer the housekeeper's millisecond clock would round to
    /// zero is refused, naming the setting.
    #[test]
    fn sub_millisecond_timers_are_refused() {
        let tiny = Duration::from_micros(999);
        let configs = [
            ("sse_keepalive", Config::default().sse_keepalive(Some(tiny))),
            ("ping_interval", Config::default().ping_interval(Some(tiny))),
            ("ping_timeout", Config::default().ping_timeout(tiny)),
            ("close_timeout", Config::default().close_timeout(tiny)),
        ];
        for (name, config) in configs {
            let err = config.validate().unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
        let one = Duration::from_millis(1);
        Config::default()
            .sse_keepalive(Some(one))
            .ping_interval(Some(one))
            .ping_timeout(one)
            .close_timeout(one)
            .validate()
            .unwrap();
    }

    /// Issue 17.6: huge durations are valid ("never"); they saturate where used.
    #[test]
    fn huge_durations_are_valid() {
        Config::default()
            .handshake_timeout(Duration::MAX)
            .shutdown_grace(Duration::MAX)
            .close_timeout(Duration::MAX)
            .ping_interval(Some(Duration::MAX))
            .ping_timeout(Duration::MAX)
            .write_timeout(Duration::MAX)
            .sse_keepalive(Some(Duration::MAX))
            .validate()
            .unwrap();
    }
}
