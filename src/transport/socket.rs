//! The two socket writes everything above is built on, and how to read
//! their answer: [`write_raw`] waits (bounded by the send timeout) or not
//! (`MSG_DONTWAIT`, through `socket2`'s safe wrapper), and [`is_full`] says
//! whether an error only means "the socket is full, try later". Both the
//! plain transport and the TLS session write through here, so neither needs
//! the other. [`has_input`] asks, without reading, whether input waits.

use std::io::{self, IoSlice, Write};
use std::net::TcpStream;

/// One write of `bufs` to the socket: blocking (bounded by the send
/// timeout) when `wait`, else with `MSG_DONTWAIT`.
pub(crate) fn write_raw(stream: &TcpStream, bufs: &[IoSlice<'_>], wait: bool) -> io::Result<usize> {
    if wait {
        let mut s = stream;
        return s.write_vectored(bufs);
    }
    send_nowait(stream, bufs)
}

/// `send` flags for a write that never waits (and raises no SIGPIPE).
#[cfg(any(target_os = "linux", target_os = "android"))]
const NOWAIT: libc::c_int = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
const NOWAIT: libc::c_int = libc::MSG_DONTWAIT;

#[cfg(unix)]
fn send_nowait(stream: &TcpStream, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    socket2::SockRef::from(stream).send_vectored_with_flags(bufs, NOWAIT)
}

/// Without `MSG_DONTWAIT`, a write waits out the socket's send timeout.
#[cfg(not(unix))]
fn send_nowait(mut stream: &TcpStream, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    stream.write_vectored(bufs)
}

/// Whether the peer's bytes are already waiting in the socket, so that a
/// read would not wait: a one-byte `recv` with `MSG_PEEK | MSG_DONTWAIT`
/// (the byte stays for the next read). End of stream and errors answer
/// `false`: the next read reports them. Without `MSG_DONTWAIT` (not
/// Unix): always `false`.
#[cfg(unix)]
pub(crate) fn has_input(stream: &TcpStream) -> bool {
    let mut one = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    let flags = libc::MSG_PEEK | libc::MSG_DONTWAIT;
    matches!(socket2::SockRef::from(stream).recv_with_flags(&mut one, flags), Ok(n) if n > 0)
}

#[cfg(not(unix))]
pub(crate) fn has_input(_: &TcpStream) -> bool {
    false
}

/// Whether a write error means "the socket buffer is full, try later".
pub(crate) fn is_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A socket as a TLS session writes its records to it ([`write_raw`]'s
/// two writes), so that the loom models can give it one of their own.
#[cfg(feature = "tls")]
pub(crate) trait Wire {
    /// One write of `bufs`: waiting (bounded by the send timeout) when
    /// `wait`, else never.
    fn send(&self, bufs: &[IoSlice<'_>], wait: bool) -> io::Result<usize>;
}

#[cfg(feature = "tls")]
impl Wire for TcpStream {
    fn send(&self, bufs: &[IoSlice<'_>], wait: bool) -> io::Result<usize> {
        write_raw(self, bufs, wait)
    }
}

/// Unsent bytes the kernel keeps for a socket at most (Linux), so that
/// what waits for a slow reader waits in the outbox, where pings can pass
/// it and progress can be seen, not in seconds of kernel buffer. 128 KiB
/// keeps a fast reader's pipe full (the kernel's own advice for the option).
const NOTSENT_LOWAT: u32 = 128 * 1024;

/// Bounds the kernel's unsent buffer of an accepted socket (see
/// [`NOTSENT_LOWAT`]); nothing where the option does not exist.
pub(crate) fn bound_unsent(stream: &TcpStream) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_notsent_lowat(NOTSENT_LOWAT) {
        log::debug!("TCP_NOTSENT_LOWAT not set: {e}");
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = stream;
}
