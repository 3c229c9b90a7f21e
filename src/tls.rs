//! TLS (feature `tls`): [`TlsConfig`] for [`Server::start_tls`](crate::Server::start_tls), the
//! client's configuration for `wss://`, and [`Session`], one connection's
//! TLS state as the transport reads and writes through it.
//!
//! Built on rustls with the `ring` crypto provider, passed explicitly to
//! every configuration we build: nothing depends on a process-wide default
//! provider being installed (rustls panics when none or two are).
//!
//! # Locking (architecture invariant)
//!
//! rustls keeps one state for both directions, while the connection's own
//! thread sits blocked reading and other threads write. The state's lock
//! (`state`) is never held across a socket call:
//!
//! - The reader reads ciphertext from the socket holding only `reader`, its
//!   own lock (only the connection's own thread reads), then locks the state
//!   to hand the bytes to rustls and take plaintext out. A quiet connection
//!   waits on a 1 KiB stack buffer, after letting rustls shrink its record
//!   buffer to 4 KiB (its floor) and dropping `out`'s allocation if it is
//!   empty and free (`try_lock` only), and its own buffer for large reads;
//!   a read that filled its buffer makes the next one take a whole record at
//!   once (into that 17 KiB heap buffer, kept while such reads go on). A
//!   busy connection reuses both buffers from message to message.
//! - A writer holds `out` (the unsent ciphertext), locks the state only to
//!   encrypt into `out`, releases it, then writes `out` to the socket by the
//!   plain socket's rule: `MSG_DONTWAIT` for every thread, a blocking write
//!   only on the connection's own thread. What the socket does not take
//!   stays in `out`, in order, ahead of anything encrypted later; only the
//!   outbox's writer-role holder writes, so `out` is never contended, and its
//!   lock makes it impossible for two writers to interleave records anyway.
//! - Lock order: `out`, then `state`; `reader`, then `state`. The reader
//!   never waits for `out` (it only try-locks it, holding nothing else but
//!   `reader`, to drop an empty buffer), a writer never takes `reader`.
//! - Unsent ciphertext makes the transport's `flush` answer `WouldBlock`, so
//!   the outbox keeps the writer role (it hands it to the housekeeper) until
//!   `out` is empty: a stalled TLS socket is finished, or cut off with 1008
//!   at its write timeout, exactly like a plain one. Progress is counted in
//!   plaintext (what rustls took), so a retry that sends only part of one
//!   step's ciphertext (at most [`STEP`] bytes of plaintext) counts as none.
//! - Records rustls makes while reading (a key update, an alert) wait in the
//!   state and leave ahead of the next write.
//!
//! A broadcast is still encoded once; only encryption is per connection.
//! The handshake runs on the connection's own thread within the handshake
//! timeout. What an idle TLS connection costs beyond a plain one (rustls's
//! state, the handshake's stack, glibc's per-thread cache) is measured in
//! `bench/README.md` (`wss-idle`).

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use parking_lot::Mutex;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::outbox::is_full;
use crate::transport::write_raw;
use crate::Error;

/// Ciphertext read from the socket at once while more is coming (on the
/// heap, for that read only): a whole record of the largest size.
const READ_CHUNK: usize = 17 * 1024;
/// Ciphertext read at once otherwise (on the stack): a quiet connection's
/// thread waits in `read` touching no more stack than this, and no heap.
const READ_SMALL: usize = 1024;
/// Plaintext encrypted at once before the ciphertext is written.
const STEP: usize = 64 * 1024;

