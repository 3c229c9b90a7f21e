//! Dynamic HTTP endpoints: a function from the [`Request`] to a
//! [`Response`], answered to `GET` and `HEAD` (a `/stats` or `/metrics`
//! page) or to the methods it was defined for (a webhook's `POST`, with
//! the body read by `server/request.rs`). Still not a web framework: no
//! body parsing, no middleware, one request per connection.

use std::fmt;

use crate::session::guard;
use crate::Request;

type HandlerFn = dyn Fn(&Request) -> Response + Send + Sync;

/// What a handler ([`Server::define_handler`](crate::Server::define_handler))
/// answers: a status, headers and a body. `Content-Length` and
/// `Connection: close` are added when it is sent (a handler's own
/// `Content-Length`, `Connection` or `Transfer-Encoding` is dropped), and a
/// `HEAD` request gets the same head without the body.
///
/// ```
/// use wsportal::Response;
/// let ok = Response::json(r#"{"clients":3}"#).header("Cache-Control", "no-store");
/// let missing = Response::new(404).text_body("no such log");
/// # let _ = (ok, missing);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Default for Response {
    fn default() -> Response {
        Response::new(200)
    }
}

impl Response {
    /// An empty response with this status.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `200 OK` with a `text/plain; charset=utf-8` body.
    pub fn text(body: impl Into<String>) -> Response {
        Response::new(200).with_body("text/plain; charset=utf-8", body.into().into_bytes())
    }

    /// `200 OK` with an `application/json` body (written by you: wsportal
    /// has no JSON encoder).
    pub fn json(body: impl Into<String>) -> Response {
        Response::new(200).with_body("application/json", body.into().into_bytes())
    }

    /// `200 OK` with a `text/html; charset=utf-8` body.
    pub fn html(body: impl Into<String>) -> Response {
        Response::new(200).with_body("text/html; charset=utf-8", body.into().into_bytes())
    }

    /// Sets the status.
    pub fn status(mut self, status: u16) -> Response {
        self.status = status;
        self
    }

    /// Adds a header. A name that is not an HTTP token, or a value with a
    /// control character such as a newline, makes the answer a `500`
    /// (logged at error level, as for a hook's answer) rather than a broken response.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body as text, with `Content-Type: text/plain; charset=utf-8`
    /// unless a `Content-Type` header is given.
    pub fn text_body(self, body: impl Into<String>) -> Response {
        self.with_body("text/plain; charset=utf-8", body.into().into_bytes())
    }

    /// Sets the body as bytes (give the `Content-Type` with
    /// [`Response::header`]).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    /// Sets the body and, unless one is given, the content type.
    fn with_body(mut self, content_type: &str, body: Vec<u8>) -> Response {
        if !self.has("content-type") {
            self.headers
                .push(("Content-Type".to_owned(), content_type.to_owned()));
        }
        self.body = body;
        self
    }

    fn has(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    }

    /// What is wrong with this response, if it cannot be sent as it is.
    fn invalid(&self) -> Option<String> {
        if !(200..=599).contains(&self.status) {
            return Some(format!("status {} is not 200-599", self.status));
        }
        crate::session::resource::invalid_header(&self.headers)
    }

    /// The whole answer; with `head_only`, without the body.
    pub(crate) fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let mut headers = crate::session::resource::without_framing(&self.headers);
        let bodiless = self.status == 204 || self.status == 304;
        if !bodiless {
            headers.push(("Content-Length".to_owned(), self.body.len().to_string()));
        }
        headers.push(("Connection".to_owned(), "close".to_owned()));
        let body: &[u8] = if head_only || bodiless {
            &[]
        } else {
            &self.body
        };
        crate::http::response_bytes(self.status, &headers, body)
    }
}

impl From<&str> for Response {
    fn from(text: &str) -> Response {
        Response::text(text)
    }
}

impl From<String> for Response {
    fn from(text: String) -> Response {
        Response::text(text)
    }
}

/// A handler registered with [`Server::define_handler`](crate::Server::define_handler)
/// or [`Server::define_handler_for`](crate::Server::define_handler_for).
pub(crate) struct Handler {
    f: Box<HandlerFn>,
    /// The methods it answers (`HEAD` too when `GET` is one).
    methods: Vec<String>,
}

impl fmt::Debug for Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handler")
            .field("methods", &self.methods)
            .finish_non_exhaustive()
    }
}

