//! Models of the outbox's lock protocol, run by loom over the real code
//! (`scripts/loom.sh`): pushes from several threads, the writer role handed
//! to the housekeeper, `flush`'s and `send_timeout`'s waits, and abort. Each
//! model is a few threads doing one or two things; loom tries every
//! interleaving of their lock and condvar operations. A waiter that only a
//! timeout would wake shows up as a deadlock (loom's timed waits never time
//! out).

use std::io::{self, IoSlice, Write};
use std::sync::Mutex as StdMutex;
use std::time::{Duration, Instant};

use loom::sync::Arc;
use loom::thread;

use super::{Admit, Flushed, Lane, Outbox, Sink};

/// A socket as the model sees it: takes at most `room` bytes (then
/// `WouldBlock`), and records what it took. Its lock is std's: held only
/// for a copy, no loom operation inside, so it adds no interleavings.
#[derive(Clone)]
pub(crate) struct Socket(std::sync::Arc<StdMutex<Taken>>);

#[derive(Default)]
struct Taken {
    bytes: Vec<u8>,
    room: usize,
}

impl Socket {
    pub(crate) fn with_room(room: usize) -> Socket {
        Socket(std::sync::Arc::new(StdMutex::new(Taken {
            bytes: Vec::new(),
            room,
        })))
    }

    pub(crate) fn open(&self) {
        self.0.lock().unwrap().room = usize::MAX;
    }

    pub(crate) fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().bytes.clone()
    }
}

impl Sink for Socket {}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut t = self.0.lock().unwrap();
        if t.room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(t.room);
            t.room -= take;
            t.bytes.extend_from_slice(&b[..take]);
            n += take;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(crate) fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

fn push(outbox: &Outbox, socket: &Socket, frame: &[u8]) -> Flushed {
    let mut s = socket.clone();
    outbox
        .push_with(&mut s, frame.len(), Admit::Limit, Lane::Data, |v| {
            v.extend_from_slice(frame)
        })
        .unwrap()
}

/// What the housekeeper does with a stalled outbox: writes on until done.
pub(crate) fn housekeep(outbox: &Outbox, socket: &Socket) {
    let mut s = socket.clone();
    while let Flushed::Stalled = outbox.resume(&mut s) {
        socket.open();
    }
}

/// The accounting every state must keep: `queued` is what the queue holds
/// past the written head.
fn consistent(outbox: &Outbox) {
    let st = outbox.state.lock();
    let in_queue: usize = st.queue.iter().map(|c| c.bytes().len()).sum();
    assert_eq!(st.queued, in_queue - st.head_written, "queued vs queue");
    if st.dropped {
        assert!(
            st.queue.len() <= 1,
            "a dropped queue keeps at most its written head"
        );
        assert!(st.held.is_empty() && st.held_bytes == 0);
    }
}

pub(crate) fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

/// Two threads push while the socket is nearly full: frames never
/// interleave, and once the housekeeper took over, every byte leaves.
#[test]
fn pushes_never_interleave_and_a_stall_is_finished() {
    model(|| {
        let outbox = Arc::new(Outbox::new(1 << 20));
        let socket = Socket::with_room(3);
        let other = {
            let (outbox, socket) = (outbox.clone(), socket.clone());
            thread::spawn(move || push(&outbox, &socket, b"bbbb"))
        };
        let mine = push(&outbox, &socket, b"aaaa");
        let theirs = other.join().unwrap();
        consistent(&outbox);
        if matches!(mine, Flushed::Stalled) || matches!(theirs, Flushed::Stalled) {
            socket.open();
            housekeep(&outbox, &socket);
        }
        let out = socket.bytes();
        assert!(out == b"aaaabbbb" || out == b"bbbbaaaa", "{out:?}");
        assert_eq!(outbox.backlog(), 0);
        assert!(!outbox.state.lock().writing);
    });
}

/// `flush` waits for its mark while the housekeeper writes: it is woken
/// (no lost wake-up), and only once the bytes were taken.
#[test]
fn a_flush_is_woken_when_its_bytes_leave() {
    model(|| {
        let outbox = Arc::new(Outbox::new(1 << 20));
        let socket = Socket::with_room(0);
        assert!(matches!(push(&outbox, &socket, b"aaaa"), Flushed::Stalled));
        let mark = outbox.flush_mark().unwrap();
        let housekeeper = {
            let (outbox, socket) = (outbox.clone(), socket.clone());
            thread::spawn(move || {
                socket.open();
                housekeep(&outbox, &socket);
            })
        };
        assert_eq!(outbox.wait_written(mark, far()), Ok(()));
        assert_eq!(socket.bytes(), b"aaaa");
        housekeeper.join().unwrap();
    });
}

/// A producer waiting for room is woken as the housekeeper makes it.
#[test]
fn a_wait_for_room_is_woken_as_room_appears() {
    model(|| {
        let outbox = Arc::new(Outbox::new(4));
        let socket = Socket::with_room(0);
        assert!(matches!(push(&outbox, &socket, b"aaaa"), Flushed::Stalled));
        let housekeeper = {
            let (outbox, socket) = (outbox.clone(), socket.clone());
            thread::spawn(move || {
                socket.open();
                housekeep(&outbox, &socket);
            })
        };
        outbox.wait_for_room(4, Lane::Data, far());
        let mut s = socket.clone();
        let pushed = outbox.push_with(&mut s, 4, Admit::Limit, Lane::Data, |v| {
            v.extend_from_slice(b"bbbb")
        });
        assert!(pushed.is_ok(), "room was made, yet {pushed:?}");
        housekeeper.join().unwrap();
        if let Ok(Flushed::Stalled) = pushed {
            housekeep(&outbox, &socket);
        }
        assert_eq!(socket.bytes(), b"aaaabbbb");
    });
}

