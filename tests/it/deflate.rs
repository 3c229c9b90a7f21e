//! permessage-deflate (feature `deflate`): our client and server agree on
//! it and compress; raw peers see RSV1 and deflate data on the wire; the
//! inflated size limit, compressed control frames, many threads sending on
//! one compressed connection, and a client refusing a bad answer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use wsportal::{Client, Config, Deflate, Error, Message, Resource, Server, ServerHandle};

use crate::support::*;

fn echo(config: Config, res: Resource) -> ServerHandle {
    init_logs();
    let mut server = Server::with_config(config);
    server.define_resource(
        "/echo",
        res.on_message(|ws, msg| {
            let _ = ws.send(msg);
        }),
    );
    server.start("127.0.0.1:0").expect("server starts")
}

/// A raw socket upgraded with `extensions` offered; returns the answer's
/// `Sec-WebSocket-Extensions` value.
fn raw(addr: SocketAddr, extensions: &str) -> (TcpStream, Option<String>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let extra = format!("Sec-WebSocket-Extensions: {extensions}\r\n");
    s.write_all(upgrade_request("/echo", &extra).as_bytes())
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let ext = head
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Extensions: "))
        .map(str::to_owned);
    (s, ext)
}

/// A masked client frame with the first byte given whole (FIN, RSV1, opcode).
fn raw_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = frame(true, 0, payload);
    f[0] = b0;
    f
}

