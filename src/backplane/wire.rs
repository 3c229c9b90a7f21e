//! The backplane's wire format, version 2 (documented in ARCHITECTURE.md so
//! that another language can publish into a cluster). All integers are
//! big-endian; names are UTF-8. Version 2 added message kind 4.
//!
//! ```text
//! 0      2 bytes  magic and version: 0x57 ('W'), 0x02
//! 2      8 bytes  origin: the publishing instance's id (u64)
//! 10     1 byte   target kind: 0 all, 1 resource, 2 group,
//!                 3 event stream, 4 group of an event stream
//! 11     1 byte   message kind: 0 wake (ignored), 1 text, 2 binary, 3 SSE event,
//!                 4 SSE event in the stream's order (target kind 3 only)
//! 12     2 bytes  name length N, then N bytes: route pattern, group or stream route
//! 14+N   2 bytes  group length G, then G bytes (target kind 4 only; else G = 0)
//! ...             payload, to the end: the message bytes (text: UTF-8), or
//!                 for an SSE event: 1 flags byte (1 id, 2 name, 4 retry,
//!                 8 comment), then id and name (u16 length + bytes each,
//!                 if flagged), retry (u64 ms, if flagged), comment (u32
//!                 length + bytes, if flagged), then the data (UTF-8) to the end;
//!                 for kind 4: the previous history entry's id and this
//!                 event's entry id (u16 length + ASCII each; both empty for
//!                 an event not kept), then the event as for kind 3.
//! ```
//!
//! Kind 4 is written only by the `APPEND` script (`backplane/history.rs`),
//! which adds the event to the stream's history and publishes it in one
//! step: every instance, the publishing one included, delivers kind 4 in
//! the order of the channel, which is the history's order.

use std::time::Duration;

pub(crate) use crate::session::cluster::Target;
use crate::{Event, Message};

const MAGIC: u8 = 0x57;
/// The version this code writes and reads.
pub(crate) const VERSION: u8 = 2;

/// What a message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    /// Wakes a subscriber (its server is closing); ignored otherwise.
    Wake,
    Ws(Message),
    Event(Event),
    /// An event in its stream's one order (kind 4): the previous history
    /// entry's id and its own (both empty when it is not kept).
    Ordered {
        prev: String,
        entry: String,
        event: Event,
    },
}

/// What a message carries, borrowed, for encoding without a copy.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Payload<'a> {
    Wake,
    Ws(&'a Message),
    Event(&'a Event),
}

impl<'a> From<&'a Body> for Payload<'a> {
    fn from(body: &'a Body) -> Payload<'a> {
        match body {
            Body::Wake => Payload::Wake,
            Body::Ws(m) => Payload::Ws(m),
            Body::Event(e) | Body::Ordered { event: e, .. } => Payload::Event(e),
        }
    }
}

/// One message on the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub(crate) origin: u64,
    pub(crate) target: Target,
    pub(crate) body: Body,
}

/// Why a message was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Malformed {
    Foreign,
    Version(u8),
    Truncated,
    Kind,
    Utf8,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::Foreign => f.write_str("not a wsportal message (bad magic)"),
            Malformed::Version(v) => write!(f, "unknown wire version {v}"),
            Malformed::Truncated => f.write_str("truncated"),
            Malformed::Kind => f.write_str("unknown target or message kind"),
            Malformed::Utf8 => f.write_str("a name or text that is not UTF-8"),
        }
    }
}

