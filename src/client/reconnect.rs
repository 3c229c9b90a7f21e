//! A client that reconnects: [`Reconnect`] (the backoff policy) and
//! [`Reconnecting`] (the handle), after Python `websockets`' `connect`
//! iterator and browsers' `EventSource`.
//!
//! One supervisor thread, `wsportal-reconnect`, connects, waits for the
//! connection to end, sleeps a backoff delay (full jitter) and connects
//! again; each connection is an ordinary [`ClientHandle`] with its own two
//! threads. Architecture invariant: the supervisor is the only thread that
//! connects, and `close` (or dropping the last handle) stops it and joins
//! it; the program's hooks are shared by every connection, so `on_open`
//! runs once per connection.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::{Condvar, Mutex};

use super::{Client, ClientHandle};
use crate::{Error, Message, Resource};

/// How a [`Reconnecting`] client waits between attempts: exponential
/// backoff with full jitter (each delay is random between zero and
/// `initial_delay * 2^(failures)`, capped at `max_delay`), so that many
/// clients that lost one server do not all come back at once.
///
/// After a connection that was open ends, the first attempt waits a random
/// delay up to `initial_delay`. A `503` (or `429`) with `Retry-After:
/// seconds` waits at least that long. Connecting gives up after
/// `max_attempts` failed attempts in a row or `max_elapsed` since the
/// connection was lost, if set; by default it never gives up on errors that
/// may pass (a refused or timed-out connection, a 500, 502, 503 or 504 from
/// the server, a 502, 503 or 504 from a proxy).
/// Other refusals (a 4xx, a TLS or protocol error) stop it at once.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct Reconnect {
    initial_delay: Duration,
    max_delay: Duration,
    max_attempts: Option<u32>,
    max_elapsed: Option<Duration>,
    stop_on_policy_close: bool,
    buffer: usize,
}

impl Default for Reconnect {
    /// 1 s initial delay, 60 s cap, no limit, reconnects after any close.
    fn default() -> Reconnect {
        Reconnect {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            max_attempts: None,
            max_elapsed: None,
            stop_on_policy_close: false,
            buffer: 0,
        }
    }
}

impl Reconnect {
    /// The default policy (see [`Default`]).
    pub fn new() -> Reconnect {
        Reconnect::default()
    }

    /// The first delay's upper bound; each failed attempt doubles it.
    pub fn initial_delay(mut self, delay: Duration) -> Reconnect {
        self.initial_delay = delay;
        self
    }

    /// The largest delay between attempts (before jitter).
    pub fn max_delay(mut self, delay: Duration) -> Reconnect {
        self.max_delay = delay;
        self
    }

    /// Gives up after this many failed attempts in a row (`None`: never).
    pub fn max_attempts(mut self, attempts: Option<u32>) -> Reconnect {
        self.max_attempts = attempts;
        self
    }

    /// Gives up when this long has passed since the connection was lost
    /// (or since the start) without a new one (`None`: never).
    pub fn max_elapsed(mut self, elapsed: Option<Duration>) -> Reconnect {
        self.max_elapsed = elapsed;
        self
    }

    /// Whether a close by the server with 1008 (policy violation) or an
    /// application code (4000 to 4999) stops reconnecting, as a refusal
    /// meant for this client rather than an outage (default: `false`).
    pub fn stop_on_policy_close(mut self, stop: bool) -> Reconnect {
        self.stop_on_policy_close = stop;
        self
    }

    /// Holds messages sent while disconnected, up to `bytes` in all, and
    /// sends them in order on the next connection, after its `on_open`
    /// (default 0: none are held, such sends fail with
    /// [`Error::NotConnected`]). A send that does not fit fails the same
    /// way; what is held when the client stops is dropped.
    pub fn buffer(mut self, bytes: usize) -> Reconnect {
        self.buffer = bytes;
        self
    }

    /// The delay before the next attempt after `failures` failed ones in a
    /// row, given a random `u64` and the server's `Retry-After`.
    fn delay(&self, failures: u32, random: u64, retry_after: Option<Duration>) -> Duration {
        let factor = 1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX);
        let ceiling = self
            .initial_delay
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(self.max_delay);
        // Full jitter: uniform in [0, ceiling], in nanoseconds.
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let jittered = Duration::from_nanos(random % nanos.saturating_add(1));
        jittered.max(retry_after.unwrap_or_default())
    }
}

