//! The handle to one event-stream client (`EventClient`), and what a
//! stream's clients, publishers and the server share (`Shared`, whose
//! `State` lists the clients: the one type-level cycle of `sse/`, kept in
//! this file). Everything else in `sse/` imports from here, never the
//! other way.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use super::history::{History, Replay};
use crate::session::hub::Hub;
use crate::session::resource::Data;
use crate::transport::outbox::{Admit, Flushed, Lane, Outbox, PushError};
use crate::transport::{Stream, Transport};
use crate::wire::event::comment_bytes;
use crate::{Error, Event, Request};

/// The per-client filter ([`EventStream::filter`](crate::EventStream::filter)).
pub(crate) type FilterHook = dyn Fn(&EventClient, &Event) -> bool + Send + Sync;

/// A handle to one client of an event stream. Cheap to clone, `Send + Sync`:
/// keep it, hand it to other threads, and send from anywhere at any time.
///
/// Once the client has gone (or [`EventClient::close`] was called), sends
/// fail with [`Error::Closed`].
#[derive(Clone)]
pub struct EventClient {
    pub(crate) inner: Arc<ClientInner>,
}

pub(crate) struct ClientInner {
    pub(crate) id: u64,
    pub(crate) stream: Arc<Stream>,
    request: Request,
    data: Option<Data>,
    pub(crate) outbox: Outbox,
    pub(crate) hub: Arc<Hub>,
    pub(crate) shared: Arc<Shared>,
    /// No more events may be queued: closing, gone, or cut off.
    pub(crate) closing: AtomicBool,
    /// Cut off: queued events were dropped.
    pub(crate) forced: AtomicBool,
    /// The head and replay are queued: keep-alives may follow.
    pub(crate) ready: AtomicBool,
    /// Milliseconds (hub clock) of the last push, for keep-alive.
    pub(crate) last_sent: AtomicU64,
    groups: Mutex<Vec<String>>,
}

impl EventClient {
    pub(crate) fn new(
        id: u64,
        stream: Arc<Stream>,
        request: Request,
        data: Option<Data>,
        hub: Arc<Hub>,
        shared: Arc<Shared>,
    ) -> EventClient {
        let now = hub.now();
        EventClient {
            inner: Arc::new(ClientInner {
                id,
                stream,
                request,
                data,
                outbox: Outbox::new(hub.max_backlog),
                hub,
                shared,
                closing: AtomicBool::new(false),
                forced: AtomicBool::new(false),
                ready: AtomicBool::new(false),
                last_sent: AtomicU64::new(now),
                groups: Mutex::new(Vec::new()),
            }),
        }
    }

    /// A number unique among this server's connections (WebSocket and SSE).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Sends one event to this client only (it is not kept in the stream's
    /// history).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a newline in the event's name or id (nothing
    /// is sent), [`Error::Closed`] once the client has gone or is closing,
    /// [`Error::TooSlow`] when its backlog is full (it is then cut off).
    pub fn send(&self, event: &Event) -> Result<(), Error> {
        let bytes = event.encode()?;
        self.push(&bytes)
    }

    /// Sends a comment line (ignored by browsers; keeps proxies from timing out).
    ///
    /// # Errors
    /// As [`EventClient::send`], except that any text is valid.
    pub fn comment(&self, text: &str) -> Result<(), Error> {
        self.push(&comment_bytes(text))
    }

    /// Ends the stream once the events already queued are written; the
    /// `on_close` hook then runs. Later sends fail. Calling it again does
    /// nothing. (An `EventSource` reconnects after a closed stream unless the
    /// reconnection is refused with `204`.)
    pub fn close(&self) {
        if !self.inner.closing.swap(true, Ordering::SeqCst) {
            log::debug!("event client {} closing", self.inner.id);
        }
        // Wakes the client's thread, which lingers for the backlog, then ends.
        let _ = self.inner.stream.shutdown(Shutdown::Read);
    }

    /// Whether events can still be sent.
    pub fn is_open(&self) -> bool {
        !self.inner.closing.load(Ordering::SeqCst)
    }

    /// The request path (without query).
    pub fn path(&self) -> &str {
        self.inner.request.path()
    }

