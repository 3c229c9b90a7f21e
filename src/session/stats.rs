//! Live statistics: the counters a server keeps as it runs, and the
//! snapshot [`Stats`] that `ServerHandle::stats` and `Broadcaster::stats`
//! return. Its Prometheus text and the `/metrics` page
//! (`Server::define_metrics`) sit above, in `server/metrics.rs`.
//!
//! Architecture invariant: no counter takes a lock on the message path.
//! A connection counts its own messages and bytes in atomics of its own
//! ([`ConnCounts`], uncontended); they are folded into the hub's totals when
//! it closes, under the hub's connection lock, which a snapshot also holds
//! while it adds the open connections' counts, so totals never go down.
//! Broadcasts add to the hub's totals once per push. Refusals, closes and
//! panics take a short lock or one atomic, once per connection.
//!
//! [`Counters`] (one per hub) holds the totals and a weak link to the
//! running server's [`Gauges`] (resources, event clients, pool threads).
//! Refusals and hook panics deep inside a pool thread's request are counted
//! through a thread-local that the server sets around each request
//! (`serving`, from `server/request.rs`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

/// How many groups a snapshot lists by name (the largest ones).
pub(crate) const TOP_GROUPS: usize = 10;

/// Close codes always listed (at zero until seen), so that a scraper sees
/// every series from the start.
const KNOWN_CLOSES: [u16; 9] = [1000, 1001, 1002, 1006, 1007, 1008, 1009, 1011, 1005];

/// How many different close codes are counted apart; a peer chooses its
/// code, so past this many the rest are counted as code 0.
const MAX_CLOSE_CODES: usize = 64;

/// A snapshot of what a server is doing, from
/// [`ServerHandle::stats`](crate::ServerHandle::stats) or
/// [`Broadcaster::stats`](crate::Broadcaster::stats). Totals (the `u64`
/// fields) count from the server's start and never go down (a `Server`
/// started again after a close goes on counting); the rest is the state at
/// the time of the call. Messages and bytes are WebSocket data messages
/// (payload bytes, no frame headers, no pings); event-stream events are not
/// counted there.
///
/// ```
/// use wsportal::{Resource, Server};
/// let mut server = Server::new();
/// server.define_resource("/echo", Resource::new());
/// let handle = server.start("127.0.0.1:0")?;
/// let stats = handle.stats();
/// assert_eq!(stats.connections, 0);
/// assert_eq!(stats.connections_by_resource, vec![("/echo".to_owned(), 0)]);
/// print!("{}", stats.to_prometheus());
/// # Ok::<(), wsportal::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Open WebSocket connections.
    pub connections: usize,
    /// Open WebSocket connections per resource (the route as given to
    /// `define_resource`), every resource listed, sorted by route.
    pub connections_by_resource: Vec<(String, usize)>,
    /// Open event-stream (SSE) clients.
    pub event_clients: usize,
    /// Open event-stream clients per stream (its route), sorted by route.
    pub event_clients_by_stream: Vec<(String, usize)>,
    /// Groups with at least one member.
    pub groups: usize,
    /// The largest groups (at most 10) and their sizes, largest first.
    pub largest_groups: Vec<(String, usize)>,
    /// WebSocket data messages received.
    pub messages_received: u64,
    /// Payload bytes of the WebSocket data messages received.
    pub bytes_received: u64,
    /// WebSocket data messages queued to peers (a broadcast counts once per
    /// recipient).
    pub messages_sent: u64,
    /// Payload bytes of the WebSocket data messages queued to peers.
    pub bytes_sent: u64,
    /// WebSocket handshakes answered `101`.
    pub websocket_accepted: u64,
    /// Event-stream requests answered with the stream.
    pub event_streams_accepted: u64,
    /// Requests refused (unknown path, failed handshake, a hook's
    /// [`Reject`](crate::Reject), a method not allowed, a body too large,
    /// an event stream whose `on_unknown_id` panicked, too many
    /// connections...), by HTTP status.
    pub refused_by_status: Vec<(u16, u64)>,
    /// Ended WebSocket connections by the close code their `on_close` got
    /// (1000 normal, 1001 going away, 1006 no close frame, 1008 too slow,
    /// 1002/1007/1009 protocol, 1011 hook panic...). A peer picks its code:
    /// once 64 different codes have been seen, any new one counts as 0.
    pub closes_by_code: Vec<(u16, u64)>,
    /// Hooks and handlers that panicked.
    pub hook_panics: u64,
    /// Bytes queued and not yet written, over every connection and event client.
    pub backlog_bytes: usize,
    /// The largest single backlog, in bytes.
    pub largest_backlog: usize,
    /// Pool threads serving a client (or reading its request).
    pub threads_busy: usize,
    /// Pool threads waiting for the next client.
    pub threads_idle: usize,
}