/// The `ring` crypto provider, passed explicitly.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server's TLS settings for [`Server::start_tls`](crate::Server::start_tls):
/// a certificate chain and its private key (from PEM files), or a whole
/// `rustls::ServerConfig` of the caller's. Cheap to clone.
#[derive(Clone)]
pub struct TlsConfig {
    config: Arc<rustls::ServerConfig>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("alpn_protocols", &self.config.alpn_protocols)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Reads a PEM certificate chain (the server's certificate first, then
    /// any intermediates) and a PEM private key (PKCS#8, PKCS#1 or SEC1),
    /// and builds a configuration with rustls's safe defaults (TLS 1.2 and
    /// 1.3), the `ring` provider, and ALPN `http/1.1`.
    ///
    /// # Errors
    /// [`Error::Tls`] naming the file when it cannot be read, holds no
    /// certificate (or no key) or bad PEM, or when the key does not match
    /// the certificate.
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<TlsConfig, Error> {
        let (cert_path, key_path) = (cert_chain.as_ref(), key.as_ref());
        let certs = read_certs(cert_path)?;
        let key = PrivateKeyDer::from_pem_file(key_path)
            .map_err(|e| pem_error(key_path, "private key", e))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| {
                Error::Tls(format!(
                    "the key in {} does not fit the certificate in {}: {e}",
                    key_path.display(),
                    cert_path.display()
                ))
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConfig {
            config: Arc::new(config),
        })
    }

    /// Uses the caller's own rustls configuration (client certificates,
    /// several certificates by SNI, another crypto provider...). Its
    /// `alpn_protocols` should be empty or offer `http/1.1`: wsportal speaks
    /// HTTP/1.1 only.
    pub fn from_server_config(config: Arc<rustls::ServerConfig>) -> TlsConfig {
        TlsConfig { config }
    }

    /// A new server session for one connection.
    pub(crate) fn session(&self) -> Result<Session, rustls::Error> {
        let conn = rustls::ServerConnection::new(Arc::clone(&self.config))?;
        Ok(Session::new(conn.into()))
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, "certificate", e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, "certificate", e))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!("no certificate in {}", path.display())));
    }
    Ok(certs)
}

fn pem_error(path: &Path, what: &str, e: rustls::pki_types::pem::Error) -> Error {
    use rustls::pki_types::pem::Error as Pem;
    Error::Tls(match e {
        Pem::Io(e) => format!("cannot read {}: {e}", path.display()),
        Pem::NoItemsFound => format!("no {what} in {}", path.display()),
        e => format!("bad PEM in {}: {e}", path.display()),
    })
}

/// Parses PEM root certificates (for `Client::add_root_certificate`).
pub(crate) fn parse_roots(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("bad PEM in a root certificate: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Tls(
            "no certificate in a root certificate's PEM".into(),
        ));
    }
    Ok(certs)
}

/// The client configuration: the bundled Mozilla roots (`webpki-roots`) and
/// any `extra` roots, the `ring` provider, ALPN `http/1.1`.
pub(crate) fn client_config(
    extra: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ClientConfig>, Error> {
    static DEFAULT: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    if extra.is_empty() {
        if let Some(c) = DEFAULT.get() {
            return Ok(Arc::clone(c));
        }
    }
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in extra {
        roots
            .add(cert.clone())
            .map_err(|e| Error::Tls(format!("unusable root certificate: {e}")))?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    if extra.is_empty() {
        return Ok(Arc::clone(DEFAULT.get_or_init(|| config)));
    }
    Ok(config)
}

/// A new client session for `host` (a DNS name, sent as SNI and verified
/// against the certificate, or an IP address, verified without SNI).
pub(crate) fn client_session(
    config: &Arc<rustls::ClientConfig>,
    host: &str,
) -> Result<Session, Error> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| Error::InvalidInput("the url's host is not a valid TLS server name"))?;
    let conn = rustls::ClientConnection::new(Arc::clone(config), name)
        .map_err(|e| Error::Tls(e.to_string()))?;
    Ok(Session::new(conn.into()))
}

/// The reason in a TLS error the transport reported, if it is one.
pub(crate) fn reason(e: &io::Error) -> Option<String> {
    e.get_ref()?
        .downcast_ref::<rustls::Error>()
        .map(ToString::to_string)
}

/// One connection's TLS state; see the module documentation for its locks.
pub(crate) struct Session {
    /// The rustls state: locked only to hand bytes in or take bytes out.
    state: Mutex<rustls::Connection>,
    /// Encrypted, not yet written: the writer-role holder's.
    out: Mutex<Pending>,
    /// The reader's own state (only the connection's thread reads).
    reader: Mutex<ReadSide>,
}

#[derive(Default)]
struct ReadSide {
    /// Received ciphertext rustls could not take yet (it still held
    /// plaintext).
    unfed: Vec<u8>,
    /// The last read filled its buffer: more is likely waiting, so the
    /// next read takes a whole record's worth.
    big: bool,
    /// The buffer of those reads ([`READ_CHUNK`] bytes once made), kept
    /// while they go on and dropped before a quiet wait.
    chunk: Vec<u8>,
}

