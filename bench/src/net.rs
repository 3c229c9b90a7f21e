//! A single-threaded, non-blocking WebSocket client pool on mio.
//!
//! [`Net`] owns many client connections and drives them through
//! connect -> HTTP upgrade -> open. Scenario code reacts to [`Ev`] events in
//! a handler and queues bytes (precomputed frames) into each connection's
//! output buffer; `Net` writes them out and answers server pings itself.
//!
//! With [`Net::with_tls`] every connection speaks TLS (rustls, SNI
//! `localhost`) under the same WebSocket traffic: rustls is driven with
//! `read_tls`/`write_tls` on the non-blocking socket, as rustls's own mio
//! client example does. Without it a connection's only extra cost is one
//! enum match per read and per flush.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::deflate::{self, Agreement, Session};
use crate::frame::{self, FrameReader, OP_PING, OP_PONG};

/// What a connection reports to the scenario handler.
pub enum Ev<'a> {
    /// Connected, and (unless raw) the upgrade to WebSocket succeeded.
    Open,
    /// A complete message or control frame (pings are answered by `Net`
    /// and not reported).
    Msg(u8, &'a [u8]),
    /// The connection ended (EOF, reset or write error); it is then removed.
    Closed(String),
}

#[derive(PartialEq)]
enum Phase {
    Connecting,
    Handshake,
    Open,
}

struct Conn<S> {
    sock: TcpStream,
    /// The TLS state, over `sock`, when the pool speaks TLS.
    tls: Option<Box<rustls::ClientConnection>>,
    phase: Phase,
    /// Expected `Sec-WebSocket-Accept` value.
    accept: String,
    rd: FrameReader,
    out: Vec<u8>,
    out_pos: usize,
    /// When false, bytes are left unread once open (a stalled client).
    reading: bool,
    /// permessage-deflate was offered; then agreed (its inflater).
    offered: bool,
    z: Option<Session>,
    st: S,
}

/// Connection pool. `S` is the scenario's per-connection state.
pub struct Net<S> {
    poll: Poll,
    events: Events,
    conns: Vec<Option<Conn<S>>>,
    free: Vec<usize>,
    /// With several addresses, connections go to each in turn.
    addrs: Vec<SocketAddr>,
    connects: usize,
    path: String,
    /// Plain TCP: no handshake, and our own masked frames come back.
    raw: bool,
    read_capacity: usize,
    /// Offer permessage-deflate, and require it (see [`Net::offer_deflate`]).
    deflate: bool,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// The handler a scenario passes to [`Net::poll`]:
/// `(connection id, its state, its output buffer, event)`.
pub trait Handler<S>: FnMut(usize, &mut S, &mut Vec<u8>, Ev) -> Result<(), String> {}
impl<S, F: FnMut(usize, &mut S, &mut Vec<u8>, Ev) -> Result<(), String>> Handler<S> for F {}

impl<S> Net<S> {
    pub fn new(addr: SocketAddr, path: &str, raw: bool, read_capacity: usize) -> io::Result<Self> {
        Ok(Net {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            conns: Vec::new(),
            free: Vec::new(),
            addrs: vec![addr],
            connects: 0,
            path: path.to_string(),
            raw,
            read_capacity,
            deflate: false,
            tls: None,
        })
    }

    /// Offers permessage-deflate ([`deflate::OFFER`]) on every connection
    /// started from now on; a response that does not agree fails the run.
    pub fn offer_deflate(&mut self) {
        self.deflate = true;
    }

    /// What the server agreed to on connection `id`, once it is open.
    pub fn agreement(&self, id: usize) -> Option<Agreement> {
        let c = self.conns.get(id)?.as_ref()?;
        c.z.as_ref().map(|z| z.agreed)
    }

    /// Connection `id`'s compression counters (None without the extension).
    pub fn deflate_session(&self, id: usize) -> Option<&Session> {
        self.conns.get(id)?.as_ref()?.z.as_ref()
    }

    /// Spreads the connections started from now on over `addrs`, in turn
    /// (several server instances sharing a room).
    pub fn spread_over(&mut self, addrs: &[SocketAddr]) {
        if !addrs.is_empty() {
            self.addrs = addrs.to_vec();
        }
    }

    /// Makes every connection started from now on speak TLS with `config`
    /// (server name `localhost`); `None` keeps plain TCP.
    pub fn with_tls(mut self, config: Option<Arc<rustls::ClientConfig>>) -> Self {
        self.tls = config;
        self
    }

