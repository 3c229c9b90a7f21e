//! A blocking `EventSource`: [`EventSource`] (the settings) opens
//! [`EventReader`], which reads a `text/event-stream` (the WHATWG wire format,
//! parsed by [`Parser`]) on the caller's own thread and reconnects after a
//! lost connection, sending `Last-Event-ID`, as browsers do.
//!
//! Architecture invariant: no thread of its own. Reading, waiting and
//! reconnecting happen inside [`EventReader::recv_timeout`]; another thread
//! stops it through an [`EventReaderCloser`], which shuts the socket down and
//! wakes a reconnect delay.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

mod parser;

use self::parser::Parser;
use super::handshake::{BodyLength, Target};
use super::Client;
use crate::transport::{Stream, Transport};
use crate::Error;

/// One event received from an event stream: the browser's `MessageEvent`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEvent {
    /// The event type: the `event:` field, `message` without one.
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    /// The last `id:` seen on the stream so far (empty if none): what a
    /// reconnect sends as `Last-Event-ID`.
    pub last_event_id: String,
}

/// A blocking `EventSource`'s settings: the `http://` or `https://` URL
/// (feature `tls`), request headers, the connect timeout, the reconnection
/// delay, a proxy. [`EventSource::connect`] opens the stream.
///
/// ```no_run
/// use std::time::Duration;
/// use wsportal::EventSource;
///
/// let mut events = EventSource::new("http://127.0.0.1:8080/events")
///     .retry(Duration::from_secs(1))
///     .connect()?;
/// for event in events.by_ref().take(3) {
///     let event = event?;
///     println!("{}: {}", event.event, event.data);
/// }
/// # Ok::<(), wsportal::Error>(())
/// ```
#[derive(Clone)]
pub struct EventSource {
    url: String,
    client: Client,
    retry: Duration,
    last_event_id: String,
    max_event_size: usize,
}

impl fmt::Debug for EventSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSource")
            .field("url", &self.url)
            .field("client", &self.client)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl EventSource {
    /// An event source for `url` (`http://host[:port]/path[?query]`, or
    /// `https://` with the `tls` feature): a 3 s reconnection delay until
    /// the server sends `retry:`, events up to 1 MiB.
    pub fn new(url: impl Into<String>) -> EventSource {
        let url = url.into();
        EventSource {
            client: Client::new(as_ws_url(&url)),
            url,
            retry: Duration::from_secs(3),
            last_event_id: String::new(),
            max_event_size: 1 << 20,
        }
    }

    /// Adds a request header (`Authorization`, `Cookie`, ...).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> EventSource {
        self.client = self.client.header(name, value);
        self
    }

    /// How long connecting and reading the response head may take (default
    /// 10 s).
    pub fn timeout(mut self, timeout: Duration) -> EventSource {
        self.client = self.client.timeout(timeout);
        self
    }

    /// The reconnection delay until the server sets one with `retry:`; each
    /// wait is this plus up to half as much again (jitter), doubled after
    /// each failed attempt in a row (at most 32 times).
    pub fn retry(mut self, delay: Duration) -> EventSource {
        self.retry = delay;
        self
    }

    /// The `Last-Event-ID` of the first request: resumes a stream read
    /// before, by another process.
    pub fn last_event_id(mut self, id: impl Into<String>) -> EventSource {
        self.last_event_id = id.into();
        self
    }

    /// The largest event (its data and any one line) accepted; a larger
    /// one ends the stream with [`Error::TooBig`].
    pub fn max_event_size(mut self, bytes: usize) -> EventSource {
        self.max_event_size = bytes;
        self
    }

    /// An HTTP CONNECT proxy, as [`Client::proxy`].
    pub fn proxy(mut self, url: impl Into<String>) -> EventSource {
        self.client = self.client.proxy(url);
        self
    }

    /// The proxy from the environment, as [`Client::proxy_from_env`].
    pub fn proxy_from_env(mut self) -> EventSource {
        self.client = self.client.proxy_from_env();
        self
    }

    /// The TLS configuration for `https://`, as [`Client::tls_config`].
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> EventSource {
        self.client = self.client.tls_config(config);
        self
    }

    /// Trusts PEM root certificates, as [`Client::add_root_certificate`].
    #[cfg(feature = "tls")]
    pub fn add_root_certificate(mut self, pem: impl AsRef<[u8]>) -> EventSource {
        self.client = self.client.add_root_certificate(pem);
        self
    }

    /// Connects (once: an error here is returned, not retried) and returns
    /// the stream. Later losses reconnect by themselves.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a URL that is not `http://` or
    /// `https://`, or a bad header; [`Error::Io`], [`Error::Timeout`],
    /// [`Error::Tls`] and [`Error::Proxy`] as for [`Client::connect`];
    /// [`Error::Http`] for an answer other than `200` (a `204` means the
    /// server wants no reader: no retry); [`Error::Protocol`] for a `200`
    /// that is not `text/event-stream`.
    pub fn connect(&self) -> Result<EventReader, Error> {
        if !(starts_with(&self.url, "http://") || starts_with(&self.url, "https://")) {
            return Err(Error::InvalidInput(
                "an event source url must start with http:// or https://",
            ));
        }
        let target = super::handshake::parse_url(&as_ws_url(&self.url))?;
        let mut events = EventReader {
            source: self.clone(),
            target,
            shared: Arc::new(Shared::default()),
            conn: None,
            parser: Parser::new(self.max_event_size),
            retry: self.retry,
            reconnect_at: None,
            failures: 0,
            ended: false,
            pending: VecDeque::new(),
        };
        events.parser.resume_from(&self.last_event_id);
        let (conn, first) = events.open()?;
        events.opened(conn, &first)?;
        Ok(events)
    }
}

