//! A WebSocket resource: the hooks that run for connections to one path, and
//! the `Accept` / `Reject` answers of a handshake hook.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::{Connection, Error, Message, Request};

pub(crate) type Data = Arc<dyn Any + Send + Sync>;
type HandshakeHook = dyn Fn(&Request) -> Result<Accept, Reject> + Send + Sync;
type OpenHook = dyn Fn(&Connection) + Send + Sync;
type MessageHook = dyn Fn(&Connection, Message) + Send + Sync;
type CloseHook = dyn Fn(&Connection, u16, &str) + Send + Sync;
type ErrorHook = dyn Fn(&Connection, &Error) + Send + Sync;
type ProtocolPicker = dyn Fn(&[&str]) -> Option<String> + Send + Sync;

/// The hooks of one WebSocket path, registered with
/// [`Server::define_resource`](crate::Server::define_resource).
///
/// Every hook is optional. They run on the connection's own thread, in this
/// order: `on_handshake`, `on_open`, then `on_message` for each message, and
/// `on_close` exactly once at the end. `on_error` sees protocol errors, I/O
/// errors and panics of the other hooks.
///
/// ```
/// use wsportal::{Message, Resource};
/// let echo = Resource::new()
///     .on_open(|ws| { let _ = ws.send_text("welcome"); })
///     .on_message(|ws, msg: Message| { let _ = ws.send(msg); })
///     .on_close(|_ws, code, reason| println!("closed: {code} {reason}"));
/// # let _ = echo;
/// ```
#[derive(Default)]
pub struct Resource {
    pub(crate) on_handshake: Option<Box<HandshakeHook>>,
    pub(crate) on_open: Option<Box<OpenHook>>,
    pub(crate) on_message: Option<Box<MessageHook>>,
    pub(crate) on_close: Option<Box<CloseHook>>,
    pub(crate) on_error: Option<Box<ErrorHook>>,
    pub(crate) protocols: Vec<String>,
    pub(crate) pick_protocol: Option<Box<ProtocolPicker>>,
    /// Origins allowed besides the server's own.
    pub(crate) origins: Vec<String>,
    pub(crate) any_origin: bool,
    /// Refuses `permessage-deflate` for this resource (feature `deflate`).
    #[cfg(feature = "deflate")]
    pub(crate) no_compression: bool,
}

impl fmt::Debug for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resource")
            .field("protocols", &self.protocols)
            .field("origins", &self.origins)
            .field("any_origin", &self.any_origin)
            .finish_non_exhaustive()
    }
}

impl Resource {
    /// A resource with no hooks: it accepts connections and ignores messages.
    pub fn new() -> Resource {
        Resource::default()
    }

    /// Runs before the upgrade with the HTTP request; returns `Ok(Accept)` to
    /// upgrade (maybe adding headers and per-connection data) or `Err(Reject)`
    /// to answer with a status instead. Use it for authentication. It runs
    /// after the `Origin` check ([`Resource::origins`]).
    ///
    /// An answer that cannot be written as it is, a header whose name is
    /// not an HTTP token or whose value has CR, LF, NUL or another control
    /// character, or a [`Reject`] status outside 200-599, is never written:
    /// the handshake answers `500` instead, and the error is logged at
    /// error level naming the hook and the header (not its value).
    pub fn on_handshake(
        mut self,
        hook: impl Fn(&Request) -> Result<Accept, Reject> + Send + Sync + 'static,
    ) -> Resource {
        self.on_handshake = Some(Box::new(hook));
        self
    }

    /// Runs once the connection is open, before any `on_message`. The
    /// connection has joined its resource just before: a broadcast to the
    /// resource may reach it (and arrive) before what `on_open` sends.
    pub fn on_open(mut self, hook: impl Fn(&Connection) + Send + Sync + 'static) -> Resource {
        self.on_open = Some(Box::new(hook));
        self
    }

    /// Runs for every complete text or binary message.
    pub fn on_message(
        mut self,
        hook: impl Fn(&Connection, Message) + Send + Sync + 'static,
    ) -> Resource {
        self.on_message = Some(Box::new(hook));
        self
    }

    /// Runs exactly once when the connection ends, however it ends, with the
    /// close code and reason (1006 when no close frame was exchanged).
    pub fn on_close(
        mut self,
        hook: impl Fn(&Connection, u16, &str) + Send + Sync + 'static,
    ) -> Resource {
        self.on_close = Some(Box::new(hook));
        self
    }

    /// Runs when a hook panics ([`Error::HandlerPanic`]), the peer breaks the
    /// protocol, or the connection fails.
    pub fn on_error(
        mut self,
        hook: impl Fn(&Connection, &Error) + Send + Sync + 'static,
    ) -> Resource {
        self.on_error = Some(Box::new(hook));
        self
    }