impl Handler {
    /// A handler for `GET` (and `HEAD`).
    pub(crate) fn new(f: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Handler {
        Handler::for_methods(vec!["GET".to_owned()], f)
    }

    /// A handler for these methods (and `HEAD` when `GET` is one).
    pub(crate) fn for_methods(
        methods: Vec<String>,
        f: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> Handler {
        Handler {
            f: Box::new(f),
            methods,
        }
    }

    /// Whether it answers `method` (case-sensitive, as methods are).
    pub(crate) fn allows(&self, method: &str) -> bool {
        let listed = |m: &str| self.methods.iter().any(|x| x == m);
        listed(method) || (method == "HEAD" && listed("GET"))
    }

    /// The `405` for a method it does not answer, with `Allow` (counted
    /// as a refusal).
    pub(crate) fn not_allowed(&self) -> Vec<u8> {
        let mut allow: Vec<&str> = Vec::new();
        for m in self.methods.iter().map(String::as_str) {
            let implied = (m == "GET").then_some("HEAD");
            for m in std::iter::once(m).chain(implied) {
                if !allow.contains(&m) {
                    allow.push(m);
                }
            }
        }
        crate::session::stats::refused_here(405);
        crate::Reject::new(405)
            .header("Allow", allow.join(", "))
            .body("method not allowed")
            .to_bytes()
    }

    /// The whole answer to `req`: the handler's response for its methods,
    /// without the body for `HEAD`, `405` for other methods, `500` when the
    /// handler panics (logged at error level under `debug_on_error`, else
    /// at debug level) or answers something that cannot be sent.
    pub(crate) fn respond(&self, req: &Request, debug_on_error: bool) -> Vec<u8> {
        if !self.allows(req.method()) {
            return self.not_allowed();
        }
        let head_only = req.method() == "HEAD";
        let failed = || {
            Response::new(500)
                .text_body("internal error")
                .to_bytes(head_only)
        };
        match guard::run(debug_on_error, || (self.f)(req)) {
            Ok(response) => match response.invalid() {
                None => response.to_bytes(head_only),
                Some(why) => {
                    log::error!("handler for {}: {why}; answered 500", req.path());
                    failed()
                }
            },
            Err(p) => {
                if debug_on_error {
                    log::error!(
                        "{}: handler for {} panicked at {}: {}",
                        req.peer_addr(),
                        req.path(),
                        p.location,
                        p.message
                    );
                } else {
                    log::debug!(
                        "{}: handler for {} panicked at {}: {}",
                        req.peer_addr(),
                        req.path(),
                        p.location,
                        p.message
                    );
                }
                failed()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str) -> Request {
        let head = format!("{method} /stats?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
        // Well formed, because it is built just here.
        crate::http::parse_head(head.as_bytes(), "127.0.0.1:1".parse().unwrap()).unwrap()
    }

    fn answer(h: &Handler, method: &str) -> String {
        String::from_utf8(h.respond(&request(method), false)).unwrap()
    }

    #[test]
    fn get_head_and_other_methods() {
        let h = Handler::new(|req| {
            Response::json(format!(
                "{{\"x\":{:?}}}",
                req.query_param("x").unwrap_or_default()
            ))
            .status(201)
            .header("X-Id", "7")
            .header("content-length", "999")
        });
        let get = answer(&h, "GET");
        assert!(get.starts_with("HTTP/1.1 201 "), "{get}");
        assert!(get.contains("Content-Type: application/json\r\n"), "{get}");
        assert!(get.contains("X-Id: 7\r\n"), "{get}");
        assert!(get.contains("Content-Length: 9\r\n"), "{get}");
        assert!(!get.contains("999"), "{get}");
        assert!(get.ends_with("\r\n\r\n{\"x\":\"1\"}"), "{get}");
        let head = answer(&h, "HEAD");
        assert!(head.contains("Content-Length: 9\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "{head}");
        let post = answer(&h, "POST");
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        assert!(post.contains("Allow: GET, HEAD\r\n"), "{post}");
    }

    #[test]
    fn panics_and_bad_headers_are_500() {
        let panics = Handler::new(|_| panic!("boom"));
        assert!(answer(&panics, "GET").starts_with("HTTP/1.1 500 "));
        let bad = Handler::new(|_| Response::text("x").header("X-A", "1\r\nSet-Cookie: y"));
        let got = answer(&bad, "GET");
        assert!(got.starts_with("HTTP/1.1 500 "), "{got}");
        assert!(!got.contains("Set-Cookie"), "{got}");
        let bad_status = Handler::new(|_| Response::new(101));
        assert!(answer(&bad_status, "GET").starts_with("HTTP/1.1 500 "));
    }
}
