//! One request, on the pool thread that serves its socket: the TLS
//! handshake (for `start_tls`) and the request head within the handshake
//! timeout, then the route's WebSocket upgrade (and the connection's whole
//! life), event stream, page, handler or metrics, or a refusal.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::core::{Core, SERVING};
use super::Endpoint;
use crate::http::{self, HeadError, Request};
use crate::session::connection::Parts;
use crate::transport::{Stream, Transport};
use crate::wire::reader::{FrameReader, Limits, Role};
use crate::{Connection, Reject};

/// Serves one socket from its first byte to its close.
pub(super) fn serve(core: &Core, tcp: TcpStream, peer: SocketAddr) {
    let id = core.next_id.fetch_add(1, Ordering::Relaxed);
    let Some(stream) = wrap(core, tcp, peer) else {
        return;
    };
    let stream = Arc::new(stream);
    core.sockets.lock().insert(id, Arc::clone(&stream));
    if !core.stopping.load(Ordering::SeqCst) {
        SERVING.with(|s| s.set(Some((core as *const Core as usize, id))));
        crate::session::stats::serving(Some(Arc::clone(&core.hub.stats)));
        handle(core, id, &stream, peer);
        crate::session::stats::serving(None);
        SERVING.with(|s| s.set(None));
    }
    core.sockets.lock().remove(&id);
    core.upgrading.lock().remove(&id);
    // Every departure: a shutdown begun by a hook waits for all but one.
    core.sockets_empty.notify_all();
}

/// The socket as this server speaks on it: plain, or a TLS session not yet
/// shaken hands.
fn wrap(core: &Core, tcp: TcpStream, peer: SocketAddr) -> Option<Stream> {
    #[cfg(feature = "tls")]
    if let Some(tls) = &core.tls {
        return match tls.session() {
            Ok(session) => Some(Stream::tls(tcp, session)),
            Err(e) => {
                log::debug!("{peer}: cannot start a TLS session: {e}");
                None
            }
        };
    }
    let _ = (core, peer);
    Some(Stream::plain(tcp))
}

/// Reads the request and serves its route. Kept small, as are the steps
/// it calls out of line: every frame on this chain stays under an idle
/// connection's read for its whole life (the stack pages it touches stay
/// resident), so a WebSocket connection runs from here, after the
/// handshake's frames are gone. (A page of stack is 4 KiB of an idle
/// connection's 11.4: ARCHITECTURE.md's invariant, `bench/probes/stackdepth.py`.)
fn handle(core: &Core, id: u64, stream: &Arc<Stream>, peer: SocketAddr) {
    let Some((mut req, leftover, deadline)) = read_request(core, stream, peer) else {
        return;
    };
    let Some((endpoint, params, route)) = core.routes.find(&req.path) else {
        return refuse_with(stream, &req, 404, "not found");
    };
    let Some(params) = crate::http::route::decode_params(params) else {
        let why = "a path parameter is not utf-8 once percent-decoded";
        return refuse_with(stream, &req, 400, why);
    };
    req.params = params;
    let Endpoint::Socket(resource) = &**endpoint else {
        return serve_http(core, id, stream, (req, leftover, deadline), endpoint);
    };
    let route = route.to_owned();
    if let Some((conn, reader)) = upgrade(core, id, stream, req, leftover, route, resource) {
        crate::session::run(&conn, reader, resource, core.config.debug_on_error);
    }
}

/// Every route but a WebSocket one: an event stream, a page, a handler,
/// the metrics.
#[inline(never)]
fn serve_http(
    core: &Core,
    id: u64,
    stream: &Arc<Stream>,
    (req, leftover, deadline): (Box<Request>, Vec<u8>, Instant),
    endpoint: &Endpoint,
) {
    let c = &core.config;
    let peer = req.peer_addr();
    match endpoint {
        // Served by `handle`, never passed here.
        Endpoint::Socket(_) => {}
        Endpoint::Events(events) => open_events(core, id, stream, req, events),
        Endpoint::Page(page) => {
            log::debug!("{peer}: {} {}", req.method(), req.path);
            answer(stream, &page.response(&req));
        }
        Endpoint::Handler(handler) => respond(core, stream, (req, leftover, deadline), handler),
        Endpoint::Metrics => {
            log::debug!("{peer}: {} {}", req.method(), req.path);
            let page = super::metrics::metrics_response(&req, &core.hub, c.debug_on_error);
            answer(stream, &page);
        }
    }
}

