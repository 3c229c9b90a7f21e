use std::io::IoSlice;

use super::*;

/// A sink that accepts at most `room` bytes, then reports WouldBlock;
/// like a socket, one vectored write takes from every slice it has room for.
struct Throttled {
    out: Vec<u8>,
    room: usize,
    calls: usize,
}

impl Sink for Throttled {}

impl Write for Throttled {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.calls += 1;
        if self.room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(self.room);
            self.room -= take;
            self.out.extend_from_slice(&b[..take]);
            n += take;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn sink(room: usize) -> Throttled {
    Throttled {
        out: Vec::new(),
        room,
        calls: 0,
    }
}

/// A sink like a TLS session: it takes every byte offered (encrypts it),
/// but passes on at most `room`, holding the rest until `flush`.
struct Holding {
    held: Vec<u8>,
    out: Vec<u8>,
    room: usize,
}

impl Holding {
    fn pass_on(&mut self) -> io::Result<()> {
        let n = self.held.len().min(self.room);
        self.room -= n;
        self.out.extend(self.held.drain(..n));
        match self.held.is_empty() {
            true => Ok(()),
            false => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Sink for Holding {
    fn holds(&self) -> bool {
        !self.held.is_empty()
    }
}

impl Write for Holding {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.held.extend_from_slice(buf);
        let _ = self.pass_on();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.pass_on()
    }
}

#[test]
fn bytes_the_sink_holds_keep_the_writer_role_until_flushed() {
    let ob = Outbox::new(1 << 20);
    let mut s = Holding {
        held: Vec::new(),
        out: Vec::new(),
        room: 2,
    };
    // Everything was taken, but not all of it went out: still stalled.
    assert!(matches!(
        ob.push_with(&mut s, 5, Admit::Limit, Lane::Data, |v| v
            .extend_from_slice(b"abcde")),
        Ok(Flushed::Stalled)
    ));
    assert!(ob.state.lock().stalled_at.is_some());
    // The writer role is held: a push only queues.
    ob.push_with(&mut s, 1, Admit::Limit, Lane::Data, |v| v.push(b'f'))
        .unwrap();
    assert_eq!(s.out, b"ab");
    s.room = 100;
    assert!(matches!(ob.resume(&mut s), Flushed::Done));
    assert_eq!(s.out, b"abcdef");
    assert_eq!(ob.stalled_for(), Duration::ZERO);
}

/// A [`Holding`] sink as a TLS session behaves: while it still holds
/// records it takes nothing new (`WouldBlock`), and on its first write it
/// lets another thread's push land in the queue (as one may, unlocked,
/// while the writer writes).
struct Refusing<'a> {
    sink: Holding,
    outbox: &'a Outbox,
    pushed: bool,
}

impl Sink for Refusing<'_> {
    fn holds(&self) -> bool {
        self.sink.holds()
    }
}

impl Write for Refusing<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sink.pass_on()?;
        if !std::mem::replace(&mut self.pushed, true) {
            // The writer role is ours: the push only queues.
            let mut other = sink(0);
            self.outbox
                .push_with(&mut other, 3, Admit::Limit, Lane::Data, |v| {
                    v.extend_from_slice(b"xyz")
                })
                .unwrap();
        }
        self.sink.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }
}

#[test]
fn a_write_that_takes_nothing_confirms_nothing_the_sink_still_holds() {
    let ob = Outbox::new(1 << 20);
    let mut s = Refusing {
        sink: Holding {
            held: Vec::new(),
            out: Vec::new(),
            room: 2,
        },
        outbox: &ob,
        pushed: false,
    };
    // "abcde" is taken whole but only "ab" goes out; "xyz", queued during
    // that write, is refused while "cde" is held.
    assert!(matches!(
        ob.push_with(&mut s, 5, Admit::Limit, Lane::Data, |v| v
            .extend_from_slice(b"abcde")),
        Ok(Flushed::Stalled)
    ));
    // A flush of "abcde" must still wait.
    assert_eq!(
        ob.state.lock().confirmed,
        0,
        "confirmed what the sink holds"
    );
    let mark = ob.flush_mark().unwrap();
    s.sink.room = 100;
    assert!(matches!(ob.resume(&mut s), Flushed::Done));
    assert_eq!(s.sink.out, b"abcdexyz");
    assert!(ob.wait_written(mark, Instant::now()).is_ok());
}

