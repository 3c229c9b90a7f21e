//! Inbound half of RFC 6455: turns bytes from a `Read` into events, enforcing
//! every rule a receiver must (masking, control frames, fragmentation,
//! UTF-8, close payloads, size limits).
//!
//! It is generic over `Read` and never writes, so it is tested without sockets.
//! The read buffer grows with the data and is dropped when the connection goes
//! quiet: an idle connection waits in `read` on a small stack buffer and holds
//! no heap buffer at all.
//!
//! Sizes: the buffer grows with the data (doubling when a read filled it)
//! up to 256 KiB (`GROW_LIMIT`); a quiet connection (four short reads in a
//! row) reads into 512 bytes on the stack. A data frame of 16 KiB or more
//! (`DIRECT_MIN`) is read straight into the vector that becomes the
//! message, and one `read_vectored` also takes what follows it into the
//! buffer. That vector grows with the bytes that arrive (by
//! `DIRECT_GROWTH`, x4), never to the length a header announces before
//! they come.
//!
//! RSV1 comes here from `frame.rs`, which refuses RSV2 and RSV3: it starts
//! a compressed message when permessage-deflate was agreed (an `Inflater`
//! is set), and is refused otherwise.

use std::io::{self, IoSliceMut, Read};

use crate::wire::frame::{self, Header, OpCode};
use crate::{Error, Message};

/// Data frames at least this long are read straight into their own buffer.
pub(crate) const DIRECT_MIN: usize = 16 * 1024;
/// A large frame's own buffer grows by this factor when its room is full:
/// few reads and copies for an honest frame, and at most this many times
/// the bytes that arrived for a frame that never comes.
pub(crate) const DIRECT_GROWTH: usize = 4;
/// The read buffer of a connection that large frames stream into: the
/// next frame's header and a quarter of 64 KiB.
const STREAM_TAIL: usize = DIRECT_MIN + frame::MAX_HEADER_LEN;
/// Reads stop growing the buffer for throughput past this size; a single
/// larger frame still gets the room it needs.
pub(crate) const GROW_LIMIT: usize = 256 * 1024;
/// The stack buffer a quiet connection reads into.
const IDLE_SCRATCH: usize = 512;
/// Reads shorter than this, [`QUIET_AFTER`] in a row, make a connection
/// quiet.
const QUIET_READ: usize = IDLE_SCRATCH / 2;
/// Short reads in a row after which a connection is quiet. Two were too
/// few: over TLS, the short last record of each large message (a 64 KiB
/// message's last 14 bytes) gives one or two short reads between long
/// ones, and dropping the buffer there and taking it back made each thread's
/// malloc arena give memory back to the kernel and fault it in again (in
/// the wss 64 KiB echo: 127 `madvise` calls and 510 page faults a second;
/// none with four).
const QUIET_AFTER: u8 = 4;

/// What the peer sent, once a whole unit has arrived.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    Message(Message),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// A close frame: `None` when it carried no status code.
    Close(Option<(u16, String)>),
}

/// Size limits for inbound data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_frame: usize,
    pub(crate) max_message: usize,
}

/// Which side we are: servers require masked frames, clients refuse them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Server,
    Client,
}

#[derive(Debug)]
struct Partial {
    text: bool,
    data: Vec<u8>,
    /// Bytes of `data` already known to be valid UTF-8 (fail fast on bad text).
    checked: usize,
    /// Its frames are compressed (permessage-deflate): `data` is what they
    /// inflated to.
    compressed: bool,
}

/// The inbound state of one connection.
#[derive(Debug)]
pub(crate) struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    initial: usize,
    /// Bytes needed from `start` before the next step can make progress.
    need: usize,
    /// Reads shorter than [`QUIET_READ`] in a row (saturating); a new
    /// reader starts quiet.
    short_reads: u8,
    /// The last read filled all the room it had: more data is probably waiting.
    filled: bool,
    role: Role,
    limits: Limits,
    partial: Option<Partial>,
    /// A large data frame being read straight into its own buffer.
    direct: Option<Direct>,
    /// The permessage-deflate stage, when negotiated.
    #[cfg(feature = "deflate")]
    inflater: Option<crate::wire::deflate::Inflater>,
}

/// A large data frame whose payload is read into the vector that becomes the
/// message: no copy out of the read buffer, no compaction behind it.
///
/// The vector grows with the bytes that arrive (by `DIRECT_GROWTH` when its
/// room is full), never to the length the header announced before they
/// come: a header alone commits at most `DIRECT_MIN` bytes, and a frame's
/// buffer is never more than `DIRECT_GROWTH` times what arrived of it.
#[derive(Debug)]
struct Direct {
    header: Header,
    /// The payload so far: every byte is room for the next read (zeroed),
    /// the first `filled` of them arrived.
    data: Vec<u8>,
    filled: usize,
    /// The whole payload's length, as announced.
    len: usize,
}

