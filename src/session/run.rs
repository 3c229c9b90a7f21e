//! The life of one open WebSocket connection on its own thread, after the
//! handshake: `on_open`, the read loop dispatching to hooks, and `on_close`
//! exactly once. Server and client connections both run here.
//!
//! The read loop: cork the outbox, dispatch every event already buffered,
//! uncork (the replies leave in one write; or with the next read's, when
//! that read brought only a few events and the next bytes already wait),
//! yield if this thread's turn is over (`turn.rs`), read. This thread is
//! the only one that writes blocking, to its own peer (up to
//! `write_timeout`): while it writes it does not read, which is TCP's
//! back-pressure (replies held for the next read are under 128 KiB). From
//! the end of the read loop `is_open()` is false and sends fail;
//! `on_close` follows, once, whatever ended it (a 1006 ending is recorded
//! as a cut-off).

use std::io;
use std::net::Shutdown;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::session::guard::{self, Panic};
use crate::session::turn::Turn;
use crate::transport::outbox::Flushed;
use crate::transport::Transport;
use crate::wire::reader::{Event, FrameReader};
use crate::{Connection, Error, Resource};

/// Runs a connection to its end. Returns the close code and reason that
/// `on_close` was given.
pub(crate) fn run(
    conn: &Connection,
    mut reader: FrameReader,
    hooks: &Resource,
    debug_on_error: bool,
) -> (u16, String) {
    let hub = &conn.inner.hub;
    hub.register(conn);
    log::debug!(
        "connection {} open: {} from {}",
        conn.id(),
        conn.path(),
        conn.peer_addr()
    );
    let s = Session {
        conn,
        hooks,
        debug_on_error,
    };
    if let Some(hook) = &hooks.on_open {
        s.call("on_open", || hook(conn));
    }
    let (code, reason) = s.read_loop(&mut reader);
    if conn.is_open() {
        // The peer went without a close handshake (1006): record it, so that
        // `is_open` is false and sends fail from now on.
        conn.inner.force_end(code, &reason);
    }
    s.linger();
    // Nothing more will be written: wake producers waiting for room. Only
    // a sole writer may end a TLS stream: nothing is encrypted after it.
    if conn.inner.outbox.abort() {
        conn.inner.stream.close_notify();
    }
    let _ = conn.inner.stream.shutdown(Shutdown::Write);
    hub.unregister(conn);
    hub.stats.closed(code);
    log::debug!("connection {} closed: {code} {reason}", conn.id());
    if let Some(hook) = &hooks.on_close {
        s.call("on_close", || hook(conn, code, &reason));
    }
    // What the peer still sends is read and dropped (`Stream::linger`), so
    // that closing sends no reset that would discard our last bytes.
    let linger = hub.close_timeout().min(LINGER_MAX);
    conn.inner.stream.linger(crate::deadline::after(linger));
    (code, reason)
}

/// A read that brought this many events already makes a batch of replies.
const HOLD_FEW: usize = 4;
/// Reads in a row at most whose replies wait for the next read's.
const HOLD_READS: u32 = 8;
/// Replies are held back again only while they are fewer bytes than this
/// (and there are some): past it a write spends far more on copying than
/// on the system call, and more held would only wait.
const HOLD_BYTES: usize = 64 * 1024;
/// The first time, replies under this are held, by a thread that takes
/// turns: one 64 KiB reply (never two) leaves with the next message's,
/// and the peer reads both at once, as from an event loop's 128 KiB write
/// buffer. Without turns (`yield_after(None)`), ten threads answering
/// large messages in pairs on one core served a few connections and kept
/// the others waiting (by hand: a p50 of 0.25 ms and a p99 of 9-23 ms;
/// bench/RESULTS.md).
const HOLD_FIRST: usize = 128 * 1024;

/// How long a closed connection's thread reads what the peer still sends
/// at most (`close_timeout`, if shorter).
const LINGER_MAX: std::time::Duration = std::time::Duration::from_secs(2);

struct Session<'a> {
    conn: &'a Connection,
    hooks: &'a Resource,
    debug_on_error: bool,
}

enum Step {
    /// Everything buffered was handled: this many events.
    More(usize),
    End(u16, String),
}