#[test]
fn a_drain_wait_ends_when_the_sink_lets_go_or_the_queue_is_dropped() {
    let ob = Arc::new(Outbox::new(1 << 20));
    let mut s = Holding {
        held: Vec::new(),
        out: Vec::new(),
        room: 2,
    };
    // A thread waiting with no deadline to speak of; its answer comes
    // on the channel.
    let waiter = |ob: &Arc<Outbox>| {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let far = Instant::now() + Duration::from_secs(3600);
        let ob2 = Arc::clone(ob);
        std::thread::spawn(move || tx.send(ob2.wait_drained(far)).unwrap());
        // Wake it only once it waits, or a missed wake-up would go unseen.
        let bound = Instant::now() + Duration::from_secs(20);
        while ob.state.lock().waiters == 0 && Instant::now() < bound {
            std::thread::yield_now();
        }
        rx
    };
    let bound = Duration::from_secs(20);
    ob.push_with(&mut s, 5, Admit::Limit, Lane::Data, |v| {
        v.extend_from_slice(b"abcde")
    })
    .unwrap();
    // Nothing queued, but the sink still holds bytes: not drained.
    assert_eq!(ob.backlog(), 0);
    assert!(!ob.wait_drained(Instant::now()));
    let rx = waiter(&ob);
    s.room = 100;
    assert!(matches!(ob.resume(&mut s), Flushed::Done));
    assert_eq!(rx.recv_timeout(bound), Ok(true));
    assert_eq!(s.out, b"abcde");
    // A dropped queue ends the wait too, undrained.
    s.room = 0;
    ob.push_with(&mut s, 1, Admit::Limit, Lane::Data, |v| v.push(b'f'))
        .unwrap();
    let rx = waiter(&ob);
    ob.abort();
    assert_eq!(rx.recv_timeout(bound), Ok(false));
}

#[test]
fn cork_coalesces_into_one_write() {
    let ob = Outbox::new(1 << 20);
    let mut s = sink(usize::MAX);
    ob.cork();
    for i in 0..10u8 {
        ob.push_with(&mut s, 1, Admit::Limit, Lane::Data, |v| v.push(i))
            .unwrap();
    }
    assert_eq!(s.calls, 0);
    assert!(matches!(ob.uncork(&mut s), Flushed::Done));
    assert_eq!(s.calls, 1);
    assert_eq!(s.out, (0..10).collect::<Vec<u8>>());
}

#[test]
fn stall_keeps_order_and_resumes() {
    let ob = Outbox::new(1 << 20);
    let mut s = sink(3);
    assert!(matches!(
        ob.push_with(&mut s, 5, Admit::Limit, Lane::Data, |v| v
            .extend_from_slice(b"abcde")),
        Ok(Flushed::Stalled)
    ));
    // A short write is taken as "full": no second write waits out the timeout.
    assert_eq!(s.calls, 1);
    // The writer role is held (by the housekeeper): pushes only queue.
    let shared: Arc<[u8]> = Arc::from(&b"fg"[..]);
    assert!(matches!(ob.push_shared(&mut s, shared), Ok(Flushed::Done)));
    ob.push_with(&mut s, 1, Admit::Limit, Lane::Data, |v| v.push(b'h'))
        .unwrap();
    assert_eq!(ob.backlog(), 5);
    s.room = 100;
    assert!(matches!(ob.resume(&mut s), Flushed::Done));
    assert_eq!(s.out, b"abcdefgh");
    assert_eq!(ob.backlog(), 0);
}

#[test]
fn the_stall_clock_restarts_on_progress_and_stops_when_drained() {
    let ob = Outbox::new(1 << 20);
    let mut s = sink(0);
    assert_eq!(ob.stalled_for(), Duration::ZERO);
    assert!(matches!(
        ob.push_with(&mut s, 4, Admit::Limit, Lane::Data, |v| v.extend([0; 4])),
        Ok(Flushed::Stalled)
    ));
    let first = ob.state.lock().stalled_at.unwrap();
    // No progress: the clock keeps its start.
    assert!(matches!(ob.resume(&mut s), Flushed::Stalled));
    assert_eq!(ob.state.lock().stalled_at, Some(first));
    // One byte taken: the clock restarts.
    s.room = 1;
    assert!(matches!(ob.resume(&mut s), Flushed::Stalled));
    assert!(ob.state.lock().stalled_at.unwrap() >= first);
    assert_ne!(ob.state.lock().stalled_at, Some(first));
    s.room = 100;
    assert!(matches!(ob.resume(&mut s), Flushed::Done));
    assert_eq!(ob.stalled_for(), Duration::ZERO);
}

