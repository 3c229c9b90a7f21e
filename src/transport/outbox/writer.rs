//! The writer role: who writes, and the write loop. One thread at a time
//! holds the role; it writes until the queue is empty, the socket is full
//! (then the role passes to the housekeeper: [`Flushed::Stalled`]) or the
//! socket fails. `abort` takes the role for a last frame.

use std::io::{self, IoSlice};
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{Chunk, Flushed, Outbox, Sink, State, COALESCE_LIMIT, CORK_LIMIT, MAX_SLICES};
use crate::sync::{thread_id, MutexGuard};
use crate::transport::socket::is_full;

impl Outbox {
    pub(super) fn write_if_free(
        &self,
        mut st: MutexGuard<'_, State>,
        sink: &mut impl Sink,
    ) -> Flushed {
        if st.writing {
            return Flushed::Done;
        }
        if let Some(corker) = st.corked {
            if st.queued < CORK_LIMIT && corker == thread_id() {
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
        self.state.lock().corked = Some(thread_id());
    }

    /// Ends a cork and writes what it held back.
    pub(crate) fn uncork(&self, sink: &mut impl Sink) -> Flushed {
        let mut st = self.state.lock();
        st.corked = None;
        if st.queue.is_empty() && st.urgent.is_empty() {
            return Flushed::Done;
        }
        self.write_if_free(st, sink)
    }

    /// Writes what is queued now, cork or not, unless another thread holds
    /// the writer role (then that thread sees to it).
    pub(crate) fn kick(&self, sink: &mut impl Sink) -> Flushed {
        let mut st = self.state.lock();
        if st.writing || (st.queue.is_empty() && st.urgent.is_empty()) {
            return Flushed::Done;
        }
        st.writing = true;
        drop(st);
        self.write_loop(sink)
    }

    /// Continues writing for a caller that holds the writer role (the housekeeper).
    pub(crate) fn resume(&self, sink: &mut impl Sink) -> Flushed {
        self.write_loop(sink)
    }

    /// Drops everything queued and refuses further pushes; returns whether
    /// the caller now holds the writer role (nobody else was writing), so
    /// that it may try one last frame with [`Outbox::write_last`].
    pub(crate) fn abort(&self) -> bool {
        let mut st = self.state.lock();
        st.closed = true;
        st.dropped = true;
        Self::drop_held(&mut st);
        if st.urgent_written == 0 {
            // A ping or pong already begun is finished; the rest go.
            st.urgent.clear();
        }
        self.wake(&st);
        let keep = if st.head_written > 0 { 1 } else { 0 };
        while st.queue.len() > keep {
            st.queue.pop_back();
        }
        st.queued = st
            .queue
            .front()
            .map_or(0, |c| c.bytes().len() - st.head_written);
        let free = !st.writing && st.queue.is_empty() && st.urgent.is_empty();
        st.writing |= free;
        free
    }

    /// Writes a final frame for a caller that got the writer role from
    /// [`Outbox::abort`]. One attempt, so give it a sink that does not wait.
    pub(crate) fn write_last(&self, sink: &mut impl Sink, frame: &[u8]) {
        // Best effort: the peer is being dropped whatever happens.
        let _ = sink.write(frame);
    }

    /// Writes until the queue is empty, the socket is full, or it fails.
    /// The caller holds the writer role; it is released unless `Stalled`.
    pub(super) fn write_loop(&self, sink: &mut impl Sink) -> Flushed {
        let mut progressed = false;
        loop {
            let (mut batch, mut skip) = {
                let mut st = self.state.lock();
                // (An empty queue inside a frame: its rest was dropped by
                // an abort; nothing will complete it, so do not wait.)
                let boundary = !st.mid_frame || st.queue.is_empty();
                if !st.urgent.is_empty() && (st.urgent_written > 0 || boundary) {
                    match self.write_urgent(st, sink) {
                        Ok(()) => continue,
                        Err(flushed) => return flushed,
                    }
                }
                if st.queue.is_empty() {
                    // What the sink still holds (a TLS session's unsent
                    // ciphertext; nothing for plain TCP) goes out first.
                    drop(st);
                    let flushed = sink.flush();
                    st = self.state.lock();
                    match flushed {
                        Ok(()) if st.queue.is_empty() && st.urgent.is_empty() => {
                            st.confirmed = st.written;
                            st.stalled_at = None;
                            st.writing = false;
                            self.wake(&st);
                            return Flushed::Done;
                        }
                        Ok(()) => {
                            st.confirmed = st.written;
                            continue;
                        }
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
            // Whether the last chunk written whole was a frame's header.
            let mut in_head = false;
            let result = loop {
                if batch.is_empty() {
                    break Ok(());
                }
                // With a ping or pong waiting, offer no more than the rest of
                // the current frame, so that the write can end where it may go.
                let to_boundary = self.urgent.load(Ordering::Acquire);
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let mut n = 0;
                for (i, chunk) in batch.iter().take(MAX_SLICES).enumerate() {
                    let bytes = chunk.bytes();
                    slices[i] = IoSlice::new(if i == 0 { &bytes[skip..] } else { bytes });
                    n += 1;
                    if to_boundary && !matches!(chunk, Chunk::Head(_)) {
                        break;
                    }
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
                            match batch.pop_front() {
                                Some(Chunk::Owned(v)) => {
                                    in_head = false;
                                    self.recycle(v);
                                }
                                Some(Chunk::Head(_)) => in_head = true,
                                _ => in_head = false,
                            }
                        }
                        if full {
                            break Err(io::ErrorKind::WouldBlock.into());
                        }
                        // A ping or pong is waiting: it goes at this frame boundary.
                        if skip == 0 && !in_head && self.urgent.load(Ordering::Acquire) {
                            break Ok(());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            // Whether what the sink accepted has all left it (TLS: whether
            // its records are on the socket); asked outside the lock. Asked
            // after a write that took nothing too: the sink may still hold
            // what an earlier write of this loop left in it.
            let holds = sink.holds();
            let mut st = self.state.lock();
            st.queued -= written.min(st.queued);
            st.written += written as u64;
            if !holds {
                st.confirmed = st.written;
            }
            if written > 0 {
                // Where the data stream stands; a write that took nothing
                // leaves it where the last one did (maybe right after a
                // header whose payload is still to come).
                st.mid_frame = skip > 0 || in_head;
            }
            progressed |= written > 0;
            if written > 0 {
                self.wake(&st);
            }
            let full = match result {
                Ok(()) => false,
                Err(e) if is_full(&e) => true,
                Err(e) => return self.fail(st, e),
            };
            if st.dropped {
                // Aborted while this batch was out of the queue: as `abort`
                // does, keep only the frame already begun.
                batch.truncate(usize::from(skip > 0));
                st.queued = batch.front().map_or(0, |c| c.bytes().len() - skip);
            }
            // Put the unwritten rest back in front of what arrived meanwhile:
            // that (usually nothing) moves behind it, not the rest (a stalled
            // socket's retry would otherwise move its whole backlog twice).
            batch.append(&mut st.queue);
            st.queue = batch;
            st.head_written = skip;
            if full {
                if progressed || st.stalled_at.is_none() {
                    st.stalled_at = Some(Instant::now());
                }
                return Flushed::Stalled;
            }
        }
    }

    /// Writes the waiting pings and pongs, one attempt, for the writer-role
    /// holder at a frame boundary. `Err` ends the write loop with its answer.
    fn write_urgent(
        &self,
        mut st: MutexGuard<'_, State>,
        sink: &mut impl Sink,
    ) -> Result<(), Flushed> {
        let urgent = std::mem::take(&mut st.urgent);
        let from = std::mem::take(&mut st.urgent_written);
        drop(st);
        let wrote = sink.write(&urgent[from..]);
        let mut st = self.state.lock();
        let n = match wrote {
            Ok(0) => return Err(self.fail(st, io::ErrorKind::WriteZero.into())),
            Ok(n) => n,
            Err(e) if is_full(&e) => 0,
            Err(e) => return Err(self.fail(st, e)),
        };
        if from + n == urgent.len() {
            if st.urgent.is_empty() {
                self.urgent.store(false, Ordering::Release);
                // Keep the buffer for the next ping.
                st.urgent = urgent;
                st.urgent.clear();
            }
            return Ok(());
        }
        // The rest goes first next time, before what was added meanwhile.
        let added = std::mem::replace(&mut st.urgent, urgent);
        st.urgent.extend_from_slice(&added);
        st.urgent_written = from + n;
        if st.stalled_at.is_none() || n > 0 {
            st.stalled_at = Some(Instant::now());
        }
        Err(Flushed::Stalled)
    }

    /// A failed write: the queue is dropped and the writer role released.
    pub(super) fn fail(&self, mut st: MutexGuard<'_, State>, e: io::Error) -> Flushed {
        st.queue.clear();
        st.queued = 0;
        st.closed = true;
        st.dropped = true;
        Self::drop_held(&mut st);
        st.urgent.clear();
        st.urgent_written = 0;
        st.writing = false;
        st.stalled_at = None;
        self.wake(&st);
        Flushed::Failed(e)
    }

    pub(super) fn recycle(&self, mut v: Vec<u8>) {
        if v.capacity() <= COALESCE_LIMIT {
            v.clear();
            let mut st = self.state.lock();
            if st.spare.capacity() < v.capacity() {
                st.spare = v;
            }
        }
    }
}
