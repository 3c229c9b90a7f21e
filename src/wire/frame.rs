//! The RFC 6455 frame layout: header parsing, header encoding and masking.
//!
//! This module knows bytes, not connections: it never reads a socket and
//! never allocates except in [`encode`]. RSV2 and RSV3 are refused here;
//! RSV1 is handed to the frame reader, which knows whether an extension
//! uses it.

/// Opcodes of RFC 6455, section 5.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    fn from_bits(bits: u8) -> Option<OpCode> {
        Some(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    pub(crate) fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) fin: bool,
    /// RSV1: a compressed message's first frame (permessage-deflate).
    pub(crate) rsv1: bool,
    pub(crate) opcode: OpCode,
    pub(crate) mask: Option<[u8; 4]>,
    pub(crate) payload_len: u64,
    /// Bytes the header itself took (2 to 14).
    pub(crate) header_len: usize,
}

/// Why a header is unacceptable; each maps to close code 1002.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderError {
    ReservedBits,
    ReservedOpcode(u8),
    NonMinimalOr64BitLength,
}

impl HeaderError {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            HeaderError::ReservedBits => "reserved bits set without an extension",
            HeaderError::ReservedOpcode(_) => "reserved opcode",
            HeaderError::NonMinimalOr64BitLength => "payload length has its top bit set",
        }
    }
}

/// The longest possible header: 2 + 8 (length) + 4 (mask).
pub(crate) const MAX_HEADER_LEN: usize = 14;

/// Parses a header from the start of `buf`. `Ok(None)` means more bytes are needed.
pub(crate) fn parse_header(buf: &[u8]) -> Result<Option<Header>, HeaderError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    // RSV1 is left to the reader, which knows whether an extension uses it.
    if b0 & 0x30 != 0 {
        return Err(HeaderError::ReservedBits);
    }
    let opcode = OpCode::from_bits(b0 & 0x0F).ok_or(HeaderError::ReservedOpcode(b0 & 0x0F))?;
    let masked = b1 & 0x80 != 0;
    let (payload_len, mut pos) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut be = [0u8; 8];
            be.copy_from_slice(&buf[2..10]);
            let len = u64::from_be_bytes(be);
            if len >> 63 != 0 {
                return Err(HeaderError::NonMinimalOr64BitLength);
            }
            (len, 10)
        }
        n => (u64::from(n), 2),
    };
    let mask = if masked {
        if buf.len() < pos + 4 {
            return Ok(None);
        }
        let m = [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]];
        pos += 4;
        Some(m)
    } else {
        None
    };
    Ok(Some(Header {
        fin: b0 & 0x80 != 0,
        rsv1: b0 & 0x40 != 0,
        opcode,
        mask,
        payload_len,
        header_len: pos,
    }))
}

/// Appends a frame header to `out`. `mask` is set for client frames.
pub(crate) fn encode_header(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: OpCode,
    len: usize,
    mask: Option<[u8; 4]>,
) {
    out.push(if fin { 0x80 } else { 0 } | opcode.bits());
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        // Because len < 126, it fits in the seven low bits.
        out.push(mask_bit | len as u8);
    } else if let Ok(len16) = u16::try_from(len) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&len16.to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if let Some(m) = mask {
        out.extend_from_slice(&m);
    }
}

/// Sets RSV1 in an encoded header: a compressed message's first frame.
#[cfg(feature = "deflate")]
pub(crate) fn set_rsv1(header: &mut [u8]) {
    header[0] |= 0x40;
}

/// The length of a whole frame with a `payload_len`-byte payload.
pub(crate) fn encoded_len(payload_len: usize, masked: bool) -> usize {
    let len_bytes = match payload_len {
        0..=125 => 0,
        126..=65535 => 2,
        _ => 8,
    };
    2 + len_bytes + if masked { 4 } else { 0 } + payload_len
}

/// A fresh client masking key. RFC 6455 asks for unpredictable keys: this
/// runs a counter through SipHash keyed by the process's random `RandomState`.
pub(crate) fn random_mask() -> [u8; 4] {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = KEYS.get_or_init(Default::default).build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let [a, b, c, d, ..] = h.finish().to_le_bytes();
    [a, b, c, d]
}

/// Appends a whole single-frame message (header and payload) to `out`.
/// With a mask (client side) the payload is masked as it is copied.
pub(crate) fn encode(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) {
    out.reserve(MAX_HEADER_LEN + payload.len());
    encode_header(out, true, opcode, payload.len(), mask);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(m) = mask {
        apply_mask(&mut out[start..], m, 0);
    }
}

/// XORs `data` with `mask`, as if `data` started at byte `offset` of the payload.
pub(crate) fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut m = mask;
    m.rotate_left(offset % 4);
    let word = u32::from_ne_bytes(m);
    let wide = u64::from(word) | (u64::from(word) << 32);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(w) ^ wide).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= m[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_lengths() {
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 70000] {
            let payload = vec![7u8; len];
            let mut out = Vec::new();
            encode(&mut out, OpCode::Binary, &payload, Some([1, 2, 3, 4]));
            let h = parse_header(&out).unwrap().unwrap();
            assert_eq!(h.payload_len, len as u64);
            assert_eq!(out.len(), encoded_len(len, true));
            assert!(h.fin);
            assert_eq!(h.opcode, OpCode::Binary);
            let mut body = out[h.header_len..].to_vec();
            apply_mask(&mut body, h.mask.unwrap(), 0);
            assert_eq!(body, payload);
        }
    }

    #[test]
    fn partial_headers_need_more() {
        let mut out = Vec::new();
        encode(&mut out, OpCode::Text, &[0; 300], Some([9, 9, 9, 9]));
        for cut in 0..8 {
            assert_eq!(parse_header(&out[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn rejects_reserved_bits_and_opcodes() {
        assert_eq!(parse_header(&[0xA1, 0]), Err(HeaderError::ReservedBits));
        assert_eq!(parse_header(&[0x91, 0]), Err(HeaderError::ReservedBits));
        assert!(parse_header(&[0xC1, 0]).unwrap().unwrap().rsv1);
        assert_eq!(
            parse_header(&[0x83, 0]),
            Err(HeaderError::ReservedOpcode(3))
        );
        let mut big = vec![0x82, 127];
        big.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(
            parse_header(&big),
            Err(HeaderError::NonMinimalOr64BitLength)
        );
    }

    #[test]
    fn mask_with_offset_matches_whole() {
        let data: Vec<u8> = (0..37).collect();
        let mask = [0xA, 0xB, 0xC, 0xD];
        let mut whole = data.clone();
        apply_mask(&mut whole, mask, 0);
        let mut parts = data.clone();
        let (a, b) = parts.split_at_mut(13);
        apply_mask(a, mask, 0);
        apply_mask(b, mask, 13);
        assert_eq!(whole, parts);
    }
}