#[test]
fn a_close_frame_goes_past_the_backlog_limit() {
    let ob = Outbox::new(10);
    let mut s = sink(0);
    ob.push_with(&mut s, 9, Admit::Limit, Lane::Data, |v| v.extend([1; 9]))
        .unwrap();
    assert_eq!(
        ob.push_with(&mut s, 4, Admit::Limit, Lane::Data, |v| v.extend([2; 4]))
            .err(),
        Some(PushError::TooSlow)
    );
    // A close frame is admitted anyway, and nothing may follow it.
    ob.push_with(&mut s, 4, Admit::Close, Lane::Data, |v| v.extend([8; 4]))
        .unwrap();
    assert_eq!(
        ob.push_with(&mut s, 1, Admit::Limit, Lane::Data, |v| v.push(0))
            .err(),
        Some(PushError::Closed)
    );
    s.room = 100;
    assert!(matches!(ob.resume(&mut s), Flushed::Done));
    assert_eq!(s.out, [1, 1, 1, 1, 1, 1, 1, 1, 1, 8, 8, 8, 8]);
}

#[test]
fn the_cork_holds_back_only_the_corking_thread() {
    let ob = Arc::new(Outbox::new(1 << 20));
    let s = Arc::new(Mutex::new(sink(usize::MAX)));
    ob.cork();
    ob.push_with(&mut *s.lock(), 1, Admit::Limit, Lane::Data, |v| v.push(1))
        .unwrap();
    assert_eq!(s.lock().calls, 0);
    let (ob2, s2) = (Arc::clone(&ob), Arc::clone(&s));
    std::thread::spawn(move || {
        ob2.push_with(&mut *s2.lock(), 1, Admit::Limit, Lane::Data, |v| v.push(2))
            .unwrap();
    })
    .join()
    .unwrap();
    // Another thread's push wrote at once, with what was queued before it.
    assert_eq!(s.lock().out, [1, 2]);
    ob.push_with(&mut *s.lock(), 1, Admit::Limit, Lane::Data, |v| v.push(3))
        .unwrap();
    assert_eq!(s.lock().out, [1, 2]);
    assert!(matches!(ob.uncork(&mut *s.lock()), Flushed::Done));
    assert_eq!(s.lock().out, [1, 2, 3]);
}

#[test]
fn waiters_wake_as_room_appears_and_when_bytes_are_written() {
    let ob = Arc::new(Outbox::new(10));
    let mut s = sink(0);
    ob.push_with(&mut s, 8, Admit::Limit, Lane::Data, |v| v.extend([0; 8]))
        .unwrap();
    let mark = ob.flush_mark().unwrap();
    assert_eq!(
        mark,
        Mark {
            queue: 8,
            held: None
        }
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let ob = Arc::clone(&ob);
            std::thread::spawn(move || {
                ob.wait_for_room(5, Lane::Data, deadline);
                ob.wait_written(mark, deadline)
            })
        })
        .collect();
    s.room = 100;
    assert!(matches!(ob.resume(&mut s), Flushed::Done));
    for w in waiters {
        assert_eq!(w.join().unwrap(), Ok(()));
    }
    // A zero wait returns at once; a dropped queue says so.
    s.room = 0;
    assert!(matches!(
        ob.push_with(&mut s, 8, Admit::Limit, Lane::Data, |v| v.extend([0; 8])),
        Ok(Flushed::Stalled)
    ));
    let mark = ob.flush_mark().unwrap();
    assert_eq!(
        ob.wait_written(mark, Instant::now()),
        Err(PushError::TooSlow)
    );
    ob.abort();
    assert_eq!(
        ob.wait_written(mark, Instant::now() + Duration::from_secs(20)),
        Err(PushError::Closed)
    );
}

