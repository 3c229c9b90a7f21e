//! The `permessage-deflate` stage (RFC 7692, feature `deflate`): a
//! [`Compressor`] the send path runs a whole message through, and an
//! [`Inflater`] the frame reader runs a compressed message's frames
//! through. A connection without the extension has neither, and its frames
//! take the plain path.
//!
//! Both allocate their zlib state on first use, so an idle connection
//! costs nothing until it sends or receives a compressed message, and
//! without context takeover they free it after each message. flate2 does
//! not expose zlib's memLevel (fixed at 8), so the window is what sets the
//! memory: hence the default of 12 bits (as Python `websockets`). The
//! housekeeper also drops a compressor's state when the connection's
//! keepalive ping is due (`trim`): a fresh context refers to nothing, so
//! the peer stays in step.
//!
//! Order: the send path holds the compressor's lock from compressing a
//! message to queueing it, so the peer's inflater sees messages in the
//! order they were compressed (context takeover); a compressed message
//! that cannot be queued resets the compressor, so the next one refers to
//! nothing the peer lacks.
//!
//! Bounds: the inflated size, not the compressed one, is held to
//! `max_message_size` while inflating (1009), and the frame reader checks
//! text as UTF-8 as it inflates (1007). A final block (BFINAL) ends the
//! peer's stream: the rest of that message is ignored and the next one
//! starts a new stream.
//!
//! Broadcasts (encoded once) and streamed messages (`MessageWriter`) go
//! uncompressed, which a peer must accept on a compressed connection:
//! compressing per recipient would cost a deflate per connection per push,
//! and a shared compressed frame would need a fresh no-context-takeover
//! stream that every recipient's inflater accepts.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::wire::extension::Direction;
use crate::Error;

/// What a sync flush ends with: removed on send, restored on receive
/// (RFC 7692, section 7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// One connection's outbound compression context.
pub(crate) struct Compressor {
    dir: Direction,
    level: Compression,
    min_size: usize,
    z: Option<Box<Compress>>,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor")
            .field("dir", &self.dir)
            .field("allocated", &self.z.is_some())
            .finish()
    }
}

impl Compressor {
    pub(crate) fn new(dir: Direction, level: u32, min_size: usize) -> Compressor {
        Compressor {
            dir,
            level: Compression::new(level),
            min_size,
            z: None,
        }
    }

    /// Whether a message of `len` bytes is worth compressing.
    pub(crate) fn wants(&self, len: usize) -> bool {
        len >= self.min_size
    }

    /// Compresses one whole message: the payload of its (first) frame,
    /// without the `00 00 ff ff` tail. `None` if zlib failed (it fails only
    /// on bad parameters or a broken stream, never seen): the context is
    /// dropped and the caller sends the message uncompressed.
    pub(crate) fn compress(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        let (level, bits) = (self.level, self.dir.window_bits);
        let z = self
            .z
            .get_or_insert_with(|| Box::new(Compress::new_with_window_bits(level, false, bits)));
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        let start = z.total_in();
        let mut ok = true;
        loop {
            let done = (z.total_in() - start) as usize;
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(64));
            }
            if z.compress_vec(&data[done..], &mut out, FlushCompress::Sync)
                .is_err()
            {
                ok = false;
                break;
            }
            let consumed = (z.total_in() - start) as usize == data.len();
            // A sync flush is complete once all input went in and it
            // stopped short of filling the output.
            if consumed && out.len() < out.capacity() {
                break;
            }
        }
        if !ok || self.dir.no_context_takeover {
            self.z = None;
        }
        if !ok {
            log::debug!("permessage-deflate: compression failed; sending uncompressed");
            return None;
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if out.is_empty() {
            // zlib flushes nothing for an empty message right after a
            // flush; an empty stored block's first byte stands for it
            // (RFC 7692, section 7.2.3.6).
            out.push(0x00);
        }
        Some(out)
    }

    /// Forgets the context: used when a compressed message could not be
    /// queued, so the next one refers to nothing the peer did not get.
    pub(crate) fn reset(&mut self) {
        self.z = None;
    }
}

/// One connection's inbound decompression context.
pub(crate) struct Inflater {
    dir: Direction,
    z: Option<Box<Decompress>>,
    /// The peer ended its deflate stream (a final block, BFINAL) inside the
    /// current message: the rest of the message (the restored tail
    /// included) is ignored, as zlib leaves bytes after a stream's end
    /// unused, and the next message starts a new stream.
    ended: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("dir", &self.dir)
            .field("allocated", &self.z.is_some())
            .finish()
    }
}

impl Inflater {
    pub(crate) fn new(dir: Direction) -> Inflater {
        Inflater {
            dir,
            z: None,
            ended: false,
        }
    }