fn deflate_raw(data: &[u8]) -> Vec<u8> {
    let mut z = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    z.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

fn inflate_raw(z: &mut Decompress, data: &[u8]) -> Vec<u8> {
    let mut input = data.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(1 << 20);
    z.decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .unwrap();
    out
}

#[test]
fn a_raw_peer_sees_compressed_frames_both_ways() {
    let ours = Deflate::default().min_size(32);
    let h = echo(Config::default().deflate(Some(ours)), Resource::new());
    let (mut s, ext) = raw(h.local_addr(), "permessage-deflate; client_max_window_bits");
    assert_eq!(
        ext.as_deref(),
        Some("permessage-deflate; server_max_window_bits=12; client_max_window_bits=12")
    );
    let mut inflater = Decompress::new(false);
    let text = "{\"user\":\"ada\",\"text\":\"hello hello hello hello\"}".repeat(20);
    for _ in 0..3 {
        s.write_all(&raw_frame(0xC1, &deflate_raw(text.as_bytes())))
            .unwrap();
        let (b0, payload) = read_raw_frame(&mut s);
        assert_eq!(b0, 0xC1, "FIN, RSV1, text");
        assert!(payload.len() < text.len() / 4, "{}", payload.len());
        assert_eq!(inflate_raw(&mut inflater, &payload), text.as_bytes());
    }
    // A short message goes out uncompressed (min_size), without RSV1.
    s.write_all(&raw_frame(0xC1, &deflate_raw(b"hi"))).unwrap();
    assert_eq!(read_raw_frame(&mut s), (0x81, b"hi".to_vec()));
    // So does a message the peer sent uncompressed and fragmented, RSV1
    // only on the first frame when compressed.
    let z = deflate_raw(text.as_bytes());
    let (a, b) = z.split_at(z.len() / 2);
    s.write_all(&raw_frame(0x41, a)).unwrap();
    s.write_all(&raw_frame(0x80, b)).unwrap();
    let (b0, payload) = read_raw_frame(&mut s);
    assert_eq!(b0, 0xC1);
    assert_eq!(inflate_raw(&mut inflater, &payload), text.as_bytes());
    h.close();
}

#[test]
fn no_offer_or_a_refusing_resource_means_no_compression() {
    let h = echo(Config::default(), Resource::new().compression(false));
    let (mut s, ext) = raw(h.local_addr(), "permessage-deflate");
    assert_eq!(ext, None);
    // RSV1 without the extension is a protocol error.
    s.write_all(&raw_frame(0xC1, &deflate_raw(b"hello")))
        .unwrap();
    assert_eq!(read_close_code(&mut s), 1002);
    h.close();
    let h = echo(Config::default().deflate(None), Resource::new());
    assert_eq!(raw(h.local_addr(), "permessage-deflate").1, None);
    h.close();
}

#[test]
fn protocol_errors_on_compressed_connections() {
    let h = echo(Config::default().max_message_size(1 << 20), Resource::new());
    // A compressed control frame.
    let (mut s, _) = raw(h.local_addr(), "permessage-deflate");
    s.write_all(&raw_frame(0xC9, &deflate_raw(b"ping")))
        .unwrap();
    assert_eq!(read_close_code(&mut s), 1002);
    // RSV1 on a continuation frame.
    let (mut s, _) = raw(h.local_addr(), "permessage-deflate");
    s.write_all(&raw_frame(0x01, b"a")).unwrap();
    s.write_all(&raw_frame(0xC0, &deflate_raw(b"b"))).unwrap();
    assert_eq!(read_close_code(&mut s), 1002);
    // A bomb: 16 MiB of zeros in a few KiB is refused at the limit (1009).
    let (mut s, _) = raw(h.local_addr(), "permessage-deflate");
    let bomb = deflate_raw(&vec![0u8; 16 << 20]);
    assert!(bomb.len() < 64 << 10, "{}", bomb.len());
    s.write_all(&raw_frame(0xC2, &bomb)).unwrap();
    assert_eq!(read_close_code(&mut s), 1009);
    // Text that inflates to invalid UTF-8 (1007).
    let (mut s, _) = raw(h.local_addr(), "permessage-deflate");
    s.write_all(&raw_frame(0xC1, &deflate_raw(&[b'a', 0xff, b'b'])))
        .unwrap();
    assert_eq!(read_close_code(&mut s), 1007);
    // Data that is not deflate at all (1002).
    let (mut s, _) = raw(h.local_addr(), "permessage-deflate");
    s.write_all(&raw_frame(0xC2, &[0xff; 8])).unwrap();
    assert_eq!(read_close_code(&mut s), 1002);
    h.close();
}

#[test]
fn our_client_and_server_compress_every_setting() {
    let settings = [
        Deflate::default(),
        Deflate::default()
            .server_no_context_takeover(true)
            .client_no_context_takeover(true),
        Deflate::default()
            .server_max_window_bits(8)
            .client_max_window_bits(8)
            .min_size(0),
        Deflate::default()
            .server_max_window_bits(15)
            .client_max_window_bits(15)
            .level(1),
    ];
    for ours in settings {
        let h = echo(Config::default().deflate(Some(ours)), Resource::new());
        let client = Client::new(format!("ws://{}/echo", h.local_addr()))
            .config(Config::default().deflate(Some(ours)))
            .connect()
            .expect("connects");
        let answer = client.response_header("sec-websocket-extensions");
        assert!(
            answer.is_some_and(|a| a.starts_with("permessage-deflate")),
            "{answer:?}"
        );
        for i in 0..200usize {
            let text = format!("message {i}: ").repeat(i % 50 + 1);
            client.connection().send(text.clone()).unwrap();
            assert_eq!(client.recv_timeout(WAIT).unwrap(), Message::Text(text));
            let bin: Vec<u8> = (0..i * 700).map(|j| (j % 13) as u8).collect();
            client.connection().send(bin.clone()).unwrap();
            assert_eq!(client.recv_timeout(WAIT).unwrap(), Message::Binary(bin));
        }
        client.disconnect(1000, "");
        h.close();
    }
}

/// Compression order is wire order: 8 threads send 1,000 messages each on
/// one compressed connection (context takeover); the peer's inflater must
/// decode every one, each thread's in order.
#[test]
fn eight_threads_on_one_compressed_connection() {
    init_logs();
    const THREADS: usize = 8;
    const EACH: usize = 1000;
    let mut server = Server::with_config(Config::default());
    server.define_resource(
        "/burst",
        Resource::new().on_open(|ws| {
            let ws = ws.clone();
            let senders: Vec<_> = (0..THREADS)
                .map(|t| {
                    let ws = ws.clone();
                    std::thread::spawn(move || {
                        for i in 0..EACH {
                            let msg =
                                format!("{{\"thread\":{t},\"seq\":{i},\"pad\":\"abcabcabc\"}}");
                            ws.send_timeout(msg, WAIT).expect("queued");
                        }
                    })
                })
                .collect();
            for s in senders {
                s.join().expect("sender ran");
            }
        }),
    );
    let h = server.start("127.0.0.1:0").expect("server starts");
    let client = Client::new(format!("ws://{}/burst", h.local_addr()))
        .config(Config::default().max_backlog(64 << 20))
        .connect()
        .expect("connects");
    assert!(client.response_header("sec-websocket-extensions").is_some());
    let mut next = [0usize; THREADS];
    for _ in 0..THREADS * EACH {
        let Message::Text(text) = client.recv_timeout(WAIT).expect("a message") else {
            panic!("binary message");
        };
        let t: usize = text[10..11].parse().unwrap();
        let seq = format!("\"seq\":{},", next[t]);
        assert!(text.contains(&seq), "{text} (expected {seq})");
        next[t] += 1;
    }
    assert_eq!(next, [EACH; THREADS]);
    client.disconnect(1000, "");
    h.close();
}

/// A server whose answer breaks the client's offer: the client fails the
/// connection before it opens.
#[test]
fn the_client_refuses_an_answer_that_breaks_its_offer() {
    for answer in [
        "permessage-deflate; foo",
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "x-unknown",
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = answer.to_owned();
        let fake = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(WAIT)).unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                s.read_exact(&mut byte).unwrap();
                head.push(byte[0]);
            }
            let head = String::from_utf8(head).unwrap();
            assert!(
                head.contains(
                    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, "
                ),
                "{head}"
            );
            let key = head
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap();
            let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
            let reply = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: {answer}\r\n\r\n"
            );
            let _ = s.write_all(reply.as_bytes());
        });
        let got = Client::new(format!("ws://{addr}/")).connect();
        assert!(matches!(got, Err(Error::Protocol(_))), "{got:?}");
        fake.join().unwrap();
    }
}