/// A reader with nothing to give: lets rustls shrink its buffer for
/// incoming records (4 KiB while it holds no partial record) without
/// taking it for the end of the stream.
struct Nothing;

impl Read for Nothing {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    start: usize,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.start == self.buf.len()
    }

    /// Writes what is held; `Ok(false)` when the socket is full (a short
    /// write counts as full: a second one would only say so).
    fn drain(&mut self, tcp: &TcpStream, wait: bool) -> io::Result<bool> {
        while !self.is_empty() {
            let left = self.buf.len() - self.start;
            match write_raw(tcp, &[IoSlice::new(&self.buf[self.start..])], wait) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => {
                    self.start += k;
                    if k < left {
                        return Ok(false);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_full(&e) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        self.start = 0;
        self.buf.clear();
        Ok(true)
    }
}

/// Moves rustls's outgoing records into `out`.
fn take_records(state: &mut rustls::Connection, out: &mut Pending) -> io::Result<()> {
    while state.wants_write() {
        state.write_tls(&mut out.buf)?;
    }
    Ok(())
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl Session {
    fn new(mut conn: rustls::Connection) -> Session {
        // We bound what we encrypt at once (STEP) and take every record out
        // at once; rustls's own limit would only make it refuse plaintext.
        conn.set_buffer_limit(None);
        Session {
            state: Mutex::new(conn),
            out: Mutex::new(Pending::default()),
            reader: Mutex::new(ReadSide::default()),
        }
    }

    /// Runs the handshake on the calling thread (the connection's own),
    /// reading and writing with the socket's timeouts set to what is left
    /// before `deadline`.
    pub(crate) fn handshake(&self, tcp: &TcpStream, deadline: Instant) -> io::Result<()> {
        let left = || {
            let left = deadline.saturating_duration_since(Instant::now());
            match left.is_zero() {
                true => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the TLS handshake took too long",
                )),
                false => Ok(left),
            }
        };
        // rustls takes at most 4 KiB more at a time during a handshake.
        let mut raw = vec![0u8; 4096];
        loop {
            {
                let mut out = self.out.lock();
                take_records(&mut self.state.lock(), &mut out)?;
                if !out.is_empty() {
                    tcp.set_write_timeout(Some(left()?))?;
                    if !out.drain(tcp, true)? {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the TLS handshake took too long",
                        ));
                    }
                }
            }
            if !self.state.lock().is_handshaking() {
                // The handshake's flights were the largest writes yet.
                self.out.lock().buf = Vec::new();
                return Ok(());
            }
            tcp.set_read_timeout(Some(left()?))?;
            let n = match (&*tcp).read(&mut raw) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed the connection during the TLS handshake",
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_full(&e) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the TLS handshake took too long",
                    ))
                }
                Err(e) => return Err(e),
            };
            let fed = self.feed(&mut self.reader.lock(), &raw[..n]);
            if let Err(e) = fed {
                // Tell the peer why (an alert), best effort and without waiting.
                let mut out = self.out.lock();
                if take_records(&mut self.state.lock(), &mut out).is_ok() {
                    let _ = out.drain(tcp, false);
                }
                return Err(e);
            }
        }
    }

    /// Hands received ciphertext to rustls (under the state lock), keeping
    /// what it cannot take while it holds plaintext.
    fn feed(&self, side: &mut ReadSide, fresh: &[u8]) -> io::Result<()> {
        let held = std::mem::take(&mut side.unfed);
        let joined: Vec<u8>;
        let mut slice: &[u8] = match held.is_empty() {
            true => fresh,
            false => {
                let mut h = held;
                h.extend_from_slice(fresh);
                joined = h;
                &joined
            }
        };
        let mut state = self.state.lock();
        // An empty slice tells rustls the socket ended.
        let eof = slice.is_empty();
        loop {
            let k = state.read_tls(&mut slice)?;
            let io = state.process_new_packets().map_err(tls_error)?;
            if k == 0 {
                // The end, or after `close_notify`: nothing more is read.
                return Ok(());
            }
            if eof || slice.is_empty() || io.plaintext_bytes_to_read() > 0 {
                break;
            }
        }
        if !slice.is_empty() {
            side.unfed = slice.to_vec();
        }
        Ok(())
    }

    /// Reads plaintext: takes what rustls holds, else reads the socket
    /// (holding no lock), feeds rustls and tries again. An end of the
    /// socket without TLS's `close_notify` reads as an ordinary end: the
    /// WebSocket close handshake (or HTTP's length) says whether anything
    /// was cut short.
    pub(crate) fn read(&self, tcp: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state.lock().reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            // The reader's lock is the reader's alone: holding it while
            // blocked on the socket keeps nobody waiting.
            let mut side = self.reader.lock();
            if !side.unfed.is_empty() {
                self.feed(&mut side, &[])?;
                continue;
            }
            if side.big {
                let mut raw = std::mem::take(&mut side.chunk);
                raw.resize(READ_CHUNK, 0);
                let fed = (&*tcp).read(&mut raw).and_then(|n| {
                    side.big = n == raw.len();
                    self.feed(&mut side, &raw[..n])
                });
                side.chunk = raw;
                fed?;
            } else {
                // Maybe a long wait: first let rustls give back what its
                // buffer grew to for the last records, and drop our
                // ciphertext buffer if it is empty and no writer holds it
                // (only tried: the reader never waits for `out`).
                let _ = self.state.lock().read_tls(&mut Nothing);
                if let Some(mut out) = self.out.try_lock() {
                    if out.is_empty() {
                        *out = Pending::default();
                    }
                }
                side.chunk = Vec::new();
                let mut raw = [0u8; READ_SMALL];
                let n = (&*tcp).read(&mut raw)?;
                side.big = n == raw.len();
                self.feed(&mut side, &raw[..n])?;
            }
        }
    }

    /// Encrypts `bufs` (a step at a time) and writes the ciphertext; returns
    /// the plaintext taken. What was held from an earlier write goes first;
    /// while some is still held, nothing new is taken (`WouldBlock`).
    pub(crate) fn write_vectored(
        &self,
        tcp: &TcpStream,
        bufs: &[IoSlice<'_>],
        wait: bool,
    ) -> io::Result<usize> {
        let mut out = self.out.lock();
        if !out.drain(tcp, wait)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut taken = 0;
        while taken < total {
            let mut window = [IoSlice::new(&[]); 16];
            let n = window_at(bufs, taken, &mut window);
            let step = {
                let mut state = self.state.lock();
                let step = state.writer().write_vectored(&window[..n])?;
                take_records(&mut state, &mut out)?;
                step
            };
            if step == 0 {
                break;
            }
            taken += step;
            if !out.drain(tcp, wait)? {
                break;
            }
        }
        Ok(taken)
    }

    /// Sends TLS's `close_notify` before the socket is shut: best effort,
    /// never waiting, and not at all while a writer is busy (its records
    /// must not be cut into).
    pub(crate) fn close_notify(&self, tcp: &TcpStream) {
        let Some(mut out) = self.out.try_lock() else {
            return;
        };
        let taken = {
            let mut state = self.state.lock();
            state.send_close_notify();
            take_records(&mut state, &mut out)
        };
        if taken.is_ok() {
            let _ = out.drain(tcp, false);
        }
    }

    /// Writes the ciphertext held (and any record rustls made meanwhile);
    /// `WouldBlock` while the socket does not take it all.
    pub(crate) fn flush(&self, tcp: &TcpStream, wait: bool) -> io::Result<()> {
        let mut out = self.out.lock();
        take_records(&mut self.state.lock(), &mut out)?;
        match out.drain(tcp, wait)? {
            true => Ok(()),
            false => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// Fills `window` with slices of `bufs` from byte `from`, at most [`STEP`]
/// bytes in all; returns how many slices it used.
fn window_at<'a>(bufs: &'a [IoSlice<'_>], mut from: usize, window: &mut [IoSlice<'a>]) -> usize {
    let mut n = 0;
    let mut room = STEP;
    for b in bufs {
        if n == window.len() || room == 0 {
            break;
        }
        let b: &'a [u8] = b;
        if from >= b.len() {
            from -= b.len();
            continue;
        }
        let part = &b[from..];
        from = 0;
        let part = &part[..part.len().min(room)];
        room -= part.len();
        window[n] = IoSlice::new(part);
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{Stream, Transport};
    use std::net::TcpListener;
    use std::time::Duration;

    /// A server and a client session over loopback, each with its socket,
    /// handshake done.
    fn sessions() -> ((Session, TcpStream), (Session, TcpStream)) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = made.cert.der().clone();
        let key = PrivateKeyDer::try_from(made.signing_key.serialize_der()).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let tls = TlsConfig::from_server_config(Arc::new(server));
        let client = client_config(&[cert]).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (theirs, _) = listener.accept().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let shaking = std::thread::spawn(move || {
            let session = tls.session().unwrap();
            session.handshake(&theirs, deadline).unwrap();
            (session, theirs)
        });
        let session = client_session(&client, "localhost").unwrap();
        session.handshake(&ours, deadline).unwrap();
        (shaking.join().unwrap(), (session, ours))
    }

    /// A server and a client `Stream` over loopback, handshake done.
    fn pair() -> (Stream, Stream) {
        let ((server, theirs), (client, ours)) = sessions();
        (Stream::tls(theirs, server), Stream::tls(ours, client))
    }

    #[test]
    fn unsent_ciphertext_is_held_in_order_and_flush_reports_it() {
        let (server, client) = pair();
        client
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        // Write without waiting until the socket is full: everything taken
        // is either on its way or held as ciphertext.
        let mut sent = Vec::new();
        let mut seq = 0u32;
        loop {
            let chunk: Vec<u8> = (0..10_000u32).map(|i| (i ^ seq) as u8).collect();
            seq += 1;
            match Transport::nowait(&server).write(&chunk) {
                Ok(n) => {
                    sent.extend_from_slice(&chunk[..n]);
                    if n < chunk.len() {
                        break;
                    }
                }
                Err(e) if is_full(&e) => break,
                Err(e) => panic!("{e}"),
            }
            assert!(
                sent.len() < 1 << 30,
                "the peer never read, yet 1 GiB was taken"
            );
        }
        // While held ciphertext is still there, nothing new is taken.
        if Transport::nowait(&server).flush().is_err() {
            assert!(is_full(
                &Transport::nowait(&server).write(b"x").unwrap_err()
            ));
        }
        let total = sent.len();
        let reader = std::thread::spawn(move || {
            let mut got = vec![0u8; total];
            Transport::waiting(&client).read_exact(&mut got).unwrap();
            got
        });
        // The housekeeper's part: retry until everything held is out.
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Err(e) = Transport::nowait(&server).flush() {
            assert!(is_full(&e), "{e}");
            assert!(Instant::now() < deadline, "the held ciphertext never left");
            std::thread::yield_now();
        }
        assert!(reader.join().unwrap() == sent, "bytes lost or out of order");
    }

    #[test]
    fn a_quiet_wait_holds_no_ciphertext_buffer() {
        let ((server, theirs), (session, ours)) = sessions();
        // A write leaves its (small) buffer allocated for the next one...
        let msg = [7u8; 1000];
        let n = server
            .write_vectored(&theirs, &[IoSlice::new(&msg)], true)
            .unwrap();
        assert_eq!(n, msg.len());
        assert!(server.out.lock().buf.capacity() > 0);
        let mut got = [0u8; 1000];
        let mut have = 0;
        ours.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        while have < got.len() {
            have += session.read(&ours, &mut got[have..]).unwrap();
        }
        assert!(got == msg);
        // ...until the server's reader waits on a quiet socket (here it
        // times out, having passed the point where it waits).
        theirs
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let mut buf = [0u8; 100];
        let e = server.read(&theirs, &mut buf).unwrap_err();
        assert!(is_full(&e), "{e}");
        assert_eq!(server.out.lock().buf.capacity(), 0);
        // And the next write still works.
        server
            .write_vectored(&theirs, &[IoSlice::new(b"again")], true)
            .unwrap();
        let n = session.read(&ours, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"again");
    }

    #[test]
    fn a_window_takes_at_most_a_step_from_an_offset() {
        let a = vec![1u8; 10];
        let b = vec![2u8; STEP];
        let bufs = [IoSlice::new(&a), IoSlice::new(&b)];
        let mut w = [IoSlice::new(&[]); 16];
        let n = window_at(&bufs, 4, &mut w);
        assert_eq!(n, 2);
        assert_eq!(w[0].len(), 6);
        assert_eq!(w[1].len(), STEP - 6);
        let n = window_at(&bufs, 10 + STEP - 6, &mut w);
        assert_eq!((n, w[0].len(), w[0][0]), (1, 6, 2));
    }
}