fn starts_with(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// `http://` as `ws://` and `https://` as `wss://`, so that the client's
/// URL parser (and its TLS choice) serves both.
fn as_ws_url(url: &str) -> String {
    if starts_with(url, "http://") {
        format!("ws://{}", &url[7..])
    } else if starts_with(url, "https://") {
        format!("wss://{}", &url[8..])
    } else {
        url.to_owned()
    }
}

/// What another thread shares with [`EventReader`] to stop it.
#[derive(Default)]
struct Shared {
    state: Mutex<Stop>,
    cv: Condvar,
}

#[derive(Default)]
struct Stop {
    stopped: bool,
    /// The open connection's socket, to shut it down.
    socket: Option<TcpStream>,
}

/// Stops an [`EventReader`] from another thread: its reader returns
/// [`Error::Closed`] (the iterator ends) at once, from a read or a
/// reconnect delay. Cheap to clone.
#[derive(Clone)]
pub struct EventReaderCloser {
    shared: Arc<Shared>,
}

impl fmt::Debug for EventReaderCloser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventReaderCloser").finish_non_exhaustive()
    }
}

impl EventReaderCloser {
    /// Stops the stream for good.
    pub fn close(&self) {
        let mut stop = self.shared.state.lock();
        stop.stopped = true;
        if let Some(s) = stop.socket.take() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        self.shared.cv.notify_all();
    }
}

/// An open event stream, read on the calling thread: see
/// [`EventSource`]. As an iterator it yields each event, an error that ends
/// the stream, and then `None`.
pub struct EventReader {
    source: EventSource,
    target: Target,
    shared: Arc<Shared>,
    conn: Option<Conn>,
    parser: Parser,
    retry: Duration,
    /// When to connect again after a loss.
    reconnect_at: Option<Instant>,
    failures: u32,
    ended: bool,
    pending: VecDeque<MessageEvent>,
}

impl fmt::Debug for EventReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventReader")
            .field("url", &self.source.url)
            .field("connected", &self.conn.is_some())
            .field("last_event_id", &self.parser.last_event_id)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// One connection's body.
struct Conn {
    stream: Stream,
    body: Body,
}

enum Body {
    UntilClose,
    /// The decoder, and whether the last chunk came.
    Chunked(super::handshake::Dechunker, bool),
    /// The bytes left.
    Exactly(usize),
}

impl Body {
    /// Whether the body is complete: the stream ended, to be reopened.
    fn finished(&self) -> bool {
        matches!(self, Body::Exactly(0) | Body::Chunked(_, true))
    }
}