impl Direct {
    /// Makes room for the next read once the room is full: `DIRECT_GROWTH`
    /// times as much, up to the end of the frame.
    fn grow(&mut self) {
        if self.filled == self.data.len() && self.data.len() < self.len {
            let room = (self.data.len() * DIRECT_GROWTH)
                .max(DIRECT_MIN)
                .min(self.len);
            resize_exact(&mut self.data, room);
        }
    }
}

/// Where a frame's unmasked payload is.
enum Payload {
    Buffered(usize, usize),
    Owned(Vec<u8>),
}

impl FrameReader {
    pub(crate) fn new(role: Role, limits: Limits, initial: usize, leftover: &[u8]) -> FrameReader {
        // No buffer until data arrives: the first read goes through `fill_idle`.
        FrameReader {
            buf: leftover.to_vec(),
            start: 0,
            end: leftover.len(),
            initial,
            need: 0,
            short_reads: QUIET_AFTER,
            filled: false,
            role,
            limits,
            partial: None,
            direct: None,
            #[cfg(feature = "deflate")]
            inflater: None,
        }
    }

    /// Adds the permessage-deflate stage: messages whose first frame has
    /// RSV1 are inflated.
    #[cfg(feature = "deflate")]
    pub(crate) fn with_inflater(
        mut self,
        inflater: Option<crate::wire::deflate::Inflater>,
    ) -> Self {
        self.inflater = inflater;
        self
    }

    /// Whether a frame with RSV1 may start a compressed message.
    fn compresses(&self) -> bool {
        #[cfg(feature = "deflate")]
        return self.inflater.is_some();
        #[cfg(not(feature = "deflate"))]
        false
    }

