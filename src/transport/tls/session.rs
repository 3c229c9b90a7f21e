//! One connection's TLS state, as the transport reads and writes through it.
//!
//! # Locking (architecture invariant)
//!
//! rustls keeps one state for both directions, while the connection's own
//! thread sits blocked reading and other threads write. The state's lock
//! (`state`) is never held across a socket call that can wait for the peer,
//! except by the one thread nobody else could be waiting on:
//!
//! - The reader reads ciphertext from the socket holding only `reader`, its
//!   own lock (only the connection's own thread reads), then locks the state
//!   to hand the bytes to rustls and take plaintext out.
//! - A writer holds `writer`, locks the state, encrypts at most [`STEP`]
//!   bytes of plaintext at a time and writes rustls's records straight from
//!   its buffers (one `writev`), by the plain socket's rule: `MSG_DONTWAIT`
//!   for every thread, a blocking write (bounded by the send timeout) only
//!   on the connection's own thread. So the state is held across a write
//!   that waits only by the connection's own thread, which is the reader:
//!   the only other threads that want the state are writers, and they wait
//!   for `writer` anyway. What the socket does not take stays in rustls, in
//!   order, ahead of anything encrypted later; only the outbox's
//!   writer-role holder writes, so `writer` is not contended, and it makes
//!   it impossible for two writers to interleave records anyway.
//! - Lock order: `writer`, then `state`; `reader`, then `state`. A writer
//!   never takes `reader`; `trim` only try-locks it.
//! - Unsent records make the transport's `flush` answer `WouldBlock`, so the
//!   outbox keeps the writer role (it hands it to the housekeeper) until
//!   they are out: a stalled TLS socket is finished, or cut off with 1008 at
//!   its write timeout, exactly like a plain one. Progress is counted in
//!   plaintext (what rustls took), so a retry that sends only part of one
//!   step's records counts as none.
//! - Records rustls makes while reading (a key update, an alert) wait in the
//!   state and leave ahead of the next write.
//!
//! # Buffers
//!
//! A quiet connection (two reads under 1 KiB in a row) waits on a 1 KiB
//! stack buffer, after letting rustls shrink its record buffer to 4 KiB
//! (its floor) and dropping ours. A busy one reads 17 KiB (a whole record)
//! at a time into a heap buffer it keeps; when its socket runs dry it waits
//! in `peek`, holding no lock, so that the keepalive's `trim` can free
//! that buffer and shrink rustls's if the wait is long. Writes keep no
//! buffer of ours: records go from rustls's to the socket.
//!
//! The copies we make (received ciphertext into rustls, plaintext out of
//! it) go through [`copy`], which avoids a slow path of glibc's `memcpy` on
//! some AMD CPUs. rustls's own copy of each record's plaintext hits that
//! path on every record of every connection unless the block it lands in
//! moves: a busy connection holds rustls's first freed one
//! ([`Session::plug`]).
//!
//! A broadcast is still encoded once; only encryption is per connection.
//! The handshake runs on the connection's own thread within the handshake
//! timeout. What an idle TLS connection costs beyond a plain one (rustls's
//! state, the handshake's stack, glibc's per-thread cache) is measured in
//! `bench/README.md` (`wss-idle`).

#[cfg(all(test, loom))]
mod loom;
#[cfg(all(test, not(loom)))]
mod tests;