/// The socket's settings, the TLS handshake, and the request head, within
/// the handshake timeout; `None` when it was refused or the client left.
/// The request, what came after its head, and the deadline (a handler's
/// body must arrive by it too).
#[inline(never)]
fn read_request(
    core: &Core,
    stream: &Arc<Stream>,
    peer: SocketAddr,
) -> Option<(Box<Request>, Vec<u8>, Instant)> {
    let c = &core.config;
    let _ = stream.set_nodelay(c.nodelay);
    crate::transport::socket::bound_unsent(stream);
    let _ = stream.set_write_timeout(Some(c.handshake_timeout));
    let deadline = crate::deadline::after(c.handshake_timeout);
    #[cfg(feature = "tls")]
    if let Err(e) = stream.handshake(deadline) {
        log::debug!("{peer}: TLS handshake failed: {e}; dropped");
        return None;
    }
    let head = http::read_head(
        &mut Transport::waiting(stream),
        &mut |d: Duration| stream.set_read_timeout(Some(d)),
        peer,
        c.max_header_size,
        deadline,
    );
    let (req, leftover) = match head {
        Ok(r) => r,
        Err(HeadError::TooLarge) => {
            let reject = Reject::new(431).body("request head too large");
            refuse(stream, peer, None, &reject);
            return None;
        }
        Err(HeadError::Malformed(why)) => {
            refuse(stream, peer, None, &Reject::new(400).body(why));
            return None;
        }
        Err(HeadError::Timeout) => {
            log::debug!("{peer}: no complete request within the handshake timeout; dropped");
            return None;
        }
        Err(HeadError::Io(e)) => {
            log::debug!("{peer}: connection ended before a complete request: {e}");
            return None;
        }
    };
    let mut req = Box::new(req);
    req.extra.tls = core.tls.is_some();
    crate::http::forwarded::apply(&mut req, &c.trusted_proxies);
    if let Some(proxy) = req.proxy_addr() {
        log::debug!("{proxy}: forwarded for {}", req.peer_addr());
    }
    Some((req, leftover, deadline))
}

/// The WebSocket handshake: the 101 (or a refusal), then the connection
/// and its frame reader, ready to run.
#[inline(never)]
fn upgrade(
    core: &Core,
    id: u64,
    stream: &Arc<Stream>,
    req: Box<Request>,
    leftover: Vec<u8>,
    route: String,
    resource: &crate::Resource,
) -> Option<(Connection, FrameReader)> {
    let c = &core.config;
    let peer = req.peer_addr();
    #[allow(unused_mut)] // because only the deflate feature changes it.
    let mut up = match crate::server::handshake::upgrade(&req, resource) {
        Ok(up) => up,
        Err(reject) => {
            refuse(stream, peer, Some(&req), &reject);
            return None;
        }
    };
    #[cfg(feature = "deflate")]
    crate::server::handshake::negotiate(&req, resource, c.deflate.as_ref(), &mut up);
    // SeqCst, after the set's lock: either a shutdown sees this
    // socket upgrading (and leaves it its 1001), or this load sees
    // the shutdown and no 101 goes out.
    core.upgrading.lock().insert(id);
    if core.stopping.load(Ordering::SeqCst) {
        let reject = Reject::new(503).body("server shutting down");
        refuse(stream, peer, Some(&req), &reject);
        return None;
    }
    core.hub.stats.websocket_accepted();
    let mut t = Transport::waiting(stream);
    if let Err(e) = t.write_all(&up.response).and_then(|()| t.flush()) {
        log::debug!("{peer}: could not send the upgrade response: {e}");
        return None;
    }
    let _ = stream.set_read_timeout(None);
    let _ = stream.set_write_timeout(Some(c.write_timeout));
    let parts = Parts {
        stream: Arc::clone(stream),
        request: req,
        route,
        protocol: up.protocol,
        data: up.data,
        role: Role::Server,
        #[cfg(feature = "deflate")]
        deflate: up.deflate.map(|a| (a, c.deflate.unwrap_or_default())),
    };
    let conn = Connection::new(id, parts, Arc::clone(&core.hub));
    conn.inner.states.seed(up.states);
    let limits = Limits {
        max_frame: c.max_frame_size,
        max_message: c.max_message_size,
    };
    let reader = FrameReader::new(Role::Server, limits, c.read_buffer_size, &leftover);
    #[cfg(feature = "deflate")]
    let reader = reader.with_inflater(
        up.deflate
            .map(|a| crate::wire::deflate::Inflater::new(a.client())),
    );
    Some((conn, reader))
}

/// An event stream: its `on_connect` hook, then (accepted) the stream's
/// whole life on this thread.
#[inline(never)]
fn open_events(
    core: &Core,
    id: u64,
    stream: &Arc<Stream>,
    req: Box<Request>,
    events: &crate::sse::EventStream,
) {
    let c = &core.config;
    let peer = req.peer_addr();
    match crate::sse::admit(events, &req, c.debug_on_error) {
        Ok(accept) => {
            // Counted as accepted by `sse::run` once its head is queued.
            let path = req.path.clone();
            let opened = crate::sse::Opened {
                id,
                stream: Arc::clone(stream),
                request: *req,
                accept,
                hub: Arc::clone(&core.hub),
                debug_on_error: c.debug_on_error,
            };
            if let Err(reject) = crate::sse::run(events, &core.sse, opened) {
                log::debug!("{peer}: answered {} for {path}", reject.status());
                crate::session::stats::refused_here(reject.status());
                answer(stream, &reject.to_bytes());
            }
        }
        Err(reject) => refuse(stream, peer, Some(&req), &reject),
    }
}

