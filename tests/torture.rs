//! The torture test of issue 27: a seeded, randomized schedule of sends,
//! `send_timeout`, `flush`, streamed messages, broadcasts, pings, closes and
//! server shutdowns from several threads at once, against raw peers (written
//! here, so that they control their own socket reads) that read at random
//! speeds, stall and resume; over plain TCP, TLS (feature `tls`),
//! permessage-deflate (feature `deflate`) and both. A checker then verifies
//! what the peers saw against what the API reported.
//!
//! Its own test binary (its own process), since it counts the process's
//! threads and file descriptors.
//!
//! Settings (environment):
//! - `TORTURE_SECONDS`: seconds per transport (default 3).
//! - `TORTURE_SEED`: the seed (default: a random one). It is printed at the
//!   start and in every failure, and picks every choice of the schedule
//!   (sizes, operations, pauses, peer speeds, stalls, epoch lengths, server
//!   settings) for a given build (the `deflate` feature draws a few more
//!   numbers); the threads' interleaving is the operating system's.
//! - `TORTURE_TRANSPORTS`: a comma-separated subset of `plain`, `tls`,
//!   `deflate`, `tls+deflate` (default: every one the features allow).
//! - `TORTURE_NO_STREAMS`: when set, no streamed messages (their slot in
//!   the schedule becomes a pause), to tell apart the failures that need
//!   one.
//!
//! `scripts/torture.sh SECONDS [SEED]` runs every transport in a release build.
//!
//! # What is asserted
//!
//! Each epoch starts a server, connects 2-6 peers, runs 2-4 sender threads
//! for a random time, then shuts the server down (while senders still run,
//! or after they stopped and, sometimes, after the peers began closing).
//! Every message carries a header: kind (`m` sent, `s` streamed, `b`
//! broadcast), sender, sequence number and length; its body is a pattern
//! derived from (sender, sequence). Per connection, the checker asserts:
//!
//! 1. Wire rules (RFC 6455, 7692): server frames unmasked, RSV2/3 clear,
//!    RSV1 only on the first frame of a message and only with deflate
//!    agreed, minimal lengths, control frames unfragmented and at most 125
//!    bytes, no data frame between the fragments of a message (only control
//!    frames), no continuation outside a message, valid UTF-8 text, a valid
//!    close code, and nothing at all after a close frame. Compressed
//!    messages inflate (raw deflate after appending `00 00 ff ff`).
//! 2. Every message is whole: its header parses, its length and body match.
//! 3. Per (sender, connection), messages arrive in sequence order, only
//!    messages whose `send`/`send_timeout`/`finish` returned `Ok` arrive,
//!    and what arrived is a prefix of what was accepted: an accepted
//!    message may be missing only after the last one that arrived (the
//!    connection ended). Refusals (`TooSlow`, `Timeout`, closed) are the
//!    only gaps.
//! 4. Per broadcasting thread, a connection receives consecutive sequence
//!    numbers (a connection takes every broadcast from when it registers
//!    until its first refusal, after which it is closing), each of a
//!    broadcast that returned `Ok`.
//! 5. Flush: when `flush` returned `Ok`, every message accepted on that
//!    connection before the `flush` call began (as recorded by the test,
//!    after the API returned) had been handed to the kernel. So when the
//!    peer's stream ended cleanly (a close frame, or EOF: TCP delivers every
//!    byte written before the FIN), each of them must have arrived, whatever
//!    the close code (a peer cut off with 1008 included). When the peer's
//!    read or one of its writes failed, nothing is asserted: that is a
//!    reset (the server closed its socket with unread input, or input came
//!    after the close), and a reset discards what the server's kernel had
//!    not sent yet. With TLS, "handed to the kernel" means as ciphertext:
//!    bytes still inside rustls do not count.
//! 6. `on_close` ran exactly once for every connection that opened, and
//!    every peer's connection opened.
//! 7. Pong hooks of `Connection::ping` run at most once, only for pings
//!    the API accepted; and when `on_close` got the peer's own close code
//!    (4321, so the server read the peer's close frame and everything sent
//!    before it), every such pong the peer sent had run its hook.
//! 8. Stats after `close()`: no open connection; `websocket_accepted` and
//!    the sum of `closes_by_code` equal the connections opened;
//!    `messages_sent` is at least the messages peers received (streamed
//!    ones aside: a stream is not counted today) and at most the messages
//!    the API accepted (streams included); `messages_received` is at most
//!    what peers began to send and at least what the peers whose 4321 close
//!    frame the server read had sent in full.
//! 9. After `close()` every thread and file descriptor of the epoch is gone
//!    (`/proc/self/task`, `/proc/self/fd` back to the count before).
//! 10. Nothing hangs: every wait is bounded and fails with the seed.
//!
//! Not asserted (timing, so not without flakiness; printed instead):
//! how long `send` took (issue 27, bug 1), and how many peers that never
//! stalled were closed by the keepalive (bug 4).
//!
//! Found by this test and fixed (each with a regression test of its own):
//! `flush` confirming data overtaken by a stream's fragments, or that a
//! close then dropped; pings written after a close frame or between a
//! header and its payload; `messages_sent` missing late sends; and, over
//! TLS only, `flush` confirming records rustls still held after a write
//! that took nothing (`transport/outbox/writer.rs`), which a cut-off then
//! dropped: the peer read a clean end without them.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use wsportal::{Config, Connection, Message, Resource, SendTimeoutError, Server, ServerHandle};

/// The peer's own close code: `on_close` gets it only if the server read
/// the peer's close frame.
const PEER_CLOSE: u16 = 4321;
/// Longest any single wait of the test may take before it fails.
const BOUND: Duration = Duration::from_secs(30);

// ------------------------------------------------------------------ PRNG

/// splitmix64: small, fast, and enough for a schedule.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// True `per_mille` times in a thousand.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }

    fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }

    /// An independent generator for a sub-task.
    fn fork(&mut self) -> Rng {
        Rng(self.next())
    }
}

// ------------------------------------------------------------------ messages

/// A message's body: letters from (sender, seq), so the checker can rebuild it.
fn body(sender: u32, seq: u64, len: usize) -> Vec<u8> {
    let mut r = Rng(((sender as u64) << 40) ^ seq ^ 0x5EED);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let x = r.next();
        // Runs of a letter now and then, so deflate has something to find.
        let n = (len - out.len()).min(8);
        if x & 0x7 == 0 {
            out.extend(std::iter::repeat_n(b'a' + (x >> 8) as u8 % 26, n));
        } else {
            out.extend((0..n).map(|k| b'a' + (x >> (8 * k)) as u8 % 26));
        }
    }
    out
}

/// `kind sender:seq:len|body`, ASCII throughout (so it is valid text).
fn payload(kind: u8, sender: u32, seq: u64, len: usize) -> Vec<u8> {
    let mut p = format!("{}{sender}:{seq}:{len}|", kind as char).into_bytes();
    p.extend(body(sender, seq, len));
    p
}

/// Checks a received payload: (kind, sender, seq).
fn parse(p: &[u8]) -> Result<(u8, u32, u64, usize), String> {
    let bar = p
        .iter()
        .position(|&b| b == b'|')
        .ok_or("no header in a message")?;
    let head = std::str::from_utf8(&p[..bar]).map_err(|_| "header is not UTF-8")?;
    let kind = *p.first().ok_or("empty message")?;
    let mut it = head[1..].split(':');
    let mut num = || -> Result<u64, String> {
        it.next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad header {head:?}"))
    };
    let (sender, seq, len) = (num()? as u32, num()?, num()? as usize);
    let rest = &p[bar + 1..];
    if rest.len() != len {
        return Err(format!(
            "message {head:?}: body of {} bytes, header says {len}",
            rest.len()
        ));
    }
    if rest != body(sender, seq, len).as_slice() {
        return Err(format!("message {head:?}: body differs from its pattern"));
    }
    Ok((kind, sender, seq, len))
}