fn put_u16_str(out: &mut Vec<u8>, s: &str) -> Result<(), crate::Error> {
    let n = u16::try_from(s.len())
        .map_err(|_| crate::Error::InvalidInput("name longer than 65535 bytes"))?;
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Encodes one message.
///
/// # Errors
/// [`crate::Error::InvalidInput`] for a name, group or event id longer than 65535 bytes.
pub(crate) fn encode(
    origin: u64,
    target: &Target,
    body: Payload<'_>,
) -> Result<Vec<u8>, crate::Error> {
    let mut out = Vec::with_capacity(
        64 + match body {
            Payload::Ws(m) => m.len(),
            Payload::Event(e) => e.data.len(),
            Payload::Wake => 0,
        },
    );
    out.extend_from_slice(&[MAGIC, VERSION]);
    out.extend_from_slice(&origin.to_be_bytes());
    let (kind, name, group) = match target {
        Target::All => (0, "", ""),
        Target::Resource(r) => (1, r.as_str(), ""),
        Target::Group(g) => (2, g.as_str(), ""),
        Target::Stream(s) => (3, s.as_str(), ""),
        Target::StreamGroup { stream, group } => (4, stream.as_str(), group.as_str()),
    };
    let msg_kind = match body {
        Payload::Wake => 0,
        Payload::Ws(Message::Text(_)) => 1,
        Payload::Ws(Message::Binary(_)) => 2,
        Payload::Event(_) => 3,
    };
    out.extend_from_slice(&[kind, msg_kind]);
    put_u16_str(&mut out, name)?;
    put_u16_str(&mut out, group)?;
    match body {
        Payload::Wake => {}
        Payload::Ws(m) => out.extend_from_slice(m.as_bytes()),
        Payload::Event(e) => {
            let flags = u8::from(e.id.is_some())
                | (u8::from(e.name.is_some()) << 1)
                | (u8::from(e.retry.is_some()) << 2)
                | (u8::from(e.comment.is_some()) << 3);
            out.push(flags);
            if let Some(id) = &e.id {
                put_u16_str(&mut out, id)?;
            }
            if let Some(name) = &e.name {
                put_u16_str(&mut out, name)?;
            }
            if let Some(retry) = e.retry {
                let ms = u64::try_from(retry.as_millis()).unwrap_or(u64::MAX);
                out.extend_from_slice(&ms.to_be_bytes());
            }
            if let Some(c) = &e.comment {
                let n = u32::try_from(c.len())
                    .map_err(|_| crate::Error::InvalidInput("comment longer than 4 GiB"))?;
                out.extend_from_slice(&n.to_be_bytes());
                out.extend_from_slice(c.as_bytes());
            }
            out.extend_from_slice(e.data.as_bytes());
        }
    }
    Ok(out)
}

/// Reads the bytes of a message, front to back.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.0.len() < n {
            return Err(Malformed::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn str16(&mut self) -> Result<String, Malformed> {
        let n = u16::from_be_bytes(self.array()?);
        self.string(usize::from(n))
    }

    fn string(&mut self, n: usize) -> Result<String, Malformed> {
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| Malformed::Utf8)
    }
}

/// Reads an event (the payload of kind 3) to the end of the bytes.
fn read_event(r: &mut Reader<'_>) -> Result<Event, Malformed> {
    let [flags] = r.array()?;
    let mut e = Event::default();
    if flags & 1 != 0 {
        e.id = Some(r.str16()?);
    }
    if flags & 2 != 0 {
        e.name = Some(r.str16()?);
    }
    if flags & 4 != 0 {
        e.retry = Some(Duration::from_millis(u64::from_be_bytes(r.array()?)));
    }
    if flags & 8 != 0 {
        let n = u32::from_be_bytes(r.array()?);
        let n = usize::try_from(n).map_err(|_| Malformed::Truncated)?;
        e.comment = Some(r.string(n)?);
    }
    e.data = r.string(r.0.len())?;
    Ok(e)
}

/// Decodes an event payload as kept in a stream's history (the payload of
/// kind 3 alone).
pub(crate) fn decode_event(bytes: &[u8]) -> Result<Event, Malformed> {
    read_event(&mut Reader(bytes))
}

/// Where the payload starts in a message for `target` (after the header
/// and the names).
pub(crate) fn payload_offset(target: &Target) -> usize {
    let (name, group) = match target {
        Target::All => (0, 0),
        Target::Resource(s) | Target::Group(s) | Target::Stream(s) => (s.len(), 0),
        Target::StreamGroup { stream, group } => (stream.len(), group.len()),
    };
    16 + name + group
}

