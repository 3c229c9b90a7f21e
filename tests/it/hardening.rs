//! Regression tests for what the fuzz targets in fuzz/ found.

use wsportal::{Response, Server};

use crate::support::http;

/// Found by the `request_head` target: a bare LF inside a header line was
/// kept in the header's value (`X-A` was `"one\nX-B: two"`). Whatever the
/// parser does with a bare LF (refuse the head, or end the line there), no
/// header value or path the application sees may hold a line break.
#[test]
fn no_line_break_reaches_a_header_or_the_path() {
    let mut server = Server::new();
    server.define_handler("/h", |req| {
        let dirty = req.path().contains(['\r', '\n'])
            || req
                .headers()
                .any(|(k, v)| k.contains(['\r', '\n']) || v.contains(['\r', '\n']));
        Response::text(if dirty { "dirty" } else { "clean" })
    });
    let handle = server.start("127.0.0.1:0").unwrap();
    let a = handle.local_addr();
    for request in [
        "GET /h HTTP/1.1\r\nHost: x\r\nX-A: one\nX-B: two\r\n\r\n",
        "GET /h HTTP/1.1\r\nHost: x\r\nX-A: one\rX-B: two\r\n\r\n",
        "GET /h HTTP/1.1\r\nHost: x\r\nX-A: one\t\nX-B: y\r\n\r\n",
    ] {
        let (status, text) = http(a, request);
        assert!(
            status == 400 || (status == 200 && text.ends_with("clean")),
            "{request:?} got {status}: {text:?}"
        );
    }
    handle.close();
}
