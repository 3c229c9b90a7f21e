//! An event stream's definition (its hooks and history) and the publisher
//! that pushes events to its clients from any thread.
//!
//! Architecture invariant: a stream's events reach every client in one
//! order, replays first. A push to many clients and a client's join (its
//! response head, its replay, its registration) happen under the stream's
//! lock, and pushes never block under it; the per-client `filter` runs
//! under that lock too, for live pushes and replays alike. A pushed event
//! is encoded once and shared by every client's outbox.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use super::client::{EventClient, EventSink};
use crate::{Accept, Error, Event, Reject, Request};

type ConnectHook = dyn Fn(&Request) -> Result<Accept, Reject> + Send + Sync;
type ClientHook = dyn Fn(&EventClient) + Send + Sync;
type WriterHook = dyn Fn(&EventSink<'_>) -> Result<(), Error> + Send + Sync;
type UnknownIdHook = dyn Fn(&Request) -> Option<Event> + Send + Sync;
type FilterHook = dyn Fn(&EventClient, &Event) -> bool + Send + Sync;

/// A Server-Sent Events endpoint, registered with
/// [`Server::define_event_stream`](crate::Server::define_event_stream).
///
/// Every hook is optional. For each client, on the client's own thread:
/// `on_handshake` decides (from the [`Request`]) whether to answer with the
/// stream or refuse; then the missed events are replayed (see
/// [`EventStream::history`]); then `on_open` runs; then the `writer`, if
/// there is one, runs until it returns (which ends the stream) or the client
/// goes; `on_close` runs exactly once at the end. Events can also be pushed
/// from any thread with an [`EventPublisher`].
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
            .field("history", &self.shared.state.lock().history_cap)
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
                state: Mutex::new(State {
                    clients: BTreeMap::new(),
                    history: VecDeque::new(),
                    history_cap: 0,
                    filter: None,
                }),
                #[cfg(feature = "redis")]
                cluster: parking_lot::RwLock::new(None),
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
    /// [`EventPublisher::send`] (default 0: off). A client that reconnects
    /// with a `Last-Event-ID` found in this history first gets every event
    /// kept after it, then the live ones. Events without an id (a clock
    /// tick, a presence count) are live only: neither kept nor replayed.
    pub fn history(self, events: usize) -> EventStream {
        {
            let mut st = self.shared.state.lock();
            st.history_cap = events;
            while st.history.len() > events {
                st.history.pop_front();
            }
        }
        self
    }

    /// Chooses the event sent, instead of a replay, to a client whose
    /// `Last-Event-ID` is not in the history (older than the history, or
    /// from before a restart); `None` sends nothing. Live events follow.
    /// Without this hook such a client just gets the live events.
    pub fn on_unknown_id(
        mut self,
        hook: impl Fn(&Request) -> Option<Event> + Send + Sync + 'static,
    ) -> EventStream {
        self.on_unknown_id = Some(Box::new(hook));
        self
    }

    /// A handle for pushing events to this stream's clients from any
    /// thread; it works before the server starts (there is nobody to send
    /// to yet, but [`EventPublisher::send`] fills the history).
    pub fn publisher(&self) -> EventPublisher {
        EventPublisher::new(Arc::clone(&self.shared))
    }
}

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
}

impl Shared {
    /// How `Error::NoConnections` names this stream.
    fn target(&self) -> String {
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
    history: VecDeque<Recorded>,
    history_cap: usize,
    /// Which events each client gets ([`EventStream::filter`]).
    filter: Option<Arc<FilterHook>>,
}

/// An event kept for replay.
struct Recorded {
    id: Option<String>,
    bytes: Arc<[u8]>,
    /// The event itself, for the stream's filter.
    event: Event,
}

/// What a joining client is owed, given its `Last-Event-ID`.
pub(crate) enum Replay {
    /// No id, or the newest id: nothing.
    Nothing,
    /// These events, sent after its id.
    Missed(Vec<Arc<[u8]>>),
    /// Its id is not in the history.
    Unknown,
}

impl State {
    pub(crate) fn replay(&self, last_id: Option<&str>) -> Replay {
        let Some(last_id) = last_id else {
            return Replay::Nothing;
        };
        let found = self
            .history
            .iter()
            .rposition(|r| r.id.as_deref() == Some(last_id));
        match found {
            None => Replay::Unknown,
            Some(i) if i + 1 == self.history.len() => Replay::Nothing,
            Some(i) => Replay::Missed(
                self.history
                    .iter()
                    .skip(i + 1)
                    .map(|r| Arc::clone(&r.bytes))
                    .collect(),
            ),
        }
    }