    /// A named path segment's value: `/events/:room` gives `param("room")`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.inner.request.param(name)
    }

    /// A request header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner.request.header(name)
    }

    /// The `Last-Event-ID` the client reconnected with, if any.
    pub fn last_event_id(&self) -> Option<&str> {
        self.header("last-event-id").filter(|id| !id.is_empty())
    }

    /// The whole opening request.
    pub fn request(&self) -> &Request {
        &self.inner.request
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.request.peer_addr()
    }

    /// The per-client data attached by the `on_handshake` hook's
    /// [`Accept::data`](crate::Accept::data), if it has type `T`.
    pub fn data<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.inner.data.as_deref().and_then(|d| d.downcast_ref())
    }

    /// Bytes queued for this client and not yet written to its socket.
    pub fn backlog(&self) -> usize {
        self.inner.outbox.backlog()
    }

    /// Joins a named group of this stream's clients (see
    /// [`EventPublisher::to_group`](crate::EventPublisher::to_group)). A client leaves its groups when it goes.
    pub fn join(&self, group: &str) {
        let mut groups = self.inner.groups.lock();
        if !groups.iter().any(|g| g == group) {
            groups.push(group.to_owned());
        }
    }

    /// Leaves a group.
    pub fn leave(&self, group: &str) {
        self.inner.groups.lock().retain(|g| g != group);
    }

    /// The groups this client is in.
    pub fn groups(&self) -> Vec<String> {
        self.inner.groups.lock().clone()
    }

    /// Whether this client is in `group`.
    pub(crate) fn in_group(&self, group: &str) -> bool {
        self.inner.groups.lock().iter().any(|g| g == group)
    }

    /// Queues bytes for this client alone.
    pub(crate) fn push(&self, bytes: &[u8]) -> Result<(), Error> {
        if self.inner.closing.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        let stream = &mut Transport::nowait(&self.inner.stream);
        let pushed =
            self.inner
                .outbox
                .push_with(stream, bytes.len(), Admit::Limit, Lane::Data, |v| {
                    v.extend_from_slice(bytes)
                });
        self.after_push(pushed)
    }

    /// Queues bytes encoded once for many clients.
    pub(crate) fn push_shared(&self, bytes: Arc<[u8]>) -> Result<(), Error> {
        if self.inner.closing.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        let pushed = self
            .inner
            .outbox
            .push_shared(&mut Transport::nowait(&self.inner.stream), bytes);
        self.after_push(pushed)
    }

    fn after_push(&self, pushed: Result<Flushed, PushError>) -> Result<(), Error> {
        match pushed {
            Ok(flushed) => {
                let inner = &self.inner;
                inner.last_sent.store(inner.hub.now(), Ordering::Relaxed);
                inner.handle_flushed(flushed);
                Ok(())
            }
            Err(PushError::Closed) => Err(Error::Closed),
            // Event streams have no streamed messages to wait behind.
            Err(PushError::TooSlow | PushError::Held) => {
                self.inner.force_end("client too slow: backlog full");
                Err(Error::TooSlow)
            }
        }
    }
}

impl ClientInner {
    pub(crate) fn handle_flushed(&self, flushed: Flushed) {
        match flushed {
            Flushed::Done => {}
            Flushed::Stalled => self.hub.stalled(self.id),
            Flushed::Failed(e) => {
                log::debug!("event client {}: write failed: {e}", self.id);
                self.gone();
            }
        }
    }

    /// The client went away: nothing more can be sent; wake its thread.
    pub(crate) fn gone(&self) {
        self.closing.store(true, Ordering::SeqCst);
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Cuts the client off: drops its backlog and shuts the socket.
    pub(crate) fn force_end(&self, why: &str) {
        if self.forced.swap(true, Ordering::SeqCst) {
            return;
        }
        self.closing.store(true, Ordering::SeqCst);
        self.outbox.abort();
        log::debug!("event client {} cut off: {why}", self.id);
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

impl fmt::Debug for EventClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventClient")
            .field("id", &self.inner.id)
            .field("path", &self.inner.request.path())
            .field("peer", &self.inner.request.peer_addr())
            .finish()
    }
}

impl PartialEq for EventClient {
    fn eq(&self, other: &EventClient) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for EventClient {}

/// What a stream's clients, publishers and the server share.
pub(crate) struct Shared {
    /// The path the stream was defined at.
    pub(crate) route: OnceLock<String>,
    /// Whether a running server serves this stream (only one may).
    pub(crate) serving: AtomicBool,
    pub(crate) state: Mutex<State>,
    /// The backplane node of the server serving it, if it has one.
    #[cfg(feature = "redis")]
    pub(crate) cluster: parking_lot::RwLock<Option<Arc<dyn crate::session::cluster::Cluster>>>,
    /// Held by whoever reads the shared history back (one at a time, so
    /// that no older read is applied over a newer one). Never with `state`
    /// held while waiting on it.
    #[cfg(feature = "redis")]
    pub(crate) reading_back: Mutex<()>,
}

impl Shared {
    /// How `Error::NoConnections` names this stream.
    pub(crate) fn target(&self) -> String {
        match self.route.get() {
            Some(route) => format!("event stream {route}"),
            None => "an event stream not yet defined".to_owned(),
        }
    }
}

pub(crate) struct State {
    /// Open clients by id. Everything pushed to many clients is pushed
    /// under this lock (pushes never block), so every client sees the
    /// stream's events in the same order, and a joining client gets its
    /// replay before any live event.
    pub(crate) clients: BTreeMap<u64, EventClient>,
    pub(crate) history: History,
    /// Which events each client gets ([`EventStream::filter`](crate::EventStream::filter)).
    pub(crate) filter: Option<Arc<FilterHook>>,
}

impl State {
    /// A stream's state before any client: no history, no filter.
    pub(crate) fn new() -> State {
        State {
            clients: BTreeMap::new(),
            history: History::new(),
            filter: None,
        }
    }

    /// What a joining client is owed, given its `Last-Event-ID`, through
    /// the stream's filter.
    pub(crate) fn replay_for(&self, client: &EventClient, last_id: Option<&str>) -> Replay {
        match &self.filter {
            None => self.history.replay(last_id, |_| true),
            Some(filter) => self.history.replay(last_id, |e| keeps(filter, client, e)),
        }
    }

    /// Whether the stream's filter lets `client` have `event`.
    pub(crate) fn keeps(&self, client: &EventClient, event: &Event) -> bool {
        self.filter.as_ref().is_none_or(|f| keeps(f, client, event))
    }
}

/// Runs a filter; a panic is a no.
fn keeps(filter: &Arc<FilterHook>, client: &EventClient, event: &Event) -> bool {
    match crate::session::guard::run_for(&client.inner.hub.stats, true, || filter(client, event)) {
        Ok(keep) => keep,
        Err(p) => {
            log::error!(
                "event client {}: filter panicked at {}: {}",
                client.id(),
                p.location,
                p.message
            );
            false
        }
    }
}
