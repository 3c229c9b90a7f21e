//! What a running server shares between its acceptor, its pool threads and
//! its [`ServerHandle`](super::ServerHandle): the [`Core`] (settings, routes,
//! hub, event streams, the sockets being served, the pool's counts), the
//! gauges it lends to `Stats`, and which socket this thread serves.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use super::Endpoint;
use crate::http::route::Routes;
use crate::session::hub::Hub;
use crate::sse::Streams;
use crate::transport::Stream;
use crate::Config;

thread_local! {
    /// On a pool thread: the server (its `Core`'s address) and the socket id
    /// it is serving, so that a shutdown begun by a hook knows its own thread.
    pub(super) static SERVING: std::cell::Cell<Option<(usize, u64)>> = const { std::cell::Cell::new(None) };
}

/// The socket this thread is serving for `core`, if it is one of its pool
/// threads (then it runs the hook that called us).
pub(super) fn serving_here(core: &Core) -> Option<u64> {
    let key = core as *const Core as usize;
    SERVING
        .with(std::cell::Cell::get)
        .and_then(|(c, id)| (c == key).then_some(id))
}

/// The pool's threads, and how many wait for a socket.
#[derive(Default)]
pub(super) struct Pool {
    pub(super) idle: usize,
    pub(super) threads: Vec<JoinHandle<()>>,
}

/// One running server, shared by its acceptor, pool threads and handle.
pub(super) struct Core {
    pub(super) config: Config,
    pub(super) routes: Routes<Arc<Endpoint>>,
    pub(super) hub: Arc<Hub>,
    /// Event streams and their open clients.
    pub(super) sse: Arc<Streams>,
    /// Every socket being served, handshaking or open, for shutdown.
    pub(super) sockets: Mutex<HashMap<u64, Arc<Stream>>>,
    /// Notified whenever a socket leaves `sockets`.
    pub(super) sockets_empty: Condvar,
    /// Sockets whose `101` is being written or was written: a shutdown
    /// does not cut them but leaves them the 1001 `Hub::register` sends.
    pub(super) upgrading: Mutex<HashSet<u64>>,
    pub(super) next_id: AtomicU64,
    pub(super) active: AtomicUsize,
    pub(super) stopping: AtomicBool,
    pub(super) pool: Mutex<Pool>,
    /// The routes of the WebSocket resources, for `stats()`.
    pub(super) resources: Vec<String>,
    /// Set when every connection is TLS.
    pub(super) tls: Option<TlsSetting>,
}

impl crate::session::stats::Gauges for Core {
    fn resources(&self) -> Vec<String> {
        self.resources.clone()
    }

    fn event_clients(&self) -> Vec<(String, usize)> {
        self.sse.clients_per_stream()
    }

    fn event_backlogs(&self) -> Vec<usize> {
        self.sse.backlogs()
    }

    fn threads(&self) -> (usize, usize) {
        let idle = self.pool.lock().idle;
        (self.active.load(Ordering::SeqCst), idle)
    }
}

/// A server's TLS settings (with feature `tls`; a type without values otherwise).
#[cfg(feature = "tls")]
pub(super) type TlsSetting = crate::TlsConfig;
#[cfg(not(feature = "tls"))]
pub(super) type TlsSetting = std::convert::Infallible;
