//! The connection handle that hooks and other threads use: sending, pinging,
//! closing, groups, and what the opening request said.

use std::any::Any;
use std::fmt;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::session::hub::Hub;
use crate::session::resource::Data;
use crate::transport::outbox::{Admit, Flushed, Lane, Outbox, PushError};
use crate::transport::{Stream, Transport};
use crate::wire::frame::{self, OpCode};
use crate::wire::reader::Role;
use crate::{Error, Message, Request, SendError, SendTimeoutError};

type PongHook = Box<dyn FnOnce(&Connection) + Send>;

/// Messages at least this long are sent from their own buffer, not copied.
pub(crate) const ZERO_COPY_MIN: usize = 1 << 10;

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    Closed,
    TimedOut,
}

/// When a wait of `timeout` from now ends (a huge timeout: in a century).
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

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
    pub(crate) stream: Arc<Stream>,
    pub(crate) request: Box<Request>,
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
    /// The outbox's `written` when the ping went out or its wait was last
    /// extended: a peer still taking our bytes is slow, not dead.
    pub(crate) ping_progress: AtomicU64,
    /// When we sent a close frame (0: not yet).
    pub(crate) close_sent: AtomicU64,
    /// Values for `Connection::with_state`.
    pub(crate) states: crate::session::state::States,
    /// Messages and bytes each way, for `stats()`.
    pub(crate) counts: crate::session::stats::ConnCounts,
    /// The permessage-deflate stage of the send path, when negotiated. Its
    /// lock is held from compressing a message to queueing it, so the
    /// peer's inflater sees messages in the order they were compressed.
    #[cfg(feature = "deflate")]
    pub(crate) compressor: Option<crate::sync::Mutex<crate::wire::deflate::Compressor>>,
}

/// Everything a connection is built from.
pub(crate) struct Parts {
    pub(crate) stream: Arc<Stream>,
    pub(crate) request: Box<Request>,
    pub(crate) route: String,
    pub(crate) protocol: Option<String>,
    pub(crate) data: Option<Data>,
    pub(crate) role: Role,
    /// The permessage-deflate agreement and our settings, if negotiated.
    #[cfg(feature = "deflate")]
    pub(crate) deflate: Option<(crate::wire::extension::Agreed, crate::Deflate)>,
}

