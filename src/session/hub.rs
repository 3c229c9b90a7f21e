//! The open connections of one server (or client), their groups, and the
//! housekeeper thread that does every timed job for all of them: flushing
//! stalled backlogs, keepalive pings, and the close-handshake timeout.
//!
//! Architecture invariant: no connection has a timer thread of its own; the
//! housekeeper sleeps until the earliest deadline and does not wake otherwise.
//!
//! A stalled socket (its kernel buffer full) is retried with backoff: 1 ms
//! after a retry that wrote something, twice as long after one that did not,
//! up to [`STALL_RETRY_MAX`], and never later than its write timeout. Retries
//! never wait (`MSG_DONTWAIT`), so a socket that stays full costs one system
//! call per retry, and the others are not held up.
//!
//! `Hub::new` makes a hub without a housekeeper, `run` starts it and `stop`
//! joins it; a server's hub can run again after a stop. `due_in` wakes the
//! housekeeper unless a scan not yet begun is due sooner; while a scan runs
//! it always wakes it (`next_due` is `SCANNING`), so no deadline is lost.
//! Event streams add their timed work through [`Chores`].
//!
//! `deliver` encodes a broadcast once (`Arc<[u8]>`) for every server
//! connection; a client connection masks each frame. A connection's group
//! list and the hub's group map change together under the connection's
//! lock.

use std::collections::HashMap;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;

use crate::deadline;
use crate::transport::outbox::{Flushed, Outbox};
use crate::wire::frame::{self, OpCode};
use crate::{Connection, Error, Message};

/// The first retry of a stalled socket, and the retry after one that made
/// progress: soon enough for a reader that was only momentarily behind.
const STALL_RETRY: Duration = Duration::from_millis(1);
/// The longest wait between two retries of a socket that takes nothing.
const STALL_RETRY_MAX: Duration = Duration::from_millis(32);

/// `Hub::next_due` while a scan runs: every `due_in` must then wake the
/// housekeeper.
const SCANNING: u64 = 0;

/// The timed settings the housekeeper enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) ping_timeout: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) write_timeout: Duration,
    /// `Config::yield_after` (`None`: unset).
    pub(crate) yield_after: Option<Option<Duration>>,
}

enum Wake {
    Stalled(u64),
    /// Something is due at this time (hub clock, ms).
    Due(u64),
    Stop,
}

/// What a retried write of a stalled socket came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Nothing is left to write, or the socket is gone.
    Done,
    /// Still stalled; whether the retry wrote anything, and how long until
    /// the write timeout cuts the peer off.
    Stalled { progressed: bool, left: Duration },
}

impl Retry {
    /// The outcome of `resume` for a socket whose `outbox` had written
    /// `before` bytes; cuts the peer off with `cut_off` at the write timeout.
    pub(crate) fn after(
        flushed: Flushed,
        outbox: &Outbox,
        before: u64,
        write_timeout: Duration,
        cut_off: impl FnOnce(),
        failed: impl FnOnce(Flushed),
    ) -> Retry {
        match flushed {
            Flushed::Done => Retry::Done,
            Flushed::Stalled => {
                let stalled = outbox.stalled_for();
                if stalled >= write_timeout {
                    cut_off();
                    return Retry::Done;
                }
                Retry::Stalled {
                    progressed: outbox.written() != before,
                    left: write_timeout - stalled,
                }
            }
            f @ Flushed::Failed(_) => {
                failed(f);
                Retry::Done
            }
        }
    }
}

/// Timed work for sockets that are not WebSocket connections (SSE clients),
/// done by the same housekeeper thread.
pub(crate) trait Chores: Send + Sync {
    /// One write attempt for the stalled socket `id`, or `None` when `id` is
    /// not one of these sockets.
    fn flush_stalled(&self, id: u64) -> Option<Retry>;
    /// Does what is due at `now`; returns when something is next due.
    fn scan(&self, now: u64) -> Option<u64>;
}

/// Shared by a server's (or client's) connections and its handles.
pub(crate) struct Hub {
    epoch: Instant,
    pub(crate) max_backlog: usize,
    timing: Timing,
    conns: Mutex<HashMap<u64, Connection>>,
    groups: Mutex<HashMap<String, HashMap<u64, Connection>>>,
    wake: Sender<Wake>,
    /// The housekeeper's end of `wake` (kept, so a hub can be run again).
    wake_rx: Receiver<Wake>,
    /// When the housekeeper will next scan anyway (`u64::MAX`: not at all;
    /// `SCANNING` while a scan runs).
    /// Set by a server's shutdown before it sends 1001 to what is open.
    going_away: AtomicBool,
    next_due: AtomicU64,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Other sockets' timed work (weak: their owner outlives the housekeeper).
    chores: Mutex<Vec<Weak<dyn Chores>>>,
    /// Counters for `stats()`.
    pub(crate) stats: Arc<crate::session::stats::Counters>,
    /// The backplane node of the running server, if it has one.
    #[cfg(feature = "redis")]
    pub(crate) cluster: parking_lot::RwLock<Option<Arc<dyn crate::session::cluster::Cluster>>>,
}

