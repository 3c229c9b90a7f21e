//! A request's body, for handlers: framed by `Content-Length` or `chunked`
//! (RFC 9112 section 6), read whole within a size limit and the request's
//! deadline (the head's). Nothing else reads a body: WebSocket upgrades,
//! event streams and pages answer without one.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use super::Request;

/// The longest chunk-size line (with extensions) and trailer section read.
const MAX_LINE: usize = 4 << 10;

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Longer than the limit: answer 413.
    TooLarge,
    /// Framed as we cannot read it: answer 400 with this reason.
    Malformed(&'static str),
    /// The deadline passed first.
    Timeout,
    /// The client closed or the socket failed before the whole body arrived.
    Io(io::Error),
}

/// How a request says its body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (neither header).
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// The framing `req` declares (RFC 9112 section 6.3): `chunked` as the only
/// transfer coding, or one `Content-Length` (repeats must agree); both at
/// once, another coding, or a length that is not a number is an error.
pub(crate) fn framing(req: &Request) -> Result<Framing, &'static str> {
    let codings: Vec<&str> = req.header_list("transfer-encoding").collect();
    let lengths: Vec<&str> = req
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .collect();
    if !codings.is_empty() {
        if !lengths.is_empty() {
            return Err("both Transfer-Encoding and Content-Length");
        }
        if req.extra.http10 {
            return Err("Transfer-Encoding in an http/1.0 request");
        }
        return match codings.as_slice() {
            [one] if one.eq_ignore_ascii_case("chunked") => Ok(Framing::Chunked),
            _ => Err("unsupported Transfer-Encoding (only chunked)"),
        };
    }
    let Some(first) = lengths.first() else {
        return Ok(Framing::None);
    };
    let valid = |v: &str| !v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit());
    if !lengths.iter().all(|v| valid(v) && v == first) {
        return Err("bad Content-Length");
    }
    // 19 digits or fewer always fit a u64.
    first
        .parse()
        .map(Framing::Length)
        .map_err(|_| "bad Content-Length")
}

/// Reads from a socket (after the bytes that followed the head) within a
/// deadline.
pub(crate) struct Input<'a, R: Read + ?Sized> {
    stream: &'a mut R,
    set_timeout: &'a mut dyn FnMut(Duration) -> io::Result<()>,
    deadline: Instant,
    buf: Vec<u8>,
    pos: usize,
}

impl<'a, R: Read + ?Sized> Input<'a, R> {
    /// Input that starts with `leftover`, then reads `stream`.
    pub(crate) fn new(
        stream: &'a mut R,
        set_timeout: &'a mut dyn FnMut(Duration) -> io::Result<()>,
        deadline: Instant,
        leftover: Vec<u8>,
    ) -> Input<'a, R> {
        Input {
            stream,
            set_timeout,
            deadline,
            buf: leftover,
            pos: 0,
        }
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads more (at most `want` bytes); an error at EOF or the deadline.
    fn fill(&mut self, want: usize) -> Result<(), BodyError> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let want = want.clamp(1, 64 << 10);
        let old = self.buf.len();
        self.buf.resize(old + want, 0);
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.buf.truncate(old);
                return Err(BodyError::Timeout);
            }
            if let Err(e) = (self.set_timeout)(left) {
                self.buf.truncate(old);
                return Err(BodyError::Io(e));
            }
            match self.stream.read(&mut self.buf[old..]) {
                Ok(0) => {
                    self.buf.truncate(old);
                    return Err(BodyError::Io(io::ErrorKind::UnexpectedEof.into()));
                }
                Ok(n) => {
                    self.buf.truncate(old + n);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(match e.kind() {
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => BodyError::Timeout,
                        _ => BodyError::Io(e),
                    });
                }
            }
        }
    }

    /// Appends exactly `n` bytes to `out`.
    fn take(&mut self, mut n: u64, out: &mut Vec<u8>) -> Result<(), BodyError> {
        while n > 0 {
            if self.available().is_empty() {
                self.fill(usize::try_from(n).unwrap_or(usize::MAX))?;
            }
            let k = self
                .available()
                .len()
                .min(usize::try_from(n).unwrap_or(usize::MAX));
            out.extend_from_slice(&self.available()[..k]);
            self.pos += k;
            n -= k as u64;
        }
        Ok(())
    }

    /// One line without its CRLF (or bare LF), at most `MAX_LINE` bytes.
    fn line(&mut self) -> Result<Vec<u8>, BodyError> {
        loop {
            if let Some(i) = self.available().iter().position(|&b| b == b'\n') {
                let mut line = self.available()[..i].to_vec();
                self.pos += i + 1;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.available().len() > MAX_LINE {
                return Err(BodyError::Malformed("chunk line too long"));
            }
            self.fill(MAX_LINE)?;
        }
    }
}

