//! Models of the deflate stage with the outbox (`scripts/loom.sh`): the
//! compressor's lock is never held while a producer waits for room.

use std::convert::Infallible;

use loom::sync::Arc;
use loom::thread;

use super::{send, NotSent};
use crate::sync::Mutex;
use crate::transport::outbox::loom::{far, housekeep, model, Socket};
use crate::transport::outbox::{Admit, Flushed, Lane, Outbox, PushError};
use crate::wire::deflate::Compressor;
use crate::wire::extension::Direction;
use crate::wire::frame::OpCode;

fn compressor() -> Mutex<Compressor> {
    let dir = Direction {
        window_bits: 9,
        no_context_takeover: false,
    };
    Mutex::new(Compressor::new(dir, 0, 0))
}

/// A waits for room with `send_timeout`'s deadline; B's `send` (no
/// deadline) meanwhile must come back at once, refused, and then make the
/// room A waits for. Had A kept the compressor through its wait, B could
/// not get it, nobody would make room, and loom would report the deadlock.
#[test]
fn a_send_never_waits_for_another_senders_wait() {
    model(|| {
        let outbox = Arc::new(Outbox::new(8));
        let socket = Socket::with_room(0);
        let z = Arc::new(compressor());
        // A backlog over its limit, on a socket that takes nothing.
        let mut s = socket.clone();
        let first = outbox.push_with(&mut s, 16, Admit::Waited, Lane::Data, |v| {
            v.extend_from_slice(&[0; 16])
        });
        assert!(matches!(first, Ok(Flushed::Stalled)));
        let a = {
            let (outbox, socket, z) = (outbox.clone(), socket.clone(), z.clone());
            thread::spawn(move || {
                let room = |len, deadline| {
                    outbox.wait_for_room(len, Lane::Data, deadline);
                    Ok::<(), Infallible>(())
                };
                let sent = send(
                    &z,
                    &outbox,
                    || socket.clone(),
                    OpCode::Binary,
                    b"aaaa",
                    || None,
                    Some(far()),
                    room,
                );
                assert!(matches!(sent, Some(Ok(_))), "A: {sent:?}");
            })
        };
        let no_wait = |_, _| -> Result<(), Infallible> { unreachable!("no deadline, no wait") };
        let sent = send(
            &z,
            &outbox,
            || socket.clone(),
            OpCode::Binary,
            b"bbbb",
            || None,
            None,
            no_wait,
        );
        assert!(
            matches!(sent, Some(Err(NotSent::Refused(PushError::TooSlow)))),
            "B: {sent:?}"
        );
        // B, done at once, plays the housekeeper: the socket drains.
        socket.open();
        housekeep(&outbox, &socket);
        a.join().unwrap();
        housekeep(&outbox, &socket);
        assert_eq!(outbox.backlog(), 0);
    });
}
