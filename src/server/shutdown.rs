//! [`ServerHandle`]: what a running server answers (its address, counts,
//! stats, broadcaster, event streams, closer) and how it stops.
//!
//! Shutdown (`ServerHandle::close` or drop, on the thread that owns the
//! handle): set the closer (waking loops paused on it), the stop flag,
//! connect to ourselves to wake `accept()`, join the acceptor (the listener
//! closes), send 1001 to open connections and end event streams (queued
//! events are written), wait `shutdown_grace`, cut off the rest, join the
//! pool threads, leave the backplane (its subscriber joined), stop the
//! housekeeper. Called from a hook, it does all that but for the hook's own
//! thread, which it cuts off and which ends when the hook returns.

use std::fmt;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::core::{serving_here, Core};
use crate::sse::EventPublisher;
use crate::transport::Stream;
#[cfg(feature = "redis")]
use crate::Error;
use crate::{Broadcaster, Closer};

/// A running server. [`ServerHandle::close`] (or dropping the handle) stops
/// it: the listener closes at once, open connections get 1001 Going Away and
/// `shutdown_grace` to finish their close handshakes, and every thread is joined.
pub struct ServerHandle {
    pub(super) core: Arc<Core>,
    pub(super) acceptor: Option<JoinHandle<()>>,
    pub(super) local_addr: SocketAddr,
    /// The socket file, for a server on a Unix-domain socket.
    pub(super) unix_path: Option<std::path::PathBuf>,
    /// The listening socket itself (a second handle), to wake the acceptor
    /// when its file is gone.
    #[cfg(unix)]
    pub(super) unix_listener: Option<std::os::unix::net::UnixListener>,
    pub(super) closer: Closer,
    /// The backplane subscriber, when the server has a backplane.
    #[cfg(feature = "redis")]
    pub(super) cluster: Option<crate::backplane::Subscriber>,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .field("connections", &self.connection_count())
            .finish()
    }
}

impl ServerHandle {
    /// The address the server listens on (with the real port when started
    /// on port 0); `0.0.0.0:0` on a Unix-domain socket.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The socket file, for a server started with
    /// [`Server::start_unix`](crate::Server::start_unix); removed when it closes.
    pub fn unix_path(&self) -> Option<&std::path::Path> {
        self.unix_path.as_deref()
    }

    /// How many WebSocket connections are open.
    pub fn connection_count(&self) -> usize {
        self.core.hub.count()
    }

    /// A snapshot of what the server is doing: connections per resource,
    /// event clients per stream, groups, message and byte totals,
    /// handshakes, refusals, closes, hook panics, backlogs and threads.
    /// Taking one visits every open connection (briefly, under the lock
    /// a closing connection takes); the counting itself costs the message
    /// path no lock.
    pub fn stats(&self) -> crate::Stats {
        crate::session::stats::snapshot(&self.core.hub)
    }

    /// A handle for pushing to connections and groups from any thread.
    pub fn broadcaster(&self) -> Broadcaster {
        Broadcaster::new(Arc::clone(&self.core.hub))
    }

    /// A handle for pushing events, from any thread, to the clients of the
    /// event stream defined at `route` (the path as given to
    /// [`Server::define_event_stream`]); `None` if there is none.
    ///
    /// [`Server::define_event_stream`]: crate::Server::define_event_stream
    pub fn event_stream(&self, route: &str) -> Option<EventPublisher> {
        self.core.sse.publisher(route)
    }

    /// How many event-stream (SSE) clients are connected, counting every
    /// stream of this server; one stream's count is
    /// [`EventPublisher::client_count`].
    pub fn event_client_count(&self) -> usize {
        self.core.sse.count()
    }

    /// Stops the server and waits until every thread it started has ended.
    ///
    /// Called (or the handle dropped) from one of this server's own hooks,
    /// it cannot wait for the thread that hook runs on: it does everything
    /// else (the listener closes, every other client gets its grace period,
    /// every other thread is joined), cuts the hook's own client off with
    /// 1001, and returns; that thread ends as soon as the hook returns.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        // Loops pausing on a `Closer` end now, not after the grace period.
        self.closer.close();
        let core = &self.core;
        core.stopping.store(true, Ordering::SeqCst);
        core.hub.go_away();
        // Wake the blocked accept() by connecting to ourselves.
        match &self.unix_path {
            #[cfg(unix)]
            Some(path) => {
                if std::os::unix::net::UnixStream::connect(path).is_err() {
                    // The file is gone (removed by someone): shutting the
                    // listening socket wakes accept() instead (Linux).
                    if let Some(listener) = &self.unix_listener {
                        let _ = socket2::SockRef::from(listener).shutdown(Shutdown::Both);
                    }
                }
            }
            _ => drop(TcpStream::connect_timeout(
                &wake_addr(self.local_addr),
                Duration::from_secs(1),
            )),
        }
        let _ = acceptor.join();
        #[cfg(unix)]
        drop(self.unix_listener.take()); // the listening socket closes now
        if let Some(path) = &self.unix_path {
            // The listener is closed: its file goes too.
            if let Err(e) = std::fs::remove_file(path) {
                log::debug!("{}: not removed: {e}", path.display());
            }
        }
        log::debug!("listener on {} closed", self.local_addr);

