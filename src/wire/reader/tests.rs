use super::*;

const LIMITS: Limits = Limits {
    max_frame: 1 << 20,
    max_message: 1 << 20,
};

fn client_frame(fin: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode_header(&mut out, fin, op, payload.len(), Some([1, 2, 3, 4]));
    let start = out.len();
    out.extend_from_slice(payload);
    frame::apply_mask(&mut out[start..], [1, 2, 3, 4], 0);
    out
}

/// Feeds `bytes` one byte per read and collects events until an error or EOF.
fn run(bytes: &[u8]) -> (Vec<Event>, Option<Error>) {
    run_in(bytes, 1, 16)
}

/// Feeds `bytes` in reads of at most `chunk` bytes to a reader whose
/// buffer starts at `initial` bytes.
fn run_in(bytes: &[u8], chunk: usize, initial: usize) -> (Vec<Event>, Option<Error>) {
    let mut r = FrameReader::new(Role::Server, LIMITS, initial, &[]);
    let mut events = Vec::new();
    let mut src = Chunked { rest: bytes, chunk };
    loop {
        match r.next_event() {
            Ok(Some(e)) => events.push(e),
            Ok(None) => {
                if r.fill(&mut src).unwrap() == 0 {
                    return (events, None);
                }
            }
            Err(e) => return (events, Some(e)),
        }
    }
}

/// Found while checking a `frame_reader` fuzz report: `Vec::resize` grows the
/// capacity by doubling, so a buffer that doubled from a size that is not
/// a power of two (a `read_buffer_size` of 40,000) and stopped at the
/// 256 KiB cap held 320 KiB; a large frame's vector could likewise hold
/// more than the frame. Growth is exact now.
#[test]
fn buffers_grow_exactly_to_their_cap() {
    // 100-byte frames: every read of a full buffer ends on a frame's end.
    let mut stream = Vec::new();
    for _ in 0..8_000 {
        stream.extend(client_frame(true, OpCode::Binary, &[7; 94]));
    }
    let mut r = FrameReader::new(Role::Server, LIMITS, 40_000, &[]);
    let mut src = Chunked {
        rest: &stream,
        chunk: usize::MAX,
    };
    let mut largest = 0;
    loop {
        while r.next_event().unwrap().is_some() {}
        if r.fill(&mut src).unwrap() == 0 {
            break;
        }
        largest = largest.max(r.buf.capacity());
    }
    assert!(largest >= GROW_LIMIT / 2, "the buffer grew ({largest})");
    assert!(largest <= GROW_LIMIT, "{largest} > {GROW_LIMIT}");

    // A 100,000-byte frame arriving in 1,000-byte reads: its vector
    // never holds more than the frame.
    let big = client_frame(true, OpCode::Binary, &[1; 100_000]);
    let mut r = FrameReader::new(Role::Server, LIMITS, 4096, &[]);
    let mut src = Chunked {
        rest: &big,
        chunk: 1000,
    };
    let mut largest = 0;
    loop {
        if let Some(event) = r.next_event().unwrap() {
            assert!(matches!(event, Event::Message(Message::Binary(ref b)) if b.len() == 100_000));
            break;
        }
        r.fill(&mut src).unwrap();
        largest = largest.max(r.direct.as_ref().map_or(0, |d| d.data.capacity()));
    }
    assert!(largest <= 100_000, "{largest}");
}

/// A source that hands out at most `chunk` bytes per read, as a socket
/// hands out what has arrived.
struct Chunked<'a> {
    rest: &'a [u8],
    chunk: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_vectored(&mut [IoSliceMut::new(buf)])
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let mut now = &self.rest[..self.chunk.min(self.rest.len())];
        let n = now.read_vectored(bufs)?;
        self.rest = &self.rest[n..];
        Ok(n)
    }
}

#[test]
fn assembles_fragments_byte_by_byte() {
    let mut bytes = client_frame(false, OpCode::Text, "hé".as_bytes());
    bytes.extend(client_frame(true, OpCode::Ping, b"p"));
    bytes.extend(client_frame(true, OpCode::Continuation, "llo".as_bytes()));
    let (events, err) = run(&bytes);
    assert!(err.is_none());
    assert_eq!(
        events,
        vec![
            Event::Ping(b"p".to_vec()),
            Event::Message(Message::Text("héllo".into()))
        ]
    );
}

