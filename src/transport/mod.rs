//! The transport layer: the socket (`socket.rs`: the waiting and the
//! never-waiting write), TLS over it (`tls/`, feature `tls`), and each
//! connection's outbox (`outbox/`: the queue, the writer role, the waits).
//! May use: the base types only; it knows nothing of frames' meaning,
//! connections or hooks.
//!
//! The byte stream under a connection, as the outbox writes to it: a plain
//! TCP socket, or (feature `tls`) a TLS session over one, so that nothing
//! above this module asks which kind it has.
//!
//! A write comes in two kinds. [`Transport::nowait`] never waits: a full
//! socket answers `WouldBlock` at once (`send` with `MSG_DONTWAIT`, through
//! `socket2`'s safe wrapper). Every thread but the connection's own writes
//! this way, so no sender ever waits for a slow peer. [`Transport::waiting`]
//! is an ordinary blocking write, bounded by the socket's send timeout (the
//! connection's `write_timeout`): only the connection's own thread uses it,
//! to wait for its own peer, which is TCP's back-pressure. Without
//! `MSG_DONTWAIT` (not Unix), `nowait` falls back to an ordinary write
//! bounded by the send timeout.
//!
//! Over TLS the same two kinds hold for the records (see `tls.rs`): a write
//! encrypts, then writes rustls's records by the rule above; what the
//! socket did not take stays in the session, in order, and the writer's
//! `flush` reports it as a full socket, so the outbox keeps the writer role
//! and the housekeeper finishes it as it finishes a plain socket.

pub(crate) mod outbox;
pub(crate) mod socket;
#[cfg(feature = "tls")]
pub(crate) mod tls;

use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;
use std::ops::Deref;

/// A connection's socket, with its TLS session when it has one. Socket
/// settings (timeouts, `shutdown`, addresses) go to the TCP socket through
/// `Deref`; bytes go through [`Transport`] only.
#[derive(Debug)]
pub(crate) struct Stream {
    tcp: TcpStream,
    #[cfg(feature = "tls")]
    tls: Option<crate::transport::tls::Session>,
}

