//! The server's request path up to the upgrade: reading a head from a
//! stream (any chunking, any `max_header_size`), route matching, and the
//! upgrade checks; then a handler's body from the rest of the stream, and
//! what a trusted proxy's headers make of the request. Written against the
//! stable entry points (`fuzzing::read_request_head`, `fuzzing::upgrade`,
//! `fuzzing::read_request_body`, `fuzzing::forwarded`) so it survives
//! changes to the parser behind them.
//!
//! Checks: a refusal is 400 or 431 (or a silent drop when the stream ends
//! before a whole head), a routed request is answered 101, 400, 405 or 426,
//! 404 only when no route matches; 431 only when at least the limit's worth
//! of bytes arrived; the leftover is exactly the bytes after the head; a 101
//! passes the client's own `Sec-WebSocket-Accept` check for the request's key
//! and names an offered subprotocol; no header value holds a line break;
//! allocations stay proportional to the limit; a body read is within its
//! limit (and `Content-Length` long), else refused 400 or 413.

use libfuzzer_sys::arbitrary::Unstructured;
use wsportal::fuzzing::{self, HeadRefusal, Routes};

use crate::input::{self, Chunked};

const PROTOCOLS: [&str; 2] = ["chat", "superchat"];

fn routes() -> Routes {
    let mut r = Routes::default();
    for (i, p) in ["/", "/chat", "/chat/:room", "/a/:x/b/:y", "/files/:name"]
        .iter()
        .enumerate()
    {
        r.add(p, i)
            .expect("because these routes are valid and distinct");
    }
    r
}

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(max) = u.int_in_range(256..=16_384usize) else {
        return;
    };
    let Ok(sizes) = input::chunk_sizes(&mut u) else {
        return;
    };
    let stream = u.take_rest();
    let mut chunked = Chunked::new(stream, sizes);
    let (result, largest) =
        crate::largest_allocation(|| fuzzing::read_request_head(&mut chunked, max));
    assert!(
        // The header list is proportional to the head (48 bytes a header, doubled).
        largest <= 32 * max + 16 * 1024,
        "allocated {largest} bytes at once for a head limit of {max}"
    );
    let (req, leftover) = match result {
        Ok(r) => r,
        Err(HeadRefusal::Status(431, _)) => {
            assert!(
                stream.len() >= max,
                "431 for {} bytes under {max}",
                stream.len()
            );
            return;
        }
        Err(HeadRefusal::Status(400, _)) => return,
        Err(HeadRefusal::Status(s, why)) => panic!("undocumented refusal {s} {why}"),
        Err(HeadRefusal::Dropped) => {
            assert!(
                stream.len() <= max,
                "dropped a stream longer than the limit"
            );
            return;
        }
    };
    let consumed = chunked.consumed();
    assert!(leftover.len() <= consumed);
    assert_eq!(&stream[consumed - leftover.len()..consumed], &leftover[..]);
    assert!(
        consumed - leftover.len() <= max,
        "a head over the limit was accepted"
    );
    assert!(req.path().starts_with('/'), "path {:?}", req.path());
    for (name, value) in req.headers() {
        assert!(!name.is_empty() && !name.contains([':', '\r', '\n', ' ']));
        assert!(
            !value.contains(['\r', '\n']),
            "header value with a line break"
        );
    }

    // Behind a trusted proxy: any headers give an address, a scheme the
    // server knows, and an Origin answer, without a panic.
    let (_, scheme, _) = fuzzing::forwarded(&req, req.header("origin").unwrap_or("null"));
    assert!(scheme == "http" || scheme == "https", "scheme {scheme:?}");
    // A handler's body: the rest of the stream, as the server reads it.
    let max_body = max / 4;
    let mut rest = Chunked::new(&stream[consumed..], vec![7]);
    match fuzzing::read_request_body(&req, leftover.clone(), &mut rest, max_body) {
        Ok(body) => {
            assert!(body.len() <= max_body, "a body over the limit was read");
            if let Some(n) = req.header("content-length") {
                if let Ok(n) = n.parse::<usize>() {
                    assert_eq!(body.len(), n, "the body is Content-Length long");
                }
            }
        }
        Err(0 | 400 | 413) => {}
        Err(s) => panic!("undocumented body refusal {s}"),
    }

    let Some((_, _params, _pattern)) = routes().find(req.path()) else {
        return; // 404
    };
    match fuzzing::upgrade(&req, &PROTOCOLS) {
        Ok(response) => {
            let key = req
                .header("sec-websocket-key")
                .expect("because a 101 needs a key");
            let offered: Vec<String> = PROTOCOLS.iter().map(|p| (*p).to_owned()).collect();
            let (status, protocol) = fuzzing::check_response(&response, key, &offered)
                .expect("our own 101 must pass our client's checks");
            assert_eq!(status, 101);
            if let Some(p) = protocol {
                assert!(
                    req.headers()
                        .any(|(k, v)| k.eq_ignore_ascii_case("sec-websocket-protocol")
                            && v.split(',').any(|o| o.trim() == p)),
                    "chose {p:?}, which the request did not offer"
                );
            }
        }
        Err(400 | 405 | 426) => {}
        Err(s) => panic!("undocumented upgrade refusal {s}"),
    }
}