    /// Bytes buffered but not yet consumed.
    pub(crate) fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Whether the last read brought a full load (at least `QUIET_READ`
    /// bytes): input is streaming in, and more may already be waiting.
    pub(crate) fn streaming(&self) -> bool {
        self.short_reads == 0
    }

    /// One `read` call into the buffer. Returns what `read` returned (0 = EOF).
    pub(crate) fn fill(&mut self, stream: &mut impl Read) -> io::Result<usize> {
        if let Some(d) = self.direct.as_mut().filter(|d| d.filled < d.len) {
            // The read buffer is empty: everything buffered went into `data`.
            d.grow();
            let rest = d.data.len() - d.filled;
            if d.data.len() < d.len {
                // More of this frame is due than there is room for yet.
                let n = stream.read(&mut d.data[d.filled..])?;
                d.filled += n;
                self.count_read(n);
                return Ok(n);
            }
            // The room reaches the end of the frame: whatever follows it
            // lands in the buffer in the same call, so a stream of large
            // frames costs about one read each.
            if self.buf.len() < self.initial {
                resize_exact(&mut self.buf, self.initial);
            }
            // The last such read filled the buffer too: large frames are
            // streaming in. Room for `STREAM_TAIL` of the next one gives its
            // own buffer (`DIRECT_GROWTH` times what arrived) room for all
            // of a 64 KiB frame, so it needs one read, not three.
            if self.filled && self.buf.len() < STREAM_TAIL {
                resize_exact(&mut self.buf, STREAM_TAIL);
            }
            let mut into = [
                IoSliceMut::new(&mut d.data[d.filled..]),
                IoSliceMut::new(&mut self.buf),
            ];
            let n = stream.read_vectored(&mut into)?;
            d.filled += n.min(rest);
            self.start = 0;
            self.end = n.saturating_sub(rest);
            self.filled = self.end == self.buf.len();
            self.count_read(n);
            return Ok(n);
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            // A quiet connection (short reads in a row) may be about to sit
            // idle for hours: it waits without a heap buffer.
            if self.short_reads >= QUIET_AFTER {
                return self.fill_idle(stream);
            }
        }
        if self.buf.len() < self.initial {
            // Busy again after a quiet spell: back to a full-size buffer.
            resize_exact(&mut self.buf, self.initial);
        }
        let need = self.need.max(self.buffered() + 1);
        if self.start + need > self.buf.len() {
            // Compact first; grow only if the frame needs the room, or
            // input streams in.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if need > self.buf.len() {
            // Room for the frame, and for what follows it in the same read.
            resize_exact(&mut self.buf, need + self.initial);
        } else if self.filled && self.buf.len() < GROW_LIMIT {
            // The previous read filled all the room there was: more is
            // coming, so that a read takes several frames at once.
            let grown = (self.buf.len() * 2).min(GROW_LIMIT);
            resize_exact(&mut self.buf, grown);
        }
        let n = stream.read(&mut self.buf[self.end..])?;
        self.filled = self.end + n == self.buf.len();
        self.end += n;
        self.count_read(n);
        Ok(n)
    }

    /// Counts a read of `n` bytes towards quiet (or not).
    fn count_read(&mut self, n: usize) {
        self.short_reads = if n < QUIET_READ {
            self.short_reads.saturating_add(1)
        } else {
            0
        };
    }

    /// Reads into a small stack buffer, then keeps just what arrived.
    fn fill_idle(&mut self, stream: &mut impl Read) -> io::Result<usize> {
        self.buf = Vec::new();
        let mut scratch = [0u8; IDLE_SCRATCH];
        let n = stream.read(&mut scratch)?;
        self.buf = scratch[..n].to_vec();
        self.end = n;
        self.filled = false;
        self.count_read(n);
        Ok(n)
    }

    /// The next complete event in the buffer, or `None` if more bytes are needed.
    pub(crate) fn next_event(&mut self) -> Result<Option<Event>, Error> {
        loop {
            if let Some(d) = self.direct.take() {
                if d.filled < d.len {
                    self.direct = Some(d);
                    return Ok(None);
                }
                let Direct {
                    header, mut data, ..
                } = d;
                if let Some(mask) = header.mask {
                    frame::apply_mask(&mut data, mask, 0);
                }
                match self.on_frame(&header, Payload::Owned(data))? {
                    Some(event) => return Ok(Some(event)),
                    None => continue,
                }
            }
            let avail = &self.buf[self.start..self.end];
            let header = match frame::parse_header(avail) {
                Ok(Some(h)) => h,
                Ok(None) => {
                    self.need = frame::MAX_HEADER_LEN.min(avail.len() + 1).max(2);
                    return Ok(None);
                }
                Err(e) => return Err(Error::Protocol(e.describe())),
            };
            self.check_header(&header)?;
            // Because check_header bounded payload_len by max_frame (a usize).
            let len = header.payload_len as usize;
            let total = header.header_len + len;
            if len >= DIRECT_MIN && !header.opcode.is_control() && avail.len() < total {
                // Move what arrived of the payload into the frame's own
                // buffer, with room for a few times as much (not for what
                // the header announced: that may never come).
                let at = self.start + header.header_len;
                let have = self.end - at;
                let room = (have * DIRECT_GROWTH).max(DIRECT_MIN).min(len);
                let mut data = Vec::with_capacity(room);
                data.extend_from_slice(&self.buf[at..self.end]);
                data.resize(room, 0);
                self.start = self.end;
                self.need = 0;
                self.direct = Some(Direct {
                    header,
                    data,
                    filled: have,
                    len,
                });
                continue;
            }
            if avail.len() < total {
                self.need = total;
                return Ok(None);
            }
            self.need = 0;
            let payload_start = self.start + header.header_len;
            self.start += total;
            if let Some(mask) = header.mask {
                frame::apply_mask(&mut self.buf[payload_start..payload_start + len], mask, 0);
            }
            let payload = Payload::Buffered(payload_start, len);
            if let Some(event) = self.on_frame(&header, payload)? {
                return Ok(Some(event));
            }
        }
    }

    fn check_header(&self, h: &Header) -> Result<(), Error> {
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) => return Err(Error::Protocol("client frame not masked")),
            (Role::Client, true) => return Err(Error::Protocol("server frame masked")),
            _ => {}
        }
        if h.rsv1 {
            if !self.compresses() {
                return Err(Error::Protocol("reserved bits set without an extension"));
            }
            match h.opcode {
                OpCode::Text | OpCode::Binary => {}
                OpCode::Continuation => {
                    return Err(Error::Protocol("RSV1 set on a continuation frame"))
                }
                _ => return Err(Error::Protocol("compressed control frame")),
            }
        }
        if h.opcode.is_control() {
            if !h.fin {
                return Err(Error::Protocol("fragmented control frame"));
            }
            if h.payload_len > 125 {
                return Err(Error::Protocol("control frame longer than 125 bytes"));
            }
        }
        if h.payload_len > self.limits.max_frame as u64 {
            return Err(Error::TooBig {
                size: h.payload_len,
                limit: self.limits.max_frame,
            });
        }
        Ok(())
    }

    fn on_frame(&mut self, h: &Header, payload: Payload) -> Result<Option<Event>, Error> {
        let bytes: &[u8] = match &payload {
            Payload::Buffered(at, len) => &self.buf[*at..*at + *len],
            Payload::Owned(v) => v,
        };
        match h.opcode {
            OpCode::Ping => Ok(Some(Event::Ping(bytes.to_vec()))),
            OpCode::Pong => Ok(Some(Event::Pong(bytes.to_vec()))),
            OpCode::Close => parse_close(bytes).map(|c| Some(Event::Close(c))),
            OpCode::Text | OpCode::Binary => {
                if self.partial.is_some() {
                    return Err(Error::Protocol(
                        "new data frame inside a fragmented message",
                    ));
                }
                let text = h.opcode == OpCode::Text;
                if h.fin && !h.rsv1 {
                    self.check_message_size(bytes.len() as u64)?;
                    let data = match payload {
                        Payload::Owned(v) => v,
                        Payload::Buffered(at, len) => self.buf[at..at + len].to_vec(),
                    };
                    return finish(text, data).map(Some);
                }
                let p = Partial {
                    text,
                    data: Vec::new(),
                    checked: 0,
                    compressed: h.rsv1,
                };
                self.next_fragment(p, h.fin, payload)
            }
            OpCode::Continuation => {
                let Some(p) = self.partial.take() else {
                    return Err(Error::Protocol("continuation frame without a message"));
                };
                self.next_fragment(p, h.fin, payload)
            }
        }
    }

    /// Adds a fragment (inflated if the message is compressed) to a
    /// message; the message is done with `fin`.
    fn next_fragment(
        &mut self,
        mut p: Partial,
        fin: bool,
        payload: Payload,
    ) -> Result<Option<Event>, Error> {
        let bytes: &[u8] = match &payload {
            Payload::Buffered(at, len) => &self.buf[*at..*at + *len],
            Payload::Owned(v) => v,
        };
        if p.compressed {
            #[cfg(feature = "deflate")]
            if let Some(inflater) = self.inflater.as_mut() {
                inflater.inflate(bytes, fin, &mut p.data, self.limits.max_message)?;
                check_utf8(&mut p)?;
            }
        } else {
            self.append(&mut p, bytes)?;
        }
        if fin {
            finish(p.text, p.data).map(Some)
        } else {
            self.partial = Some(p);
            Ok(None)
        }
    }

    fn append(&self, p: &mut Partial, bytes: &[u8]) -> Result<(), Error> {
        self.check_message_size((p.data.len() + bytes.len()) as u64)?;
        p.data.extend_from_slice(bytes);
        check_utf8(p)
    }

    fn check_message_size(&self, size: u64) -> Result<(), Error> {
        if size > self.limits.max_message as u64 {
            return Err(Error::TooBig {
                size,
                limit: self.limits.max_message,
            });
        }
        Ok(())
    }
}