    fn record(&mut self, event: &Event, bytes: &Arc<[u8]>) {
        if self.history_cap == 0 || event.id.is_none() {
            return;
        }
        if self.history.len() == self.history_cap {
            self.history.pop_front();
        }
        self.history.push_back(Recorded {
            id: event.id.clone(),
            bytes: Arc::clone(bytes),
            event: event.clone(),
        });
    }
}

/// Pushes events to the clients of one event stream from any thread. Cheap
/// to clone, `Send + Sync`. Get one from [`EventStream::publisher`],
/// [`ServerHandle::event_stream`](crate::ServerHandle::event_stream) or
/// [`EventClient::publisher`].
///
/// Each event is encoded once, whatever the number of recipients. A push
/// that finds nobody returns [`Error::NoConnections`], as for WebSockets.
#[derive(Clone)]
pub struct EventPublisher {
    shared: Arc<Shared>,
    /// Pushing to nobody is `Ok(0)` ([`EventPublisher::allow_nobody`]).
    nobody_ok: bool,
}

impl fmt::Debug for EventPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventPublisher")
            .field("route", &self.shared.route.get())
            .field("clients", &self.client_count())
            .finish()
    }
}

impl EventPublisher {
    pub(crate) fn new(shared: Arc<Shared>) -> EventPublisher {
        EventPublisher {
            shared,
            nobody_ok: false,
        }
    }

    /// Sends an event to every client of the stream, and keeps it in the
    /// history (when the stream has one and the event has an id) even if
    /// nobody is connected.
    /// Returns how many clients it was queued for.
    ///
    /// When the serving server has a backplane (feature `redis`), the event
    /// also goes to the stream's clients on every other instance, and into
    /// their histories; the count is of this instance's clients, and `Ok(0)`
    /// replaces [`Error::NoConnections`] once it is published. (A publisher
    /// used before its server starts reaches this instance only.)
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a newline in the event's name or id
    /// (nothing is sent or kept), [`Error::NoConnections`] when no client is
    /// connected.
    pub fn send(&self, event: &Event) -> Result<usize, Error> {
        let local = self.send_here(event);
        #[cfg(feature = "redis")]
        let local = self.publish(crate::session::cluster::Target::Stream, event, local);
        local
    }

    /// [`EventPublisher::send`] to this instance's clients only.
    pub(crate) fn send_here(&self, event: &Event) -> Result<usize, Error> {
        let bytes: Arc<[u8]> = event.encode()?.into();
        let mut st = self.shared.state.lock();
        st.record(event, &bytes);
        let queued = st
            .clients
            .values()
            .filter(|c| st.keeps(c, event) && c.push_shared(Arc::clone(&bytes)).is_ok())
            .count();
        drop(st);
        self.counted(queued)
    }

    /// Sends an event to the clients of the stream that joined `group`
    /// ([`EventClient::join`]). It is not kept in the history. With a
    /// backplane it reaches the group on every instance, as for
    /// [`EventPublisher::send`] (there is no cluster presence for event
    /// clients' groups: `Ok(0)` once published).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] as for [`EventPublisher::send`],
    /// [`Error::NoConnections`] when the group has no connected client.
    pub fn to_group(&self, group: &str, event: &Event) -> Result<usize, Error> {
        let local = self.to_group_here(group, event);
        #[cfg(feature = "redis")]
        let local = self.publish(
            |stream| crate::session::cluster::Target::StreamGroup {
                stream,
                group: group.to_owned(),
            },
            event,
            local,
        );
        local
    }

    /// [`EventPublisher::to_group`] to this instance's clients only.
    pub(crate) fn to_group_here(&self, group: &str, event: &Event) -> Result<usize, Error> {
        let bytes: Arc<[u8]> = event.encode()?.into();
        let st = self.shared.state.lock();
        let queued = st
            .clients
            .values()
            .filter(|c| {
                c.in_group(group) && st.keeps(c, event) && c.push_shared(Arc::clone(&bytes)).is_ok()
            })
            .count();
        drop(st);
        if queued == 0 && !self.nobody_ok {
            return Err(Error::NoConnections(format!(
                "group {group} of {}",
                self.shared.target()
            )));
        }
        Ok(queued)
    }

    /// Sends an event to the client with this id only. It is not kept in
    /// the history.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] as for [`EventPublisher::send`],
    /// [`Error::NoConnections`] when no such client is connected.
    pub fn to_client(&self, id: u64, event: &Event) -> Result<(), Error> {
        let bytes = event.encode()?;
        let st = self.shared.state.lock();
        let sent = st.clients.get(&id).map(|c| c.push(&bytes));
        drop(st);
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(Error::NoConnections(format!(
                "client {id} of {}",
                self.shared.target()
            ))),
        }
    }

    /// How many clients are connected.
    pub fn client_count(&self) -> usize {
        self.shared.state.lock().clients.len()
    }

    /// The connected clients, by id.
    pub fn clients(&self) -> Vec<EventClient> {
        self.shared.state.lock().clients.values().cloned().collect()
    }

    /// The connected client with this id.
    pub fn client(&self, id: u64) -> Option<EventClient> {
        self.shared.state.lock().clients.get(&id).cloned()
    }

    fn counted(&self, queued: usize) -> Result<usize, Error> {
        if queued == 0 && !self.nobody_ok {
            return Err(Error::NoConnections(self.shared.target()));
        }
        Ok(queued)
    }
}