    /// Starts a new connection and returns its id. Ids of closed connections
    /// are reused, but only by connections started after the close.
    pub fn connect(&mut self, st: S) -> Result<usize, String> {
        let tls = match &self.tls {
            None => None,
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from("localhost")
                    .map_err(|e| e.to_string())?;
                let conn = rustls::ClientConnection::new(Arc::clone(config), name)
                    .map_err(|e| format!("TLS: {e}"))?;
                Some(Box::new(conn))
            }
        };
        let addr = self.addrs[self.connects % self.addrs.len()];
        self.connects += 1;
        let mut sock = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        let id = self.free.pop().unwrap_or(self.conns.len());
        self.poll
            .registry()
            .register(
                &mut sock,
                Token(id),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| format!("register: {e}"))?;
        let key = tungstenite::handshake::client::generate_key();
        let mut rd = FrameReader::new(self.read_capacity);
        rd.accept_masked = self.raw;
        let mut out = Vec::new();
        if !self.raw {
            let host = addr;
            let path = &self.path;
            let ext = if self.deflate {
                format!("Sec-WebSocket-Extensions: {}\r\n", deflate::OFFER)
            } else {
                String::new()
            };
            out = format!(
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n\
                 Sec-WebSocket-Version: 13\r\n{ext}\r\n"
            )
            .into_bytes();
        }
        let conn = Conn {
            sock,
            tls,
            phase: Phase::Connecting,
            accept: tungstenite::handshake::derive_accept_key(key.as_bytes()),
            rd,
            out,
            out_pos: 0,
            reading: true,
            offered: self.deflate && !self.raw,
            z: None,
            st,
        };
        if id == self.conns.len() {
            self.conns.push(Some(conn));
        } else {
            self.conns[id] = Some(conn);
        }
        Ok(id)
    }

    /// Ids of all live connections.
    pub fn ids(&self) -> Vec<usize> {
        (0..self.conns.len())
            .filter(|&i| self.conns[i].is_some())
            .collect()
    }

    /// Where a connection stands: `connecting`, `tls` (TLS handshake),
    /// `upgrade` (HTTP upgrade), `open`, or `gone`.
    pub fn phase(&self, id: usize) -> &'static str {
        match self.conns.get(id).and_then(Option::as_ref) {
            None => "gone",
            Some(c) => match c.phase {
                Phase::Connecting => "connecting",
                Phase::Handshake if c.tls.as_ref().is_some_and(|t| t.is_handshaking()) => "tls",
                Phase::Handshake => "upgrade",
                Phase::Open => "open",
            },
        }
    }

    pub fn state(&mut self, id: usize) -> Option<&mut S> {
        self.conns.get_mut(id)?.as_mut().map(|c| &mut c.st)
    }

    /// Closes and forgets a connection (no close handshake).
    pub fn drop_conn(&mut self, id: usize) {
        if self.conns.get_mut(id).and_then(Option::take).is_some() {
            self.free.push(id);
        }
    }

    /// Stops (false) or resumes (true) reading an open connection. Resuming
    /// runs the connection at once, since no readiness event will repeat.
    pub fn set_reading(
        &mut self,
        id: usize,
        reading: bool,
        h: &mut impl Handler<S>,
    ) -> Result<(), String> {
        if let Some(c) = self.conns.get_mut(id).and_then(Option::as_mut) {
            c.reading = reading;
            if reading {
                self.service(id, h)?;
            }
        }
        Ok(())
    }

    /// Queues bytes on a connection and tries to write them.
    pub fn send(&mut self, id: usize, bytes: &[u8], h: &mut impl Handler<S>) -> Result<(), String> {
        if let Some(c) = self.conns.get_mut(id).and_then(Option::as_mut) {
            c.out.extend_from_slice(bytes);
            if c.phase == Phase::Open {
                self.service(id, h)?;
            }
        }
        Ok(())
    }

    /// Waits up to `timeout` for readiness and runs the ready connections.
    pub fn poll(&mut self, timeout: Duration, h: &mut impl Handler<S>) -> Result<(), String> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(format!("poll: {e}")),
        }
        let ready: Vec<usize> = self.events.iter().map(|e| e.token().0).collect();
        for id in ready {
            self.service(id, h)?;
        }
        Ok(())
    }

    /// Advances one connection as far as it can go without blocking.
    fn service(&mut self, id: usize, h: &mut impl Handler<S>) -> Result<(), String> {
        let Some(c) = self.conns.get_mut(id).and_then(Option::as_mut) else {
            return Ok(());
        };
        let raw = self.raw;
        match drive(id, c, raw, h) {
            Ok(()) => Ok(()),
            Err(Fail::Closed(reason)) => {
                let res = h(id, &mut c.st, &mut Vec::new(), Ev::Closed(reason));
                self.drop_conn(id);
                res
            }
            Err(Fail::Fatal(e)) => Err(e),
        }
    }
}

