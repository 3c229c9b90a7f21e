//! The crate's one error type, and the error that gives an unsent message back.

use std::fmt;
use std::io;

/// Everything that can go wrong in wsportal.
///
/// Errors that end a connection say which close code was sent for them
/// ([`Error::close_code`]). Print one with `{}` (its `Display`) for people;
/// `Debug` shows every field, an [`Error::Http`] body as text when it is UTF-8.
#[non_exhaustive]
pub enum Error {
    /// The server could not listen on the address it was given.
    Bind {
        /// The address as it was given.
        addr: String,
        /// What the operating system said.
        source: io::Error,
    },
    /// A configuration value is out of range; refused at start.
    Config {
        /// The name of the setting, as in the setter's name.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A path given to `define_*` is malformed or already taken.
    Route(String),
    /// An I/O error on a connection.
    Io(io::Error),
    /// The peer broke RFC 6455 (close code 1002).
    Protocol(&'static str),
    /// A text message or close reason was not valid UTF-8 (close code 1007).
    InvalidUtf8,
    /// A message or frame was larger than the configured limit (close code 1009).
    TooBig {
        /// What the peer announced or sent, in bytes.
        size: u64,
        /// The configured limit, in bytes.
        limit: usize,
    },
    /// The peer did not read fast enough and its backlog filled (close code 1008).
    TooSlow,
    /// A message would wait behind an open streamed message
    /// ([`MessageWriter`](crate::MessageWriter)) past the backlog limit while
    /// the peer keeps up: it was not sent and the connection stays open.
    /// Send it after the stream ends, or wait with `send_timeout`.
    BehindStream,
    /// The peer did not answer in time (keepalive, close handshake, HTTP request,
    /// a client's connect and handshake), or a client's `recv_timeout` expired.
    Timeout(&'static str),
    /// A hook panicked; the text is the panic message.
    HandlerPanic(String),
    /// The connection is closed or closing, so nothing more can be sent.
    Closed,
    /// A reconnecting client ([`Reconnecting`](crate::Reconnecting)) has no
    /// open connection right now: it lost one and is connecting again. The
    /// send was not made (nothing is queued unless
    /// [`Reconnect::buffer`](crate::Reconnect::buffer) has room): try again
    /// once it is back.
    NotConnected,
    /// A push found no open connection to deliver to (reblocks-websocket's
    /// `no-active-websockets`). The text names the target.
    NoConnections(String),
    /// A [`Client`](crate::Client)'s connection was refused by the server
    /// with this HTTP status. (An invalid SSE event name or id is
    /// [`Error::InvalidInput`].)
    Http {
        /// The HTTP status code.
        status: u16,
        /// Response headers, as received.
        headers: Vec<(String, String)>,
        /// Response body, as received.
        body: Vec<u8>,
    },
    /// A [`Client`](crate::Client)'s proxy refused to open the tunnel with
    /// this HTTP status: 407 asks for other credentials, 403 or 502 that it
    /// will not or cannot reach the server. (A SOCKS5 proxy's refusal is
    /// given the status an HTTP proxy would answer.)
    Proxy {
        /// The proxy's HTTP status code.
        status: u16,
    },
    /// An argument was invalid (for example a newline in an SSE event name).
    InvalidInput(&'static str),
    /// TLS (feature `tls`) failed: a certificate or key file that cannot be
    /// read or does not fit, or a handshake refused (an untrusted or expired
    /// certificate, a wrong host name, ...). The text is the reason.
    Tls(String),
    /// The Redis backplane (feature `redis`) could not publish or answer
    /// within its timeout (Redis unreachable, restarting, or too slow). The
    /// text is the reason.
    Backplane(String),
}

impl Error {
    /// The close code this error is answered with when it ends a connection.
    pub fn close_code(&self) -> u16 {
        match self {
            Error::Protocol(_) => 1002,
            Error::InvalidUtf8 => 1007,
            Error::TooSlow => 1008,
            Error::TooBig { .. } => 1009,
            Error::HandlerPanic(_) => 1011,
            _ => 1006,
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Bind { addr, source } => f
                .debug_struct("Bind")
                .field("addr", addr)
                .field("source", source)
                .finish(),
            Error::Config { setting, reason } => f
                .debug_struct("Config")
                .field("setting", setting)
                .field("reason", reason)
                .finish(),
            Error::Route(why) => f.debug_tuple("Route").field(why).finish(),
            Error::Io(e) => f.debug_tuple("Io").field(e).finish(),
            Error::Protocol(why) => f.debug_tuple("Protocol").field(why).finish(),
            Error::InvalidUtf8 => f.write_str("InvalidUtf8"),
            Error::TooBig { size, limit } => f
                .debug_struct("TooBig")
                .field("size", size)
                .field("limit", limit)
                .finish(),
            Error::TooSlow => f.write_str("TooSlow"),
            Error::BehindStream => f.write_str("BehindStream"),
            Error::Timeout(what) => f.debug_tuple("Timeout").field(what).finish(),
            Error::HandlerPanic(msg) => f.debug_tuple("HandlerPanic").field(msg).finish(),
            Error::Closed => f.write_str("Closed"),
            Error::NotConnected => f.write_str("NotConnected"),
            Error::Tls(why) => f.debug_tuple("Tls").field(why).finish(),
            Error::Backplane(why) => f.debug_tuple("Backplane").field(why).finish(),
            Error::NoConnections(target) => f.debug_tuple("NoConnections").field(target).finish(),
            Error::Http {
                status,
                headers,
                body,
            } => {
                let mut d = f.debug_struct("Http");
                d.field("status", status).field("headers", headers);
                match std::str::from_utf8(body) {
                    Ok(text) => d.field("body", &text),
                    Err(_) => d.field("body", body),
                };
                d.finish()
            }
            Error::InvalidInput(why) => f.debug_tuple("InvalidInput").field(why).finish(),
            Error::Proxy { status } => f.debug_struct("Proxy").field("status", status).finish(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            Error::Config { setting, reason } => write!(f, "invalid setting {setting}: {reason}"),
            Error::Route(why) => write!(f, "invalid route: {why}"),
            Error::Io(e) => write!(f, "i/o error: {e}"),
            Error::Protocol(why) => write!(f, "protocol error: {why}"),
            Error::InvalidUtf8 => f.write_str("invalid utf-8 in text"),
            Error::TooBig { size, limit } => {
                write!(f, "message too big: {size} bytes, limit {limit}")
            }
            Error::TooSlow => f.write_str("peer too slow: outbound backlog full"),
            Error::BehindStream => {
                f.write_str("backlog full behind an open streamed message (connection kept)")
            }
            Error::Timeout(what) => write!(f, "timed out: {what}"),
            Error::HandlerPanic(msg) => write!(f, "handler panicked: {msg}"),
            Error::Closed => f.write_str("connection closed"),
            Error::NotConnected => f.write_str("not connected: reconnecting"),
            Error::NoConnections(target) => write!(f, "no open connection for {target}"),
            Error::Http { status, .. } => write!(f, "http request refused with status {status}"),
            Error::InvalidInput(why) => write!(f, "invalid input: {why}"),
            Error::Proxy { status } => {
                write!(f, "the proxy refused the tunnel with status {status}")
            }
            Error::Tls(why) => write!(f, "tls: {why}"),
            Error::Backplane(why) => write!(f, "backplane: {why}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. } => Some(source),
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

/// A failed send becomes [`Error::Closed`] (the message is dropped), so that
/// `?` works in functions returning `Result<_, Error>`.
impl<T> From<SendError<T>> for Error {
    fn from(_: SendError<T>) -> Error {
        Error::Closed
    }
}

/// A send that could not be made: the connection is closed or closing.
/// The message is given back in `.0`, as in crossbeam's `SendError`.
#[derive(PartialEq, Eq, Clone)]
pub struct SendError<T>(pub T);

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a closed connection")
    }
}

impl<T> std::error::Error for SendError<T> {}

/// A [`Connection::send_timeout`](crate::Connection::send_timeout) that could
/// not be made. The message is given back either way, as in crossbeam's
/// `SendTimeoutError`.
#[derive(PartialEq, Eq, Clone)]
pub enum SendTimeoutError<T> {
    /// The backlog had no room before the timeout passed. The connection is
    /// still open (it is not closed for slowness): try again, or give up.
    Timeout(T),
    /// The connection is closed or closing.
    Closed(T),
}

impl<T> SendTimeoutError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendTimeoutError::Timeout(t) | SendTimeoutError::Closed(t) => t,
        }
    }

    /// Whether the wait timed out (rather than the connection closing).
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout(_))
    }
}

impl<T> fmt::Debug for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("Timeout(..)"),
            SendTimeoutError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => {
                f.write_str("timed out waiting for room in the backlog")
            }
            SendTimeoutError::Closed(_) => f.write_str("sending on a closed connection"),
        }
    }
}

impl<T> std::error::Error for SendTimeoutError<T> {}

/// A timed-out send becomes [`Error::Timeout`], a refused one
/// [`Error::Closed`] (the message is dropped), so that `?` works in
/// functions returning `Result<_, Error>`.
impl<T> From<SendTimeoutError<T>> for Error {
    fn from(e: SendTimeoutError<T>) -> Error {
        match e {
            SendTimeoutError::Timeout(_) => Error::Timeout("waiting for room in the backlog"),
            SendTimeoutError::Closed(_) => Error::Closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn http_debug_shows_a_utf8_body_as_text() {
        let e = Error::Http {
            status: 404,
            headers: vec![("Content-Length".into(), "9".into())],
            body: b"not found".to_vec(),
        };
        assert_eq!(
            format!("{e:?}"),
            r#"Http { status: 404, headers: [("Content-Length", "9")], body: "not found" }"#
        );
        let binary = Error::Http {
            status: 500,
            headers: Vec::new(),
            body: vec![0xff, 1],
        };
        assert!(format!("{binary:?}").contains("body: [255, 1]"));
        assert_eq!(format!("{:?}", Error::Closed), "Closed");
    }
}
