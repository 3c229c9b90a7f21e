//! The deflate stage on the send path (feature `deflate`): compressing a
//! message and queueing it as one step, under the compressor's lock, so
//! that compression order is wire order (with context takeover, a message
//! may refer to the one before it).
//!
//! The compressor is never held while waiting. A push that finds the
//! backlog full gives the message up: the compressor forgets it (the peer
//! will not see it, so the next message must not refer to it), the lock is
//! released, and a producer willing to wait waits for room without it, then
//! compresses again. So one sender's `send_timeout` never holds up another
//! sender's `send` (`loom.rs` checks it).

use std::time::Instant;

use crate::session::connection::ZERO_COPY_MIN;
use crate::sync::Mutex;
use crate::transport::outbox::{Admit, Flushed, Lane, Outbox, PushError, Sink};
use crate::wire::deflate::Compressor;
use crate::wire::frame::{self, OpCode};

#[cfg(all(test, loom))]
mod loom;

/// Why [`send`] did not queue the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotSent<E> {
    /// The outbox refused it (closed, or full without a deadline).
    Refused(PushError),
    /// The wait for room failed (the caller's own answer).
    Waited(E),
}

/// Compresses `payload` and queues it as one frame, waiting for room (with
/// `make_room`, never under the lock) while a deadline allows. `None` when
/// the compressor does not want it (too short): it goes the plain way.
/// `mask` makes a client's frame.
#[allow(clippy::too_many_arguments)] // because each is one piece of one step.
pub(crate) fn send<W: Sink, E>(
    compressor: &Mutex<Compressor>,
    outbox: &Outbox,
    sink: impl Fn() -> W,
    op: OpCode,
    payload: &[u8],
    mask: impl Fn() -> Option<[u8; 4]>,
    deadline: Option<Instant>,
    make_room: impl Fn(usize, Instant) -> Result<(), E>,
) -> Option<Result<Flushed, NotSent<E>>> {
    let admit = Admit::data(deadline);
    loop {
        let mut z = compressor.lock();
        if !z.wants(payload.len()) {
            return None;
        }
        let mut body = z.compress(payload)?;
        let mask = mask();
        let mut header = Vec::with_capacity(frame::MAX_HEADER_LEN);
        frame::encode_header(&mut header, true, op, body.len(), mask);
        frame::set_rsv1(&mut header);
        if let Some(m) = mask {
            frame::apply_mask(&mut body, m, 0);
        }
        let len = header.len() + body.len();
        let pushed = if body.len() < ZERO_COPY_MIN {
            outbox.push_with(&mut sink(), len, admit, Lane::Data, |v| {
                v.extend_from_slice(&header);
                v.extend_from_slice(&body);
            })
        } else {
            let pushed = outbox.push_owned(&mut sink(), &header, body, admit, Lane::Data);
            pushed.map_err(|(e, _)| e)
        };
        if pushed.is_err() {
            z.reset();
        }
        drop(z);
        match (pushed, deadline) {
            (Ok(flushed), _) => return Some(Ok(flushed)),
            (Err(PushError::TooSlow), Some(deadline)) => {
                if let Err(e) = make_room(len, deadline) {
                    return Some(Err(NotSent::Waited(e)));
                }
            }
            (Err(e), _) => return Some(Err(NotSent::Refused(e))),
        }
    }
}