/// What only the running server knows: its event clients, its resources
/// and its thread pool.
pub(crate) trait Gauges: Send + Sync {
    /// Every resource route.
    fn resources(&self) -> Vec<String>;
    /// Open event clients per stream route.
    fn event_clients(&self) -> Vec<(String, usize)>;
    /// Each open event client's backlog.
    fn event_backlogs(&self) -> Vec<usize>;
    /// Pool threads: busy, idle.
    fn threads(&self) -> (usize, usize);
}

/// One hub's counters (see the module documentation).
#[derive(Default)]
pub(crate) struct Counters {
    /// Closed connections' counts, and broadcasts.
    totals: ConnCounts,
    websocket_accepted: AtomicU64,
    event_streams_accepted: AtomicU64,
    hook_panics: AtomicU64,
    refused: Mutex<BTreeMap<u16, u64>>,
    closes: Mutex<BTreeMap<u16, u64>>,
    gauges: Mutex<Option<Weak<dyn Gauges>>>,
}

impl Counters {
    /// Attaches the running server's gauges (weak: the server owns the hub).
    pub(crate) fn attach(&self, gauges: Weak<dyn Gauges>) {
        *self.gauges.lock() = Some(gauges);
    }

    /// A WebSocket handshake was answered `101`.
    pub(crate) fn websocket_accepted(&self) {
        self.websocket_accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// An event-stream request was answered with the stream.
    pub(crate) fn event_stream_accepted(&self) {
        self.event_streams_accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// A hook panicked.
    pub(crate) fn hook_panicked(&self) {
        self.hook_panics.fetch_add(1, Ordering::Relaxed);
    }

    /// A request was refused with `status`.
    pub(crate) fn refused(&self, status: u16) {
        *self.refused.lock().entry(status).or_default() += 1;
    }

    /// A WebSocket connection ended with `code`.
    pub(crate) fn closed(&self, code: u16) {
        let mut closes = self.closes.lock();
        let full = closes.len() >= MAX_CLOSE_CODES && !closes.contains_key(&code);
        *closes.entry(if full { 0 } else { code }).or_default() += 1;
    }

    /// A broadcast was queued for `recipients` connections.
    pub(crate) fn broadcast(&self, recipients: usize, payload: usize) {
        let n = recipients as u64;
        let t = &self.totals;
        t.messages_sent.fetch_add(n, Ordering::Relaxed);
        t.bytes_sent
            .fetch_add(n.saturating_mul(payload as u64), Ordering::Relaxed);
    }

    /// Adds a closing connection's counts to the totals. Call it under the
    /// hub's connection lock, as the connection leaves the map.
    pub(crate) fn fold(&self, c: &ConnCounts) {
        c.retired.store(true, Ordering::SeqCst);
        let t = &self.totals;
        for (total, own) in [
            (&t.messages_received, &c.messages_received),
            (&t.bytes_received, &c.bytes_received),
            (&t.messages_sent, &c.messages_sent),
            (&t.bytes_sent, &c.bytes_sent),
        ] {
            // Moved, not copied: a late `sent` folds what it adds itself.
            total.fetch_add(own.swap(0, Ordering::SeqCst), Ordering::Relaxed);
        }
    }

    fn gauges(&self) -> Option<Arc<dyn Gauges>> {
        self.gauges.lock().as_ref().and_then(Weak::upgrade)
    }
}

/// One connection's message counts.
#[derive(Default)]
pub(crate) struct ConnCounts {
    messages_received: AtomicU64,
    bytes_received: AtomicU64,
    messages_sent: AtomicU64,
    bytes_sent: AtomicU64,
    /// Folded into the totals (the connection left the map): a count added
    /// after that goes to the totals by itself.
    retired: AtomicBool,
}

impl ConnCounts {
    /// A data message of `len` bytes arrived. Only the connection's own
    /// thread calls this, so a plain load and store do (no locked add).
    pub(crate) fn received(&self, len: usize) {
        let m = self.messages_received.load(Ordering::Relaxed);
        self.messages_received.store(m + 1, Ordering::Relaxed);
        let b = self.bytes_received.load(Ordering::Relaxed);
        self.bytes_received
            .store(b.saturating_add(len as u64), Ordering::Relaxed);
    }

    /// A data message of `len` bytes was queued (any thread). A sender
    /// counts after its push succeeded, so the connection may have been
    /// folded meanwhile: then this count is folded too (each count is moved
    /// to the totals exactly once: both sides `swap` it out).
    pub(crate) fn sent(&self, len: usize, totals: &Counters) {
        self.messages_sent.fetch_add(1, Ordering::SeqCst);
        self.bytes_sent.fetch_add(len as u64, Ordering::SeqCst);
        if self.retired.load(Ordering::SeqCst) {
            totals.fold(self);
        }
    }

    fn add_to(&self, s: &mut Stats) {
        s.messages_received += self.messages_received.load(Ordering::Relaxed);
        s.bytes_received += self.bytes_received.load(Ordering::Relaxed);
        s.messages_sent += self.messages_sent.load(Ordering::Relaxed);
        s.bytes_sent += self.bytes_sent.load(Ordering::Relaxed);
    }
}

/// The snapshot of `hub` (and of the server attached to it).
pub(crate) fn snapshot(hub: &crate::session::hub::Hub) -> Stats {
    let c = &hub.stats;
    let mut s = Stats::default();
    let gauges = c.gauges();
    let mut by_resource: BTreeMap<String, usize> = gauges
        .as_ref()
        .map(|g| g.resources().into_iter().map(|r| (r, 0)).collect())
        .unwrap_or_default();
    let mut open: Vec<crate::Connection> = Vec::new();
    hub.each_connection(|conns, n| {
        // Under the hub's connection lock: see `Counters::fold`. (No other
        // lock is taken under it.)
        c.totals.add_to(&mut s);
        open.reserve(n);
        for conn in conns {
            let inner = &conn.inner;
            inner.counts.add_to(&mut s);
            *by_resource.entry(inner.route.clone()).or_default() += 1;
            open.push(conn.clone());
        }
        s.connections = n;
    });
    let mut backlogs: Vec<usize> = open.iter().map(|c| c.inner.outbox.backlog()).collect();
    drop(open);
    s.connections_by_resource = by_resource.into_iter().collect();
    let mut groups = hub.group_names();
    s.groups = groups.len();
    groups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    groups.truncate(TOP_GROUPS);
    s.largest_groups = groups;
    s.websocket_accepted = c.websocket_accepted.load(Ordering::Relaxed);
    s.event_streams_accepted = c.event_streams_accepted.load(Ordering::Relaxed);
    s.hook_panics = c.hook_panics.load(Ordering::Relaxed);
    s.refused_by_status = c.refused.lock().iter().map(|(k, v)| (*k, *v)).collect();
    let mut closes = c.closes.lock().clone();
    for code in KNOWN_CLOSES {
        closes.entry(code).or_default();
    }
    s.closes_by_code = closes.into_iter().collect();
    if let Some(g) = gauges {
        let mut streams = g.event_clients();
        streams.sort();
        s.event_clients = streams.iter().map(|(_, n)| n).sum();
        s.event_clients_by_stream = streams;
        backlogs.extend(g.event_backlogs());
        (s.threads_busy, s.threads_idle) = g.threads();
    }
    s.backlog_bytes = backlogs.iter().sum();
    s.largest_backlog = backlogs.into_iter().max().unwrap_or(0);
    s
}

thread_local! {
    /// On a pool thread serving a client: its server's counters, for what
    /// is counted deep inside (refusals, hook panics).
    static SERVING: RefCell<Option<Arc<Counters>>> = const { RefCell::new(None) };
}

/// Counts what happens on this thread for `counters` until `None`.
pub(crate) fn serving(counters: Option<Arc<Counters>>) {
    SERVING.with(|s| *s.borrow_mut() = counters);
}

/// A hook or handler panicked on this thread (counted if it serves a client).
pub(crate) fn hook_panicked() {
    SERVING.with(|s| {
        if let Some(c) = &*s.borrow() {
            c.hook_panicked();
        }
    });
}

/// A request was refused with `status` on this thread.
pub(crate) fn refused_here(status: u16) {
    SERVING.with(|s| {
        if let Some(c) = &*s.borrow() {
            c.refused(status);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_are_bounded() {
        let c = Counters::default();
        for code in 3000..3100 {
            c.closed(code);
        }
        c.closed(3000);
        let closes = c.closes.lock();
        assert_eq!(closes.len(), MAX_CLOSE_CODES + 1);
        assert_eq!(closes.get(&0), Some(&(100 - MAX_CLOSE_CODES as u64)));
        assert_eq!(closes.get(&3000), Some(&2));
    }
}
