//! Minimal client side of RFC 6455 framing, just what `loadgen` needs:
//! encoding masked client frames, and an incremental reader that
//! reassembles server messages from a byte buffer.

use std::io::{self, Read};

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Encodes one final (FIN) client frame; client frames are always masked.
pub fn client_frame(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let len = payload.len();
    let mut out = Vec::with_capacity(len + 14);
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask);
    out
}

/// XORs `buf` with the repeated 4-byte `mask`, 8 bytes at a time.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4]) {
    let [a, b, c, d] = mask;
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let v = u64::from_ne_bytes(chunk.try_into().unwrap()) ^ wide;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    // The remainder starts at a multiple of 8, so the mask phase is 0.
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

/// A masked close frame with status 1000 (normal closure).
pub fn close_frame(mask: [u8; 4]) -> Vec<u8> {
    client_frame(OP_CLOSE, &1000u16.to_be_bytes(), mask)
}

/// Incremental frame reader: bytes go in with [`FrameReader::read_from`],
/// complete messages come out of [`FrameReader::drain`].
pub struct FrameReader {
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Payload of a fragmented message being reassembled, and its opcode.
    frag: Vec<u8>,
    frag_op: Option<u8>,
    /// Accept masked frames and pass their payload on still masked. Only
    /// for the raw-TCP mode, where our own client frames come back verbatim
    /// (comparing masked bytes saves loadgen the unmasking work).
    pub accept_masked: bool,
    /// permessage-deflate agreed: RSV1 may start a data message, and is
    /// passed on in the opcode (`op | 0x40`) for the caller to inflate.
    pub allow_rsv1: bool,
}

/// What one non-blocking read pass found.
pub enum ReadStatus {
    /// Socket drained for now (got `WouldBlock`).
    Open,
    /// Peer closed its side (EOF).
    Eof,
}

impl FrameReader {
    pub fn new(capacity: usize) -> Self {
        FrameReader {
            buf: vec![0; capacity],
            start: 0,
            end: 0,
            frag: Vec::new(),
            frag_op: None,
            accept_masked: false,
            allow_rsv1: false,
        }
    }

    /// Unconsumed bytes (used while parsing the HTTP upgrade response).
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks `n` pending bytes as consumed.
    pub fn consume(&mut self, n: usize) {
        self.start += n;
    }

    /// Reads once from `src` into the buffer, making room first.
    /// Returns `Ok(Some(n))` for n > 0 bytes, `Ok(None)` on EOF and
    /// `Err(WouldBlock)` when nothing is available.
    pub fn read_once(&mut self, src: &mut impl Read) -> io::Result<Option<usize>> {
        if self.end == self.buf.len() {
            // Move the unconsumed tail to the front; grow if still full.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.end == self.buf.len() {
                let len = self.buf.len() * 2;
                self.buf.resize(len, 0);
            }
        }
        match src.read(&mut self.buf[self.end..]) {
            Ok(0) => Ok(None),
            Ok(n) => {
                self.end += n;
                Ok(Some(n))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => self.read_once(src),
            Err(e) => Err(e),
        }
    }

