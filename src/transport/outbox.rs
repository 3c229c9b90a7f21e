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
//!   final fragment; control frames still go out between fragments.
//! - Large payloads are not copied: a server's message of 1 KiB or more is
//!   queued from its own buffer behind a separate header (`push_owned`),
//!   and a broadcast's one encoding is shared (`push_shared`).
//! - A short write counts as a full socket, without a second try. The stall
//!   clock ([`Outbox::stalled_for`]) is the one clock behind every write
//!   timeout, WebSocket and SSE alike.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// Small frames are appended to the last buffer while it is below this size.
const COALESCE_LIMIT: usize = 64 * 1024;
/// A corked queue is flushed anyway once it holds this much.
const CORK_LIMIT: usize = 256 * 1024;
/// Most buffers handed to one `write_vectored` call.
const MAX_SLICES: usize = 16;

/// Queued bytes: owned by this connection, or one encoding shared by many
/// (a broadcast is encoded once).
#[derive(Debug)]
pub(crate) enum Chunk {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(a) => a,
        }
    }
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// A close frame was queued or the connection failed.
    Closed,
    /// The backlog would exceed its limit.
    TooSlow,
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
    /// While stalled: when the socket last took a byte (or the stall began).
    stalled_at: Option<Instant>,
    /// Bytes ever written: a flush waits for this to pass a mark, the
    /// housekeeper compares it to see whether a retry made progress.
    written: u64,
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
    max_backlog: usize,
}

