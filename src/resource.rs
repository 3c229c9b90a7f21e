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
}

impl fmt::Debug for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resource")
            .field("protocols", &self.protocols)
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
    /// to answer with a status instead. Use it for authentication and Origin checks.
    pub fn on_handshake(
        mut self,
        hook: impl Fn(&Request) -> Result<Accept, Reject> + Send + Sync + 'static,
    ) -> Resource {
        self.on_handshake = Some(Box::new(hook));
        self
    }

    /// Runs once the connection is open, before any `on_message`.
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

/// A handshake hook's yes: headers to add to the response, and data to
/// attach to the connection (read it back with [`Connection::data`]).
#[derive(Default)]
pub struct Accept {
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) data: Option<Data>,
}

impl fmt::Debug for Accept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accept")
            .field("headers", &self.headers)
            .field("data", &self.data.is_some())
            .finish()
    }
}

impl Accept {
    /// Accept with nothing added.
    pub fn new() -> Accept {
        Accept::default()
    }

    /// Adds a response header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Accept {
        self.headers.push((name.into(), value.into()));
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
    /// to stop reconnecting).
    pub fn new(status: u16) -> Reject {
        Reject {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a response header.
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

    /// The full response, with `Content-Length` and `Connection: close`.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut headers = self.headers.clone();
        let has = |name: &str| {
            self.headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(name))
        };
        if !self.body.is_empty() && !has("content-type") {
            headers.push(("Content-Type".into(), "text/plain; charset=utf-8".into()));
        }
        if self.status != 204 && self.status >= 200 {
            headers.push(("Content-Length".into(), self.body.len().to_string()));
        }
        headers.push(("Connection".into(), "close".into()));
        let body: &[u8] = if self.status == 204 { &[] } else { &self.body };
        crate::http::response_bytes(self.status, &headers, body)
    }
}
