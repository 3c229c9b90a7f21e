//! loadgen's side of `permessage-deflate` (RFC 7692): the offer it makes,
//! the check of the server's answer, one-shot compression of what it sends
//! and a per-connection inflater for what it gets.
//!
//! loadgen compresses every message on its own (a fresh deflate stream,
//! as a client with `client_no_context_takeover` would), which lets it
//! compress each distinct message once per run instead of once per send:
//! the RFC lets a sender drop its context whenever it likes, and a server
//! cannot tell (it inflates the same amount either way). What the server
//! sends is inflated with a context per connection, as the server's
//! context takeover requires.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::frame::client_frame;

/// What loadgen offers: what browsers offer.
pub const OFFER: &str = "permessage-deflate; client_max_window_bits";

/// RSV1: the frame starts a compressed message. `FrameReader` passes it on
/// in the opcode it reports once the extension is agreed.
pub const RSV1: u8 = 0x40;

/// What a sync flush ends with: stripped on send, restored on receive.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Inflated messages larger than this are an error (a runaway server).
const MAX_INFLATED: usize = 64 << 20;

/// The parameters a server agreed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Agreement {
    /// The window the server compresses with (15 if it did not say).
    pub server_bits: u8,
    /// The largest window loadgen may compress with (15 if not limited).
    pub client_bits: u8,
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
}

impl Agreement {
    /// Checks the `Sec-WebSocket-Extensions` values of a 101 response
    /// against [`OFFER`]: exactly one `permessage-deflate` with known,
    /// unrepeated, valid parameters.
    pub fn from_response(values: &[&str]) -> Result<Agreement, String> {
        let exts: Vec<&str> = values
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        let [ext] = exts[..] else {
            return Err(if exts.is_empty() {
                "the server did not agree to permessage-deflate".into()
            } else {
                format!("bad Sec-WebSocket-Extensions in the response: {exts:?}")
            });
        };
        let mut params = ext.split(';').map(str::trim);
        if params.next() != Some("permessage-deflate") {
            return Err(format!("the server answered another extension: {ext:?}"));
        }
        let mut a = Agreement {
            server_bits: 15,
            client_bits: 15,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
        };
        let mut seen = Vec::new();
        for p in params {
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (p, None),
            };
            if seen.contains(&name) {
                return Err(format!("repeated parameter in {ext:?}"));
            }
            seen.push(name);
            let bits = || -> Result<u8, String> {
                value
                    .and_then(|v| v.parse().ok())
                    .filter(|b| (8..=15).contains(b))
                    .ok_or_else(|| format!("bad window bits in {ext:?}"))
            };
            match (name, value) {
                ("server_max_window_bits", _) => a.server_bits = bits()?,
                ("client_max_window_bits", _) => a.client_bits = bits()?,
                ("server_no_context_takeover", None) => a.server_no_context_takeover = true,
                ("client_no_context_takeover", None) => a.client_no_context_takeover = true,
                _ => return Err(format!("unexpected parameter {p:?} in {ext:?}")),
            }
        }
        Ok(a)
    }
}

/// Compresses `data` as one whole message on a fresh deflate stream with
/// a window of `bits` (8 is compressed with 9, as zlib cannot do 8 for raw
/// deflate and its 9-bit encoder never reaches back further than 250
/// bytes), without the `00 00 ff ff` tail.
pub fn compress(data: &[u8], bits: u8, level: u32) -> Vec<u8> {
    let mut z = Compress::new_with_window_bits(Compression::new(level), false, bits.clamp(9, 15));
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let done = z.total_in() as usize;
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(64));
        }
        z.compress_vec(&data[done..], &mut out, FlushCompress::Sync)
            .expect("deflate of an in-memory buffer");
        // The flush is complete once all input went in and it stopped
        // short of filling the output.
        if z.total_in() as usize == data.len() && out.len() < out.capacity() {
            break;
        }
    }
    if out.ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
    if out.is_empty() {
        out.push(0x00);
    }
    out
}

/// A masked client frame carrying `data` compressed (RSV1 set).
pub fn compressed_frame(op: u8, data: &[u8], bits: u8, mask: [u8; 4]) -> Vec<u8> {
    let mut f = client_frame(op, &compress(data, bits, 6), mask);
    f[0] |= RSV1;
    f
}

/// One connection's agreement and inbound inflater, with counters.
pub struct Session {
    pub agreed: Agreement,
    /// Allocated on the first compressed message.
    z: Option<Box<Decompress>>,
    out: Vec<u8>,
    /// Compressed messages received, their bytes on the wire (payloads)
    /// and inflated.
    pub compressed: u64,
    pub wire_bytes: u64,
    pub inflated_bytes: u64,
    /// Uncompressed messages received on this connection.
    pub plain: u64,
}

