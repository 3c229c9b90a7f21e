//! Listening and accepting: the listener (TCP with a deeper backlog than
//! std's, or a Unix-domain socket), the acceptor thread's loop, the `503` it answers itself when
//! `max_connections` are open, and the pool of connection threads it hands
//! sockets to. Idle pool threads wait 10 s for the next socket, then exit.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::core::Core;
use super::request::serve;
use crate::Reject;

/// How long an idle pooled connection thread waits for the next client.
const IDLE_THREAD: Duration = Duration::from_secs(10);

pub(super) type Job = (TcpStream, SocketAddr);

/// Connections the kernel completes before the acceptor takes them. std's
/// `TcpListener::bind` asks for 128, which a burst of clients overflows
/// while the acceptor starts their threads (SYN cookies, dropped
/// handshakes); the kernel caps this at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 1024;

/// What the acceptor listens on.
#[derive(Debug)]
pub(super) enum Listener {
    /// A TCP address.
    Tcp(TcpListener),
    /// A Unix-domain socket (`Server::start_unix`).
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixListener),
}

/// The `peer_addr()` of a client on a Unix-domain socket, which has no IP
/// address: the unspecified `0.0.0.0:0` (what `Config::trusted_proxies`
/// lists to trust a proxy on the socket).
#[cfg(unix)]
pub(super) const UNIX_PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

impl Listener {
    /// A second handle on a Unix-domain listener (`None` for TCP, or when
    /// it cannot be had), for `ServerHandle::close` to wake the acceptor.
    #[cfg(unix)]
    pub(super) fn unix_clone(&self) -> Option<std::os::unix::net::UnixListener> {
        match self {
            Listener::Tcp(_) => None,
            Listener::Unix(l) => l.try_clone().ok(),
        }
    }

    /// The next connection, and its peer's address.
    ///
    /// A Unix-domain connection goes on as a `TcpStream` holding its file
    /// descriptor (std's safe `From<OwnedFd>`), so that the transport and
    /// everything above serve both alike: what they ask of a socket (read,
    /// write, `MSG_DONTWAIT` sends, timeouts, `shutdown`) are the same
    /// system calls for both; `set_nodelay` fails on it and is ignored,
    /// and its addresses are never asked (the peer is [`UNIX_PEER`]).
    fn accept(&self) -> std::io::Result<(TcpStream, SocketAddr)> {
        match self {
            Listener::Tcp(l) => l.accept(),
            #[cfg(unix)]
            Listener::Unix(l) => {
                let (unix, _) = l.accept()?;
                let fd = std::os::fd::OwnedFd::from(unix);
                Ok((TcpStream::from(fd), UNIX_PEER))
            }
        }
    }
}

/// Listens on the Unix-domain socket `path`. A socket file that nobody
/// answers (left by a process that is gone) is replaced; one that a live
/// server answers, or a file that is not a socket, is an `AddrInUse` error.
#[cfg(unix)]
pub(super) fn listen_unix(path: &std::path::Path) -> std::io::Result<Listener> {
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::net::{UnixListener, UnixStream};
    let listener = match UnixListener::bind(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let stale = std::fs::symlink_metadata(path)?.file_type().is_socket()
                && UnixStream::connect(path).is_err();
            if !stale {
                return Err(e);
            }
            std::fs::remove_file(path)?;
            UnixListener::bind(path)?
        }
        other => other?,
    };
    Ok(Listener::Unix(listener))
}

