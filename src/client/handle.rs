//! An open client connection: [`ClientHandle`], the reader thread that
//! runs `session::run` for it, and how its end is recorded for every handle.

use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::{Condvar, Mutex};

use crate::wire::reader::FrameReader;
use crate::{Config, Connection, Error, Message, Resource};

/// How a client's connection ended, for every handle to see.
#[derive(Default)]
struct Ended {
    status: Mutex<Option<(u16, String)>>,
    cv: Condvar,
}

/// The end of a client's reader thread, however it ends (even by a panic
/// outside the hooks): stops the housekeeper, records how the connection
/// ended and wakes every handle waiting for it.
struct ReaderEnd {
    conn: Connection,
    ended: Arc<Ended>,
    status: Option<(u16, String)>,
}

impl Drop for ReaderEnd {
    fn drop(&mut self) {
        self.conn.inner.hub.stop();
        let status = self.status.take().unwrap_or_else(|| {
            self.conn.inner.force_end(1006, "client thread failed");
            (1006, "client thread failed".to_owned())
        });
        *self.ended.status.lock() = Some(status);
        self.ended.cv.notify_all();
    }
}

/// Signals connect() when dropped: after `on_open` has run, or if it panicked.
struct Opened(Sender<()>);

impl Drop for Opened {
    fn drop(&mut self) {
        let _ = self.0.try_send(());
    }
}

/// Installs the client's wrappers around `hooks` and starts the reader thread.
pub(super) fn start(
    conn: Connection,
    reader: FrameReader,
    mut hooks: Resource,
    response: Vec<(String, String)>,
    c: &Config,
) -> Result<ClientHandle, Error> {
    let (tx, rx) = crossbeam_channel::unbounded::<Message>();
    let queued = Arc::new(AtomicUsize::new(0));
    if hooks.on_message.is_none() {
        let (tx, queued, limit) = (tx.clone(), Arc::clone(&queued), c.max_backlog);
        hooks.on_message = Some(Box::new(move |ws, msg| {
            let len = msg.len();
            let held = queued.load(Ordering::Acquire);
            if held > 0 && held + len > limit {
                // Unread messages are bounded like a server's backlog.
                if ws.is_open() {
                    log::debug!("client: {held} bytes unread; closing with 1008");
                    ws.close(1008, "receive queue full");
                }
                return;
            }
            queued.fetch_add(len, Ordering::AcqRel);
            let _ = tx.send(msg);
        }));
    }
    let (opened_tx, opened_rx) = crossbeam_channel::bounded(1);
    let user_open = hooks.on_open.take();
    hooks.on_open = Some(Box::new(move |ws| {
        let _signal = Opened(opened_tx.clone());
        if let Some(hook) = &user_open {
            hook(ws);
        }
    }));

    let ended = Arc::new(Ended::default());
    let (thread_conn, thread_ended, debug_on_error) =
        (conn.clone(), Arc::clone(&ended), c.debug_on_error);
    let spawned = std::thread::Builder::new()
        .name("wsportal-client".into())
        .stack_size(c.thread_stack_size)
        .spawn(move || {
            let mut end = ReaderEnd {
                conn: thread_conn,
                ended: thread_ended,
                status: None,
            };
            end.status = Some(crate::session::run(
                &end.conn,
                reader,
                &hooks,
                debug_on_error,
            ));
            drop(end);
            // Dropping the hooks and the sender now ends every recv().
            drop((hooks, tx));
        });
    let thread = match spawned {
        Ok(t) => t,
        Err(e) => {
            conn.inner.force_end(1006, "client thread not started");
            conn.inner.hub.stop();
            return Err(Error::Io(e));
        }
    };
    // Returns once on_open has run (or the thread ended without it).
    let _ = opened_rx.recv();
    Ok(ClientHandle {
        shared: Arc::new(Shared {
            reader_id: thread.thread().id(),
            reader: Mutex::new(Some(thread)),
            conn,
            ended,
            rx,
            queued,
            response,
        }),
    })
}

/// An open client connection. Cheap to clone, `Send + Sync`; it dereferences
/// to the shared [`Connection`], so it sends, pings and closes from any
/// thread just as a server-side handle does.
///
/// Without an `on_message` hook, messages wait in a queue for
/// [`recv`](ClientHandle::recv), [`recv_timeout`](ClientHandle::recv_timeout)
/// or [`messages`](ClientHandle::messages). The queue holds at most
/// [`Config::max_backlog`] bytes of unread messages; past that the client
/// closes the connection with 1008, as a server does with a slow peer.
///
/// Dropping the last handle closes the connection (1000) if it is open,
/// waits for the close handshake (bounded by [`Config::close_timeout`]) and
/// joins the client's threads; so does [`disconnect`](ClientHandle::disconnect).
/// A handle captured by the client's own hooks keeps the client alive until
/// the connection ends: hooks should use the `&Connection` they are given.
#[derive(Clone)]
pub struct ClientHandle {
    shared: Arc<Shared>,
}