impl Connection {
    pub(crate) fn new(id: u64, parts: Parts, hub: Arc<Hub>) -> Connection {
        let now = hub.now();
        #[cfg(feature = "deflate")]
        let compressor = parts.deflate.map(|(agreed, ours)| {
            let dir = match parts.role {
                Role::Server => agreed.server(),
                Role::Client => agreed.client(),
            };
            crate::sync::Mutex::new(crate::wire::deflate::Compressor::new(
                dir,
                ours.level,
                ours.min_size,
            ))
        });
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
                ping_progress: AtomicU64::new(0),
                close_sent: AtomicU64::new(0),
                states: crate::session::state::States::default(),
                counts: crate::session::stats::ConnCounts::default(),
                #[cfg(feature = "deflate")]
                compressor,
            }),
        }
    }

    /// A number unique among this server's connections (a client's own
    /// connection is always 1).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Sends a message. It never waits: when the backlog
    /// ([`Config::max_backlog`](crate::Config::max_backlog)) has no room for
    /// it, the client is too slow and is closed with 1008. To wait for room
    /// instead, use [`Connection::send_timeout`].
    ///
    /// # Errors
    /// [`SendError`] with the message when the connection is closed or closing,
    /// or when its backlog is full (it is then closed with 1008).
    pub fn send(&self, msg: impl Into<Message>) -> Result<(), SendError<Message>> {
        self.send_until(msg.into(), None)
            .map_err(|(_, msg)| SendError(msg))
    }

    /// Sends a message, waiting while the backlog has no room for it: the
    /// producer slows down to the client's pace, as with a blocking socket
    /// write. The message is queued once the backlog has room for it (a
    /// message larger than the whole backlog once the backlog is empty);
    /// several waiting producers are woken as bytes leave. A zero `timeout`
    /// does not wait.
    ///
    /// A timeout does not close the connection. The wait is for room in the
    /// backlog, not for the peer to read: use [`Connection::flush`] for that.
    ///
    /// Called on the connection's own thread (in a hook), it waits the same
    /// way: the backlog is written by the other threads and the housekeeper,
    /// never only by the thread that reads, so this does not deadlock. While
    /// it waits the connection reads nothing, so a peer that will not read
    /// until its own writes are read makes it time out.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`] with the message when there was no room
    /// before `timeout` passed; [`SendTimeoutError::Closed`] with the message
    /// when the connection is closed or closing.
    pub fn send_timeout(
        &self,
        msg: impl Into<Message>,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<Message>> {
        let deadline = deadline_after(timeout);
        self.send_until(msg.into(), Some(deadline))
            .map_err(|(why, msg)| match why {
                Refused::TimedOut => SendTimeoutError::Timeout(msg),
                Refused::Closed => SendTimeoutError::Closed(msg),
            })
    }

    /// Blocks until everything queued for this peer so far has been handed
    /// to the kernel, or `timeout` passes. Works on any thread, the
    /// connection's own included (as [`Connection::send_timeout`]).
    ///
    /// Over TLS, bytes count once they are on the socket, not when rustls
    /// took them. Messages queued while a streamed message is open
    /// ([`MessageWriter`](crate::MessageWriter)) wait behind it, and a flush
    /// waits for them too.
    ///
    /// # Errors
    /// [`Error::Timeout`] when `timeout` passed first (the connection stays
    /// open); [`Error::Closed`] when the connection was cut off, failed, or
    /// closed while a stream was open before the bytes were written (queued
    /// messages were dropped); [`Error::BehindStream`] at once, on the
    /// thread whose streamed message is open, when messages wait behind it:
    /// only that thread can release them, by finishing the stream.
    pub fn flush(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = deadline_after(timeout);
        let inner = &self.inner;
        let Ok(mark) = inner.outbox.flush_mark() else {
            return Err(Error::BehindStream);
        };
        inner.handle_flushed(inner.outbox.kick(&mut inner.nowait()));
        match inner.outbox.wait_written(mark, deadline) {
            Ok(()) => Ok(()),
            Err(PushError::TooSlow) => Err(Error::Timeout("flushing the backlog")),
            Err(PushError::Closed | PushError::Held) => Err(Error::Closed),
        }
    }

    /// Sends a text message.
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub fn send_text(&self, text: &str) -> Result<(), SendError<Message>> {
        self.push_data(OpCode::Text, text.as_bytes(), None)
            .map_err(|_| SendError(Message::Text(text.to_owned())))
    }

    /// Sends a binary message.
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub fn send_binary(&self, data: &[u8]) -> Result<(), SendError<Message>> {
        self.push_data(OpCode::Binary, data, None)
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
        let code = if crate::wire::reader::close_code_allowed(code) {
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
        let admit = if last { Admit::Close } else { Admit::Limit };
        let lane = match op {
            OpCode::Ping | OpCode::Pong => Lane::Urgent,
            OpCode::Close => Lane::Control,
            _ => Lane::Data,
        };
        let pushed = self
            .inner
            .outbox
            .push_with(&mut self.inner.nowait(), len, admit, lane, |v| {
                frame::encode(v, op, payload, mask)
            });
        self.after_push(pushed)?;
        if matches!(op, OpCode::Text | OpCode::Binary) {
            self.inner.counts.sent(payload.len(), &self.inner.hub.stats);
        }
        Ok(())
    }

    /// Queues a frame encoded once for many connections (server side only:
    /// a client's frames are masked, each with its own key).
    pub(crate) fn push_shared(&self, frame: Arc<[u8]>) -> Result<(), Error> {
        let pushed = self
            .inner
            .outbox
            .push_shared(&mut self.inner.nowait(), frame);
        if let Err(PushError::Held) = pushed {
            // A broadcast is not refused to one connection quietly (its
            // sender cannot tell): one that cannot take it is closed.
            self.inner
                .force_end(1008, "backlog full behind a streamed message");
            return Err(Error::TooSlow);
        }
        self.after_push(pushed)
    }

    /// Whether this end masks its frames (a client).
    pub(crate) fn masks(&self) -> bool {
        self.inner.role == Role::Client
    }

    pub(crate) fn after_push(&self, pushed: Result<Flushed, PushError>) -> Result<(), Error> {
        match pushed {
            Ok(flushed) => {
                self.inner.handle_flushed(flushed);
                Ok(())
            }
            Err(e @ PushError::Closed) => {
                self.refused(e);
                Err(Error::Closed)
            }
            Err(e @ PushError::TooSlow) => {
                self.refused(e);
                Err(Error::TooSlow)
            }
            Err(PushError::Held) => Err(Error::BehindStream),
        }
    }

    /// The pong callbacks a pong with `payload` answers: its ping's, and
    /// those of every ping sent before it (RFC 6455 5.5.3 lets a peer answer
    /// only the latest), in the order they were sent.
    pub(crate) fn take_pongs(&self, payload: &[u8]) -> Vec<PongHook> {
        let mut pings = self.inner.pings.lock();
        match pings.iter().position(|(p, _)| p == payload) {
            Some(i) => pings.drain(..=i).map(|(_, hook)| hook).collect(),
            None => Vec::new(),
        }
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
        // A close frame is let past the backlog limit, so this fails only
        // when the outbox is already closed (cut off, or a write failed):
        // then the connection ends without it.
        let pushed =
            self.outbox
                .push_with(&mut self.nowait(), len, Admit::Close, Lane::Control, |v| {
                    frame::encode(v, OpCode::Close, &payload, mask)
                });
        match pushed {
            Ok(flushed) => self.handle_flushed(flushed),
            Err(_) => {
                let _ = self.stream.shutdown(Shutdown::Both);
            }
        }
    }

    /// Frees what a connection gone quiet (its keepalive ping is due) keeps
    /// for speed: the compressor's zlib state (about 200 KiB with zlib-rs,
    /// whose hash table has a fixed size), and a TLS connection's read
    /// buffers. A fresh compressor refers to nothing before it, so the
    /// peer's inflater stays in step; the next message compresses a little
    /// less well. Each part is skipped while it is in use.
    pub(crate) fn trim(&self) {
        #[cfg(feature = "deflate")]
        if let Some(mut z) = self
            .compressor
            .as_ref()
            .and_then(crate::sync::Mutex::try_lock)
        {
            z.reset();
        }
        self.stream.trim();
    }

    /// The socket, for writes that never wait.
    pub(crate) fn nowait(&self) -> Transport<'_> {
        Transport::nowait(&self.stream)
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
                self.outbox.write_last(&mut self.nowait(), &bytes);
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
        self.outbox.resume(&mut self.nowait())
    }

    /// Writes queued bytes for the connection's own thread, which holds the
    /// writer role and may wait (up to the socket's send timeout) for its peer.
    pub(crate) fn resume_waiting(&self) -> Flushed {
        self.outbox.resume(&mut Transport::waiting(&self.stream))
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
