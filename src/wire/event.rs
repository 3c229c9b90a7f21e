//! One Server-Sent Event and its wire format (the WHATWG `text/event-stream`
//! format): `event:`, `id:`, `retry:` and `data:` fields, comment lines, and a
//! blank line that ends the event.

use std::fmt::Write as _;
use std::time::Duration;

use crate::Error;

/// What the keep-alive comment looks like on the wire.
pub(crate) const KEEPALIVE: &[u8] = b": keep-alive\n\n";

/// One event, built with chained setters and encoded when it is sent.
///
/// ```
/// use std::time::Duration;
/// use wsportal::Event;
/// let event = Event::new("line one\nline two")
///     .name("tick")
///     .id("42")
///     .retry(Duration::from_secs(3));
/// assert_eq!(
///     event.encode()?,
///     b"retry: 3000\nid: 42\nevent: tick\ndata: line one\ndata: line two\n\n"
/// );
/// # Ok::<(), wsportal::Error>(())
/// ```
///
/// Multi-line data is sent as one `data:` line per line (`\n`, `\r\n` and
/// `\r` all end a line), so the browser sees the same text. A newline in the
/// name or the id cannot be sent: encoding such an event fails with
/// [`Error::InvalidInput`] and nothing is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    pub(crate) data: String,
    pub(crate) name: Option<String>,
    pub(crate) id: Option<String>,
    pub(crate) retry: Option<Duration>,
    pub(crate) comment: Option<String>,
}

impl Event {
    /// An event carrying `data` (the browser's `MessageEvent.data`), of the
    /// default type `message`.
    pub fn new(data: impl Into<String>) -> Event {
        Event {
            data: data.into(),
            ..Event::default()
        }
    }

    /// The event type (`event:` field): an `EventSource` delivers it to
    /// `addEventListener(name, ...)` instead of `onmessage`.
    pub fn name(mut self, name: impl Into<String>) -> Event {
        self.name = Some(name.into());
        self
    }

    /// The event id (`id:` field). The browser sends the last one it saw as
    /// `Last-Event-ID` when it reconnects, which lets a stream with a history
    /// ([`EventStream::history`](crate::EventStream::history)) replay what
    /// was missed. An id that could not come back intact in that header
    /// (leading or trailing whitespace, a control character) is refused when
    /// the event is sent.
    pub fn id(mut self, id: impl Into<String>) -> Event {
        self.id = Some(id.into());
        self
    }

    /// How long the browser should wait before reconnecting (`retry:` field,
    /// in whole milliseconds).
    pub fn retry(mut self, after: Duration) -> Event {
        self.retry = Some(after);
        self
    }

    /// A comment sent before the fields (ignored by browsers, handy when
    /// reading a stream by hand). Newlines start new comment lines.
    pub fn comment(mut self, text: impl Into<String>) -> Event {
        self.comment = Some(text.into());
        self
    }

    /// The event's wire format, ending with the blank line.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the name or id contains `\r` or `\n`, or
    /// the id contains NUL (browsers would ignore it), another control
    /// character but tab, or starts or ends with a space or tab (the browser
    /// sends it back in the `Last-Event-ID` header, whose value HTTP trims,
    /// so it could never be resumed).
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let newline = |s: &str| s.contains(['\r', '\n']);
        if self.name.as_deref().is_some_and(newline) {
            return Err(Error::InvalidInput("sse event name contains a newline"));
        }
        if self.id.as_deref().is_some_and(newline) {
            return Err(Error::InvalidInput("sse event id contains a newline"));
        }
        if self.id.as_deref().is_some_and(|id| id.contains('\0')) {
            return Err(Error::InvalidInput("sse event id contains NUL"));
        }
        // The browser sends the id back as a header value, which HTTP
        // trims and in which control characters are refused: such an id
        // could never be found again.
        if self.id.as_deref().is_some_and(|id| {
            id.starts_with([' ', '\t'])
                || id.ends_with([' ', '\t'])
                || id.chars().any(|c| c.is_ascii_control() && c != '\t')
        }) {
            return Err(Error::InvalidInput(
                "sse event id has leading or trailing whitespace or a control character",
            ));
        }
        let mut out = String::with_capacity(self.data.len() + 32);
        if let Some(comment) = &self.comment {
            push_comment(&mut out, comment);
        }
        // Writing to a String cannot fail.
        if let Some(retry) = self.retry {
            let _ = writeln!(out, "retry: {}", retry.as_millis());
        }
        if let Some(id) = &self.id {
            let _ = writeln!(out, "id: {id}");
        }
        if let Some(name) = &self.name {
            let _ = writeln!(out, "event: {name}");
        }
        for line in lines(&self.data) {
            out.push_str("data: ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
        Ok(out.into_bytes())
    }
}

/// What an event holds, for a stream's [`filter`](crate::EventStream::filter).
impl Event {
    /// The data, as given.
    pub fn data(&self) -> &str {
        &self.data
    }

