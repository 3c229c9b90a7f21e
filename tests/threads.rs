//! `ServerHandle::close` leaves no thread behind. This is its own test binary
//! (its own process) with one test, so that no other test's threads are counted.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use wsportal::{Config, Resource, Server};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn close_joins_every_thread() {
    let before = threads();
    let mut server =
        Server::with_config(Config::default().shutdown_grace(Duration::from_millis(300)));
    server.define_resource(
        "/",
        Resource::new().on_message(|ws, m| {
            let _ = ws.send(m);
        }),
    );
    let h = server.start("127.0.0.1:0").unwrap();
    let addr = h.local_addr();

    // Open clients of every kind: upgraded, half-way through a request, idle.
    let mut open = Vec::new();
    for _ in 0..5 {
        let (mut ws, _) = tungstenite::connect(format!("ws://{addr}/")).unwrap();
        ws.send(tungstenite::Message::text("hi")).unwrap();
        assert_eq!(ws.read().unwrap(), tungstenite::Message::text("hi"));
        open.push(ws);
    }
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let idle = TcpStream::connect(addr).unwrap();
    assert!(threads() > before + 5, "connection threads are running");

    h.close();
    assert_eq!(threads(), before, "no thread of ours is left");
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
    half.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = half.read_to_end(&mut rest);
    drop((open, idle));

    // Dropping the handle does the same.
    let h = Server::new().start("127.0.0.1:0").unwrap();
    let _c = TcpStream::connect(h.local_addr()).unwrap();
    drop(h);
    assert_eq!(threads(), before);
}
