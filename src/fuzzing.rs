//! Internals for the fuzz targets in `fuzz/` (cargo feature `fuzzing`, off by
//! default). Hidden from the docs and outside any semver promise: each item is
//! a thin wrapper over the code the server and client run, so a target
//! exercises exactly that code.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::http::HeadError;
use crate::wire::reader as protocol;
use crate::{Error, Message, Request, Resource};

/// The read buffer stops growing for throughput at this size.
pub const READ_BUFFER_CAP: usize = protocol::GROW_LIMIT;
/// A header alone commits at most this many bytes to a large frame.
pub const DIRECT_MIN: usize = protocol::DIRECT_MIN;
/// A large frame's buffer is at most this many times what arrived of it.
pub const DIRECT_GROWTH: usize = protocol::DIRECT_GROWTH;

/// What the peer sent, once a whole unit has arrived (`protocol::Event`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameEvent {
    /// A whole data message.
    Message(Message),
    /// A ping's payload.
    Ping(Vec<u8>),
    /// A pong's payload.
    Pong(Vec<u8>),
    /// A close frame: `None` when it carried no status code.
    Close(Option<(u16, String)>),
}

/// The connection's inbound state, as a session drives it.
#[derive(Debug)]
pub struct FrameReader(protocol::FrameReader);

impl FrameReader {
    /// A reader for a server (`server == true`: frames must be masked) or a
    /// client, with the given limits, initial buffer size
    /// (`Config::read_buffer_size`) and bytes already read after the head.
    pub fn new(
        server: bool,
        max_frame: usize,
        max_message: usize,
        initial: usize,
        leftover: &[u8],
    ) -> FrameReader {
        let role = if server {
            protocol::Role::Server
        } else {
            protocol::Role::Client
        };
        let limits = protocol::Limits {
            max_frame,
            max_message,
        };
        FrameReader(protocol::FrameReader::new(role, limits, initial, leftover))
    }

    /// One `read` into the buffer; 0 is the end of the stream.
    ///
    /// # Errors
    /// What `read` returned.
    pub fn fill(&mut self, stream: &mut impl Read) -> io::Result<usize> {
        self.0.fill(stream)
    }

    /// The next complete event, or `None` when more bytes are needed.
    ///
    /// # Errors
    /// The refusal that ends the connection (`Error::close_code`).
    pub fn next_event(&mut self) -> Result<Option<FrameEvent>, Error> {
        Ok(self.0.next_event()?.map(|e| match e {
            protocol::Event::Message(m) => FrameEvent::Message(m),
            protocol::Event::Ping(p) => FrameEvent::Ping(p),
            protocol::Event::Pong(p) => FrameEvent::Pong(p),
            protocol::Event::Close(c) => FrameEvent::Close(c),
        }))
    }

    /// Bytes buffered but not yet consumed.
    pub fn buffered(&self) -> usize {
        self.0.buffered()
    }
}

