//! One message written piece by piece: [`MessageWriter`], from
//! [`Connection::stream_binary`] and [`Connection::stream_text`].
//!
//! Each full buffer becomes a fragment (a frame without FIN); `finish` (or
//! drop) sends the last one. While the stream is open, the outbox holds other
//! data messages to the connection aside and queues them after its final
//! fragment, and control frames still go out between fragments (RFC 6455,
//! section 5.4).

use std::fmt;
use std::io::{self, Write};
use std::time::Instant;

use crate::session::connection::{deadline_after, Refused};
use crate::transport::outbox::{Lane, PushError};
use crate::wire::frame::{self, OpCode};
use crate::wire::reader::Role;
use crate::{Connection, Error};

/// Bytes buffered before they go out as one fragment.
const FRAGMENT: usize = 64 << 10;

/// Writes one message in fragments; see [`Connection::stream_binary`].
///
/// Implements [`std::io::Write`]: `write` buffers and sends a fragment each
/// time 64 KiB have gathered, waiting (like [`Connection::send_timeout`],
/// up to [`Config::write_timeout`](crate::Config::write_timeout)) while the
/// backlog has no room; `flush` sends what is buffered as a fragment.
/// [`MessageWriter::finish`] ends the message; dropping the writer does the
/// same, ignoring errors.
pub struct MessageWriter {
    conn: Connection,
    text: bool,
    /// The first fragment has gone out (the rest are continuations).
    started: bool,
    buf: Vec<u8>,
    /// For text: how much of `buf` is known to be whole, valid UTF-8 (an
    /// incomplete character at the end waits for the next write).
    checked: usize,
    /// The final fragment went out, or the stream failed.
    done: bool,
}

impl fmt::Debug for MessageWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageWriter")
            .field("connection", &self.conn.id())
            .field("text", &self.text)
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl MessageWriter {
    pub(crate) fn open(conn: &Connection, text: bool) -> Result<MessageWriter, Error> {
        let deadline = deadline_after(conn.inner.hub.write_timeout());
        match conn.inner.outbox.open_stream(deadline) {
            Ok(()) => {}
            Err(PushError::Closed | PushError::Held) => return Err(Error::Closed),
            Err(PushError::TooSlow) => {
                return Err(Error::Timeout("another streamed message is still open"))
            }
        }
        Ok(MessageWriter {
            conn: conn.clone(),
            text,
            started: false,
            buf: Vec::with_capacity(FRAGMENT),
            checked: 0,
            done: false,
        })
    }

    /// Sends the final fragment, ending the message.
    ///
    /// # Errors
    /// [`Error::InvalidUtf8`] when a text stream ends inside a character:
    /// the incomplete character is dropped and the message (valid, without
    /// it) is ended anyway. [`Error::Closed`] when the connection closed, or
    /// [`Error::Timeout`] when the backlog had no room within the write
    /// timeout (the connection is then cut off: a message cannot be left
    /// unfinished).
    pub fn finish(mut self) -> Result<(), Error> {
        self.end()
    }

    fn end(&mut self) -> Result<(), Error> {
        if self.done {
            return Err(Error::Closed);
        }
        let incomplete = self.text && self.checked < self.buf.len();
        self.buf.truncate(self.checked_len());
        let bytes = std::mem::take(&mut self.buf);
        self.send_fragment(bytes, true)?;
        match incomplete {
            true => Err(Error::InvalidUtf8),
            false => Ok(()),
        }
    }

    /// How much of the buffer may go out now.
    fn checked_len(&self) -> usize {
        match self.text {
            true => self.checked,
            false => self.buf.len(),
        }
    }

    /// Sends `payload` as the next fragment, waiting for room up to the
    /// write timeout. A failure ends the stream; a timeout also cuts the
    /// connection off, since the message cannot be completed.
    fn send_fragment(&mut self, mut payload: Vec<u8>, fin: bool) -> Result<(), Error> {
        let op = match (self.started, self.text) {
            (true, _) => OpCode::Continuation,
            (false, true) => OpCode::Text,
            (false, false) => OpCode::Binary,
        };
        let inner = &self.conn.inner;
        let mask = (inner.role == Role::Client).then(frame::random_mask);
        let mut header = Vec::with_capacity(frame::MAX_HEADER_LEN);
        frame::encode_header(&mut header, fin, op, payload.len(), mask);
        if let Some(m) = mask {
            frame::apply_mask(&mut payload, m, 0);
        }
        let lane = if fin { Lane::StreamEnd } else { Lane::Stream };
        let deadline: Instant = deadline_after(inner.hub.write_timeout());
        match self
            .conn
            .push_owned_until(&header, payload, lane, Some(deadline))
        {
            Ok(()) => {
                self.started = true;
                self.done = fin;
                Ok(())
            }
            Err((why, _)) => {
                self.done = true;
                match why {
                    Refused::Closed => Err(Error::Closed),
                    Refused::TimedOut => {
                        inner.force_end(1008, "client too slow: write timeout");
                        Err(Error::Timeout("waiting for room in the backlog"))
                    }
                }
            }
        }
    }

    /// Sends whole fragments while at least one is buffered.
    fn send_full(&mut self) -> io::Result<()> {
        while self.checked_len() >= FRAGMENT {
            let rest = self.buf.split_off(FRAGMENT);
            let bytes = std::mem::replace(&mut self.buf, rest);
            if self.text {
                self.checked -= FRAGMENT;
            }
            self.buf.reserve(FRAGMENT);
            self.send_fragment(bytes, false).map_err(to_io)?;
        }
        Ok(())
    }
}