impl Hub {
    /// Creates the hub without a housekeeper: nothing runs until [`Hub::run`].
    pub(crate) fn new(max_backlog: usize, timing: Timing) -> Arc<Hub> {
        let (wake, wake_rx) = crossbeam_channel::unbounded();
        Arc::new(Hub {
            epoch: Instant::now(),
            max_backlog,
            timing,
            conns: Mutex::new(HashMap::new()),
            groups: Mutex::new(HashMap::new()),
            wake,
            wake_rx,
            next_due: AtomicU64::new(u64::MAX),
            going_away: AtomicBool::new(false),
            thread: Mutex::new(None),
            chores: Mutex::new(Vec::new()),
            stats: Arc::default(),
            #[cfg(feature = "redis")]
            cluster: parking_lot::RwLock::new(None),
        })
    }

    /// Starts the housekeeper, unless it runs already: whether it was
    /// started (a hub serves one running server at a time).
    pub(crate) fn run(self: &Arc<Hub>) -> std::io::Result<bool> {
        let mut thread = self.thread.lock();
        if thread.is_some() {
            return Ok(false);
        }
        // Wakes left from an earlier run are stale; a new run starts idle.
        while self.wake_rx.try_recv().is_ok() {}
        self.next_due.store(u64::MAX, Ordering::Relaxed);
        self.going_away.store(false, Ordering::SeqCst);
        let (h, rx) = (Arc::clone(self), self.wake_rx.clone());
        *thread = Some(
            std::thread::Builder::new()
                .name("wsportal-housekeeper".into())
                .stack_size(128 << 10)
                .spawn(move || housekeeper(&h, &rx))?,
        );
        Ok(true)
    }

    /// Has the housekeeper also do `chores`.
    pub(crate) fn add_chores(&self, chores: Weak<dyn Chores>) {
        let mut all = self.chores.lock();
        all.retain(|c| c.strong_count() > 0);
        all.push(chores);
    }