#[test]
fn data_waits_behind_an_open_stream_and_control_frames_do_not() {
    let ob = Outbox::new(1 << 20);
    let mut s = sink(usize::MAX);
    let deadline = Instant::now() + Duration::from_secs(20);
    ob.open_stream(deadline).unwrap();
    ob.push_with(&mut s, 1, Admit::Limit, Lane::Stream, |v| v.push(1))
        .unwrap();
    ob.push_with(&mut s, 1, Admit::Limit, Lane::Data, |v| v.push(9))
        .unwrap();
    ob.push_shared(&mut s, Arc::from(&[8u8][..])).unwrap();
    ob.push_with(&mut s, 1, Admit::Limit, Lane::Control, |v| v.push(5))
        .unwrap();
    assert_eq!(s.out, [1, 5]);
    assert_eq!(ob.backlog(), 2);
    // A second stream waits for the first.
    assert_eq!(ob.open_stream(Instant::now()), Err(PushError::TooSlow));
    ob.push_with(&mut s, 1, Admit::Limit, Lane::StreamEnd, |v| v.push(2))
        .unwrap();
    assert_eq!(s.out, [1, 5, 2, 9, 8]);
    assert_eq!(ob.backlog(), 0);
    ob.open_stream(deadline).unwrap();
}

#[test]
fn an_empty_payload_is_never_written_alone() {
    let ob = Outbox::new(1 << 20);
    let mut s = sink(usize::MAX);
    let pushed = ob.push_owned(&mut s, &[0x82, 0], Vec::new(), Admit::Limit, Lane::Data);
    assert!(matches!(pushed, Ok(Flushed::Done)));
    ob.push_with(&mut s, 1, Admit::Limit, Lane::Data, |v| v.push(7))
        .unwrap();
    assert_eq!(s.out, [0x82, 0, 7]);
    assert_eq!(ob.backlog(), 0);
}

#[test]
fn backlog_limit_and_close() {
    let ob = Outbox::new(10);
    let mut s = sink(0);
    assert!(matches!(
        ob.push_with(&mut s, 8, Admit::Limit, Lane::Data, |v| v.extend([0; 8])),
        Ok(Flushed::Stalled)
    ));
    assert_eq!(
        ob.push_with(&mut s, 3, Admit::Limit, Lane::Data, |v| v.extend([0; 3]))
            .err(),
        Some(PushError::TooSlow)
    );
    ob.push_with(&mut s, 2, Admit::Close, Lane::Data, |v| v.extend([0; 2]))
        .unwrap();
    assert_eq!(
        ob.push_with(&mut s, 1, Admit::Limit, Lane::Data, |v| v.push(0))
            .err(),
        Some(PushError::Closed)
    );
}

/// A message held behind a stream keeps its header and payload together
/// once released: a ping waiting meanwhile goes after the payload, never
/// between (found by the torture test over TLS).
#[test]
fn a_ping_never_splits_a_held_message_from_its_header() {
    let ob = Outbox::new(1 << 20);
    let mut s = sink(0);
    let far = Instant::now() + Duration::from_secs(20);
    ob.open_stream(far).unwrap();
    ob.push_owned(&mut s, b"HH", b"pppp".to_vec(), Admit::Limit, Lane::Data)
        .unwrap();
    ob.push_with(&mut s, 2, Admit::Limit, Lane::StreamEnd, |v| {
        v.extend_from_slice(b"ss")
    })
    .unwrap();
    // The fragment and the held header leave; the payload waits.
    s.room = 4;
    assert!(matches!(ob.resume(&mut s), Flushed::Stalled));
    assert_eq!(s.out, b"ssHH");
    ob.push_with(&mut s, 2, Admit::Limit, Lane::Urgent, |v| {
        v.extend_from_slice(b"uu")
    })
    .unwrap();
    s.room = usize::MAX;
    assert!(matches!(ob.resume(&mut s), Flushed::Done));
    assert_eq!(s.out, b"ssHHppppuu");
}

/// A write that takes nothing (a full socket, or TLS records still
/// waiting) after a header leaves the stream inside that frame: a ping
/// waits for the payload.
#[test]
fn a_write_that_takes_nothing_keeps_the_frame_open() {
    let ob = Outbox::new(1 << 20);
    let mut s = sink(2);
    let pushed = ob.push_owned(&mut s, b"HH", b"pppp".to_vec(), Admit::Limit, Lane::Data);
    assert!(matches!(pushed, Ok(Flushed::Stalled)));
    assert_eq!(s.out, b"HH");
    // Nothing taken this time.
    assert!(matches!(ob.resume(&mut s), Flushed::Stalled));
    ob.push_with(&mut s, 2, Admit::Limit, Lane::Urgent, |v| {
        v.extend_from_slice(b"uu")
    })
    .unwrap();
    assert!(matches!(ob.resume(&mut s), Flushed::Stalled));
    s.room = usize::MAX;
    assert!(matches!(ob.resume(&mut s), Flushed::Done));
    assert_eq!(s.out, b"HHppppuu");
}
