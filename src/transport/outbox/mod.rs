//! Outbound queue of one connection: any thread may push whole frames; one
//! thread at a time holds the *writer role* and moves queued bytes to the
//! socket.
//!
//! - Frames never interleave: a frame is pushed whole, under the lock.
//! - Writes are coalesced: small frames are appended to one buffer, and the
//!   writer sends everything queued with one `write_vectored`. While the
//!   connection's own thread handles a batch of input it *corks* the queue, so
//!   replies to everything one read brought in leave in one write. The cork
//!   holds back only that thread's pushes: a push from any other thread (a
//!   send, a keepalive ping, the shutdown's 1001) is written at once.
//! - Nobody blocks on a slow peer: writers other than the connection's own
//!   thread write through [`Transport::nowait`](crate::transport::Transport),
//!   and when the kernel buffer is full the writer role passes to the
//!   server's housekeeper thread, which keeps flushing. The backlog is
//!   bounded by `max_backlog`; past it the push fails with
//!   [`PushError::TooSlow`] (a close frame is let past the limit: it is small,
//!   and a close must go out). A producer willing to wait waits on a condvar
//!   until a writer makes room ([`Outbox::wait_for_room`]).
//! - One message may be *streamed* in fragments ([`Lane::Stream`]). While a
//!   stream is open, other data frames are held aside and queued after its
//!   final fragment; control frames still go out between fragments. What
//!   is held is bounded by `max_backlog` too, but a message that does not
//!   fit behind the stream is refused without closing the connection
//!   ([`PushError::Held`]): the producer is slow, not the peer.
//! - Pings and pongs ([`Lane::Urgent`]) jump the queue: they go out at the
//!   next frame boundary, ahead of queued data, so that a slow reader's
//!   keepalive is not stuck behind seconds of data.
//! - `flush` counts what left the *sink*: a TLS session may hold records
//!   it accepted, so bytes count as confirmed only once the sink holds
//!   nothing ([`Sink::holds`]).
//! - Large payloads are not copied: a server's message of 1 KiB or more is
//!   queued from its own buffer behind a separate header (`push_owned`),
//!   and a broadcast's one encoding is shared (`push_shared`).
//! - A short write counts as a full socket, without a second try. The stall
//!   clock ([`Outbox::stalled_for`]) is the one clock behind every write
//!   timeout, WebSocket and SSE alike.

mod wait;

mod writer;

#[cfg(all(test, loom))]
pub(crate) mod loom;
#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, not(loom)))]
use self::wait::Mark;

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::atomic::Ordering;

use crate::sync::{AtomicBool, Condvar, Mutex, ThreadId};

/// Small frames are appended to the last buffer while it is below this size.
const COALESCE_LIMIT: usize = 64 * 1024;
/// A corked queue is flushed anyway once it holds this much.
const CORK_LIMIT: usize = 256 * 1024;
/// Most buffers handed to one `write_vectored` call.
const MAX_SLICES: usize = 16;

/// Queued bytes: owned by this connection, or one encoding shared by many
/// (a broadcast is encoded once). Every chunk ends at a frame boundary but
/// a `Head`: a frame's header whose payload is the next chunk.
#[derive(Debug)]
pub(crate) enum Chunk {
    Owned(Vec<u8>),
    Head(Vec<u8>),
    Shared(Arc<[u8]>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) | Chunk::Head(v) => v,
            Chunk::Shared(a) => a,
        }
    }
}

/// What the outbox writes to: a socket, or a TLS session over one.
pub(crate) trait Sink: Write {
    /// Whether the sink still holds bytes it accepted (a TLS session's
    /// records the socket did not take). Plain sockets hold nothing.
    fn holds(&self) -> bool {
        false
    }
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// A close frame was queued or the connection failed.
    Closed,
    /// The backlog would exceed its limit.
    TooSlow,
    /// A data frame would wait behind an open stream past the backlog
    /// limit, while the peer keeps up: refused, the connection stays open.
    Held,
}

