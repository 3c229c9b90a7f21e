//! `tokio-tungstenite ADDR [--nodelay]`: tokio multi-thread runtime with
//! tokio-tungstenite, one task per connection, written the way
//! tokio-tungstenite's own examples are (version 0.30):
//!
//! * Any path: echo every text and binary message, as in
//!   `examples/echo-server.rs`: `read.try_filter(..).forward(write)`, which
//!   feeds messages into the sink while input is ready and flushes once
//!   when it runs dry (not once per message).
//! * `/chat`: the room of `examples/server.rs`: every member has an
//!   unbounded channel in a shared map; a text message is cloned into every
//!   member's channel (sender included, unlike the example, since every
//!   server in this harness relays to the sender too), and each member's
//!   channel is forwarded into its sink (`rx.map(Ok).forward(outgoing)`).
//!   Messages are reference-counted (`Bytes`), so a member that never reads
//!   costs a queue entry per message, not a copy. Nobody is ever closed for
//!   being slow, as in the example.
//! * `/chat` with `--broadcast` (the `tokio-tungstenite-broadcast` row): the
//!   other common form, a `tokio::sync::broadcast` channel (capacity
//!   `ROOM_CAPACITY`) that every member's task `select!`s on together with
//!   its input, sending each relayed message with `sink.send(msg).await`. A
//!   member that falls `ROOM_CAPACITY` messages behind gets `Lagged` and is
//!   closed. A task blocked on a full socket is not woken by new messages,
//!   which the mpsc form does for every message.
//! * `--cert PATH --key PATH` (the `wss-*` scenarios): the same server over
//!   TLS, as tokio-rustls's own server example accepts it: a `TlsAcceptor`
//!   from a rustls `ServerConfig` (safe defaults, the `ring` provider passed
//!   explicitly, as wsportal does; ALPN `http/1.1`), `acceptor.accept(stream)`
//!   in the connection's task, then the same handler over the TLS stream.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_channel::mpsc::{unbounded, UnboundedSender};
use futures_util::{future, pin_mut, SinkExt, StreamExt, TryStreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

type PeerMap = Arc<Mutex<HashMap<SocketAddr, UnboundedSender<Message>>>>;

const ROOM_CAPACITY: usize = 1024;

/// The room, in one of the two forms.
#[derive(Clone)]
enum Room {
    Mpsc(PeerMap),
    Broadcast(broadcast::Sender<Message>),
}

#[tokio::main]
async fn main() {
    let args = wsportal_bench::server_args::parse_with(&["--broadcast"]);
    wsportal_bench::raise_nofile_limit();
    let listener = TcpListener::bind(&args.addr).await.expect("bind");
    println!(
        "tokio-tungstenite listening on {}",
        listener.local_addr().unwrap()
    );
    let room = if args.flags.iter().any(|f| f == "--broadcast") {
        Room::Broadcast(broadcast::channel(ROOM_CAPACITY).0)
    } else {
        Room::Mpsc(PeerMap::default())
    };
    let tls = args.tls.as_ref().map(|(cert, key)| acceptor(cert, key));
    loop {
        let Ok((stream, addr)) = listener.accept().await else {
            continue;
        };
        if args.nodelay {
            let _ = stream.set_nodelay(true);
        }
        let room = room.clone();
        match &tls {
            None => tokio::spawn(handle(stream, addr, room)),
            Some(tls) => {
                let tls = tls.clone();
                tokio::spawn(async move {
                    if let Ok(stream) = tls.accept(stream).await {
                        handle(stream, addr, room).await;
                    }
                })
            }
        };
    }
}

/// The TLS acceptor for `--cert PATH --key PATH` (PEM files).
fn acceptor(cert: &str, key: &str) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .expect("read --cert");
    let key = PrivateKeyDer::from_pem_file(key).expect("read --key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("certificate and key");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

async fn handle<S>(stream: S, addr: SocketAddr, room: Room)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut path = String::new();
    // The closure's signature is tungstenite's `Callback`, large error and all.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| {
        path = req.uri().path().to_string();
        Ok(resp)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let (write, read) = ws.split();
    if path != "/chat" {
        // examples/echo-server.rs
        let _ = read
            .try_filter(|msg| future::ready(msg.is_text() || msg.is_binary()))
            .forward(write)
            .await;
        return;
    }
    let room = match room {
        Room::Mpsc(map) => map,
        Room::Broadcast(room) => return chat_broadcast(write, read, room).await,
    };
    // examples/server.rs
    let (tx, rx) = unbounded();
    room.lock().unwrap().insert(addr, tx);
    let relay = read.try_for_each(|msg| {
        if msg.is_text() {
            for member in room.lock().unwrap().values() {
                let _ = member.unbounded_send(msg.clone());
            }
        }
        future::ok(())
    });
    let receive = rx.map(Ok).forward(write);
    pin_mut!(relay, receive);
    future::select(relay, receive).await;
    room.lock().unwrap().remove(&addr);
}

/// The `tokio::sync::broadcast` form of the room.
async fn chat_broadcast(
    mut sink: impl futures_util::Sink<Message> + Unpin,
    mut source: impl futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
    room: broadcast::Sender<Message>,
) {
    let mut rx = room.subscribe();
    loop {
        tokio::select! {
            incoming = source.next() => match incoming {
                Some(Ok(msg)) if msg.is_text() => {
                    let _ = room.send(msg);
                }
                Some(Ok(_)) => {}
                _ => return,
            },
            relayed = rx.recv() => match relayed {
                Ok(msg) => {
                    if sink.send(msg).await.is_err() {
                        return;
                    }
                }
                // Lagged (too slow) or closed: drop the client.
                Err(_) => {
                    let _ = sink.close().await;
                    return;
                }
            },
        }
    }
}
