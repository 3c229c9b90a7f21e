//! The sink a writer callback writes to (`EventSink`): the client's own
//! thread, one client.

use std::fmt;
use std::io::{self, Read};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::client::EventClient;
use crate::transport::Transport;
use crate::{Error, Event};

/// Where a writer callback
/// ([`EventStream::writer`](crate::EventStream::writer)) writes events. It
/// runs on the client's own thread; every method fails with
/// [`Error::Closed`] once the client has gone, which is the writer's cue to
/// return.
pub struct EventSink<'a> {
    client: &'a EventClient,
}

impl fmt::Debug for EventSink<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSink")
            .field("client", self.client)
            .finish()
    }
}

impl<'a> EventSink<'a> {
    pub(crate) fn new(client: &'a EventClient) -> EventSink<'a> {
        EventSink { client }
    }

    /// Sends an event to this client.
    ///
    /// # Errors
    /// As [`EventClient::send`].
    pub fn send(&self, event: &Event) -> Result<(), Error> {
        self.client.send(event)
    }

    /// Sends a comment line.
    ///
    /// # Errors
    /// As [`EventClient::comment`].
    pub fn comment(&self, text: &str) -> Result<(), Error> {
        self.client.comment(text)
    }

    /// Waits up to `timeout`, returning early with an error when the client
    /// goes away or the stream is closed (also by server shutdown). Use it
    /// instead of `thread::sleep` between events, so a departed client or a
    /// closing server ends the writer at once.
    ///
    /// # Errors
    /// [`Error::Closed`] when the client has gone or the stream is closing.
    pub fn wait(&self, timeout: Duration) -> Result<(), Error> {
        let inner = &self.client.inner;
        let deadline = crate::deadline::after(timeout);
        let mut scratch = [0u8; 256];
        loop {
            if inner.closing.load(Ordering::SeqCst) {
                return Err(Error::Closed);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            // Blocking in read notices at once a client that hangs up.
            if inner.stream.set_read_timeout(Some(left)).is_err() {
                return Err(Error::Closed);
            }
            match Transport::waiting(&inner.stream).read(&mut scratch) {
                Ok(0) => {
                    // Either the client hung up, or `close` woke us (then the
                    // backlog is still to be written).
                    if !inner.closing.load(Ordering::SeqCst) {
                        inner.gone();
                    }
                    return Err(Error::Closed);
                }
                Ok(_) => {} // A client has nothing to say on an event stream.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => {
                    inner.gone();
                    return Err(Error::Closed);
                }
            }
        }
    }

    /// The client this sink writes to.
    pub fn client(&self) -> &EventClient {
        self.client
    }

    /// Whether events can still be sent.
    pub fn is_open(&self) -> bool {
        self.client.is_open()
    }
}