use std::fmt;
use std::io::{self, BufRead, IoSlice, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use crate::sync::Mutex;
use crate::transport::socket::is_full;
use crate::transport::socket::Wire;

/// Ciphertext a busy connection reads at once (into a heap buffer it
/// keeps): a whole record of the largest size.
const READ_CHUNK: usize = 17 * 1024;
/// Ciphertext a quiet connection reads at once (on the stack): its thread
/// waits in `read` touching no more stack than this, and no heap. Two reads
/// shorter than this in a row make a busy connection quiet.
const READ_SMALL: usize = 1024;
/// A freed plaintext record this long or longer is [`Session::plug`]ged
/// (shorter ones glibc copies without `rep movsb`).
const PLUG_FROM: usize = 4096;
/// Plaintext encrypted at once before the ciphertext is written.
const STEP: usize = 64 * 1024;

/// One connection's TLS state; see the module documentation for its locks.
pub(crate) struct Session {
    /// The rustls state, its unsent records included.
    state: Mutex<rustls::Connection>,
    /// The writer's lock: whoever writes records to the socket holds it
    /// (the outbox's writer-role holder, the handshake, `close_notify`).
    writer: Mutex<()>,
    /// The reader's own state (only the connection's thread reads).
    reader: Mutex<ReadSide>,
}

#[derive(Default)]
struct ReadSide {
    /// Ciphertext read from the socket; `buf[at..end]` is what rustls
    /// could not take yet (it still held plaintext). A busy connection
    /// reads into it ([`READ_CHUNK`] bytes, kept from read to read).
    buf: Vec<u8>,
    at: usize,
    end: usize,
    /// The last two reads' lengths: a connection is busy while either
    /// reached [`READ_SMALL`], quiet after two shorter ones in a row.
    last: usize,
    prev: usize,
    /// Holds the heap block rustls copied a large record's plaintext into,
    /// once rustls has freed it, so that the next record's plaintext goes
    /// elsewhere; see [`Session::plug`]. Kept while the connection is busy.
    plug: Vec<u8>,
}

impl ReadSide {
    fn busy(&self) -> bool {
        self.last.max(self.prev) >= READ_SMALL
    }

    fn record(&mut self, n: usize) {
        (self.prev, self.last) = (self.last, n);
    }
}

/// A reader with nothing to give: lets rustls shrink its buffer for
/// incoming records (4 KiB while it holds no partial record) without
/// taking it for the end of the stream.
struct Nothing;

impl Read for Nothing {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

/// Copies `src` to `dst` (of the same length). glibc 2.36 copies more than
/// 2,112 bytes with `rep movsb` on CPUs with FSRM, which on some AMD CPUs
/// runs at a twentieth of its speed when the destination lies a few dozen
/// bytes past the source, modulo 4 KiB (this project's EPYC: 2 against
/// 80 GB/s for 16 KiB, 1 to 31 bytes past; `bench/src/bin/memcpy.rs`).
/// Buffers of similar sizes from the allocator land at such distances
/// often, so copies within 63 bytes of that go 2 KiB at a time, below
/// glibc's threshold. (Current glibc no longer uses `rep movsb` there on
/// AMD CPUs: glibc bug 30994.)
fn copy(dst: &mut [u8], src: &[u8]) {
    const PIECE: usize = 2048;
    let apart = (dst.as_ptr() as usize).wrapping_sub(src.as_ptr() as usize) % 4096;
    if src.len() <= PIECE || !(1..64).contains(&apart) {
        dst.copy_from_slice(src);
        return;
    }
    for (d, s) in dst.chunks_mut(PIECE).zip(src.chunks(PIECE)) {
        d.copy_from_slice(s);
    }
}

/// Received ciphertext as rustls reads it, by [`copy`].
struct Copied<'a>(&'a [u8]);

impl Read for Copied<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.0.len());
        let (now, later) = self.0.split_at(n);
        copy(&mut buf[..n], now);
        self.0 = later;
        Ok(n)
    }
}

/// The socket as rustls writes its records to it: by the transport's rule
/// ([`Wire::send`]), noting a short write.
struct Socket<'a, W: ?Sized> {
    tcp: &'a W,
    wait: bool,
    short: bool,
}

impl<W: Wire + ?Sized> Write for Socket<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = self.tcp.send(bufs, self.wait)?;
        self.short |= n < bufs.iter().map(|b| b.len()).sum::<usize>();
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes rustls's records to the socket, straight from rustls's buffers
/// (one `writev` for up to 64 records); `Ok(false)` when the socket is
/// full, what it did not take staying in rustls, in order. A short write
/// counts as full: a second one would only say so (or, waiting, wait out
/// the send timeout again).
fn send_records(
    state: &mut rustls::Connection,
    tcp: &(impl Wire + ?Sized),
    wait: bool,
) -> io::Result<bool> {
    let mut socket = Socket {
        tcp,
        wait,
        short: false,
    };
    while state.wants_write() {
        match state.write_tls(&mut socket) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) if socket.short => return Ok(false),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_full(&e) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn too_long() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the TLS handshake took too long")
}

