//! The query string of a request, decoded: `query_param` and `query_pairs`
//! on [`Request`]. Kept apart from `http.rs`, which only reads the head.

use crate::http::percent_decode;
use crate::Request;

impl Request {
    /// The decoded value of the first query parameter called `name`:
    /// `/logs?token=a%20b&level=warn` gives `query_param("token") ==
    /// Some("a b".into())`. The name is compared after decoding; a parameter
    /// without `=` has the empty value. `+` is a space and `%XX` escapes are
    /// decoded, as a browser's form or `URLSearchParams` encodes them
    /// (invalid escapes stay as they are).
    ///
    /// ```
    /// use wsportal::{Accept, Reject, Resource};
    /// let logs = Resource::new().on_handshake(|req| match req.query_param("token") {
    ///     Some(token) if token == "secret" => Ok(Accept::new()),
    ///     _ => Err(Reject::new(401)),
    /// });
    /// # let _ = logs;
    /// ```
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// Every query parameter as a decoded `(name, value)` pair, in order
    /// (repeated names repeat; empty pieces such as `a=1&&b=2`'s are
    /// skipped). Decoding as for [`Request::query_param`].
    pub fn query_pairs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.query()
            .unwrap_or("")
            .split('&')
            .filter(|piece| !piece.is_empty())
            .map(|piece| {
                let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
                (form_decode(k), form_decode(v))
            })
    }
}

/// Decodes one `application/x-www-form-urlencoded` component: `+` is a space.
fn form_decode(s: &str) -> String {
    if s.contains('+') {
        percent_decode(&s.replace('+', " "))
    } else {
        percent_decode(s)
    }
}

#[cfg(test)]
mod tests {
    fn req(target: &str) -> crate::Request {
        let head = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        // Well formed, because it is built just here.
        crate::http::parse_head(head.as_bytes(), "127.0.0.1:1".parse().unwrap()).unwrap()
    }

    #[test]
    fn decodes_names_and_values() {
        let r = req("/p?token=a%20b+c&level=&flag&%6Eame=x&token=second&&q=%zz");
        assert_eq!(r.query_param("token").as_deref(), Some("a b c"));
        assert_eq!(r.query_param("level").as_deref(), Some(""));
        assert_eq!(r.query_param("flag").as_deref(), Some(""));
        assert_eq!(r.query_param("name").as_deref(), Some("x"));
        assert_eq!(r.query_param("q").as_deref(), Some("%zz"));
        assert_eq!(r.query_param("nope"), None);
        let pairs: Vec<(String, String)> = r.query_pairs().collect();
        assert_eq!(pairs.len(), 6);
        assert_eq!(pairs[4], ("token".to_owned(), "second".to_owned()));
    }

    #[test]
    fn no_query_no_pairs() {
        assert_eq!(req("/p").query_pairs().count(), 0);
        assert_eq!(req("/p?").query_pairs().count(), 0);
    }
}