    /// Inflates one frame's payload onto `out`; with `fin`, ends the
    /// message (the tail restored). `out` never grows past `limit + 1`
    /// bytes: more is [`Error::TooBig`], found while inflating.
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), Error> {
        self.run(input, out, limit)?;
        if fin {
            self.run(&TAIL, out, limit)?;
            self.ended = false;
            if self.dir.no_context_takeover {
                self.z = None;
            }
        }
        Ok(())
    }

    fn run(&mut self, mut input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), Error> {
        if self.ended {
            return Ok(());
        }
        let bits = self.dir.window_bits;
        let z = self
            .z
            .get_or_insert_with(|| Box::new(Decompress::new_with_window_bits(false, bits)));
        loop {
            if out.len() == out.capacity() {
                // Doubling (few copies for a large message), never past the
                // size limit plus one byte (which is how the excess shows).
                let room = out
                    .capacity()
                    .max(input.len() * 2)
                    .max(256)
                    .min(limit.saturating_add(1) - out.len());
                out.reserve_exact(room.max(1));
            }
            let (in0, out0) = (z.total_in(), out.len());
            let status = z
                .decompress_vec(input, out, FlushDecompress::None)
                .map_err(|_| Error::Protocol("invalid compressed data"))?;
            let used = (z.total_in() - in0) as usize;
            input = &input[used..];
            if out.len() > limit {
                return Err(Error::TooBig {
                    size: out.len() as u64,
                    limit,
                });
            }
            match status {
                // The peer ended its deflate stream (BFINAL): the next
                // message starts a new one.
                Status::StreamEnd => {
                    z.reset(false);
                    self.ended = true;
                    return Ok(());
                }
                Status::Ok | Status::BufError => {
                    let full = out.len() == out.capacity();
                    if input.is_empty() && !full {
                        return Ok(());
                    }
                    if used == 0 && out.len() == out0 && !full {
                        return Err(Error::Protocol("invalid compressed data"));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(bits: u8, no_context_takeover: bool) -> Direction {
        Direction {
            window_bits: bits,
            no_context_takeover,
        }
    }

    #[test]
    fn round_trips_with_and_without_context() {
        for takeover_off in [false, true] {
            for bits in [9, 12, 15] {
                let mut c = Compressor::new(dir(bits, takeover_off), 6, 0);
                let mut i = Inflater::new(dir(bits, takeover_off));
                let mut sizes = Vec::new();
                for n in 0..5 {
                    let msg =
                        format!("{{\"user\":\"someone\",\"n\":{n},\"text\":\"hello hello\"}}");
                    let z = c.compress(msg.as_bytes()).unwrap();
                    assert!(!z.ends_with(&TAIL));
                    sizes.push(z.len());
                    let mut out = Vec::new();
                    i.inflate(&z, true, &mut out, 1 << 20).unwrap();
                    assert_eq!(out, msg.as_bytes());
                }
                // With context takeover later messages refer to earlier ones.
                assert_eq!(sizes[4] < sizes[0], !takeover_off, "{sizes:?}");
            }
        }
        // Empty messages, first and after another (zlib flushes nothing
        // then: the payload is one 0x00 byte).
        let mut c = Compressor::new(dir(12, false), 6, 0);
        let mut i = Inflater::new(dir(12, false));
        for msg in [&b""[..], b"", b"abc", b"", b"abc"] {
            let z = c.compress(msg).unwrap();
            let mut out = Vec::new();
            i.inflate(&z, true, &mut out, 10).unwrap();
            assert_eq!(out, msg);
        }
    }

    /// A message split across frames at any byte inflates the same.
    #[test]
    fn fragments_inflate_incrementally() {
        let msg: Vec<u8> = (0..20_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect();
        let z = Compressor::new(dir(15, false), 6, 0)
            .compress(&msg)
            .unwrap();
        for cut in [1, 7, z.len() / 2, z.len() - 1] {
            let mut i = Inflater::new(dir(15, false));
            let mut out = Vec::new();
            i.inflate(&z[..cut], false, &mut out, 1 << 20).unwrap();
            i.inflate(&z[cut..], true, &mut out, 1 << 20).unwrap();
            assert_eq!(out, msg);
        }
    }

    /// A bomb: a few KiB that inflate to 100 MiB are refused at the limit,
    /// and the output never holds much more than the limit.
    #[test]
    fn the_limit_applies_to_the_inflated_size() {
        let zeros = vec![0u8; 100 << 20];
        let z = Compressor::new(dir(15, false), 9, 0)
            .compress(&zeros)
            .unwrap();
        assert!(z.len() < 200 << 10, "{}", z.len());
        let mut out = Vec::new();
        let err = Inflater::new(dir(15, false))
            .inflate(&z, true, &mut out, 1 << 20)
            .unwrap_err();
        assert!(
            matches!(err, Error::TooBig { limit, .. } if limit == 1 << 20),
            "{err:?}"
        );
        assert!(out.capacity() <= (1 << 20) + 1, "{}", out.capacity());
    }

    /// A peer that ends a message with a final block (BFINAL) and then
    /// sends more: the inflater starts a new stream.
    #[test]
    fn a_final_block_resets_the_inflater() {
        let mut i = Inflater::new(dir(15, false));
        for text in ["first message", "second message"] {
            let mut z = Compress::new_with_window_bits(Compression::default(), false, 15);
            let mut payload = Vec::with_capacity(256);
            z.compress_vec(text.as_bytes(), &mut payload, FlushCompress::Finish)
                .unwrap();
            let mut out = Vec::new();
            let r = i.inflate(&payload, true, &mut out, 1 << 20);
            assert!(r.is_ok(), "{text}: {r:?} {payload:?}");
            assert_eq!(out, text.as_bytes());
        }
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        let mut out = Vec::new();
        let err = Inflater::new(dir(15, false))
            .inflate(&[0xff; 16], true, &mut out, 1 << 20)
            .unwrap_err();
        assert!(matches!(err, Error::Protocol(_)), "{err:?}");
    }
}