/// `TcpListener::bind` (the first address that binds, `SO_REUSEADDR` on
/// Unix as std sets it), with a backlog of [`LISTEN_BACKLOG`].
pub(super) fn listen(addr: impl ToSocketAddrs) -> std::io::Result<TcpListener> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        let bound = (|| {
            let s =
                socket2::Socket::new(socket2::Domain::for_address(a), socket2::Type::STREAM, None)?;
            #[cfg(unix)]
            s.set_reuse_address(true)?;
            s.bind(&a.into())?;
            s.listen(LISTEN_BACKLOG)?;
            Ok(TcpListener::from(s))
        })();
        match bound {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

pub(super) fn accept_loop(
    core: &Arc<Core>,
    listener: &Listener,
    jobs: &Sender<Job>,
    job_rx: &Receiver<Job>,
) {
    // Accepts failed in a row: out of file descriptors and the like.
    let mut failed = 0u64;
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(pair) => pair,
            Err(e) => {
                if core.stopping.load(Ordering::SeqCst) {
                    return;
                }
                // Said once, not a hundred times a second.
                if failed == 0 {
                    log::warn!("accept failed: {e}; retrying every 10 ms");
                } else {
                    log::debug!("accept failed again: {e}");
                }
                failed += 1;
                // Do not spin.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if failed > 0 {
            log::info!("accepting again after {failed} failed attempts");
            failed = 0;
        }
        if core.stopping.load(Ordering::SeqCst) {
            return;
        }
        if core.active.load(Ordering::SeqCst) >= core.config.max_connections {
            log::debug!(
                "refusing {peer}: {} connections open",
                core.config.max_connections
            );
            core.hub.stats.refused(503);
            match core.tls {
                // A TLS client could not read a plain answer.
                Some(_) => drop(stream),
                None => refuse_busy(stream),
            }
            continue;
        }
        core.active.fetch_add(1, Ordering::SeqCst);
        let mut pool = core.pool.lock();
        if pool.idle > 0 {
            pool.idle -= 1;
            // The channel is unbounded and its receivers live as long as the pool.
            let _ = jobs.send((stream, peer));
            continue;
        }
        pool.threads.retain(|t| !t.is_finished());
        let (c, rx) = (Arc::clone(core), job_rx.clone());
        let spawned = std::thread::Builder::new()
            .name("wsportal-conn".into())
            .stack_size(core.config.thread_stack_size)
            .spawn(move || worker(&c, &rx, (stream, peer)));
        match spawned {
            Ok(t) => pool.threads.push(t),
            Err(e) => {
                log::warn!("cannot start a connection thread: {e}");
                core.active.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// Answers 503 without a thread: whatever request bytes already arrived are
/// read first, so that closing does not reset the connection before the answer.
fn refuse_busy(mut stream: TcpStream) {
    let _ = stream.set_nonblocking(true);
    let mut scratch = [0u8; 4096];
    let _ = stream.read(&mut scratch);
    let reject = Reject::new(503)
        .header("Retry-After", "1")
        .body("too many connections");
    let _ = stream.write_all(&reject.to_bytes());
    let _ = stream.shutdown(Shutdown::Write);
}

fn worker(core: &Arc<Core>, jobs: &Receiver<Job>, first: Job) {
    let mut job = Some(first);
    while let Some((stream, peer)) = job {
        serve(core, stream, peer);
        core.active.fetch_sub(1, Ordering::SeqCst);
        job = next_job(core, jobs);
    }
}

/// Waits (idle, up to `IDLE_THREAD`) for this pool thread's next socket;
/// `None` when the thread should end. Out of line: the channel's wait is
/// a large frame, and `worker`'s sits under every connection's stack.
#[inline(never)]
fn next_job(core: &Core, jobs: &Receiver<Job>) -> Option<Job> {
    core.pool.lock().idle += 1;
    match jobs.recv_timeout(IDLE_THREAD) {
        Ok(j) => Some(j),
        Err(RecvTimeoutError::Timeout) => {
            // Under the pool lock: either the acceptor already counted on
            // this thread (and its job is waiting), or no one will.
            let mut pool = core.pool.lock();
            match jobs.try_recv() {
                Ok(j) => Some(j),
                Err(_) => {
                    pool.idle -= 1;
                    None
                }
            }
        }
        Err(RecvTimeoutError::Disconnected) => {
            core.pool.lock().idle -= 1;
            None
        }
    }
}