/// Reads the whole body as `framing` says, at most `max` bytes.
pub(crate) fn read<R: Read + ?Sized>(
    input: &mut Input<'_, R>,
    framing: Framing,
    max: usize,
) -> Result<Vec<u8>, BodyError> {
    let max = max as u64;
    match framing {
        Framing::None => Ok(Vec::new()),
        Framing::Length(n) if n > max => Err(BodyError::TooLarge),
        Framing::Length(n) => {
            // Grown as bytes arrive: a declared length alone (a client
            // that then sends nothing) does not claim the memory.
            let start = usize::try_from(n).unwrap_or(usize::MAX).min(64 << 10);
            let mut body = Vec::with_capacity(start);
            input.take(n, &mut body)?;
            Ok(body)
        }
        Framing::Chunked => {
            let mut body = Vec::new();
            loop {
                let line = input.line()?;
                let size = chunk_size(&line)?;
                if size == 0 {
                    break;
                }
                if size > max - body.len() as u64 {
                    return Err(BodyError::TooLarge);
                }
                input.take(size, &mut body)?;
                if !input.line()?.is_empty() {
                    return Err(BodyError::Malformed("chunk longer than its size"));
                }
            }
            // Trailer fields, ignored, up to the empty line.
            let mut trailers = 0;
            loop {
                let line = input.line()?;
                if line.is_empty() {
                    return Ok(body);
                }
                trailers += line.len();
                if trailers > MAX_LINE {
                    return Err(BodyError::Malformed("trailer section too long"));
                }
            }
        }
    }
}

/// The size in a chunk-size line (hex, then optional `;extensions`).
fn chunk_size(line: &[u8]) -> Result<u64, BodyError> {
    let bad = BodyError::Malformed("bad chunk size");
    let end = line
        .iter()
        .position(|&b| b == b';' || b == b' ' || b == b'\t')
        .unwrap_or(line.len());
    let digits = &line[..end];
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(bad);
    }
    let text = std::str::from_utf8(digits).map_err(|_| BodyError::Malformed("bad chunk size"))?;
    u64::from_str_radix(text, 16).map_err(|_| bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(extra: &str) -> Request {
        let head = format!("POST /x HTTP/1.1\r\nHost: h\r\n{extra}\r\n");
        crate::http::parse_head(head.as_bytes(), "127.0.0.1:9".parse().unwrap()).unwrap()
    }

    fn body(framing: Framing, bytes: &[u8], max: usize) -> Result<Vec<u8>, BodyError> {
        let mut src: &[u8] = bytes;
        let mut set = |_| Ok(());
        let far = Instant::now() + Duration::from_secs(5);
        let mut input = Input::new(&mut src, &mut set, far, Vec::new());
        read(&mut input, framing, max)
    }

    #[test]
    fn framings() {
        assert_eq!(framing(&req("")), Ok(Framing::None));
        assert_eq!(
            framing(&req("Content-Length: 5\r\n")),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            framing(&req("Content-Length: 5, 5\r\nContent-Length: 5\r\n")),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            framing(&req("Transfer-Encoding: Chunked\r\n")),
            Ok(Framing::Chunked)
        );
        for bad in [
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: +5\r\n",
            "Content-Length: 99999999999999999999\r\n",
            "Content-Length:\r\n",
            "Transfer-Encoding: gzip, chunked\r\n",
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        ] {
            assert!(framing(&req(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_lengths_and_chunks() {
        assert_eq!(body(Framing::Length(3), b"abcdef", 10).unwrap(), b"abc");
        assert!(matches!(
            body(Framing::Length(11), b"", 10),
            Err(BodyError::TooLarge)
        ));
        assert!(matches!(
            body(Framing::Length(4), b"abc", 10),
            Err(BodyError::Io(_))
        ));
        let chunked = b"3;x=y\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n";
        assert_eq!(
            body(Framing::Chunked, chunked, 13).unwrap(),
            b"abc0123456789"
        );
        assert!(matches!(
            body(Framing::Chunked, chunked, 12),
            Err(BodyError::TooLarge)
        ));
        assert_eq!(body(Framing::Chunked, b"2\nab\n0\n\n", 9).unwrap(), b"ab");
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"2\r\nabc\r\n0\r\n\r\n",
            b"fffffffffffffffff\r\n",
        ] {
            assert!(
                matches!(
                    body(Framing::Chunked, bad, 100),
                    Err(BodyError::Malformed(_))
                ),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