/// How a push is measured against the backlog limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Refused with [`PushError::TooSlow`] past the limit.
    Limit,
    /// For a producer that waited for room: within the limit, or anything
    /// into an empty backlog (a message larger than the whole backlog could
    /// never go otherwise).
    Waited,
    /// A close frame: admitted past the limit, and nothing may follow it.
    Close,
}

impl Admit {
    /// How a data push is admitted: `Waited` when its producer has a
    /// deadline to wait for room until, `Limit` otherwise.
    pub(crate) fn data(deadline: Option<Instant>) -> Admit {
        match deadline {
            Some(_) => Admit::Waited,
            None => Admit::Limit,
        }
    }
}

/// Which frames a push carries, for the order around a streamed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// A whole data message: held aside while a stream is open.
    Data,
    /// A control frame: may go between a stream's fragments.
    Control,
    /// A ping or pong: goes out at the next frame boundary, ahead of
    /// queued data.
    Urgent,
    /// A fragment of the open stream, not its last.
    Stream,
    /// The open stream's final fragment: what was held aside follows it.
    StreamEnd,
}

impl Lane {
    fn of_stream(self) -> bool {
        matches!(self, Lane::Stream | Lane::StreamEnd)
    }
}

/// What became of the queued bytes after a flush attempt.
#[derive(Debug)]
pub(crate) enum Flushed {
    /// Nothing left, or another thread holds the writer role.
    Done,
    /// The socket is full; the caller still holds the writer role and must
    /// hand it to the housekeeper.
    Stalled,
    /// The socket failed; the queue is dropped.
    Failed(io::Error),
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Chunk>,
    /// Bytes of `queue[0]` already written.
    head_written: usize,
    /// Bytes queued and not yet written.
    queued: usize,
    /// Bytes that ever entered the queue, dropped ones included: where a
    /// flush's mark is set (the queue's order is the write order).
    appended: u64,
    /// Bytes that were ever held behind a stream, and, at the last stream's
    /// end, how many of them had been and where in the queue they ended.
    held_in: u64,
    released: (u64, u64),
    /// Held bytes were dropped (a close frame or a cut-off while a stream
    /// was open): they will never be released.
    held_dropped: bool,
    /// While stalled: when the socket last took a byte (or the stall began).
    stalled_at: Option<Instant>,
    /// Queued bytes ever accepted by the sink: the housekeeper compares it
    /// to see whether a retry made progress.
    written: u64,
    /// Of `written`, what the sink no longer holds: a flush waits for this
    /// to pass its mark.
    confirmed: u64,
    /// The last write ended inside a frame: nothing may go in between.
    mid_frame: bool,
    /// Pings and pongs waiting for the next frame boundary (whole frames,
    /// not counted in `queued`), and how much of them is written.
    urgent: Vec<u8>,
    urgent_written: usize,
    writing: bool,
    /// While corked: the thread whose pushes are held back.
    corked: Option<ThreadId>,
    closed: bool,
    /// The queue was dropped (a cut-off or a failed write).
    dropped: bool,
    /// Threads waiting in [`Outbox::wait_for`] (the `wait_*` methods).
    waiters: usize,
    /// A streamed message is open: data frames wait in `held`.
    streaming: bool,
    /// The thread that opened it.
    stream_owner: Option<ThreadId>,
    held: VecDeque<Chunk>,
    held_bytes: usize,
    /// A written buffer kept for reuse.
    spare: Vec<u8>,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    /// Signalled when bytes leave the queue or the queue closes.
    room: Condvar,
    /// Pings or pongs wait (`State::urgent`): the writer stops at the next
    /// frame boundary to let them out.
    urgent: AtomicBool,
    max_backlog: usize,
}