/// Why driving a connection stopped.
enum Fail {
    /// The connection is gone (reported to the handler as [`Ev::Closed`]).
    Closed(String),
    /// Protocol or validation error: the whole run fails.
    Fatal(String),
}

impl From<String> for Fail {
    fn from(s: String) -> Self {
        Fail::Fatal(s)
    }
}

fn drive<S>(id: usize, c: &mut Conn<S>, raw: bool, h: &mut impl Handler<S>) -> Result<(), Fail> {
    if c.phase == Phase::Connecting {
        if let Ok(Some(e)) | Err(e) = c.sock.take_error() {
            return Err(Fail::Fatal(format!("connect failed: {e}")));
        }
        match c.sock.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
            Err(e) => return Err(Fail::Fatal(format!("connect failed: {e}"))),
        }
        let _ = c.sock.set_nodelay(true);
        if raw {
            c.phase = Phase::Open;
            h(id, &mut c.st, &mut c.out, Ev::Open)?;
        } else {
            c.phase = Phase::Handshake;
        }
    }
    flush(c)?;
    loop {
        if c.phase == Phase::Open && !c.reading {
            break;
        }
        let got = match &mut c.tls {
            None => c.rd.read_once(&mut c.sock),
            Some(tls) => c.rd.read_once(&mut TlsRead {
                tls,
                sock: &mut c.sock,
            }),
        };
        match got {
            Ok(Some(_)) => {}
            Ok(None) => {
                // Deliver what was complete before the EOF, then report it.
                deliver(id, c, h)?;
                return Err(Fail::Closed("EOF".into()));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(Fail::Closed(e.to_string())),
        }
        if c.phase == Phase::Handshake {
            check_upgrade(c)?;
            if c.phase == Phase::Open {
                h(id, &mut c.st, &mut c.out, Ev::Open)?;
            }
        }
        deliver(id, c, h)?;
    }
    flush(c)
}

/// Passes complete messages to the handler; answers pings.
fn deliver<S>(id: usize, c: &mut Conn<S>, h: &mut impl Handler<S>) -> Result<(), Fail> {
    if c.phase != Phase::Open || !c.reading {
        return Ok(());
    }
    let Conn { rd, out, st, z, .. } = c;
    rd.drain(|op, payload| {
        if op == OP_PING {
            out.extend_from_slice(&frame::client_frame(OP_PONG, payload, [9, 8, 7, 6]));
            Ok(())
        } else if op & deflate::RSV1 != 0 {
            // Only set once the extension was agreed (`allow_rsv1`).
            let z = z.as_mut().ok_or("RSV1 without permessage-deflate")?;
            let data = z.inflate(payload)?;
            h(id, st, out, Ev::Msg(op & !deflate::RSV1, data))
        } else {
            if let Some(z) = z {
                z.plain += 1;
            }
            h(id, st, out, Ev::Msg(op, payload))
        }
    })?;
    Ok(())
}

/// Parses the HTTP upgrade response once its header is complete.
fn check_upgrade<S>(c: &mut Conn<S>) -> Result<(), Fail> {
    let pending = c.rd.pending();
    let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
        if pending.len() > 16 * 1024 {
            return Err(Fail::Fatal("upgrade response header too long".into()));
        }
        return Ok(());
    };
    let head = String::from_utf8_lossy(&pending[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    if !status.starts_with("HTTP/1.1 101") {
        return Err(Fail::Fatal(format!("upgrade refused: {status:?}")));
    }
    let accept = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("sec-websocket-accept")
            .then(|| value.trim())
    });
    if accept != Some(c.accept.as_str()) {
        return Err(Fail::Fatal(format!("bad Sec-WebSocket-Accept: {accept:?}")));
    }
    if c.offered {
        let exts: Vec<&str> = head
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-extensions"))
            .map(|(_, value)| value.trim())
            .collect();
        c.z = Some(Session::new(Agreement::from_response(&exts)?));
        c.rd.allow_rsv1 = true;
    }
    c.rd.consume(end + 4);
    c.phase = Phase::Open;
    Ok(())
}

