//! The frame reader: bytes in any chunking, both roles, every limit.
//!
//! Checks: the events and the outcome do not depend on how the bytes were
//! chunked (the fuzzer's chunking against one read of everything); every
//! refusal is 1002, 1007 or 1009 with a matching error; a `TooBig` names a
//! configured limit it exceeds; events respect the limits; the largest
//! allocation is bounded by the limits on buffering and the bytes that
//! arrived, never by a length field.

use libfuzzer_sys::arbitrary::Unstructured;
use wsportal::fuzzing::{FrameEvent, FrameReader, DIRECT_GROWTH, DIRECT_MIN, READ_BUFFER_CAP};
use wsportal::{Error, Message};

use crate::input::{self, Chunked};

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The stream ended (possibly mid-frame).
    Eof,
    /// A close frame arrived (the session stops reading there).
    Closed,
    /// The reader refused the input with this close code and error text.
    Refused(u16, String),
}

/// The reader's settings.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub server: bool,
    pub max_frame: usize,
    pub max_message: usize,
    pub initial: usize,
}

/// Drives a reader as `session::read_loop` does: every complete event, then
/// one read, until a close, a refusal or the end.
pub fn drive(
    setup: Setup,
    leftover: &[u8],
    stream: &mut Chunked<'_>,
) -> (Vec<FrameEvent>, Outcome) {
    drive_into(setup, leftover, stream, Vec::new())
}

/// [`drive`], collecting into `events` (allocated by the caller, so that
/// the harness's own list is not counted as the reader's allocation).
pub fn drive_into(
    setup: Setup,
    leftover: &[u8],
    stream: &mut Chunked<'_>,
    mut events: Vec<FrameEvent>,
) -> (Vec<FrameEvent>, Outcome) {
    let mut reader = FrameReader::new(
        setup.server,
        setup.max_frame,
        setup.max_message,
        setup.initial,
        leftover,
    );
    loop {
        loop {
            match reader.next_event() {
                Ok(Some(e)) => {
                    let close = matches!(e, FrameEvent::Close(_));
                    check_event(&setup, &e);
                    events.push(e);
                    if close {
                        return (events, Outcome::Closed);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    check_refusal(&setup, &e);
                    return (events, Outcome::Refused(e.close_code(), e.to_string()));
                }
            }
        }
        match reader.fill(stream) {
            Ok(0) => return (events, Outcome::Eof),
            Ok(_) => {}
            Err(e) => panic!("the in-memory stream cannot fail: {e}"),
        }
    }
}

fn check_event(setup: &Setup, e: &FrameEvent) {
    match e {
        FrameEvent::Message(m) => assert!(m.len() <= setup.max_message, "message over the limit"),
        FrameEvent::Ping(p) | FrameEvent::Pong(p) => assert!(p.len() <= 125),
        FrameEvent::Close(Some((code, reason))) => {
            assert!(reason.len() <= 123);
            assert!((1000..5000).contains(code) && ![1004, 1005, 1006, 1015].contains(code));
        }
        FrameEvent::Close(None) => {}
    }
}

/// Every refusal is one of the documented three, with its close code.
pub fn check_refusal(setup: &Setup, e: &Error) {
    match e {
        Error::Protocol(_) => assert_eq!(e.close_code(), 1002),
        Error::InvalidUtf8 => assert_eq!(e.close_code(), 1007),
        Error::TooBig { size, limit } => {
            assert_eq!(e.close_code(), 1009);
            assert!(*limit == setup.max_frame || *limit == setup.max_message);
            assert!(*size > *limit as u64, "TooBig for {size} <= {limit}");
        }
        other => panic!("unexpected refusal {other:?}"),
    }
}

/// The settings, leftover length and chunk sizes the input chose, and the
/// stream.
pub fn setup(
    u: &mut Unstructured<'_>,
    max_limit: usize,
) -> Option<(Setup, usize, Vec<usize>, Vec<u8>)> {
    let server = u.arbitrary::<bool>().ok()?;
    let max_frame = input::limit(u, max_limit).ok()?;
    let max_message = input::limit(u, max_limit).ok()?;
    let initial = match u.int_in_range(0..=2u8).ok()? {
        0 => 64,
        1 => 4096,
        _ => u.int_in_range(64..=65_536usize).ok()?,
    };
    let leftover = u.int_in_range(0..=64usize).ok()?;
    let sizes = input::chunk_sizes(u).ok()?;
    let stream = input::frame_stream(u, server).ok()?;
    let setup = Setup {
        server,
        max_frame,
        max_message,
        initial,
    };
    Some((setup, leftover.min(stream.len()), sizes, stream))
}

/// The largest single allocation the reader may make for `n` bytes of input:
/// its buffer (up to the cap, or one small frame plus a read's room), a large
/// frame's own vector (a few times what arrived), and a message assembled
/// from fragments (amortised doubling of what arrived).
pub fn allocation_bound(setup: &Setup, n: usize) -> usize {
    let buffer = READ_BUFFER_CAP.max(DIRECT_MIN + 14 + setup.initial) + setup.initial;
    let direct = DIRECT_MIN.max(DIRECT_GROWTH * n);
    buffer.max(direct).max(2 * n) + 4096
}

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Some((setup, leftover, sizes, stream)) = setup(&mut u, 64 << 20) else {
        return;
    };
    // Every frame is at least 2 bytes: room for every event up front.
    let events = Vec::with_capacity(stream.len() / 2 + 1);
    let mut chunked = Chunked::new(&stream[leftover..], sizes);
    let ((events, outcome), largest) =
        crate::largest_allocation(|| drive_into(setup, &stream[..leftover], &mut chunked, events));
    let bound = allocation_bound(&setup, stream.len());
    assert!(
        largest <= bound,
        "allocated {largest} bytes at once for {} bytes of input (bound {bound})",
        stream.len()
    );
    // The same bytes in one read, from a default-sized buffer.
    let whole = Setup {
        initial: 4096,
        ..setup
    };
    let mut once = Chunked::new(&stream, Vec::new());
    let (events2, outcome2) = drive(whole, &[], &mut once);
    assert_eq!(events.len(), events2.len(), "chunking changed the events");
    for (a, b) in events.iter().zip(&events2) {
        assert!(a == b, "chunking changed an event");
    }
    assert_eq!(outcome, outcome2, "chunking changed the outcome");
    for e in &events {
        if let FrameEvent::Message(Message::Text(t)) = e {
            // Because the reader only hands out valid UTF-8 as text.
            assert!(std::str::from_utf8(t.as_bytes()).is_ok());
        }
    }
}
