//! Listening and accepting: the listener (with a deeper backlog than std's),
//! the acceptor thread's loop, the `503` it answers itself when
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
    listener: &TcpListener,
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
    loop {
        if let Some((stream, peer)) = job.take() {
            serve(core, stream, peer);
            core.active.fetch_sub(1, Ordering::SeqCst);
        }
        core.pool.lock().idle += 1;
        match jobs.recv_timeout(IDLE_THREAD) {
            Ok(j) => job = Some(j),
            Err(RecvTimeoutError::Timeout) => {
                // Under the pool lock: either the acceptor already counted on
                // this thread (and its job is waiting), or no one will.
                let mut pool = core.pool.lock();
                match jobs.try_recv() {
                    Ok(j) => job = Some(j),
                    Err(_) => {
                        pool.idle -= 1;
                        return;
                    }
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                core.pool.lock().idle -= 1;
                return;
            }
        }
    }
}