struct Shared {
    conn: Connection,
    reader: Mutex<Option<JoinHandle<()>>>,
    reader_id: ThreadId,
    ended: Arc<Ended>,
    rx: Receiver<Message>,
    queued: Arc<AtomicUsize>,
    response: Vec<(String, String)>,
}

impl fmt::Debug for ClientHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientHandle")
            .field("peer", &self.shared.conn.peer_addr())
            .field("path", &self.shared.conn.path())
            .field("open", &self.shared.conn.is_open())
            .finish()
    }
}

impl Deref for ClientHandle {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.shared.conn
    }
}

impl ClientHandle {
    /// The shared connection handle (also reachable through `Deref`).
    pub fn connection(&self) -> &Connection {
        &self.shared.conn
    }

    /// Waits for the next queued message.
    ///
    /// # Errors
    /// [`Error::Closed`] once the connection has ended and every queued
    /// message was received ([`close_status`](ClientHandle::close_status)
    /// then says how it ended). With an `on_message` hook nothing is queued,
    /// so this waits for the end.
    pub fn recv(&self) -> Result<Message, Error> {
        let msg = self.shared.rx.recv().map_err(|_| Error::Closed)?;
        self.shared.queued.fetch_sub(msg.len(), Ordering::AcqRel);
        Ok(msg)
    }

    /// Waits at most `timeout` for the next queued message.
    ///
    /// # Errors
    /// [`Error::Timeout`] when none came in time; [`Error::Closed`] as for
    /// [`recv`](ClientHandle::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Message, Error> {
        let msg = self.shared.rx.recv_timeout(timeout).map_err(|e| match e {
            RecvTimeoutError::Timeout => Error::Timeout("no message arrived in time"),
            RecvTimeoutError::Disconnected => Error::Closed,
        })?;
        self.shared.queued.fetch_sub(msg.len(), Ordering::AcqRel);
        Ok(msg)
    }

    /// The queued messages as a blocking iterator that ends when the
    /// connection has ended and the queue is empty.
    pub fn messages(&self) -> impl Iterator<Item = Message> + '_ {
        std::iter::from_fn(move || self.recv().ok())
    }

    /// A header of the server's `101` answer, by case-insensitive name.
    pub fn response_header(&self, name: &str) -> Option<&str> {
        crate::http::header_value(crate::http::pairs(&self.shared.response), name)
    }

    /// Every header of the server's `101` answer, as received.
    pub fn response_headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.shared
            .response
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How the connection ended (the code and reason `on_close` was given),
    /// or `None` while it is still running.
    pub fn close_status(&self) -> Option<(u16, String)> {
        self.shared.ended.status.lock().clone()
    }

    /// Waits at most `timeout` for the connection to end; returns how it
    /// ended, or `None` if it is still running.
    pub fn wait_closed(&self, timeout: Duration) -> Option<(u16, String)> {
        let deadline = crate::deadline::after(timeout);
        let mut status = self.shared.ended.status.lock();
        while status.is_none() {
            if self
                .shared
                .ended
                .cv
                .wait_until(&mut status, deadline)
                .timed_out()
            {
                break;
            }
        }
        status.clone()
    }

    /// Closes with `code` and `reason` (as [`Connection::close`]), waits for
    /// the connection to end (the close handshake is bounded by
    /// [`Config::close_timeout`]) and joins the client's threads. Returns
    /// how it ended.
    ///
    /// Called from one of this client's own hooks it cannot wait for its own
    /// thread: it then only begins the close and returns `None`.
    pub fn disconnect(&self, code: u16, reason: &str) -> Option<(u16, String)> {
        self.shared.finish(code, reason)
    }
}

impl Shared {
    fn finish(&self, code: u16, reason: &str) -> Option<(u16, String)> {
        if self.ended.status.lock().is_none() {
            self.conn.close(code, reason);
        }
        if std::thread::current().id() == self.reader_id {
            return None;
        }
        let thread = self.reader.lock().take();
        match thread {
            Some(t) => {
                let _ = t.join();
            }
            None => {
                // Another handle is joining it; the status comes just before the end.
                let mut status = self.ended.status.lock();
                while status.is_none() {
                    self.ended.cv.wait(&mut status);
                }
            }
        }
        self.ended.status.lock().clone()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.finish(1000, "");
    }
}

#[allow(dead_code)] // because this only checks at compile time.
fn assert_traits() {
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<ClientHandle>();
    send_sync::<super::Client>();
}