impl Session {
    pub fn new(agreed: Agreement) -> Session {
        Session {
            agreed,
            z: None,
            out: Vec::new(),
            compressed: 0,
            wire_bytes: 0,
            inflated_bytes: 0,
            plain: 0,
        }
    }

    /// Inflates one whole compressed message (its frames' payloads,
    /// reassembled) and returns it.
    pub fn inflate(&mut self, payload: &[u8]) -> Result<&[u8], String> {
        let bits = self.agreed.server_bits.clamp(9, 15);
        let z = self
            .z
            .get_or_insert_with(|| Box::new(Decompress::new_with_window_bits(false, bits)));
        self.out.clear();
        let mut ended = run(z, payload, &mut self.out)?;
        if !ended {
            ended = run(z, &TAIL, &mut self.out)?;
        }
        if ended {
            // The server closed its stream (BFINAL): the next message
            // starts a new one.
            z.reset(false);
        }
        self.compressed += 1;
        self.wire_bytes += payload.len() as u64;
        self.inflated_bytes += self.out.len() as u64;
        Ok(&self.out)
    }
}

/// Runs `input` through the inflater onto `out`; true if the deflate
/// stream ended (a final block).
fn run(z: &mut Decompress, mut input: &[u8], out: &mut Vec<u8>) -> Result<bool, String> {
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(out.capacity().max(4096));
        }
        let (in0, len0) = (z.total_in(), out.len());
        let status = z
            .decompress_vec(input, out, FlushDecompress::Sync)
            .map_err(|e| format!("inflate: {e}"))?;
        let used = (z.total_in() - in0) as usize;
        input = &input[used..];
        if status == Status::StreamEnd {
            return Ok(true);
        }
        if out.len() > MAX_INFLATED {
            return Err(format!("a message inflated past {MAX_INFLATED} bytes"));
        }
        let room_left = out.len() < out.capacity();
        if room_left && (input.is_empty() || (used == 0 && out.len() == len0)) {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_answers() {
        let a = Agreement::from_response(&[
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
        ])
        .unwrap();
        assert_eq!((a.server_bits, a.client_bits), (12, 12));
        let a = Agreement::from_response(&["permessage-deflate"]).unwrap();
        assert_eq!((a.server_bits, a.client_bits), (15, 15));
        let a = Agreement::from_response(&["permessage-deflate;server_no_context_takeover"]);
        assert!(a.unwrap().server_no_context_takeover);
        for bad in [
            &[][..],
            &["x-webkit-deflate-frame"],
            &["permessage-deflate; client_max_window_bits"],
            &["permessage-deflate; server_max_window_bits=16"],
            &["permessage-deflate; foo"],
            &["permessage-deflate; server_no_context_takeover; server_no_context_takeover"],
            &["permessage-deflate", "permessage-deflate"],
        ] {
            assert!(Agreement::from_response(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn round_trips_with_context_and_final_blocks() {
        let msgs: Vec<Vec<u8>> = (0..20)
            .map(|i| {
                format!("{{\"seq\":{i},\"text\":\"hello hello hello\"}}")
                    .repeat(i * 50)
                    .into_bytes()
            })
            .collect();
        let agreed = Agreement::from_response(&["permessage-deflate"]).unwrap();
        let mut s = Session::new(agreed);
        // A server with context takeover: one stream, sync-flushed.
        let mut z = Compress::new_with_window_bits(Compression::new(6), false, 12);
        for m in &msgs {
            let mut out = Vec::with_capacity(m.len() + 1024);
            z.compress_vec(m, &mut out, FlushCompress::Sync).unwrap();
            assert!(out.ends_with(&TAIL));
            out.truncate(out.len() - 4);
            assert_eq!(s.inflate(&out).unwrap(), &m[..]);
        }
        // loadgen's own messages, and a server that ends each message
        // with a final block.
        for m in &msgs {
            assert_eq!(s.inflate(&compress(m, 9, 6)).unwrap(), &m[..]);
            let mut z = Compress::new_with_window_bits(Compression::new(1), false, 15);
            let mut out = Vec::with_capacity(m.len() + 1024);
            z.compress_vec(m, &mut out, FlushCompress::Finish).unwrap();
            assert_eq!(s.inflate(&out).unwrap(), &m[..]);
        }
        assert_eq!(s.compressed, 60);
    }
}
