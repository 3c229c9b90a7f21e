//! `Closer`: asking a running server to stop, from any thread, and waiting
//! for that request (`ServerHandle::wait`, a push loop's pause).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// Asks a running server to close, from any thread: a Ctrl-C handler, a
/// hook, a timer. Cheap to clone, `Send + Sync`; get one from
/// [`ServerHandle::closer`](crate::ServerHandle::closer), or before the
/// start from [`Server::closer`](crate::Server::closer).
///
/// [`Closer::close`] only *asks*: it returns at once, and the thread blocked
/// in [`ServerHandle::wait`](crate::ServerHandle::wait) (or
/// [`ServerHandle::wait_timeout`](crate::ServerHandle::wait_timeout)) wakes
/// and closes the server. So it is safe to call from a hook (a hook's own
/// thread cannot join itself) and from a signal-handling thread.
///
/// A background thread that pushes in a loop can pause with
/// [`Closer::wait_timeout`] instead of `thread::sleep`: it returns `true` as
/// soon as the server is closing, so the loop ends and the thread can be
/// joined.
///
/// ```
/// use std::time::Duration;
/// use wsportal::{Resource, Server};
///
/// let mut server = Server::new();
/// server.define_resource("/ticks", Resource::new());
/// let handle = server.start("127.0.0.1:0")?;
/// let push = handle.broadcaster().allow_nobody();
/// let closer = handle.closer();
/// let ticker = std::thread::spawn(move || {
///     // A tick every 100 ms until the server closes.
///     while !closer.wait_timeout(Duration::from_millis(100)) {
///         push.to_resource("/ticks", "tick").expect("a real failure");
///     }
/// });
/// handle.closer().close(); // from anywhere: a hook, a Ctrl-C handler...
/// handle.wait(); // returns once asked
/// handle.close(); // 1001 to every client, every thread joined
/// ticker.join().expect("the ticker ended");
/// # Ok::<(), wsportal::Error>(())
/// ```
#[derive(Clone)]
pub struct Closer {
    state: Arc<(Mutex<bool>, Condvar)>,
}

impl fmt::Debug for Closer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Closer")
            .field("closing", &self.is_closing())
            .finish()
    }
}

impl Closer {
    pub(crate) fn new() -> Closer {
        Closer {
            state: Arc::new((Mutex::new(false), Condvar::new())),
        }
    }

    /// The same closer, made ready for a new start of its server.
    pub(crate) fn reopened(&self) -> Closer {
        *self.state.0.lock() = false;
        self.clone()
    }

    /// Asks the server to close, and wakes every thread waiting on a
    /// `Closer` of this server. Returns at once; calling it again does
    /// nothing.
    pub fn close(&self) {
        let (closing, woken) = &*self.state;
        *closing.lock() = true;
        woken.notify_all();
    }

    /// Whether a close was asked for (or the server was closed).
    pub fn is_closing(&self) -> bool {
        *self.state.0.lock()
    }

    /// Blocks until a close is asked for.
    pub fn wait(&self) {
        let (closing, woken) = &*self.state;
        let mut closing = closing.lock();
        while !*closing {
            woken.wait(&mut closing);
        }
    }

    /// Blocks until a close is asked for or `timeout` has passed; returns
    /// whether a close was asked for. Use it as the pause of a loop that
    /// should end with the server.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let (closing, woken) = &*self.state;
        let mut closing = closing.lock();
        while !*closing {
            match deadline {
                Some(at) => {
                    if woken.wait_until(&mut closing, at).timed_out() {
                        return *closing;
                    }
                }
                // Too far in the future to represent: wait as for ever.
                None => woken.wait(&mut closing),
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::Closer;
    use std::time::Duration;

    #[test]
    fn wakes_waiters_and_stays_closed() {
        let closer = Closer::new();
        assert!(!closer.wait_timeout(Duration::from_millis(1)));
        let c = closer.clone();
        let waiter = std::thread::spawn(move || c.wait());
        closer.close();
        waiter.join().unwrap();
        assert!(closer.is_closing());
        assert!(closer.wait_timeout(Duration::MAX));
    }
}
