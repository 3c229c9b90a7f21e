//! TLS (feature `tls`): wss:// and https:// on the server, wss:// in the
//! client, the write path's locking under concurrent senders, stalled TLS
//! peers, and what the TLS port does with garbage. Certificates are made
//! here, at test time, with rcgen.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tungstenite::WebSocket;
use wsportal::rustls::{self, pki_types::pem::PemObject, ClientConnection, StreamOwned};
use wsportal::{
    Client, Config, Connection, Error, Event, EventStream, Resource, Response, Server,
    ServerHandle, TlsConfig,
};

use crate::support::*;

pub(crate) type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A self-signed certificate for localhost, 127.0.0.1 and ::1, in PEM
/// files of a fresh directory.
pub(crate) struct Certs {
    pub(crate) cert_pem: String,
    cert: PathBuf,
    pub(crate) key: PathBuf,
}

impl Certs {
    pub(crate) fn new() -> Certs {
        Certs::for_names(&["localhost", "127.0.0.1", "::1"])
    }

    fn for_names(names: &[&str]) -> Certs {
        Certs::made(names, false)
    }

    /// A certificate for localhost that expired long ago.
    fn expired() -> Certs {
        Certs::made(&["localhost"], true)
    }

    fn made(names: &[&str], expired: bool) -> Certs {
        static N: AtomicUsize = AtomicUsize::new(0);
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let signing_key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&signing_key).unwrap();
        let made = rcgen::CertifiedKey { cert, signing_key };
        let dir = std::env::temp_dir().join(format!(
            "wsportal-tls-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        Certs {
            cert_pem: made.cert.pem(),
            cert,
            key,
        }
    }

    pub(crate) fn server(&self) -> TlsConfig {
        TlsConfig::from_pem_files(&self.cert, &self.key).unwrap()
    }