        // Going Away to open connections, the end of the stream to event
        // clients; a socket still reading its request is cut (one whose 101
        // is on the way gets its 1001 as it registers). From a hook, the hook's
        // own connection is cut off below instead: its thread cannot read
        // the answer until the hook returns.
        let own = serving_here(core);
        let sockets: Vec<(u64, Arc<Stream>)> = core
            .sockets
            .lock()
            .iter()
            .map(|(k, v)| (*k, Arc::clone(v)))
            .collect();
        for (id, stream) in &sockets {
            match core.hub.connection(*id) {
                Some(_) if Some(*id) == own => {}
                Some(conn) => conn.inner.send_close(1001, "server shutting down"),
                None if core.sse.close_client(*id) => {}
                // Its 101 is on the way; it gets its 1001 as it registers.
                None if core.upgrading.lock().contains(id) => {}
                None => {
                    let _ = stream.shutdown(Shutdown::Both);
                }
            }
        }
        // From a hook, the hook's own socket stays open until it returns.
        let deadline = crate::deadline::after(core.config.shutdown_grace);
        let mut open = core.sockets.lock();
        while open.keys().any(|id| Some(*id) != own)
            && !core
                .sockets_empty
                .wait_until(&mut open, deadline)
                .timed_out()
        {}
        let left: Vec<(u64, Arc<Stream>)> = open.iter().map(|(k, v)| (*k, Arc::clone(v))).collect();
        drop(open);
        for (id, stream) in left {
            match core.hub.connection(id) {
                Some(conn) => conn.inner.force_end(1001, "server shutting down"),
                None => {
                    let _ = stream.shutdown(Shutdown::Both);
                }
            }
        }
        let threads = std::mem::take(&mut core.pool.lock().threads);
        let me = std::thread::current().id();
        for t in threads {
            // Our own thread (`own` above) cannot be joined; it is cut off
            // and ends when its hook returns.
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
        #[cfg(feature = "redis")]
        self.leave_cluster();
        let core = &self.core;
        core.hub.stop();
        core.sse.release();
        log::debug!("server on {} stopped", self.local_addr);
    }
}

/// Waiting for a close asked for elsewhere (see [`Closer`]).
impl ServerHandle {
    /// A handle that asks this server to close, from any thread (a Ctrl-C
    /// handler, a hook, a timer); the thread in [`ServerHandle::wait`] then
    /// closes it.
    pub fn closer(&self) -> Closer {
        self.closer.clone()
    }

    /// Blocks until a [`Closer`] of this server asks it to close. Then
    /// call [`ServerHandle::close`] (or drop the handle), which does the
    /// closing on this thread:
    ///
    /// ```no_run
    /// # let server = wsportal::Server::new();
    /// let handle = server.start("127.0.0.1:9001")?;
    /// let closer = handle.closer();
    /// // Elsewhere: a hook, a timer, or a Ctrl-C handler (see the crate docs).
    /// std::thread::spawn(move || closer.close());
    /// handle.wait(); // serves until then
    /// handle.close(); // 1001 to every client, then every thread is joined
    /// # Ok::<(), wsportal::Error>(())
    /// ```
    pub fn wait(&self) {
        self.closer.wait();
    }

    /// Blocks until a [`Closer`] asks this server to close or `timeout`
    /// has passed; returns whether a close was asked for. The server keeps
    /// running either way until [`ServerHandle::close`].
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.closer.wait_timeout(timeout)
    }
}

/// The backplane (feature `redis`).
#[cfg(feature = "redis")]
impl ServerHandle {
    pub(super) fn join_cluster(&mut self, bp: &crate::Backplane) -> Result<(), Error> {
        let node = Arc::new(crate::backplane::Node::new(bp.clone()));
        let core = &self.core;
        let cluster: Arc<dyn crate::session::cluster::Cluster> = node.clone();
        core.hub.set_cluster(Some(Arc::clone(&cluster)));
        core.sse.set_cluster(Some(&cluster));
        let sub = crate::backplane::Subscriber::start(
            node,
            Arc::clone(&core.hub),
            Arc::clone(&core.sse),
        )?;
        self.cluster = Some(sub);
        Ok(())
    }

    /// Leaves the cluster: subscriber and presence threads joined, then
    /// presence removed (so no refresh writes it back).
    fn leave_cluster(&mut self) {
        let Some(mut sub) = self.cluster.take() else {
            return;
        };
        sub.stop();
        let core = &self.core;
        if let Some(node) = core.hub.cluster() {
            let groups: Vec<String> = core.hub.group_names().into_iter().map(|(g, _)| g).collect();
            node.retire(&groups);
        }
        core.hub.set_cluster(None);
        core.sse.set_cluster(None);
    }
}

/// Where to connect to wake our own `accept()`: a wildcard address means loopback.
fn wake_addr(addr: SocketAddr) -> SocketAddr {
    let mut a = addr;
    if a.ip().is_unspecified() {
        a.set_ip(match a {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    a
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