/// A random length: mostly small, some kilobytes, a few large.
fn length(r: &mut Rng) -> usize {
    match r.range(0, 99) {
        0..=69 => r.range(0, 200) as usize,
        70..=94 => r.range(200, 8 << 10) as usize,
        _ => r.range(8 << 10, 100 << 10) as usize,
    }
}

// ------------------------------------------------------------------ transports

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Plain,
    Tls,
    Deflate,
    TlsDeflate,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Plain => "plain",
            Transport::Tls => "tls",
            Transport::Deflate => "deflate",
            Transport::TlsDeflate => "tls+deflate",
        }
    }

    fn tls(self) -> bool {
        matches!(self, Transport::Tls | Transport::TlsDeflate)
    }

    fn deflate(self) -> bool {
        matches!(self, Transport::Deflate | Transport::TlsDeflate)
    }

    /// The transports this build can run.
    fn available() -> Vec<Transport> {
        let all = [
            Transport::Plain,
            Transport::Tls,
            Transport::Deflate,
            Transport::TlsDeflate,
        ];
        all.into_iter()
            .filter(|t| {
                (!t.tls() || cfg!(feature = "tls")) && (!t.deflate() || cfg!(feature = "deflate"))
            })
            .collect()
    }
}

#[cfg(feature = "tls")]
mod tls {
    use std::sync::Arc;
    use wsportal::rustls::{self, pki_types::pem::PemObject};

    /// A self-signed certificate for localhost, made at test time.
    pub(crate) struct Certs {
        cert_pem: String,
        key_pem: String,
    }

    impl Certs {
        pub(crate) fn new() -> Certs {
            let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            Certs {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            }
        }

        pub(crate) fn server(&self) -> wsportal::TlsConfig {
            let certs =
                vec![
                    rustls::pki_types::CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
                        .unwrap(),
                ];
            let key =
                rustls::pki_types::PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap();
            wsportal::TlsConfig::from_server_config(Arc::new(config))
        }

        pub(crate) fn client(&self) -> Arc<rustls::ClientConfig> {
            let mut roots = rustls::RootCertStore::empty();
            let der = rustls::pki_types::CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
                .unwrap();
            roots.add(der).unwrap();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        }
    }
}

/// What the test needs to start a server and connect peers.
struct Env {
    #[cfg(feature = "tls")]
    certs: tls::Certs,
}

/// A peer's byte stream: plain TCP or TLS over it.
enum Io {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<wsportal::rustls::StreamOwned<wsportal::rustls::ClientConnection, TcpStream>>),
}

impl Io {
    /// Connects with a receive buffer of `rcvbuf` bytes (small: the
    /// server's backlog fills sooner).
    fn connect(env: &Env, addr: SocketAddr, tls: bool, rcvbuf: usize) -> io::Result<Io> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.set_recv_buffer_size(rcvbuf)?;
        socket.connect(&addr.into())?;
        let tcp: TcpStream = socket.into();
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        tcp.set_write_timeout(Some(Duration::from_secs(5)))?;
        let _ = env;
        if !tls {
            return Ok(Io::Plain(tcp));
        }
        #[cfg(feature = "tls")]
        {
            use wsportal::rustls::{ClientConnection, StreamOwned};
            let name = "localhost".try_into().unwrap();
            let conn = ClientConnection::new(env.certs.client(), name)
                .map_err(|e| io::Error::other(e.to_string()))?;
            let mut s = StreamOwned::new(conn, tcp);
            while s.conn.is_handshaking() {
                s.conn.complete_io(&mut s.sock)?;
            }
            Ok(Io::Tls(Box::new(s)))
        }
        #[cfg(not(feature = "tls"))]
        unreachable!("TLS transport without the tls feature")
    }

    /// Writes `frame` whole, every TLS record to the socket, and says so if
    /// the socket refused: rustls's own `StreamOwned::write` ignores a
    /// failed socket write (it reports the plaintext it took), so a reset
    /// would pass unseen and the EOF that follows look clean.
    fn send_all(&mut self, frame: &[u8]) -> io::Result<()> {
        match self {
            Io::Plain(s) => s.write_all(frame),
            #[cfg(feature = "tls")]
            Io::Tls(s) => {
                s.conn.writer().write_all(frame)?;
                while s.conn.wants_write() {
                    s.conn.write_tls(&mut s.sock)?;
                }
                Ok(())
            }
        }
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Io::Plain(s) => s,
            #[cfg(feature = "tls")]
            Io::Tls(s) => &s.sock,
        }
    }
}

impl Read for Io {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Plain(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Io::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Io {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Io::Plain(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Io::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Io::Plain(s) => s.flush(),
            #[cfg(feature = "tls")]
            Io::Tls(s) => s.flush(),
        }
    }
}

// ------------------------------------------------------------------ the frame checker

enum Got {
    Message(Vec<u8>),
    Ping(Vec<u8>),
    Close(Option<u16>),
    Other,
}

/// Parses the server's frames, checking every rule a peer can see.
struct Frames {
    buf: Vec<u8>,
    deflate: bool,
    /// A fragmented message in progress: (text, compressed, payload so far).
    partial: Option<(bool, bool, Vec<u8>)>,
    closed: bool,
    #[cfg(feature = "deflate")]
    inflater: flate2::Decompress,
}

impl Frames {
    fn new(deflate: bool) -> Frames {
        Frames {
            buf: Vec::new(),
            deflate,
            partial: None,
            closed: false,
            #[cfg(feature = "deflate")]
            inflater: flate2::Decompress::new(false),
        }
    }

    /// Takes bytes; returns what they completed, or the first rule broken.
    fn feed(&mut self, data: &[u8], out: &mut Vec<Got>) -> Result<(), String> {
        if self.closed && !data.is_empty() {
            let head = &data[..data.len().min(16)];
            return Err(format!(
                "{} bytes after the close frame: {head:02x?}",
                data.len()
            ));
        }
        self.buf.extend_from_slice(data);
        while let Some(got) = self.frame()? {
            out.push(got);
            if self.closed && !self.buf.is_empty() {
                let head = &self.buf[..self.buf.len().min(16)];
                return Err(format!(
                    "{} bytes after the close frame: {head:02x?}",
                    self.buf.len()
                ));
            }
        }
        Ok(())
    }