/// A closing connection's wait for its backlog ends when it drained.
#[test]
fn a_drain_wait_ends_when_the_backlog_left() {
    model(|| {
        let outbox = Arc::new(Outbox::new(1 << 20));
        let socket = Socket::with_room(2);
        assert!(matches!(push(&outbox, &socket, b"aaaa"), Flushed::Stalled));
        let housekeeper = {
            let (outbox, socket) = (outbox.clone(), socket.clone());
            thread::spawn(move || {
                socket.open();
                housekeep(&outbox, &socket);
            })
        };
        assert!(outbox.wait_drained(far()));
        assert_eq!(socket.bytes(), b"aaaa");
        housekeeper.join().unwrap();
    });
}

/// An abort while another thread writes a batch it took from the queue:
/// the accounting holds, nothing queued after the written head is written
/// afterwards, and whoever ends up with the writer role lets it go.
#[test]
fn an_abort_during_a_write_drops_the_rest() {
    model(|| {
        let outbox = Arc::new(Outbox::new(1 << 20));
        let socket = Socket::with_room(2);
        let writer = {
            let (outbox, socket) = (outbox.clone(), socket.clone());
            thread::spawn(move || {
                let mut s = socket.clone();
                outbox.push_with(&mut s, 4, Admit::Limit, Lane::Data, |v| {
                    v.extend_from_slice(b"aaaa")
                })
            })
        };
        let free = outbox.abort();
        let flushed = writer.join().unwrap();
        consistent(&outbox);
        if matches!(flushed, Ok(Flushed::Stalled)) {
            // The housekeeper finishes the written head's frame, no more.
            housekeep(&outbox, &socket);
        }
        let out = socket.bytes();
        assert!(out.is_empty() || out == b"aaaa", "{out:?}");
        consistent(&outbox);
        let _ = free;
    });
}

/// A ping pushed while frames are being written (one of them a header and
/// its payload in two chunks) goes out whole, at a frame boundary, never
/// inside a frame, and nothing is lost.
#[test]
fn a_ping_goes_between_frames_never_inside_one() {
    model(|| {
        let outbox = Arc::new(Outbox::new(1 << 20));
        let socket = Socket::with_room(3);
        let pinger = {
            let (outbox, socket) = (outbox.clone(), socket.clone());
            thread::spawn(move || {
                let mut s = socket.clone();
                outbox.push_with(&mut s, 2, Admit::Limit, Lane::Urgent, |v| {
                    v.extend_from_slice(b"pp")
                })
            })
        };
        let mut s = socket.clone();
        let first = outbox.push_owned(&mut s, b"h1", b"aaaa".to_vec(), Admit::Limit, Lane::Data);
        let second = push(&outbox, &socket, b"bbbb");
        let pinged = pinger.join().unwrap();
        assert!(first.is_ok() && pinged.is_ok());
        let _ = second;
        socket.open();
        let mut s = socket.clone();
        // Whoever stalled handed the role over; finish as the housekeeper.
        if outbox.state.lock().writing {
            housekeep(&outbox, &socket);
        } else {
            let _ = outbox.kick(&mut s);
        }
        let out = socket.bytes();
        let allowed: [&[u8]; 3] = [b"pph1aaaabbbb", b"h1aaaappbbbb", b"h1aaaabbbbpp"];
        assert!(
            allowed.contains(&&out[..]),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
    });
}

/// A ping and a close frame from two threads: whatever the order they
/// were pushed in, nothing is written after the close frame (a ping pushed
/// first goes ahead of it, even past frames coalesced with it; a ping
/// pushed after it is refused).
#[test]
fn nothing_follows_a_close_frame() {
    model(|| {
        let outbox = Arc::new(Outbox::new(1 << 20));
        let socket = Socket::with_room(1);
        let pinger = {
            let (outbox, socket) = (outbox.clone(), socket.clone());
            thread::spawn(move || {
                let mut s = socket.clone();
                outbox
                    .push_with(&mut s, 2, Admit::Limit, Lane::Urgent, |v| {
                        v.extend_from_slice(b"pp")
                    })
                    .is_ok()
            })
        };
        let _ = push(&outbox, &socket, b"dd");
        let mut s = socket.clone();
        let closed = outbox.push_with(&mut s, 2, Admit::Close, Lane::Control, |v| {
            v.extend_from_slice(b"cc")
        });
        assert!(closed.is_ok());
        let pinged = pinger.join().unwrap();
        socket.open();
        if outbox.state.lock().writing {
            housekeep(&outbox, &socket);
        } else {
            let _ = outbox.kick(&mut s);
        }
        let out = socket.bytes();
        assert!(out.ends_with(b"cc"), "{:?}", String::from_utf8_lossy(&out));
        assert_eq!(out.len(), if pinged { 6 } else { 4 });
    });
}
