//! How a data message is queued on a connection: the plain way (one
//! frame encoded into the outbox), a large server message from its own
//! buffer (no copy), or compressed (feature `deflate`, `compress.rs`); and
//! what a full backlog means: a producer with a deadline waits for room,
//! one without is refused and the peer closed as too slow (1008).

use std::time::Instant;

use crate::session::connection::{Refused, ZERO_COPY_MIN};
use crate::transport::outbox::{Admit, Lane, PushError};
use crate::wire::frame::{self, OpCode};
use crate::wire::reader::Role;
use crate::{Connection, Message};

impl Connection {
    /// Queues a data message; with a deadline, waits for room until then.
    pub(crate) fn send_until(
        &self,
        msg: Message,
        deadline: Option<Instant>,
    ) -> Result<(), (Refused, Message)> {
        let op = match msg {
            Message::Text(_) => OpCode::Text,
            Message::Binary(_) => OpCode::Binary,
        };
        #[cfg(feature = "deflate")]
        if let Some(sent) = self.push_compressed(op, msg.as_bytes(), deadline) {
            return sent.map_err(|why| (why, msg));
        }
        if msg.len() >= ZERO_COPY_MIN && self.inner.role == Role::Server {
            return self.send_owned(op, msg, deadline);
        }
        match self.push_data(op, msg.as_bytes(), deadline) {
            Ok(()) => Ok(()),
            Err(why) => Err((why, msg)),
        }
    }

    /// Queues a large message's own buffer behind its header, without a copy.
    fn send_owned(
        &self,
        op: OpCode,
        msg: Message,
        deadline: Option<Instant>,
    ) -> Result<(), (Refused, Message)> {
        let (text, mut payload) = match msg {
            Message::Text(s) => (true, s.into_bytes()),
            Message::Binary(b) => (false, b),
        };
        let mut header = Vec::with_capacity(frame::MAX_HEADER_LEN);
        frame::encode_header(&mut header, true, op, payload.len(), None);
        let sent = payload.len();
        let why = match self.push_owned_until(&header, payload, Lane::Data, deadline) {
            Ok(()) => {
                self.inner.counts.sent(sent, &self.inner.hub.stats);
                return Ok(());
            }
            Err((why, given_back)) => {
                payload = given_back;
                why
            }
        };
        let msg = if text {
            // Because the payload came from a String, it is valid UTF-8.
            Message::Text(String::from_utf8(payload).unwrap_or_default())
        } else {
            Message::Binary(payload)
        };
        Err((why, msg))
    }

    /// Queues a frame header and its payload (no copy); with a deadline,
    /// waits for room until then. On refusal the payload is given back.
    pub(crate) fn push_owned_until(
        &self,
        header: &[u8],
        mut payload: Vec<u8>,
        lane: Lane,
        deadline: Option<Instant>,
    ) -> Result<(), (Refused, Vec<u8>)> {
        let len = header.len() + payload.len();
        let admit = Admit::data(deadline);
        loop {
            let pushed = self.inner.outbox.push_owned(
                &mut self.inner.nowait(),
                header,
                payload,
                admit,
                lane,
            );
            match pushed {
                Ok(flushed) => {
                    self.inner.handle_flushed(flushed);
                    return Ok(());
                }
                Err((e, given_back)) => {
                    payload = given_back;
                    let waited = match (e, deadline) {
                        (PushError::TooSlow, Some(deadline)) => {
                            self.wait_for_room(len, lane, deadline)
                        }
                        (e, _) => Err(self.refused(e)),
                    };
                    if let Err(why) = waited {
                        return Err((why, payload));
                    }
                }
            }
        }
    }

    /// Queues one data frame; with a deadline, waits for room until then.
    pub(crate) fn push_data(
        &self,
        op: OpCode,
        payload: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), Refused> {
        #[cfg(feature = "deflate")]
        if let Some(sent) = self.push_compressed(op, payload, deadline) {
            return sent;
        }
        let mask = (self.inner.role == Role::Client).then(frame::random_mask);
        let len = frame::encoded_len(payload.len(), mask.is_some());
        self.push_encoded(len, deadline, |v| frame::encode(v, op, payload, mask))?;
        self.inner.counts.sent(payload.len(), &self.inner.hub.stats);
        Ok(())
    }

    /// Queues one data frame that `encode` appends (`len` bytes); with a
    /// deadline, waits for room until then.
    fn push_encoded(
        &self,
        len: usize,
        deadline: Option<Instant>,
        encode: impl Fn(&mut Vec<u8>),
    ) -> Result<(), Refused> {
        let admit = Admit::data(deadline);
        loop {
            let pushed = self.inner.outbox.push_with(
                &mut self.inner.nowait(),
                len,
                admit,
                Lane::Data,
                &encode,
            );
            match (pushed, deadline) {
                (Err(PushError::TooSlow), Some(deadline)) => {
                    self.wait_for_room(len, Lane::Data, deadline)?
                }
                (pushed, _) => return self.after_push(pushed).map_err(|_| Refused::Closed),
            }
        }
    }

    /// Compresses and queues a message when the connection compresses and
    /// the message is long enough (`session/compress.rs`); `None` when it
    /// goes the plain way.
    #[cfg(feature = "deflate")]
    fn push_compressed(
        &self,
        op: OpCode,
        payload: &[u8],
        deadline: Option<Instant>,
    ) -> Option<Result<(), Refused>> {
        use crate::session::compress::{self, NotSent};
        let inner = &self.inner;
        let sent = compress::send(
            inner.compressor.as_ref()?,
            &inner.outbox,
            || inner.nowait(),
            op,
            payload,
            || (inner.role == Role::Client).then(frame::random_mask),
            deadline,
            |len, deadline| self.wait_for_room(len, Lane::Data, deadline),
        )?;
        Some(match sent {
            Ok(flushed) => {
                inner.handle_flushed(flushed);
                inner.counts.sent(payload.len(), &inner.hub.stats);
                Ok(())
            }
            Err(NotSent::Waited(why)) => Err(why),
            Err(NotSent::Refused(e)) => Err(self.refused(e)),
        })
    }

    /// A refused push that will not wait: a full backlog closes the connection.
    pub(crate) fn refused(&self, e: PushError) -> Refused {
        if e == PushError::TooSlow {
            self.inner.force_end(1008, "client too slow: backlog full");
        }
        Refused::Closed
    }

    /// Waits until a push of `len` bytes may fit, or `deadline`. What is
    /// queued is written first (the connection's own thread may have held it
    /// back), so that some writer is at work while we wait.
    pub(crate) fn wait_for_room(
        &self,
        len: usize,
        lane: Lane,
        deadline: Instant,
    ) -> Result<(), Refused> {
        if Instant::now() >= deadline {
            return Err(Refused::TimedOut);
        }
        let inner = &self.inner;
        inner.handle_flushed(inner.outbox.kick(&mut inner.nowait()));
        inner.outbox.wait_for_room(len, lane, deadline);
        Ok(())
    }
}