/// `v.resize(len, 0)` with exactly `len` bytes of room: `resize` alone may
/// double the capacity, past the limits above.
fn resize_exact(v: &mut Vec<u8>, len: usize) {
    v.reserve_exact(len.saturating_sub(v.len()));
    v.resize(len, 0);
}

/// Fails fast on text that is not UTF-8: only an incomplete sequence at
/// the very end of what arrived so far may wait for more.
fn check_utf8(p: &mut Partial) -> Result<(), Error> {
    if p.text {
        match std::str::from_utf8(&p.data[p.checked..]) {
            Ok(_) => p.checked = p.data.len(),
            Err(e) if e.error_len().is_some() => return Err(Error::InvalidUtf8),
            Err(e) => p.checked += e.valid_up_to(),
        }
    }
    Ok(())
}

fn finish(text: bool, data: Vec<u8>) -> Result<Event, Error> {
    if text {
        String::from_utf8(data)
            .map(|s| Event::Message(Message::Text(s)))
            .map_err(|_| Error::InvalidUtf8)
    } else {
        Ok(Event::Message(Message::Binary(data)))
    }
}

fn parse_close(payload: &[u8]) -> Result<Option<(u16, String)>, Error> {
    match payload {
        [] => Ok(None),
        [_] => Err(Error::Protocol("close frame with a one-byte payload")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !close_code_allowed(code) {
                return Err(Error::Protocol("close frame with an invalid status code"));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| Error::InvalidUtf8)?;
            Ok(Some((code, reason.to_owned())))
        }
    }
}

/// Whether a peer may send `code` in a close frame (RFC 6455, section 7.4).
pub(crate) fn close_code_allowed(code: u16) -> bool {
    tungstenite::protocol::frame::coding::CloseCode::from(code).is_allowed()
}

#[cfg(test)]
mod tests;
