//! The `text/event-stream` parser (WHATWG HTML, section 9.2.6, "Event
//! stream interpretation"), fed bytes as they arrive; no sockets.

use std::collections::VecDeque;
use std::time::Duration;

use super::MessageEvent;
use crate::Error;

/// The `text/event-stream` parser (WHATWG HTML, "Event stream
/// interpretation"): lines end with CRLF, LF or CR; a blank line
/// dispatches; `:` starts a comment; `event`, `data`, `id` and `retry` are
/// the fields, anything else is ignored.
#[derive(Debug, Clone)]
pub(crate) struct Parser {
    line: Vec<u8>,
    /// The last byte was a CR: an LF right after it ends nothing more.
    after_cr: bool,
    /// No byte seen yet: a leading BOM is skipped.
    start: bool,
    event: String,
    data: String,
    has_data: bool,
    /// The last `id:` field of the event being received.
    id: String,
    /// The last event id, taken from `id` at each blank line (an event's
    /// end, even without data): what a reconnect sends.
    pub(crate) last_event_id: String,
    /// A `retry:` seen and not yet taken.
    pub(crate) retry: Option<Duration>,
    max: usize,
}

impl Parser {
    pub(crate) fn new(max: usize) -> Parser {
        Parser {
            line: Vec::new(),
            after_cr: false,
            start: true,
            event: String::new(),
            data: String::new(),
            has_data: false,
            id: String::new(),
            last_event_id: String::new(),
            retry: None,
            max,
        }
    }

    /// Starts from `id` as the last event id (`Last-Event-ID` of the first
    /// request).
    pub(crate) fn resume_from(&mut self, id: &str) {
        self.id = id.to_owned();
        self.last_event_id = id.to_owned();
    }

    /// A new connection: what was half received is dropped (an `id:` of an
    /// unfinished event too); the last event id and the reconnection time
    /// stay.
    pub(crate) fn reset(&mut self) {
        self.id = self.last_event_id.clone();
        self.line.clear();
        (self.after_cr, self.start) = (false, true);
        self.event.clear();
        self.data.clear();
        self.has_data = false;
    }

    /// Parses `bytes`, pushing each complete event to `out`.
    ///
    /// # Errors
    /// [`Error::TooBig`] when a line or an event's data passes the limit.
    pub(crate) fn feed(
        &mut self,
        mut bytes: &[u8],
        out: &mut VecDeque<MessageEvent>,
    ) -> Result<(), Error> {
        if self.start && !bytes.is_empty() {
            if self.line.is_empty() && bytes.starts_with(b"\xEF\xBB\xBF") {
                bytes = &bytes[3..];
            }
            // A BOM split across reads is rare enough to be read as data.
            self.start = false;
        }
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    self.line_done(out)?;
                }
                _ => {
                    self.after_cr = false;
                    if self.line.len() >= self.max {
                        return Err(Error::TooBig {
                            size: self.line.len() as u64 + 1,
                            limit: self.max,
                        });
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(())
    }

    fn line_done(&mut self, out: &mut VecDeque<MessageEvent>) -> Result<(), Error> {
        let line = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        if line.is_empty() {
            self.last_event_id.clone_from(&self.id);
            if self.has_data {
                out.push_back(MessageEvent {
                    event: match self.event.is_empty() {
                        true => "message".to_owned(),
                        false => std::mem::take(&mut self.event),
                    },
                    data: std::mem::take(&mut self.data),
                    last_event_id: self.last_event_id.clone(),
                });
            }
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            return Ok(());
        }
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_str(), ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
                if self.data.len() > self.max {
                    return Err(Error::TooBig {
                        size: self.data.len() as u64,
                        limit: self.max,
                    });
                }
            }
            "id" if !value.contains('\0') => self.id = value.to_owned(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse::<u64>() {
                    self.retry = Some(Duration::from_millis(ms));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in(pieces: &[&[u8]]) -> (Vec<MessageEvent>, Parser) {
        let mut p = Parser::new(1 << 10);
        let mut out = VecDeque::new();
        for piece in pieces {
            p.feed(piece, &mut out).unwrap();
        }
        (out.into(), p)
    }

    fn ev(event: &str, data: &str, id: &str) -> MessageEvent {
        MessageEvent {
            event: event.into(),
            data: data.into(),
            last_event_id: id.into(),
        }
    }

    #[test]
    fn parses_the_wire_format() {
        let wire: &[u8] = b"\xEF\xBB\xBF: a comment\r\nretry: 1500\nid: 7\nevent: tick\ndata: one\r\ndata:two\rdata\n\n\
            data: plain\n\nid\ndata: after an empty id\n\nid: a\0b\nevent: lost\n\nretry: 12x\n: end\n\ndata: cut";
        let (events, p) = parse_in(&[wire]);
        assert_eq!(
            events,
            [
                ev("tick", "one\ntwo\n", "7"),
                ev("message", "plain", "7"),
                ev("message", "after an empty id", ""),
            ]
        );
        assert_eq!(p.retry, Some(Duration::from_millis(1500)));
        // Any cut gives the same events.
        for cut in 1..wire.len() {
            let (again, _) = parse_in(&[&wire[..cut], &wire[cut..]]);
            assert_eq!(again, events, "cut {cut}");
        }
    }

    #[test]
    fn an_id_counts_at_the_end_of_its_event_only() {
        let mut p = Parser::new(1 << 10);
        let mut out = VecDeque::new();
        p.feed(b"id: 1\n\nid: 2\ndata: cut", &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(p.last_event_id, "1");
        p.reset();
        p.feed(b"data: next\n\n", &mut out).unwrap();
        assert_eq!(out.pop_front(), Some(ev("message", "next", "1")));
    }

    #[test]
    fn a_crlf_split_across_reads_ends_one_line() {
        let (events, _) = parse_in(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
        assert_eq!(events, [ev("message", "a\nb", "")]);
    }

    #[test]
    fn limits_lines_and_data() {
        let mut p = Parser::new(8);
        let mut out = VecDeque::new();
        assert!(matches!(
            p.feed(b"data: 0123456789\n", &mut out),
            Err(Error::TooBig { .. })
        ));
        let mut p = Parser::new(8);
        assert!(matches!(
            p.feed(b"data: 0123\ndata: 4567\n", &mut out),
            Err(Error::TooBig { .. })
        ));
    }
}
