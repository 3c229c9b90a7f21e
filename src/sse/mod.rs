//! Server-Sent Events: event streams on the same listener as the WebSockets.
//!
//! The sse layer: event streams, their clients, histories and publishers.
//! May use `session` (the hub, the outbox through it, hooks under guard),
//! `http`, `transport`, `wire` and the base types; the backplane reaches it
//! only through `session::cluster::Cluster`.
//!
//! Each client has a pool thread, as a WebSocket has: after the response
//! head (and any replayed events) it runs the stream's writer, or else
//! blocks reading the socket, so an idle stream costs no CPU and a client
//! that hangs up is noticed at once. Events pushed from other threads go
//! through the same bounded [`Outbox`](crate::transport::outbox) as WebSocket frames.
//! The hub's housekeeper does the timed work ([`Streams`] is one of its
//! chores): keep-alive comments, flushing stalled clients, write timeouts.
//!
//! Architecture invariant: an event client is in its stream's client list
//! only while events may be queued for it, and in [`Streams`] until its
//! socket is shut, so the housekeeper can flush a closing client's backlog.

mod client;
mod history;
mod publisher;
#[cfg(feature = "redis")]
mod replica;
mod sink;
mod stream;

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::Shutdown;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

pub use self::client::EventClient;
pub use self::publisher::EventPublisher;
pub use self::sink::EventSink;
pub use self::stream::EventStream;

use self::client::Shared;
use self::history::Replay;
use crate::session::guard;
use crate::session::hub::{Chores, Hub, Retry};
use crate::transport::{Stream, Transport};
use crate::{Accept, Error, Reject, Request};

/// Decides whether to answer with the stream: only `GET`, then the
/// `on_connect` hook. `Err` is the refusal to send.
pub(crate) fn admit(
    events: &EventStream,
    req: &Request,
    debug_on_error: bool,
) -> Result<Accept, Reject> {
    if req.method() != "GET" {
        return Err(Reject::new(405)
            .header("Allow", "GET")
            .body("method not allowed"));
    }
    let Some(hook) = &events.on_connect else {
        return Ok(Accept::new());
    };
    match guard::run(debug_on_error, || hook(req)) {
        Ok(answer) => crate::session::resource::checked("on_connect", req, answer),
        Err(p) => {
            log::error!(
                "{}: on_connect hook panicked at {}: {}",
                req.peer_addr(),
                p.location,
                p.message
            );
            Err(Reject::new(500).body("internal error"))
        }
    }
}

/// An accepted request, ready to become a stream.
pub(crate) struct Opened {
    pub(crate) id: u64,
    pub(crate) stream: Arc<Stream>,
    pub(crate) request: Request,
    pub(crate) accept: Accept,
    pub(crate) hub: Arc<Hub>,
    pub(crate) debug_on_error: bool,
}

