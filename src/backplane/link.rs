//! The publishing connection: one Redis connection per [`Backplane`]
//! (shared by its clones and by every server it is attached to), used
//! under a lock. Every use is bounded by the backplane's timeout: waiting
//! for the lock, connecting, writing and reading each give up after it.
//! After a failure the connection is dropped, and the next use reconnects;
//! while reconnecting keeps failing, uses within the backoff fail at once.
//!
//! [`Backplane`]: super::Backplane

use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::Error;

/// The first wait after a failed connect, doubled after each one.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// The longest wait between two connects.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(2);

pub(crate) struct Link {
    client: redis::Client,
    state: Mutex<State>,
}

struct State {
    conn: Option<redis::Connection>,
    /// No connect before this (after a failed one).
    retry_at: Option<Instant>,
    backoff: Duration,
}

/// Whether a Redis error means the connection is unusable.
pub(crate) fn broken(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_unrecoverable_error()
}

/// A Redis error as ours.
pub(crate) fn error(what: &str, e: &redis::RedisError) -> Error {
    Error::Backplane(format!("{what}: {e}"))
}

impl Link {
    pub(crate) fn new(client: redis::Client) -> Link {
        Link {
            client,
            state: Mutex::new(State {
                conn: None,
                retry_at: None,
                backoff: BACKOFF_MIN,
            }),
        }
    }

    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Runs `f` on the connection (connecting first if need be), all within
    /// about `timeout` for the lock plus `timeout` per socket operation.
    pub(crate) fn with<T>(
        &self,
        timeout: Duration,
        what: &str,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, Error> {
        let Some(mut st) = self.state.try_lock_for(timeout) else {
            return Err(Error::Backplane(format!(
                "{what}: the publishing connection stayed busy"
            )));
        };
        if st.conn.is_none() {
            if st.retry_at.is_some_and(|at| Instant::now() < at) {
                return Err(Error::Backplane(format!(
                    "{what}: Redis is unreachable (retrying)"
                )));
            }
            match connect(&self.client, timeout) {
                Ok(c) => {
                    st.conn = Some(c);
                    st.retry_at = None;
                    st.backoff = BACKOFF_MIN;
                }
                Err(e) => {
                    st.retry_at = Some(Instant::now() + st.backoff);
                    st.backoff = (st.backoff * 2).min(BACKOFF_MAX);
                    log::debug!("backplane: cannot connect to publish: {e}");
                    return Err(error(what, &e));
                }
            }
        }
        // Because it was set just above when it was `None`.
        let conn = st.conn.as_mut().expect("connected");
        match f(conn) {
            Ok(v) => Ok(v),
            Err(e) => {
                if broken(&e) {
                    // Reconnect on the next use (at once: Redis may just have restarted).
                    st.conn = None;
                    log::debug!("backplane: publishing connection lost: {e}");
                }
                Err(error(what, &e))
            }
        }
    }
}

/// A connection whose every socket operation is bounded by `timeout`.
pub(crate) fn connect(
    client: &redis::Client,
    timeout: Duration,
) -> redis::RedisResult<redis::Connection> {
    let conn = client.get_connection_with_timeout(timeout)?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    Ok(conn)
}
