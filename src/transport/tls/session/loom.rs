//! Models of a TLS session's locks (`scripts/loom.sh`), over the real
//! `Session` and the real outbox: the housekeeper's `trim` and a
//! `close_notify` never wait for a writer blocked on its peer, and `flush`
//! confirms only what left rustls for the socket. The sessions shake hands
//! in memory; the socket is the model's own ([`Wire`]), whose waiting write
//! blocks until the peer reads.

use std::io::{self, IoSlice, Read, Write};
use std::sync::{Arc as StdArc, OnceLock};

use loom::sync::Arc;
use loom::thread;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::Session;
use crate::sync::{Condvar, Mutex};
use crate::transport::outbox::loom::{far, model};
use crate::transport::outbox::{Admit, Flushed, Lane, Outbox, Sink};
use crate::transport::socket::Wire;
use crate::transport::tls::{client_config, provider};

/// A socket between the server session and the peer: takes at most
/// `room` bytes; a waiting send blocks until the peer reads.
struct Pipe {
    state: Mutex<Piped>,
    readable: Condvar,
}

#[derive(Default)]
struct Piped {
    bytes: Vec<u8>,
    room: usize,
    /// A waiting send is blocked, waiting for the peer to read.
    waiting: bool,
}

impl Pipe {
    fn new(room: usize) -> Pipe {
        Pipe {
            state: Mutex::new(Piped {
                bytes: Vec::new(),
                room,
                waiting: false,
            }),
            readable: Condvar::new(),
        }
    }

    /// The peer reads: the pipe takes anything from now on.
    fn open(&self) {
        self.state.lock().room = usize::MAX;
        self.readable.notify_all();
    }

    fn bytes(&self) -> Vec<u8> {
        self.state.lock().bytes.clone()
    }

    /// Returns once a waiting send is blocked on the peer.
    fn until_a_writer_waits(&self) {
        while !self.state.lock().waiting {
            thread::yield_now();
        }
    }
}

impl Wire for Pipe {
    fn send(&self, bufs: &[IoSlice<'_>], wait: bool) -> io::Result<usize> {
        let mut st = self.state.lock();
        while st.room == 0 {
            if !wait {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            st.waiting = true;
            self.readable.wait_until(&mut st, far());
            st.waiting = false;
        }
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(st.room);
            st.room -= take;
            st.bytes.extend_from_slice(&b[..take]);
            n += take;
        }
        Ok(n)
    }
}

/// The outbox's sink over the session and the pipe, never waiting, as a
/// sender other than the connection's own thread writes.
struct TlsSink<'a> {
    session: &'a Session,
    pipe: &'a Pipe,
}

impl Write for TlsSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.session.write_vectored(self.pipe, bufs, false)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.session.flush(self.pipe, false)
    }
}

impl Sink for TlsSink<'_> {
    fn holds(&self) -> bool {
        self.session.holds()
    }
}

type Configs = (StdArc<rustls::ServerConfig>, StdArc<rustls::ClientConfig>);

/// One certificate and both sides' settings, made once for every model.
fn configs() -> &'static Configs {
    static CONFIGS: OnceLock<Configs> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert: CertificateDer<'static> = made.cert.der().clone();
        let key = PrivateKeyDer::try_from(made.signing_key.serialize_der()).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        (StdArc::new(server), client_config(&[cert]).unwrap())
    })
}

/// A server session whose handshake is done (in memory), and its peer.
fn handshaken() -> (Session, rustls::ClientConnection) {
    let (server, client) = configs();
    let mut s = rustls::Connection::from(rustls::ServerConnection::new(server.clone()).unwrap());
    let name = ServerName::try_from("localhost").unwrap();
    let mut c = rustls::ClientConnection::new(client.clone(), name).unwrap();
    while s.is_handshaking() || c.is_handshaking() {
        let mut bytes = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut bytes).unwrap();
        }
        s.read_tls(&mut &bytes[..]).unwrap();
        s.process_new_packets().unwrap();
        bytes.clear();
        while s.wants_write() {
            s.write_tls(&mut bytes).unwrap();
        }
        c.read_tls(&mut &bytes[..]).unwrap();
        c.process_new_packets().unwrap();
    }
    (Session::new(s), c)
}

/// What the peer reads out of `ciphertext`.
fn decrypt(peer: &mut rustls::ClientConnection, ciphertext: &[u8]) -> Vec<u8> {
    let mut rest = ciphertext;
    while !rest.is_empty() {
        peer.read_tls(&mut rest).unwrap();
        peer.process_new_packets().unwrap();
    }
    let mut plain = Vec::new();
    let _ = peer.reader().read_to_end(&mut plain);
    plain
}

/// The connection's own thread writes, waiting for its peer, and holds
/// the state meanwhile; the housekeeper's `trim`, and a `close_notify`,
/// must return without it (the housekeeper serves every connection). Only
/// then does the peer read. Had `trim` waited for the state, loom would
/// report the deadlock.
///
/// The housekeeper starts once the writer is blocked: loom takes a
/// `try_lock` that is pending when another thread acquires the lock for a
/// blocking `lock` (loom 0.7's `post_acquire` blocks every thread whose
/// next operation is on that mutex), which no real `try_lock` does.
#[test]
fn trim_and_close_notify_never_wait_for_a_blocked_writer() {
    model(|| {
        let (session, _peer) = handshaken();
        let session = Arc::new(session);
        let pipe = Arc::new(Pipe::new(0));
        let writer = {
            let (session, pipe) = (session.clone(), pipe.clone());
            thread::spawn(move || {
                let n = session.write_vectored(&*pipe, &[IoSlice::new(b"hello")], true);
                assert_eq!(n.unwrap(), 5);
            })
        };
        pipe.until_a_writer_waits();
        session.trim();
        session.close_notify(&*pipe);
        pipe.open();
        writer.join().unwrap();
    });
}

/// A push goes through the session into a pipe that takes little; `flush`
/// from another thread returns only once the peer can read the whole
/// frame (rustls holding the rest is not "written").
#[test]
fn a_flush_over_tls_confirms_only_what_reached_the_socket() {
    model(|| {
        let (session, mut peer) = handshaken();
        let session = Arc::new(session);
        let pipe = Arc::new(Pipe::new(10));
        let outbox = Arc::new(Outbox::new(1 << 20));
        let frame = b"a frame of forty bytes, more or less....";
        let mut sink = TlsSink {
            session: &session,
            pipe: &pipe,
        };
        let pushed = outbox.push_with(&mut sink, frame.len(), Admit::Limit, Lane::Data, |v| {
            v.extend_from_slice(frame)
        });
        assert!(matches!(pushed, Ok(Flushed::Stalled)), "{pushed:?}");
        let mark = outbox.flush_mark().unwrap();
        let housekeeper = {
            let (session, pipe, outbox) = (session.clone(), pipe.clone(), outbox.clone());
            thread::spawn(move || {
                pipe.open();
                let mut sink = TlsSink {
                    session: &session,
                    pipe: &pipe,
                };
                while let Flushed::Stalled = outbox.resume(&mut sink) {}
            })
        };
        assert_eq!(outbox.wait_written(mark, far()), Ok(()));
        assert_eq!(decrypt(&mut peer, &pipe.bytes()), frame);
        housekeeper.join().unwrap();
    });
}