/// A random number for jitter, from std's per-process random hash keys.
pub(super) fn random() -> u64 {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// Whether a failed attempt may succeed later, and how long the server
/// asked us to wait.
pub(super) fn retriable(e: &Error) -> Option<Option<Duration>> {
    match e {
        // A proxy that cannot reach the server (yet) answers 502, 503 or 504.
        Error::Io(_) | Error::Timeout(_) | Error::Proxy { status: 502..=504 } => Some(None),
        Error::Http {
            status: 429 | 500 | 502 | 503 | 504,
            headers,
            ..
        } => {
            let after = crate::http::header_value(crate::http::pairs(headers), "retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            Some(after)
        }
        _ => None,
    }
}

/// A client connection that comes back by itself: see
/// [`Client::reconnecting`]. Cheap to clone, `Send + Sync`.
///
/// While it is connected, sends go to the open connection; while it is
/// connecting again they fail at once with [`Error::NotConnected`] (nothing
/// is queued, unless [`Reconnect::buffer`] says so), and once it has
/// stopped with [`Error::Closed`]. Messages
/// from every connection, in order, wait in one queue for
/// [`recv`](Reconnecting::recv) unless the hooks have an `on_message`.
///
/// [`close`](Reconnecting::close), or dropping the last handle, closes the
/// open connection and stops reconnecting; the supervisor thread is joined.
/// Hooks should use the `&Connection` they are given, not a `Reconnecting`
/// captured in them: the last handle must not be dropped on a connection's
/// own thread, which the supervisor waits for.
#[derive(Clone)]
pub struct Reconnecting {
    owner: Arc<Owner>,
}

/// Stops and joins the supervisor when the last handle goes.
struct Owner {
    state: Arc<State>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct State {
    phase: Mutex<Phase>,
    cv: Condvar,
    rx: Receiver<Message>,
    queued: Arc<AtomicUsize>,
}

#[derive(Default)]
struct Phase {
    /// `close` was called (or the last handle dropped): no more attempts.
    stopping: bool,
    /// The supervisor has ended, and why (a close code, or an error).
    ended: Option<String>,
    current: Option<ClientHandle>,
    connections: u64,
    /// Messages sent while disconnected ([`Reconnect::buffer`]), and their
    /// bytes.
    held: VecDeque<Message>,
    held_bytes: usize,
    /// [`Reconnect::buffer`].
    buffer: usize,
}

impl Phase {
    /// Holds `msg` if it fits the buffer; gives it back if not.
    fn hold(&mut self, msg: Message) -> Result<(), Message> {
        if self.held_bytes.saturating_add(msg.len()) > self.buffer {
            return Err(msg);
        }
        self.held_bytes += msg.len();
        self.held.push_back(msg);
        Ok(())
    }

    /// Sends what is held on `conn`, in order; what it refuses (it closed
    /// already) stays for the next connection.
    fn release(&mut self, conn: &ClientHandle) {
        while let Some(msg) = self.held.pop_front() {
            let len = msg.len();
            match conn.send(msg) {
                Ok(()) => self.held_bytes -= len,
                Err(back) => {
                    self.held.push_front(back.0);
                    break;
                }
            }
        }
    }
}

impl fmt::Debug for Reconnecting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = self.owner.state.phase.lock();
        f.debug_struct("Reconnecting")
            .field("connected", &phase.current.is_some())
            .field("connections", &phase.connections)
            .field("ended", &phase.ended)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Keeps a connection open: connects in the background, and after a
    /// lost connection (or a failed attempt that may pass) connects again
    /// by the [`Client::reconnect`] policy. `hooks` serve every connection,
    /// so `on_open` runs on each new one: re-subscribe or resend state
    /// there. Returns at once; [`Reconnecting::wait_connected`] waits for
    /// the first connection.
    ///
    /// # Errors
    /// The errors that no attempt could mend, at once: [`Error::InvalidInput`]
    /// for a bad URL, proxy URL, header or subprotocol, [`Error::Config`] for a bad
    /// setting; [`Error::Io`] if the thread cannot start.
    pub fn reconnecting(&self, hooks: Resource) -> Result<Reconnecting, Error> {
        super::client_settings(&self.config).validate()?;
        let target = super::handshake::parse_url(&self.url)?;
        super::handshake::request_headers(&target, "x", &self.protocols, &self.headers)?;
        if let Some(proxy) = &self.proxy {
            proxy.for_target(&target)?;
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let phase = Phase {
            buffer: self.reconnect.as_ref().map_or(0, |p| p.buffer),
            ..Phase::default()
        };
        let state = Arc::new(State {
            phase: Mutex::new(phase),
            cv: Condvar::new(),
            rx,
            queued: Arc::new(AtomicUsize::new(0)),
        });
        let (client, hooks, shared) = (self.clone(), Arc::new(hooks), Arc::clone(&state));
        let thread = std::thread::Builder::new()
            .name("wsportal-reconnect".into())
            .spawn(move || supervise(&client, &hooks, &shared, &tx))?;
        Ok(Reconnecting {
            owner: Arc::new(Owner {
                state,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }
}

/// Hooks for one connection that call the program's, and queue messages
/// when it has no `on_message` (bounded by `max_backlog`, as a
/// [`ClientHandle`]'s own queue).
fn hooks_for(
    user: &Arc<Resource>,
    tx: &Sender<Message>,
    queued: &Arc<AtomicUsize>,
    limit: usize,
) -> Resource {
    let mut r = Resource::new();
    if user.on_open.is_some() {
        let u = Arc::clone(user);
        r = r.on_open(move |ws| {
            if let Some(h) = &u.on_open {
                h(ws);
            }
        });
    }
    if user.on_message.is_some() {
        let u = Arc::clone(user);
        r = r.on_message(move |ws, msg| {
            if let Some(h) = &u.on_message {
                h(ws, msg);
            }
        });
    } else {
        let (tx, queued) = (tx.clone(), Arc::clone(queued));
        r = r.on_message(move |ws, msg| {
            let held = queued.load(Ordering::Acquire);
            if held > 0 && held + msg.len() > limit {
                if ws.is_open() {
                    log::debug!("client: {held} bytes unread; closing with 1008");
                    ws.close(1008, "receive queue full");
                }
                return;
            }
            queued.fetch_add(msg.len(), Ordering::AcqRel);
            let _ = tx.send(msg);
        });
    }
    if user.on_close.is_some() {
        let u = Arc::clone(user);
        r = r.on_close(move |ws, code, reason| {
            if let Some(h) = &u.on_close {
                h(ws, code, reason);
            }
        });
    }
    if user.on_error.is_some() {
        let u = Arc::clone(user);
        r = r.on_error(move |ws, e| {
            if let Some(h) = &u.on_error {
                h(ws, e);
            }
        });
    }
    r
}

/// The supervisor thread: connect, wait for the end, back off, again.
fn supervise(client: &Client, user: &Arc<Resource>, state: &State, tx: &Sender<Message>) {
    let policy = client.reconnect.clone().unwrap_or_default();
    let mut failures = 0u32;
    let mut since = Instant::now();
    let mut delay = Duration::ZERO;
    let ended = loop {
        if !pause(state, delay) {
            break "closed by the program".to_owned();
        }
        let hooks = hooks_for(user, tx, &state.queued, client.config.max_backlog);
        let handle = match client.connect_with(hooks) {
            Ok(handle) => handle,
            Err(e) => {
                let Some(retry_after) = retriable(&e) else {
                    log::debug!("client: giving up reconnecting: {e}");
                    break e.to_string();
                };
                failures = failures.saturating_add(1);
                delay = policy.delay(failures, random(), retry_after);
                let out_of_attempts = policy.max_attempts.is_some_and(|n| failures >= n);
                let out_of_time = policy
                    .max_elapsed
                    .is_some_and(|t| since.elapsed().saturating_add(delay) > t);
                if out_of_attempts || out_of_time {
                    log::debug!("client: giving up reconnecting after {failures} attempts: {e}");
                    break e.to_string();
                }
                log::debug!("client: attempt {failures} failed ({e}); next in {delay:?}");
                continue;
            }
        };
        {
            let mut phase = state.phase.lock();
            if phase.stopping {
                drop(phase);
                handle.disconnect(1000, "");
                break "closed by the program".to_owned();
            }
            // Under the lock that sends take: held messages go before any
            // sent from now on.
            phase.release(&handle);
            phase.current = Some(handle.clone());
            phase.connections += 1;
            state.cv.notify_all();
        }
        let (code, reason) = loop {
            if let Some(status) = handle.wait_closed(Duration::from_secs(3600)) {
                break status;
            }
        };
        state.phase.lock().current = None;
        // The last clone joins the connection's reader here (unless the
        // program holds one from `current`).
        drop(handle);
        if state.phase.lock().stopping {
            break "closed by the program".to_owned();
        }
        if policy.stop_on_policy_close && (code == 1008 || (4000..=4999).contains(&code)) {
            log::debug!("client: the server closed with {code}; not reconnecting");
            break format!("closed by the server with {code} {reason}");
        }
        log::debug!("client: connection lost ({code} {reason}); reconnecting");
        (failures, since) = (0, Instant::now());
        delay = policy.delay(0, random(), None);
    };
    let mut phase = state.phase.lock();
    phase.ended = Some(ended);
    state.cv.notify_all();
}

/// Waits `delay` unless `close` comes first; `false` when it did.
fn pause(state: &State, delay: Duration) -> bool {
    let deadline = crate::deadline::after(delay);
    let mut phase = state.phase.lock();
    while !phase.stopping {
        if state.cv.wait_until(&mut phase, deadline).timed_out() {
            break;
        }
    }
    !phase.stopping
}

impl Reconnecting {
    /// The open connection, if there is one now.
    pub fn current(&self) -> Option<ClientHandle> {
        self.owner.state.phase.lock().current.clone()
    }

    /// Whether a connection is open now.
    pub fn is_connected(&self) -> bool {
        self.current().is_some_and(|c| c.is_open())
    }

    /// How many connections have been opened so far.
    pub fn connections(&self) -> u64 {
        self.owner.state.phase.lock().connections
    }

    /// Waits at most `timeout` for an open connection; `false` if there is
    /// none by then or the client has stopped.
    pub fn wait_connected(&self, timeout: Duration) -> bool {
        let state = &self.owner.state;
        let deadline = crate::deadline::after(timeout);
        let mut phase = state.phase.lock();
        loop {
            if phase.current.as_ref().is_some_and(|c| c.is_open()) {
                return true;
            }
            if phase.ended.is_some() || state.cv.wait_until(&mut phase, deadline).timed_out() {
                return phase.current.as_ref().is_some_and(|c| c.is_open());
            }
        }
    }

    /// Waits at most `timeout` for the client to stop reconnecting (after
    /// `close`, a refusal it cannot mend, or its limits); returns why it
    /// stopped, or `None` if it has not.
    pub fn wait_stopped(&self, timeout: Duration) -> Option<String> {
        let state = &self.owner.state;
        let deadline = crate::deadline::after(timeout);
        let mut phase = state.phase.lock();
        while phase.ended.is_none() {
            if state.cv.wait_until(&mut phase, deadline).timed_out() {
                break;
            }
        }
        phase.ended.clone()
    }

    /// Sends on the open connection.
    ///
    /// # Errors
    /// [`Error::NotConnected`] while connecting again (the message is
    /// dropped, unless [`Reconnect::buffer`] has room for it);
    /// [`Error::Closed`] once the client has stopped.
    pub fn send(&self, msg: impl Into<Message>) -> Result<(), Error> {
        // Sent under the lock, so that messages held while disconnected
        // (sent on the new connection under it too) keep their order. A
        // send never waits for the peer.
        let mut phase = self.owner.state.phase.lock();
        if phase.stopping || phase.ended.is_some() {
            return Err(Error::Closed);
        }
        let msg = match &phase.current {
            Some(c) => match c.send(msg) {
                Ok(()) => return Ok(()),
                Err(back) => back.0,
            },
            None => msg.into(),
        };
        phase.hold(msg).map_err(|_| Error::NotConnected)
    }

    /// Sends a text message, as [`send`](Reconnecting::send).
    ///
    /// # Errors
    /// As [`send`](Reconnecting::send).
    pub fn send_text(&self, text: &str) -> Result<(), Error> {
        self.send(Message::Text(text.to_owned()))
    }

    /// Waits for the next queued message, from whichever connection.
    ///
    /// # Errors
    /// [`Error::Closed`] once the client has stopped and every queued
    /// message was received.
    pub fn recv(&self) -> Result<Message, Error> {
        let state = &self.owner.state;
        let msg = state.rx.recv().map_err(|_| Error::Closed)?;
        state.queued.fetch_sub(msg.len(), Ordering::AcqRel);
        Ok(msg)
    }

    /// Waits at most `timeout` for the next queued message.
    ///
    /// # Errors
    /// [`Error::Timeout`] when none came in time; [`Error::Closed`] as for
    /// [`recv`](Reconnecting::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Message, Error> {
        let state = &self.owner.state;
        let msg = state.rx.recv_timeout(timeout).map_err(|e| match e {
            RecvTimeoutError::Timeout => Error::Timeout("no message arrived in time"),
            RecvTimeoutError::Disconnected => Error::Closed,
        })?;
        state.queued.fetch_sub(msg.len(), Ordering::AcqRel);
        Ok(msg)
    }

    /// Stops reconnecting, closes the open connection with `code` and
    /// `reason` (waiting for its close handshake, bounded by
    /// [`Config::close_timeout`](crate::Config::close_timeout)) and joins
    /// the supervisor. A close the program asks for is never followed by a
    /// reconnect.
    pub fn close(&self, code: u16, reason: &str) {
        self.owner.stop(code, reason);
    }
}

impl Owner {
    fn stop(&self, code: u16, reason: &str) {
        let current = {
            let mut phase = self.state.phase.lock();
            phase.stopping = true;
            self.state.cv.notify_all();
            phase.current.clone()
        };
        if let Some(c) = current {
            c.disconnect(code, reason);
        }
        let thread = self.thread.lock().take();
        if let Some(t) = thread {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.stop(1000, "");
    }
}

#[allow(dead_code)] // because this only checks at compile time.
fn assert_traits() {
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<Reconnecting>();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_jittered_and_capped() {
        let p = Reconnect::new()
            .initial_delay(Duration::from_millis(100))
            .max_delay(Duration::from_secs(1));
        assert_eq!(p.delay(0, 0, None), Duration::ZERO);
        assert!(p.delay(0, u64::MAX, None) <= Duration::from_millis(100));
        for failures in 0..40 {
            for r in [0, 1, 12345, u64::MAX / 3, u64::MAX] {
                let d = p.delay(failures, r, None);
                let ceiling = (Duration::from_millis(100) * (1 << failures.min(4)))
                    .min(Duration::from_secs(1));
                assert!(d <= ceiling, "{failures} {r}: {d:?}");
            }
        }
        let after = Some(Duration::from_secs(5));
        assert!(p.delay(3, 7, after) >= Duration::from_secs(5));
    }

    #[test]
    fn which_errors_are_retried() {
        let http = |status: u16, retry: Option<&str>| Error::Http {
            status,
            headers: retry
                .map(|r| vec![("Retry-After".to_owned(), r.to_owned())])
                .unwrap_or_default(),
            body: Vec::new(),
        };
        assert_eq!(
            retriable(&http(503, Some("7"))),
            Some(Some(Duration::from_secs(7)))
        );
        assert_eq!(retriable(&http(502, None)), Some(None));
        assert_eq!(retriable(&http(404, None)), None);
        assert_eq!(retriable(&Error::Protocol("x")), None);
        assert_eq!(retriable(&Error::Timeout("x")), Some(None));
        assert_eq!(retriable(&Error::Proxy { status: 502 }), Some(None));
        assert_eq!(retriable(&Error::Proxy { status: 407 }), None);
    }
}