    /// A rustls client configuration that trusts only this certificate.
    pub(crate) fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        let der =
            rustls::pki_types::CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).unwrap();
        roots.add(der).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }

    /// A raw TLS connection (handshake done) with bounded reads.
    pub(crate) fn connect(&self, addr: SocketAddr) -> Tls {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        let name = "localhost".try_into().unwrap();
        let conn = ClientConnection::new(self.client_config(), name).unwrap();
        let mut tls = StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).unwrap();
        }
        tls
    }

    /// A tungstenite client over TLS (a peer we did not write).
    pub(crate) fn wss(&self, addr: SocketAddr, path: &str) -> WebSocket<Tls> {
        let url = format!("wss://localhost:{}{path}", addr.port());
        let (ws, _) = tungstenite::client(url, self.connect(addr)).expect("wss handshake");
        ws
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        if let Some(dir) = self.cert.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// An echo resource that reports each connection and each close.
fn echo_server(
    certs: &Certs,
    config: Config,
) -> (ServerHandle, Events<Connection>, Events<(u16, String)>) {
    init_logs();
    let opened = Events::new();
    let closed = Events::new();
    let (o, c) = (opened.tx.clone(), closed.tx.clone());
    let mut s = Server::with_config(config);
    s.define_resource(
        "/",
        Resource::new()
            .on_open(move |ws| {
                let _ = o.send(ws.clone());
            })
            .on_message(|ws, msg| {
                let _ = ws.send(msg);
            })
            .on_close(move |_, code, reason| {
                let _ = c.send((code, reason.to_owned()));
            }),
    );
    s.define_page("/page", "text/plain", "over https");
    s.define_handler("/who", |req| Response::text(req.path().to_owned()));
    s.define_event_stream("/events", EventStream::new());
    (
        s.start_tls("127.0.0.1:0", certs.server()).unwrap(),
        opened,
        closed,
    )
}

#[test]
fn echo_over_wss_with_our_client_and_a_foreign_one() {
    let certs = Certs::new();
    let (h, opened, closed) = echo_server(&certs, Config::default());
    let port = h.local_addr().port();
    let ws = Client::new(format!("wss://localhost:{port}/"))
        .add_root_certificate(&certs.cert_pem)
        .connect()
        .unwrap();
    opened.next();
    ws.send_text("hello").unwrap();
    assert_eq!(ws.recv_timeout(WAIT).unwrap().as_text(), Some("hello"));
    let big = vec![7u8; 300 << 10];
    ws.send_binary(&big).unwrap();
    assert_eq!(ws.recv_timeout(WAIT).unwrap().as_bytes(), &big[..]);
    ws.close(1000, "bye");
    assert_eq!(closed.next().0, 1000);

    let mut other = certs.wss(h.local_addr(), "/");
    opened.next();
    other
        .send(tungstenite::Message::text("from tungstenite"))
        .unwrap();
    assert_eq!(
        recv(&mut other),
        tungstenite::Message::text("from tungstenite")
    );
}

#[test]
fn a_client_reaches_an_ipv6_literal_over_wss() {
    init_logs();
    let certs = Certs::new();
    let mut s = Server::new();
    s.define_resource(
        "/",
        Resource::new().on_message(|ws, msg| {
            let _ = ws.send(msg);
        }),
    );
    let h = s.start_tls("[::1]:0", certs.server()).unwrap();
    let ws = Client::new(format!("wss://[::1]:{}/", h.local_addr().port()))
        .tls_config(certs.client_config())
        .connect()
        .unwrap();
    ws.send_text("six").unwrap();
    assert_eq!(ws.recv_timeout(WAIT).unwrap().as_text(), Some("six"));
}

#[test]
fn a_page_a_handler_and_an_event_stream_over_https() {
    let certs = Certs::new();
    let (h, _, _) = echo_server(&certs, Config::default());
    for (path, body) in [("/page", "over https"), ("/who", "/who")] {
        let mut tls = certs.connect(h.local_addr());
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        tls.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        // The server ends with close_notify: a clean end of the stream.
        tls.read_to_end(&mut answer).unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with(body), "{answer}");
    }

    let mut tls = certs.connect(h.local_addr());
    tls.write_all(b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let publisher = h.event_stream("/events").unwrap();
    // Pushes find the client once it is registered (the head is then queued).
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("\r\n\r\n") {
        let n = tls.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert_eq!(
        publisher.send(&Event::new("secret").name("news")).unwrap(),
        1
    );
    while !seen.contains("data: secret\n\n") {
        let n = tls.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("event: news\n"), "{seen}");
}

/// Message `seq` of sender `tid`: mostly small, some 64 KiB (several records).
fn payload(tid: u8, seq: u32) -> Vec<u8> {
    let len = match seq % 500 {
        7 => 64 << 10,
        n => 5 + (n as usize * 7) % 300,
    };
    let mut v = vec![tid; len];
    v[1..5].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in v.iter_mut().enumerate().skip(5) {
        *b = (i as u32 ^ seq) as u8;
    }
    v
}

#[test]
fn eight_threads_push_to_a_connection_blocked_reading() {
    let certs = Certs::new();
    let (h, opened, _closed) = echo_server(&certs, Config::default().max_backlog(1 << 30));
    let mut ws = certs.wss(h.local_addr(), "/");
    // The connection's own thread is blocked reading: the client sends nothing.
    let conn = opened.next();
    push_from_threads(&conn, &mut ws, 8, 10_000, payload);
    // The reader was never disturbed: the connection still echoes.
    ws.send(tungstenite::Message::text("still here")).unwrap();
    assert_eq!(recv(&mut ws), tungstenite::Message::text("still here"));
}

/// A TLS client that completes the upgrade, then never reads.
pub(crate) fn stalled(certs: &Certs, addr: SocketAddr) -> Tls {
    upgraded(certs, addr)
}

/// A raw TLS client that has completed the upgrade to `/`.
fn upgraded(certs: &Certs, addr: SocketAddr) -> Tls {
    let mut tls = certs.connect(addr);
    tls.write_all(upgrade_request("/", "").as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    tls
}

#[test]
fn a_stalled_tls_client_is_closed_and_a_broadcast_is_not_held_up() {
    let certs = Certs::new();
    let (h, opened, closed) = echo_server(&certs, Config::default().max_backlog(256 << 10));
    let stalled = stalled(&certs, h.local_addr());
    opened.next();
    let good = certs.wss(h.local_addr(), "/");
    opened.next();
    // Far more than the stalled client's kernel buffers.
    let good = paced_broadcast(&h.broadcaster(), 300, good);
    let (code, reason) = closed.next();
    assert_eq!(code, 1008);
    assert!(reason.contains("too slow"), "{reason}");
    assert_eq!(h.connection_count(), 1);
    drop((stalled, good));
}

#[test]
fn a_stalled_tls_client_is_closed_at_the_write_timeout() {
    let certs = Certs::new();
    let config = Config::default()
        .max_backlog(1 << 30)
        .write_timeout(Duration::from_millis(300));
    let (h, opened, closed) = echo_server(&certs, config);
    let _stalled = stalled(&certs, h.local_addr());
    let conn = opened.next();
    let (code, reason) = queue_until_closed(&conn, &closed);
    assert_eq!(code, 1008);
    assert!(reason.contains("write timeout"), "{reason}");
}

#[test]
fn a_stalled_tls_client_that_reads_again_gets_everything_in_order() {
    let certs = Certs::new();
    let (h, opened, _) = echo_server(&certs, Config::default().max_backlog(1 << 30));
    let mut ws = certs.wss(h.local_addr(), "/");
    let conn = opened.next();
    // Far more than the kernel buffers hold: the housekeeper finishes it,
    // ciphertext left over from each write first.
    const N: u32 = 200;
    for seq in 0..N {
        let mut m = vec![(seq % 251) as u8; 40_000 + seq as usize];
        m[..4].copy_from_slice(&seq.to_be_bytes());
        conn.send_binary(&m).unwrap();
    }
    assert!(conn.backlog() > 0, "the socket took everything at once");
    for seq in 0..N {
        match recv(&mut ws) {
            tungstenite::Message::Binary(d) => {
                assert_eq!(d.len(), 40_000 + seq as usize);
                assert_eq!(&d[..4], &seq.to_be_bytes());
                assert!(d[4..].iter().all(|&b| b == (seq % 251) as u8));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn an_untrusted_misnamed_or_expired_certificate_is_a_tls_error() {
    let certs = Certs::new();
    let (h, _, _) = echo_server(&certs, Config::default());
    let port = h.local_addr().port();
    // The bundled roots do not know our self-signed certificate.
    match Client::new(format!("wss://localhost:{port}/")).connect() {
        Err(Error::Tls(why)) => assert!(why.contains("UnknownIssuer"), "{why}"),
        other => panic!("unexpected {other:?}"),
    }
    // Trusted, but not for this name.
    let other = Certs::for_names(&["example.com"]);
    let h2 = echo_server(&other, Config::default()).0;
    let url = format!("wss://localhost:{}/", h2.local_addr().port());
    match Client::new(url).tls_config(other.client_config()).connect() {
        Err(Error::Tls(why)) => assert!(why.contains("not valid for name"), "{why}"),
        other => panic!("unexpected {other:?}"),
    }
    // Trusted and for this name, but expired.
    let old = Certs::expired();
    let h3 = echo_server(&old, Config::default()).0;
    let url = format!("wss://localhost:{}/", h3.local_addr().port());
    match Client::new(url)
        .add_root_certificate(&old.cert_pem)
        .connect()
    {
        Err(Error::Tls(why)) => assert!(why.contains("expired"), "{why}"),
        other => panic!("unexpected {other:?}"),
    }
    match Client::new(format!("wss://localhost:{port}/"))
        .add_root_certificate("not a pem")
        .connect()
    {
        Err(Error::Tls(why)) => assert!(why.contains("root"), "{why}"),
        other => panic!("unexpected {other:?}"),
    }
    // The server is unharmed.
    let ws = Client::new(format!("wss://127.0.0.1:{port}/"))
        .add_root_certificate(&certs.cert_pem)
        .connect()
        .unwrap();
    ws.send_text("fine").unwrap();
    assert_eq!(ws.recv_timeout(WAIT).unwrap().as_text(), Some("fine"));
}

#[test]
fn plain_http_or_garbage_on_the_tls_port_is_dropped() {
    let certs = Certs::new();
    let (h, opened, _) = echo_server(&certs, Config::default());
    for junk in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5][..],
        &[0xff; 64][..],
    ] {
        let mut s = TcpStream::connect(h.local_addr()).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(junk).unwrap();
        // Dropped (maybe after an alert), long before the handshake timeout.
        let mut out = Vec::new();
        match s.read_to_end(&mut out) {
            Ok(_) => assert!(!out.starts_with(b"HTTP"), "answered in plain text"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
    }
    let mut ws = certs.wss(h.local_addr(), "/");
    opened.next();
    ws.send(tungstenite::Message::text("after junk")).unwrap();
    assert_eq!(recv(&mut ws), tungstenite::Message::text("after junk"));
}

#[test]
fn pem_files_that_are_missing_bad_or_do_not_match_are_tls_errors() {
    let certs = Certs::new();
    let other = Certs::new();
    let missing = certs.cert.with_file_name("missing.pem");
    let junk = certs.cert.with_file_name("junk.pem");
    std::fs::write(
        &junk,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = |c: &PathBuf, k: &PathBuf| match TlsConfig::from_pem_files(c, k) {
        Err(Error::Tls(why)) => why,
        other => panic!("unexpected {other:?}"),
    };
    let why = err(&missing, &certs.key);
    assert!(
        why.contains("cannot read") && why.contains("missing.pem"),
        "{why}"
    );
    let why = err(&junk, &certs.key);
    assert!(why.contains("junk.pem"), "{why}");
    let why = err(&certs.key, &certs.key);
    assert!(why.contains("no certificate"), "{why}");
    let why = err(&certs.cert, &certs.cert);
    assert!(why.contains("no private key"), "{why}");
    let why = err(&certs.cert, &other.key);
    assert!(why.contains("does not fit"), "{why}");
    // And with the caller's own rustls configuration.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert =
        rustls::pki_types::CertificateDer::from_pem_slice(certs.cert_pem.as_bytes()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&certs.key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let mut s = Server::new();
    s.define_resource("/", Resource::new());
    let h = s
        .start_tls(
            "127.0.0.1:0",
            TlsConfig::from_server_config(Arc::new(config)),
        )
        .unwrap();
    let ws = Client::new(format!("wss://localhost:{}/", h.local_addr().port()))
        .add_root_certificate(&certs.cert_pem)
        .connect()
        .unwrap();
    assert!(ws.is_open());
}

#[test]
fn a_silent_or_half_handshake_is_dropped_at_the_handshake_timeout() {
    let certs = Certs::new();
    let config = Config::default().handshake_timeout(Duration::from_millis(300));
    let (h, opened, _) = echo_server(&certs, config);
    // Nothing at all, then the first 3 bytes of a record header.
    for sent in [&b""[..], &[0x16, 0x03, 0x01][..]] {
        let mut s = TcpStream::connect(h.local_addr()).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(sent).unwrap();
        let mut out = Vec::new();
        // The server closes it (the read would otherwise wait out WAIT and fail).
        match s.read_to_end(&mut out) {
            Ok(_) => assert!(out.is_empty(), "{out:?}"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
    }
    let mut ws = certs.wss(h.local_addr(), "/");
    opened.next();
    ws.send(tungstenite::Message::text("on time")).unwrap();
    assert_eq!(recv(&mut ws), tungstenite::Message::text("on time"));
}

#[test]
fn shutdown_sends_going_away_over_tls_and_cuts_a_handshake_short() {
    let certs = Certs::new();
    let (h, opened, closed) = echo_server(&certs, Config::default());
    let mut ws = certs.wss(h.local_addr(), "/");
    opened.next();
    let client = Client::new(format!("wss://localhost:{}/", h.local_addr().port()))
        .add_root_certificate(&certs.cert_pem)
        .connect()
        .unwrap();
    opened.next();
    // Mid-handshake: a TCP connection that has not said anything yet.
    let mut half = TcpStream::connect(h.local_addr()).unwrap();
    half.set_read_timeout(Some(WAIT)).unwrap();
    let closing = thread::spawn(move || h.close());
    let code = loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(Some(f))) => break u16::from(f.code),
            Ok(_) => continue,
            Err(e) => panic!("no close frame: {e}"),
        }
    };
    assert_eq!(code, 1001);
    let _ = ws.flush();
    assert_eq!(client.wait_closed(WAIT).map(|(c, _)| c), Some(1001));
    let mut out = Vec::new();
    let _ = half.read_to_end(&mut out);
    closing.join().unwrap();
    assert_eq!(closed.next().0, 1001);
    assert_eq!(closed.next().0, 1001);
}

/// Over TLS, replies wait for the next read's only while more input
/// already waits: a message, then (in its own record) the first half of
/// another, is answered before the second half comes.
#[test]
fn over_tls_replies_are_not_held_for_input_that_has_not_come() {
    let certs = Certs::new();
    let (h, _opened, _closed) = echo_server(&certs, Config::default());
    let mut tls = upgraded(&certs, h.local_addr());
    answered_before_the_rest(&mut tls, 4096, 10);
}