fn to_io(e: Error) -> io::Error {
    match e {
        Error::Timeout(_) => io::Error::new(io::ErrorKind::TimedOut, e),
        Error::InvalidUtf8 => io::Error::new(io::ErrorKind::InvalidData, e),
        e => io::Error::new(io::ErrorKind::BrokenPipe, e),
    }
}

impl Write for MessageWriter {
    /// Takes all of `data` or, on an error, none of it. A text stream
    /// refuses bytes that are not UTF-8 ([`io::ErrorKind::InvalidData`]);
    /// the stream stays usable.
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.done {
            return Err(to_io(Error::Closed));
        }
        let before = self.buf.len();
        self.buf.extend_from_slice(data);
        if self.text {
            match std::str::from_utf8(&self.buf[self.checked..]) {
                Ok(_) => self.checked = self.buf.len(),
                Err(e) if e.error_len().is_none() => self.checked += e.valid_up_to(),
                Err(_) => {
                    self.buf.truncate(before);
                    return Err(to_io(Error::InvalidUtf8));
                }
            }
        }
        self.send_full()?;
        Ok(data.len())
    }

    /// Sends what is buffered as a fragment (for text, up to the last whole
    /// character). It does not wait for the bytes to reach the kernel.
    fn flush(&mut self) -> io::Result<()> {
        if self.done {
            return Err(to_io(Error::Closed));
        }
        let n = self.checked_len();
        if n == 0 {
            return Ok(());
        }
        let rest = self.buf.split_off(n);
        let bytes = std::mem::replace(&mut self.buf, rest);
        self.checked = 0;
        self.send_fragment(bytes, false).map_err(to_io)
    }
}

impl Drop for MessageWriter {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.end();
        }
    }
}

impl Connection {
    /// Starts a binary message written piece by piece: the returned writer
    /// implements [`std::io::Write`] and sends the message in fragments, so a
    /// large message never needs to be in memory whole.
    /// [`MessageWriter::finish`] (or dropping it) ends the message.
    ///
    /// Until then, other data messages to this connection (from any thread,
    /// broadcasts included) wait and follow the streamed one; pings, pongs
    /// and a close still go out. A second stream waits for the first to end
    /// (up to [`Config::write_timeout`](crate::Config::write_timeout)).
    ///
    /// # Errors
    /// [`Error::Closed`] when the connection is closed or closing;
    /// [`Error::Timeout`] when another streamed message stayed open for the
    /// whole write timeout.
    pub fn stream_binary(&self) -> Result<MessageWriter, Error> {
        MessageWriter::open(self, false)
    }

    /// Starts a text message written piece by piece, as
    /// [`Connection::stream_binary`]. The whole must be UTF-8: a write of
    /// bytes that are not is refused, and a character may be split across
    /// writes.
    ///
    /// # Errors
    /// As [`Connection::stream_binary`].
    pub fn stream_text(&self) -> Result<MessageWriter, Error> {
        MessageWriter::open(self, true)
    }
}