    /// The subprotocols this resource speaks, most preferred first. The first
    /// of these that the client offers is agreed on.
    pub fn protocols<I, S>(mut self, names: I) -> Resource
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.protocols = names.into_iter().map(Into::into).collect();
        self
    }

    /// Picks the subprotocol from what the client offers, instead of a fixed list.
    /// Return `None` to agree on none.
    pub fn select_protocol(
        mut self,
        pick: impl Fn(&[&str]) -> Option<String> + Send + Sync + 'static,
    ) -> Resource {
        self.pick_protocol = Some(Box::new(pick));
        self
    }

    /// Web pages from these origins may open this resource, besides pages
    /// from the server's own origin. An origin is written as a browser sends
    /// it in the `Origin` header: `scheme://host` or `scheme://host:port`,
    /// without a path (`https://app.example.com`, `http://localhost:3000`);
    /// one that is not is reported by [`Server::start`](crate::Server::start).
    ///
    /// The `Origin` check runs before the handshake hook. A browser always
    /// sends `Origin` with a WebSocket handshake, and attaches its cookies
    /// for the target site whichever page opens the socket: without this
    /// check, any web page could act as a logged-in user (cross-site
    /// WebSocket hijacking). So, by default, a handshake whose `Origin`
    /// names another host or port than its `Host` header is refused with
    /// `403` (and a `debug!` line). A handshake without `Origin` (not a
    /// browser: a command-line or server-side client) passes.
    pub fn origins<I, S>(mut self, origins: I) -> Resource
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// Lets a web page from any origin open this resource: for a public
    /// resource that does not rely on cookies or other ambient credentials
    /// (see [`Resource::origins`]).
    pub fn any_origin(mut self) -> Resource {
        self.any_origin = true;
        self
    }

    /// Whether this resource accepts `permessage-deflate` (feature
    /// `deflate`; default `true` when the server's
    /// [`Config::deflate`](crate::Config::deflate) is on). Turn it off for
    /// a resource whose messages do not compress (already compressed
    /// media, random bytes) or that must not pay for it.
    #[cfg(feature = "deflate")]
    pub fn compression(mut self, on: bool) -> Resource {
        self.no_compression = !on;
        self
    }

    /// Whether a handshake with this `Origin` header may go on: any origin
    /// when allowed, a listed one, or the request's own (see `Site`).
    pub(crate) fn origin_allowed(&self, origin: &str, site: &crate::http::site::Site<'_>) -> bool {
        if self.any_origin || self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
            return true;
        }
        site.is_origin(origin)
    }

    /// The first listed origin that is not `scheme://host[:port]`.
    pub(crate) fn invalid_origin(&self) -> Option<&str> {
        self.origins
            .iter()
            .find(|o| !valid_origin(o))
            .map(String::as_str)
    }

    /// The subprotocol to agree on, given what the client offered.
    pub(crate) fn choose_protocol(&self, offered: &[&str]) -> Option<String> {
        if offered.is_empty() {
            return None;
        }
        if let Some(pick) = &self.pick_protocol {
            return pick(offered).filter(|p| offered.contains(&p.as_str()));
        }
        self.protocols
            .iter()
            .find(|p| offered.contains(&p.as_str()))
            .cloned()
    }
}

/// Whether `origin` is written as a browser's `Origin` header:
/// `scheme://host[:port]`, nothing after.
fn valid_origin(origin: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    if !crate::http::is_token(scheme) || authority.contains(['/', '?', '#', '@', ' ']) {
        return false;
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, "")) => (addr, None),
            Some((addr, after)) => match after.strip_prefix(':') {
                Some(port) => (addr, Some(port)),
                None => return false,
            },
            None => return false,
        },
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    !host.is_empty() && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The first header of `headers` that cannot be written, and why.
pub(crate) fn invalid_header(headers: &[(String, String)]) -> Option<String> {
    headers.iter().find_map(|(name, value)| {
        crate::http::check_header(name, value)
            .err()
            .map(|why| format!("header {name:?}: {why}"))
    })
}

/// A hook's answer, checked before anything of it is written: one that
/// cannot be written as it is (see [`Resource::on_handshake`]) becomes a
/// `500`, logged naming the hook and what is wrong.
pub(crate) fn checked(
    hook: &str,
    req: &Request,
    answer: Result<Accept, Reject>,
) -> Result<Accept, Reject> {
    let problem = match &answer {
        Ok(accept) => invalid_header(&accept.headers),
        Err(reject) => reject.invalid(),
    };
    match problem {
        None => answer,
        Some(why) => {
            log::error!(
                "{}: the {hook} hook's answer for {} cannot be sent ({why}); answered 500",
                req.peer_addr(),
                req.path()
            );
            Err(Reject::new(500).body("internal error"))
        }
    }
}

