//! Opening a client's connection: the socket (resolved, connected within
//! the deadline), TLS for `wss://`, and the HTTP exchange of the opening
//! handshake (the request written, the response head read within
//! `max_header_size`, a refusal's body read as HTTP delimits it).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::handshake::{self, BodyLength, Response, Target};
use super::Client;
use crate::transport::{Stream, Transport};
use crate::{Config, Error};

impl Client {
    /// Opens the connection to `target` within `deadline`: directly or
    /// through the proxy (a `CONNECT` tunnel), then TLS for `wss://`.
    /// Returns the stream and the address connected to (the proxy's when
    /// there is one).
    pub(super) fn open(
        &self,
        target: &Target,
        deadline: Instant,
    ) -> Result<(Stream, SocketAddr), Error> {
        let proxy = match &self.proxy {
            Some(setting) => setting.for_target(target)?,
            None => None,
        };
        let (tcp, peer) = match &proxy {
            Some(p) => {
                let (tcp, peer) = open_socket(&p.host, p.port, deadline)?;
                log::debug!(
                    "client: tunnelling to {}:{} through {peer}",
                    target.host,
                    target.port
                );
                super::proxy::tunnel(&tcp, target, p, deadline, self.config.max_header_size)?;
                (tcp, peer)
            }
            None => open_socket(&target.host, target.port, deadline)?,
        };
        let _ = tcp.set_nodelay(self.config.nodelay);
        Ok((self.secure(tcp, target, deadline)?, peer))
    }

    /// The socket as the URL asks: plain for `ws://`, TLS (handshake done,
    /// the server's certificate verified for the URL's host) for `wss://`.
    pub(super) fn secure(
        &self,
        tcp: TcpStream,
        target: &Target,
        deadline: Instant,
    ) -> Result<Stream, Error> {
        if !target.secure {
            return Ok(Stream::plain(tcp));
        }
        #[cfg(feature = "tls")]
        {
            let config = match &self.tls.config {
                Some(config) => std::sync::Arc::clone(config),
                None => {
                    let mut roots = Vec::new();
                    for pem in &self.tls.roots {
                        roots.extend(crate::transport::tls::parse_roots(pem)?);
                    }
                    crate::transport::tls::client_config(&roots)?
                }
            };
            let session = crate::transport::tls::client_session(&config, &target.host)?;
            let stream = Stream::tls(tcp, session);
            if let Err(e) = stream.handshake(deadline) {
                log::debug!("client: TLS handshake with {} failed: {e}", target.host);
                return Err(match crate::transport::tls::reason(&e) {
                    Some(reason) => Error::Tls(reason),
                    None if timed_out(&e) => Error::Timeout("handshake"),
                    None => Error::Io(e),
                });
            }
            Ok(stream)
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = deadline;
            Err(Error::InvalidInput("wss:// needs wsportal's `tls` feature"))
        }
    }
}

/// Resolves `host` and connects to the first address that answers.
pub(super) fn open_socket(
    host: &str,
    port: u16,
    deadline: Instant,
) -> Result<(TcpStream, SocketAddr), Error> {
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    let mut last = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout("connect"));
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => return Ok((s, addr)),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e)
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            Error::Timeout("connect")
        }
        Some(e) => Error::Io(e),
        None => Error::Io(io::Error::new(
            io::ErrorKind::NotFound,
            "the host name resolved to no address",
        )),
    })
}

/// Whether an I/O error means a socket timeout expired.
pub(super) fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// An I/O error of the handshake: [`Error::Timeout`] for a socket timeout.
pub(super) fn io_error(e: io::Error) -> Error {
    if timed_out(&e) {
        Error::Timeout("handshake")
    } else {
        Error::Io(e)
    }
}

/// The time left before `deadline`, or the handshake timeout error.
pub(super) fn left(deadline: Instant) -> Result<Duration, Error> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Error::Timeout("handshake"));
    }
    Ok(left)
}

/// Writes the request and reads the response head; returns the response and
/// the bytes that followed it (the first frames, or the start of a body).
pub(super) fn exchange(
    stream: &Stream,
    target: &Target,
    headers: &[(String, String)],
    deadline: Instant,
    c: &Config,
) -> Result<(Response, Vec<u8>), Error> {
    let io_err = io_error;
    stream.set_write_timeout(Some(left(deadline)?))?;
    let mut s = Transport::waiting(stream);
    s.write_all(&handshake::request_bytes(target, headers))
        .and_then(|()| s.flush())
        .map_err(io_err)?;
    let max = c.max_header_size;
    // The buffer grows to `max` and no further, as the server's `read_head`.
    let mut buf = vec![0u8; 1024.min(max)];
    let mut len = 0;
    loop {
        if let Some((response, end)) = handshake::parse_response(&buf[..len])? {
            return Ok((response, buf[end..len].to_vec()));
        }
        if len >= max {
            return Err(Error::Protocol("handshake: response head too large"));
        }
        if len == buf.len() {
            buf.resize((buf.len() * 2).min(max), 0);
        }
        stream.set_read_timeout(Some(left(deadline)?))?;
        match s.read(&mut buf[len..]) {
            Ok(0) => {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection during the handshake",
                )))
            }
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(e)),
        }
    }
}

/// Reads a refusal's body as HTTP delimits it (RFC 9112 section 6.3): none
/// for 1xx, 204 and 304, `Content-Length` bytes, a chunked body decoded, or
/// else until the server closes; at most `limit` bytes and never past the
/// deadline (a body cut short is returned as it is: the status is what
/// matters).
pub(super) fn read_body(
    stream: &Stream,
    response: &Response,
    leftover: Vec<u8>,
    deadline: Instant,
    limit: usize,
) -> Vec<u8> {
    let length = response.body_length();
    let mut body = Vec::new();
    let mut dechunker = handshake::Dechunker::default();
    // Chunk sizes, extensions and trailers are bounded too.
    let mut raw_left = limit.saturating_mul(2).saturating_add(64 << 10);
    let mut s = Transport::waiting(stream);
    let mut input = leftover;
    let mut chunk = vec![0u8; 4096];
    loop {
        let done = match length {
            BodyLength::Empty => true,
            BodyLength::Exactly(n) => {
                body.extend_from_slice(&input);
                body.len() >= n
            }
            BodyLength::Chunked => dechunker.feed(&input, &mut body) != Ok(false),
            BodyLength::UntilClose => {
                body.extend_from_slice(&input);
                false
            }
        };
        raw_left = raw_left.saturating_sub(input.len());
        if done || body.len() >= limit || raw_left == 0 {
            break;
        }
        let Ok(t) = left(deadline) else { break };
        if stream.set_read_timeout(Some(t)).is_err() {
            break;
        }
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => input = chunk[..n].to_vec(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => input.clear(),
            Err(_) => break,
        }
    }
    if let BodyLength::Exactly(n) = length {
        body.truncate(n);
    }
    body.truncate(limit);
    body
}