    fn frame(&mut self) -> Result<Option<Got>, String> {
        let b = &self.buf;
        if b.len() < 2 {
            return Ok(None);
        }
        let (fin, rsv1, rsv23, op) = (b[0] & 0x80 != 0, b[0] & 0x40 != 0, b[0] & 0x30, b[0] & 0x0f);
        if b[1] & 0x80 != 0 {
            return Err("a server frame is masked".into());
        }
        let (len, head) = match b[1] & 0x7f {
            126 if b.len() < 4 => return Ok(None),
            126 => {
                let n = u16::from_be_bytes([b[2], b[3]]) as u64;
                if n < 126 {
                    return Err(format!("length {n} not in its shortest form"));
                }
                (n, 4)
            }
            127 if b.len() < 10 => return Ok(None),
            127 => {
                let n = u64::from_be_bytes(b[2..10].try_into().unwrap());
                if n <= 0xffff || n >> 63 != 0 {
                    return Err(format!("length {n} not in its shortest form"));
                }
                (n, 10)
            }
            n => (n as u64, 2),
        };
        if len > (64 << 20) {
            return Err(format!("a frame of {len} bytes"));
        }
        let len = len as usize;
        if b.len() < head + len {
            return Ok(None);
        }
        let data: Vec<u8> = b[head..head + len].to_vec();
        self.buf.drain(..head + len);
        if rsv23 != 0 {
            return Err("RSV2/RSV3 set".into());
        }
        match op {
            0x8..=0xa => {
                if !fin || len > 125 || rsv1 {
                    return Err(format!(
                        "control frame {op:#x}: fin {fin}, {len} bytes, rsv1 {rsv1}"
                    ));
                }
                Ok(Some(match op {
                    0x8 => {
                        self.closed = true;
                        Got::Close(close_code(&data)?)
                    }
                    0x9 => Got::Ping(data),
                    _ => Got::Other,
                }))
            }
            0x1 | 0x2 => {
                if self.partial.is_some() {
                    return Err("a new data frame inside a fragmented message".into());
                }
                if rsv1 && !self.deflate {
                    return Err("RSV1 set without permessage-deflate".into());
                }
                self.partial = Some((op == 0x1, rsv1, data));
                self.end_of_fragment(fin)
            }
            0x0 => {
                let Some((_, _, so_far)) = self.partial.as_mut() else {
                    return Err("a continuation frame outside a message".into());
                };
                if rsv1 {
                    return Err("RSV1 set on a continuation frame".into());
                }
                so_far.extend_from_slice(&data);
                self.end_of_fragment(fin)
            }
            _ => Err(format!("reserved opcode {op:#x}")),
        }
    }

    fn end_of_fragment(&mut self, fin: bool) -> Result<Option<Got>, String> {
        if !fin {
            return Ok(Some(Got::Other));
        }
        let (text, compressed, data) = self.partial.take().expect("a message in progress");
        let data = if compressed {
            self.inflate(&data)?
        } else {
            data
        };
        if text && std::str::from_utf8(&data).is_err() {
            return Err("a text message that is not UTF-8".into());
        }
        Ok(Some(Got::Message(data)))
    }

    #[cfg(feature = "deflate")]
    fn inflate(&mut self, data: &[u8]) -> Result<Vec<u8>, String> {
        let mut input = data.to_vec();
        input.extend_from_slice(&[0, 0, 0xff, 0xff]);
        let mut out = Vec::with_capacity(input.len() * 4 + 256);
        let mut pos = 0;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity());
            }
            let (i0, o0) = (self.inflater.total_in(), self.inflater.total_out());
            let status = self
                .inflater
                .decompress_vec(&input[pos..], &mut out, flate2::FlushDecompress::Sync)
                .map_err(|e| format!("inflating: {e}"))?;
            pos += (self.inflater.total_in() - i0) as usize;
            if status == flate2::Status::StreamEnd {
                return Err("a compressed message with a final deflate block".into());
            }
            if pos >= input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if self.inflater.total_in() == i0
                && self.inflater.total_out() == o0
                && out.len() < out.capacity()
            {
                return Err("inflating: no progress".into());
            }
            if out.len() > (64 << 20) {
                return Err("inflating: more than 64 MiB".into());
            }
        }
    }

    #[cfg(not(feature = "deflate"))]
    fn inflate(&mut self, _: &[u8]) -> Result<Vec<u8>, String> {
        Err("a compressed message without the deflate feature".into())
    }
}

fn close_code(p: &[u8]) -> Result<Option<u16>, String> {
    match p.len() {
        0 => Ok(None),
        1 => Err("a close frame with a 1-byte payload".into()),
        _ => {
            let code = u16::from_be_bytes([p[0], p[1]]);
            let ok = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !ok {
                return Err(format!("close code {code} may not be sent"));
            }
            if std::str::from_utf8(&p[2..]).is_err() {
                return Err("a close reason that is not UTF-8".into());
            }
            Ok(Some(code))
        }
    }
}