/// How the server answers a request it refuses before any route runs.
#[derive(Debug)]
pub enum HeadRefusal {
    /// Answered with this status (431 too large, 400 malformed) and reason.
    Status(u16, &'static str),
    /// Dropped without an answer (deadline passed, or the peer went).
    Dropped,
}

/// Reads one request head as the server does (`http::read_head`), with a
/// deadline far away. Returns the request and the bytes after the head.
///
/// # Errors
/// The refusal the server would send.
pub fn read_request_head(
    stream: &mut impl Read,
    max_header_size: usize,
) -> Result<(Request, Vec<u8>), HeadRefusal> {
    let peer: SocketAddr = ([127, 0, 0, 1], 1).into();
    let deadline = Instant::now() + Duration::from_secs(3600);
    match crate::http::read_head(stream, &mut |_| Ok(()), peer, max_header_size, deadline) {
        Ok(r) => Ok(r),
        Err(HeadError::TooLarge) => Err(HeadRefusal::Status(431, "request head too large")),
        Err(HeadError::Malformed(why)) => Err(HeadRefusal::Status(400, why)),
        Err(HeadError::Timeout | HeadError::Io(_)) => Err(HeadRefusal::Dropped),
    }
}

/// A handler's request body as the server reads it (`http::body`): the
/// framing from `req`'s headers, then `leftover` and `stream`, at most
/// `max_body_size` bytes, with a deadline far away.
///
/// # Errors
/// The status the server would answer (400 bad framing, 413 too long), or
/// 0 when the stream ends first (the server drops the connection).
pub fn read_request_body(
    req: &Request,
    leftover: Vec<u8>,
    stream: &mut impl Read,
    max_body_size: usize,
) -> Result<Vec<u8>, u16> {
    use crate::http::body::{self, BodyError, Framing};
    let framing = body::framing(req).map_err(|_| 400u16)?;
    if let Framing::Length(n) = framing {
        if n > max_body_size as u64 {
            return Err(413);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(3600);
    let mut set = |_| Ok(());
    let mut input = body::Input::new(stream, &mut set, deadline, leftover);
    body::read(&mut input, framing, max_body_size).map_err(|e| match e {
        BodyError::TooLarge => 413,
        BodyError::Malformed(_) => 400,
        BodyError::Timeout | BodyError::Io(_) => 0,
    })
}

/// What the request's proxy headers make of it when its peer is a trusted
/// proxy (`http::forwarded`): the client's address, the scheme, and
/// whether a handshake with this `Origin` passes the same-origin check.
pub fn forwarded(req: &Request, origin: &str) -> (SocketAddr, String, bool) {
    let mut req = req.clone();
    let trusted = [crate::http::forwarded::Range::host(req.peer.ip())];
    crate::http::forwarded::apply(&mut req, &trusted);
    let allowed = Resource::new().origin_allowed(origin, &req.site());
    (req.peer_addr(), req.scheme().to_owned(), allowed)
}

/// The server's upgrade check for a resource offering `protocols`
/// (`handshake::upgrade`): the `101` response, or the refusal's status.
///
/// # Errors
/// The refusal's status code.
pub fn upgrade(req: &Request, protocols: &[&str]) -> Result<Vec<u8>, u16> {
    let res = Resource::new().protocols(protocols.iter().copied());
    crate::server::handshake::upgrade(req, &res)
        .map(|up| up.response)
        .map_err(|r| r.status)
}

/// The client's check of a response head (the bytes up to and including the
/// blank line): the status, and for a `101` the agreed subprotocol after the
/// `Sec-WebSocket-Accept` and extension checks.
///
/// # Errors
/// Why the client refuses the answer.
pub fn check_response(
    head: &[u8],
    key: &str,
    offered: &[String],
) -> Result<(u16, Option<String>), Error> {
    let Some((response, _)) = crate::client::handshake::parse_response(head)? else {
        return Err(Error::Protocol("incomplete response head"));
    };
    if response.status != 101 {
        return Ok((response.status, None));
    }
    let protocol = crate::client::handshake::verify(&response, key, offered)?;
    Ok((101, protocol))
}

/// A route found: its number, its decoded parameters (`None` when one is
/// not UTF-8 once decoded: the server answers 400) and its pattern.
pub type Found = (usize, Option<Vec<(String, String)>>, String);

/// The server's route table (`route::Routes`), each route numbered.
#[derive(Debug, Default)]
pub struct Routes(crate::http::route::Routes<usize>);

impl Routes {
    /// Adds a route as `Server::define_*` does.
    ///
    /// # Errors
    /// `Error::Route` for a malformed or duplicate path.
    pub fn add(&mut self, path: &str, id: usize) -> Result<(), Error> {
        self.0.add(path, id)
    }

    /// The route for a request path: its number, its parameters decoded as
    /// the server decodes them, and its pattern.
    pub fn find(&self, path: &str) -> Option<Found> {
        self.0.find(path).map(|(id, params, pattern)| {
            let params = crate::http::route::decode_params(params);
            (*id, params, pattern.to_owned())
        })
    }
}