impl Outbox {
    pub(crate) fn new(max_backlog: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            room: Condvar::new(),
            max_backlog,
        }
    }

    /// Bytes waiting to be written.
    pub(crate) fn backlog(&self) -> usize {
        let st = self.state.lock();
        st.queued + st.held_bytes
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
        sink: &mut impl Write,
        len: usize,
        admit: Admit,
        lane: Lane,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> Result<Flushed, PushError> {
        let mut st = self.state.lock();
        self.admit(&st, len, admit, lane)?;
        if lane == Lane::Data && st.streaming {
            let mut v = Vec::with_capacity(len);
            encode(&mut v);
            st.held.push_back(Chunk::Owned(v));
            st.held_bytes += len;
            return Ok(Flushed::Done);
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
        if admit == Admit::Close {
            st.closed = true;
            // Data held behind a stream can no longer follow it.
            st.held.clear();
            st.held_bytes = 0;
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
        sink: &mut impl Write,
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
            st.held.push_back(Chunk::Owned(header.to_vec()));
            if !payload.is_empty() {
                st.held.push_back(Chunk::Owned(payload));
            }
            st.held_bytes += len;
            return Ok(Flushed::Done);
        }
        match st.queue.back_mut() {
            Some(Chunk::Owned(v)) if v.len() + header.len() <= COALESCE_LIMIT => {
                v.extend_from_slice(header)
            }
            _ => st.queue.push_back(Chunk::Owned(header.to_vec())),
        }
        // An empty chunk would be offered alone one day: a write of nothing.
        if !payload.is_empty() {
            st.queue.push_back(Chunk::Owned(payload));
        }
        st.queued += len;
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

    /// Closes the open stream: what was held aside joins the queue.
    fn end_stream(st: &mut State) {
        st.streaming = false;
        let held = std::mem::take(&mut st.held);
        st.queued += std::mem::take(&mut st.held_bytes);
        st.queue.extend(held);
    }

    /// Queues bytes shared with other connections.
    pub(crate) fn push_shared(
        &self,
        sink: &mut impl Write,
        frame: Arc<[u8]>,
    ) -> Result<Flushed, PushError> {
        let mut st = self.state.lock();
        self.admit(&st, frame.len(), Admit::Limit, Lane::Data)?;
        if st.streaming {
            st.held_bytes += frame.len();
            st.held.push_back(Chunk::Shared(frame));
            return Ok(Flushed::Done);
        }
        st.queued += frame.len();
        st.queue.push_back(Chunk::Shared(frame));
        Ok(self.write_if_free(st, sink))
    }

    fn admit(&self, st: &State, len: usize, admit: Admit, lane: Lane) -> Result<(), PushError> {
        if st.closed {
            return Err(PushError::Closed);
        }
        let queued = Self::ahead(st, lane.of_stream());
        let over = queued + len > self.max_backlog;
        match admit {
            Admit::Limit if over => Err(PushError::TooSlow),
            Admit::Waited if over && queued > 0 => Err(PushError::TooSlow),
            _ => Ok(()),
        }
    }

    /// The backlog a push is measured against. A stream's fragments do not
    /// count what is held behind the stream: it cannot leave before them.
    fn ahead(st: &State, stream: bool) -> usize {
        match stream {
            true => st.queued,
            false => st.queued + st.held_bytes,
        }
    }

    fn write_if_free(
        &self,
        mut st: parking_lot::MutexGuard<'_, State>,
        sink: &mut impl Write,
    ) -> Flushed {
        if st.writing {
            return Flushed::Done;
        }
        if let Some(corker) = st.corked {
            if st.queued < CORK_LIMIT && corker == thread::current().id() {
                return Flushed::Done;
            }
        }
        st.writing = true;
        drop(st);
        self.write_loop(sink)
    }

    /// Holds back the calling thread's pushes until [`Outbox::uncork`];
    /// other threads' pushes are still written at once.
    pub(crate) fn cork(&self) {
        self.state.lock().corked = Some(thread::current().id());
    }

    /// Ends a cork and writes what it held back.
    pub(crate) fn uncork(&self, sink: &mut impl Write) -> Flushed {
        let mut st = self.state.lock();
        st.corked = None;
        if st.queue.is_empty() {
            return Flushed::Done;
        }
        self.write_if_free(st, sink)
    }

    /// Writes what is queued now, cork or not, unless another thread holds
    /// the writer role (then that thread sees to it).
    pub(crate) fn kick(&self, sink: &mut impl Write) -> Flushed {
        let mut st = self.state.lock();
        if st.writing || st.queue.is_empty() {
            return Flushed::Done;
        }
        st.writing = true;
        drop(st);
        self.write_loop(sink)
    }

    /// Blocks until a push of `len` bytes would be admitted (the backlog has
    /// room for it, or is empty), the outbox is closed, or `deadline` passes.
    /// Whoever holds the writer role wakes it as bytes leave.
    pub(crate) fn wait_for_room(&self, len: usize, lane: Lane, deadline: Instant) {
        // Room or not, the waiting is over: the pusher tries again.
        drop(self.wait_for(deadline, |st| {
            let queued = Self::ahead(st, lane.of_stream());
            st.closed || queued == 0 || queued + len <= self.max_backlog
        }));
    }

    /// The mark [`Outbox::wait_written`] waits for: everything queued so far.
    pub(crate) fn flush_mark(&self) -> u64 {
        let st = self.state.lock();
        st.written + (st.queued + st.held_bytes) as u64
    }

    /// Blocks until `mark` bytes have been written, the queue was dropped,
    /// or `deadline` passes.
    ///
    /// # Errors
    /// [`PushError::Closed`] when the queue was dropped first,
    /// [`PushError::TooSlow`] when `deadline` passed first.
    pub(crate) fn wait_written(&self, mark: u64, deadline: Instant) -> Result<(), PushError> {
        let (st, timed_out) = self.wait_for(deadline, |st| st.written >= mark || st.dropped);
        if st.written >= mark {
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
            st.dropped || (st.queued + st.held_bytes == 0 && st.stalled_at.is_none())
        });
        !timed_out && !st.dropped
    }

    /// The one wait loop of the `wait_*` methods: blocks until `done` holds
    /// for the state or `deadline` passes, woken by [`Outbox::wake`].
    /// Returns the state, still locked, and whether the deadline ended the
    /// wait.
    fn wait_for(
        &self,
        deadline: Instant,
        done: impl Fn(&State) -> bool,
    ) -> (parking_lot::MutexGuard<'_, State>, bool) {
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
    fn wake(&self, st: &State) {
        if st.waiters > 0 {
            self.room.notify_all();
        }
    }

    /// Continues writing for a caller that holds the writer role (the housekeeper).
    pub(crate) fn resume(&self, sink: &mut impl Write) -> Flushed {
        self.write_loop(sink)
    }

    /// Drops everything queued and refuses further pushes; returns whether
    /// the caller now holds the writer role (nobody else was writing), so
    /// that it may try one last frame with [`Outbox::write_last`].
    pub(crate) fn abort(&self) -> bool {
        let mut st = self.state.lock();
        st.closed = true;
        st.dropped = true;
        st.held.clear();
        st.held_bytes = 0;
        self.wake(&st);
        let keep = if st.head_written > 0 { 1 } else { 0 };
        while st.queue.len() > keep {
            st.queue.pop_back();
        }
        st.queued = st
            .queue
            .front()
            .map_or(0, |c| c.bytes().len() - st.head_written);
        let free = !st.writing && st.queue.is_empty();
        st.writing |= free;
        free
    }

    /// Writes a final frame for a caller that got the writer role from
    /// [`Outbox::abort`]. One attempt, so give it a sink that does not wait.
    pub(crate) fn write_last(&self, sink: &mut impl Write, frame: &[u8]) {
        // Best effort: the peer is being dropped whatever happens.
        let _ = sink.write(frame);
    }

    /// Writes until the queue is empty, the socket is full, or it fails.
    /// The caller holds the writer role; it is released unless `Stalled`.
    fn write_loop(&self, sink: &mut impl Write) -> Flushed {
        let mut progressed = false;
        loop {
            let (mut batch, mut skip) = {
                let mut st = self.state.lock();
                if st.queue.is_empty() {
                    // What the sink still holds (a TLS session's unsent
                    // ciphertext; nothing for plain TCP) goes out first.
                    drop(st);
                    let flushed = sink.flush();
                    st = self.state.lock();
                    match flushed {
                        Ok(()) if st.queue.is_empty() => {
                            st.stalled_at = None;
                            st.writing = false;
                            self.wake(&st);
                            return Flushed::Done;
                        }
                        Ok(()) => {}
                        Err(e) if is_full(&e) => {
                            if progressed || st.stalled_at.is_none() {
                                st.stalled_at = Some(Instant::now());
                            }
                            return Flushed::Stalled;
                        }
                        Err(e) => return self.fail(st, e),
                    }
                }
                let skip = std::mem::take(&mut st.head_written);
                (std::mem::take(&mut st.queue), skip)
            };
            let mut written = 0;
            let result = loop {
                if batch.is_empty() {
                    break Ok(());
                }
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let mut n = 0;
                for (i, chunk) in batch.iter().take(MAX_SLICES).enumerate() {
                    let bytes = chunk.bytes();
                    slices[i] = IoSlice::new(if i == 0 { &bytes[skip..] } else { bytes });
                    n += 1;
                }
                let offered: usize = slices[..n].iter().map(|s| s.len()).sum();
                match sink.write_vectored(&slices[..n]) {
                    Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                    Ok(mut k) => {
                        written += k;
                        // A socket's short write means its buffer is full (or, for
                        // a waiting write, that the send timeout passed): another
                        // write now would only report that. Stop here.
                        let full = k < offered;
                        // Drop every chunk written whole (an empty one included).
                        while let Some(front) = batch.front() {
                            let left = front.bytes().len() - skip;
                            if k < left {
                                skip += k;
                                break;
                            }
                            k -= left;
                            skip = 0;
                            if let Some(Chunk::Owned(v)) = batch.pop_front() {
                                self.recycle(v);
                            }
                        }
                        if full {
                            break Err(io::ErrorKind::WouldBlock.into());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            let mut st = self.state.lock();
            st.queued -= written.min(st.queued);
            st.written += written as u64;
            progressed |= written > 0;
            if written > 0 {
                self.wake(&st);
            }
            match result {
                Ok(()) => {}
                Err(e) if is_full(&e) => {
                    // Put the unwritten rest back in front of what arrived meanwhile.
                    while let Some(c) = batch.pop_back() {
                        st.queue.push_front(c);
                    }
                    st.head_written = skip;
                    if progressed || st.stalled_at.is_none() {
                        st.stalled_at = Some(Instant::now());
                    }
                    return Flushed::Stalled;
                }
                Err(e) => return self.fail(st, e),
            }
        }
    }

    /// A failed write: the queue is dropped and the writer role released.
    fn fail(&self, mut st: parking_lot::MutexGuard<'_, State>, e: io::Error) -> Flushed {
        st.queue.clear();
        st.queued = 0;
        st.closed = true;
        st.dropped = true;
        st.held.clear();
        st.held_bytes = 0;
        st.writing = false;
        st.stalled_at = None;
        self.wake(&st);
        Flushed::Failed(e)
    }

    fn recycle(&self, mut v: Vec<u8>) {
        if v.capacity() <= COALESCE_LIMIT {
            v.clear();
            let mut st = self.state.lock();
            if st.spare.capacity() < v.capacity() {
                st.spare = v;
            }
        }
    }
}

/// Whether a write error means "the socket buffer is full, try later".
pub(crate) fn is_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that accepts at most `room` bytes, then reports WouldBlock;
    /// like a socket, one vectored write takes from every slice it has room for.
    struct Throttled {
        out: Vec<u8>,
        room: usize,
        calls: usize,
    }

    impl Write for Throttled {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.room);
                self.room -= take;
                self.out.extend_from_slice(&b[..take]);
                n += take;
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn sink(room: usize) -> Throttled {
        Throttled {
            out: Vec::new(),
            room,
            calls: 0,
        }
    }

    /// A sink like a TLS session: it takes every byte offered (encrypts it),
    /// but passes on at most `room`, holding the rest until `flush`.
    struct Holding {
        held: Vec<u8>,
        out: Vec<u8>,
        room: usize,
    }

    impl Holding {
        fn pass_on(&mut self) -> io::Result<()> {
            let n = self.held.len().min(self.room);
            self.room -= n;
            self.out.extend(self.held.drain(..n));
            match self.held.is_empty() {
                true => Ok(()),
                false => Err(io::ErrorKind::WouldBlock.into()),
            }
        }
    }

    impl Write for Holding {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.held.extend_from_slice(buf);
            let _ = self.pass_on();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            self.pass_on()
        }
    }

    #[test]
    fn bytes_the_sink_holds_keep_the_writer_role_until_flushed() {
        let ob = Outbox::new(1 << 20);
        let mut s = Holding {
            held: Vec::new(),
            out: Vec::new(),
            room: 2,
        };
        // Everything was taken, but not all of it went out: still stalled.
        assert!(matches!(
            ob.push_with(&mut s, 5, Admit::Limit, Lane::Data, |v| v
                .extend_from_slice(b"abcde")),
            Ok(Flushed::Stalled)
        ));
        assert!(ob.state.lock().stalled_at.is_some());
        // The writer role is held: a push only queues.
        ob.push_with(&mut s, 1, Admit::Limit, Lane::Data, |v| v.push(b'f'))
            .unwrap();
        assert_eq!(s.out, b"ab");
        s.room = 100;
        assert!(matches!(ob.resume(&mut s), Flushed::Done));
        assert_eq!(s.out, b"abcdef");
        assert_eq!(ob.stalled_for(), Duration::ZERO);
    }

    #[test]
    fn a_drain_wait_ends_when_the_sink_lets_go_or_the_queue_is_dropped() {
        let ob = Arc::new(Outbox::new(1 << 20));
        let mut s = Holding {
            held: Vec::new(),
            out: Vec::new(),
            room: 2,
        };
        // A thread waiting with no deadline to speak of; its answer comes
        // on the channel.
        let waiter = |ob: &Arc<Outbox>| {
            let (tx, rx) = crossbeam_channel::bounded(1);
            let far = Instant::now() + Duration::from_secs(3600);
            let ob2 = Arc::clone(ob);
            std::thread::spawn(move || tx.send(ob2.wait_drained(far)).unwrap());
            // Wake it only once it waits, or a missed wake-up would go unseen.
            let bound = Instant::now() + Duration::from_secs(20);
            while ob.state.lock().waiters == 0 && Instant::now() < bound {
                std::thread::yield_now();
            }
            rx
        };
        let bound = Duration::from_secs(20);
        ob.push_with(&mut s, 5, Admit::Limit, Lane::Data, |v| {
            v.extend_from_slice(b"abcde")
        })
        .unwrap();
        // Nothing queued, but the sink still holds bytes: not drained.
        assert_eq!(ob.backlog(), 0);
        assert!(!ob.wait_drained(Instant::now()));
        let rx = waiter(&ob);
        s.room = 100;
        assert!(matches!(ob.resume(&mut s), Flushed::Done));
        assert_eq!(rx.recv_timeout(bound), Ok(true));
        assert_eq!(s.out, b"abcde");
        // A dropped queue ends the wait too, undrained.
        s.room = 0;
        ob.push_with(&mut s, 1, Admit::Limit, Lane::Data, |v| v.push(b'f'))
            .unwrap();
        let rx = waiter(&ob);
        ob.abort();
        assert_eq!(rx.recv_timeout(bound), Ok(false));
    }

    #[test]
    fn cork_coalesces_into_one_write() {
        let ob = Outbox::new(1 << 20);
        let mut s = sink(usize::MAX);
        ob.cork();
        for i in 0..10u8 {
            ob.push_with(&mut s, 1, Admit::Limit, Lane::Data, |v| v.push(i))
                .unwrap();
        }
        assert_eq!(s.calls, 0);
        assert!(matches!(ob.uncork(&mut s), Flushed::Done));
        assert_eq!(s.calls, 1);
        assert_eq!(s.out, (0..10).collect::<Vec<u8>>());
    }

    #[test]
    fn stall_keeps_order_and_resumes() {
        let ob = Outbox::new(1 << 20);
        let mut s = sink(3);
        assert!(matches!(
            ob.push_with(&mut s, 5, Admit::Limit, Lane::Data, |v| v
                .extend_from_slice(b"abcde")),
            Ok(Flushed::Stalled)
        ));
        // A short write is taken as "full": no second write waits out the timeout.
        assert_eq!(s.calls, 1);
        // The writer role is held (by the housekeeper): pushes only queue.
        let shared: Arc<[u8]> = Arc::from(&b"fg"[..]);
        assert!(matches!(ob.push_shared(&mut s, shared), Ok(Flushed::Done)));
        ob.push_with(&mut s, 1, Admit::Limit, Lane::Data, |v| v.push(b'h'))
            .unwrap();
        assert_eq!(ob.backlog(), 5);
        s.room = 100;
        assert!(matches!(ob.resume(&mut s), Flushed::Done));
        assert_eq!(s.out, b"abcdefgh");
        assert_eq!(ob.backlog(), 0);
    }

    #[test]
    fn the_stall_clock_restarts_on_progress_and_stops_when_drained() {
        let ob = Outbox::new(1 << 20);
        let mut s = sink(0);
        assert_eq!(ob.stalled_for(), Duration::ZERO);
        assert!(matches!(
            ob.push_with(&mut s, 4, Admit::Limit, Lane::Data, |v| v.extend([0; 4])),
            Ok(Flushed::Stalled)
        ));
        let first = ob.state.lock().stalled_at.unwrap();
        // No progress: the clock keeps its start.
        assert!(matches!(ob.resume(&mut s), Flushed::Stalled));
        assert_eq!(ob.state.lock().stalled_at, Some(first));
        // One byte taken: the clock restarts.
        s.room = 1;
        assert!(matches!(ob.resume(&mut s), Flushed::Stalled));
        assert!(ob.state.lock().stalled_at.unwrap() >= first);
        assert_ne!(ob.state.lock().stalled_at, Some(first));
        s.room = 100;
        assert!(matches!(ob.resume(&mut s), Flushed::Done));
        assert_eq!(ob.stalled_for(), Duration::ZERO);
    }

    #[test]
    fn a_close_frame_goes_past_the_backlog_limit() {
        let ob = Outbox::new(10);
        let mut s = sink(0);
        ob.push_with(&mut s, 9, Admit::Limit, Lane::Data, |v| v.extend([1; 9]))
            .unwrap();
        assert_eq!(
            ob.push_with(&mut s, 4, Admit::Limit, Lane::Data, |v| v.extend([2; 4]))
                .err(),
            Some(PushError::TooSlow)
        );
        // A close frame is admitted anyway, and nothing may follow it.
        ob.push_with(&mut s, 4, Admit::Close, Lane::Data, |v| v.extend([8; 4]))
            .unwrap();
        assert_eq!(
            ob.push_with(&mut s, 1, Admit::Limit, Lane::Data, |v| v.push(0))
                .err(),
            Some(PushError::Closed)
        );
        s.room = 100;
        assert!(matches!(ob.resume(&mut s), Flushed::Done));
        assert_eq!(s.out, [1, 1, 1, 1, 1, 1, 1, 1, 1, 8, 8, 8, 8]);
    }

    #[test]
    fn the_cork_holds_back_only_the_corking_thread() {
        let ob = Arc::new(Outbox::new(1 << 20));
        let s = Arc::new(Mutex::new(sink(usize::MAX)));
        ob.cork();
        ob.push_with(&mut *s.lock(), 1, Admit::Limit, Lane::Data, |v| v.push(1))
            .unwrap();
        assert_eq!(s.lock().calls, 0);
        let (ob2, s2) = (Arc::clone(&ob), Arc::clone(&s));
        std::thread::spawn(move || {
            ob2.push_with(&mut *s2.lock(), 1, Admit::Limit, Lane::Data, |v| v.push(2))
                .unwrap();
        })
        .join()
        .unwrap();
        // Another thread's push wrote at once, with what was queued before it.
        assert_eq!(s.lock().out, [1, 2]);
        ob.push_with(&mut *s.lock(), 1, Admit::Limit, Lane::Data, |v| v.push(3))
            .unwrap();
        assert_eq!(s.lock().out, [1, 2]);
        assert!(matches!(ob.uncork(&mut *s.lock()), Flushed::Done));
        assert_eq!(s.lock().out, [1, 2, 3]);
    }

    #[test]
    fn waiters_wake_as_room_appears_and_when_bytes_are_written() {
        let ob = Arc::new(Outbox::new(10));
        let mut s = sink(0);
        ob.push_with(&mut s, 8, Admit::Limit, Lane::Data, |v| v.extend([0; 8]))
            .unwrap();
        let mark = ob.flush_mark();
        assert_eq!(mark, 8);
        let deadline = Instant::now() + Duration::from_secs(20);
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let ob = Arc::clone(&ob);
                std::thread::spawn(move || {
                    ob.wait_for_room(5, Lane::Data, deadline);
                    ob.wait_written(mark, deadline)
                })
            })
            .collect();
        s.room = 100;
        assert!(matches!(ob.resume(&mut s), Flushed::Done));
        for w in waiters {
            assert_eq!(w.join().unwrap(), Ok(()));
        }
        // A zero wait returns at once; a dropped queue says so.
        s.room = 0;
        assert!(matches!(
            ob.push_with(&mut s, 8, Admit::Limit, Lane::Data, |v| v.extend([0; 8])),
            Ok(Flushed::Stalled)
        ));
        let mark = ob.flush_mark();
        assert_eq!(
            ob.wait_written(mark, Instant::now()),
            Err(PushError::TooSlow)
        );
        ob.abort();
        assert_eq!(
            ob.wait_written(mark, Instant::now() + Duration::from_secs(20)),
            Err(PushError::Closed)
        );
    }

    #[test]
    fn data_waits_behind_an_open_stream_and_control_frames_do_not() {
        let ob = Outbox::new(1 << 20);
        let mut s = sink(usize::MAX);
        let deadline = Instant::now() + Duration::from_secs(20);
        ob.open_stream(deadline).unwrap();
        ob.push_with(&mut s, 1, Admit::Limit, Lane::Stream, |v| v.push(1))
            .unwrap();
        ob.push_with(&mut s, 1, Admit::Limit, Lane::Data, |v| v.push(9))
            .unwrap();
        ob.push_shared(&mut s, Arc::from(&[8u8][..])).unwrap();
        ob.push_with(&mut s, 1, Admit::Limit, Lane::Control, |v| v.push(5))
            .unwrap();
        assert_eq!(s.out, [1, 5]);
        assert_eq!(ob.backlog(), 2);
        // A second stream waits for the first.
        assert_eq!(ob.open_stream(Instant::now()), Err(PushError::TooSlow));
        ob.push_with(&mut s, 1, Admit::Limit, Lane::StreamEnd, |v| v.push(2))
            .unwrap();
        assert_eq!(s.out, [1, 5, 2, 9, 8]);
        assert_eq!(ob.backlog(), 0);
        ob.open_stream(deadline).unwrap();
    }

    #[test]
    fn an_empty_payload_is_never_written_alone() {
        let ob = Outbox::new(1 << 20);
        let mut s = sink(usize::MAX);
        let pushed = ob.push_owned(&mut s, &[0x82, 0], Vec::new(), Admit::Limit, Lane::Data);
        assert!(matches!(pushed, Ok(Flushed::Done)));
        ob.push_with(&mut s, 1, Admit::Limit, Lane::Data, |v| v.push(7))
            .unwrap();
        assert_eq!(s.out, [0x82, 0, 7]);
        assert_eq!(ob.backlog(), 0);
    }

    #[test]
    fn backlog_limit_and_close() {
        let ob = Outbox::new(10);
        let mut s = sink(0);
        assert!(matches!(
            ob.push_with(&mut s, 8, Admit::Limit, Lane::Data, |v| v.extend([0; 8])),
            Ok(Flushed::Stalled)
        ));
        assert_eq!(
            ob.push_with(&mut s, 3, Admit::Limit, Lane::Data, |v| v.extend([0; 3]))
                .err(),
            Some(PushError::TooSlow)
        );
        ob.push_with(&mut s, 2, Admit::Close, Lane::Data, |v| v.extend([0; 2]))
            .unwrap();
        assert_eq!(
            ob.push_with(&mut s, 1, Admit::Limit, Lane::Data, |v| v.push(0))
                .err(),
            Some(PushError::Closed)
        );
    }
}
