//! An event stream's definition: its hooks, history size and filter.
//!
//! Architecture invariant: a stream's events reach every client in one
//! order, replays first. A push to many clients and a client's join (its
//! response head, its replay, its registration) happen under the stream's
//! lock, and pushes never block under it; the per-client `filter` runs
//! under that lock too, for live pushes and replays alike. A pushed event
//! is encoded once and shared by every client's outbox.

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use super::client::{EventClient, Shared, State};
use super::sink::EventSink;
use crate::{Accept, Error, Event, Reject, Request};

type ConnectHook = dyn Fn(&Request) -> Result<Accept, Reject> + Send + Sync;
type ClientHook = dyn Fn(&EventClient) + Send + Sync;
type WriterHook = dyn Fn(&EventSink<'_>) -> Result<(), Error> + Send + Sync;
type UnknownIdHook = dyn Fn(&Request) -> Option<Event> + Send + Sync;

/// A Server-Sent Events endpoint, registered with
/// [`Server::define_event_stream`](crate::Server::define_event_stream).
///
/// Every hook is optional. For each client, on the client's own thread:
/// `on_handshake` decides (from the [`Request`]) whether to answer with the
/// stream or refuse; then the missed events are replayed (see
/// [`EventStream::history`]); then `on_open` runs; then the `writer`, if
/// there is one, runs until it returns (which ends the stream) or the client
/// goes; `on_close` runs exactly once at the end. Events can also be pushed
/// from any thread with an [`EventPublisher`](crate::EventPublisher).
///
/// ```
/// use std::time::Duration;
/// use wsportal::{Accept, Event, EventStream, Reject};
/// let stream = EventStream::new()
///     .history(100)
///     .on_handshake(|req| match req.header("authorization") {
///         Some(_) => Ok(Accept::new().header("Access-Control-Allow-Origin", "*")),
///         None => Err(Reject::new(401)),
///     })
///     .on_open(|client| println!("{} listens", client.peer_addr()))
///     .writer(|sink| {
///         for n in 0.. {
///             sink.send(&Event::new(n.to_string()).name("count"))?;
///             sink.wait(Duration::from_secs(1))?;
///         }
///         Ok(())
///     });
/// let publisher = stream.publisher();
/// # let _ = publisher;
/// ```
pub struct EventStream {
    pub(crate) on_connect: Option<Box<ConnectHook>>,
    pub(crate) on_open: Option<Box<ClientHook>>,
    pub(crate) on_close: Option<Box<ClientHook>>,
    pub(crate) writer: Option<Box<WriterHook>>,
    pub(crate) on_unknown_id: Option<Box<UnknownIdHook>>,
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("route", &self.shared.route.get())
            .field("history", &self.shared.state.lock().history.cap())
            .field("writer", &self.writer.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for EventStream {
    fn default() -> EventStream {
        EventStream::new()
    }
}

impl EventStream {
    /// A stream with no hooks and no history: it accepts every GET, and
    /// sends only what publishers push.
    pub fn new() -> EventStream {
        EventStream {
            on_connect: None,
            on_open: None,
            on_close: None,
            writer: None,
            on_unknown_id: None,
            shared: Arc::new(Shared {
                route: OnceLock::new(),
                serving: AtomicBool::new(false),
                state: Mutex::new(State::new()),
                #[cfg(feature = "redis")]
                cluster: parking_lot::RwLock::new(None),
                #[cfg(feature = "redis")]
                reading_back: Mutex::new(()),
            }),
        }
    }

    /// Runs before the response with the HTTP request; returns `Ok(Accept)`
    /// to answer with the stream (maybe adding headers, e.g. CORS, and
    /// per-client data read back with [`EventClient::data`]) or
    /// `Err(Reject)` to answer with a status, headers and body instead
    /// (`401`, `403`, or `204`, which tells an `EventSource` to stop
    /// reconnecting). The same hook, by the same name, as
    /// [`Resource::on_handshake`](crate::Resource::on_handshake).
    ///
    /// Cross-origin pages: a browser applies CORS to an `EventSource`, so
    /// the headers this hook adds decide who may read the stream
    /// (`Access-Control-Allow-Origin`, and `Access-Control-Allow-Credentials`
    /// for cookies); there is no `Origin` setting as for WebSocket resources
    /// ([`Resource::origins`](crate::Resource::origins)), whose handshakes
    /// browsers do not guard with CORS. Headers and statuses are checked as
    /// for [`Resource::on_handshake`](crate::Resource::on_handshake): an
    /// answer that cannot be sent as it is becomes a `500`.
    pub fn on_handshake(
        mut self,
        hook: impl Fn(&Request) -> Result<Accept, Reject> + Send + Sync + 'static,
    ) -> EventStream {
        self.on_connect = Some(Box::new(hook));
        self
    }

    /// The old name of [`EventStream::on_handshake`].
    #[deprecated(since = "0.1.0", note = "renamed to `on_handshake`, as for `Resource`")]
    pub fn on_connect(
        self,
        hook: impl Fn(&Request) -> Result<Accept, Reject> + Send + Sync + 'static,
    ) -> EventStream {
        self.on_handshake(hook)
    }

    /// Runs once the response head and any replayed events are queued,
    /// before the writer. Sends from here reach the client before any event
    /// pushed later.
    pub fn on_open(mut self, hook: impl Fn(&EventClient) + Send + Sync + 'static) -> EventStream {
        self.on_open = Some(Box::new(hook));
        self
    }

    /// Runs exactly once when the client has gone or its stream was closed.
    pub fn on_close(mut self, hook: impl Fn(&EventClient) + Send + Sync + 'static) -> EventStream {
        self.on_close = Some(Box::new(hook));
        self
    }

    /// Produces events on the client's own thread: the callback writes to
    /// the [`EventSink`] until it returns, which ends the stream (after the
    /// queued events are written), or until the client goes, which makes the
    /// sink's methods fail with [`Error::Closed`]. Wait between events with
    /// [`EventSink::wait`], not `thread::sleep`, so that a departed client or
    /// a server shutdown ends the writer at once. An error it returns is
    /// logged at debug level.
    pub fn writer(
        mut self,
        writer: impl Fn(&EventSink<'_>) -> Result<(), Error> + Send + Sync + 'static,
    ) -> EventStream {
        self.writer = Some(Box::new(writer));
        self
    }

    /// Keeps the last `events` events that have an id, of those sent with
    /// [`EventPublisher::send`](crate::EventPublisher::send) (default 0: off). A client that reconnects
    /// with a `Last-Event-ID` found in this history first gets every event
    /// kept after it, then the live ones. Events without an id (a clock
    /// tick, a presence count) are live only: neither kept nor replayed.
    ///
    /// With a backplane (feature `redis`) the history is the stream's one
    /// history in Redis (a Redis stream, `PREFIX:history:ROUTE`, trimmed to
    /// about `events` with `MAXLEN ~`), which every instance holds a copy
    /// of: every instance delivers the stream's events in its one order
    /// (two instances publishing at once included), and a client resuming
    /// on any instance gets exactly the events after its id, or, when the
    /// id is no longer kept, the same [`EventStream::on_unknown_id`] answer
    /// on every instance. The ids clients see are the events' own (keep
    /// them unique within the history: a resume looks up the newest event
    /// with that id); Redis's entry ids order the history and are not sent.
    /// Each instance's copy keeps the last `events` entries, so give every
    /// instance the same size. Events sent before the server started are
    /// replaced by the shared history when it starts.
    ///
    /// While Redis is unreachable, `send` still reaches this instance's
    /// clients, but the event is in no history (other instances never get
    /// it): a client resuming with its id is told it is unknown. When
    /// Redis restarts without its data, every history starts again empty,
    /// and every earlier id is unknown everywhere. An instance cut off from
    /// Redis reads back what it missed when it is back, and delivers it to
    /// its clients in order; if the history was trimmed past its last event
    /// meanwhile (more than about `events` events went by), it closes its
    /// clients instead, and when they reconnect with their last id they
    /// are told it is unknown (`on_unknown_id`). (After Redis lost the
    /// history, whether they missed anything is unknown: they get the new
    /// history's events.)
    pub fn history(self, events: usize) -> EventStream {
        {
            self.shared.state.lock().history.set_cap(events);
        }
        self
    }

    /// Chooses the event sent, instead of a replay, to a client whose
    /// `Last-Event-ID` is not in the history (older than the history, or
    /// from before a restart); `None` sends nothing. Live events follow.
    /// Without this hook such a client just gets the live events (it is not
    /// told it missed some). With a backplane, the shared history is read
    /// back once before an id is called unknown, so every instance answers
    /// alike.
    pub fn on_unknown_id(
        mut self,
        hook: impl Fn(&Request) -> Option<Event> + Send + Sync + 'static,
    ) -> EventStream {
        self.on_unknown_id = Some(Box::new(hook));
        self
    }
}

/// Per-client filters, and pushing to nobody without an error.
impl EventStream {
    /// Decides, for each client and each event pushed to many clients
    /// ([`EventPublisher::send`](crate::EventPublisher::send), [`EventPublisher::to_group`](crate::EventPublisher::to_group)) or replayed
    /// from the history, whether the client gets it: a per-client filter
    /// that a resuming client's replay obeys too, so it misses nothing it
    /// wants and gets nothing it does not. Read what the client wants from
    /// its request ([`Request::query_param`]) or its
    /// [`EventClient::data`]. Events sent to one client
    /// ([`EventClient::send`], [`EventPublisher::to_client`](crate::EventPublisher::to_client), `on_open`,
    /// the writer) are not filtered.
    ///
    /// It runs under the stream's lock, once per client and event: keep it
    /// quick, and do not push to this stream from it. A panic in it counts
    /// as `false` (and is logged at error level).
    ///
    /// ```
    /// use wsportal::{Event, EventStream};
    /// // `/logs?level=error` gets only `error` events; without `level`, all.
    /// let logs = EventStream::new().history(1000).filter(|client, event: &Event| {
    ///     match client.request().query_param("level") {
    ///         Some(level) => event.event_name() == Some(level.as_str()),
    ///         None => true,
    ///     }
    /// });
    /// # let _ = logs;
    /// ```
    pub fn filter(
        self,
        keep: impl Fn(&EventClient, &Event) -> bool + Send + Sync + 'static,
    ) -> EventStream {
        self.shared.state.lock().filter = Some(Arc::new(keep));
        self
    }
}