/// A masked client frame.
fn client_frame(r: &mut Rng, op: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | op];
    match payload.len() {
        n @ 0..=125 => f.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            f.push(0x80 | 126);
            f.extend((n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend((n as u64).to_be_bytes());
        }
    }
    let mask = (r.next() as u32).to_be_bytes();
    f.extend(mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

// ------------------------------------------------------------------ the peer

/// How a peer's stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// A close frame (its code), then EOF or an error.
    CloseFrame(Option<u16>),
    /// EOF without a close frame (TCP FIN; with TLS also a missing close_notify).
    Eof,
    /// A read error (a reset: bytes the kernel had not sent may be lost).
    Failed(io::ErrorKind),
    /// The test stopped the peer (a bounded wait ran out).
    Stopped,
}

impl PeerLog {
    /// Whether every byte the server handed to its kernel before the end
    /// reached the peer: it saw the close frame (so everything before it),
    /// or EOF with no write of its own failing. A write failing means the
    /// server's kernel answered with a reset (data reaching a socket that
    /// was closed), which discards what it had not sent yet; the error is
    /// then taken by the write, and the next read returns 0 as if at EOF.
    fn clean(&self) -> bool {
        match self.end {
            End::CloseFrame(_) => true,
            End::Eof => !self.write_failed,
            End::Failed(_) | End::Stopped => false,
        }
    }
}

/// What one peer saw and did.
#[derive(Debug)]
struct PeerLog {
    /// (kind, sender, seq) in arrival order.
    received: Vec<(u8, u32, u64)>,
    bytes: u64,
    end: End,
    violations: Vec<String>,
    /// Data messages it sent to the server (its frames fully written).
    data_sent: u64,
    /// Data messages it began to write (with TLS, one whose write failed
    /// may still leave later, from inside rustls).
    data_tried: u64,
    /// It sent its own close frame (code `PEER_CLOSE`).
    closed_first: bool,
    /// `Connection::ping` numbers it answered (pong fully written before its close).
    api_pongs: Vec<u64>,
    /// It stalled at least once.
    stalled: bool,
    /// One of its writes failed (see `PeerLog::clean`).
    write_failed: bool,
}

struct PeerPlan {
    id: usize,
    addr: SocketAddr,
    transport: Transport,
    rng: Rng,
    /// Largest read.
    chunk: usize,
    /// The socket's receive buffer.
    rcvbuf: usize,
    /// Per mille of reads followed by a short pause.
    pause: u64,
    /// Stalls (reads nothing) about this often (ms), for up to `stall_max` ms.
    stall_every: Option<u64>,
    stall_max: u64,
    /// Per mille of reads after which it sends a message or a ping.
    talk: u64,
    /// Close by itself this long after the start.
    close_after: Option<Duration>,
    /// What it is doing, for the message when it does not finish.
    status: Arc<Mutex<Status>>,
}

/// What a peer is doing (see `PeerPlan::status`).
#[derive(Clone, Default)]
struct Status {
    doing: &'static str,
    bytes: u64,
    close_sent: bool,
    close_seen: bool,
    draining: bool,
}

fn run_peer(
    plan: PeerPlan,
    env: &Env,
    stop: &AtomicBool,
    close_now: &AtomicBool,
    drain: &AtomicBool,
) -> Result<PeerLog, String> {
    let doing = |what: &'static str| plan.status.lock().unwrap().doing = what;
    doing("connecting");
    let PeerPlan {
        id,
        addr,
        transport,
        mut rng,
        ..
    } = plan;
    let mut io = Io::connect(env, addr, transport.tls(), plan.rcvbuf)
        .map_err(|e| format!("peer {id}: connect: {e}"))?;
    let offer = match (transport.deflate(), rng.chance(300)) {
        (false, _) => String::new(),
        (true, false) => "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n".into(),
        (true, true) => "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_max_window_bits\r\n".into(),
    };
    let request = format!(
        "GET /t?peer={id} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
    );
    doing("handshake");
    io.write_all(request.as_bytes())
        .and_then(|_| io.flush())
        .map_err(|e| format!("peer {id}: writing the request: {e}"))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        io.read_exact(&mut byte)
            .map_err(|e| format!("peer {id}: reading the 101: {e}"))?;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if !head.starts_with("http/1.1 101") || !head.contains("s3pplmbitxaq9kygzzhzrbk+xoo=") {
        return Err(format!("peer {id}: not a valid 101: {head:?}"));
    }
    let agreed = head.contains("sec-websocket-extensions: permessage-deflate");
    if agreed != transport.deflate() {
        return Err(format!(
            "peer {id}: permessage-deflate agreed: {agreed}: {head:?}"
        ));
    }
    io.tcp()
        .set_read_timeout(Some(Duration::from_millis(20)))
        .map_err(|e| e.to_string())?;

    let mut log = PeerLog {
        received: Vec::new(),
        bytes: 0,
        end: End::Stopped,
        violations: Vec::new(),
        data_sent: 0,
        data_tried: 0,
        closed_first: false,
        api_pongs: Vec::new(),
        stalled: false,
        write_failed: false,
    };
    let mut frames = Frames::new(agreed);
    let mut broken = false; // a rule was broken: keep reading, stop parsing
    let mut write_failed = false;
    let mut close_sent = false;
    let mut close_seen: Option<Option<u16>> = None;
    let mut buf = vec![0u8; 64 << 10];
    let start = Instant::now();
    let mut next_stall = plan.stall_every.map(|ms| start + rng.ms(0, ms));
    let mut got = Vec::new();
    // Writes a whole frame unless a write failed before (a partial frame
    // would corrupt what follows).
    let send = |io: &mut Io, frame: &[u8], failed: &mut bool| -> bool {
        if *failed {
            return false;
        }
        plan.status.lock().unwrap().doing = "writing";
        let ok = io.send_all(frame).is_ok();
        *failed = !ok;
        ok
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            log.end = End::Stopped;
            break;
        }
        *plan.status.lock().unwrap() = Status {
            doing: "in its loop",
            bytes: log.bytes,
            close_sent,
            close_seen: close_seen.is_some(),
            draining: drain.load(Ordering::Relaxed),
        };
        let closing_time = plan.close_after.is_some_and(|t| start.elapsed() >= t)
            || close_now.load(Ordering::Relaxed);
        if closing_time && !close_sent && close_seen.is_none() {
            let f = client_frame(
                &mut rng,
                0x8,
                &[&PEER_CLOSE.to_be_bytes()[..], b"peer done"].concat(),
            );
            close_sent = true;
            log.closed_first = send(&mut io, &f, &mut write_failed);
        }
        // Once the server is closed, the peer reads what is left at full speed.
        let draining = drain.load(Ordering::Relaxed);
        if !draining && rng.chance(plan.pause) {
            thread::sleep(Duration::from_micros(rng.range(10, 3000)));
        }
        if let (Some(at), Some(every)) = (next_stall, plan.stall_every) {
            if !draining && Instant::now() >= at {
                log.stalled = true;
                doing("stalled");
                let until = Instant::now() + rng.ms(50, plan.stall_max);
                while Instant::now() < until
                    && !stop.load(Ordering::Relaxed)
                    && !drain.load(Ordering::Relaxed)
                {
                    thread::sleep(Duration::from_millis(10));
                }
                next_stall = Some(Instant::now() + rng.ms(every / 2, every * 3 / 2));
            }
        }
        if !close_sent && close_seen.is_none() && rng.chance(plan.talk) {
            if rng.chance(500) {
                let f = client_frame(&mut rng, 0x9, b"peer ping");
                send(&mut io, &f, &mut write_failed);
            } else {
                let f = client_frame(&mut rng, 0x1, b"hello from a peer");
                log.data_tried += !write_failed as u64;
                if send(&mut io, &f, &mut write_failed) {
                    log.data_sent += 1;
                }
            }
        }
        let n = match draining {
            true => buf.len(),
            false => rng.range(1, plan.chunk as u64) as usize,
        };
        doing("reading");
        let n = match io.read(&mut buf[..n]) {
            Ok(0) => {
                log.end = match close_seen {
                    Some(code) => End::CloseFrame(code),
                    None => End::Eof,
                };
                break;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            // rustls: TCP closed without close_notify (a FIN all the same).
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                log.end = match close_seen {
                    Some(code) => End::CloseFrame(code),
                    None => End::Eof,
                };
                break;
            }
            Err(e) => {
                log.end = match close_seen {
                    Some(code) => End::CloseFrame(code),
                    None => End::Failed(e.kind()),
                };
                break;
            }
        };
        log.bytes += n as u64;
        if broken {
            continue;
        }
        got.clear();
        if let Err(e) = frames.feed(&buf[..n], &mut got) {
            log.violations.push(format!("peer {id}: {e}"));
            broken = true;
        }
        for g in got.drain(..) {
            match g {
                Got::Message(m) => match parse(&m) {
                    Ok((kind, sender, seq, _)) => log.received.push((kind, sender, seq)),
                    Err(e) => {
                        log.violations.push(format!("peer {id}: {e}"));
                        broken = true;
                    }
                },
                Got::Ping(p) => {
                    if !close_sent && close_seen.is_none() {
                        let f = client_frame(&mut rng, 0xa, &p);
                        let api = std::str::from_utf8(&p)
                            .ok()
                            .and_then(|s| s.strip_prefix("api:"))
                            .and_then(|s| s.parse::<u64>().ok());
                        if send(&mut io, &f, &mut write_failed) {
                            log.api_pongs.extend(api);
                        }
                    }
                }
                Got::Close(code) => {
                    close_seen = Some(code);
                    if !close_sent {
                        close_sent = true;
                        let echo = code.map(|c| c.to_be_bytes().to_vec()).unwrap_or_default();
                        let f = client_frame(&mut rng, 0x8, &echo);
                        send(&mut io, &f, &mut write_failed);
                    }
                }
                Got::Other => {}
            }
        }
    }
    log.write_failed = write_failed;
    Ok(log)
}

// ------------------------------------------------------------------ the sending side

/// What the API reported, per connection (peer).
#[derive(Default)]
struct Ledger {
    /// Per sender thread: accepted or not, by sequence number.
    sent: HashMap<u32, Vec<bool>>,
    /// Per sender thread: every accepted message below this number was
    /// confirmed by a `flush` that returned `Ok`.
    confirmed: HashMap<u32, usize>,
    /// `Connection::ping` numbers the API accepted.
    pings: Vec<u64>,
    next_ping: u64,
}

#[derive(Default)]
struct Tally {
    accepted: AtomicU64,
    refused: AtomicU64,
    timeouts: AtomicU64,
    streams_ok: AtomicU64,
    streams_failed: AtomicU64,
    broadcasts: AtomicU64,
    broadcast_recipients: AtomicU64,
    flush_ok: AtomicU64,
    flush_err: AtomicU64,
    pings: AtomicU64,
    closes: AtomicU64,
    closer_calls: AtomicU64,
    /// Longest `send` (never waits; issue 27 bug 1), in microseconds.
    slowest_send_us: AtomicU64,
}

