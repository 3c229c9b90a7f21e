//! The connection handle that hooks and other threads use: sending, pinging,
//! closing, groups, and what the opening request said.

use std::any::Any;
use std::fmt;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::frame::{self, OpCode};
use crate::hub::Hub;
use crate::outbox::{Flushed, Outbox, PushError};
use crate::protocol::Role;
use crate::resource::Data;
use crate::{Error, Message, Request, SendError};

type PongHook = Box<dyn FnOnce(&Connection) + Send>;

/// Messages at least this long are sent from their own buffer, not copied.
const ZERO_COPY_MIN: usize = 1 << 10;

/// A handle to one WebSocket connection. Cheap to clone, `Send + Sync`: keep
/// it, hand it to other threads, and send from anywhere at any time.
///
/// After a close has begun, sends fail with [`SendError`], which gives the
/// message back.
#[derive(Clone)]
pub struct Connection {
    pub(crate) inner: Arc<Inner>,
}

/// How a connection ended, or is ending.
#[derive(Debug, Default)]
pub(crate) struct Ending {
    /// We sent a close frame with this code and reason.
    pub(crate) sent: Option<(u16, String)>,
    /// The connection was cut off (timeout, too slow, shutdown) for this reason.
    pub(crate) forced: Option<(u16, String)>,
}

impl Ending {
    /// Whether we began the end: a close frame sent, or a cut-off.
    pub(crate) fn begun(&self) -> bool {
        self.sent.is_some() || self.forced.is_some()
    }
}

pub(crate) struct Inner {
    pub(crate) id: u64,
    pub(crate) stream: Arc<TcpStream>,
    pub(crate) request: Request,
    /// The route pattern this connection came in on, e.g. `/chat/:room`.
    pub(crate) route: String,
    pub(crate) protocol: Option<String>,
    pub(crate) data: Option<Data>,
    pub(crate) role: Role,
    pub(crate) outbox: Outbox,
    pub(crate) ending: Mutex<Ending>,
    pings: Mutex<Vec<(Vec<u8>, PongHook)>>,
    pub(crate) groups: Mutex<Vec<String>>,
    pub(crate) hub: Arc<Hub>,
    /// Milliseconds (hub clock) when the peer last sent anything.
    pub(crate) last_seen: AtomicU64,
    /// When a keepalive ping went out unanswered (0: none outstanding).
    pub(crate) ping_sent: AtomicU64,
    /// When we sent a close frame (0: not yet).
    pub(crate) close_sent: AtomicU64,
    /// Values for `Connection::with_state`.
    pub(crate) states: crate::state::States,
    /// Messages and bytes each way, for `stats()`.
    pub(crate) counts: crate::stats::ConnCounts,
}

/// Everything a connection is built from.
pub(crate) struct Parts {
    pub(crate) stream: Arc<TcpStream>,
    pub(crate) request: Request,
    pub(crate) route: String,
    pub(crate) protocol: Option<String>,
    pub(crate) data: Option<Data>,
    pub(crate) role: Role,
}

impl Connection {
    pub(crate) fn new(id: u64, parts: Parts, hub: Arc<Hub>) -> Connection {
        let now = hub.now();
        Connection {
            inner: Arc::new(Inner {
                id,
                stream: parts.stream,
                request: parts.request,
                route: parts.route,
                protocol: parts.protocol,
                data: parts.data,
                role: parts.role,
                outbox: Outbox::new(hub.max_backlog),
                ending: Mutex::new(Ending::default()),
                pings: Mutex::new(Vec::new()),
                groups: Mutex::new(Vec::new()),
                hub,
                last_seen: AtomicU64::new(now),
                ping_sent: AtomicU64::new(0),
                close_sent: AtomicU64::new(0),
                states: crate::state::States::default(),
                counts: crate::stats::ConnCounts::default(),
            }),
        }
    }

    /// A number unique among this server's connections (a client's own
    /// connection is always 1).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Sends a message.
    ///
    /// # Errors
    /// [`SendError`] with the message when the connection is closed or closing,
    /// or when its backlog is full (it is then closed with 1008).
    pub fn send(&self, msg: impl Into<Message>) -> Result<(), SendError<Message>> {
        let msg = msg.into();
        let op = match msg {
            Message::Text(_) => OpCode::Text,
            Message::Binary(_) => OpCode::Binary,
        };
        if msg.len() >= ZERO_COPY_MIN && self.inner.role == Role::Server {
            return self.send_owned(op, msg);
        }
        match self.push_frame(op, msg.as_bytes(), false) {
            Ok(()) => Ok(()),
            Err(_) => Err(SendError(msg)),
        }
    }