#[test]
fn large_frames_are_read_into_their_own_buffer() {
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let mut bytes = client_frame(true, OpCode::Binary, &big);
    bytes.extend(client_frame(false, OpCode::Text, &[b'a'; 20_000]));
    bytes.extend(client_frame(true, OpCode::Ping, b"p"));
    bytes.extend(client_frame(true, OpCode::Continuation, &[b'b'; 30_000]));
    bytes.extend(client_frame(true, OpCode::Text, b"small"));
    let mut text = vec![b'a'; 20_000];
    text.extend([b'b'; 30_000]);
    let expected = vec![
        Event::Message(Message::Binary(big)),
        Event::Ping(b"p".to_vec()),
        Event::Message(Message::Text(String::from_utf8(text).unwrap())),
        Event::Message(Message::Text("small".into())),
    ];
    // Byte by byte, and in larger reads that end anywhere: a read that
    // completes a large frame also brings in the start of the next one.
    for chunk in [1, 999, 7000, 65_536, bytes.len()] {
        for initial in [16, 4096] {
            let (events, err) = run_in(&bytes, chunk, initial);
            assert!(err.is_none(), "chunk {chunk}, initial {initial}: {err:?}");
            assert_eq!(events, expected, "chunk {chunk}, initial {initial}");
        }
    }
}

/// Heap bytes the reader holds: its buffer and a large frame's own.
fn held(r: &FrameReader) -> usize {
    r.buf.capacity() + r.direct.as_ref().map_or(0, |d| d.data.capacity())
}

/// Abuse (issue 17.5): a header announcing a huge payload commits no
/// memory for it; the frame's buffer follows the bytes that arrive.
#[test]
fn abuse_a_huge_frame_header_commits_nothing() {
    let limits = Limits {
        max_frame: 16 << 20,
        max_message: 16 << 20,
    };
    let mut r = FrameReader::new(Role::Server, limits, 4096, &[]);
    let mut header = Vec::new();
    frame::encode_header(
        &mut header,
        true,
        OpCode::Binary,
        16 << 20,
        Some([1, 2, 3, 4]),
    );
    assert_eq!(header.len(), 14);
    let mut src = &header[..];
    r.fill(&mut src).unwrap();
    assert_eq!(r.next_event().unwrap(), None);
    assert!(
        held(&r) <= 64 << 10,
        "a bare header holds {} bytes",
        held(&r)
    );
    // As payload trickles in, memory stays within a few times what arrived.
    let payload = vec![7u8; 1 << 20];
    let mut src = Chunked {
        rest: &payload,
        chunk: 10_000,
    };
    let mut arrived = 0;
    while arrived < payload.len() {
        arrived += r.fill(&mut src).unwrap();
        assert_eq!(r.next_event().unwrap(), None);
        let bound = DIRECT_GROWTH * arrived + DIRECT_MIN + 4096;
        assert!(held(&r) <= bound, "{} held after {arrived} bytes", held(&r));
    }
}

