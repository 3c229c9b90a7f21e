//! A server on a Unix-domain socket (`Server::start_unix`): WebSockets,
//! pages and handlers over it, a stale socket file replaced, a live one
//! refused, and the file removed on close.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use wsportal::{Error, Resource, Response, Server, ServerHandle};

use crate::support::*;

/// A socket path of this test's own, in a directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("wsportal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        TempDir(dir)
    }

    fn socket(&self) -> PathBuf {
        self.0.join("server.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn server() -> Server {
    init_logs();
    let mut server = Server::new();
    server
        .define_resource(
            "/echo",
            Resource::new().on_message(|ws, msg| {
                let _ = ws.send(msg);
            }),
        )
        .define_handler_for("/say", &["POST"], |req| {
            Response::text(format!(
                "{} from {}",
                String::from_utf8_lossy(req.body()),
                req.peer_addr()
            ))
        });
    server
}

fn dial(h: &ServerHandle) -> UnixStream {
    let s = UnixStream::connect(h.unix_path().expect("a unix socket")).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

#[test]
fn serves_websockets_and_handlers_on_a_unix_socket() {
    let dir = TempDir::new("unix");
    let path = dir.socket();
    let h = server().start_unix(&path).expect("listens on the socket");
    assert_eq!(h.unix_path(), Some(path.as_path()));
    let (mut ws, _) = tungstenite::client("ws://localhost/echo", dial(&h)).expect("handshake");
    ws.send(tungstenite::Message::text("over unix")).unwrap();
    assert_eq!(recv(&mut ws), tungstenite::Message::text("over unix"));
    let mut s = dial(&h);
    s.write_all(b"POST /say HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.ends_with("hi from 0.0.0.0:0"), "{answer}");
    assert_eq!(h.stats().websocket_accepted, 1);
    // The client answers the 1001 while the server closes.
    let client = std::thread::spawn(move || recv_close_or_end(&mut ws));
    h.close();
    assert!(client.join().unwrap());
    assert!(!path.exists(), "the socket file is removed on close");
}

/// Reads until the connection ends; whether it ended with the server's
/// 1001 (answered, as tungstenite does on reading it).
fn recv_close_or_end(ws: &mut tungstenite::WebSocket<UnixStream>) -> bool {
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(Some(f))) => {
                let _ = ws.flush();
                return u16::from(f.code) == 1001;
            }
            Ok(tungstenite::Message::Close(None)) | Err(_) => return false,
            Ok(_) => {}
        }
    }
}

#[test]
fn a_stale_socket_file_is_replaced_and_a_live_one_refused() {
    let dir = TempDir::new("unix-stale");
    let path = dir.socket();
    drop(UnixListener::bind(&path).unwrap()); // its file stays behind
    assert!(path.exists());
    let h = server()
        .start_unix(&path)
        .expect("the stale file is replaced");
    match server().start_unix(&path) {
        Err(Error::Bind { addr, .. }) => assert!(addr.contains("server.sock"), "{addr}"),
        other => panic!("a second server on a live socket: {other:?}"),
    }
    // The first one still serves.
    let (mut ws, _) = tungstenite::client("ws://localhost/echo", dial(&h)).expect("handshake");
    ws.send(tungstenite::Message::text("still here")).unwrap();
    assert_eq!(recv(&mut ws), tungstenite::Message::text("still here"));
    let client = std::thread::spawn(move || recv_close_or_end(&mut ws));
    h.close();
    assert!(client.join().unwrap());
    assert!(!path.exists());
}

#[test]
fn close_returns_when_the_socket_file_was_removed_under_it() {
    let dir = TempDir::new("unix-gone");
    let path = dir.socket();
    let h = server().start_unix(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let (tx, rx) = crossbeam_channel::bounded(1);
    let closing = std::thread::spawn(move || {
        h.close();
        let _ = tx.send(());
    });
    rx.recv_timeout(WAIT)
        .expect("close wakes the acceptor without the file");
    closing.join().unwrap();
}