    /// Parses every complete frame in the buffer and calls
    /// `on_msg(opcode, payload)` once per complete message: text or binary
    /// messages (reassembled from fragments), and close, ping and pong frames.
    pub fn drain(
        &mut self,
        mut on_msg: impl FnMut(u8, &[u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        loop {
            let avail = &self.buf[self.start..self.end];
            let Some((fin, op, hlen, plen, mask)) = parse_header(avail, self.allow_rsv1)? else {
                break;
            };
            if avail.len() < hlen + plen {
                break;
            }
            if mask.is_some() && !self.accept_masked {
                return Err("server sent a masked frame".into());
            }
            let p0 = self.start + hlen;
            self.start = p0 + plen;
            let payload = &self.buf[p0..p0 + plen];
            // RSV1 (only with `allow_rsv1`) marks a compressed message: it
            // goes with the message's first frame, never a control frame.
            let (op, rsv1) = (op & 0x0F, op & 0x40);
            if rsv1 != 0 && !matches!((op, self.frag_op), (OP_TEXT | OP_BINARY, None)) {
                return Err(format!("RSV1 set on a frame with opcode {op}"));
            }
            match (op, self.frag_op) {
                // Control frames may arrive between fragments.
                (OP_CLOSE | OP_PING | OP_PONG, _) => {
                    if !fin || plen > 125 {
                        return Err(format!("invalid control frame opcode {op}"));
                    }
                    on_msg(op, payload)?;
                }
                (OP_TEXT | OP_BINARY, None) if fin => on_msg(op | rsv1, payload)?,
                (OP_TEXT | OP_BINARY, None) => {
                    self.frag_op = Some(op | rsv1);
                    self.frag.clear();
                    self.frag.extend_from_slice(payload);
                }
                (OP_CONT, Some(first)) => {
                    self.frag.extend_from_slice(payload);
                    if fin {
                        self.frag_op = None;
                        on_msg(first, &self.frag)?;
                    }
                }
                _ => return Err(format!("unexpected frame opcode {op}")),
            }
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        Ok(())
    }
}

/// Parses a frame header: `(fin, opcode, header_len, payload_len, mask)`,
/// or `None` if more bytes are needed. With `rsv1`, RSV1 is allowed and
/// comes back in the opcode (`0x40`).
#[allow(clippy::type_complexity)]
fn parse_header(
    b: &[u8],
    rsv1: bool,
) -> Result<Option<(bool, u8, usize, usize, Option<[u8; 4]>)>, String> {
    if b.len() < 2 {
        return Ok(None);
    }
    let allowed = if rsv1 { 0x40 } else { 0 };
    if b[0] & 0x70 & !allowed != 0 {
        return Err("reserved bits set in frame header".into());
    }
    let fin = b[0] & 0x80 != 0;
    let op = b[0] & (0x0F | allowed);
    let masked = b[1] & 0x80 != 0;
    let (mut hlen, plen) = match b[1] & 0x7F {
        126 if b.len() >= 4 => (4, u16::from_be_bytes([b[2], b[3]]) as usize),
        127 if b.len() >= 10 => {
            let len = u64::from_be_bytes(b[2..10].try_into().unwrap());
            if len > 1 << 30 {
                return Err(format!("absurd frame length {len}"));
            }
            (10, len as usize)
        }
        126 | 127 => return Ok(None),
        n => (2, n as usize),
    };
    let mask = if masked {
        if b.len() < hlen + 4 {
            return Ok(None);
        }
        let m = [b[hlen], b[hlen + 1], b[hlen + 2], b[hlen + 3]];
        hlen += 4;
        Some(m)
    } else {
        None
    };
    Ok(Some((fin, op, hlen, plen, mask)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes an unmasked (server) frame for the tests.
    fn server_frame(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = client_frame(op, payload, [0; 4]);
        // Clear the mask bit and remove the 4 zero key bytes.
        f[0] = if fin { 0x80 | op } else { op };
        f[1] &= 0x7F;
        let hlen = f.len() - payload.len();
        f.drain(hlen - 4..hlen);
        f
    }

    fn collect(reader: &mut FrameReader, bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut src = bytes;
        let mut out = Vec::new();
        while let Ok(Some(_)) = reader.read_once(&mut src) {
            reader
                .drain(|op, p| {
                    out.push((op, p.to_vec()));
                    Ok(())
                })
                .unwrap();
        }
        out
    }

    #[test]
    fn reassembles_fragments_and_sizes() {
        let big = vec![7u8; 70_000];
        let mut bytes = server_frame(false, OP_TEXT, b"he");
        bytes.extend(server_frame(true, OP_PING, b"p"));
        bytes.extend(server_frame(true, OP_CONT, b"llo"));
        bytes.extend(server_frame(true, OP_BINARY, &big));
        bytes.extend(server_frame(true, OP_BINARY, &big[..300]));
        let mut r = FrameReader::new(16);
        let msgs = collect(&mut r, &bytes);
        assert_eq!(msgs.len(), 4);
        assert_eq!(msgs[0], (OP_PING, b"p".to_vec()));
        assert_eq!(msgs[1], (OP_TEXT, b"hello".to_vec()));
        assert_eq!(msgs[2], (OP_BINARY, big.clone()));
        assert_eq!(msgs[3], (OP_BINARY, big[..300].to_vec()));
    }

    #[test]
    fn mask_matches_bytewise_xor() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1003).collect();
        let mask = [0xde, 0xad, 0xbe, 0xef];
        let mut fast = data.clone();
        apply_mask(&mut fast, mask);
        let slow: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(fast, slow);
    }

    #[test]
    fn rsv1_only_when_allowed_and_only_on_a_first_data_frame() {
        let mut first = server_frame(false, OP_TEXT, b"ab");
        first[0] |= 0x40;
        let mut bytes = first.clone();
        bytes.extend(server_frame(true, OP_CONT, b"cd"));
        let mut r = FrameReader::new(64);
        r.allow_rsv1 = true;
        assert_eq!(
            collect(&mut r, &bytes),
            vec![(OP_TEXT | 0x40, b"abcd".to_vec())]
        );
        let plain = server_frame(true, OP_BINARY, b"x");
        assert_eq!(collect(&mut r, &plain), vec![(OP_BINARY, b"x".to_vec())]);
        let mut r = FrameReader::new(64);
        assert!(r.read_once(&mut &first[..]).is_ok());
        assert!(
            r.drain(|_, _| Ok(())).is_err(),
            "RSV1 without the extension"
        );
        for (fin, op) in [(true, OP_PING), (true, OP_CONT)] {
            let mut f = server_frame(fin, op, b"p");
            f[0] |= 0x40;
            let mut r = FrameReader::new(64);
            r.allow_rsv1 = true;
            assert!(r.read_once(&mut &f[..]).is_ok());
            assert!(r.drain(|_, _| Ok(())).is_err(), "RSV1 on opcode {op}");
        }
    }

    #[test]
    fn raw_mode_passes_masked_payloads() {
        let frame = client_frame(OP_BINARY, b"payload!", [1, 2, 3, 4]);
        let mut r = FrameReader::new(64);
        assert!(r.read_once(&mut &frame[..]).is_ok());
        assert!(r.drain(|_, _| Ok(())).is_err(), "masked frames are refused");
        let mut r = FrameReader::new(64);
        r.accept_masked = true;
        let masked = frame[frame.len() - 8..].to_vec();
        assert_eq!(collect(&mut r, &frame), vec![(OP_BINARY, masked)]);
    }
}