impl Session {
    pub(super) fn new(mut conn: rustls::Connection) -> Session {
        // We bound what we encrypt at once (STEP) and send every record at
        // once; rustls's own limit would only make it refuse plaintext.
        conn.set_buffer_limit(None);
        Session {
            state: Mutex::new(conn),
            writer: Mutex::new(()),
            reader: Mutex::new(ReadSide::default()),
        }
    }

    /// Runs the handshake on the calling thread (the connection's own),
    /// reading and writing with the socket's timeouts set to what is left
    /// before `deadline`.
    pub(crate) fn handshake(&self, tcp: &TcpStream, deadline: Instant) -> io::Result<()> {
        let left = || {
            let left = deadline.saturating_duration_since(Instant::now());
            match left.is_zero() {
                true => Err(too_long()),
                false => Ok(left),
            }
        };
        // rustls takes at most 4 KiB more at a time during a handshake.
        let mut raw = vec![0u8; 4096];
        loop {
            {
                let _writer = self.writer.lock();
                let mut state = self.state.lock();
                if state.wants_write() {
                    tcp.set_write_timeout(Some(left()?))?;
                    if !send_records(&mut state, tcp, true)? {
                        return Err(too_long());
                    }
                }
                if !state.is_handshaking() {
                    return Ok(());
                }
            }
            tcp.set_read_timeout(Some(left()?))?;
            let n = match (&*tcp).read(&mut raw) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed the connection during the TLS handshake",
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_full(&e) => return Err(too_long()),
                Err(e) => return Err(e),
            };
            // The client's first request may come with its last flight.
            let fed = self.feed_keeping(&mut self.reader.lock(), &raw[..n]);
            if let Err(e) = fed {
                // Tell the peer why (an alert), best effort and without waiting.
                let _writer = self.writer.lock();
                let _ = send_records(&mut self.state.lock(), tcp, false);
                return Err(e);
            }
        }
    }

    /// Copies the plaintext rustls holds into `buf` (by [`copy`]); like
    /// rustls's own `read`, `WouldBlock` when it holds none. Also returns
    /// the length of the largest record it emptied (rustls then freed it).
    fn take_plaintext(&self, buf: &mut [u8]) -> io::Result<(usize, usize)> {
        let mut state = self.state.lock();
        let mut reader = state.reader();
        let (mut n, mut freed) = (0, 0);
        while n < buf.len() {
            let chunk = match reader.fill_buf() {
                Ok([]) => break,
                Ok(chunk) => chunk,
                // No more for now (or the end): what was copied first.
                Err(_) if n > 0 => break,
                Err(e) => return Err(e),
            };
            let k = chunk.len().min(buf.len() - n);
            copy(&mut buf[n..n + k], &chunk[..k]);
            if k == chunk.len() {
                freed = freed.max(k);
            }
            reader.consume(k);
            n += k;
        }
        Ok((n, freed))
    }

    /// Takes the heap block rustls just freed (a record's plaintext of
    /// `len` bytes) and keeps it, the first time on a busy connection.
    ///
    /// rustls copies each record's plaintext out of its buffer for incoming
    /// records into a fresh block, and with glibc's arena per thread every
    /// connection thread lays its blocks out alike: that buffer (a `Vec` of
    /// 32 KiB) and then the plaintext's block, which starts 11 bytes past
    /// the record's plaintext modulo 4 KiB: the case [`copy`] avoids for
    /// our own copies, where this CPU's `rep movsb` copies at a twentieth
    /// of its speed (bench/RESULTS.md, "rustls's plaintext copy"). Holding
    /// that block moves every later record's elsewhere.
    fn plug(&self, len: usize) {
        let mut side = self.reader.lock();
        if side.plug.capacity() == 0 {
            side.plug = Vec::with_capacity(len);
        }
    }

    /// Hands ciphertext to rustls (under the state lock) until it holds
    /// plaintext; returns how much it took. An empty `bytes` tells rustls
    /// the socket ended.
    fn feed(&self, bytes: &[u8]) -> io::Result<usize> {
        let len = bytes.len();
        let mut bytes = Copied(bytes);
        let mut state = self.state.lock();
        loop {
            let k = state.read_tls(&mut bytes)?;
            let io = state.process_new_packets().map_err(tls_error)?;
            if k == 0 {
                // The end, or after `close_notify`: nothing more is read.
                return Ok(len);
            }
            if bytes.0.is_empty() || io.plaintext_bytes_to_read() > 0 {
                return Ok(len - bytes.0.len());
            }
        }
    }

    /// [`feed`](Self::feed)s `fresh`, read into a buffer of the caller's,
    /// keeping what rustls did not take in `side`.
    fn feed_keeping(&self, side: &mut ReadSide, fresh: &[u8]) -> io::Result<()> {
        let k = self.feed(fresh)?;
        if k < fresh.len() {
            side.buf.clear();
            side.buf.extend_from_slice(&fresh[k..]);
            (side.at, side.end) = (0, side.buf.len());
        }
        Ok(())
    }

    /// [`feed`](Self::feed)s what `side` holds.
    fn feed_held(&self, side: &mut ReadSide) -> io::Result<()> {
        side.at += self.feed(&side.buf[side.at..side.end])?;
        Ok(())
    }

    /// Reads plaintext: takes what rustls holds, else reads the socket
    /// (holding no lock but the reader's own), feeds rustls and tries
    /// again. An end of the socket without TLS's `close_notify` reads as an
    /// ordinary end: the WebSocket close handshake (or HTTP's length) says
    /// whether anything was cut short.
    ///
    /// The socket's read timeout, if set, bounds the whole call as it bounds
    /// a plain read (`WouldBlock` once it has passed), however many socket
    /// reads a record takes to arrive: see [`Budget`].
    pub(crate) fn read(&self, tcp: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut budget = Budget::new(tcp);
        loop {
            match self.take_plaintext(buf) {
                Ok((n, freed)) => {
                    if freed >= PLUG_FROM {
                        self.plug(freed);
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            // The reader's lock is the reader's alone: holding it while
            // blocked on the socket keeps nobody waiting but `trim`.
            let mut side = self.reader.lock();
            if side.at < side.end {
                self.feed_held(&mut side)?;
            } else if side.busy() {
                if side.last < READ_CHUNK {
                    // The socket may be dry: wait without holding the
                    // buffer, which `trim` frees if the wait is long.
                    drop(side);
                    budget.before_wait()?;
                    tcp.peek(&mut [0u8; 1])?;
                    side = self.reader.lock();
                } else {
                    budget.before_wait()?;
                }
                // After `peek`, this read finds bytes waiting.
                side.buf.resize(READ_CHUNK, 0);
                let n = (&*tcp).read(&mut side.buf)?;
                side.record(n);
                // Nothing read (n == 0) hands rustls the end of the stream.
                (side.at, side.end) = (0, n);
                self.feed_held(&mut side)?;
            } else {
                // Quiet, maybe for hours: first let rustls give back what
                // its buffer grew to for the last records, drop ours, and
                // wait on the stack.
                let _ = self.state.lock().read_tls(&mut Nothing);
                side.buf = Vec::new();
                side.plug = Vec::new();
                let mut raw = [0u8; READ_SMALL];
                budget.before_wait()?;
                let n = (&*tcp).read(&mut raw)?;
                side.record(n);
                self.feed_keeping(&mut side, &raw[..n])?;
            }
        }
    }

    /// Frees what a connection gone quiet (its keepalive ping is due) holds
    /// for reading: our ciphertext buffer and held block, and rustls's
    /// record buffer down to its 4 KiB floor. Skipped while the reader
    /// reads.
    pub(crate) fn trim(&self) {
        let Some(mut side) = self.reader.try_lock() else {
            return;
        };
        if side.at == side.end {
            *side = ReadSide::default();
            // Never waits: a writer may hold the state through a waiting
            // write, and the housekeeper must not wait on one connection.
            if let Some(mut state) = self.state.try_lock() {
                let _ = state.read_tls(&mut Nothing);
            }
        }
    }

    /// Encrypts `bufs` (a step at a time) and writes the records; returns
    /// the plaintext taken. Records held from an earlier write go first;
    /// while some are still held, nothing new is taken (`WouldBlock`).
    pub(crate) fn write_vectored(
        &self,
        tcp: &(impl Wire + ?Sized),
        bufs: &[IoSlice<'_>],
        wait: bool,
    ) -> io::Result<usize> {
        let _writer = self.writer.lock();
        let mut state = self.state.lock();
        if !send_records(&mut state, tcp, wait)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut taken = 0;
        while taken < total {
            let mut window = [IoSlice::new(&[]); 16];
            let n = window_at(bufs, taken, &mut window);
            let step = state.writer().write_vectored(&window[..n])?;
            if step == 0 {
                break;
            }
            taken += step;
            if !send_records(&mut state, tcp, wait)? {
                break;
            }
        }
        Ok(taken)
    }

    /// Whether rustls holds records the socket has not taken (asked by the
    /// writer-role holder, the only writer).
    pub(crate) fn holds(&self) -> bool {
        self.state.lock().wants_write()
    }

    /// Sends TLS's `close_notify` before the socket is shut: best effort,
    /// never waiting, and not at all while a writer is busy (its records
    /// must not be cut into).
    pub(crate) fn close_notify(&self, tcp: &(impl Wire + ?Sized)) {
        let Some(_writer) = self.writer.try_lock() else {
            return;
        };
        let mut state = self.state.lock();
        state.send_close_notify();
        let _ = send_records(&mut state, tcp, false);
    }

    /// Writes the records held (and any rustls made meanwhile);
    /// `WouldBlock` while the socket does not take them all.
    pub(crate) fn flush(&self, tcp: &(impl Wire + ?Sized), wait: bool) -> io::Result<()> {
        let _writer = self.writer.lock();
        match send_records(&mut self.state.lock(), tcp, wait)? {
            true => Ok(()),
            false => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// What is left of the socket's read timeout for one [`Session::read`]: a
/// record trickled a byte at a time takes many socket reads, and each would
/// otherwise wait the whole timeout again. The first wait runs with the
/// timeout as the caller set it (no system call added to the common case,
/// a record that arrives in one read);
/// before each later one the timeout is lowered to what is left, and put
/// back when the read returns.
struct Budget<'a> {
    tcp: &'a TcpStream,
    /// When the first wait began.
    started: Option<Instant>,
    /// The caller's timeout, once read from the socket.
    set: Option<Option<std::time::Duration>>,
    lowered: bool,
}

impl<'a> Budget<'a> {
    fn new(tcp: &'a TcpStream) -> Budget<'a> {
        Budget {
            tcp,
            started: None,
            set: None,
            lowered: false,
        }
    }

    /// Before a socket call that may wait: `WouldBlock` (as a plain socket
    /// says its timeout passed) when nothing is left.
    fn before_wait(&mut self) -> io::Result<()> {
        let Some(started) = self.started else {
            self.started = Some(Instant::now());
            return Ok(());
        };
        let set = match self.set {
            Some(set) => set,
            None => *self.set.insert(self.tcp.read_timeout()?),
        };
        let Some(timeout) = set else {
            return Ok(());
        };
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.tcp.set_read_timeout(Some(left))?;
        self.lowered = true;
        Ok(())
    }
}

impl Drop for Budget<'_> {
    fn drop(&mut self) {
        if let (true, Some(set)) = (self.lowered, self.set) {
            let _ = self.tcp.set_read_timeout(set);
        }
    }
}

/// Fills `window` with slices of `bufs` from byte `from`, at most [`STEP`]
/// bytes in all; returns how many slices it used.
fn window_at<'a>(bufs: &'a [IoSlice<'_>], mut from: usize, window: &mut [IoSlice<'a>]) -> usize {
    let mut n = 0;
    let mut room = STEP;
    for b in bufs {
        if n == window.len() || room == 0 {
            break;
        }
        let b: &'a [u8] = b;
        if from >= b.len() {
            from -= b.len();
            continue;
        }
        let part = &b[from..];
        from = 0;
        let part = &part[..part.len().min(room)];
        room -= part.len();
        window[n] = IoSlice::new(part);
        n += 1;
    }
    n
}