    /// Queues a large message's own buffer behind its header, without a copy.
    fn send_owned(&self, op: OpCode, msg: Message) -> Result<(), SendError<Message>> {
        let (text, payload) = match msg {
            Message::Text(s) => (true, s.into_bytes()),
            Message::Binary(b) => (false, b),
        };
        let mut header = Vec::with_capacity(frame::MAX_HEADER_LEN);
        frame::encode_header(&mut header, true, op, payload.len(), None);
        let len = payload.len(); // for stats
        let pushed = self
            .inner
            .outbox
            .push_owned(&mut &*self.inner.stream, &header, payload);
        let (pushed, given_back) = match pushed {
            Ok(f) => (Ok(f), None),
            Err((e, payload)) => (Err(e), Some(payload)),
        };
        match (self.after_push(pushed), given_back) {
            (Ok(()), _) => {
                self.inner.counts.sent(len);
                Ok(())
            }
            (Err(_), Some(p)) if text => {
                // Because the payload came from a String, it is valid UTF-8.
                Err(SendError(Message::Text(
                    String::from_utf8(p).unwrap_or_default(),
                )))
            }
            (Err(_), p) => Err(SendError(Message::Binary(p.unwrap_or_default()))),
        }
    }

    /// Sends a text message.
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub fn send_text(&self, text: &str) -> Result<(), SendError<Message>> {
        self.push_frame(OpCode::Text, text.as_bytes(), false)
            .map_err(|_| SendError(Message::Text(text.to_owned())))
    }

    /// Sends a binary message.
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub fn send_binary(&self, data: &[u8]) -> Result<(), SendError<Message>> {
        self.push_frame(OpCode::Binary, data, false)
            .map_err(|_| SendError(Message::Binary(data.to_vec())))
    }

    /// Sends a ping; `on_pong` runs (on the connection's thread) when the
    /// pong with the same payload arrives. The payload is at most 125 bytes.
    ///
    /// # Errors
    /// [`SendError`] with the payload when the connection is closing, or the
    /// payload is longer than 125 bytes.
    pub fn ping(
        &self,
        payload: &[u8],
        on_pong: impl FnOnce(&Connection) + Send + 'static,
    ) -> Result<(), SendError<Vec<u8>>> {
        if payload.len() > 125 {
            return Err(SendError(payload.to_vec()));
        }
        // The hook is registered only once the ping is queued, so a failure
        // has nothing to undo (and cannot remove another thread's hook for
        // the same payload). The lock is held across the push so that the
        // pong cannot be handled before its hook is in place.
        let mut pings = self.inner.pings.lock();
        self.push_frame(OpCode::Ping, payload, false)
            .map_err(|_| SendError(payload.to_vec()))?;
        pings.push((payload.to_vec(), Box::new(on_pong)));
        Ok(())
    }

    /// Starts the closing handshake with `code` and `reason` (cut to 123
    /// bytes). Later sends fail; `on_close` runs once the peer answers, or
    /// after the close timeout. Calling it again does nothing.
    ///
    /// A code that may not be sent (below 1000, 1004-1006, 1015, ...) is
    /// replaced by 1000, with a warning in the log.
    pub fn close(&self, code: u16, reason: &str) {
        let code = if crate::protocol::close_code_allowed(code) {
            code
        } else {
            log::warn!("close code {code} may not be sent; sending 1000 instead");
            1000
        };
        self.inner.send_close(code, reason);
    }

    /// Whether messages can still be sent: no close has begun and the
    /// connection has not ended (false from the end of the read loop, also
    /// when the peer vanished without a close frame).
    pub fn is_open(&self) -> bool {
        !self.inner.ending.lock().begun()
    }

    /// The request path (without query).
    pub fn path(&self) -> &str {
        self.inner.request.path()
    }