/// Everything the hooks, senders and checker share in one epoch.
struct Shared {
    peers: usize,
    conns: Mutex<Vec<Option<Connection>>>,
    ledgers: Vec<Mutex<Ledger>>,
    /// Per broadcasting thread: the count each broadcast returned (None: refused).
    broadcasts: Mutex<HashMap<u32, Vec<Option<usize>>>>,
    /// Connection id -> peer.
    opened: Mutex<HashMap<u64, usize>>,
    /// Connection id -> every `on_close` call.
    closed: Mutex<HashMap<u64, Vec<(u16, String)>>>,
    /// (peer, ping number) -> pong hook runs.
    pongs: Mutex<HashMap<(usize, u64), usize>>,
    tally: Tally,
}

/// One sender thread's schedule.
fn run_sender(
    t: u32,
    patient: bool,
    mut rng: Rng,
    sh: &Arc<Shared>,
    push: &wsportal::Broadcaster,
    closer: &wsportal::Closer,
    stop: &AtomicBool,
) {
    let tally = &sh.tally;
    let mut bseq = 0u64;
    let no_streams = std::env::var_os("TORTURE_NO_STREAMS").is_some();

    while !stop.load(Ordering::Relaxed) {
        let peer = rng.range(0, sh.peers as u64 - 1) as usize;
        let Some(conn) = sh.conns.lock().unwrap()[peer].clone() else {
            thread::yield_now(); // only when a peer failed to open (already an error)
            continue;
        };
        let ledger = &sh.ledgers[peer];
        let next = || ledger.lock().unwrap().sent.entry(t).or_default().len() as u64;
        let record = |ok: bool| {
            ledger.lock().unwrap().sent.entry(t).or_default().push(ok);
            let counter = if ok { &tally.accepted } else { &tally.refused };
            counter.fetch_add(1, Ordering::Relaxed);
        };
        let op = match rng.range(0, 999) {
            // In a patient epoch, `send_timeout` stands in for `send` and
            // most broadcasts (which close a slow peer at once), so that
            // backlogs fill and waits time out.
            0..=299 if patient => 300,
            610..=709 if patient && !rng.chance(100) => 300,
            op => op,
        };
        match op {
            0..=299 => {
                let seq = next();
                let p = payload(b'm', t, seq, length(&mut rng));
                let started = Instant::now();
                let ok = match rng.range(0, 3) {
                    0 => conn.send(Message::Binary(p)).is_ok(),
                    1 => conn
                        .send(Message::Text(String::from_utf8(p).unwrap()))
                        .is_ok(),
                    2 => conn.send_binary(&p).is_ok(),
                    _ => conn.send_text(std::str::from_utf8(&p).unwrap()).is_ok(),
                };
                let us = started.elapsed().as_micros() as u64;
                tally.slowest_send_us.fetch_max(us, Ordering::Relaxed);
                record(ok);
            }
            300..=449 => {
                let seq = next();
                let p = payload(b'm', t, seq, length(&mut rng));
                let msg = match rng.chance(500) {
                    true => Message::Binary(p),
                    false => Message::Text(String::from_utf8(p).unwrap()),
                };
                match conn.send_timeout(msg, rng.ms(0, 300)) {
                    Ok(()) => record(true),
                    Err(e) => {
                        if matches!(e, SendTimeoutError::Timeout(_)) {
                            tally.timeouts.fetch_add(1, Ordering::Relaxed);
                        }
                        record(false);
                    }
                }
            }
            450..=549 => {
                // Everything recorded as accepted so far was queued before this call.
                let marks: Vec<(u32, usize)> = {
                    let l = ledger.lock().unwrap();
                    l.sent.iter().map(|(s, v)| (*s, v.len())).collect()
                };
                match conn.flush(rng.ms(0, 400)) {
                    Ok(()) => {
                        tally.flush_ok.fetch_add(1, Ordering::Relaxed);
                        let mut l = ledger.lock().unwrap();
                        for (s, n) in marks {
                            let c = l.confirmed.entry(s).or_default();
                            *c = (*c).max(n);
                        }
                    }
                    Err(_) => {
                        tally.flush_err.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            550..=609 if !no_streams => {
                let seq = next();
                let ok = stream(&conn, t, seq, &mut rng);
                let counter = if ok {
                    &tally.streams_ok
                } else {
                    &tally.streams_failed
                };
                counter.fetch_add(1, Ordering::Relaxed);
                record(ok);
            }
            610..=709 => {
                let p = payload(b'b', t, bseq, length(&mut rng));
                bseq += 1;
                let msg = match rng.chance(500) {
                    true => Message::Binary(p),
                    false => Message::Text(String::from_utf8(p).unwrap()),
                };
                let sent = match rng.chance(500) {
                    true => push.to_all(msg),
                    false => push.to_resource("/t", msg),
                };
                if let Ok(n) = sent {
                    tally.broadcasts.fetch_add(1, Ordering::Relaxed);
                    tally
                        .broadcast_recipients
                        .fetch_add(n as u64, Ordering::Relaxed);
                }
                sh.broadcasts
                    .lock()
                    .unwrap()
                    .entry(t)
                    .or_default()
                    .push(sent.ok());
            }
            710..=779 => {
                let n = {
                    let mut l = ledger.lock().unwrap();
                    l.next_ping += 1;
                    l.next_ping - 1
                };
                let payload = format!("api:{n}");
                let on_pong = {
                    let sh = Arc::clone(sh);
                    move |_: &Connection| {
                        *sh.pongs.lock().unwrap().entry((peer, n)).or_default() += 1;
                    }
                };
                if conn.ping(payload.as_bytes(), on_pong).is_ok() {
                    ledger.lock().unwrap().pings.push(n);
                    tally.pings.fetch_add(1, Ordering::Relaxed);
                }
            }
            780 if rng.chance(100) => {
                let code = [1000, 1001, 4000 + rng.range(0, 999) as u16][rng.range(0, 2) as usize];
                conn.close(code, "torture");
                tally.closes.fetch_add(1, Ordering::Relaxed);
            }
            782 if rng.chance(100) => {
                closer.close();
                tally.closer_calls.fetch_add(1, Ordering::Relaxed);
            }
            _ => thread::sleep(Duration::from_micros(rng.range(10, 2000))),
        }
    }
}

/// Sends one streamed message in random pieces; whether `finish` returned `Ok`.
fn stream(conn: &Connection, t: u32, seq: u64, rng: &mut Rng) -> bool {
    let len = match rng.chance(300) {
        true => rng.range(64 << 10, 300 << 10) as usize,
        false => length(rng),
    };
    let p = payload(b's', t, seq, len);
    let w = match rng.chance(500) {
        true => conn.stream_binary(),
        false => conn.stream_text(),
    };
    let Ok(mut w) = w else {
        return false;
    };
    let mut at = 0;
    while at < p.len() {
        let n = (rng.range(1, 40 << 10) as usize).min(p.len() - at);
        if w.write_all(&p[at..at + n]).is_err() {
            return false;
        }
        at += n;
        if rng.chance(200) && w.flush().is_err() {
            return false;
        }
    }
    w.finish().is_ok()
}

// ------------------------------------------------------------------ threads with bounded waits

/// A thread whose end is awaited with a bound, so that a hang fails the test.
struct Task<T> {
    what: String,
    rx: mpsc::Receiver<thread::Result<T>>,
    handle: thread::JoinHandle<()>,
}

fn spawn<T: Send + 'static>(what: String, f: impl FnOnce() -> T + Send + 'static) -> Task<T> {
    let (tx, rx) = mpsc::channel();
    let handle = thread::Builder::new()
        .name("torture".into())
        .spawn(move || {
            let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
        })
        .expect("spawning a test thread");
    Task { what, rx, handle }
}

impl<T> Task<T> {
    fn wait(self, within: Duration) -> Result<T, String> {
        match self.rx.recv_timeout(within) {
            Ok(done) => {
                let _ = self.handle.join();
                done.map_err(|p| {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    format!("{} panicked: {msg}", self.what)
                })
            }
            // The thread is left running: the test fails anyway.
            Err(_) => Err(format!("{} did not finish within {within:?}", self.what)),
        }
    }
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// `count()` once it is back to `expected`, or after a bounded wait: the
/// kernel drops a joined thread from `/proc/self/task` a moment after
/// `join` returns.
fn settled(count: fn() -> usize, expected: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = count();
        if n <= expected || Instant::now() >= deadline {
            return n;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

// ------------------------------------------------------------------ one epoch

/// Counts over a transport's epochs, for the report.
#[derive(Default, Debug)]
struct Totals {
    epochs: u64,
    connections: u64,
    accepted: u64,
    refused: u64,
    timeouts: u64,
    received: u64,
    received_bytes: u64,
    streams_ok: u64,
    broadcasts: u64,
    flush_ok: u64,
    flush_err: u64,
    /// Accepted messages a flush confirmed (checked when the peer's stream ended cleanly).
    flush_checked: u64,
    pings: u64,
    pongs_run: u64,
    closes: u64,
    closer_calls: u64,
    peer_closes: u64,
    shutdowns_in_flight: u64,
    shutdowns_quiet: u64,
    end_close_frame: u64,
    end_eof: u64,
    end_failed: u64,
    too_slow_1008: u64,
    steady_keepalive_closed: u64,
    /// `on_close` code and reason, counted.
    on_close: std::collections::BTreeMap<String, u64>,
    slowest_send_us: u64,
}

fn epoch(transport: Transport, env: &Arc<Env>, rng: &mut Rng, totals: &mut Totals) -> Vec<String> {
    let mut errors = Vec::new();
    let threads_before = threads();
    let fds_before = fds();
    let peers = rng.range(2, 6) as usize;
    let senders = rng.range(2, 4) as u32;
    let patient = rng.chance(500);
    let max_backlog = match patient {
        true => rng.range(64 << 10, 160 << 10),
        false => rng.range(64 << 10, 1 << 20),
    };
    let write_timeout = rng.ms(200, 1500);
    let config = Config::default()
        .max_backlog(max_backlog as usize)
        .write_timeout(write_timeout)
        .ping_interval(rng.chance(800).then(|| rng.ms(20, 500)))
        .ping_timeout(rng.ms(200, 3000))
        .close_timeout(rng.ms(100, 1500))
        .shutdown_grace(rng.ms(1, 800));
    #[cfg(feature = "deflate")]
    let config = config.deflate(Some(
        wsportal::Deflate::default()
            .min_size(rng.range(0, 300) as usize)
            .level(rng.range(1, 9) as u32),
    ));
    let sh = Arc::new(Shared {
        peers,
        conns: Mutex::new(vec![None; peers]),
        ledgers: (0..peers).map(|_| Mutex::default()).collect(),
        broadcasts: Mutex::default(),
        opened: Mutex::default(),
        closed: Mutex::default(),
        pongs: Mutex::default(),
        tally: Tally::default(),
    });
    let (opened_tx, opened_rx) = mpsc::channel::<usize>();
    let opened_tx = Mutex::new(opened_tx);
    let resource = Resource::new()
        .on_open({
            let sh = Arc::clone(&sh);
            move |ws| {
                let peer = ws
                    .request()
                    .query_param("peer")
                    .and_then(|p| p.parse::<usize>().ok());
                let Some(p) = peer.filter(|p| *p < sh.peers) else {
                    return;
                };
                sh.opened.lock().unwrap().insert(ws.id(), p);
                sh.conns.lock().unwrap()[p] = Some(ws.clone());
                let _ = opened_tx.lock().unwrap().send(p);
            }
        })
        .on_message(|_, _| {})
        .on_close({
            let sh = Arc::clone(&sh);
            move |ws, code, reason| {
                sh.closed
                    .lock()
                    .unwrap()
                    .entry(ws.id())
                    .or_default()
                    .push((code, reason.to_owned()))
            }
        });
    let mut server = Server::with_config(config);
    server.define_resource("/t", resource);
    let started = if transport.tls() {
        #[cfg(feature = "tls")]
        {
            server.start_tls("127.0.0.1:0", env.certs.server())
        }
        #[cfg(not(feature = "tls"))]
        unreachable!()
    } else {
        server.start("127.0.0.1:0")
    };
    let handle: ServerHandle = match started {
        Ok(h) => h,
        Err(e) => return vec![format!("starting the server: {e}")],
    };
    let addr = handle.local_addr();
    let push = handle.broadcaster();
    let closer = handle.closer();

    let stop_peers = Arc::new(AtomicBool::new(false));
    let close_now = Arc::new(AtomicBool::new(false));
    let drain = Arc::new(AtomicBool::new(false));
    let run = rng.ms(200, 1200);
    let statuses: Vec<Arc<Mutex<Status>>> = (0..peers).map(|_| Arc::default()).collect();
    let peer_tasks: Vec<Task<Result<PeerLog, String>>> = (0..peers)
        .map(|id| {
            let (steady, stuck) = (rng.chance(400), rng.chance(300));
            let plan = PeerPlan {
                id,
                addr,
                transport,
                rng: rng.fork(),
                chunk: [64, 1 << 10, 16 << 10, 64 << 10][rng.range(0, 3) as usize],
                // Not below 64 KiB: a window under loopback's MSS makes TCP
                // send a sliver per delayed ACK (about 10 KB/s), and a peer
                // then needs minutes to drain what the kernel holds.
                rcvbuf: [64 << 10, 256 << 10, 1 << 20, 4 << 20][rng.range(0, 3) as usize],
                pause: rng.range(0, 300),
                stall_every: match (steady, stuck) {
                    (true, _) => None,
                    (false, false) => Some(rng.range(300, 800)),
                    (false, true) => Some(rng.range(100, 300)),
                },
                stall_max: match stuck {
                    false => 500,
                    true => 3 * write_timeout.as_millis() as u64,
                },
                talk: rng.range(0, 50),
                close_after: rng.chance(200).then(|| rng.ms(10, run.as_millis() as u64)),
                status: Arc::clone(&statuses[id]),
            };
            let (env, stop, close_now, drain) = (
                Arc::clone(env),
                Arc::clone(&stop_peers),
                Arc::clone(&close_now),
                Arc::clone(&drain),
            );
            spawn(format!("peer {id}"), move || {
                run_peer(plan, &env, &stop, &close_now, &drain)
            })
        })
        .collect();
    for _ in 0..peers {
        if opened_rx.recv_timeout(BOUND).is_err() {
            errors.push(format!(
                "only some of the {peers} peers were opened within {BOUND:?}"
            ));
            break;
        }
    }

    let stop_senders = Arc::new(AtomicBool::new(false));
    let sender_tasks: Vec<Task<()>> = (0..senders)
        .map(|t| {
            let (r, sh, push, closer, stop) = (
                rng.fork(),
                Arc::clone(&sh),
                push.clone(),
                closer.clone(),
                Arc::clone(&stop_senders),
            );
            spawn(format!("sender {t}"), move || {
                run_sender(t, patient, r, &sh, &push, &closer, &stop)
            })
        })
        .collect();
    let asked = handle.wait_timeout(run);
    let wait_senders = |tasks: Vec<Task<()>>, errors: &mut Vec<String>| {
        stop_senders.store(true, Ordering::Relaxed);
        for t in tasks {
            if let Err(e) = t.wait(BOUND) {
                errors.push(e);
            }
        }
    };
    let mut sender_tasks = Some(sender_tasks);
    if asked || rng.chance(500) {
        totals.shutdowns_in_flight += 1;
    } else {
        totals.shutdowns_quiet += 1;
        wait_senders(sender_tasks.take().unwrap_or_default(), &mut errors);
        if rng.chance(500) {
            close_now.store(true, Ordering::Relaxed);
        }
    }
    if let Err(e) = spawn("ServerHandle::close".into(), move || handle.close()).wait(BOUND) {
        errors.push(e);
    }
    drain.store(true, Ordering::Relaxed);
    wait_senders(sender_tasks.take().unwrap_or_default(), &mut errors);
    let mut logs = Vec::new();
    for (t, status) in peer_tasks.into_iter().zip(&statuses) {
        match t.wait(BOUND) {
            Ok(Ok(log)) => logs.push(log),
            Ok(Err(e)) | Err(e) => {
                stop_peers.store(true, Ordering::Relaxed);
                let st = status.lock().unwrap().clone();
                errors.push(format!(
                    "{e} (it was {}, {} bytes read, close sent {}, close seen {}, draining {})",
                    st.doing, st.bytes, st.close_sent, st.close_seen, st.draining
                ));
            }
        }
    }
    let stats = push.stats();
    if logs.len() == peers {
        check(&sh, &logs, &stats, &mut errors, totals);
    }

    // Counts for the report.
    let t = &sh.tally;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    totals.epochs += 1;
    totals.connections += sh.opened.lock().unwrap().len() as u64;
    totals.accepted += get(&t.accepted);
    totals.refused += get(&t.refused);
    totals.timeouts += get(&t.timeouts);
    totals.streams_ok += get(&t.streams_ok);
    totals.broadcasts += get(&t.broadcasts);
    totals.flush_ok += get(&t.flush_ok);
    totals.flush_err += get(&t.flush_err);
    totals.pings += get(&t.pings);
    totals.pongs_run += sh.pongs.lock().unwrap().values().sum::<usize>() as u64;
    totals.closes += get(&t.closes);
    totals.closer_calls += get(&t.closer_calls);
    totals.slowest_send_us = totals.slowest_send_us.max(get(&t.slowest_send_us));
    for log in &logs {
        totals.received += log.received.len() as u64;
        totals.received_bytes += log.bytes;
        totals.peer_closes += log.closed_first as u64;
        match log.end {
            End::CloseFrame(code) => {
                totals.end_close_frame += 1;
                totals.too_slow_1008 += (code == Some(1008)) as u64;
            }
            End::Eof => totals.end_eof += 1,
            End::Failed(_) | End::Stopped => totals.end_failed += 1,
        }
    }

    // Nothing of the epoch may be left: drop the test's own handles first.
    sh.conns.lock().unwrap().iter_mut().for_each(|c| *c = None);
    drop((push, closer, server, logs, sh));
    let n = settled(threads, threads_before);
    if n != threads_before {
        errors.push(format!(
            "{n} threads after close(), {threads_before} before the epoch"
        ));
    }
    let n = settled(fds, fds_before);
    if n != fds_before {
        errors.push(format!(
            "{n} file descriptors after close(), {fds_before} before the epoch"
        ));
    }
    errors
}

// ------------------------------------------------------------------ the checker

fn check(
    sh: &Shared,
    logs: &[PeerLog],
    stats: &wsportal::Stats,
    errors: &mut Vec<String>,
    totals: &mut Totals,
) {
    let broadcasts = sh.broadcasts.lock().unwrap();
    let opened = sh.opened.lock().unwrap();
    let closed = sh.closed.lock().unwrap();
    let pongs = sh.pongs.lock().unwrap();
    let peer_conn: HashMap<usize, u64> = opened.iter().map(|(id, p)| (*p, *id)).collect();
    let mut received_plain = 0u64;
    for (p, log) in logs.iter().enumerate() {
        let ledger = sh.ledgers[p].lock().unwrap();
        let ended = format!(
            "peer {p} (ended {:?}, a write failed: {})",
            log.end, log.write_failed
        );
        let before = errors.len();
        // 1, 2: the wire rules and whole messages.
        errors.extend(log.violations.iter().cloned());
        // 3, 4: order, only accepted messages, prefixes; consecutive broadcasts.
        let mut direct: HashMap<u32, Vec<u64>> = HashMap::new();
        let mut bcast: HashMap<u32, Vec<u64>> = HashMap::new();
        for &(kind, s, seq) in &log.received {
            if kind == b'b' {
                bcast.entry(s).or_default().push(seq);
                received_plain += 1;
                continue;
            }
            received_plain += (kind == b'm') as u64;
            let accepted = ledger
                .sent
                .get(&s)
                .and_then(|v| v.get(seq as usize))
                .copied();
            if accepted != Some(true) {
                errors.push(format!(
                    "{ended}: got {}{s}:{seq}, which the API did not accept ({accepted:?})",
                    kind as char
                ));
            }
            let got = direct.entry(s).or_default();
            if got.last().is_some_and(|&last| seq <= last) {
                errors.push(format!(
                    "{ended}: got {}{s}:{seq} after {s}:{}",
                    kind as char,
                    got.last().unwrap()
                ));
            }
            got.push(seq);
        }
        for (s, got) in &direct {
            let accepted = ledger.sent.get(s).map(Vec::as_slice).unwrap_or_default();
            let last = *got.last().unwrap_or(&0) as usize;
            for (q, _) in accepted
                .iter()
                .enumerate()
                .take(last)
                .filter(|(_, ok)| **ok)
            {
                if got.binary_search(&(q as u64)).is_err() {
                    errors.push(format!(
                        "{ended}: accepted message {s}:{q} is missing, {s}:{last} arrived"
                    ));
                }
            }
        }
        for (b, got) in &bcast {
            for w in got.windows(2) {
                if w[1] != w[0] + 1 {
                    errors.push(format!(
                        "{ended}: broadcast b{b}:{} followed by b{b}:{}",
                        w[0], w[1]
                    ));
                }
            }
            for seq in got {
                let result = broadcasts
                    .get(b)
                    .and_then(|v| v.get(*seq as usize))
                    .copied()
                    .flatten();
                if result.is_none_or(|n| n < 1) {
                    errors.push(format!(
                        "{ended}: got broadcast b{b}:{seq}, which returned {result:?}"
                    ));
                }
            }
        }
        // 5: what flush confirmed arrived, when the stream ended cleanly.
        if log.clean() {
            for (s, &n) in &ledger.confirmed {
                let accepted = &ledger.sent[s][..n];
                let got = direct.get(s).map(Vec::as_slice).unwrap_or_default();
                let missing: Vec<usize> = accepted
                    .iter()
                    .enumerate()
                    .filter(|(_, ok)| **ok)
                    .map(|(q, _)| q)
                    .filter(|q| got.binary_search(&(*q as u64)).is_err())
                    .collect();
                totals.flush_checked += accepted.iter().filter(|ok| **ok).count() as u64;
                if let (Some(first), Some(last)) = (missing.first(), missing.last()) {
                    errors.push(format!(
                        "{ended}: flush confirmed {} messages of sender {s} that never arrived \
                         ({s}:{first} to {s}:{last}; confirmed up to {s}:{}; received from {s}: {:?})",
                        missing.len(),
                        n - 1,
                        got.iter().rev().take(5).rev().collect::<Vec<_>>(),
                    ));
                }
            }
        }
        // 6: opened once, on_close once.
        let Some(id) = peer_conn.get(&p) else {
            errors.push(format!("peer {p}: its connection never opened"));
            continue;
        };
        let ends = closed.get(id).cloned().unwrap_or_default();
        let codes: Vec<u16> = ends.iter().map(|(code, _)| *code).collect();
        for (code, reason) in &ends {
            *totals
                .on_close
                .entry(format!("{code} {reason}"))
                .or_default() += 1;
        }
        // Issue 27 bug 4, observed (timing, so not asserted): a peer that
        // never stalled closed by the keepalive.
        if !log.stalled && ends.iter().any(|(_, r)| r.contains("keepalive")) {
            totals.steady_keepalive_closed += 1;
        }
        if codes.len() != 1 {
            errors.push(format!(
                "{ended}: on_close ran {} times: {codes:?}",
                codes.len()
            ));
        }
        // 7: pong hooks.
        for n in &log.api_pongs {
            if !ledger.pings.contains(n) {
                errors.push(format!("{ended}: answered ping {n}, which the API refused"));
            }
            if codes == [PEER_CLOSE] && pongs.get(&(p, *n)) != Some(&1) {
                errors.push(format!(
                    "{ended}: its pong {n} was read before its close frame, but the pong hook ran {:?} times",
                    pongs.get(&(p, *n))
                ));
            }
        }
        if errors.len() > before {
            errors.push(format!(
                "{ended}: on_close {codes:?}, received {} messages ({} bytes), stalled {}, \
                 closed first {}, accepted per sender {:?}",
                log.received.len(),
                log.bytes,
                log.stalled,
                log.closed_first,
                ledger
                    .sent
                    .iter()
                    .map(|(s, v)| (*s, v.iter().filter(|ok| **ok).count(), v.len()))
                    .collect::<Vec<_>>(),
            ));
        }
    }
    if opened.len() != logs.len() {
        errors.push(format!(
            "{} connections opened for {} peers",
            opened.len(),
            logs.len()
        ));
    }
    for ((p, n), runs) in pongs.iter() {
        if *runs != 1 || !sh.ledgers[*p].lock().unwrap().pings.contains(n) {
            errors.push(format!("peer {p}: pong hook of ping {n} ran {runs} times"));
        }
    }
    // 8: stats.
    let opened_n = opened.len() as u64;
    let t = &sh.tally;
    let accepted_all =
        t.accepted.load(Ordering::Relaxed) + t.broadcast_recipients.load(Ordering::Relaxed);
    let closes: u64 = stats.closes_by_code.iter().map(|(_, n)| n).sum();
    let peer_sent: u64 = logs.iter().map(|l| l.data_tried).sum();
    let read_all: u64 = logs
        .iter()
        .enumerate()
        .filter(|(p, _)| {
            peer_conn
                .get(p)
                .and_then(|id| closed.get(id))
                .is_some_and(|c| c.len() == 1 && c[0].0 == PEER_CLOSE)
        })
        .map(|(_, l)| l.data_sent)
        .sum();
    let problems = [
        (stats.connections != 0, "connections open after close()"),
        (
            stats.websocket_accepted != opened_n,
            "websocket_accepted != connections opened",
        ),
        (
            closes != opened_n,
            "closes_by_code total != connections opened",
        ),
        (
            stats.messages_sent < received_plain,
            "messages_sent < messages peers received (streams aside)",
        ),
        (
            stats.messages_sent > accepted_all,
            "messages_sent > messages the API accepted",
        ),
        (
            stats.messages_received > peer_sent,
            "messages_received > messages peers sent",
        ),
        (
            stats.messages_received < read_all,
            "messages_received < messages of peers whose close frame was read",
        ),
    ];
    for (bad, what) in problems {
        if bad {
            errors.push(format!(
                "stats: {what} (opened {opened_n}, accepted {accepted_all}, peers received {received_plain} \
                 not streamed, peers sent {peer_sent}, of which before a read close {read_all}): {stats:?}"
            ));
        }
    }
}

// ------------------------------------------------------------------ the test

fn env_seed() -> u64 {
    match std::env::var("TORTURE_SEED") {
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("TORTURE_SEED={s:?} is not a number"))
        }
        Err(_) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            Rng(now.as_nanos() as u64 ^ ((std::process::id() as u64) << 32)).next()
        }
    }
}

#[test]
fn torture() {
    let seed = env_seed();
    let seconds: f64 = std::env::var("TORTURE_SECONDS")
        .ok()
        .map(|s| {
            s.trim()
                .parse()
                .expect("TORTURE_SECONDS is a number of seconds")
        })
        .unwrap_or(3.0);
    let wanted = std::env::var("TORTURE_TRANSPORTS").ok();
    let transports: Vec<Transport> = Transport::available()
        .into_iter()
        .filter(|t| match wanted.as_deref() {
            Some(w) => w.split(',').any(|n| n.trim() == t.name()),
            None => true,
        })
        .collect();
    let names: Vec<&str> = transports.iter().map(|t| t.name()).collect();
    println!("torture: seed {seed} ({seconds} s per transport: {names:?}; TORTURE_SEED={seed} repeats the schedule)");
    let env = Arc::new(Env {
        #[cfg(feature = "tls")]
        certs: tls::Certs::new(),
    });
    for &transport in &transports {
        // Each transport's schedule depends on the seed and the transport only.
        let mut rng = Rng(seed ^ (transport as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F));
        let mut totals = Totals::default();
        let start = Instant::now();
        while totals.epochs == 0 || start.elapsed().as_secs_f64() < seconds {
            let errors = epoch(transport, &env, &mut rng, &mut totals);
            if !errors.is_empty() {
                let shown: Vec<&String> = errors.iter().take(30).collect();
                panic!(
                    "torture seed {seed} (TORTURE_SEED={seed} TORTURE_TRANSPORTS={}), epoch {}: {} failures:\n  {}",
                    transport.name(),
                    totals.epochs,
                    errors.len(),
                    shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  ")
                );
            }
        }
        let t = &totals;
        println!(
            "torture {:<11} seed {seed}: {} epochs, {} connections, messages accepted {} (refused {}, \
             send_timeout timeouts {}), received {} ({} bytes), streams {}, broadcasts {}, \
             flushes ok {} (err {}), flush-confirmed messages checked {}, pings {} (pong hooks {}), \
             closes {}, peer closes {}, closer calls {}, shutdowns {} in flight + {} quiet, \
             peer ends: close frame {} (1008: {}), EOF {}, failed {}; steady peers closed by \
             the keepalive {}, slowest send {} us",
            transport.name(),
            t.epochs,
            t.connections,
            t.accepted,
            t.refused,
            t.timeouts,
            t.received,
            t.received_bytes,
            t.streams_ok,
            t.broadcasts,
            t.flush_ok,
            t.flush_err,
            t.flush_checked,
            t.pings,
            t.pongs_run,
            t.closes,
            t.peer_closes,
            t.closer_calls,
            t.shutdowns_in_flight,
            t.shutdowns_quiet,
            t.end_close_frame,
            t.too_slow_1008,
            t.end_eof,
            t.end_failed,
            t.steady_keepalive_closed,
            t.slowest_send_us,
        );
        println!(
            "torture {:<11} on_close: {:?}",
            transport.name(),
            t.on_close
        );
    }
}