/// Decodes one message; anything else is `Malformed`, never a panic.
pub(crate) fn decode(bytes: &[u8]) -> Result<Envelope, Malformed> {
    let mut r = Reader(bytes);
    let [magic, version] = r.array().map_err(|_| Malformed::Foreign)?;
    if magic != MAGIC {
        return Err(Malformed::Foreign);
    }
    if version != VERSION {
        return Err(Malformed::Version(version));
    }
    let origin = u64::from_be_bytes(r.array()?);
    let [kind, msg_kind] = r.array()?;
    let name = r.str16()?;
    let group = r.str16()?;
    let target = match kind {
        0 => Target::All,
        1 => Target::Resource(name),
        2 => Target::Group(name),
        3 => Target::Stream(name),
        4 => Target::StreamGroup {
            stream: name,
            group,
        },
        _ => return Err(Malformed::Kind),
    };
    let body = match msg_kind {
        0 => Body::Wake,
        1 => Body::Ws(Message::Text(r.string(r.0.len())?)),
        2 => Body::Ws(Message::Binary(r.0.to_vec())),
        3 => Body::Event(read_event(&mut r)?),
        4 if matches!(target, Target::Stream(_)) => Body::Ordered {
            prev: r.str16()?,
            entry: r.str16()?,
            event: read_event(&mut r)?,
        },
        _ => return Err(Malformed::Kind),
    };
    Ok(Envelope {
        origin,
        target,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let cases = [
            (Target::All, Body::Ws(Message::Text("hé".into()))),
            (
                Target::Resource("/chat/:room".into()),
                Body::Ws(Message::Binary(vec![0, 255, 10])),
            ),
            (
                Target::Group("room-1".into()),
                Body::Ws(Message::Text(String::new())),
            ),
            (
                Target::Stream("/events".into()),
                Body::Event(
                    Event::new("a\nb")
                        .id("7")
                        .name("n")
                        .retry(Duration::from_secs(3))
                        .comment("c"),
                ),
            ),
            (
                Target::StreamGroup {
                    stream: "/e".into(),
                    group: "g".into(),
                },
                Body::Event(Event::new("x")),
            ),
            (Target::All, Body::Wake),
        ];
        for (target, body) in cases {
            let bytes = encode(42, &target, (&body).into()).unwrap();
            let back = decode(&bytes).unwrap();
            assert_eq!(
                back,
                Envelope {
                    origin: 42,
                    target,
                    body
                }
            );
        }
    }

    #[test]
    fn layout_is_as_documented() {
        let bytes = encode(
            1,
            &Target::Group("g".into()),
            Payload::Ws(&Message::Text("hi".into())),
        )
        .unwrap();
        assert_eq!(
            bytes,
            [0x57, 2, 0, 0, 0, 0, 0, 0, 0, 1, 2, 1, 0, 1, b'g', 0, 0, b'h', b'i']
        );
    }

    /// Kind 4 as the `APPEND` script writes it: kind 3 with the kind byte
    /// changed and the two entry ids before the event.
    #[test]
    fn an_ordered_event_decodes() {
        let target = Target::Stream("/s".into());
        let event = Event::new("d").id("u1");
        let plain = encode(5, &target, Payload::Event(&event)).unwrap();
        let off = payload_offset(&target);
        let mut m = plain[..off].to_vec();
        m[11] = 4;
        for id in ["1-0", "2-5"] {
            m.extend_from_slice(&u16::try_from(id.len()).unwrap().to_be_bytes());
            m.extend_from_slice(id.as_bytes());
        }
        m.extend_from_slice(&plain[off..]);
        let back = decode(&m).unwrap();
        assert_eq!(
            back.body,
            Body::Ordered {
                prev: "1-0".into(),
                entry: "2-5".into(),
                event: event.clone()
            }
        );
        assert_eq!(decode_event(&plain[off..]), Ok(event));
        // Kind 4 is for a stream only.
        m[10] = 0;
        assert_eq!(decode(&m), Err(Malformed::Kind));
    }

    #[test]
    fn malformed_and_foreign_messages_are_refused_without_panic() {
        assert_eq!(decode(b""), Err(Malformed::Foreign));
        assert_eq!(decode(b"hello world"), Err(Malformed::Foreign));
        assert_eq!(decode(&[0x57, 9]), Err(Malformed::Version(9)));
        let good = encode(
            3,
            &Target::Stream("/s".into()),
            Payload::Event(&Event::new("d").id("1")),
        )
        .unwrap();
        // Every truncation and every single-byte corruption decodes or is refused.
        for n in 0..good.len() {
            let _ = decode(&good[..n]);
            for b in [0u8, 0xff, 0x80] {
                let mut bad = good.clone();
                bad[n] = b;
                let _ = decode(&bad);
            }
        }
        let mut bad_kind = good.clone();
        bad_kind[10] = 9;
        assert_eq!(decode(&bad_kind), Err(Malformed::Kind));
        let mut bad_text =
            encode(3, &Target::All, Payload::Ws(&Message::Text("ok".into()))).unwrap();
        bad_text.push(0xff);
        assert_eq!(decode(&bad_text), Err(Malformed::Utf8));
    }
}