    fn chores(&self) -> Vec<Arc<dyn Chores>> {
        self.chores
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// Creates the hub for a server or client with these settings.
    pub(crate) fn for_config(c: &crate::Config) -> std::io::Result<Arc<Hub>> {
        let hub = Hub::idle_for_config(c);
        hub.run()?;
        Ok(hub)
    }

    /// Creates the hub for these settings without starting it.
    pub(crate) fn idle_for_config(c: &crate::Config) -> Arc<Hub> {
        Hub::new(
            c.max_backlog,
            Timing {
                ping_interval: c.ping_interval,
                ping_timeout: c.ping_timeout,
                close_timeout: c.close_timeout,
                write_timeout: c.write_timeout,
                yield_after: c.yield_after,
            },
        )
    }

    /// Stops and joins the housekeeper.
    pub(crate) fn stop(&self) {
        if let Some(t) = self.thread.lock().take() {
            let _ = self.wake.send(Wake::Stop);
            let _ = t.join();
        }
    }

    /// Milliseconds since the hub started (never 0 after the first millisecond).
    pub(crate) fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub(crate) fn close_timeout(&self) -> Duration {
        self.timing.close_timeout
    }

    /// Adds an open connection. One registered after [`Hub::go_away`] is
    /// sent its 1001 here: the shutdown that looked for it came too early.
    pub(crate) fn register(&self, conn: &Connection) {
        self.conns.lock().insert(conn.id(), conn.clone());
        // SeqCst, after the map's lock: either the shutdown found this
        // connection in the map, or this load sees its `go_away`.
        if self.going_away.load(Ordering::SeqCst) {
            conn.inner.send_close(1001, "server shutting down");
        }
        if let Some(interval) = self.timing.ping_interval {
            self.due_in(interval);
        }
    }

    /// The server is shutting down: from now on [`Hub::register`] sends
    /// 1001 to every connection it adds.
    pub(crate) fn go_away(&self) {
        self.going_away.store(true, Ordering::SeqCst);
    }

    pub(crate) fn unregister(&self, conn: &Connection) {
        let mut conns = self.conns.lock();
        conns.remove(&conn.id());
        // Under the lock a stats snapshot takes: see `stats::Counters::fold`.
        self.stats.fold(&conn.inner.counts);
        drop(conns);
        let names = std::mem::take(&mut *conn.inner.groups.lock());
        let mut groups = self.groups.lock();
        for name in &names {
            if let Some(members) = groups.get_mut(name) {
                members.remove(&conn.id());
                if members.is_empty() {
                    groups.remove(name);
                }
            }
        }
        drop(groups);
        #[cfg(feature = "redis")]
        self.presence_changed(&names);
    }

    /// Tells the housekeeper that something will be due after `d` (a new
    /// connection's first ping, a close handshake's timeout...).
    ///
    /// Call it after storing the state the deadline belongs to (`close_sent`,
    /// `ping_sent`...): the wake is skipped only when a scan that has not yet
    /// begun is due no later than `at`, and that scan will see the state. While
    /// a scan runs `next_due` is `SCANNING`, so nothing is skipped (the scan may already
    /// have passed this connection).
    pub(crate) fn due_in(&self, d: Duration) {
        let at = self.now().saturating_add(deadline::millis(d));
        // Pairs with the fence in `housekeeper`: either this load sees the
        // `SCANNING` stored before the next scan, or that scan sees the caller's state.
        fence(Ordering::SeqCst);
        let next = self.next_due.load(Ordering::SeqCst);
        if next == SCANNING || at < next {
            let _ = self.wake.send(Wake::Due(at));
        }
    }

    /// How long a stalled socket may make no progress.
    pub(crate) fn write_timeout(&self) -> Duration {
        self.timing.write_timeout
    }

    /// The keepalive interval, if keepalive is on.
    pub(crate) fn ping_interval(&self) -> Option<Duration> {
        self.timing.ping_interval
    }

    /// The turn's length for a connection (`Config::yield_after`, else the
    /// transport's default).
    pub(crate) fn yield_after(&self, tls: bool) -> Option<Duration> {
        super::turn::length(self.timing.yield_after, tls)
    }

    /// The least time between two scans: deadlines are kept to within this.
    fn slack(&self) -> u64 {
        let t = &self.timing;
        let shortest = [t.ping_interval, Some(t.ping_timeout), Some(t.close_timeout)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(t.close_timeout);
        (deadline::millis(shortest) / 10).clamp(1, 500)
    }

    /// Tells the housekeeper that a connection's socket is full.
    pub(crate) fn stalled(&self, id: u64) {
        let _ = self.wake.send(Wake::Stalled(id));
    }

    pub(crate) fn count(&self) -> usize {
        self.conns.lock().len()
    }

    pub(crate) fn connections(&self) -> Vec<Connection> {
        let mut v: Vec<Connection> = self.conns.lock().values().cloned().collect();
        v.sort_by_key(Connection::id);
        v
    }

    /// Runs `f` on the open connections, under the lock `unregister` takes.
    pub(crate) fn each_connection(
        &self,
        f: impl FnOnce(&mut dyn Iterator<Item = &Connection>, usize),
    ) {
        let conns = self.conns.lock();
        f(&mut conns.values(), conns.len());
    }

    pub(crate) fn connection(&self, id: u64) -> Option<Connection> {
        self.conns.lock().get(&id).cloned()
    }

    pub(crate) fn join(&self, conn: &Connection, group: &str) {
        let mut mine = conn.inner.groups.lock();
        // A closed connection joins nothing: unregister would never see it.
        if mine.iter().any(|g| g == group) || !self.conns.lock().contains_key(&conn.id()) {
            return;
        }
        mine.push(group.to_owned());
        let mut groups = self.groups.lock();
        groups
            .entry(group.to_owned())
            .or_default()
            .insert(conn.id(), conn.clone());
        drop((groups, mine));
        #[cfg(feature = "redis")]
        self.presence_changed(&[group.to_owned()]);
    }

    pub(crate) fn leave(&self, conn: &Connection, group: &str) {
        // Held until the hub's map is updated too, as in `join`: a join in
        // between would otherwise be listed by the connection but not the hub.
        let mut mine = conn.inner.groups.lock();
        mine.retain(|g| g != group);
        let mut groups = self.groups.lock();
        if let Some(members) = groups.get_mut(group) {
            members.remove(&conn.id());
            if members.is_empty() {
                groups.remove(group);
            }
        }
        drop((groups, mine));
        #[cfg(feature = "redis")]
        self.presence_changed(&[group.to_owned()]);
    }

    /// How many members `group` has here.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // because only the backplane asks.
    pub(crate) fn group_size(&self, group: &str) -> usize {
        self.groups.lock().get(group).map_or(0, HashMap::len)
    }

    pub(crate) fn group_members(&self, group: &str) -> Vec<Connection> {
        let groups = self.groups.lock();
        let mut v: Vec<Connection> = groups
            .get(group)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by_key(Connection::id);
        v
    }

    pub(crate) fn group_names(&self) -> Vec<(String, usize)> {
        let mut v: Vec<(String, usize)> = self
            .groups
            .lock()
            .iter()
            .map(|(k, m)| (k.clone(), m.len()))
            .collect();
        v.sort();
        v
    }

    /// Sends one message to many connections, encoded once. Returns how many
    /// it was queued for; an error if that is none.
    pub(crate) fn deliver(
        &self,
        target: &str,
        recipients: Vec<Connection>,
        msg: &Message,
    ) -> Result<usize, Error> {
        if recipients.is_empty() {
            return Err(Error::NoConnections(target.to_owned()));
        }
        let op = match msg {
            Message::Text(_) => OpCode::Text,
            Message::Binary(_) => OpCode::Binary,
        };
        let mut bytes = Vec::new();
        frame::encode(&mut bytes, op, msg.as_bytes(), None);
        let shared: Arc<[u8]> = bytes.into();
        // A client's frames must be masked, each with a fresh key: those
        // cannot share one encoding (a client's hub holds only its own).
        let queued = recipients
            .iter()
            .filter(|c| match c.masks() {
                false => c.push_shared(Arc::clone(&shared)).is_ok(),
                true => c.push_frame(op, msg.as_bytes(), false).is_ok(),
            })
            .count();
        if queued == 0 {
            return Err(Error::NoConnections(target.to_owned()));
        }
        self.stats.broadcast(queued, msg.len());
        Ok(queued)
    }

    /// Connections that came in on the route `pattern`.
    pub(crate) fn on_route(&self, pattern: &str) -> Vec<Connection> {
        let mut v: Vec<Connection> = self
            .conns
            .lock()
            .values()
            .filter(|c| c.inner.route == pattern)
            .cloned()
            .collect();
        v.sort_by_key(Connection::id);
        v
    }
}

/// A stalled socket's next retry.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    at: Instant,
    wait: Duration,
}

/// The housekeeper's loop: see the module documentation.
fn housekeeper(hub: &Hub, rx: &Receiver<Wake>) {
    let mut stalled: HashMap<u64, Backoff> = HashMap::new();
    let mut next_scan: Option<u64> = None;
    let earliest = |a: Option<u64>, b: u64| Some(a.map_or(b, |a| a.min(b)));
    loop {
        let until_scan = next_scan.map(|at| Duration::from_millis(at.saturating_sub(hub.now())));
        let until_retry = stalled
            .values()
            .map(|b| b.at)
            .min()
            .map(|at| at.saturating_duration_since(Instant::now()));
        let timeout = match (until_scan, until_retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let first = match timeout {
            Some(t) => rx.recv_timeout(t),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let mut wakes: Vec<Wake> = Vec::new();
        match first {
            Ok(w) => wakes.push(w),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        wakes.extend(rx.try_iter());
        for w in wakes {
            match w {
                Wake::Stop => return,
                Wake::Stalled(id) => {
                    // It was just found full: the first retry comes a little later.
                    stalled.entry(id).or_insert(Backoff {
                        at: Instant::now() + STALL_RETRY,
                        wait: STALL_RETRY,
                    });
                }
                Wake::Due(at) => next_scan = earliest(next_scan, at),
            }
        }
        let now = Instant::now();
        stalled.retain(|id, b| {
            if b.at > now {
                return true;
            }
            match flush_stalled(hub, *id) {
                Retry::Done => false,
                Retry::Stalled { progressed, left } => {
                    b.wait = match progressed {
                        true => STALL_RETRY,
                        false => (b.wait * 2).min(STALL_RETRY_MAX),
                    };
                    // Never past the write timeout, never sooner than 1 ms.
                    b.at = now + b.wait.min(left).max(STALL_RETRY);
                    true
                }
            }
        });
        if next_scan.is_some_and(|at| at <= hub.now()) {
            // No `due_in` may be skipped while the scan runs: it may already
            // have passed the connection whose deadline is being announced.
            hub.next_due.store(SCANNING, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            // A scan visits every connection: keep them at least `slack` apart.
            let now = hub.now();
            next_scan = scan(hub).map(|at| at.max(now.saturating_add(hub.slack())));
        }
        hub.next_due
            .store(next_scan.unwrap_or(u64::MAX), Ordering::SeqCst);
    }
}

/// One write attempt for a stalled connection.
fn flush_stalled(hub: &Hub, id: u64) -> Retry {
    let Some(conn) = hub.connection(id) else {
        let other = hub.chores().iter().find_map(|c| c.flush_stalled(id));
        return other.unwrap_or(Retry::Done);
    };
    let inner = &conn.inner;
    let before = inner.outbox.written();
    Retry::after(
        inner.resume_writing(),
        &inner.outbox,
        before,
        hub.timing.write_timeout,
        || inner.force_end(1008, "client too slow: write timeout"),
        |f| inner.handle_flushed(f),
    )
}

/// Sends due keepalive pings and enforces timeouts; returns when it is next due.
fn scan(hub: &Hub) -> Option<u64> {
    let now = hub.now();
    let t = hub.timing;
    let ms = deadline::millis;
    let mut next: Option<u64> = None;
    let mut due = |at: u64| next = Some(next.map_or(at, |n| n.min(at)));
    for conn in hub.connections() {
        let inner = &conn.inner;
        let close_sent = inner.close_sent.load(Ordering::Relaxed);
        if close_sent != 0 {
            let deadline = close_sent.saturating_add(ms(t.close_timeout));
            if now >= deadline {
                log::debug!("connection {}: close handshake timed out", inner.id);
                let _ = inner.stream.shutdown(std::net::Shutdown::Both);
            } else {
                due(deadline);
            }
            continue;
        }
        let Some(interval) = t.ping_interval else {
            continue;
        };
        let ping_sent = inner.ping_sent.load(Ordering::Relaxed);
        if ping_sent != 0 {
            let deadline = ping_sent.saturating_add(ms(t.ping_timeout));
            let written = inner.outbox.written();
            if now < deadline {
                due(deadline);
            } else if inner.ping_progress.swap(written, Ordering::Relaxed) != written {
                // Still taking our bytes: the pong may be behind them in the
                // kernel's buffers. Slowness is for the write timeout and
                // the backlog limit to judge, not the keepalive.
                inner.ping_sent.store(now.max(1), Ordering::Relaxed);
                due(now.max(1).saturating_add(ms(t.ping_timeout)));
            } else {
                inner.force_end(1006, "keepalive timeout: no answer to ping");
            }
            continue;
        }
        let ping_at = inner
            .last_seen
            .load(Ordering::Relaxed)
            .saturating_add(ms(interval));
        if now >= ping_at {
            inner.ping_sent.store(now.max(1), Ordering::Relaxed);
            inner
                .ping_progress
                .store(inner.outbox.written(), Ordering::Relaxed);
            inner.trim();
            let _ = conn.push_frame(OpCode::Ping, b"wsportal-keepalive", false);
            due(now.max(1).saturating_add(ms(t.ping_timeout)));
        } else {
            due(ping_at);
        }
    }
    for chores in hub.chores() {
        if let Some(at) = chores.scan(now) {
            due(at);
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// Chores whose first scan announces a new deadline, as another thread
    /// calling `due_in` while a scan runs would; every scan is reported.
    struct Probe {
        hub: OnceLock<Weak<Hub>>,
        scans: Mutex<u32>,
        seen: Sender<u32>,
    }

    impl Chores for Probe {
        fn flush_stalled(&self, _: u64) -> Option<Retry> {
            None
        }

        fn scan(&self, _now: u64) -> Option<u64> {
            let mut scans = self.scans.lock();
            *scans += 1;
            if *scans == 1 {
                if let Some(hub) = self.hub.get().and_then(Weak::upgrade) {
                    hub.due_in(Duration::from_millis(20));
                }
            }
            let _ = self.seen.send(*scans);
            None
        }
    }

    /// Issue 17.1: a deadline announced while a scan runs (after the scan
    /// passed its connection, before it stored its own next time) is kept.
    #[test]
    fn a_deadline_announced_during_a_scan_is_not_lost() {
        let timing = Timing {
            ping_interval: None,
            ping_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            yield_after: None,
        };
        let hub = Hub::new(1 << 20, timing);
        hub.run().unwrap();
        let (seen, scans) = crossbeam_channel::unbounded();
        let probe = Arc::new(Probe {
            hub: OnceLock::new(),
            scans: Mutex::new(0),
            seen,
        });
        let _ = probe.hub.set(Arc::downgrade(&hub));
        let weak: Weak<Probe> = Arc::downgrade(&probe);
        hub.add_chores(weak);
        hub.due_in(Duration::from_millis(10));
        let wait = Duration::from_secs(10);
        assert_eq!(scans.recv_timeout(wait), Ok(1));
        assert_eq!(
            scans.recv_timeout(wait),
            Ok(2),
            "the deadline announced during the first scan was lost"
        );
        hub.stop();
    }
}
