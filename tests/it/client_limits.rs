//! The client's limits hold against scripted servers (issue 30): the
//! response head is bounded by `max_header_size`, a URL with a fragment is
//! refused, server-only settings do not refuse a client, and (feature `tls`)
//! a TLS record trickled byte by byte cannot hold a read past its deadline,
//! on the client's side or the server's.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use wsportal::{Client, Config, Error, Resource, Server};

use crate::support::*;

/// Reads a request head (up to its blank line) and returns its
/// `Sec-WebSocket-Key`.
fn read_key(s: &mut impl Read) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => panic!("the request head ended early: {other:?}"),
        }
    }
    let head = String::from_utf8(head).unwrap();
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| v.trim().to_owned())
        })
        .expect("the request has a key")
}

/// A valid `101` for `key`, with `extra` header lines.
fn switching(key: &str, extra: &str) -> String {
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n{extra}\r\n"
    )
}

/// A one-connection plain server that answers the upgrade with `answer(key)`
/// and then waits for the client's first frame or its end.
fn scripted(answer: impl FnOnce(&str) -> String + Send + 'static) -> (SocketAddr, JoinHandle<()>) {
    init_logs();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let t = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let key = read_key(&mut s);
        let _ = s.write_all(answer(&key).as_bytes());
        // Until the client's first frame (its close) or its end; then the
        // server goes, so the client's close handshake does not wait.
        let _ = s.read(&mut [0u8; 64]);
    });
    (addr, t)
}

#[test]
fn client_response_head_is_bounded_by_max_header_size() {
    let pad = |n: usize| format!("X-Pad: {}\r\n", "a".repeat(n));
    let (addr, t) = scripted(move |key| switching(key, &pad(6000)));
    let config = Config::default().max_header_size(5000);
    let got = Client::new(format!("ws://{addr}/"))
        .config(config.clone())
        .connect();
    assert!(
        matches!(got, Err(Error::Protocol(_))),
        "a 6 KB head with max_header_size(5000): {got:?}"
    );
    t.join().unwrap();

    let (addr, t) = scripted(move |key| switching(key, &pad(4000)));
    let ws = Client::new(format!("ws://{addr}/"))
        .config(config)
        .connect()
        .expect("a 4 KB head is within 5000 bytes");
    drop(ws);
    t.join().unwrap();
}

#[test]
fn client_refuses_a_url_with_a_fragment() {
    // Nothing listens there: a refusal must come before any connect.
    for url in [
        "ws://127.0.0.1:9/x#frag",
        "ws://127.0.0.1:9/#",
        "ws://h/?q#f",
    ] {
        let got = Client::new(url).connect();
        assert!(matches!(got, Err(Error::InvalidInput(_))), "{url}: {got:?}");
    }
}

#[test]
fn client_ignores_server_only_settings() {
    init_logs();
    let mut server = Server::new();
    server.define_resource(
        "/echo",
        Resource::new().on_message(|ws, msg| {
            let _ = ws.send(msg);
        }),
    );
    let h = server.start("127.0.0.1:0").expect("server starts");
    let config = Config::default()
        .max_connections(0)
        .sse_keepalive(Some(Duration::from_micros(10)))
        .shutdown_grace(Duration::ZERO);
    let ws = Client::new(format!("ws://{}/echo", h.local_addr()))
        .config(config)
        .connect()
        .expect("server-only settings do not apply to a client");
    ws.send_text("hi").unwrap();
    assert_eq!(
        ws.recv_timeout(WAIT).unwrap(),
        wsportal::Message::Text("hi".into())
    );
    // A bad setting that does apply is still refused.
    let bad = Config::default().read_buffer_size(1);
    let got = Client::new(format!("ws://{}/echo", h.local_addr()))
        .config(bad)
        .connect();
    assert!(matches!(got, Err(Error::Config { .. })), "{got:?}");
}

#[cfg(feature = "tls")]
mod tls {
    use std::net::TcpStream;
    use std::sync::Arc;

    use wsportal::rustls::{self, pki_types::pem::PemObject};

    use super::*;
    use crate::tls::Certs;

    /// Writes `bytes` one at a time, 25 ms apart, until they are all out or
    /// the peer is gone.
    fn trickle(s: &mut TcpStream, bytes: &[u8]) {
        for b in bytes {
            if s.write_all(&[*b]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// Everything `tls` has to send (a whole record for what was written).
    fn ciphertext(
        conn: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out).unwrap();
        }
        out
    }

    #[test]
    fn client_tls_connect_stops_at_its_timeout_against_a_trickled_101() {
        init_logs();
        let certs = Certs::new();
        let chain =
            vec![
                rustls::pki_types::CertificateDer::from_pem_slice(certs.cert_pem.as_bytes())
                    .unwrap(),
            ];
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&certs.key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(WAIT)).unwrap();
            let conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let key = read_key(&mut tls);
            tls.conn
                .writer()
                .write_all(switching(&key, "").as_bytes())
                .unwrap();
            let record = ciphertext(&mut tls.conn);
            trickle(&mut tls.sock, &record);
        });
        let got = Client::new(format!("wss://localhost:{port}/"))
            .tls_config(certs.client_config())
            .timeout(Duration::from_secs(1))
            .connect();
        assert!(
            matches!(got, Err(Error::Timeout(_))),
            "a 101 trickled a byte every 25 ms outlasts a 1 s timeout: {got:?}"
        );
        drop(got);
        server.join().unwrap();
    }

    #[test]
    fn server_cuts_a_trickled_tls_request_at_handshake_timeout() {
        init_logs();
        let certs = Certs::new();
        let mut server =
            Server::with_config(Config::default().handshake_timeout(Duration::from_secs(1)));
        server.define_resource("/", Resource::new());
        let h = server.start_tls("127.0.0.1:0", certs.server()).unwrap();
        let mut tls = certs.connect(h.local_addr());
        tls.conn
            .writer()
            .write_all(upgrade_request("/", "").as_bytes())
            .unwrap();
        let record = ciphertext(&mut tls.conn);
        trickle(&mut tls.sock, &record);
        let mut answer = [0u8; 64];
        let got = tls.read(&mut answer);
        assert!(
            !matches!(got, Ok(n) if n > 0),
            "the server answered a request trickled past its handshake timeout: {:?}",
            got.map(|n| String::from_utf8_lossy(&answer[..n]).into_owned())
        );
    }
}
