//! Turning fuzzer bytes into streams: a reader that hands out bytes in the
//! chunk sizes the input chose, and a frame builder that writes well-formed
//! (or slightly wrong) WebSocket frames so the fuzzer reaches message
//! assembly without having to discover masking by itself.

use std::io::{self, IoSliceMut, Read};

use libfuzzer_sys::arbitrary::{Result, Unstructured};

/// A `Read` over `data` that returns at most the next chunk size per call
/// (the sizes cycle), as a socket returns what has arrived.
#[derive(Debug)]
pub struct Chunked<'a> {
    data: &'a [u8],
    at: usize,
    sizes: Vec<usize>,
    next: usize,
}

impl<'a> Chunked<'a> {
    /// `sizes` of 0 count as 1 (a read of 0 would mean the end); an empty
    /// list means everything at once.
    pub fn new(data: &'a [u8], sizes: Vec<usize>) -> Chunked<'a> {
        let sizes = sizes.into_iter().map(|s| s.max(1)).collect();
        Chunked {
            data,
            at: 0,
            sizes,
            next: 0,
        }
    }

    /// Bytes handed out so far.
    pub fn consumed(&self) -> usize {
        self.at
    }

    fn budget(&mut self) -> usize {
        let left = self.data.len() - self.at;
        if self.sizes.is_empty() {
            return left;
        }
        let s = self.sizes[self.next % self.sizes.len()];
        self.next += 1;
        s.min(left)
    }
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.budget().min(buf.len());
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }

    /// Fills every slice in turn, as `readv` on a socket does.
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let mut budget = self.budget();
        let mut total = 0;
        for buf in bufs {
            let n = budget.min(buf.len());
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            total += n;
            budget -= n;
        }
        Ok(total)
    }
}

/// Chunk sizes: mostly small (where the boundary cases are), sometimes large.
pub fn chunk_sizes(u: &mut Unstructured<'_>) -> Result<Vec<usize>> {
    let count = u.int_in_range(0..=6u8)?;
    (0..count)
        .map(|_| {
            Ok(match u.int_in_range(0..=3u8)? {
                0 => u.int_in_range(1..=16usize)?,
                1 => u.int_in_range(1..=600usize)?,
                2 => u.int_in_range(1..=70_000usize)?,
                _ => usize::MAX,
            })
        })
        .collect()
}

/// A frame or message size limit, from the boundaries that matter.
pub fn limit(u: &mut Unstructured<'_>, max: usize) -> Result<usize> {
    const EDGES: [usize; 12] = [
        1,
        2,
        125,
        126,
        127,
        65_535,
        65_536,
        16 * 1024 - 1,
        16 * 1024,
        16 * 1024 + 1,
        1 << 20,
        16 << 20,
    ];
    let v = match u.int_in_range(0..=2u8)? {
        0 => *u.choose(&EDGES)?,
        1 => u.int_in_range(1..=300usize)?,
        _ => u.int_in_range(1..=max)?,
    };
    Ok(v.min(max))
}

/// The stream for a frame target: either the rest of the input as it is
/// (mode byte even), or frames built from it (odd).
pub fn frame_stream(u: &mut Unstructured<'_>, server_role: bool) -> Result<Vec<u8>> {
    if u.arbitrary::<u8>()? % 2 == 0 {
        return Ok(u.bytes(u.len())?.to_vec());
    }
    let mut out = Vec::new();
    let mut frames = 0;
    // Bounded, so one input stays cheap (a few large frames at most).
    while !u.is_empty() && frames < 64 && out.len() < 256 * 1024 {
        frames += 1;
        build_frame(u, server_role, &mut out)?;
    }
    Ok(out)
}

/// Appends one frame: usually masked as the role expects, with reserved bits
/// clear and an honest length, each of which the input can break.
fn build_frame(u: &mut Unstructured<'_>, server_role: bool, out: &mut Vec<u8>) -> Result<()> {
    let flags: u8 = u.arbitrary()?;
    let fin = flags & 1 == 0;
    let opcode = match (flags >> 1) & 7 {
        0 => 0x0,
        1 | 2 => 0x1,
        3 => 0x2,
        4 => 0x8,
        5 => 0x9,
        6 => 0xA,
        _ => u.int_in_range(0..=15u8)?,
    };
    let rsv = if flags & 0x10 != 0 && u.ratio(1, 8)? {
        u.int_in_range(1..=7u8)? << 4
    } else {
        0
    };
    let masked = server_role != (flags & 0x20 != 0 && u.ratio(1, 8)?);
    let payload: Vec<u8> = match (flags >> 6) & 3 {
        // A large payload: the direct-read path.
        0 => {
            let len = u.int_in_range(0..=70_000usize)?;
            let byte: u8 = u.arbitrary()?;
            vec![byte; len]
        }
        // Text that is mostly valid UTF-8.
        1 => String::arbitrary_take(u)?.into_bytes(),
        _ => {
            let len = u.int_in_range(0..=200usize)?;
            u.bytes(len.min(u.len()))?.to_vec()
        }
    };
    // Sometimes the length field lies (more or less than what follows).
    let len = if u.ratio(1, 16)? {
        u.arbitrary::<u64>()? >> u.int_in_range(0..=63u32)?
    } else {
        payload.len() as u64
    };
    out.push(if fin { 0x80 } else { 0 } | rsv | opcode);
    let mask_bit = if masked { 0x80 } else { 0 };
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if len <= 0xFFFF {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    let mut payload = payload;
    if masked {
        let key: [u8; 4] = u.arbitrary()?;
        out.extend_from_slice(&key);
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    out.extend_from_slice(&payload);
    Ok(())
}

/// `arbitrary::Arbitrary::arbitrary_take_rest`-free helper: a string of a
/// length the input picks.
trait TakeString {
    fn arbitrary_take(u: &mut Unstructured<'_>) -> Result<String>;
}

impl TakeString for String {
    fn arbitrary_take(u: &mut Unstructured<'_>) -> Result<String> {
        let s: &str = u.arbitrary()?;
        Ok(s.to_owned())
    }
}