/// permessage-deflate through the reader: a compressed message in three
/// fragments with a ping between them (RSV1 on the first only), then a
/// bomb refused at the message limit while its output stays within it.
#[cfg(feature = "deflate")]
#[test]
fn compressed_messages_are_inflated_within_the_limit() {
    use crate::wire::deflate::{Compressor, Inflater};
    use crate::wire::extension::Direction;
    let dir = Direction {
        window_bits: 15,
        no_context_takeover: false,
    };
    let text = "compressed text, compressed text, compressed text ".repeat(100);
    let z = Compressor::new(dir, 6, 0)
        .compress(text.as_bytes())
        .unwrap();
    let third = z.len() / 3;
    let mut first = client_frame(false, OpCode::Text, &z[..third]);
    first[0] |= 0x40;
    let mut bytes = first;
    bytes.extend(client_frame(true, OpCode::Ping, b"p"));
    bytes.extend(client_frame(
        false,
        OpCode::Continuation,
        &z[third..2 * third],
    ));
    bytes.extend(client_frame(true, OpCode::Continuation, &z[2 * third..]));
    let bomb = Compressor::new(dir, 9, 0)
        .compress(&vec![0u8; 8 << 20])
        .unwrap();
    let mut big = client_frame(true, OpCode::Binary, &bomb);
    big[0] |= 0x40;
    bytes.extend(big);
    for chunk in [1, 1000, bytes.len()] {
        let mut r =
            FrameReader::new(Role::Server, LIMITS, 64, &[]).with_inflater(Some(Inflater::new(dir)));
        let mut src = Chunked {
            rest: &bytes,
            chunk,
        };
        let mut events = Vec::new();
        let err = loop {
            match r.next_event() {
                Ok(Some(e)) => events.push(e),
                Ok(None) => {
                    r.fill(&mut src).unwrap();
                }
                Err(e) => break e,
            }
        };
        assert_eq!(
            events,
            vec![
                Event::Ping(b"p".to_vec()),
                Event::Message(Message::Text(text.clone()))
            ]
        );
        assert!(
            matches!(err, Error::TooBig { size, limit } if limit == LIMITS.max_message && size <= limit as u64 + (1 << 20)),
            "{err:?}"
        );
    }
    // RSV1 without the stage is refused.
    let mut plain = FrameReader::new(Role::Server, LIMITS, 64, &[]);
    let mut src = &bytes[..];
    plain.fill(&mut src).unwrap();
    assert!(matches!(plain.next_event(), Err(Error::Protocol(_))));
}

#[test]
fn protocol_errors() {
    let unmasked = [0x81, 0x01, b'a'];
    assert!(matches!(run(&unmasked).1, Some(Error::Protocol(_))));
    let cont = client_frame(true, OpCode::Continuation, b"x");
    assert!(matches!(run(&cont).1, Some(Error::Protocol(_))));
    let ping = client_frame(false, OpCode::Ping, b"");
    assert!(matches!(run(&ping).1, Some(Error::Protocol(_))));
    let close = client_frame(true, OpCode::Close, &[0x03]);
    assert!(matches!(run(&close).1, Some(Error::Protocol(_))));
    let close = client_frame(true, OpCode::Close, &1005u16.to_be_bytes());
    assert!(matches!(run(&close).1, Some(Error::Protocol(_))));
    let mut two = client_frame(false, OpCode::Text, b"a");
    two.extend(client_frame(true, OpCode::Binary, b"b"));
    assert!(matches!(run(&two).1, Some(Error::Protocol(_))));
}

#[test]
fn invalid_utf8_fails_fast() {
    let mut bytes = client_frame(false, OpCode::Text, &[0xCE]);
    bytes.extend(client_frame(false, OpCode::Continuation, &[0xFF]));
    assert!(matches!(run(&bytes).1, Some(Error::InvalidUtf8)));
    let close = client_frame(true, OpCode::Close, &[0x03, 0xE8, 0xFF]);
    assert!(matches!(run(&close).1, Some(Error::InvalidUtf8)));
}

#[test]
fn size_limits() {
    let mut r = FrameReader::new(
        Role::Server,
        Limits {
            max_frame: 10,
            max_message: 15,
        },
        16,
        &[],
    );
    let mut bytes = client_frame(false, OpCode::Binary, &[0; 10]);
    bytes.extend(client_frame(true, OpCode::Continuation, &[0; 10]));
    let mut src = &bytes[..];
    while r.fill(&mut src).unwrap() > 0 {}
    assert!(matches!(
        r.next_event(),
        Err(Error::TooBig {
            size: 20,
            limit: 15
        })
    ));
    let mut r = FrameReader::new(Role::Server, LIMITS, 16, &[]);
    let huge = client_frame(true, OpCode::Binary, &vec![0; (1 << 20) + 1]);
    let mut src = &huge[..20];
    r.fill(&mut src).unwrap();
    assert!(matches!(r.next_event(), Err(Error::TooBig { .. })));
}