/// A handshake hook's yes: headers to add to the response, and data to
/// attach to the connection (read it back with [`Connection::data`]).
#[derive(Default)]
pub struct Accept {
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) data: Option<Data>,
    /// First values for `Connection::with_state`.
    pub(crate) states: crate::session::state::Seeds,
}

impl fmt::Debug for Accept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accept")
            .field("headers", &self.headers)
            .field("data", &self.data.is_some())
            .field("states", &self.states.len())
            .finish()
    }
}

impl Accept {
    /// Accept with nothing added.
    pub fn new() -> Accept {
        Accept::default()
    }

    /// Adds a response header. A name that is not an HTTP token, or a
    /// value with CR, LF, NUL or another control character, is never
    /// written: the request is answered `500` instead (see
    /// [`Resource::on_handshake`]).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Accept {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the connection's first [`Connection::with_state`] value of
    /// type `T` (instead of `T::default()`), for state that starts from
    /// the handshake: a filter from the query string, a user's name from
    /// a token. One value per type; a second call for the same type
    /// replaces the first. The hooks see it from `on_open` on. (WebSocket
    /// connections only: an event client has no `with_state`; give it
    /// [`Accept::data`].)
    ///
    /// ```
    /// use wsportal::{Accept, Resource};
    /// #[derive(Default)]
    /// struct Filter(String);
    /// let logs = Resource::new()
    ///     .on_handshake(|req| {
    ///         let wanted = req.query_param("filter").unwrap_or_default();
    ///         Ok(Accept::new().state(Filter(wanted)))
    ///     })
    ///     .on_open(|ws| {
    ///         let filter = ws.with_state(|f: &mut Filter| f.0.clone());
    ///         let _ = ws.send_text(&format!("filtering on {filter:?}"));
    ///     });
    /// # let _ = logs;
    /// ```
    pub fn state<T: Default + Send + 'static>(mut self, value: T) -> Accept {
        self.states.set(value);
        self
    }

    /// Attaches typed per-connection data, read back (read-only) with
    /// [`Connection::data::<T>()`](crate::Connection::data) or
    /// [`EventClient::data`](crate::EventClient::data) with the same `T`;
    /// any other type reads `None`. Mutable state: [`Connection::with_state`].
    pub fn data<T: Any + Send + Sync>(mut self, data: T) -> Accept {
        self.data = Some(Arc::new(data));
        self
    }
}

/// A handshake hook's no: the HTTP status, headers and body to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Reject {
    /// Refuse with this status (e.g. 401, 403; 204 tells an `EventSource`
    /// to stop reconnecting). A status outside 200-599 (such as 101) is
    /// never written: the request is answered `500` instead (see
    /// [`Resource::on_handshake`]). A `204` or `304` goes out without a
    /// body (whatever [`Reject::body`] set) and without `Content-Length`.
    pub fn new(status: u16) -> Reject {
        Reject {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a response header, checked as [`Accept::header`]'s are.
    /// `Content-Length`, `Transfer-Encoding` and `Connection` are dropped:
    /// wsportal frames the answer itself (as for a handler's `Response`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Reject {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body (sent as `text/plain` unless a `Content-Type` header is given).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reject {
        self.body = body.into();
        self
    }

    /// The status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Why this refusal cannot be written as it is, if it cannot.
    pub(crate) fn invalid(&self) -> Option<String> {
        if !(200..=599).contains(&self.status) {
            return Some(format!("status {} is outside 200-599", self.status));
        }
        invalid_header(&self.headers)
    }

    /// The full response, with `Content-Length` and `Connection: close`.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        self.response(false)
    }

    /// The response, without the body for a `HEAD` request (RFC 9110
    /// section 9.3.2: the same headers, `Content-Length` included). As for
    /// a handler's [`Response`](crate::Response), the framing is ours: a
    /// hook's `Content-Length`, `Transfer-Encoding` and `Connection` are
    /// dropped. A `204` or `304` has no body and no `Content-Length` (RFC
    /// 9110 sections 8.6, 15.3.5, 15.4.5).
    pub(crate) fn response(&self, head_only: bool) -> Vec<u8> {
        if self.invalid().is_some() {
            // Checked where hooks answer; this keeps any other path safe.
            return Reject::new(500).body("internal error").response(head_only);
        }
        let mut headers = without_framing(&self.headers);
        let bodiless = matches!(self.status, 204 | 304);
        let has = |name: &str| {
            self.headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(name))
        };
        if !bodiless && !self.body.is_empty() && !has("content-type") {
            headers.push(("Content-Type".into(), "text/plain; charset=utf-8".into()));
        }
        if !bodiless {
            headers.push(("Content-Length".into(), self.body.len().to_string()));
        }
        headers.push(("Connection".into(), "close".into()));
        let body: &[u8] = if bodiless || head_only {
            &[]
        } else {
            &self.body
        };
        crate::http::response_bytes(self.status, &headers, body)
    }
}

