//! The writer role: who writes, and the write loop. One thread at a time
//! holds the role; it writes until the queue is empty, the socket is full
//! (then the role passes to the housekeeper: [`Flushed::Stalled`]) or the
//! socket fails. `abort` takes the role for a last frame.

use std::io::{self, IoSlice, Write};
use std::thread;
use std::time::Instant;

use super::{Chunk, Flushed, Outbox, State, COALESCE_LIMIT, CORK_LIMIT, MAX_SLICES};
use crate::transport::socket::is_full;

impl Outbox {
    pub(super) fn write_if_free(
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
    pub(super) fn write_loop(&self, sink: &mut impl Write) -> Flushed {
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
    pub(super) fn fail(&self, mut st: parking_lot::MutexGuard<'_, State>, e: io::Error) -> Flushed {
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