/// A handler's route: its body read, then its answer.
#[inline(never)]
fn respond(
    core: &Core,
    stream: &Stream,
    (mut req, leftover, deadline): (Box<Request>, Vec<u8>, Instant),
    handler: &crate::server::handler::Handler,
) {
    let c = &core.config;
    let peer = req.peer_addr();
    log::debug!("{peer}: {} {}", req.method(), req.path);
    if !handler.allows(req.method()) {
        return answer(stream, &handler.not_allowed());
    }
    let mut input = Transport::waiting(stream);
    let mut set_timeout = |d: Duration| stream.set_read_timeout(Some(d));
    let body = read_body(&req, &mut input, &mut set_timeout, leftover, c, deadline);
    match body {
        Ok(body) => req.extra.body = body,
        Err(Some(reject)) => return refuse(stream, peer, Some(&req), &reject),
        Err(None) => return,
    }
    answer(stream, &handler.respond(&req, c.debug_on_error));
}

/// Reads a handler's request body (see `Server::define_handler_for`).
/// `Err(Some)` is the refusal to send, `Err(None)` a client that left.
fn read_body(
    req: &Request,
    stream: &mut Transport<'_>,
    set_timeout: &mut dyn FnMut(Duration) -> std::io::Result<()>,
    leftover: Vec<u8>,
    c: &crate::Config,
    deadline: std::time::Instant,
) -> Result<Vec<u8>, Option<Reject>> {
    use crate::http::body::{self, BodyError, Framing};
    let peer = req.peer_addr();
    let framing = body::framing(req).map_err(|why| Some(Reject::new(400).body(why)))?;
    let too_large = || Some(Reject::new(413).body("request body too large"));
    match framing {
        Framing::None => return Ok(Vec::new()),
        Framing::Length(n) if n > c.max_body_size as u64 => return Err(too_large()),
        _ => {}
    }
    // curl and others wait (a second) for this before a larger body (never
    // to HTTP/1.0, which has no 1xx, RFC 9110 section 15.2).
    let expects = req.header_has_token("expect", "100-continue") && !req.extra.http10;
    if expects && leftover.is_empty() {
        let _ = stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .and_then(|()| stream.flush());
    }
    let mut input = body::Input::new(stream, set_timeout, deadline, leftover);
    match body::read(&mut input, framing, c.max_body_size) {
        Ok(body) => Ok(body),
        Err(BodyError::TooLarge) => Err(too_large()),
        Err(BodyError::Malformed(why)) => Err(Some(Reject::new(400).body(why))),
        Err(BodyError::Timeout) => {
            log::debug!("{peer}: no whole body within the handshake timeout");
            Err(Some(Reject::new(408).body("request body timed out")))
        }
        Err(BodyError::Io(e)) => {
            log::debug!("{peer}: connection ended before the whole body: {e}");
            Err(None)
        }
    }
}

/// [`refuse`]s with `status` and a text body, made out of line (a
/// `Reject` in `handle`'s frame would sit under every connection).
#[inline(never)]
fn refuse_with(stream: &Stream, req: &Request, status: u16, why: &str) {
    refuse(
        stream,
        req.peer_addr(),
        Some(req),
        &Reject::new(status).body(why),
    );
}

/// Answers a refusal (without its body to `HEAD`) and closes; `req` is
/// `None` when the request could not be read.
fn refuse(stream: &Stream, peer: SocketAddr, req: Option<&Request>, reject: &Reject) {
    let path = req.map_or("-", |r| r.path());
    log::debug!("{peer}: answered {} for {path}", reject.status());
    crate::session::stats::refused_here(reject.status());
    let head_only = req.is_some_and(|r| r.method() == "HEAD");
    answer(stream, &reject.response(head_only));
}

/// Writes a whole response, then closes the connection gently.
fn answer(stream: &Stream, response: &[u8]) {
    let mut s = Transport::waiting(stream);
    let _ = s.write_all(response);
    let _ = s.flush();
    stream.close_notify();
    let _ = stream.shutdown(Shutdown::Write);
    // Read what the client still sends (for at most 200 ms), so closing
    // does not reset the connection before it has read the answer.
    stream.linger(crate::deadline::after(ANSWER_LINGER));
}

/// How long an answered request's connection reads what the client still
/// sends before it closes.
const ANSWER_LINGER: Duration = Duration::from_millis(200);