impl Session<'_> {
    fn read_loop(&self, reader: &mut FrameReader) -> (u16, String) {
        let inner = &self.conn.inner;
        let mut turn = Turn::new(inner.hub.yield_after(inner.stream.is_tls()), Instant::now());
        // Reads in a row whose replies are held back.
        let mut held = 0;
        loop {
            // Replies to everything this read brought in leave in one write
            // (other threads' sends meanwhile leave at once).
            inner.outbox.cork();
            let handled = match self.dispatch(reader) {
                Step::More(handled) => handled,
                Step::End(code, reason) => {
                    self.uncork();
                    return (code, reason);
                }
            };
            // While input streams in a message or two per read and more
            // already waits, the replies wait for it too and leave with
            // its own: one write for several reads, and the peer, answered
            // in batches, sends in batches (the next read cannot wait: bytes
            // are there).
            let most = if held == 0 && turn.taken() {
                HOLD_FIRST
            } else {
                HOLD_BYTES
            };
            if held < HOLD_READS
                && handled < HOLD_FEW
                && reader.streaming()
                && (1..most).contains(&inner.outbox.backlog())
                && !turn.due()
                && inner.stream.input_waiting()
            {
                held += 1;
            } else {
                held = 0;
                self.uncork();
            }
            // Between messages, nothing locked: where a busy thread gives
            // way to the others (session/turn.rs).
            let started = turn.before_read();
            let filled = reader.fill(&mut Transport::waiting(&inner.stream));
            turn.read_done(started);
            match filled {
                Ok(0) => {
                    if reader.buffered() > 0 && self.conn.is_open() {
                        self.error(&Error::Io(io::ErrorKind::UnexpectedEof.into()));
                    }
                    return self.ending_or(1006, "connection closed without a close frame");
                }
                Ok(_) => {
                    inner.last_seen.store(inner.hub.now(), Ordering::Relaxed);
                    if inner.ping_sent.swap(0, Ordering::Relaxed) != 0 {
                        // The keepalive was answered: the next one is due sooner.
                        if let Some(interval) = inner.hub.ping_interval() {
                            inner.hub.due_in(interval);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if self.conn.is_open() {
                        self.error(&Error::Io(e));
                    }
                    return self.ending_or(1006, "connection failed");
                }
            }
        }
    }

    /// Handles every complete event in the buffer.
    fn dispatch(&self, reader: &mut FrameReader) -> Step {
        let conn = self.conn;
        let mut handled = 0;
        loop {
            let event = match reader.next_event() {
                Ok(Some(event)) => event,
                Ok(None) => return Step::More(handled),
                Err(e) => {
                    let code = e.close_code();
                    let reason = e.to_string();
                    log::debug!("connection {}: {reason}", conn.id());
                    conn.inner.send_close(code, &reason);
                    self.error(&e);
                    return Step::End(code, reason);
                }
            };
            handled += 1;
            match event {
                Event::Message(msg) => {
                    log::trace!("connection {}: message of {} bytes", conn.id(), msg.len());
                    conn.inner.counts.received(msg.len());
                    if let Some(hook) = &self.hooks.on_message {
                        self.call("on_message", || hook(conn, msg));
                    }
                }
                Event::Ping(payload) => {
                    log::trace!("connection {}: ping", conn.id());
                    let _ = conn.push_frame(crate::wire::frame::OpCode::Pong, &payload, false);
                }
                Event::Pong(payload) => {
                    log::trace!("connection {}: pong", conn.id());
                    for on_pong in conn.take_pongs(&payload) {
                        self.call("on_pong", || on_pong(conn));
                    }
                }
                Event::Close(frame) => {
                    log::trace!("connection {}: close frame {frame:?}", conn.id());
                    if let Some((code, reason)) = conn.inner.ending.lock().sent.clone() {
                        return Step::End(code, reason);
                    }
                    let (code, reason) = frame.unwrap_or((1005, String::new()));
                    conn.inner.reply_close(code);
                    return Step::End(code, reason);
                }
            }
        }
    }

    /// Ends the read loop's cork: the replies it held leave now.
    fn uncork(&self) {
        let inner = &self.conn.inner;
        self.flush_own(inner.outbox.uncork(&mut Transport::waiting(&inner.stream)));
    }

    /// Finishes a flush on the connection's own thread. Unlike other senders,
    /// this thread may wait for its own peer: while it writes it does not
    /// read, which is TCP's own back-pressure. Its writes block (the socket's
    /// send timeout is the write timeout, and a cut-off's `shutdown` wakes
    /// them); after `write_timeout` without progress it cuts the peer off as
    /// too slow.
    fn flush_own(&self, mut flushed: Flushed) {
        let inner = &self.conn.inner;
        while let Flushed::Stalled = flushed {
            if inner.outbox.stalled_for() >= inner.hub.write_timeout() {
                inner.force_end(1008, "client too slow: write timeout");
                return;
            }
            flushed = inner.resume_waiting();
        }
        inner.handle_flushed(flushed);
    }

    /// The reason we ended it for, if we did; else the given one.
    fn ending_or(&self, code: u16, reason: &str) -> (u16, String) {
        let e = self.conn.inner.ending.lock();
        e.forced
            .clone()
            .or_else(|| e.sent.clone())
            .unwrap_or_else(|| (code, reason.to_owned()))
    }

    /// Gives queued bytes (the close frame) a bounded chance to leave.
    /// A cut-off drops the queue, which ends the wait.
    fn linger(&self) {
        let inner = &self.conn.inner;
        let deadline = crate::deadline::after(inner.hub.close_timeout());
        inner.outbox.wait_drained(deadline);
    }

    /// Runs a hook; a panic goes to `on_error`, then to `debug_on_error`'s policy.
    fn call(&self, name: &str, f: impl FnOnce()) {
        if let Err(panic) = guard::run(self.debug_on_error, f) {
            self.panicked(name, panic);
        }
    }

    fn panicked(&self, name: &str, panic: Panic) {
        let Panic { message, location } = panic;
        self.error(&Error::HandlerPanic(message.clone()));
        if self.debug_on_error {
            log::error!(
                "connection {}: {name} hook panicked at {location}: {message}",
                self.conn.id()
            );
            self.conn.inner.send_close(1011, "internal error");
        } else {
            log::debug!(
                "connection {}: {name} hook panicked at {location}: {message}",
                self.conn.id()
            );
        }
    }

    /// Tells `on_error`; a panic there is logged, never propagated.
    fn error(&self, err: &Error) {
        if let Some(hook) = &self.hooks.on_error {
            if let Err(p) = guard::run(self.debug_on_error, || hook(self.conn, err)) {
                log::error!(
                    "connection {}: on_error hook panicked at {}: {}",
                    self.conn.id(),
                    p.location,
                    p.message
                );
            }
        }
    }
}