impl Stream {
    /// A plain TCP connection.
    pub(crate) fn plain(tcp: TcpStream) -> Stream {
        Stream {
            tcp,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// A TLS connection (its handshake not yet done: see [`Stream::handshake`]).
    #[cfg(feature = "tls")]
    pub(crate) fn tls(tcp: TcpStream, session: crate::transport::tls::Session) -> Stream {
        Stream {
            tcp,
            tls: Some(session),
        }
    }

    /// Runs the TLS handshake, if this is a TLS connection, on the calling
    /// thread, until `deadline`.
    ///
    /// # Errors
    /// The socket's error, `TimedOut` at the deadline, or `InvalidData`
    /// with the TLS error (a bad certificate, garbage, plain HTTP).
    #[cfg(feature = "tls")]
    pub(crate) fn handshake(&self, deadline: std::time::Instant) -> io::Result<()> {
        match &self.tls {
            Some(session) => session.handshake(&self.tcp, deadline),
            None => Ok(()),
        }
    }
}

impl Stream {
    /// Whether this is a TLS connection.
    pub(crate) fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// Whether the peer's next bytes already wait in the socket (one system
    /// call that reads nothing: `socket::has_input`). Over TLS they may be
    /// the start of a record whose rest the read then waits for: a peer
    /// has sent the whole record by then (no TLS stack stops in the middle
    /// of one to wait for an answer), so that wait is the network's only.
    pub(crate) fn input_waiting(&self) -> bool {
        socket::has_input(&self.tcp)
    }

    /// Before the socket is shut: tells a TLS peer the stream ends
    /// (`close_notify`, best effort, never waiting); nothing for plain TCP.
    pub(crate) fn close_notify(&self) {
        #[cfg(feature = "tls")]
        if let Some(session) = &self.tls {
            session.close_notify(&self.tcp);
        }
    }

    /// After our FIN (`shutdown(Write)`: the peer gets everything we
    /// wrote), reads and drops whatever the peer still sends until its own
    /// FIN or `deadline`, then shuts the reading side. Closing a socket
    /// with unread input answers with a reset, and a reset makes the
    /// peer's kernel drop what it had received but not yet read: our last
    /// messages, our close frame or our HTTP answer (nginx's "lingering
    /// close" avoids the same). Reads the raw socket, TLS or not: the bytes
    /// are dropped anyway. Another thread's `shutdown` ends the wait at once.
    ///
    /// Never inlined: its scratch buffer would otherwise sit in its
    /// caller's frame, under every idle connection's read (one more page
    /// of stack each).
    #[inline(never)]
    pub(crate) fn linger(&self, deadline: std::time::Instant) {
        let mut tcp = &self.tcp;
        let mut scratch = [0u8; 1024];
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() || tcp.set_read_timeout(Some(left)).is_err() {
                break;
            }
            match io::Read::read(&mut tcp, &mut scratch) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = self.tcp.shutdown(std::net::Shutdown::Read);
    }

    /// Frees what a TLS connection gone quiet holds for reading (see
    /// `Session::trim`); nothing for plain TCP, which holds nothing here.
    pub(crate) fn trim(&self) {
        #[cfg(feature = "tls")]
        if let Some(session) = &self.tls {
            session.trim();
        }
    }
}

impl Deref for Stream {
    type Target = TcpStream;

    fn deref(&self) -> &TcpStream {
        &self.tcp
    }
}

/// See the module documentation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Transport<'a> {
    /// A plain TCP socket.
    Tcp {
        /// The socket.
        stream: &'a TcpStream,
        /// Whether a write may wait for room in the socket's buffer.
        wait: bool,
    },
    /// A TLS session over a TCP socket.
    #[cfg(feature = "tls")]
    Tls {
        /// The socket.
        tcp: &'a TcpStream,
        /// The session.
        session: &'a crate::transport::tls::Session,
        /// Whether a write may wait for room in the socket's buffer.
        wait: bool,
    },
}

impl<'a> Transport<'a> {
    /// Writes that never wait (any thread).
    pub(crate) fn nowait(stream: &'a Stream) -> Transport<'a> {
        Transport::new(stream, false)
    }

    /// Writes that wait up to the socket's send timeout (the connection's
    /// own thread only).
    pub(crate) fn waiting(stream: &'a Stream) -> Transport<'a> {
        Transport::new(stream, true)
    }

    fn new(stream: &'a Stream, wait: bool) -> Transport<'a> {
        #[cfg(feature = "tls")]
        if let Some(session) = &stream.tls {
            return Transport::Tls {
                tcp: &stream.tcp,
                session,
                wait,
            };
        }
        Transport::Tcp {
            stream: &stream.tcp,
            wait,
        }
    }
}

impl Write for Transport<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match *self {
            Transport::Tcp { stream, wait } => socket::write_raw(stream, bufs, wait),
            #[cfg(feature = "tls")]
            Transport::Tls { tcp, session, wait } => session.write_vectored(tcp, bufs, wait),
        }
    }

    /// Plain TCP: nothing to do. TLS: writes the ciphertext still held;
    /// `WouldBlock` while the socket will not take it all.
    fn flush(&mut self) -> io::Result<()> {
        match *self {
            Transport::Tcp { .. } => Ok(()),
            #[cfg(feature = "tls")]
            Transport::Tls { tcp, session, wait } => session.flush(tcp, wait),
        }
    }
}

impl outbox::Sink for Transport<'_> {
    /// TLS: whether rustls holds records the socket has not taken.
    fn holds(&self) -> bool {
        match *self {
            Transport::Tcp { .. } => false,
            #[cfg(feature = "tls")]
            Transport::Tls { session, .. } => session.holds(),
        }
    }
}

impl Read for Transport<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match *self {
            Transport::Tcp { mut stream, .. } => stream.read(buf),
            #[cfg(feature = "tls")]
            Transport::Tls { tcp, session, .. } => session.read(tcp, buf),
        }
    }

    fn read_vectored(&mut self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        match *self {
            Transport::Tcp { mut stream, .. } => stream.read_vectored(bufs),
            #[cfg(feature = "tls")]
            Transport::Tls { tcp, session, .. } => match bufs.iter_mut().find(|b| !b.is_empty()) {
                Some(buf) => session.read(tcp, buf),
                None => Ok(0),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_full_socket_answers_would_block_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = Stream::plain(TcpStream::connect(listener.local_addr().unwrap()).unwrap());
        let (_theirs, _) = listener.accept().unwrap();
        // No send timeout: a blocking write to a full socket would hang.
        ours.set_write_timeout(None).unwrap();
        let chunk = vec![0u8; 1 << 16];
        let mut t = Transport::nowait(&ours);
        let mut total = 0usize;
        let err = loop {
            match t.write(&chunk) {
                Ok(n) => total += n,
                Err(e) => break e,
            }
            assert!(total < 1 << 30, "the peer never read, yet 1 GiB was taken");
        };
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(total > 0);
    }
}
