//! Plain pages: GET, HEAD, other methods, next to WebSockets and event streams.

use wsportal::{Error, EventStream, Resource, Server};

use crate::support::*;

const HTML: &str = "<!doctype html><title>hi</title><p>hello</p>";

fn server() -> wsportal::ServerHandle {
    init_logs();
    let mut server = Server::new();
    server
        .define_page("/", "text/html; charset=utf-8", HTML)
        .define_page("/data.json", "application/json", b"{\"a\":1}".to_vec())
        .define_resource("/echo", Resource::new())
        .define_event_stream("/events", EventStream::new());
    server.start("127.0.0.1:0").expect("server starts")
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next()?;
    head.split("\r\n").skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn get_answers_the_page() {
    let h = server();
    let (status, text) = http(
        h.local_addr(),
        "GET /?selftest=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert_eq!(
        header(&text, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        header(&text, "content-length"),
        Some(HTML.len().to_string().as_str())
    );
    assert!(text.ends_with(&format!("\r\n\r\n{HTML}")), "{text}");
    let (status, text) = http(h.local_addr(), "GET /data.json HTTP/1.0\r\n\r\n");
    assert_eq!(status, 200);
    assert_eq!(header(&text, "content-type"), Some("application/json"));
    assert!(text.ends_with("{\"a\":1}"), "{text}");
}

#[test]
fn head_answers_the_headers_only() {
    let h = server();
    let (status, text) = http(h.local_addr(), "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200);
    assert_eq!(
        header(&text, "content-length"),
        Some(HTML.len().to_string().as_str())
    );
    assert!(text.ends_with("\r\n\r\n"), "no body: {text}");
}

#[test]
fn other_methods_get_405_with_allow() {
    let h = server();
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let req = format!("{method} / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        let (status, text) = http(h.local_addr(), &req);
        assert_eq!(status, 405, "{method}");
        assert_eq!(header(&text, "allow"), Some("GET, HEAD"), "{method}");
    }
    let (status, _) = http(
        h.local_addr(),
        "GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(status, 404);
}

#[test]
fn a_content_type_with_a_newline_is_refused_at_start() {
    let mut server = Server::new();
    server.define_page("/", "text/html\r\nX-Evil: 1", "x");
    assert!(matches!(server.start("127.0.0.1:0"), Err(Error::Route(_))));
}