/// Plaintext from a TLS connection: what rustls holds, else ciphertext
/// read from the socket (and any handshake records rustls answers with
/// written back). `WouldBlock` when the socket has nothing more; `Ok(0)` at
/// the end, with or without `close_notify`.
struct TlsRead<'a> {
    tls: &'a mut rustls::ClientConnection,
    sock: &'a mut TcpStream,
}

impl Read for TlsRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.tls.reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                other => return other,
            }
            if self.tls.read_tls(self.sock)? == 0 {
                // The socket ended: let rustls see it, then report it.
                self.tls.process_new_packets().map_err(tls_error)?;
                return Ok(0);
            }
            self.tls.process_new_packets().map_err(tls_error)?;
            write_tls(self.tls, self.sock)?;
        }
    }
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}"))
}

/// Writes the ciphertext rustls holds until done or the socket is full.
fn write_tls(tls: &mut rustls::ClientConnection, sock: &mut TcpStream) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(sock) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes queued output until done or the socket is full.
fn flush<S>(c: &mut Conn<S>) -> Result<(), Fail> {
    if c.phase == Phase::Connecting {
        return Ok(());
    }
    match &mut c.tls {
        None => {
            while c.out_pos < c.out.len() {
                match c.sock.write(&c.out[c.out_pos..]) {
                    Ok(n) => c.out_pos += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Fail::Closed(format!("write: {e}"))),
                }
            }
        }
        // rustls takes plaintext up to its buffer limit (queued until the
        // handshake is done); what the socket does not take stays in it.
        Some(tls) => loop {
            let taken = tls
                .writer()
                .write(&c.out[c.out_pos..])
                .map_err(|e| Fail::Closed(format!("write: {e}")))?;
            c.out_pos += taken;
            if !tls.wants_write() {
                if taken == 0 || c.out_pos == c.out.len() {
                    break;
                }
                continue;
            }
            write_tls(tls, &mut c.sock).map_err(|e| Fail::Closed(format!("write: {e}")))?;
            if tls.wants_write() {
                break;
            }
        },
    }
    if c.out_pos == c.out.len() {
        c.out.clear();
        c.out_pos = 0;
    } else if c.out_pos > 1 << 20 {
        c.out.drain(..c.out_pos);
        c.out_pos = 0;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{client_frame, OP_BINARY};
    use std::time::Instant;

    /// A blocking TLS WebSocket echo server (rustls + tungstenite) on
    /// 127.0.0.1:0 for one connection, and the client configuration that
    /// trusts its certificate.
    fn tls_echo_server() -> (
        SocketAddr,
        Arc<rustls::ClientConfig>,
        std::thread::JoinHandle<()>,
    ) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = made.cert.der().clone();
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(made.signing_key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Arc::new(server);
        let serving = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let conn = rustls::ServerConnection::new(server).unwrap();
            let mut ws = tungstenite::accept(rustls::StreamOwned::new(conn, tcp)).unwrap();
            while let Ok(msg) = ws.read() {
                if msg.is_binary() || msg.is_text() {
                    ws.send(msg).unwrap();
                }
            }
        });
        (addr, Arc::new(client), serving)
    }

    #[test]
    fn tls_connections_carry_small_and_large_messages_both_ways() {
        let (addr, config, serving) = tls_echo_server();
        let mut net: Net<usize> = Net::new(addr, "/", false, 4096)
            .unwrap()
            .with_tls(Some(config));
        // Three messages queued at once, one larger than rustls's default
        // buffer limits, so that both sides fill and drain several times.
        let sizes = [64usize, 300_000, 64];
        let payload = |i: usize| -> Vec<u8> { (0..sizes[i]).map(|k| (k * 7 + i) as u8).collect() };
        let id = net.connect(0).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut done = false;
        while !done {
            assert!(Instant::now() < deadline, "the echoes never all came back");
            net.poll(
                Duration::from_millis(50),
                &mut |_, got: &mut usize, out: &mut Vec<u8>, ev: Ev| {
                    match ev {
                        Ev::Open => {
                            for i in 0..sizes.len() {
                                out.extend_from_slice(&client_frame(
                                    OP_BINARY,
                                    &payload(i),
                                    [1, 2, 3, 4],
                                ));
                            }
                        }
                        Ev::Msg(op, data) => {
                            assert_eq!(op, OP_BINARY);
                            assert!(data == payload(*got), "echo {} differs", *got);
                            *got += 1;
                            done = *got == sizes.len();
                        }
                        Ev::Closed(why) => panic!("closed: {why}"),
                    }
                    Ok(())
                },
            )
            .unwrap();
        }
        net.drop_conn(id);
        serving.join().unwrap();
    }
}
