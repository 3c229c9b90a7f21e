//! The SSE event encoder: arbitrary name, id, data, comment and retry.
//!
//! Checks: encoding fails (with `InvalidInput`) exactly when the name or id
//! has a line break or the id a NUL; otherwise a WHATWG `text/event-stream`
//! parser (below, written from the spec's "interpret the stream" steps) reads
//! the bytes as exactly one event whose data is the data with every line
//! ending made `\n`, whose type is the name (`message` if none or empty),
//! whose last event id is the id, and whose retry is the retry.

use std::time::Duration;

use libfuzzer_sys::arbitrary::Unstructured;
use wsportal::{Error, Event};

/// What an `EventSource` would see.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Seen {
    pub events: Vec<(String, String)>,
    pub last_id: String,
    pub retry: Option<u64>,
}

/// The WHATWG event-stream interpretation of `text`.
pub fn parse(text: &str) -> Seen {
    let mut seen = Seen::default();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (mut data, mut kind, mut id) = (String::new(), String::new(), String::new());
    let mut rest = text;
    while !rest.is_empty() {
        // A line ends at CRLF, LF or CR; a last line without one is dropped.
        let Some(end) = rest.find(['\r', '\n']) else {
            break;
        };
        let line = &rest[..end];
        let skip = if rest[end..].starts_with("\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
        if line.is_empty() {
            seen.last_id.clone_from(&id);
            if data.is_empty() {
                kind.clear();
                continue;
            }
            if data.ends_with('\n') {
                data.pop();
            }
            let name = if kind.is_empty() {
                "message".to_owned()
            } else {
                std::mem::take(&mut kind)
            };
            seen.events.push((name, std::mem::take(&mut data)));
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line, ""),
        };
        match field {
            "event" => kind = value.to_owned(),
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            "id" if !value.contains('\0') => id = value.to_owned(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                seen.retry = value.parse().ok();
            }
            _ => {}
        }
    }
    seen
}

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let (Ok(name), Ok(id), Ok(comment), Ok(retry)) = (
        u.arbitrary::<Option<String>>(),
        u.arbitrary::<Option<String>>(),
        u.arbitrary::<Option<String>>(),
        u.arbitrary::<Option<u32>>(),
    ) else {
        return;
    };
    let Ok(body) = std::str::from_utf8(u.take_rest()) else {
        return;
    };
    let mut event = Event::new(body);
    if let Some(n) = &name {
        event = event.name(n.as_str());
    }
    if let Some(i) = &id {
        event = event.id(i.as_str());
    }
    if let Some(c) = &comment {
        event = event.comment(c.as_str());
    }
    if let Some(r) = retry {
        event = event.retry(Duration::from_millis(u64::from(r)));
    }
    let newline = |s: &Option<String>| s.as_deref().is_some_and(|s| s.contains(['\r', '\n']));
    // An id the browser could not send back intact (leading or trailing
    // space or tab, a control character other than an inner tab) is refused
    // too: it could never be resumed.
    let unresumable = |i: &str| {
        i.starts_with([' ', '\t'])
            || i.ends_with([' ', '\t'])
            || i.chars().any(|c| c.is_ascii_control() && c != '\t')
    };
    let refused = newline(&name) || newline(&id) || id.as_deref().is_some_and(unresumable);
    let wire = match event.encode() {
        Ok(w) => w,
        Err(Error::InvalidInput(_)) => {
            assert!(refused, "refused a valid event");
            return;
        }
        Err(other) => panic!("undocumented error {other:?}"),
    };
    assert!(
        !refused,
        "encoded an event with a line break in its name or id"
    );
    let text = String::from_utf8(wire).expect("because the encoder writes UTF-8");
    let seen = parse(&text);
    let want_data = body.replace("\r\n", "\n").replace('\r', "\n");
    let want_name = match name.as_deref() {
        None | Some("") => "message",
        Some(n) => n,
    };
    assert_eq!(
        seen.events,
        vec![(want_name.to_owned(), want_data)],
        "wire {text:?}"
    );
    assert_eq!(seen.last_id, id.unwrap_or_default(), "wire {text:?}");
    assert_eq!(seen.retry, retry.map(u64::from), "wire {text:?}");
}