/// Serves one client, from the response head to its end, on its own thread.
/// `Err` is the refusal to send instead when no response head went out
/// (the `on_unknown_id` hook panicked): then no other hook runs.
pub(crate) fn run(events: &EventStream, streams: &Streams, opened: Opened) -> Result<(), Reject> {
    let Opened {
        id,
        stream,
        request,
        accept,
        hub,
        debug_on_error,
    } = opened;
    let _ = stream.set_read_timeout(None);
    let _ = stream.set_write_timeout(Some(hub.write_timeout()));
    let mut headers: Vec<(String, String)> = [
        ("Content-Type", "text/event-stream"),
        ("Cache-Control", "no-store"),
        ("X-Accel-Buffering", "no"),
        ("Connection", "close"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    headers.extend(accept.headers);
    let head = crate::http::response_bytes(200, &headers, &[]);
    let shared = Arc::clone(&events.shared);
    let client = EventClient::new(id, stream, request, accept.data, Arc::clone(&hub), shared);
    let hooks = Hooks {
        client: &client,
        debug_on_error,
    };

    streams.clients.lock().insert(id, client.clone());
    if let Err(p) = open(events, &hooks, &head) {
        log::error!(
            "event client {id}: on_unknown_id hook panicked at {}: {}",
            p.location,
            p.message
        );
        client.inner.closing.store(true, Ordering::SeqCst);
        streams.clients.lock().remove(&id);
        return Err(Reject::new(500).body("internal error"));
    }
    client.inner.ready.store(true, Ordering::SeqCst);
    if let Some(keepalive) = streams.keepalive {
        hub.due_in(keepalive);
    }
    log::debug!(
        "event client {id} open: {} from {}",
        client.path(),
        client.peer_addr()
    );
    if let Some(hook) = &events.on_open {
        hooks.call("on_open", || hook(&client));
    }
    match &events.writer {
        Some(writer) => {
            let sink = EventSink::new(&client);
            let result = guard::run(debug_on_error, || writer(&sink));
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => log::debug!("event client {id}: writer ended: {e}"),
                Err(p) => hooks.panicked("writer", &p),
            }
            // The writer is done: end the stream once its events are out.
            client.inner.closing.store(true, Ordering::SeqCst);
        }
        None => idle(&client),
    }
    finish(events, streams, &client);
    log::debug!("event client {id} closed");
    if let Some(hook) = &events.on_close {
        hooks.call("on_close", || hook(&client));
    }
    Ok(())
}

/// Joins the stream's client list and queues the head and the replay, all
/// under the stream's lock, so no live event comes before them. `Err` when
/// the `on_unknown_id` hook panicked: nothing was queued then.
fn open(events: &EventStream, hooks: &Hooks<'_>, head: &[u8]) -> Result<(), guard::Panic> {
    let client = hooks.client;
    let last_id = client.last_event_id();
    // The application's event for an unknown id: computed outside the lock,
    // since the hook may use a publisher.
    let mut fallback: Option<Option<Vec<u8>>> = None;
    // A shared history is read back once before an id is called unknown.
    #[cfg(feature = "redis")]
    let mut caught_up = false;
    loop {
        let mut st = events.shared.state.lock();
        let replay = st.replay_for(client, last_id);
        #[cfg(feature = "redis")]
        if matches!(replay, Replay::Unknown) && !caught_up {
            caught_up = true;
            drop(st);
            replica::catch_up(&events.shared);
            continue;
        }
        if let (Replay::Unknown, None, Some(hook)) = (&replay, &fallback, &events.on_unknown_id) {
            drop(st);
            let event = guard::run(hooks.debug_on_error, || hook(client.request()))?;
            fallback = Some(event.and_then(|e| match e.encode() {
                Ok(bytes) => Some(bytes),
                Err(err) => {
                    log::warn!(
                        "event client {}: on_unknown_id event not sent: {err}",
                        client.id()
                    );
                    None
                }
            }));
            continue;
        }
        st.clients.insert(client.id(), client.clone());
        client.inner.hub.stats.event_stream_accepted();
        let _ = client.push(head);
        match replay {
            Replay::Nothing => {}
            Replay::Missed(missed) => {
                log::debug!(
                    "event client {}: replaying {} events",
                    client.id(),
                    missed.len()
                );
                for bytes in missed {
                    let _ = client.push_shared(bytes);
                }
            }
            Replay::Unknown => {
                log::debug!(
                    "event client {}: Last-Event-ID not in the history",
                    client.id()
                );
                if let Some(Some(bytes)) = &fallback {
                    let _ = client.push(bytes);
                }
            }
        }
        return Ok(());
    }
}

/// Blocks reading until the client hangs up or the stream is closed.
fn idle(client: &EventClient) {
    let mut scratch = [0u8; 256];
    loop {
        match Transport::waiting(&client.inner.stream).read(&mut scratch) {
            Ok(0) => return,
            Ok(_) => {} // A client has nothing to say on an event stream.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Leaves the client list, gives queued events a bounded chance to leave
/// (unless the client hung up), and shuts the socket.
fn finish(events: &EventStream, streams: &Streams, client: &EventClient) {
    let inner = &client.inner;
    let hung_up = !inner.closing.swap(true, Ordering::SeqCst);
    events.shared.state.lock().clients.remove(&inner.id);
    if !hung_up {
        // A cut-off drops the queue, which ends the wait.
        let deadline = crate::deadline::after(inner.hub.close_timeout());
        inner.outbox.wait_drained(deadline);
    }
    // Only a sole writer may end a TLS stream: nothing is encrypted after it.
    if inner.outbox.abort() {
        inner.stream.close_notify();
    }
    let _ = inner.stream.shutdown(Shutdown::Both);
    streams.clients.lock().remove(&inner.id);
}

/// Runs a client's hooks, catching panics.
struct Hooks<'a> {
    client: &'a EventClient,
    debug_on_error: bool,
}

impl Hooks<'_> {
    fn call(&self, name: &str, f: impl FnOnce()) {
        if let Err(p) = guard::run(self.debug_on_error, f) {
            self.panicked(name, &p);
        }
    }

    /// As for WebSockets: with `debug_on_error` the panic is logged at
    /// error level and the stream is closed; without it, logged at debug.
    fn panicked(&self, name: &str, p: &guard::Panic) {
        let id = self.client.id();
        if self.debug_on_error {
            log::error!(
                "event client {id}: {name} hook panicked at {}: {}",
                p.location,
                p.message
            );
            self.client.close();
        } else {
            log::debug!(
                "event client {id}: {name} hook panicked at {}: {}",
                p.location,
                p.message
            );
        }
    }
}

/// A server's event streams and open event clients: what shutdown, the
/// housekeeper and [`ServerHandle::event_stream`](crate::ServerHandle::event_stream) need.
pub(crate) struct Streams {
    streams: Vec<Arc<Shared>>,
    clients: Mutex<HashMap<u64, EventClient>>,
    keepalive: Option<Duration>,
    write_timeout: Duration,
}

impl Streams {
    /// Takes the streams for one running server.
    ///
    /// # Errors
    /// [`Error::Route`] when another running server serves one of them.
    pub(crate) fn claim(
        streams: &[Arc<EventStream>],
        keepalive: Option<Duration>,
        write_timeout: Duration,
    ) -> Result<Streams, Error> {
        let mut claimed: Vec<Arc<Shared>> = Vec::new();
        for s in streams {
            if s.shared.serving.swap(true, Ordering::SeqCst) {
                for c in &claimed {
                    c.serving.store(false, Ordering::SeqCst);
                }
                let route = s.shared.route.get().map_or("?", String::as_str);
                return Err(Error::Route(format!(
                    "event stream {route} is already served by a running server"
                )));
            }
            claimed.push(Arc::clone(&s.shared));
        }
        Ok(Streams {
            streams: claimed,
            clients: Mutex::new(HashMap::new()),
            keepalive,
            write_timeout,
        })
    }

    /// Lets another server serve these streams (after shutdown).
    pub(crate) fn release(&self) {
        for s in &self.streams {
            s.serving.store(false, Ordering::SeqCst);
        }
    }

    /// Attaches these streams to a backplane node (or detaches them). A
    /// stream with a history then reads the shared one (each within the
    /// backplane's timeout): its clients get, live, every event appended
    /// from now on, even before the subscriber runs. (When Redis cannot be
    /// read now, the subscriber's first read takes the history as it finds
    /// it, and delivers none of it live.)
    #[cfg(feature = "redis")]
    pub(crate) fn set_cluster(&self, node: Option<&Arc<dyn crate::session::cluster::Cluster>>) {
        for s in &self.streams {
            *s.cluster.write() = node.cloned();
            if node.is_some() {
                if let Err(e) = EventPublisher::new(Arc::clone(s)).sync() {
                    log::debug!("backplane: shared history not read at start: {e}");
                }
            }
        }
    }

    /// Reads back the shared history of every stream that keeps one (after
    /// the subscriber (re)subscribed: what it missed, or all of it when
    /// Redis lost it).
    ///
    /// # Errors
    /// [`Error::Backplane`] when Redis could not be read.
    #[cfg(feature = "redis")]
    pub(crate) fn sync_histories(&self) -> Result<(), Error> {
        for s in &self.streams {
            EventPublisher::new(Arc::clone(s)).sync()?;
        }
        Ok(())
    }

    /// The publisher of the stream defined at `route`.
    pub(crate) fn publisher(&self, route: &str) -> Option<EventPublisher> {
        self.streams
            .iter()
            .find(|s| s.route.get().is_some_and(|r| r == route))
            .map(|s| EventPublisher::new(Arc::clone(s)))
    }

    /// Ends the stream of client `id` gracefully, if it is one of ours.
    pub(crate) fn close_client(&self, id: u64) -> bool {
        let client = self.clients.lock().get(&id).cloned();
        client.map(|c| c.close()).is_some()
    }

    /// How many event clients are open.
    pub(crate) fn count(&self) -> usize {
        self.clients.lock().len()
    }

    /// Open clients per stream route, every stream listed. (Without the
    /// streams' locks: a filter, which runs under one, may ask for stats.)
    pub(crate) fn clients_per_stream(&self) -> Vec<(String, usize)> {
        let clients: Vec<EventClient> = self.clients.lock().values().cloned().collect();
        self.streams
            .iter()
            .map(|s| {
                let route = s.route.get().cloned().unwrap_or_default();
                let n = clients
                    .iter()
                    .filter(|c| Arc::ptr_eq(&c.inner.shared, s))
                    .count();
                (route, n)
            })
            .collect()
    }

    /// Each open event client's backlog, in bytes.
    pub(crate) fn backlogs(&self) -> Vec<usize> {
        let clients: Vec<EventClient> = self.clients.lock().values().cloned().collect();
        clients.iter().map(|c| c.inner.outbox.backlog()).collect()
    }
}

impl Chores for Streams {
    fn flush_stalled(&self, id: u64) -> Option<Retry> {
        let client = self.clients.lock().get(&id).cloned()?;
        let inner = &client.inner;
        let before = inner.outbox.written();
        Some(Retry::after(
            inner.outbox.resume(&mut Transport::nowait(&inner.stream)),
            &inner.outbox,
            before,
            self.write_timeout,
            || inner.force_end("client too slow: write timeout"),
            |f| inner.handle_flushed(f),
        ))
    }

    fn scan(&self, now: u64) -> Option<u64> {
        let interval = crate::deadline::millis(self.keepalive?);
        let clients: Vec<EventClient> = self.clients.lock().values().cloned().collect();
        let mut next: Option<u64> = None;
        for c in clients {
            let inner = &c.inner;
            if !inner.ready.load(Ordering::SeqCst) || inner.closing.load(Ordering::SeqCst) {
                continue;
            }
            let due = inner
                .last_sent
                .load(Ordering::Relaxed)
                .saturating_add(interval);
            let at = if now >= due {
                log::trace!("event client {}: keep-alive", inner.id);
                let _ = c.push(crate::wire::event::KEEPALIVE);
                now.saturating_add(interval)
            } else {
                due
            };
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        next
    }
}

#[allow(dead_code)] // because this only checks at compile time.
fn assert_traits() {
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<EventPublisher>();
    send_sync::<EventClient>();
    send_sync::<crate::Event>();
}
