//! Waiting on the outbox: for room in the backlog, for bytes to be
//! written, for the queue to drain. One condvar loop, `wait_for`, woken by
//! whoever moves bytes or closes the queue; a waiter never holds a socket.

use std::time::Instant;

use super::{Lane, Outbox, PushError, State};

/// Where a flush waits to: a position in the queue (bytes entered before
/// the flush, in write order), and, with data held behind a stream, the
/// held bytes to see released and written too. A stream's later fragments
/// go ahead of what is held, so a byte count alone would be reached early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    pub(super) queue: u64,
    pub(super) held: Option<u64>,
}

impl Mark {
    fn reached(self, st: &State) -> bool {
        let held = match self.held {
            None => true,
            Some(h) => st.released.0 >= h && st.confirmed >= st.released.1,
        };
        st.confirmed >= self.queue && held
    }
}

impl Outbox {
    /// Blocks until a push of `len` bytes would be admitted (the backlog has
    /// room for it, or is empty), the outbox is closed, or `deadline` passes.
    /// Whoever holds the writer role wakes it as bytes leave.
    pub(crate) fn wait_for_room(&self, len: usize, lane: Lane, deadline: Instant) {
        // Room or not, the waiting is over: the pusher tries again.
        drop(self.wait_for(deadline, |st| {
            let queued = Self::ahead(st, lane);
            st.closed || queued == 0 || queued + len <= self.max_backlog
        }));
    }

    /// The mark [`Outbox::wait_written`] waits for: everything queued so
    /// far, and what is held behind an open stream (even if dropped since:
    /// a flush must not confirm it).
    ///
    /// # Errors
    /// [`PushError::Held`] for the thread whose stream is open while data
    /// waits behind it: only that thread can release it, so waiting would
    /// only time out.
    pub(crate) fn flush_mark(&self) -> Result<Mark, PushError> {
        let st = self.state.lock();
        let held = st.held_in > st.released.0;
        let own_stream = st.streaming && st.stream_owner == Some(crate::sync::thread_id());
        if held && own_stream {
            return Err(PushError::Held);
        }
        Ok(Mark {
            queue: st.appended,
            held: held.then_some(st.held_in),
        })
    }

    /// Blocks until `mark` bytes have left the sink (not only entered it: a
    /// TLS session's records count once on the socket), the queue was
    /// dropped, or `deadline` passes.
    ///
    /// # Errors
    /// [`PushError::Closed`] when the queue was dropped first,
    /// [`PushError::TooSlow`] when `deadline` passed first.
    pub(crate) fn wait_written(&self, mark: Mark, deadline: Instant) -> Result<(), PushError> {
        let (st, timed_out) = self.wait_for(deadline, |st| {
            mark.reached(st) || st.dropped || (mark.held.is_some() && st.held_dropped)
        });
        if mark.reached(&st) {
            Ok(())
        } else if timed_out {
            Err(PushError::TooSlow)
        } else {
            Err(PushError::Closed)
        }
    }

    /// Blocks until nothing is left to write (the sink's own unsent bytes
    /// included: TLS ciphertext), the queue was dropped, or `deadline`
    /// passes: a closing connection's last chance for its backlog. Returns
    /// whether everything left.
    pub(crate) fn wait_drained(&self, deadline: Instant) -> bool {
        let (st, timed_out) = self.wait_for(deadline, |st| {
            let empty = st.queued + st.held_bytes + Self::urgent_left(st) == 0;
            st.dropped || (empty && st.stalled_at.is_none())
        });
        !timed_out && !st.dropped
    }

    /// The one wait loop of the `wait_*` methods: blocks until `done` holds
    /// for the state or `deadline` passes, woken by [`Outbox::wake`].
    /// Returns the state, still locked, and whether the deadline ended the
    /// wait.
    pub(super) fn wait_for(
        &self,
        deadline: Instant,
        done: impl Fn(&State) -> bool,
    ) -> (crate::sync::MutexGuard<'_, State>, bool) {
        let mut st = self.state.lock();
        while !done(&st) {
            st.waiters += 1;
            let timed_out = self.room.wait_until(&mut st, deadline).timed_out();
            st.waiters -= 1;
            if timed_out {
                return (st, true);
            }
        }
        (st, false)
    }

    /// Wakes the threads waiting for room or for bytes to be written.
    pub(super) fn wake(&self, st: &State) {
        if st.waiters > 0 {
            self.room.notify_all();
        }
    }
}