    /// A named path segment's value: `/chat/:room` gives `param("room")`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.inner.request.param(name)
    }

    /// A request header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner.request.header(name)
    }

    /// The whole opening request.
    pub fn request(&self) -> &Request {
        &self.inner.request
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.request.peer_addr()
    }

    /// The agreed subprotocol, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.inner.protocol.as_deref()
    }

    /// The WebSocket protocol version in use: always `"13"`.
    pub fn version(&self) -> &'static str {
        "13"
    }

    /// The per-connection data attached by the handshake hook
    /// ([`Accept::data`](crate::Accept::data)), read-only. `None` when there
    /// is none *or when it is not a `T`* (asking for the wrong type is not an
    /// error): ask for exactly the type that was attached. For state that
    /// changes, see [`Connection::with_state`].
    pub fn data<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.inner.data.as_deref().and_then(|d| d.downcast_ref())
    }

    /// Bytes queued for this peer and not yet written to its socket.
    pub fn backlog(&self) -> usize {
        self.inner.outbox.backlog()
    }

    /// Encodes and queues one frame; the frame is masked on the client side.
    pub(crate) fn push_frame(&self, op: OpCode, payload: &[u8], last: bool) -> Result<(), Error> {
        let mask = (self.inner.role == Role::Client).then(frame::random_mask);
        let len = frame::encoded_len(payload.len(), mask.is_some());
        let pushed = self
            .inner
            .outbox
            .push_with(&mut &*self.inner.stream, len, last, |v| {
                frame::encode(v, op, payload, mask)
            });
        self.after_push(pushed)?;
        if matches!(op, OpCode::Text | OpCode::Binary) {
            self.inner.counts.sent(payload.len());
        }
        Ok(())
    }

    /// Queues a frame encoded once for many connections (server side only).
    pub(crate) fn push_shared(&self, frame: Arc<[u8]>) -> Result<(), Error> {
        let pushed = self
            .inner
            .outbox
            .push_shared(&mut &*self.inner.stream, frame);
        self.after_push(pushed)
    }

    pub(crate) fn after_push(&self, pushed: Result<Flushed, PushError>) -> Result<(), Error> {
        match pushed {
            Ok(flushed) => {
                self.inner.handle_flushed(flushed);
                Ok(())
            }
            Err(PushError::Closed) => Err(Error::Closed),
            Err(PushError::TooSlow) => {
                self.inner.force_end(1008, "client too slow: backlog full");
                Err(Error::TooSlow)
            }
        }
    }

    /// Runs the pong callback registered for `payload`, if any.
    pub(crate) fn take_pong(&self, payload: &[u8]) -> Option<PongHook> {
        let mut pings = self.inner.pings.lock();
        let i = pings.iter().position(|(p, _)| p == payload)?;
        Some(pings.remove(i).1)
    }
}

impl Inner {
    /// Queues a close frame unless one was sent or the connection was cut off.
    pub(crate) fn send_close(&self, code: u16, reason: &str) {
        {
            let mut e = self.ending.lock();
            if e.begun() {
                return;
            }
            e.sent = Some((code, reason.to_owned()));
        }
        self.close_sent
            .store(self.hub.now().max(1), Ordering::Relaxed);
        self.hub.due_in(self.hub.close_timeout());
        let payload = close_payload(code, reason);
        let mask = (self.role == Role::Client).then(frame::random_mask);
        let len = frame::encoded_len(payload.len(), mask.is_some());
        let pushed = self.outbox.push_with(&mut &*self.stream, len, true, |v| {
            frame::encode(v, OpCode::Close, &payload, mask)
        });
        if let Ok(flushed) = pushed {
            self.handle_flushed(flushed);
        }
    }

    /// Answers the peer's close frame by echoing its code.
    pub(crate) fn reply_close(&self, code: u16) {
        self.send_close(code, "");
    }

    /// Cuts the connection off: drops the backlog, tries one close frame,
    /// and shuts the socket so the connection's thread wakes and ends it.
    pub(crate) fn force_end(&self, code: u16, reason: &str) {
        {
            let mut e = self.ending.lock();
            if e.forced.is_some() {
                return;
            }
            e.forced = Some((code, reason.to_owned()));
            let send_frame = e.sent.is_none() && code != 1006;
            if self.outbox.abort() && send_frame {
                let mut bytes = Vec::new();
                let mask = (self.role == Role::Client).then(frame::random_mask);
                frame::encode(
                    &mut bytes,
                    OpCode::Close,
                    &close_payload(code, reason),
                    mask,
                );
                self.outbox.write_last(&mut &*self.stream, &bytes);
            }
        }
        log::debug!("connection {} cut off: {code} {reason}", self.id);
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    pub(crate) fn handle_flushed(self: &Inner, flushed: Flushed) {
        match flushed {
            Flushed::Done => {}
            Flushed::Stalled => self.hub.stalled(self.id),
            Flushed::Failed(e) => {
                log::debug!("connection {}: write failed: {e}", self.id);
                let _ = self.stream.shutdown(Shutdown::Both);
            }
        }
    }

    /// Writes queued bytes for the housekeeper, which holds the writer role.
    pub(crate) fn resume_writing(&self) -> Flushed {
        self.outbox.resume(&mut &*self.stream)
    }
}

/// A close frame's payload: the code, then the reason cut to fit 125 bytes.
/// 1005 ("no status") is sent as an empty payload.
pub(crate) fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    if code == 1005 {
        return Vec::new();
    }
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(&reason.as_bytes()[..cut]);
    p
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.inner.id)
            .field("path", &self.inner.request.path)
            .field("peer", &self.inner.request.peer)
            .finish()
    }
}

impl PartialEq for Connection {
    fn eq(&self, other: &Connection) -> bool {
        self.inner.id == other.inner.id && Arc::ptr_eq(&self.inner.hub, &other.inner.hub)
    }
}

impl Eq for Connection {}

// Writes through a shared `&TcpStream` are what lets any thread send.
#[allow(dead_code)] // because this only checks at compile time.
fn assert_traits() {
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<Connection>();
    let _ = |s: &TcpStream| {
        let mut w = s;
        let _ = w.write(&[]);
    };
}
