use super::*;
use crate::transport::tls::{client_config, client_session, provider, TlsConfig};
use crate::transport::{Stream, Transport};
use rustls::pki_types::PrivateKeyDer;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

/// A server and a client session over loopback, each with its socket,
/// handshake done.
fn sessions() -> ((Session, TcpStream), (Session, TcpStream)) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = made.cert.der().clone();
    let key = PrivateKeyDer::try_from(made.signing_key.serialize_der()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let tls = TlsConfig::from_server_config(Arc::new(server));
    let client = client_config(&[cert]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (theirs, _) = listener.accept().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let shaking = std::thread::spawn(move || {
        let session = tls.session().unwrap();
        session.handshake(&theirs, deadline).unwrap();
        (session, theirs)
    });
    let session = client_session(&client, "localhost").unwrap();
    session.handshake(&ours, deadline).unwrap();
    (shaking.join().unwrap(), (session, ours))
}

/// A server and a client `Stream` over loopback, handshake done.
fn pair() -> (Stream, Stream) {
    let ((server, theirs), (client, ours)) = sessions();
    (Stream::tls(theirs, server), Stream::tls(ours, client))
}

#[test]
fn unsent_ciphertext_is_held_in_order_and_flush_reports_it() {
    let (server, client) = pair();
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // Write without waiting until the socket is full: everything taken
    // is either on its way or held as ciphertext.
    let mut sent = Vec::new();
    let mut seq = 0u32;
    loop {
        let chunk: Vec<u8> = (0..10_000u32).map(|i| (i ^ seq) as u8).collect();
        seq += 1;
        match Transport::nowait(&server).write(&chunk) {
            Ok(n) => {
                sent.extend_from_slice(&chunk[..n]);
                if n < chunk.len() {
                    break;
                }
            }
            Err(e) if is_full(&e) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(
            sent.len() < 1 << 30,
            "the peer never read, yet 1 GiB was taken"
        );
    }
    // While held ciphertext is still there, nothing new is taken.
    if Transport::nowait(&server).flush().is_err() {
        assert!(is_full(
            &Transport::nowait(&server).write(b"x").unwrap_err()
        ));
    }
    let total = sent.len();
    let reader = std::thread::spawn(move || {
        let mut got = vec![0u8; total];
        Transport::waiting(&client).read_exact(&mut got).unwrap();
        got
    });
    // The housekeeper's part: retry until everything held is out.
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(e) = Transport::nowait(&server).flush() {
        assert!(is_full(&e), "{e}");
        assert!(Instant::now() < deadline, "the held ciphertext never left");
        std::thread::yield_now();
    }
    assert!(reader.join().unwrap() == sent, "bytes lost or out of order");
}

#[test]
fn a_busy_reader_keeps_its_buffer_until_trimmed() {
    let ((server, theirs), (client, ours)) = sessions();
    theirs
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    ours.set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let msg: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let sent = msg.clone();
    let writer = std::thread::spawn(move || {
        let mut at = 0;
        while at < sent.len() {
            at += client
                .write_vectored(&ours, &[IoSlice::new(&sent[at..])], true)
                .unwrap();
        }
        (client, ours)
    });
    // A stream of records: reads take whole records into a kept buffer.
    let mut got = vec![0u8; msg.len()];
    let mut have = 0;
    let (mut kept, mut plugged) = (0, 0);
    while have < got.len() {
        have += server.read(&theirs, &mut got[have..]).unwrap();
        let side = server.reader.lock();
        kept = kept.max(side.buf.capacity());
        plugged = plugged.max(side.plug.capacity());
    }
    assert!(got == msg, "bytes lost or out of order");
    assert!(
        kept >= READ_CHUNK,
        "large reads never used the large buffer"
    );
    // rustls's block for a whole record's plaintext, once freed, is held.
    assert!(plugged >= 16 * 1024, "no record's block was held");
    // A busy connection waits keeping its buffer (here the wait times
    // out)...
    assert!(server.reader.lock().busy());
    theirs
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut buf = [0u8; 100];
    let e = server.read(&theirs, &mut buf).unwrap_err();
    assert!(is_full(&e), "{e}");
    assert!(server.reader.lock().buf.capacity() >= READ_CHUNK);
    assert!(server.reader.lock().plug.capacity() >= 16 * 1024);
    // ...until the keepalive's trim frees it (and the held block).
    server.trim();
    assert_eq!(server.reader.lock().buf.capacity(), 0);
    assert_eq!(server.reader.lock().plug.capacity(), 0);
    // And the connection still works both ways.
    let (client, ours) = writer.join().unwrap();
    server
        .write_vectored(&theirs, &[IoSlice::new(b"again")], true)
        .unwrap();
    ours.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let n = client.read(&ours, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"again");
}

#[test]
fn a_window_takes_at_most_a_step_from_an_offset() {
    let a = vec![1u8; 10];
    let b = vec![2u8; STEP];
    let bufs = [IoSlice::new(&a), IoSlice::new(&b)];
    let mut w = [IoSlice::new(&[]); 16];
    let n = window_at(&bufs, 4, &mut w);
    assert_eq!(n, 2);
    assert_eq!(w[0].len(), 6);
    assert_eq!(w[1].len(), STEP - 6);
    let n = window_at(&bufs, 10 + STEP - 6, &mut w);
    assert_eq!((n, w[0].len(), w[0][0]), (1, 6, 2));
}
