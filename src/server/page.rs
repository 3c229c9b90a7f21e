//! Plain pages: fixed content answered to `GET` (and `HEAD`) on a path, so
//! that a demo or a small dashboard needs no second server. Not a web
//! framework: one body, one content type, no templating, no caching logic.

use crate::{Reject, Request};

/// A page registered with [`Server::define_page`](crate::Server::define_page).
#[derive(Debug)]
pub(crate) struct Page {
    content_type: String,
    body: Vec<u8>,
}

impl Page {
    pub(crate) fn new(content_type: &str, body: Vec<u8>) -> Page {
        Page {
            content_type: content_type.to_owned(),
            body,
        }
    }

    /// Whether the content type can be sent as a header value.
    pub(crate) fn valid_content_type(content_type: &str) -> bool {
        !content_type.is_empty() && !content_type.contains(['\r', '\n'])
    }

    /// The whole answer to `req`: the page for `GET`, its head for `HEAD`,
    /// `405` with `Allow` for any other method.
    pub(crate) fn response(&self, req: &Request) -> Vec<u8> {
        let head_only = match crate::server::page::head_only(req) {
            Ok(head_only) => head_only,
            Err(refusal) => return refusal,
        };
        let headers = [
            ("Content-Type".to_owned(), self.content_type.clone()),
            ("Content-Length".to_owned(), self.body.len().to_string()),
            ("Connection".to_owned(), "close".to_owned()),
        ];
        let body: &[u8] = if head_only { &[] } else { &self.body };
        crate::http::response_bytes(200, &headers, body)
    }
}

/// For an endpoint that answers `GET` and `HEAD` only (pages, handlers,
/// metrics): whether to leave the body out, or the `405` (with `Allow`) to
/// send instead.
pub(crate) fn head_only(req: &Request) -> Result<bool, Vec<u8>> {
    match req.method() {
        "GET" => Ok(false),
        "HEAD" => Ok(true),
        _ => Err({
            crate::session::stats::refused_here(405);
            Reject::new(405)
                .header("Allow", "GET, HEAD")
                .body("method not allowed")
                .to_bytes()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str) -> Request {
        let head = format!("{method} / HTTP/1.1\r\nHost: x\r\n\r\n");
        // The head above is well formed, because it is built just here.
        crate::http::parse_head(head.as_bytes(), "127.0.0.1:1".parse().unwrap()).unwrap()
    }

    #[test]
    fn get_head_and_other_methods() {
        let page = Page::new("text/plain", b"hello".to_vec());
        let get = String::from_utf8(page.response(&request("GET"))).unwrap();
        assert!(get.starts_with("HTTP/1.1 200 OK\r\n"), "{get}");
        assert!(get.contains("Content-Type: text/plain\r\n"), "{get}");
        assert!(get.contains("Content-Length: 5\r\n"), "{get}");
        assert!(get.ends_with("\r\n\r\nhello"), "{get}");
        let head = String::from_utf8(page.response(&request("HEAD"))).unwrap();
        assert!(head.contains("Content-Length: 5\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "{head}");
        let post = String::from_utf8(page.response(&request("POST"))).unwrap();
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        assert!(post.contains("Allow: GET, HEAD\r\n"), "{post}");
        assert!(!Page::valid_content_type("text/html\r\nX: y"));
    }
}
