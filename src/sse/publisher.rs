//! The publishing side of an event stream: `EventPublisher`, and the
//! `publisher()` of `EventStream` and `EventClient` that hand one out.

use std::fmt;
use std::sync::Arc;

use super::client::{EventClient, Shared};
use super::stream::EventStream;
use crate::{Error, Event};

impl EventStream {
    /// A handle for pushing events to this stream's clients from any
    /// thread; it works before the server starts (there is nobody to send
    /// to yet, but [`EventPublisher::send`] fills the history).
    pub fn publisher(&self) -> EventPublisher {
        EventPublisher::new(Arc::clone(&self.shared))
    }
}

impl EventClient {
    /// A handle for pushing to every client of this client's stream.
    pub fn publisher(&self) -> EventPublisher {
        EventPublisher::new(Arc::clone(&self.inner.shared))
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
    pub(crate) shared: Arc<Shared>,
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
    /// also goes to the stream's clients on every other instance; the count
    /// is of this instance's clients, and `Ok(0)` replaces
    /// [`Error::NoConnections`] once it is published. (A publisher used
    /// before its server starts reaches this instance only.) With a
    /// backplane and a history, the history is the stream's one history in
    /// Redis, and every instance delivers the stream's events in its order,
    /// this one too: the event is queued here when it comes back from Redis
    /// (a round trip later), and the count is of the clients connected here
    /// when it was sent. See [`EventStream::history`](crate::EventStream::history).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a newline in the event's name or id
    /// (nothing is sent or kept), [`Error::NoConnections`] when no client is
    /// connected.
    pub fn send(&self, event: &Event) -> Result<usize, Error> {
        #[cfg(feature = "redis")]
        if let Some(sent) = self.send_ordered(event) {
            return sent;
        }
        let local = self.send_here(event);
        #[cfg(feature = "redis")]
        let local = self.publish(crate::session::cluster::Target::Stream, event, local);
        local
    }

    /// [`EventPublisher::send`] to this instance's clients only. The event
    /// is kept in the history only when the history is this instance's own
    /// (no backplane): a shared one is kept in Redis's order.
    pub(crate) fn send_here(&self, event: &Event) -> Result<usize, Error> {
        let bytes: Arc<[u8]> = event.encode()?.into();
        #[cfg(feature = "redis")]
        let own_history = self.shared.cluster.read().is_none();
        #[cfg(not(feature = "redis"))]
        let own_history = true;
        let mut st = self.shared.state.lock();
        if own_history {
            st.history.record(event, &bytes);
        }
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