#[test]
fn buffer_grows_for_big_frames_and_shrinks_when_idle() {
    let mut r = FrameReader::new(Role::Server, LIMITS, 16, &[]);
    let big = client_frame(true, OpCode::Binary, &[5; 5000]);
    let mut src = &big[..];
    let mut got = None;
    while got.is_none() {
        got = r.next_event().unwrap();
        if got.is_none() {
            r.fill(&mut src).unwrap();
        }
    }
    assert_eq!(got, Some(Event::Message(Message::Binary(vec![5; 5000]))));
    for _ in 0..QUIET_AFTER {
        assert!(r.buf.capacity() > 0, "not quiet yet");
        let small = client_frame(true, OpCode::Ping, b"");
        let mut src = &small[..];
        r.fill(&mut src).unwrap();
        assert_eq!(r.next_event().unwrap(), Some(Event::Ping(vec![])));
    }
    let mut empty: &[u8] = &[];
    r.fill(&mut empty).unwrap();
    assert_eq!(r.buf.capacity(), 0, "an idle connection holds no buffer");
}

/// Issue 29: over TLS a large message's short last record (14 bytes of a
/// 64 KiB message) comes as its own read, sometimes two such in a row
/// between long reads. That is not a quiet connection: its buffer stays.
#[test]
fn short_reads_between_long_ones_keep_the_buffer() {
    let mut r = FrameReader::new(Role::Server, LIMITS, 4096, &[]);
    let frame = client_frame(true, OpCode::Binary, &[7; 3000]);
    // Each frame comes as a long read, then its tail in two short ones.
    let (head, tail) = frame.split_at(frame.len() - 56);
    for round in 0..3 {
        let mut got = None;
        for piece in [head, &tail[..42], &tail[42..]] {
            let mut src = piece;
            while !src.is_empty() {
                r.fill(&mut src).unwrap();
                if round > 0 {
                    // (A new reader starts quiet.)
                    assert!(r.buf.capacity() >= 4096, "the buffer is kept");
                }
                while let Some(event) = r.next_event().unwrap() {
                    got = Some(event);
                }
            }
        }
        assert!(matches!(got, Some(Event::Message(Message::Binary(b))) if b.len() == 3000));
    }
}

/// Issue 29: 64 KiB frames streaming in (the socket always holds more than
/// the reader asks for) cost about one read each once the stream is going,
/// as they did before a frame's buffer grew with the bytes that arrive
/// (three reads each then: 16 KiB of room, 64 KiB, the rest).
#[test]
fn streaming_64k_frames_take_one_read_each() {
    let frames = 50;
    let (reads, r) = stream_in(frames, 65536);
    // The first frame or two start from the 4 KiB buffer; the EOF is one.
    assert!(reads <= frames + 4, "{reads} reads for {frames} frames");
    // The read buffer stays at the stream's tail size.
    assert!(r.buf.capacity() <= STREAM_TAIL, "{}", r.buf.capacity());
}

/// Frames that do not divide the buffer (4 KiB messages: 4,104 bytes with
/// their header) streaming in: a read that filled its room grows the
/// buffer even when what was left of the last frame had to be moved to its
/// front first, so that reads take many frames each. It used to stay at
/// one frame and a part (8 KiB), a read per frame.
#[test]
fn streaming_4k_frames_share_reads() {
    let frames = 400;
    let (reads, r) = stream_in(frames, 4096);
    assert!(reads <= frames / 8, "{reads} reads for {frames} frames");
    assert!(r.buf.capacity() <= GROW_LIMIT, "{}", r.buf.capacity());
}

/// `frames` binary frames of `size` bytes (frame `i` filled with `i`)
/// read from a socket that always holds more than the reader asks for,
/// from a 4 KiB buffer; checks every message. Returns the reads it took
/// (the end of the stream's included) and the reader.
fn stream_in(frames: usize, size: usize) -> (usize, FrameReader) {
    let mut stream = Vec::new();
    for i in 0..frames {
        stream.extend(client_frame(true, OpCode::Binary, &vec![i as u8; size]));
    }
    let mut r = FrameReader::new(Role::Server, LIMITS, 4096, &[]);
    let mut src = Chunked {
        rest: &stream,
        chunk: usize::MAX,
    };
    let (mut reads, mut got) = (0, 0);
    loop {
        while let Some(e) = r.next_event().unwrap() {
            assert_eq!(e, Event::Message(Message::Binary(vec![got as u8; size])));
            got += 1;
        }
        reads += 1;
        if r.fill(&mut src).unwrap() == 0 {
            break;
        }
    }
    assert_eq!(got, frames);
    (reads, r)
}