/// A per-push choice of clients.
impl EventPublisher {
    /// Sends an event to the clients that `keep` chooses, as
    /// [`Broadcaster::to_resource_where`](crate::Broadcaster::to_resource_where)
    /// does for WebSockets: decide on typed data (the client's
    /// [`EventClient::data`], its request) and on what the event is about,
    /// without parsing the event's text. `keep` runs once per client,
    /// before anything is sent and outside the stream's lock (it may ask
    /// the publisher anything); then the event is encoded once and queued
    /// for the chosen clients still connected (the stream's
    /// [`EventStream::filter`] applies too). It is not kept in the history
    /// (a predicate cannot be replayed to a client that resumes) and, with
    /// a backplane, reaches this instance's clients only.
    ///
    /// ```
    /// use wsportal::{Accept, Event, EventStream};
    /// #[derive(PartialEq, PartialOrd)]
    /// enum Level { Info, Error }
    /// // `/logs?errors` asks for errors only.
    /// let logs = EventStream::new().on_handshake(|req| {
    ///     let least = if req.query_param("errors").is_some() { Level::Error } else { Level::Info };
    ///     Ok(Accept::new().data(least))
    /// });
    /// let publisher = logs.publisher().allow_nobody();
    /// let (level, text) = (Level::Error, "disk full");
    /// let wants = |c: &wsportal::EventClient| c.data::<Level>().is_none_or(|least| level >= *least);
    /// publisher.send_where(wants, &Event::new(text))?;
    /// # Ok::<(), wsportal::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] as for [`EventPublisher::send`],
    /// [`Error::NoConnections`] when it is queued for nobody (unless
    /// [`EventPublisher::allow_nobody`]).
    pub fn send_where(
        &self,
        mut keep: impl FnMut(&EventClient) -> bool,
        event: &Event,
    ) -> Result<usize, Error> {
        let bytes: Arc<[u8]> = event.encode()?.into();
        let chosen: Vec<u64> = self
            .clients()
            .iter()
            .filter(|c| keep(c))
            .map(EventClient::id)
            .collect();
        let st = self.shared.state.lock();
        let queued = chosen
            .iter()
            .filter_map(|id| st.clients.get(id))
            .filter(|c| st.keeps(c, event) && c.push_shared(Arc::clone(&bytes)).is_ok())
            .count();
        drop(st);
        self.counted(queued)
    }
}

/// Per-client filters, and pushing to nobody without an error.
impl EventStream {
    /// Decides, for each client and each event pushed to many clients
    /// ([`EventPublisher::send`], [`EventPublisher::to_group`]) or replayed
    /// from the history, whether the client gets it: a per-client filter
    /// that a resuming client's replay obeys too, so it misses nothing it
    /// wants and gets nothing it does not. Read what the client wants from
    /// its request ([`Request::query_param`]) or its
    /// [`EventClient::data`]. Events sent to one client
    /// ([`EventClient::send`], [`EventPublisher::to_client`], `on_open`,
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

impl State {
    /// What a joining client is owed, given its `Last-Event-ID`, through
    /// the stream's filter.
    pub(crate) fn replay_for(&self, client: &EventClient, last_id: Option<&str>) -> Replay {
        let Some(filter) = &self.filter else {
            return self.replay(last_id);
        };
        match self.replay(last_id) {
            Replay::Missed(_) => {
                // Because `replay` found it, the id is in the history.
                let i = self
                    .history
                    .iter()
                    .rposition(|r| r.id.as_deref() == last_id)
                    .unwrap_or(0);
                let kept = self
                    .history
                    .iter()
                    .skip(i + 1)
                    .filter(|r| keeps(filter, client, &r.event));
                Replay::Missed(kept.map(|r| Arc::clone(&r.bytes)).collect())
            }
            other => other,
        }
    }

    /// Whether the stream's filter lets `client` have `event`.
    fn keeps(&self, client: &EventClient, event: &Event) -> bool {
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

/// The backplane (feature `redis`).
#[cfg(feature = "redis")]
impl EventPublisher {
    /// Publishes an event just sent here to the other instances: a local
    /// `NoConnections` becomes `Ok(0)` once published (unless the event could
    /// not be encoded, which is returned as it is).
    fn publish(
        &self,
        target: impl FnOnce(String) -> crate::session::cluster::Target,
        event: &Event,
        local: Result<usize, Error>,
    ) -> Result<usize, Error> {
        if matches!(local, Err(Error::InvalidInput(_))) {
            return local;
        }
        let node = self.shared.cluster.read().clone();
        let (Some(node), Some(route)) = (node, self.shared.route.get()) else {
            return local;
        };
        match (node.publish_event(&target(route.clone()), event), local) {
            (Ok(()), Err(Error::NoConnections(_))) => Ok(0),
            (Err(e), local) => {
                log::debug!("backplane: event not published: {e}");
                local
            }
            (Ok(()), local) => local,
        }
    }
}

impl EventPublisher {
    /// The same publisher, except that [`EventPublisher::send`] and
    /// [`EventPublisher::to_group`] return `Ok(0)` instead of
    /// [`Error::NoConnections`] when they find nobody: for background
    /// loops, where nobody listening is the normal case.
    /// ([`EventPublisher::to_client`] still says when its client is gone.)
    pub fn allow_nobody(mut self) -> EventPublisher {
        self.nobody_ok = true;
        self
    }
}
