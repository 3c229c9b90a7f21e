//! Differential: wsportal's `FrameReader` against tungstenite's frame codec
//! (`WebSocket::read` over the same bytes, same role and limits). Both must
//! deliver the same events and agree on whether, and with which close code,
//! the input is refused.
//!
//! Deliberate differences, accepted here and nowhere else:
//! 1. We check a frame's header (reserved bits and opcodes, masking, control
//!    frame rules) as soon as the header arrives; tungstenite waits for the
//!    whole payload. So when the stream ends inside such a frame we have
//!    refused it (1002) and tungstenite has only seen the end.
//! 2. For a frame that breaks a protocol rule and exceeds `max_frame`, we name
//!    the protocol rule (1002), tungstenite the size (1009): it checks the
//!    length before anything else.
//! 3. A close frame with a status code a peer may not send (RFC 6455 7.4):
//!    we refuse it (1002); tungstenite delivers a close with 1002
//!    "Protocol violation" in its place. Both answer with 1002. When the
//!    reason is not UTF-8 either, we name the code (1002), tungstenite the
//!    reason (1007): it decodes the reason first.
//!
//! Tungstenite reserves a frame's announced length up front (up to
//! `max_frame`), so limits here stay at or below 1 MiB, and only our reader's
//! allocations are measured (in the `frame_reader` target).

use std::io::{self, Read, Write};

use libfuzzer_sys::arbitrary::Unstructured;
use tungstenite::error::{Error as TError, ProtocolError};
use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
use wsportal::fuzzing::FrameEvent;
use wsportal::Message;

use crate::frame_reader::{drive, setup, Outcome};
use crate::input::Chunked;

/// Input for tungstenite: reads the bytes, swallows the pongs it writes.
struct Duplex<'a>(Chunked<'a>);

impl Read for Duplex<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Duplex<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Tungstenite's events and outcome, in our terms.
fn tungstenite_run(
    server: bool,
    max_frame: usize,
    max_message: usize,
    stream: &[u8],
) -> (Vec<FrameEvent>, Outcome) {
    let config = WebSocketConfig::default()
        .max_frame_size(Some(max_frame))
        .max_message_size(Some(max_message));
    let role = if server { Role::Server } else { Role::Client };
    let mut ws =
        WebSocket::from_raw_socket(Duplex(Chunked::new(stream, Vec::new())), role, Some(config));
    let mut events = Vec::new();
    loop {
        let event = match ws.read() {
            Ok(tungstenite::Message::Text(t)) => {
                FrameEvent::Message(Message::Text(t.as_str().to_owned()))
            }
            Ok(tungstenite::Message::Binary(b)) => FrameEvent::Message(Message::Binary(b.to_vec())),
            Ok(tungstenite::Message::Ping(p)) => FrameEvent::Ping(p.to_vec()),
            Ok(tungstenite::Message::Pong(p)) => FrameEvent::Pong(p.to_vec()),
            Ok(tungstenite::Message::Close(c)) => {
                events.push(FrameEvent::Close(
                    c.map(|f| (u16::from(f.code), f.reason.as_str().to_owned())),
                ));
                return (events, Outcome::Closed);
            }
            Ok(tungstenite::Message::Frame(_)) => unreachable!("read never returns raw frames"),
            Err(TError::Protocol(ProtocolError::ResetWithoutClosingHandshake))
            | Err(TError::ConnectionClosed) => return (events, Outcome::Eof),
            Err(TError::Protocol(p)) => return (events, Outcome::Refused(1002, p.to_string())),
            Err(TError::Utf8(s)) => return (events, Outcome::Refused(1007, s)),
            Err(TError::Capacity(c)) => return (events, Outcome::Refused(1009, c.to_string())),
            Err(other) => panic!("tungstenite: unexpected error {other:?}"),
        };
        events.push(event);
    }
}

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Some((setup, leftover, sizes, stream)) = setup(&mut u, 1 << 20) else {
        return;
    };
    let mut chunked = Chunked::new(&stream[leftover..], sizes);
    let (ours, our_end) = drive(setup, &stream[..leftover], &mut chunked);
    let (theirs, their_end) =
        tungstenite_run(setup.server, setup.max_frame, setup.max_message, &stream);
    compare(&ours, &our_end, &theirs, &their_end);
}

/// Panics unless the two runs agree, up to the documented differences.
pub fn compare(ours: &[FrameEvent], our_end: &Outcome, theirs: &[FrameEvent], their_end: &Outcome) {
    let invalid_close = "close frame with an invalid status code";
    match (our_end, their_end) {
        (a, b)
            if a == b
                || matches!((a, b), (Outcome::Refused(x, _), Outcome::Refused(y, _)) if x == y) =>
        {
            assert_eq!(ours, theirs, "same outcome {a:?}, different events");
        }
        // Difference 1: our header checks come before the payload.
        (Outcome::Refused(1002, _), Outcome::Eof) => {
            assert_eq!(ours, theirs, "early refusal, different events before it");
        }
        // Difference 2: protocol rule and size limit broken by one frame.
        (Outcome::Refused(1002, _), Outcome::Refused(1009, _)) => {
            assert_eq!(ours, theirs, "1002 vs 1009, different events before it");
        }
        // Difference 3: a close code a peer may not send.
        (Outcome::Refused(1002, why), Outcome::Closed) if why.contains(invalid_close) => {
            let (last, before) = theirs
                .split_last()
                .expect("tungstenite closed, so it has an event");
            assert_eq!(
                last,
                &FrameEvent::Close(Some((1002, "Protocol violation".to_owned())))
            );
            assert_eq!(
                ours, before,
                "invalid close code, different events before it"
            );
        }
        (Outcome::Refused(1002, why), Outcome::Refused(1007, _)) if why.contains(invalid_close) => {
            assert_eq!(
                ours, theirs,
                "invalid close code and reason, different events before it"
            );
        }
        (a, b) => panic!(
            "outcomes differ: wsportal {a:?} after {} events, tungstenite {b:?} after {} events",
            ours.len(),
            theirs.len()
        ),
    }
}