    /// The event type set with [`Event::name`], if any.
    pub fn event_name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The id set with [`Event::id`], if any.
    pub fn event_id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

impl From<&str> for Event {
    fn from(data: &str) -> Event {
        Event::new(data)
    }
}

impl From<String> for Event {
    fn from(data: String) -> Event {
        Event::new(data)
    }
}

/// A comment on its own (no event): one `:` line per line of `text`, then a
/// blank line, as for the keep-alive (harmless: no event is pending).
pub(crate) fn comment_bytes(text: &str) -> Vec<u8> {
    let mut out = String::with_capacity(text.len() + 4);
    push_comment(&mut out, text);
    out.push('\n');
    out.into_bytes()
}

fn push_comment(out: &mut String, text: &str) {
    for line in lines(text) {
        out.push_str(": ");
        out.push_str(line);
        out.push('\n');
    }
}

/// Splits on `\r\n`, `\r` and `\n`, as an `EventSource` does. An empty text
/// is one empty line; a trailing newline gives a trailing empty line.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let s = rest?;
        match s.find(['\r', '\n']) {
            Some(i) => {
                let skip = if s[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&s[i + skip..]);
                Some(&s[..i])
            }
            None => {
                rest = None;
                Some(s)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(e: &Event) -> String {
        String::from_utf8(e.encode().unwrap()).unwrap()
    }

    #[test]
    fn plain_data() {
        assert_eq!(wire(&Event::new("hi")), "data: hi\n\n");
        assert_eq!(wire(&Event::new("")), "data: \n\n");
        // A leading space survives: the browser strips only the one after the colon.
        assert_eq!(wire(&Event::new(" x")), "data:  x\n\n");
    }

    #[test]
    fn every_newline_kind_splits_data() {
        assert_eq!(
            wire(&Event::new("a\nb\r\nc\rd")),
            "data: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        assert_eq!(wire(&Event::new("a\n")), "data: a\ndata: \n\n");
        assert_eq!(wire(&Event::new("\r\n\r\n")), "data: \ndata: \ndata: \n\n");
    }

    #[test]
    fn all_fields_in_order() {
        let e = Event::new("x")
            .name("tick")
            .id("7")
            .retry(Duration::from_millis(1500))
            .comment("hello\nthere");
        assert_eq!(
            wire(&e),
            ": hello\n: there\nretry: 1500\nid: 7\nevent: tick\ndata: x\n\n"
        );
    }

    #[test]
    fn newlines_in_name_or_id_are_refused() {
        for bad in [
            Event::new("x").name("a\nb"),
            Event::new("x").name("a\rb"),
            Event::new("x").id("1\n"),
            Event::new("x").id("\r1"),
            Event::new("x").id("1\u{0}2"),
        ] {
            assert!(
                matches!(bad.encode(), Err(Error::InvalidInput(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ids_that_could_not_be_resumed_are_refused() {
        assert!(Event::new("x").id("a b\tc").encode().is_ok());
        for bad in [
            Event::new("x").id(" 1"),
            Event::new("x").id("1 "),
            Event::new("x").id("\t1"),
            Event::new("x").id("1\u{1}"),
            Event::new("x").id("1\u{7f}"),
        ] {
            assert!(
                matches!(bad.encode(), Err(Error::InvalidInput(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn comments_alone() {
        assert_eq!(comment_bytes("a\r\nb"), b": a\n: b\n\n");
        assert!(KEEPALIVE.starts_with(b":"));
    }
}
