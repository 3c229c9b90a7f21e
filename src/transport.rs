//! The byte stream under a connection, as the outbox writes to it: today a
//! plain TCP socket; TLS will be a second variant, so that nothing above this
//! module asks which kind it has.
//!
//! A write comes in two kinds. [`Transport::nowait`] never waits: a full
//! socket answers `WouldBlock` at once (`send` with `MSG_DONTWAIT`, through
//! `socket2`'s safe wrapper). Every thread but the connection's own writes
//! this way, so no sender ever waits for a slow peer. [`Transport::waiting`]
//! is an ordinary blocking write, bounded by the socket's send timeout (the
//! connection's `write_timeout`): only the connection's own thread uses it,
//! to wait for its own peer, which is TCP's back-pressure.

use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;

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
}

impl<'a> Transport<'a> {
    /// Writes that never wait (any thread).
    pub(crate) fn nowait(stream: &'a TcpStream) -> Transport<'a> {
        Transport::Tcp {
            stream,
            wait: false,
        }
    }

    /// Writes that wait up to the socket's send timeout (the connection's
    /// own thread only).
    pub(crate) fn waiting(stream: &'a TcpStream) -> Transport<'a> {
        Transport::Tcp { stream, wait: true }
    }
}

/// `send` flags for a write that never waits (and raises no SIGPIPE).
#[cfg(any(target_os = "linux", target_os = "android"))]
const NOWAIT: libc::c_int = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
const NOWAIT: libc::c_int = libc::MSG_DONTWAIT;

impl Write for Transport<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match *self {
            Transport::Tcp { mut stream, wait } => {
                if wait {
                    return stream.write_vectored(bufs);
                }
                send_nowait(stream, bufs)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for Transport<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match *self {
            Transport::Tcp { mut stream, .. } => stream.read(buf),
        }
    }

    fn read_vectored(&mut self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        match *self {
            Transport::Tcp { mut stream, .. } => stream.read_vectored(bufs),
        }
    }
}

#[cfg(unix)]
fn send_nowait(stream: &TcpStream, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    socket2::SockRef::from(stream).send_vectored_with_flags(bufs, NOWAIT)
}

/// Without `MSG_DONTWAIT`, a write waits out the socket's send timeout.
#[cfg(not(unix))]
fn send_nowait(mut stream: &TcpStream, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    stream.write_vectored(bufs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_full_socket_answers_would_block_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
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