impl Outbox {
    pub(crate) fn new(max_backlog: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            room: Condvar::new(),
            urgent: AtomicBool::new(false),
            max_backlog,
        }
    }

    /// Bytes waiting to be written.
    pub(crate) fn backlog(&self) -> usize {
        let st = self.state.lock();
        st.queued + st.held_bytes + Self::urgent_left(&st)
    }

    /// How long the socket has taken no byte while bytes wait (zero when
    /// not stalled): the one clock behind every write timeout.
    pub(crate) fn stalled_for(&self) -> Duration {
        self.state
            .lock()
            .stalled_at
            .map_or(Duration::ZERO, |t| t.elapsed())
    }

    /// Bytes ever written to the socket.
    pub(crate) fn written(&self) -> u64 {
        self.state.lock().written
    }

    /// Queues a frame that `encode` appends to a buffer (`len` bytes long),
    /// then writes if no one else is.
    pub(crate) fn push_with(
        &self,
        sink: &mut impl Sink,
        len: usize,
        admit: Admit,
        lane: Lane,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> Result<Flushed, PushError> {
        let mut st = self.state.lock();
        self.admit(&st, len, admit, lane)?;
        if lane == Lane::Urgent {
            encode(&mut st.urgent);
            self.urgent.store(true, Ordering::Release);
            return Ok(self.write_if_free(st, sink));
        }
        if lane == Lane::Data && st.streaming {
            let mut v = Vec::with_capacity(len);
            encode(&mut v);
            st.held.push_back(Chunk::Owned(v));
            st.held_bytes += len;
            st.held_in += len as u64;
            return Ok(Flushed::Done);
        }
        if admit == Admit::Close && !st.urgent.is_empty() && st.urgent_written == 0 {
            // Nothing may follow a close frame: pings and pongs still
            // waiting go into the queue ahead of it (the queue's end is a
            // frame boundary), where the frames they would have jumped are.
            let urgent = std::mem::take(&mut st.urgent);
            self.urgent.store(false, Ordering::Release);
            st.queued += urgent.len();
            st.appended += urgent.len() as u64;
            st.queue.push_back(Chunk::Owned(urgent));
        }
        let appendable =
            matches!(st.queue.back(), Some(Chunk::Owned(v)) if v.len() + len <= COALESCE_LIMIT);
        if appendable {
            if let Some(Chunk::Owned(v)) = st.queue.back_mut() {
                encode(v);
            }
        } else {
            let mut v = std::mem::take(&mut st.spare);
            v.reserve(len);
            encode(&mut v);
            st.queue.push_back(Chunk::Owned(v));
        }
        st.queued += len;
        st.appended += len as u64;
        if admit == Admit::Close {
            st.closed = true;
            // Data held behind a stream can no longer follow it.
            Self::drop_held(&mut st);
            self.wake(&st);
        }
        if lane == Lane::StreamEnd {
            Self::end_stream(&mut st);
            self.wake(&st);
        }
        Ok(self.write_if_free(st, sink))
    }

    /// Queues a frame header and its payload without copying the payload.
    /// On refusal the payload is given back.
    pub(crate) fn push_owned(
        &self,
        sink: &mut impl Sink,
        header: &[u8],
        payload: Vec<u8>,
        admit: Admit,
        lane: Lane,
    ) -> Result<Flushed, (PushError, Vec<u8>)> {
        let mut st = self.state.lock();
        let len = header.len() + payload.len();
        if let Err(e) = self.admit(&st, len, admit, lane) {
            return Err((e, payload));
        }
        if lane == Lane::Data && st.streaming {
            // Held as queued: a header whose payload follows is a `Head`
            // (nothing may go between them once released).
            if payload.is_empty() {
                st.held.push_back(Chunk::Owned(header.to_vec()));
            } else {
                st.held.push_back(Chunk::Head(header.to_vec()));
                st.held.push_back(Chunk::Owned(payload));
            }
            st.held_bytes += len;
            st.held_in += len as u64;
            return Ok(Flushed::Done);
        }
        // An empty payload: the header is the whole frame. An empty chunk
        // would be offered alone one day: a write of nothing.
        let whole = payload.is_empty();
        match st.queue.back_mut() {
            Some(Chunk::Owned(v)) if v.len() + header.len() <= COALESCE_LIMIT => {
                v.extend_from_slice(header);
                if !whole {
                    // The chunk now ends inside a frame.
                    if let Some(Chunk::Owned(v)) = st.queue.pop_back() {
                        st.queue.push_back(Chunk::Head(v));
                    }
                }
            }
            _ if whole => st.queue.push_back(Chunk::Owned(header.to_vec())),
            _ => st.queue.push_back(Chunk::Head(header.to_vec())),
        }
        if !whole {
            st.queue.push_back(Chunk::Owned(payload));
        }
        st.queued += len;
        st.appended += len as u64;
        if lane == Lane::StreamEnd {
            Self::end_stream(&mut st);
            self.wake(&st);
        }
        Ok(self.write_if_free(st, sink))
    }

    /// Opens a streamed message: from now on, data frames are held aside
    /// until its final fragment. Waits (until `deadline`) while another
    /// stream is open.
    ///
    /// # Errors
    /// [`PushError::Closed`] when the outbox is closed; [`PushError::TooSlow`]
    /// when another stream was still open at `deadline`.
    pub(crate) fn open_stream(&self, deadline: Instant) -> Result<(), PushError> {
        let mut st = self.state.lock();
        loop {
            if st.closed {
                return Err(PushError::Closed);
            }
            if !st.streaming {
                st.streaming = true;
                st.stream_owner = Some(crate::sync::thread_id());
                return Ok(());
            }
            st.waiters += 1;
            let timed_out = self.room.wait_until(&mut st, deadline).timed_out();
            st.waiters -= 1;
            if timed_out && st.streaming {
                return Err(PushError::TooSlow);
            }
        }
    }

    /// Drops what is held behind an open stream (it can never follow it).
    fn drop_held(st: &mut State) {
        st.held_dropped |= st.held_bytes > 0;
        st.held.clear();
        st.held_bytes = 0;
    }

    /// Closes the open stream: what was held aside joins the queue.
    fn end_stream(st: &mut State) {
        st.streaming = false;
        st.stream_owner = None;
        let held = std::mem::take(&mut st.held);
        let held_bytes = std::mem::take(&mut st.held_bytes);
        st.queued += held_bytes;
        st.appended += held_bytes as u64;
        st.released = (st.held_in, st.appended);
        st.queue.extend(held);
    }

    /// Queues bytes shared with other connections.
    pub(crate) fn push_shared(
        &self,
        sink: &mut impl Sink,
        frame: Arc<[u8]>,
    ) -> Result<Flushed, PushError> {
        let mut st = self.state.lock();
        self.admit(&st, frame.len(), Admit::Limit, Lane::Data)?;
        if st.streaming {
            st.held_bytes += frame.len();
            st.held_in += frame.len() as u64;
            st.held.push_back(Chunk::Shared(frame));
            return Ok(Flushed::Done);
        }
        st.queued += frame.len();
        st.appended += frame.len() as u64;
        st.queue.push_back(Chunk::Shared(frame));
        Ok(self.write_if_free(st, sink))
    }

    fn admit(&self, st: &State, len: usize, admit: Admit, lane: Lane) -> Result<(), PushError> {
        if st.closed {
            return Err(PushError::Closed);
        }
        let queued = Self::ahead(st, lane);
        let over = queued + len > self.max_backlog;
        let refused = match admit {
            Admit::Limit => over,
            Admit::Waited => over && queued > 0,
            Admit::Close => false,
        };
        if !refused {
            return Ok(());
        }
        // Over the limit only for what waits behind an open stream: the
        // producer of the stream is slow, not the peer.
        let behind_stream = lane == Lane::Data && st.streaming;
        if behind_stream && Self::ahead(st, Lane::Stream) + len <= self.max_backlog {
            return Err(PushError::Held);
        }
        Err(PushError::TooSlow)
    }

    /// The backlog a push is measured against. A stream's fragments do not
    /// count what is held behind the stream: it cannot leave before them.
    fn ahead(st: &State, lane: Lane) -> usize {
        let held = match lane.of_stream() {
            true => 0,
            false => st.held_bytes,
        };
        st.queued + held + Self::urgent_left(st)
    }

    /// Pings and pongs not yet written.
    fn urgent_left(st: &State) -> usize {
        st.urgent.len() - st.urgent_written
    }
}