/// `headers` without those that frame a message (`Content-Length`,
/// `Transfer-Encoding`, `Connection`): wsportal writes its own.
pub(crate) fn without_framing(headers: &[(String, String)]) -> Vec<(String, String)> {
    let framing = ["content-length", "connection", "transfer-encoding"];
    headers
        .iter()
        .filter(|(k, _)| !framing.iter().any(|f| k.eq_ignore_ascii_case(f)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::site::Site;

    #[test]
    fn invalid_answers_become_500() {
        for status in [0, 101, 199, 600, 999] {
            let r = Reject::new(status);
            assert!(r.invalid().is_some(), "{status}");
            let text = String::from_utf8(r.to_bytes()).unwrap();
            assert!(text.starts_with("HTTP/1.1 500 "), "{text}");
        }
        for status in [200, 204, 403, 599] {
            assert!(Reject::new(status).invalid().is_none(), "{status}");
        }
        let split = Reject::new(403).header("X-Room", "a\r\nSet-Cookie: session=evil");
        let text = String::from_utf8(split.to_bytes()).unwrap();
        assert!(text.starts_with("HTTP/1.1 500 "), "{text}");
        assert!(!text.contains("Set-Cookie"), "{text}");
        assert!(split.invalid().unwrap().contains("\"X-Room\""));
    }

    #[test]
    fn head_refusals_have_no_body() {
        let r = Reject::new(404).body("not found");
        let text = String::from_utf8(r.response(true)).unwrap();
        assert!(text.contains("Content-Length: 9\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
    }

    fn direct(host: &str) -> Site<'_> {
        Site {
            authority: Some(host),
            ..Site::default()
        }
    }

    #[test]
    fn origins() {
        let same = Resource::new();
        let ok = |origin: &str, host: &str| same.origin_allowed(origin, &direct(host));
        assert!(ok("http://h:1", "h:1"));
        assert!(ok("https://H:1", "h:1"));
        assert!(!ok("http://h:2", "h:1"));
        assert!(!ok("http://evil", "h:1"));
        assert!(!ok("null", "h:1"));
        assert!(!same.origin_allowed("http://h:1", &Site::default()));
        // Default ports are the same origin.
        assert!(ok("https://example.com", "example.com:443"));
        assert!(ok("http://example.com", "example.com:80"));
        assert!(ok("http://example.com:80", "example.com"));
        assert!(ok("https://example.com", "example.com"));
        assert!(!ok("http://example.com", "example.com:443"));
        assert!(!ok("https://example.com", "example.com:80"));
        assert!(!ok("http://example.com:8080", "example.com"));
        assert!(ok("http://[::1]:3000", "[::1]:3000"));
        assert!(!ok("http://[::1]:3000", "[::1]:3001"));
        // What a trusted proxy says.
        let tls = Site {
            scheme: Some("https"),
            ..direct("example.com")
        };
        assert!(same.origin_allowed("https://example.com", &tls));
        assert!(!same.origin_allowed("http://example.com", &tls));
        let hostname_only = Site {
            any_port: true,
            ..direct("127.0.0.1")
        };
        assert!(same.origin_allowed("http://127.0.0.1:8080", &hostname_only));
        assert!(!same.origin_allowed("http://evil:8080", &hostname_only));
        let listed = Resource::new().origins(["http://localhost:3000"]);
        assert!(listed.origin_allowed("http://LOCALHOST:3000", &direct("h:1")));
        assert!(!listed.origin_allowed("http://localhost:3001", &direct("h:1")));
        assert!(Resource::new()
            .any_origin()
            .origin_allowed("null", &Site::default()));
        for good in [
            "http://a",
            "https://a.b:8443",
            "http://[::1]:3000",
            "http://[::1]",
        ] {
            assert_eq!(
                Resource::new().origins([good]).invalid_origin(),
                None,
                "{good}"
            );
        }
        for bad in [
            "a.com",
            "https://a.com/",
            "http://",
            "http://a:",
            "http://a:x",
            "http://u@a",
            "*",
        ] {
            assert_eq!(Resource::new().origins([bad]).invalid_origin(), Some(bad));
        }
    }
}