impl EventReader {
    /// A handle that stops this stream from another thread.
    pub fn closer(&self) -> EventReaderCloser {
        EventReaderCloser {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The last event id seen (sent as `Last-Event-ID` on reconnecting).
    pub fn last_event_id(&self) -> &str {
        &self.parser.last_event_id
    }

    /// Whether a connection is open now.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Waits for the next event, reconnecting as needed.
    ///
    /// # Errors
    /// As [`recv_timeout`](EventReader::recv_timeout), without the timeout.
    pub fn recv(&mut self) -> Result<MessageEvent, Error> {
        self.recv_timeout(Duration::MAX)
    }

    /// Waits at most `timeout` for the next event, reconnecting as needed
    /// (a connect attempt, bounded by [`EventSource::timeout`], may run past
    /// it). A partly received event is kept for the next call.
    ///
    /// # Errors
    /// [`Error::Timeout`] when no event came in time; [`Error::Closed`]
    /// once the stream was stopped ([`EventReaderCloser`]) or the server
    /// answered a reconnect with `204`; the first error that ends the
    /// stream (a refusal, a stream that is not `text/event-stream`, an
    /// event over `max_event_size`), after which it is closed.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<MessageEvent, Error> {
        let deadline = crate::deadline::after(timeout);
        let mut buf = [0u8; 4096];
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            if self.ended || self.shared.state.lock().stopped {
                self.end();
                return Err(Error::Closed);
            }
            let Some(conn) = &mut self.conn else {
                self.reconnect(deadline)?;
                continue;
            };
            if conn.body.finished() {
                self.lost("the body ended");
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout("no event arrived in time"));
            }
            conn.stream.set_read_timeout(Some(left))?;
            let want = match conn.body {
                Body::Exactly(n) => n.min(buf.len()),
                _ => buf.len(),
            };
            let read = Transport::waiting(&conn.stream).read(&mut buf[..want]);
            match read {
                Ok(n) if n > 0 => {
                    let mut plain = Vec::new();
                    let body = match &mut conn.body {
                        Body::UntilClose => &buf[..n],
                        Body::Exactly(left) => {
                            *left -= n;
                            &buf[..n]
                        }
                        Body::Chunked(d, done) => match d.feed(&buf[..n], &mut plain) {
                            Ok(last) => {
                                *done = last;
                                &plain[..]
                            }
                            Err(()) => {
                                self.lost("a malformed chunked body");
                                continue;
                            }
                        },
                    };
                    let body = body.to_vec();
                    self.take(&body)?;
                }
                Ok(_) => self.lost("the server closed the stream"),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if super::connect::timed_out(&e) => {
                    if Instant::now() >= deadline {
                        return Err(Error::Timeout("no event arrived in time"));
                    }
                }
                Err(e) => self.lost(&e.to_string()),
            }
        }
    }

    /// The connection ended: drop what was half received and schedule a
    /// reconnect after `retry` with jitter.
    fn lost(&mut self, why: &str) {
        log::debug!("events: {why}; reconnecting in about {:?}", self.retry);
        self.conn = None;
        self.shared.state.lock().socket = None;
        self.parser.reset();
        self.schedule();
    }

    fn schedule(&mut self) {
        let base = self
            .retry
            .checked_mul(1 << self.failures.min(5))
            .unwrap_or(Duration::MAX);
        let half = u64::try_from(base.as_nanos() / 2).unwrap_or(u64::MAX);
        let jitter = Duration::from_nanos(super::reconnect::random() % half.saturating_add(1));
        self.reconnect_at = Some(crate::deadline::after(base.saturating_add(jitter)));
    }

    /// Waits for the reconnect time (or `deadline`, or a stop), then tries
    /// once.
    fn reconnect(&mut self, deadline: Instant) -> Result<(), Error> {
        let at = self.reconnect_at.unwrap_or_else(Instant::now);
        {
            let mut stop = self.shared.state.lock();
            while !stop.stopped && Instant::now() < at.min(deadline) {
                self.shared.cv.wait_until(&mut stop, at.min(deadline));
            }
            if stop.stopped {
                return Ok(());
            }
        }
        if Instant::now() < at {
            return Err(Error::Timeout("no event arrived in time"));
        }
        match self.open() {
            Ok((conn, first)) => {
                log::debug!("events: reconnected to {}", self.source.url);
                self.failures = 0;
                self.reconnect_at = None;
                self.opened(conn, &first)
            }
            // A network error (or a proxy that cannot reach the server):
            // try again, as browsers do; a refusal by the server is final.
            Err(e @ (Error::Io(_) | Error::Timeout(_) | Error::Proxy { status: 502..=504 })) => {
                self.failures = self.failures.saturating_add(1);
                log::debug!("events: reconnecting failed: {e}");
                self.schedule();
                Ok(())
            }
            Err(Error::Http { status: 204, .. }) => {
                log::debug!("events: the server answered 204: not reconnecting");
                self.end();
                Err(Error::Closed)
            }
            Err(e) => {
                self.end();
                Err(e)
            }
        }
    }

    /// A new connection, and the first body bytes that came with its head.
    fn opened(&mut self, conn: Conn, first: &[u8]) -> Result<(), Error> {
        self.conn = Some(conn);
        self.take(first)
    }

    /// Parses body bytes; the server's `retry:` takes effect at once.
    fn take(&mut self, body: &[u8]) -> Result<(), Error> {
        if let Err(e) = self.parser.feed(body, &mut self.pending) {
            self.end();
            return Err(e);
        }
        if let Some(retry) = self.parser.retry.take() {
            self.retry = retry;
        }
        Ok(())
    }

    /// Stops for good: nothing is read or retried any more.
    fn end(&mut self) {
        self.ended = true;
        self.conn = None;
        self.shared.state.lock().socket = None;
    }

    /// Opens one connection: the request, the response head, its checks.
    /// Returns it and the body bytes that came with the head.
    fn open(&self) -> Result<(Conn, Vec<u8>), Error> {
        let client = &self.source.client;
        let c = &client.config;
        let deadline = crate::deadline::after(client.timeout.unwrap_or(c.handshake_timeout));
        let mut headers = vec![
            ("Host".to_owned(), self.target.host_header.clone()),
            ("Accept".to_owned(), "text/event-stream".to_owned()),
            ("Cache-Control".to_owned(), "no-cache".to_owned()),
        ];
        let id = &self.parser.last_event_id;
        if !id.is_empty() {
            headers.push(("Last-Event-ID".to_owned(), id.clone()));
        }
        for (name, value) in &client.headers {
            if crate::http::check_header(name, value).is_err() {
                return Err(Error::InvalidInput(
                    "a header name is not an http token, or its value has control characters",
                ));
            }
        }
        if client
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("host"))
        {
            headers.remove(0);
        }
        headers.extend(client.headers.iter().cloned());
        let (stream, peer) = client.open(&self.target, deadline)?;
        let (response, leftover) =
            super::connect::exchange(&stream, &self.target, &headers, deadline, c)?;
        if response.status != 200 {
            let body = super::connect::read_body(&stream, &response, leftover, deadline, 64 << 10);
            log::debug!("events: {peer} answered {}", response.status);
            return Err(Error::Http {
                status: response.status,
                headers: response.headers,
                body,
            });
        }
        let media = response.header("content-type").unwrap_or("");
        let media = media.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("text/event-stream") {
            return Err(Error::Protocol(
                "events: the answer is not text/event-stream",
            ));
        }
        let body = match response.body_length() {
            BodyLength::Chunked => Body::Chunked(Default::default(), false),
            BodyLength::Exactly(n) => Body::Exactly(n),
            BodyLength::UntilClose | BodyLength::Empty => Body::UntilClose,
        };
        {
            let mut stop = self.shared.state.lock();
            if stop.stopped {
                return Err(Error::Closed);
            }
            stop.socket = stream.try_clone().ok();
        }
        let mut conn = Conn { stream, body };
        // The events that came with the head go through the same path.
        let mut first = Vec::new();
        match &mut conn.body {
            Body::UntilClose => first = leftover,
            Body::Exactly(n) => {
                let k = leftover.len().min(*n);
                *n -= k;
                first.extend_from_slice(&leftover[..k]);
            }
            Body::Chunked(d, done) => match d.feed(&leftover, &mut first) {
                Ok(last) => *done = last,
                Err(()) => return Err(Error::Protocol("events: a malformed chunked body")),
            },
        }
        Ok((conn, first))
    }
}

impl Drop for EventReader {
    /// Closes the connection: the socket's copy an [`EventReaderCloser`]
    /// holds is dropped too.
    fn drop(&mut self) {
        self.end();
    }
}

impl Iterator for EventReader {
    type Item = Result<MessageEvent, Error>;

    /// The next event; an error that ends the stream once; then `None`.
    fn next(&mut self) -> Option<Self::Item> {
        if self.ended && self.pending.is_empty() {
            return None;
        }
        match self.recv() {
            Err(Error::Closed) => None,
            other => Some(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls_map_to_the_client_parser() {
        assert_eq!(as_ws_url("HTTP://h/x"), "ws://h/x");
        assert_eq!(as_ws_url("https://h:1/x?y"), "wss://h:1/x?y");
        assert!(matches!(
            EventSource::new("ws://h/").connect(),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            EventSource::new("http://h/#f").connect(),
            Err(Error::InvalidInput(_))
        ));
    }
}
